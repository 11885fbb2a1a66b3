//! Scheduled jobs (tokio-cron-scheduler). Schedules come from config; an empty string disables
//! a job. Jobs only call services.

use std::sync::Arc;

use tokio_cron_scheduler::{Job, JobScheduler};

use crate::error::{Error, Result};
use crate::services::{cleanup, Ctx};

/// Starts the scheduler with every enabled job; `None` if no job is enabled.
pub async fn start(ctx: Arc<Ctx>) -> Result<Option<JobScheduler>> {
    let schedule = ctx.settings.cleanup.schedule.trim().to_owned();
    if schedule.is_empty() {
        return Ok(None);
    }
    let sched = JobScheduler::new()
        .await
        .map_err(|e| Error::internal(format!("scheduler: {e}")))?;
    let job_ctx = ctx.clone();
    let job = Job::new_async(schedule.as_str(), move |_id, _l| {
        let ctx = job_ctx.clone();
        Box::pin(async move {
            if let Err(e) = cleanup::run_once(&ctx).await {
                tracing::error!(error = %e, "scheduled cleanup failed");
            }
        })
    })
    .map_err(|e| {
        Error::internal(format!(
            "configuration error: `cleanup.schedule` = {schedule:?} is not a valid cron: {e}"
        ))
    })?;
    sched
        .add(job)
        .await
        .map_err(|e| Error::internal(format!("scheduler: {e}")))?;
    sched
        .start()
        .await
        .map_err(|e| Error::internal(format!("scheduler: {e}")))?;
    Ok(Some(sched))
}
