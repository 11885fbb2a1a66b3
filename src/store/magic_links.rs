//! SQL for `magic_links`: single-use sign-in links, stored only as keyed hashes.

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::Result;

/// A link that was just consumed.
#[derive(Clone, Debug)]
pub struct Consumed {
    /// The address the link was sent to.
    pub email: String,
    /// The user, if the address belonged to one when the link was made.
    pub user_id: Option<i64>,
}

/// Voids every unused link of the address, then stores a new one.
pub fn replace(
    c: &Connection,
    token_hash: &[u8],
    email: &str,
    user_id: Option<i64>,
    ip: Option<&str>,
    now: i64,
    expires_at: i64,
) -> Result<()> {
    c.execute(
        "UPDATE magic_links SET used_at = ?2 WHERE email = ?1 AND used_at IS NULL",
        params![email, now],
    )?;
    c.execute(
        "INSERT INTO magic_links (token_hash, email, user_id, ip, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![token_hash, email, user_id, ip, now, expires_at],
    )?;
    Ok(())
}

/// Marks a live link used and returns it; `None` if unknown, used, voided or expired.
pub fn consume(c: &Connection, token_hash: &[u8], now: i64) -> Result<Option<Consumed>> {
    Ok(c.query_row(
        "UPDATE magic_links SET used_at = ?2
         WHERE token_hash = ?1 AND used_at IS NULL AND expires_at > ?2
         RETURNING email, user_id",
        params![token_hash, now],
        |r| {
            Ok(Consumed {
                email: r.get(0)?,
                user_id: r.get(1)?,
            })
        },
    )
    .optional()?)
}

/// Whether a link is still usable (for the landing page; does not consume).
pub fn is_live(c: &Connection, token_hash: &[u8], now: i64) -> Result<bool> {
    Ok(c.query_row(
        "SELECT 1 FROM magic_links WHERE token_hash = ?1 AND used_at IS NULL AND expires_at > ?2",
        params![token_hash, now],
        |_| Ok(()),
    )
    .optional()?
    .is_some())
}

/// Voids every unused link of a user (their credentials are being ended).
pub fn void_for_user(c: &Connection, user_id: i64, now: i64) -> Result<usize> {
    Ok(c.execute(
        "UPDATE magic_links SET used_at = ?2
         WHERE used_at IS NULL AND (user_id = ?1 OR email = (SELECT email FROM users WHERE id = ?1))",
        params![user_id, now],
    )?)
}
