//! SQL for `portal_tokens`: customer tokens of a brand, stored only as keyed hashes.

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::Result;

/// A stored portal token with its brand's name.
#[derive(Clone, Debug)]
pub struct PortalRow {
    /// Row id.
    pub id: i64,
    /// The brand.
    pub brand_id: String,
    /// The brand's name.
    pub brand_name: String,
    /// The brand's tenant.
    pub tenant_id: String,
    /// `live` or `test`.
    pub mode: String,
    /// The customer's address.
    pub customer_email: String,
    /// The customer's name.
    pub customer_name: Option<String>,
    /// Expiry.
    pub expires_at: i64,
    /// Revocation time.
    pub revoked_at: Option<i64>,
}

/// What a new portal token row holds.
#[derive(Debug)]
pub struct NewPortal<'a> {
    /// Keyed hash of the token.
    pub token_hash: &'a [u8],
    /// The brand.
    pub brand_id: &'a str,
    /// Its tenant.
    pub tenant_id: &'a str,
    /// `live` or `test`.
    pub mode: &'a str,
    /// Customer address.
    pub customer_email: &'a str,
    /// Customer name.
    pub customer_name: Option<&'a str>,
    /// Who issued it (key id or user).
    pub issued_by: Option<&'a str>,
    /// Now.
    pub now: i64,
    /// Expiry.
    pub expires_at: i64,
}

/// Stores a token; returns its id.
pub fn insert(c: &Connection, p: &NewPortal<'_>) -> Result<i64> {
    c.execute(
        "INSERT INTO portal_tokens (token_hash, brand_id, tenant_id, mode, customer_email,
             customer_name, issued_by, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            p.token_hash,
            p.brand_id,
            p.tenant_id,
            p.mode,
            p.customer_email,
            p.customer_name,
            p.issued_by,
            p.now,
            p.expires_at
        ],
    )?;
    Ok(c.last_insert_rowid())
}

const COLUMNS: &str = "p.id, p.brand_id, b.name, p.tenant_id, p.mode, p.customer_email, \
     p.customer_name, p.expires_at, p.revoked_at";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PortalRow> {
    Ok(PortalRow {
        id: r.get(0)?,
        brand_id: r.get(1)?,
        brand_name: r.get(2)?,
        tenant_id: r.get(3)?,
        mode: r.get(4)?,
        customer_email: r.get(5)?,
        customer_name: r.get(6)?,
        expires_at: r.get(7)?,
        revoked_at: r.get(8)?,
    })
}

/// A token by hash, whatever its state.
pub fn by_hash(c: &Connection, hash: &[u8]) -> Result<Option<PortalRow>> {
    Ok(c.query_row(
        &format!(
            "SELECT {COLUMNS} FROM portal_tokens p JOIN brands b ON b.id = p.brand_id
             WHERE p.token_hash = ?1"
        ),
        [hash],
        from_row,
    )
    .optional()?)
}

/// A token by id.
pub fn get(c: &Connection, id: i64) -> Result<Option<PortalRow>> {
    Ok(c.query_row(
        &format!(
            "SELECT {COLUMNS} FROM portal_tokens p JOIN brands b ON b.id = p.brand_id
             WHERE p.id = ?1"
        ),
        [id],
        from_row,
    )
    .optional()?)
}
