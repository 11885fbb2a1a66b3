//! Deleting expired rows in short transactions.
//!
//! Each table that holds expiring records has one [`Rule`]. A pass deletes a batch of matching
//! rows per `BEGIN IMMEDIATE` transaction and sizes the next batch from how long this one held
//! the write lock, so no transaction holds the lock much longer than the time budget, whatever
//! the machine's speed. Later capabilities add their tables to [`RULES`].

use std::time::Duration;

use rusqlite::params;

use super::Db;
use crate::error::Result;

/// What counts as expired in one table. `?1` is now, `?2` the audit cut-off (Unix seconds).
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// The table.
    pub table: &'static str,
    /// SQL condition selecting deletable rows.
    pub condition: &'static str,
}

/// Every expiring kind, in the order a pass deletes them. Each condition is a range on one
/// indexed column, so `LIMIT` walks the index and every batch costs the same however many rows
/// remain (an `OR` of columns would make SQLite scan the table on every batch).
pub const RULES: &[Rule] = &[
    Rule {
        table: "sessions",
        condition: "expires_at <= ?1",
    },
    Rule {
        table: "sessions",
        condition: "idle_expires_at <= ?1",
    },
    Rule {
        table: "sessions",
        condition: "revoked_at IS NOT NULL",
    },
    Rule {
        table: "magic_links",
        condition: "expires_at <= ?1 OR used_at IS NOT NULL",
    },
    Rule {
        table: "portal_tokens",
        condition: "expires_at <= ?1 OR revoked_at IS NOT NULL",
    },
    Rule {
        table: "refresh_tokens",
        condition: "expires_at <= ?1",
    },
    Rule {
        table: "refresh_families",
        condition: "expires_at <= ?1",
    },
    Rule {
        table: "signing_keys",
        condition: "retire_at IS NOT NULL AND retire_at <= ?1",
    },
    // Runs (and, by cascade, their encrypted events) are kept as long as the audit log.
    Rule {
        table: "runs",
        condition: "expires_at < ?2",
    },
    // Revoked or expired API keys stay listed for 30 days (so their owners see what happened),
    // then go.
    Rule {
        table: "api_keys",
        condition: "revoked_at <= ?1 - 2592000 OR expires_at <= ?1 - 2592000",
    },
    Rule {
        table: "audit_events",
        condition: "at < ?2",
    },
];

/// Rows deleted from one table, and how long the longest transaction took.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TableReport {
    /// The table.
    pub table: &'static str,
    /// Rows deleted.
    pub deleted: u64,
    /// Transactions used.
    pub batches: u64,
    /// Longest single transaction, in microseconds.
    pub longest_tx_us: u64,
}

const MIN_BATCH: i64 = 16;
const MAX_BATCH: i64 = 100_000;

/// Deletes every expired row, batch by batch, each transaction aiming at `budget`.
pub async fn run(
    db: &Db,
    now: i64,
    audit_cutoff: i64,
    budget: Duration,
) -> Result<Vec<TableReport>> {
    let mut reports: Vec<TableReport> = Vec::new();
    for rule in RULES {
        let mut report = TableReport {
            table: rule.table,
            deleted: 0,
            batches: 0,
            longest_tx_us: 0,
        };
        let mut batch: i64 = 256;
        loop {
            let sql = format!(
                "DELETE FROM {t} WHERE rowid IN (SELECT rowid FROM {t} WHERE {c} LIMIT ?3)",
                t = rule.table,
                c = rule.condition
            );
            let (n, took) = db
                .write_relaxed_timed(move |tx| {
                    Ok(tx.execute(&sql, params![now, audit_cutoff, batch])?)
                })
                .await?;
            report.deleted += n as u64;
            report.batches += 1;
            report.longest_tx_us = report.longest_tx_us.max(took.as_micros() as u64);
            if (n as i64) < batch {
                break;
            }
            // Aim the next batch at the budget: scale by budget / time taken, at most ×2.
            let took_us = took.as_micros().max(1) as f64;
            let scale = (budget.as_micros() as f64 / took_us).min(2.0);
            batch = ((batch as f64 * scale * 0.8) as i64).clamp(MIN_BATCH, MAX_BATCH);
            // Let queued writers in between batches.
            tokio::task::yield_now().await;
        }
        match reports.iter_mut().find(|r| r.table == report.table) {
            Some(r) => {
                r.deleted += report.deleted;
                r.batches += report.batches;
                r.longest_tx_us = r.longest_tx_us.max(report.longest_tx_us);
            }
            None => reports.push(report),
        }
    }
    Ok(reports)
}
