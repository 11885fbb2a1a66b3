//! Scheduled jobs (tokio-cron-scheduler). Schedules come from config; an empty string disables
//! a job. Jobs only call services. [`every`] runs the in-memory upkeep tasks that keep a fixed
//! period instead (the last-used flush, the key change poll, rate-limit housekeeping).

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

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

/// Runs `task` every `period` (the first run one period from now) for as long as `owner` lives:
/// the loop holds only a weak reference between runs, so dropping the owner ends it. A run that
/// overruns its period delays the next one rather than bunching them.
pub fn every<T, F, Fut>(owner: &Arc<T>, period: Duration, task: F)
where
    T: Send + Sync + 'static,
    F: Fn(Arc<T>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let weak: Weak<T> = Arc::downgrade(owner);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(owner) = weak.upgrade() else { break };
            task(owner).await;
        }
    });
}
