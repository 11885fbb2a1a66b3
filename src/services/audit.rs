//! The audit log of security events.
//!
//! Recording never blocks a request: events go over a channel to one writer thread, which
//! drains whatever has queued and appends it in a single transaction, so a burst of failed
//! sign-ins costs one write, not one per event. Retention is enforced by the cleanup job.

use std::net::IpAddr;
use std::sync::mpsc;
use std::sync::Mutex;

use crate::error::Result;
use crate::store::audit::AuditEvent;
use crate::store::{self, Db};

/// Handle for recording events; clones share the one writer thread.
#[derive(Debug, Clone)]
pub struct AuditLog {
    tx: std::sync::Arc<Mutex<mpsc::Sender<Msg>>>,
    db: Db,
}

/// What the writer thread receives.
#[derive(Debug)]
enum Msg {
    /// An event to append.
    Event(AuditEvent),
    /// Answer once everything sent before this is written.
    Flush(mpsc::Sender<()>),
}

/// Optional fields of an event.
#[derive(Debug, Default, Clone)]
pub struct Detail {
    /// Who (user name, key id…).
    pub actor: Option<String>,
    /// Which tenant.
    pub tenant_id: Option<String>,
    /// Client address.
    pub ip: Option<IpAddr>,
    /// Free text, never a secret.
    pub detail: Option<String>,
}

impl AuditLog {
    /// Starts the writer thread.
    pub fn new(db: Db) -> AuditLog {
        let (tx, rx) = mpsc::channel::<Msg>();
        let writer = db.clone();
        let spawned = std::thread::Builder::new()
            .name("gatehouse-audit".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut batch = Vec::new();
                    let mut waiting = Vec::new();
                    let mut next = Some(first);
                    while let Some(msg) = next.take() {
                        match msg {
                            Msg::Event(e) => batch.push(e),
                            Msg::Flush(done) => waiting.push(done),
                        }
                        if batch.len() < 1_000 {
                            next = rx.try_recv().ok();
                        }
                    }
                    if !batch.is_empty() {
                        if let Err(e) =
                            writer.write_blocking(|tx| store::audit::insert_many(tx, &batch))
                        {
                            tracing::error!(error = %e, lost = batch.len(), "audit events not written");
                        }
                    }
                    for done in waiting {
                        let _ = done.send(());
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "audit writer thread did not start");
        }
        AuditLog {
            tx: std::sync::Arc::new(Mutex::new(tx)),
            db,
        }
    }

    /// Records an event (`outcome` is `success` or `failure`).
    pub fn record(&self, event: &str, success: bool, d: Detail) {
        let ev = AuditEvent {
            id: 0,
            at: store::now(),
            event: event.to_owned(),
            outcome: if success { "success" } else { "failure" }.to_owned(),
            actor: d.actor,
            tenant_id: d.tenant_id,
            ip: d.ip.map(|i| i.to_string()),
            detail: d.detail,
        };
        tracing::info!(target: "audit", event = %ev.event, outcome = %ev.outcome,
            actor = ev.actor.as_deref().unwrap_or("-"), ip = ev.ip.as_deref().unwrap_or("-"));
        if let Ok(tx) = self.tx.lock() {
            let _ = tx.send(Msg::Event(ev));
        }
    }

    /// Blocks until every event recorded so far is written (before a CLI command exits, and
    /// at server shutdown). Gives up after five seconds.
    pub fn flush(&self) {
        let (done_tx, done_rx) = mpsc::channel();
        let sent = self
            .tx
            .lock()
            .map(|tx| tx.send(Msg::Flush(done_tx)).is_ok())
            .unwrap_or(false);
        if sent {
            let _ = done_rx.recv_timeout(std::time::Duration::from_secs(5));
        }
    }

    /// The newest events first.
    pub async fn list(
        &self,
        tenant_id: Option<String>,
        limit: i64,
        before_id: Option<i64>,
    ) -> Result<Vec<AuditEvent>> {
        self.db
            .read(move |c| {
                store::audit::list(c, tenant_id.as_deref(), limit.clamp(1, 1_000), before_id)
            })
            .await
    }
}
