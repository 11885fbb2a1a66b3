//! SQL for the `sessions` table: browser, handshake and run sessions in one place.
//!
//! A session token carries its row id, so a look-up reads the row by primary key and compares
//! the keyed hash of the whole token ([`by_token`]); `token_hash` has no index of its own. New
//! rows get ids from [`FIRST_CARRIED_ID`] up, in creation order, so inserting and deleting
//! expired sessions touches every index of the table sequentially. Rows made before migration
//! 0006 have smaller ids and tokens that do not carry them: a partial index on `token_hash` over
//! those rows alone still finds them until they expire.

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::Result;

/// The first id of a session whose token carries it (2^40, exact in JavaScript). Sessions made
/// before migration 0006 have smaller ids; the partial index `sessions_legacy_token` covers them.
pub const FIRST_CARRIED_ID: i64 = 1 << 40;

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
    /// Handshake and run sessions: the wrapping key sealed under a key derived from the token.
    pub sealed_key: Option<Vec<u8>>,
}

const SESSION_COLUMNS: &str = "id, kind, user_id, tenant_id, mode, user_agent, ip, created_at, \
     last_seen_at, idle_expires_at, expires_at, revoked_at, sealed_key";

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
        sealed_key: r.get(12)?,
    })
}

/// What a new session row holds, apart from what depends on its token ([`FromToken`]).
#[derive(Debug)]
pub struct NewSession<'a> {
    /// `browser`, `handshake` or `run`.
    pub kind: &'a str,
    /// The user.
    pub user_id: Option<i64>,
    /// The active tenant.
    pub tenant_id: Option<&'a str>,
    /// `live` or `test`.
    pub mode: &'a str,
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

/// What a new row keeps of its token. The token carries the row id, so it is made (and these
/// derived from it) only once the id is known, inside the inserting transaction.
#[derive(Debug)]
pub struct FromToken {
    /// Keyed hash of the whole token (the verifier).
    pub token_hash: Vec<u8>,
    /// Handshake and run sessions: the wrapping key sealed under a key derived from the token.
    pub sealed_key: Option<Vec<u8>>,
}

/// Inserts a session of any kind under the next id, never below [`FIRST_CARRIED_ID`]. `mint`
/// makes the token for that id and returns what the row keeps of it, plus whatever the caller
/// wants back (the token). Returns the id and that. Run it in the writer's transaction: the id
/// is read and used there, and the single `BEGIN IMMEDIATE` writer makes that race-free.
pub fn insert<T>(
    c: &Connection,
    s: &NewSession<'_>,
    mint: impl FnOnce(i64) -> Result<(FromToken, T)>,
) -> Result<(i64, T)> {
    // Past every id ever given (`sqlite_sequence` remembers deleted ones: the table is
    // AUTOINCREMENT), so a token or in-memory state of a deleted session never names a new one.
    let id: i64 = c.query_row(
        "SELECT max(coalesce((SELECT max(id) FROM sessions), 0),
                    coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'sessions'), 0)) + 1",
        [],
        |r| r.get(0),
    )?;
    let id = id.max(FIRST_CARRIED_ID);
    let (kept, out) = mint(id)?;
    c.execute(
        "INSERT INTO sessions (id, token_hash, kind, user_id, tenant_id, mode, sealed_key,
             user_agent, ip, created_at, last_seen_at, idle_expires_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11, ?12)",
        params![
            id,
            kept.token_hash,
            s.kind,
            s.user_id,
            s.tenant_id,
            s.mode,
            kept.sealed_key,
            s.user_agent,
            s.ip,
            s.now,
            s.idle_expires_at,
            s.expires_at
        ],
    )?;
    Ok((id, out))
}

/// The session a presented token names, whatever its state: the row with the id the token
/// carries (`claimed_id`, `None` if it reads as no id) if its keyed hash matches, else a row
/// made before migration 0006 with that hash (through the partial index, whose condition the
/// query repeats verbatim so SQLite uses it). The one token look-up for every kind of session.
pub fn by_token(
    c: &Connection,
    claimed_id: Option<i64>,
    hash: &[u8],
) -> Result<Option<SessionRow>> {
    if let Some(id) = claimed_id {
        let row = c
            .query_row(
                &format!(
                    "SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?1 AND token_hash = ?2"
                ),
                params![id, hash],
                session_from_row,
            )
            .optional()?;
        if row.is_some() {
            return Ok(row);
        }
    }
    Ok(c.query_row(
        &format!("SELECT {SESSION_COLUMNS} FROM sessions {LEGACY_BY_HASH}"),
        [hash],
        session_from_row,
    )
    .optional()?)
}

/// Rows from before migration 0006 by hash; the bound matches `sessions_legacy_token`'s and
/// [`FIRST_CARRIED_ID`] (a unit test checks both).
const LEGACY_BY_HASH: &str = "WHERE token_hash = ?1 AND id < 1099511627776";

/// A session by id.
pub fn get(c: &Connection, id: i64) -> Result<Option<SessionRow>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{count, query_plan as plan};

    fn migrated() -> Connection {
        let mut c = Connection::open_in_memory().unwrap();
        crate::store::migrations().to_latest(&mut c).unwrap();
        c
    }

    #[test]
    fn look_ups_use_the_primary_key_and_the_partial_index() {
        let c = migrated();
        assert_eq!(FIRST_CARRIED_ID, 1_099_511_627_776);
        let index: String = c
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = 'sessions_legacy_token'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(
            index.ends_with(&format!("WHERE id < {FIRST_CARRIED_ID}")),
            "{index}"
        );
        assert!(LEGACY_BY_HASH.ends_with(&format!("id < {FIRST_CARRIED_ID}")));
        let legacy = plan(&c, &format!("SELECT id FROM sessions {LEGACY_BY_HASH}"));
        assert!(legacy.contains("sessions_legacy_token"), "{legacy}");
        let by_id = plan(
            &c,
            "SELECT id FROM sessions WHERE id = ?1 AND token_hash = ?2",
        );
        assert!(by_id.contains("INTEGER PRIMARY KEY"), "{by_id}");
        // No index on token_hash beside the partial one.
        let unique = count(
            &c,
            "SELECT count(*) FROM pragma_index_list('sessions') WHERE \"unique\" = 1",
        );
        assert_eq!(unique, 0);
    }

    #[test]
    fn ids_start_at_2_pow_40_and_follow_on() {
        let c = migrated();
        let new = NewSession {
            kind: "browser",
            user_id: None,
            tenant_id: None,
            mode: "live",
            user_agent: None,
            ip: None,
            now: 1,
            idle_expires_at: 2,
            expires_at: 3,
        };
        let mint = |id: i64| {
            Ok((
                FromToken {
                    token_hash: id.to_be_bytes().to_vec(),
                    sealed_key: None,
                },
                id,
            ))
        };
        let (a, seen) = insert(&c, &new, mint).unwrap();
        assert_eq!((a, seen), (FIRST_CARRIED_ID, FIRST_CARRIED_ID));
        let (b, _) = insert(&c, &new, mint).unwrap();
        assert_eq!(b, FIRST_CARRIED_ID + 1);
        // An older row does not pull new ids below 2^40.
        c.execute(
            "INSERT INTO sessions (id, token_hash, kind, created_at, last_seen_at,
                 idle_expires_at, expires_at) VALUES (5, x'00', 'browser', 0, 0, 1, 1)",
            [],
        )
        .unwrap();
        assert_eq!(insert(&c, &new, mint).unwrap().0, FIRST_CARRIED_ID + 2);
        // Deleting the newest row does not hand its id out again.
        let (d, _) = insert(&c, &new, mint).unwrap();
        c.execute("DELETE FROM sessions WHERE id = ?1", [d])
            .unwrap();
        let (e, _) = insert(&c, &new, mint).unwrap();
        assert_eq!(e, d + 1);
        c.execute("DELETE FROM sessions WHERE id >= ?1", [d])
            .unwrap();

        let hash_of = |id: i64| id.to_be_bytes().to_vec();
        let found = |claimed, hash: &[u8]| by_token(&c, claimed, hash).unwrap().map(|s| s.id);
        assert_eq!(found(Some(b), &hash_of(b)), Some(b));
        assert_eq!(found(Some(b), &hash_of(a)), None, "another row's hash");
        assert_eq!(
            found(None, &hash_of(b)),
            None,
            "new rows are not found by hash"
        );
        assert_eq!(found(Some(b), &[0]), Some(5), "an older row by hash");
        assert_eq!(found(None, &[0]), Some(5));
    }
}
