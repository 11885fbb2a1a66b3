//! SQL for `brands`: workspaces inside a tenant.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::error::{Error, Result};

/// A stored brand.
#[derive(Clone, Debug)]
pub struct BrandRow {
    /// `brd_` + 16 hex characters.
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Display name.
    pub name: String,
    /// Unique within the tenant.
    pub slug: String,
    /// Creation time.
    pub created_at: i64,
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<BrandRow> {
    Ok(BrandRow {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        name: r.get(2)?,
        slug: r.get(3)?,
        created_at: r.get(4)?,
    })
}

/// Inserts a brand; a taken slug in the tenant is a 409.
pub fn insert(c: &Connection, b: &BrandRow) -> Result<()> {
    match c.execute(
        "INSERT INTO brands (id, tenant_id, name, slug, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![b.id, b.tenant_id, b.name, b.slug, b.created_at],
    ) {
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(f, _))
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Err(Error::Conflict(
                "A brand with that name already exists in this organization".into(),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// The brands of a tenant.
pub fn list(c: &Connection, tenant_id: &str) -> Result<Vec<BrandRow>> {
    let mut st = c.prepare(
        "SELECT id, tenant_id, name, slug, created_at FROM brands WHERE tenant_id = ?1
         ORDER BY created_at, id",
    )?;
    let rows = st.query_map([tenant_id], from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// A brand by id.
pub fn get(c: &Connection, id: &str) -> Result<Option<BrandRow>> {
    Ok(c.query_row(
        "SELECT id, tenant_id, name, slug, created_at FROM brands WHERE id = ?1",
        [id],
        from_row,
    )
    .optional()?)
}
