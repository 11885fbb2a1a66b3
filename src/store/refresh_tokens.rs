//! SQL for `refresh_families` and `refresh_tokens`: rotation, reuse detection, revocation.

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::Result;

/// Starts a family.
pub fn insert_family(
    c: &Connection,
    id: &str,
    user_id: i64,
    now: i64,
    expires_at: i64,
) -> Result<()> {
    c.execute(
        "INSERT INTO refresh_families (id, user_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
        params![id, user_id, now, expires_at],
    )?;
    Ok(())
}

/// Records a refresh token and extends its family's expiry to the token's.
pub fn insert_token(
    c: &Connection,
    jti: &str,
    family_id: &str,
    user_id: i64,
    now: i64,
    expires_at: i64,
) -> Result<()> {
    c.execute(
        "INSERT INTO refresh_tokens (jti, family_id, user_id, issued_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![jti, family_id, user_id, now, expires_at],
    )?;
    c.execute(
        "UPDATE refresh_families SET expires_at = max(expires_at, ?2) WHERE id = ?1",
        params![family_id, expires_at],
    )?;
    Ok(())
}

/// What the store knows about a presented refresh token.
#[derive(Clone)]
pub struct TokenState {
    /// Its family.
    pub family_id: String,
    /// Its user.
    pub user_id: i64,
    /// When it was spent (rotated), if it was.
    pub spent_at: Option<i64>,
    /// Its successor's jti.
    pub replaced_by: Option<String>,
    /// The successor pair, sealed (AD = this jti).
    pub sealed_successor: Option<Vec<u8>>,
    /// Whether the successor itself has been spent already.
    pub successor_spent: bool,
    /// When the family was revoked, if it was.
    pub family_revoked_at: Option<i64>,
    /// The user is disabled (or gone).
    pub user_disabled: bool,
}

impl std::fmt::Debug for TokenState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenState")
            .field("family_id", &self.family_id)
            .field("user_id", &self.user_id)
            .field("spent_at", &self.spent_at)
            .finish_non_exhaustive()
    }
}

/// The state of a refresh token by jti.
pub fn state(c: &Connection, jti: &str) -> Result<Option<TokenState>> {
    Ok(c.query_row(
        "SELECT t.family_id, t.user_id, t.spent_at, t.replaced_by, t.sealed_successor,
                s.spent_at IS NOT NULL, f.revoked_at, COALESCE(u.disabled, 1)
         FROM refresh_tokens t
         JOIN refresh_families f ON f.id = t.family_id
         LEFT JOIN users u ON u.id = t.user_id
         LEFT JOIN refresh_tokens s ON s.jti = t.replaced_by
         WHERE t.jti = ?1",
        [jti],
        |r| {
            Ok(TokenState {
                family_id: r.get(0)?,
                user_id: r.get(1)?,
                spent_at: r.get(2)?,
                replaced_by: r.get(3)?,
                sealed_successor: r.get(4)?,
                successor_spent: r.get(5)?,
                family_revoked_at: r.get(6)?,
                user_disabled: r.get(7)?,
            })
        },
    )
    .optional()?)
}

/// Spends a token if it is unspent; `false` means someone else spent it first.
pub fn spend(c: &Connection, jti: &str, now: i64) -> Result<bool> {
    Ok(c.execute(
        "UPDATE refresh_tokens SET spent_at = ?2 WHERE jti = ?1 AND spent_at IS NULL",
        params![jti, now],
    )? == 1)
}

/// Records a spent token's successor (jti and the sealed pair), and wipes the sealed pair its
/// own predecessor kept: once a successor is used, the grace copy is no longer needed.
pub fn set_successor(c: &Connection, jti: &str, successor: &str, sealed: &[u8]) -> Result<()> {
    c.execute(
        "UPDATE refresh_tokens SET replaced_by = ?2, sealed_successor = ?3 WHERE jti = ?1",
        params![jti, successor, sealed],
    )?;
    c.execute(
        "UPDATE refresh_tokens SET sealed_successor = NULL WHERE replaced_by = ?1",
        [jti],
    )?;
    Ok(())
}

/// Revokes a family (idempotent); every grace copy in it is wiped.
pub fn revoke_family(c: &Connection, family_id: &str, now: i64, reason: &str) -> Result<bool> {
    let n = c.execute(
        "UPDATE refresh_families SET revoked_at = ?2, revoke_reason = ?3
         WHERE id = ?1 AND revoked_at IS NULL",
        params![family_id, now, reason],
    )?;
    c.execute(
        "UPDATE refresh_tokens SET sealed_successor = NULL WHERE family_id = ?1",
        [family_id],
    )?;
    Ok(n == 1)
}

/// Revokes every live family of a user; returns how many.
pub fn revoke_all_for_user(c: &Connection, user_id: i64, now: i64, reason: &str) -> Result<usize> {
    let n = c.execute(
        "UPDATE refresh_families SET revoked_at = ?2, revoke_reason = ?3
         WHERE user_id = ?1 AND revoked_at IS NULL AND expires_at > ?2",
        params![user_id, now, reason],
    )?;
    c.execute(
        "UPDATE refresh_tokens SET sealed_successor = NULL WHERE user_id = ?1",
        [user_id],
    )?;
    Ok(n)
}

/// Whether a family is live (exists, not revoked, not expired) and its user enabled.
pub fn family_live(c: &Connection, family_id: &str, user_id: i64, now: i64) -> Result<bool> {
    Ok(c.query_row(
        "SELECT 1 FROM refresh_families f JOIN users u ON u.id = f.user_id
         WHERE f.id = ?1 AND f.user_id = ?2 AND f.revoked_at IS NULL AND f.expires_at > ?3
           AND u.disabled = 0",
        params![family_id, user_id, now],
        |_| Ok(()),
    )
    .optional()?
    .is_some())
}

/// Number of live families of a user.
pub fn count_live_for_user(c: &Connection, user_id: i64, now: i64) -> Result<i64> {
    Ok(c.query_row(
        "SELECT count(*) FROM refresh_families WHERE user_id = ?1 AND revoked_at IS NULL
         AND expires_at > ?2",
        params![user_id, now],
        |r| r.get(0),
    )?)
}
