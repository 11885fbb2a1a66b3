//! SQL for the handshake sign-in: tenant keys, the sealed keys and revocation of handshake and
//! run sessions (made and looked up in [`super::sessions`]), secrets, runs and their events.
//! Every blob stored here is a public key or ciphertext; no key is ever in clear.

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::Result;

/// A tenant's handshake material.
#[derive(Debug, Clone)]
pub struct TenantKeys {
    /// The registered static X25519 public key, if any.
    pub static_public_key: Option<Vec<u8>>,
    /// The tenant data key sealed under the wrapping key, once created.
    pub wrapped_dek: Option<Vec<u8>>,
}

/// The handshake material of a tenant; `None` if the tenant does not exist.
pub fn tenant_keys(c: &Connection, tenant_id: &str) -> Result<Option<TenantKeys>> {
    Ok(c.query_row(
        "SELECT static_public_key, wrapped_dek FROM tenants WHERE id = ?1",
        [tenant_id],
        |r| {
            Ok(TenantKeys {
                static_public_key: r.get(0)?,
                wrapped_dek: r.get(1)?,
            })
        },
    )
    .optional()?)
}

/// Registers a static public key on a tenant that has none; returns whether it was set.
pub fn set_static_key_if_none(
    c: &Connection,
    tenant_id: &str,
    pk: &[u8],
    now: i64,
) -> Result<bool> {
    Ok(c.execute(
        "UPDATE tenants SET static_public_key = ?2, key_updated_at = ?3
         WHERE id = ?1 AND static_public_key IS NULL",
        params![tenant_id, pk, now],
    )? == 1)
}

/// Stores the wrapped DEK of a tenant that has none yet; returns whether it was set.
pub fn set_wrapped_dek_if_none(c: &Connection, tenant_id: &str, wrapped: &[u8]) -> Result<bool> {
    Ok(c.execute(
        "UPDATE tenants SET wrapped_dek = ?2 WHERE id = ?1 AND wrapped_dek IS NULL",
        params![tenant_id, wrapped],
    )? == 1)
}

/// Replaces the static key and the wrapped DEK together (key rotation).
pub fn rotate_tenant_key(
    c: &Connection,
    tenant_id: &str,
    pk: &[u8],
    wrapped: &[u8],
    now: i64,
) -> Result<bool> {
    Ok(c.execute(
        "UPDATE tenants SET static_public_key = ?2, wrapped_dek = ?3, key_updated_at = ?4
         WHERE id = ?1",
        params![tenant_id, pk, wrapped, now],
    )? == 1)
}

/// Revokes every key-carrying session of a tenant except one.
pub fn revoke_tenant_sessions(
    c: &Connection,
    tenant_id: &str,
    except: i64,
    now: i64,
) -> Result<usize> {
    Ok(c.execute(
        "UPDATE sessions SET revoked_at = ?3
         WHERE tenant_id = ?1 AND id <> ?2 AND kind IN ('handshake', 'run') AND revoked_at IS NULL",
        params![tenant_id, except, now],
    )?)
}

/// Which of `ids` are sessions that are still live.
pub fn live_session_ids(c: &Connection, ids: &[i64], now: i64) -> Result<Vec<i64>> {
    let mut st = c.prepare_cached(
        "SELECT 1 FROM sessions WHERE id = ?1 AND revoked_at IS NULL
         AND expires_at > ?2 AND idle_expires_at > ?2",
    )?;
    let mut live = Vec::new();
    for id in ids {
        if st.exists(params![id, now])? {
            live.push(*id);
        }
    }
    Ok(live)
}

/// Replaces a session's sealed key (after a key rotation).
pub fn reseal_session(c: &Connection, id: i64, sealed: &[u8]) -> Result<()> {
    c.execute(
        "UPDATE sessions SET sealed_key = ?2 WHERE id = ?1",
        params![id, sealed],
    )?;
    Ok(())
}

/// A secret's listing entry.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct SecretMeta {
    /// The name.
    pub name: String,
    /// Creation time (Unix seconds).
    pub created_at: i64,
    /// Last change (Unix seconds).
    pub updated_at: i64,
}

/// Inserts or replaces a secret's ciphertext.
pub fn upsert_secret(
    c: &Connection,
    tenant_id: &str,
    mode: &str,
    name: &str,
    ciphertext: &[u8],
    now: i64,
) -> Result<SecretMeta> {
    Ok(c.query_row(
        "INSERT INTO secrets (tenant_id, mode, name, ciphertext, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)
         ON CONFLICT (tenant_id, mode, name) DO UPDATE
             SET ciphertext = excluded.ciphertext, updated_at = excluded.updated_at
         RETURNING name, created_at, updated_at",
        params![tenant_id, mode, name, ciphertext, now],
        |r| {
            Ok(SecretMeta {
                name: r.get(0)?,
                created_at: r.get(1)?,
                updated_at: r.get(2)?,
            })
        },
    )?)
}

/// A secret's ciphertext and times.
pub fn get_secret(
    c: &Connection,
    tenant_id: &str,
    mode: &str,
    name: &str,
) -> Result<Option<(SecretMeta, Vec<u8>)>> {
    Ok(c.query_row(
        "SELECT name, created_at, updated_at, ciphertext FROM secrets
         WHERE tenant_id = ?1 AND mode = ?2 AND name = ?3",
        params![tenant_id, mode, name],
        |r| {
            Ok((
                SecretMeta {
                    name: r.get(0)?,
                    created_at: r.get(1)?,
                    updated_at: r.get(2)?,
                },
                r.get(3)?,
            ))
        },
    )
    .optional()?)
}

/// Deletes a secret; returns whether it existed.
pub fn delete_secret(c: &Connection, tenant_id: &str, mode: &str, name: &str) -> Result<bool> {
    Ok(c.execute(
        "DELETE FROM secrets WHERE tenant_id = ?1 AND mode = ?2 AND name = ?3",
        params![tenant_id, mode, name],
    )? == 1)
}

/// Names and times of a tenant's secrets in one mode.
pub fn list_secrets(c: &Connection, tenant_id: &str, mode: &str) -> Result<Vec<SecretMeta>> {
    let mut st = c.prepare(
        "SELECT name, created_at, updated_at FROM secrets WHERE tenant_id = ?1 AND mode = ?2
         ORDER BY name",
    )?;
    let rows = st.query_map(params![tenant_id, mode], |r| {
        Ok(SecretMeta {
            name: r.get(0)?,
            created_at: r.get(1)?,
            updated_at: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// A stored run.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct RunRow {
    /// `run_` + 16 hex characters.
    pub id: String,
    /// The tenant.
    #[serde(skip)]
    pub tenant_id: String,
    /// `live` or `test`.
    #[serde(skip)]
    pub mode: String,
    /// The workflow name.
    pub workflow: String,
    /// Creation time (Unix seconds).
    pub created_at: i64,
    /// When the run token expires (Unix seconds).
    pub expires_at: i64,
}

/// Inserts a run.
#[allow(clippy::too_many_arguments)]
pub fn insert_run(
    c: &Connection,
    id: &str,
    tenant_id: &str,
    mode: &str,
    workflow: &str,
    session_id: i64,
    user_id: i64,
    now: i64,
    expires_at: i64,
) -> Result<()> {
    c.execute(
        "INSERT INTO runs (id, tenant_id, mode, workflow, session_id, created_by, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![id, tenant_id, mode, workflow, session_id, user_id, now, expires_at],
    )?;
    Ok(())
}

const RUN_COLUMNS: &str = "id, tenant_id, mode, workflow, created_at, expires_at";

fn run_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        mode: r.get(2)?,
        workflow: r.get(3)?,
        created_at: r.get(4)?,
        expires_at: r.get(5)?,
    })
}

/// The run a run session belongs to.
pub fn run_by_session(c: &Connection, session_id: i64) -> Result<Option<RunRow>> {
    Ok(c.query_row(
        &format!("SELECT {RUN_COLUMNS} FROM runs WHERE session_id = ?1"),
        [session_id],
        run_from_row,
    )
    .optional()?)
}

/// A run by id.
pub fn get_run(c: &Connection, id: &str) -> Result<Option<RunRow>> {
    Ok(c.query_row(
        &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"),
        [id],
        run_from_row,
    )
    .optional()?)
}

/// A tenant's runs in one mode, newest first.
pub fn list_runs(c: &Connection, tenant_id: &str, mode: &str) -> Result<Vec<RunRow>> {
    let mut st = c.prepare(&format!(
        "SELECT {RUN_COLUMNS} FROM runs WHERE tenant_id = ?1 AND mode = ?2
         ORDER BY created_at DESC, id LIMIT 500"
    ))?;
    let rows = st.query_map(params![tenant_id, mode], run_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Stores an encrypted callback; returns its id.
pub fn insert_event(
    c: &Connection,
    run_id: &str,
    content_type: Option<&str>,
    ciphertext: &[u8],
    now: i64,
) -> Result<i64> {
    c.execute(
        "INSERT INTO run_events (run_id, received_at, content_type, ciphertext)
         VALUES (?1, ?2, ?3, ?4)",
        params![run_id, now, content_type, ciphertext],
    )?;
    Ok(c.last_insert_rowid())
}

/// A stored callback: id, time, content type, ciphertext.
pub type EventRow = (i64, i64, Option<String>, Vec<u8>);

/// The callbacks of a run, oldest first.
pub fn list_events(c: &Connection, run_id: &str) -> Result<Vec<EventRow>> {
    let mut st = c.prepare(
        "SELECT id, received_at, content_type, ciphertext FROM run_events WHERE run_id = ?1
         ORDER BY id LIMIT 1000",
    )?;
    let rows = st.query_map([run_id], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}
