//! SQL for the `sessions` table: browser, handshake and run sessions in one place.

use rusqlite::{params, Connection};

use crate::error::Result;

/// Ends every live session of a user, except optionally one (the caller's own).
/// Returns how many were ended.
pub fn revoke_all_for_user(
    c: &Connection,
    user_id: i64,
    except_id: Option<i64>,
    now: i64,
) -> Result<usize> {
    Ok(c.execute(
        "UPDATE sessions SET revoked_at = ?3
         WHERE user_id = ?1 AND revoked_at IS NULL AND (?2 IS NULL OR id <> ?2)",
        params![user_id, except_id, now],
    )?)
}

/// Number of sessions of a user that are neither revoked nor expired.
pub fn count_live_for_user(c: &Connection, user_id: i64, now: i64) -> Result<i64> {
    Ok(c.query_row(
        "SELECT count(*) FROM sessions WHERE user_id = ?1 AND revoked_at IS NULL
         AND expires_at > ?2 AND idle_expires_at > ?2",
        params![user_id, now],
        |r| r.get(0),
    )?)
}

/// A stored session joined with what a principal needs from its user.
#[derive(Clone, Debug)]
pub struct SessionRow {
    /// Row id.
    pub id: i64,
    /// `browser`, `handshake` or `run`.
    pub kind: String,
    /// The user, if any.
    pub user_id: Option<i64>,
    /// The active tenant (organization).
    pub tenant_id: Option<String>,
    /// `live` or `test`.
    pub mode: String,
    /// Device (User-Agent) at sign-in.
    pub user_agent: Option<String>,
    /// Client address at sign-in.
    pub ip: Option<String>,
    /// Creation time.
    pub created_at: i64,
    /// Last time the session was used (coarse).
    pub last_seen_at: i64,
    /// Idle expiry.
    pub idle_expires_at: i64,
    /// Absolute expiry.
    pub expires_at: i64,
    /// Revocation time.
    pub revoked_at: Option<i64>,
}

const SESSION_COLUMNS: &str = "id, kind, user_id, tenant_id, mode, user_agent, ip, created_at, \
     last_seen_at, idle_expires_at, expires_at, revoked_at";

fn session_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        id: r.get(0)?,
        kind: r.get(1)?,
        user_id: r.get(2)?,
        tenant_id: r.get(3)?,
        mode: r.get(4)?,
        user_agent: r.get(5)?,
        ip: r.get(6)?,
        created_at: r.get(7)?,
        last_seen_at: r.get(8)?,
        idle_expires_at: r.get(9)?,
        expires_at: r.get(10)?,
        revoked_at: r.get(11)?,
    })
}

/// What a new session row holds.
#[derive(Debug)]
pub struct NewSession<'a> {
    /// Keyed hash of the token.
    pub token_hash: &'a [u8],
    /// `browser`, `handshake` or `run`.
    pub kind: &'a str,
    /// The user.
    pub user_id: Option<i64>,
    /// The active tenant.
    pub tenant_id: Option<&'a str>,
    /// `live` or `test`.
    pub mode: &'a str,
    /// Handshake and run sessions: the wrapping key sealed under a key derived from the token.
    pub sealed_key: Option<&'a [u8]>,
    /// Device.
    pub user_agent: Option<&'a str>,
    /// Address.
    pub ip: Option<&'a str>,
    /// Now.
    pub now: i64,
    /// Idle expiry.
    pub idle_expires_at: i64,
    /// Absolute expiry.
    pub expires_at: i64,
}

/// Inserts a session; returns its id.
pub fn insert(c: &Connection, s: &NewSession<'_>) -> Result<i64> {
    c.execute(
        "INSERT INTO sessions (token_hash, kind, user_id, tenant_id, mode, sealed_key, user_agent,
             ip, created_at, last_seen_at, idle_expires_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10, ?11)",
        params![
            s.token_hash,
            s.kind,
            s.user_id,
            s.tenant_id,
            s.mode,
            s.sealed_key,
            s.user_agent,
            s.ip,
            s.now,
            s.idle_expires_at,
            s.expires_at
        ],
    )?;
    Ok(c.last_insert_rowid())
}

/// A session by token hash, whatever its state.
pub fn by_hash(c: &Connection, hash: &[u8]) -> Result<Option<SessionRow>> {
    use rusqlite::OptionalExtension;
    Ok(c.query_row(
        &format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE token_hash = ?1"),
        [hash],
        session_from_row,
    )
    .optional()?)
}

/// A session by id.
pub fn get(c: &Connection, id: i64) -> Result<Option<SessionRow>> {
    use rusqlite::OptionalExtension;
    Ok(c.query_row(
        &format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?1"),
        [id],
        session_from_row,
    )
    .optional()?)
}

/// The live sessions of a user of one kind, newest first.
pub fn live_for_user(
    c: &Connection,
    user_id: i64,
    kind: &str,
    now: i64,
) -> Result<Vec<SessionRow>> {
    let mut st = c.prepare(&format!(
        "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = ?1 AND kind = ?2
         AND revoked_at IS NULL AND expires_at > ?3 AND idle_expires_at > ?3
         ORDER BY last_seen_at DESC, id DESC"
    ))?;
    let rows = st.query_map(params![user_id, kind, now], session_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Records use: last seen now, idle expiry pushed out (never past the absolute expiry).
pub fn touch(c: &Connection, id: i64, now: i64, idle_secs: i64) -> Result<Option<i64>> {
    use rusqlite::OptionalExtension;
    Ok(c.query_row(
        "UPDATE sessions SET last_seen_at = ?2, idle_expires_at = min(expires_at, ?2 + ?3)
         WHERE id = ?1 AND revoked_at IS NULL AND expires_at > ?2 AND idle_expires_at > ?2
         RETURNING idle_expires_at",
        params![id, now, idle_secs],
        |r| r.get(0),
    )
    .optional()?)
}

/// Revokes one session of a user; false if there is no such live session.
pub fn revoke(c: &Connection, id: i64, user_id: Option<i64>, now: i64) -> Result<bool> {
    Ok(c.execute(
        "UPDATE sessions SET revoked_at = ?3
         WHERE id = ?1 AND (?2 IS NULL OR user_id = ?2) AND revoked_at IS NULL",
        params![id, user_id, now],
    )? == 1)
}

/// Changes a session's active tenant.
pub fn set_tenant(c: &Connection, id: i64, tenant_id: &str) -> Result<bool> {
    Ok(c.execute(
        "UPDATE sessions SET tenant_id = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        params![id, tenant_id],
    )? == 1)
}
