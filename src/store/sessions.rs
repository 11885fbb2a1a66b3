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
