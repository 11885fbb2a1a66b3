//! SQL for `signing_keys`: Ed25519 JWT keys, the private part sealed.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::error::Result;

/// A stored signing key. `sealed_seed` opens only with the pepper-derived key.
#[derive(Clone)]
pub struct KeyRow {
    /// Key id (RFC 7638 thumbprint).
    pub kid: String,
    /// Raw 32-byte public key.
    pub public_key: Vec<u8>,
    /// The seed, sealed (AD = kid).
    pub sealed_seed: Vec<u8>,
    /// Creation time.
    pub created_at: i64,
    /// When a newer key took over signing.
    pub superseded_at: Option<i64>,
    /// When it stops being published and accepted.
    pub retire_at: Option<i64>,
}

impl std::fmt::Debug for KeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyRow({})", self.kid)
    }
}

const COLUMNS: &str = "kid, public_key, sealed_seed, created_at, superseded_at, retire_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<KeyRow> {
    Ok(KeyRow {
        kid: r.get(0)?,
        public_key: r.get(1)?,
        sealed_seed: r.get(2)?,
        created_at: r.get(3)?,
        superseded_at: r.get(4)?,
        retire_at: r.get(5)?,
    })
}

/// Stores a new key (not yet the active one until older keys are superseded).
pub fn insert(c: &Connection, kid: &str, public: &[u8], sealed: &[u8], now: i64) -> Result<()> {
    c.execute(
        "INSERT INTO signing_keys (kid, public_key, sealed_seed, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![kid, public, sealed, now],
    )?;
    Ok(())
}

/// The key that signs: the newest one not superseded.
pub fn active(c: &Connection) -> Result<Option<KeyRow>> {
    Ok(c.query_row(
        &format!(
            "SELECT {COLUMNS} FROM signing_keys WHERE superseded_at IS NULL
             ORDER BY created_at DESC, rowid DESC LIMIT 1"
        ),
        [],
        from_row,
    )
    .optional()?)
}

/// Keys still published and accepted at `now`, newest first.
pub fn live(c: &Connection, now: i64) -> Result<Vec<KeyRow>> {
    let mut st = c.prepare(&format!(
        "SELECT {COLUMNS} FROM signing_keys WHERE retire_at IS NULL OR retire_at > ?1
         ORDER BY created_at DESC, rowid DESC"
    ))?;
    let rows = st.query_map([now], from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Every stored key, newest first (for `signing-key list`).
pub fn all(c: &Connection) -> Result<Vec<KeyRow>> {
    let mut st = c.prepare(&format!(
        "SELECT {COLUMNS} FROM signing_keys ORDER BY created_at DESC, rowid DESC"
    ))?;
    let rows = st.query_map([], from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Marks every other active key superseded, retiring at `retire_at`.
pub fn supersede_others(c: &Connection, kid: &str, now: i64, retire_at: i64) -> Result<usize> {
    Ok(c.execute(
        "UPDATE signing_keys SET superseded_at = ?2, retire_at = ?3
         WHERE kid <> ?1 AND superseded_at IS NULL",
        params![kid, now, retire_at],
    )?)
}

/// Retires every other key at once (a compromised key: its tokens stop working now).
pub fn retire_others_now(c: &Connection, kid: &str, now: i64) -> Result<usize> {
    Ok(c.execute(
        "UPDATE signing_keys SET superseded_at = COALESCE(superseded_at, ?2), retire_at = ?2
         WHERE kid <> ?1 AND (retire_at IS NULL OR retire_at > ?2)",
        params![kid, now],
    )?)
}
