//! SQL for the `users` table.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::error::{Error, Result};

/// A stored user (the password hash stays in the store layer's hands only where needed).
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct UserRow {
    /// Numeric id.
    pub id: i64,
    /// Unique user name.
    pub username: String,
    /// Unique e-mail address, if any.
    pub email: Option<String>,
    /// Administrators may do everything.
    pub is_admin: bool,
    /// Extra permissions, e.g. `users.view`.
    pub permissions: Vec<String>,
    /// A disabled user cannot sign in and their credentials stop working.
    pub disabled: bool,
    /// Creation time (Unix seconds).
    pub created_at: i64,
    /// Last successful sign-in (Unix seconds).
    pub last_login_at: Option<i64>,
}

const COLUMNS: &str =
    "id, username, email, is_admin, permissions, disabled, created_at, last_login_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<UserRow> {
    let perms: String = r.get(4)?;
    Ok(UserRow {
        id: r.get(0)?,
        username: r.get(1)?,
        email: r.get(2)?,
        is_admin: r.get(3)?,
        permissions: serde_json::from_str(&perms).unwrap_or_default(),
        disabled: r.get(5)?,
        created_at: r.get(6)?,
        last_login_at: r.get(7)?,
    })
}

/// The stored form of a permission list: JSON, each permission once, in the order given.
fn permissions_json(permissions: &[String]) -> Result<String> {
    let mut once: Vec<&String> = Vec::with_capacity(permissions.len());
    for p in permissions {
        if !once.contains(&p) {
            once.push(p);
        }
    }
    serde_json::to_string(&once).map_err(Error::internal)
}

/// Inserts a user; a taken username or e-mail is a 409.
pub fn insert(
    c: &Connection,
    username: &str,
    email: Option<&str>,
    password_hash: Option<&str>,
    is_admin: bool,
    permissions: &[String],
    now: i64,
) -> Result<UserRow> {
    let perms = permissions_json(permissions)?;
    let res = c.execute(
        "INSERT INTO users (username, email, password_hash, is_admin, permissions, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        params![username, email, password_hash, is_admin, perms, now],
    );
    match res {
        Ok(_) => {}
        Err(rusqlite::Error::SqliteFailure(f, _))
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            return Err(Error::Conflict(
                "A user with that username or e-mail already exists".into(),
            ))
        }
        Err(e) => return Err(e.into()),
    }
    let id = c.last_insert_rowid();
    get(c, id)?.ok_or_else(|| Error::internal("inserted user vanished"))
}

/// A user by id.
pub fn get(c: &Connection, id: i64) -> Result<Option<UserRow>> {
    Ok(c.query_row(
        &format!("SELECT {COLUMNS} FROM users WHERE id = ?1"),
        [id],
        from_row,
    )
    .optional()?)
}

/// A user by username (case-insensitive).
pub fn by_username(c: &Connection, username: &str) -> Result<Option<UserRow>> {
    Ok(c.query_row(
        &format!("SELECT {COLUMNS} FROM users WHERE username = ?1"),
        [username],
        from_row,
    )
    .optional()?)
}

/// A user by e-mail (case-insensitive).
pub fn by_email(c: &Connection, email: &str) -> Result<Option<UserRow>> {
    Ok(c.query_row(
        &format!("SELECT {COLUMNS} FROM users WHERE email = ?1"),
        [email],
        from_row,
    )
    .optional()?)
}

/// A user and their password hash, by username or e-mail (for sign-in).
pub fn credentials(c: &Connection, login: &str) -> Result<Option<(UserRow, Option<String>)>> {
    Ok(c.query_row(
        &format!(
            "SELECT {COLUMNS}, password_hash FROM users WHERE username = ?1 OR email = ?1 \
                 ORDER BY username = ?1 DESC LIMIT 1"
        ),
        [login],
        |r| Ok((from_row(r)?, r.get::<_, Option<String>>(8)?)),
    )
    .optional()?)
}

/// All users, ordered by id, paged.
pub fn list(c: &Connection, limit: i64, offset: i64) -> Result<Vec<UserRow>> {
    let mut st = c.prepare(&format!(
        "SELECT {COLUMNS} FROM users ORDER BY id LIMIT ?1 OFFSET ?2"
    ))?;
    let rows = st.query_map([limit, offset], from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Replaces the password hash.
pub fn set_password_hash(c: &Connection, id: i64, hash: &str, now: i64) -> Result<bool> {
    Ok(c.execute(
        "UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, hash, now],
    )? == 1)
}

/// Ids of the users changed (`updated_at`) at or after `since`, by any process.
pub fn changed_since(c: &Connection, since: i64) -> Result<Vec<i64>> {
    let mut st = c.prepare_cached("SELECT id FROM users WHERE updated_at >= ?1")?;
    let rows = st.query_map([since], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Sets or clears the disabled flag.
pub fn set_disabled(c: &Connection, id: i64, disabled: bool, now: i64) -> Result<bool> {
    Ok(c.execute(
        "UPDATE users SET disabled = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, disabled, now],
    )? == 1)
}

/// Updates e-mail, admin flag and permissions; `None` leaves a field unchanged.
pub fn update(
    c: &Connection,
    id: i64,
    email: Option<Option<&str>>,
    is_admin: Option<bool>,
    permissions: Option<&[String]>,
    now: i64,
) -> Result<bool> {
    let perms = permissions.map(permissions_json).transpose()?;
    let res = c.execute(
        "UPDATE users SET
            email = CASE WHEN ?2 THEN ?3 ELSE email END,
            is_admin = COALESCE(?4, is_admin),
            permissions = COALESCE(?5, permissions),
            updated_at = ?6
         WHERE id = ?1",
        params![id, email.is_some(), email.flatten(), is_admin, perms, now],
    );
    match res {
        Ok(n) => Ok(n == 1),
        Err(rusqlite::Error::SqliteFailure(f, _))
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Err(Error::Conflict(
                "That e-mail address is already in use".into(),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// Records a successful sign-in.
pub fn touch_login(c: &Connection, id: i64, now: i64) -> Result<()> {
    c.execute(
        "UPDATE users SET last_login_at = ?2 WHERE id = ?1",
        params![id, now],
    )?;
    Ok(())
}

/// Deletes a user (their memberships and sessions cascade).
pub fn delete(c: &Connection, id: i64) -> Result<bool> {
    Ok(c.execute("DELETE FROM users WHERE id = ?1", [id])? == 1)
}

/// Number of users.
pub fn count(c: &Connection) -> Result<i64> {
    Ok(c.query_row("SELECT count(*) FROM users", [], |r| r.get(0))?)
}
