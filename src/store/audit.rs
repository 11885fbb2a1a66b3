//! SQL for the append-only `audit_events` table.

use rusqlite::{params, Connection};

use crate::error::Result;

/// One security event.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AuditEvent {
    /// Row id.
    #[serde(default)]
    pub id: i64,
    /// When (Unix seconds).
    pub at: i64,
    /// What happened, e.g. `login`, `key.created`.
    pub event: String,
    /// `success` or `failure`.
    pub outcome: String,
    /// Who did it (user name, key id…), if known.
    pub actor: Option<String>,
    /// Tenant concerned, if any.
    pub tenant_id: Option<String>,
    /// Client address.
    pub ip: Option<String>,
    /// Extra detail (never a secret).
    pub detail: Option<String>,
}

/// Appends events.
pub fn insert_many(c: &Connection, events: &[AuditEvent]) -> Result<()> {
    let mut st = c.prepare_cached(
        "INSERT INTO audit_events (at, event, outcome, actor, tenant_id, ip, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for e in events {
        st.execute(params![
            e.at,
            e.event,
            e.outcome,
            e.actor,
            e.tenant_id,
            e.ip,
            e.detail
        ])?;
    }
    Ok(())
}

/// The newest events first, optionally only one tenant's.
pub fn list(
    c: &Connection,
    tenant_id: Option<&str>,
    limit: i64,
    before_id: Option<i64>,
) -> Result<Vec<AuditEvent>> {
    let mut st = c.prepare(
        "SELECT id, at, event, outcome, actor, tenant_id, ip, detail FROM audit_events
         WHERE (?1 IS NULL OR tenant_id = ?1) AND (?2 IS NULL OR id < ?2)
         ORDER BY id DESC LIMIT ?3",
    )?;
    let rows = st.query_map(params![tenant_id, before_id, limit], |r| {
        Ok(AuditEvent {
            id: r.get(0)?,
            at: r.get(1)?,
            event: r.get(2)?,
            outcome: r.get(3)?,
            actor: r.get(4)?,
            tenant_id: r.get(5)?,
            ip: r.get(6)?,
            detail: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}
