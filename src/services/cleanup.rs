//! The expiry job: deletes every expired kind in short batches and logs the counts.

use std::time::{Duration, Instant};

use super::Ctx;
use crate::error::Result;
use crate::store::{self, cleanup::TableReport};

/// What one cleanup pass did.
#[derive(Debug, serde::Serialize)]
pub struct Report {
    /// Per-table counts.
    pub tables: Vec<TableReport>,
    /// Total rows deleted.
    pub deleted: u64,
    /// Wall time of the pass, milliseconds.
    pub elapsed_ms: u64,
}

/// Runs one pass now.
pub async fn run_once(ctx: &Ctx) -> Result<Report> {
    let start = Instant::now();
    let now = store::now();
    let audit_cutoff = now - i64::from(ctx.settings.cleanup.audit_retention_days) * 86_400;
    let budget = Duration::from_millis(ctx.settings.cleanup.batch_time_budget_ms.max(1));
    let tables = store::cleanup::run(&ctx.db, now, audit_cutoff, budget).await?;
    let deleted = tables.iter().map(|t| t.deleted).sum();
    let report = Report {
        tables,
        deleted,
        elapsed_ms: start.elapsed().as_millis() as u64,
    };
    for t in &report.tables {
        if t.deleted > 0 {
            tracing::info!(
                table = t.table,
                deleted = t.deleted,
                batches = t.batches,
                longest_tx_us = t.longest_tx_us,
                "cleanup"
            );
        }
    }
    Ok(report)
}
