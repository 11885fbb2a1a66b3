//! SQL for `tenants` and `memberships`.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::error::{Error, Result};

/// A stored tenant (an *organization* in the tickets contract).
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct TenantRow {
    /// `ten_` + 16 hex characters.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Unique URL-safe name.
    pub slug: String,
    /// Creation time (Unix seconds).
    pub created_at: i64,
}

/// A membership role.
pub const ROLES: [&str; 3] = ["owner", "admin", "member"];

fn from_row(r: &Row<'_>) -> rusqlite::Result<TenantRow> {
    Ok(TenantRow {
        id: r.get(0)?,
        name: r.get(1)?,
        slug: r.get(2)?,
        created_at: r.get(3)?,
    })
}

/// Inserts a tenant; a taken slug is a 409.
pub fn insert(c: &Connection, id: &str, name: &str, slug: &str, now: i64) -> Result<TenantRow> {
    match c.execute(
        "INSERT INTO tenants (id, name, slug, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![id, name, slug, now],
    ) {
        Ok(_) => {}
        Err(rusqlite::Error::SqliteFailure(f, _))
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            return Err(Error::Conflict(
                "A tenant with that slug already exists".into(),
            ))
        }
        Err(e) => return Err(e.into()),
    }
    get(c, id)?.ok_or_else(|| Error::internal("inserted tenant vanished"))
}

/// A tenant by id.
pub fn get(c: &Connection, id: &str) -> Result<Option<TenantRow>> {
    Ok(c.query_row(
        "SELECT id, name, slug, created_at FROM tenants WHERE id = ?1",
        [id],
        from_row,
    )
    .optional()?)
}

/// A tenant by slug.
pub fn by_slug(c: &Connection, slug: &str) -> Result<Option<TenantRow>> {
    Ok(c.query_row(
        "SELECT id, name, slug, created_at FROM tenants WHERE slug = ?1",
        [slug],
        from_row,
    )
    .optional()?)
}

/// All tenants.
pub fn list(c: &Connection) -> Result<Vec<TenantRow>> {
    let mut st =
        c.prepare("SELECT id, name, slug, created_at FROM tenants ORDER BY created_at, id")?;
    let rows = st.query_map([], from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Adds or changes a membership.
pub fn set_membership(
    c: &Connection,
    user_id: i64,
    tenant_id: &str,
    role: &str,
    now: i64,
) -> Result<()> {
    c.execute(
        "INSERT INTO memberships (user_id, tenant_id, role, created_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (user_id, tenant_id) DO UPDATE SET role = excluded.role",
        params![user_id, tenant_id, role, now],
    )?;
    Ok(())
}

/// The tenants a user belongs to, with the role.
pub fn memberships_of(c: &Connection, user_id: i64) -> Result<Vec<(TenantRow, String)>> {
    let mut st = c.prepare(
        "SELECT t.id, t.name, t.slug, t.created_at, m.role FROM memberships m
         JOIN tenants t ON t.id = m.tenant_id WHERE m.user_id = ?1 ORDER BY m.created_at, m.rowid",
    )?;
    let rows = st.query_map([user_id], |r| Ok((from_row(r)?, r.get::<_, String>(4)?)))?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// A user's role in a tenant, if a member.
pub fn role_of(c: &Connection, user_id: i64, tenant_id: &str) -> Result<Option<String>> {
    Ok(c.query_row(
        "SELECT role FROM memberships WHERE user_id = ?1 AND tenant_id = ?2",
        params![user_id, tenant_id],
        |r| r.get(0),
    )
    .optional()?)
}
