//! SQL for the `api_keys` table.
//!
//! A key is stored only as its keyed hash (`key_hash`); `prefix` and `last4` exist to show the
//! masked form. The hot path's look-up goes by hash through the covering index `api_keys_verify`
//! and joins the owner, so one read answers "who is this, are they still allowed". A key's last use lives in the
//! narrow `api_key_usage` table (migration 0008), so the batched last-used writes rewrite small
//! rows, not whole keys.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::error::{Error, Result};

/// A stored API key (never the secret).
#[derive(Clone, Debug)]
pub struct ApiKeyRow {
    /// Numeric id.
    pub id: i64,
    /// `sk_live_`, `sk_test_`, `pk_live_` or `pk_test_`.
    pub prefix: String,
    /// Last four characters of the key, for the masked form.
    pub last4: String,
    /// Owner.
    pub user_id: i64,
    /// Owner's user name.
    pub username: String,
    /// Tenant the key acts in.
    pub tenant_id: String,
    /// `live` or `test`.
    pub mode: String,
    /// Rate-limit plan name.
    pub plan: String,
    /// Scopes (empty: the owner's full rights).
    pub scopes: Vec<String>,
    /// Display name.
    pub name: String,
    /// Creation time (Unix seconds).
    pub created_at: i64,
    /// Expiry (Unix seconds), if any.
    pub expires_at: Option<i64>,
    /// Revocation time (Unix seconds), if revoked.
    pub revoked_at: Option<i64>,
    /// Last use as last flushed (Unix seconds); always `None` from [`by_hash`].
    pub last_used_at: Option<i64>,
}

/// The owner facts the resolver needs beside the key row.
#[derive(Clone, Debug)]
pub struct Owner {
    /// Administrator.
    pub is_admin: bool,
    /// Named permissions.
    pub permissions: Vec<String>,
    /// Disabled users' keys do not work.
    pub disabled: bool,
}

/// What a new key row holds.
#[derive(Debug)]
pub struct NewRow<'a> {
    /// Keyed hash of the key.
    pub key_hash: &'a [u8],
    /// Key prefix.
    pub prefix: &'a str,
    /// Last four characters.
    pub last4: &'a str,
    /// Owner.
    pub user_id: i64,
    /// Tenant.
    pub tenant_id: &'a str,
    /// `live` / `test`.
    pub mode: &'a str,
    /// Plan name.
    pub plan: &'a str,
    /// Scopes.
    pub scopes: &'a [String],
    /// Display name.
    pub name: &'a str,
    /// Optional expiry.
    pub expires_at: Option<i64>,
}

/// The columns [`from_row`] reads but the last use, as a macro so that SQL text built from them
/// can be a `&'static str` (`concat!`) instead of formatted on every call.
macro_rules! columns {
    () => {
        "k.id, k.prefix, k.last4, k.user_id, u.username, k.tenant_id, k.mode, \
         k.plan, k.scopes, k.name, k.created_at, k.expires_at, k.revoked_at"
    };
}
/// Every column [`from_row`] reads, the last use included.
const COLUMNS: &str = concat!(columns!(), ", g.last_used_at");

/// The tables [`COLUMNS`] reads from: the key, its owner and its last use (if any).
const TABLES: &str =
    "api_keys k JOIN users u ON u.id = k.user_id LEFT JOIN api_key_usage g ON g.key_id = k.id";

fn from_row(r: &Row<'_>) -> rusqlite::Result<ApiKeyRow> {
    let scopes: String = r.get(8)?;
    Ok(ApiKeyRow {
        id: r.get(0)?,
        prefix: r.get(1)?,
        last4: r.get(2)?,
        user_id: r.get(3)?,
        username: r.get(4)?,
        tenant_id: r.get(5)?,
        mode: r.get(6)?,
        plan: r.get(7)?,
        scopes: serde_json::from_str(&scopes).unwrap_or_default(),
        name: r.get(9)?,
        created_at: r.get(10)?,
        expires_at: r.get(11)?,
        revoked_at: r.get(12)?,
        last_used_at: r.get(13)?,
    })
}

/// Inserts a key and returns its id.
pub fn insert(c: &Connection, new: &NewRow<'_>, now: i64) -> Result<i64> {
    let scopes = serde_json::to_string(new.scopes).map_err(Error::internal)?;
    let res = c.execute(
        "INSERT INTO api_keys (key_hash, prefix, last4, user_id, tenant_id, mode, plan, scopes,
                               name, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            new.key_hash,
            new.prefix,
            new.last4,
            new.user_id,
            new.tenant_id,
            new.mode,
            new.plan,
            scopes,
            new.name,
            now,
            new.expires_at
        ],
    );
    match res {
        Ok(_) => Ok(c.last_insert_rowid()),
        Err(rusqlite::Error::SqliteFailure(f, _))
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Err(Error::bad_request(
                "the user or tenant of the key does not exist",
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// What a verification reads of a key and its owner: [`by_hash`]'s answer.
#[derive(Clone, Debug)]
pub struct KeyToVerify {
    /// Numeric id.
    pub id: i64,
    /// Owner.
    pub user_id: i64,
    /// Owner's user name.
    pub username: String,
    /// Tenant the key acts in.
    pub tenant_id: String,
    /// `live` or `test`.
    pub mode: String,
    /// Rate-limit plan name.
    pub plan: String,
    /// Scopes (empty: the owner's full rights).
    pub scopes: Vec<String>,
    /// Expiry (Unix seconds), if any.
    pub expires_at: Option<i64>,
    /// Revocation time (Unix seconds), if revoked.
    pub revoked_at: Option<i64>,
    /// The owner's rights and state.
    pub owner: Owner,
}

/// The verification look-up. It reads the key from the covering index `api_keys_verify`
/// (`INDEXED BY`: without statistics SQLite picks the plain unique index on `key_hash`, then
/// reads the table too). The index holds exactly these columns (migration 0010), so a cache
/// miss walks one b-tree, of small entries. Its last use is not read: the cache keeps recent
/// uses in memory, and the extra look-up in `api_key_usage` cost every cache miss 9 %.
const BY_HASH: &str = "SELECT k.id, k.user_id, u.username, k.tenant_id, k.mode, k.plan, k.scopes,
       k.expires_at, k.revoked_at, u.is_admin, u.permissions, u.disabled
     FROM api_keys k INDEXED BY api_keys_verify JOIN users u ON u.id = k.user_id
     WHERE k.key_hash = ?1";

/// A key and its owner, by keyed hash (the verification look-up).
pub fn by_hash(c: &Connection, hash: &[u8]) -> Result<Option<KeyToVerify>> {
    // A static text: the look-up of every cache miss neither formats it nor allocates.
    let mut st = c.prepare_cached(BY_HASH)?;
    Ok(st
        .query_row([hash], |r| {
            let scopes: String = r.get(6)?;
            let perms: String = r.get(10)?;
            Ok(KeyToVerify {
                id: r.get(0)?,
                user_id: r.get(1)?,
                username: r.get(2)?,
                tenant_id: r.get(3)?,
                mode: r.get(4)?,
                plan: r.get(5)?,
                scopes: serde_json::from_str(&scopes).unwrap_or_default(),
                expires_at: r.get(7)?,
                revoked_at: r.get(8)?,
                owner: Owner {
                    is_admin: r.get(9)?,
                    permissions: serde_json::from_str(&perms).unwrap_or_default(),
                    disabled: r.get(11)?,
                },
            })
        })
        .optional()?)
}

/// A key by id.
pub fn get(c: &Connection, id: i64) -> Result<Option<ApiKeyRow>> {
    Ok(c.query_row(
        &format!("SELECT {COLUMNS} FROM {TABLES} WHERE k.id = ?1"),
        [id],
        from_row,
    )
    .optional()?)
}

/// Keys, newest first; `user_id` and `mode` narrow the list when given.
pub fn list(
    c: &Connection,
    user_id: Option<i64>,
    mode: Option<&str>,
    include_revoked: bool,
    limit: i64,
) -> Result<Vec<ApiKeyRow>> {
    let mut st = c.prepare(&format!(
        "SELECT {COLUMNS} FROM {TABLES}
         WHERE (?1 IS NULL OR k.user_id = ?1) AND (?2 IS NULL OR k.mode = ?2)
           AND (?3 OR k.revoked_at IS NULL)
         ORDER BY k.id DESC LIMIT ?4"
    ))?;
    let rows = st.query_map(params![user_id, mode, include_revoked, limit], from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Revokes a key now; returns its hash (for the verification cache) if it was live.
pub fn revoke(c: &Connection, id: i64, now: i64) -> Result<Option<Vec<u8>>> {
    Ok(c.query_row(
        "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL
         RETURNING key_hash",
        params![id, now],
        |r| r.get(0),
    )
    .optional()?)
}

/// Revokes every live key of a user (of one mode if given, except one id); returns their hashes.
pub fn revoke_all_for_user(
    c: &Connection,
    user_id: i64,
    mode: Option<&str>,
    except_id: Option<i64>,
    now: i64,
) -> Result<Vec<Vec<u8>>> {
    let mut st = c.prepare(
        "UPDATE api_keys SET revoked_at = ?4
         WHERE user_id = ?1 AND (?2 IS NULL OR mode = ?2) AND (?3 IS NULL OR id <> ?3)
           AND revoked_at IS NULL
         RETURNING key_hash",
    )?;
    let rows = st.query_map(params![user_id, mode, except_id, now], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Moves a key's expiry earlier to `at` (never later); returns its hash.
pub fn expire_at(c: &Connection, id: i64, at: i64) -> Result<Option<Vec<u8>>> {
    Ok(c.query_row(
        "UPDATE api_keys SET expires_at = min(coalesce(expires_at, ?2), ?2)
         WHERE id = ?1 AND revoked_at IS NULL RETURNING key_hash",
        params![id, at],
        |r| r.get(0),
    )
    .optional()?)
}

/// Hashes of every key of a user (to drop them from the verification cache).
pub fn hashes_of_user(c: &Connection, user_id: i64) -> Result<Vec<Vec<u8>>> {
    let mut st = c.prepare("SELECT key_hash FROM api_keys WHERE user_id = ?1")?;
    let rows = st.query_map([user_id], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Hashes of keys revoked at or after `since` (revocations made by another process).
pub fn revoked_since(c: &Connection, since: i64) -> Result<Vec<Vec<u8>>> {
    let mut st = c.prepare_cached("SELECT key_hash FROM api_keys WHERE revoked_at >= ?1")?;
    let rows = st.query_map([since], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Writes buffered `last_used_at` values (never moving one backwards). A key deleted since its
/// use was buffered is skipped.
pub fn touch_last_used(c: &Connection, uses: &[(i64, i64)]) -> Result<()> {
    let mut st = c.prepare_cached(
        "INSERT INTO api_key_usage (key_id, last_used_at)
         SELECT id, ?2 FROM api_keys WHERE id = ?1
         ON CONFLICT (key_id) DO UPDATE SET last_used_at = max(last_used_at, excluded.last_used_at)",
    )?;
    for (id, at) in uses {
        st.execute(params![id, at])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{count, query_plan};

    /// A database made at schema version 7 with a tenant, a user and two keys, one used at
    /// 1 000, then migrated to the latest version.
    fn upgraded() -> Connection {
        let mut c = Connection::open_in_memory().unwrap();
        crate::store::migrations().to_version(&mut c, 7).unwrap();
        c.execute_batch(
            "INSERT INTO tenants (id, name, slug, created_at) VALUES ('ten_1', 'T', 't', 1);
             INSERT INTO users (id, username, created_at, updated_at) VALUES (7, 'ana', 1, 1);
             INSERT INTO api_keys (id, key_hash, prefix, last4, user_id, tenant_id, mode, plan,
                                   name, created_at, last_used_at)
             VALUES (1, x'01', 'sk_live_', 'aaaa', 7, 'ten_1', 'live', 'free', 'used', 1, 1000),
                    (2, x'02', 'sk_live_', 'bbbb', 7, 'ten_1', 'live', 'free', 'unused', 1, NULL);",
        )
        .unwrap();
        crate::store::migrations().to_latest(&mut c).unwrap();
        c
    }

    #[test]
    fn migration_8_moves_last_uses_to_their_own_table() {
        let c = upgraded();
        assert_eq!(get(&c, 1).unwrap().unwrap().last_used_at, Some(1000));
        assert_eq!(get(&c, 2).unwrap().unwrap().last_used_at, None);
        assert_eq!(by_hash(&c, &[1]).unwrap().unwrap().id, 1);
        let listed: Vec<_> = list(&c, Some(7), None, true, 10)
            .unwrap()
            .into_iter()
            .map(|r| (r.id, r.last_used_at))
            .collect();
        assert_eq!(listed, [(2, None), (1, Some(1000))]);
        let columns = count(
            &c,
            "SELECT count(*) FROM pragma_table_info('api_keys') WHERE name = 'last_used_at'",
        );
        assert_eq!(columns, 0);
    }

    #[test]
    fn the_verification_look_up_reads_only_the_covering_index() {
        let c = upgraded();
        let plan = query_plan(&c, BY_HASH);
        assert!(
            plan.starts_with("SEARCH k USING COVERING INDEX api_keys_verify"),
            "{plan}"
        );
        // Only the columns the look-up reads (migration 0010): no name, prefix, last4 or
        // creation time to widen the index's inner pages.
        let indexed = count(
            &c,
            "SELECT count(*) FROM pragma_index_info('api_keys_verify')",
        );
        assert_eq!(indexed, 9);
        let row = by_hash(&c, &[2]).unwrap().unwrap();
        assert_eq!(
            (
                row.id,
                row.user_id,
                row.username.as_str(),
                row.tenant_id.as_str()
            ),
            (2, 7, "ana", "ten_1")
        );
        assert_eq!((row.mode.as_str(), row.plan.as_str()), ("live", "free"));
        assert!(row.scopes.is_empty() && row.expires_at.is_none() && row.revoked_at.is_none());
        assert!(!row.owner.disabled && !row.owner.is_admin);
    }

    /// `ANALYZE` by this build's SQLite leaves stat4 samples of the verification index; with
    /// them, and without the planner's stability guarantee that every server connection sets,
    /// SQLite re-prepares the look-up each time the hash bound to it changes.
    #[test]
    fn the_look_up_is_not_prepared_again_after_analyze() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.db");
        let cfg = crate::config::DatabaseSettings::default();
        drop(crate::store::Db::open(&path, &cfg).unwrap());
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "INSERT INTO tenants (id, name, slug, created_at) VALUES ('ten_1', 'T', 't', 1);
             INSERT INTO users (id, username, created_at, updated_at) VALUES (7, 'ana', 1, 1);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
             INSERT INTO api_keys (id, key_hash, prefix, last4, user_id, tenant_id, mode, plan,
                                   name, created_at)
             SELECT i, randomblob(32), 'sk_live_', 'aaaa', 7, 'ten_1', 'live', 'free', 'k', 1
             FROM n;
             ANALYZE;",
        )
        .unwrap();
        let samples = count(
            &c,
            "SELECT count(*) FROM sqlite_stat4 WHERE idx = 'api_keys_verify'",
        );
        assert!(samples > 0, "this SQLite keeps stat4 samples");
        let hashes: Vec<Vec<u8>> = c
            .prepare("SELECT key_hash FROM api_keys WHERE id <= 5")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        drop(c);
        let db = crate::store::Db::open(&path, &cfg).unwrap();
        let (found, prepared_again) = db
            .read_blocking(move |c| {
                let mut found = 0;
                for h in &hashes {
                    found += usize::from(by_hash(c, h)?.is_some());
                }
                let st = c.prepare_cached(BY_HASH)?;
                Ok((found, st.get_status(rusqlite::StatementStatus::RePrepare)))
            })
            .unwrap();
        assert_eq!((found, prepared_again), (5, 0));
    }

    #[test]
    fn last_uses_only_move_forward_and_skip_deleted_keys() {
        let c = upgraded();
        touch_last_used(&c, &[(1, 900), (2, 2000), (99, 3000)]).unwrap();
        assert_eq!(get(&c, 1).unwrap().unwrap().last_used_at, Some(1000));
        assert_eq!(get(&c, 2).unwrap().unwrap().last_used_at, Some(2000));
        touch_last_used(&c, &[(1, 1500)]).unwrap();
        assert_eq!(get(&c, 1).unwrap().unwrap().last_used_at, Some(1500));
        let rows = count(&c, "SELECT count(*) FROM api_key_usage");
        assert_eq!(rows, 2, "no row for the key that does not exist");
        c.execute("DELETE FROM api_keys WHERE id = 1", []).unwrap();
        let rows = count(&c, "SELECT count(*) FROM api_key_usage");
        assert_eq!(rows, 1, "a deleted key's use goes with it");
    }
}
