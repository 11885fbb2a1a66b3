//! Session tokens carry their row id (split token): the first 11 base62 characters after the
//! prefix are the id, the rest is random, and the row keeps the keyed hash of the whole token.
//! A look-up reads the row by id and compares the hash; sessions made before migration 0006
//! (ids below 2^40, tokens that do not carry them) are still found by hash.

use gatehouse::services;
use serde_json::Value;

use crate::browser_signin::sign_in;
use crate::helpers::*;

/// The first id a session made after migration 0006 can have.
const FIRST_NEW_ID: i64 = 1 << 40;
const PREFIX: &str = "dst_sess_";
const B62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Decodes the id a token carries, independently of the server's parser.
fn id_in(token: &str) -> i64 {
    let body = token.strip_prefix(PREFIX).expect("session prefix");
    assert_eq!(body.len(), 43, "{token}");
    body[..11].bytes().fold(0i64, |n, b| {
        n * 62 + B62.iter().position(|c| *c == b).expect("base62") as i64
    })
}

/// `id` as 11 base62 characters, as a token carries it.
fn b62_11(mut id: u64) -> String {
    let mut out = [b'0'; 11];
    for slot in out.iter_mut().rev() {
        *slot = B62[(id % 62) as usize];
        id /= 62;
    }
    String::from_utf8(out.to_vec()).unwrap()
}

fn token_of(pair: &str) -> String {
    pair.split_once('=').unwrap().1.to_owned()
}

/// `GET /api/sessions` with a token: the response.
async fn list(app: &TestApp, token: &str) -> reqwest::Response {
    app.client
        .get(app.url("/api/sessions"))
        .header("Dispatched-Session", token)
        .send()
        .await
        .unwrap()
}

/// The id of the session a token is, as the sessions list reports it.
async fn current_id(app: &TestApp, token: &str) -> i64 {
    let resp = list(app, token).await;
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.unwrap();
    let sessions = body["sessions"].as_array().unwrap();
    let current: Vec<_> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1, "{body}");
    current[0]["id"].as_i64().unwrap()
}

#[tokio::test]
async fn new_session_token_carries_its_row_id_and_works() {
    let app = spawn().await;
    app.create_user("ida", STRONG_PASSWORD, false).await;
    let first = token_of(&sign_in(&app, "ida", STRONG_PASSWORD).await);
    let second = token_of(&sign_in(&app, "ida", STRONG_PASSWORD).await);
    for t in [&first, &second] {
        assert_eq!(t.len(), PREFIX.len() + 43);
        assert!(t[PREFIX.len()..].bytes().all(|b| b.is_ascii_alphanumeric()));
    }
    let id = current_id(&app, &first).await;
    assert_eq!(id_in(&first), id, "the token carries its row id");
    assert!(
        id >= FIRST_NEW_ID,
        "new sessions get ids from 2^40 up: {id}"
    );
    assert_eq!(
        current_id(&app, &second).await,
        id + 1,
        "ids are sequential"
    );
    assert_eq!(id_in(&second), id + 1);
    // The id is exact in JSON (below 2^53) and the random parts differ.
    assert!(id < 1 << 53);
    assert_ne!(&first[PREFIX.len() + 11..], &second[PREFIX.len() + 11..]);
}

#[tokio::test]
async fn token_with_the_right_id_but_a_wrong_random_part_is_refused() {
    let app = spawn().await;
    app.create_user("jon", STRONG_PASSWORD, false).await;
    let token = token_of(&sign_in(&app, "jon", STRONG_PASSWORD).await);
    let selector = &token[..PREFIX.len() + 11];
    let verifier = &token[PREFIX.len() + 11..];

    // One character of the random part changed.
    let mut tail = verifier.as_bytes().to_vec();
    tail[31] = if tail[31] == b'a' { b'b' } else { b'a' };
    let typo = format!("{selector}{}", String::from_utf8(tail).unwrap());
    // A whole new random part.
    let guess = format!("{selector}{}", "Q".repeat(32));
    for bad in [typo, guess] {
        let msg = error_message(list(&app, &bad).await, 401).await;
        assert!(!msg.is_empty());
        let resp = app
            .client
            .get(app.url("/v1/auth/session"))
            .header("Dispatched-Session", &bad)
            .send()
            .await
            .unwrap();
        error_message(resp, 401).await;
    }
    // The real token still works.
    assert_eq!(list(&app, &token).await.status().as_u16(), 200);
}

#[tokio::test]
async fn token_carrying_another_sessions_id_is_refused() {
    let app = spawn().await;
    app.create_user("kim", STRONG_PASSWORD, false).await;
    app.create_user("lou", STRONG_PASSWORD, false).await;
    let kim = token_of(&sign_in(&app, "kim", STRONG_PASSWORD).await);
    let lou = token_of(&sign_in(&app, "lou", STRONG_PASSWORD).await);
    let split = PREFIX.len() + 11;
    // Kim's random part under Lou's id, and the other way round.
    for bad in [
        format!("{}{}", &lou[..split], &kim[split..]),
        format!("{}{}", &kim[..split], &lou[split..]),
    ] {
        error_message(list(&app, &bad).await, 401).await;
    }
    // An id no session has.
    let nobody = format!("{PREFIX}{}{}", b62_11(u64::MAX), &kim[split..]);
    error_message(list(&app, &nobody).await, 401).await;
    // Both real tokens still work, each as its own session.
    assert_eq!(current_id(&app, &kim).await, id_in(&kim));
    assert_eq!(current_id(&app, &lou).await, id_in(&lou));
}

#[tokio::test]
async fn legacy_session_from_before_0006_still_resolves_after_the_migration() {
    let all = gatehouse::store::migrations_len();
    let dir = tempfile::tempdir().unwrap();
    let s = test_settings(dir.path());
    std::fs::create_dir_all(&s.data_dir).unwrap();
    gatehouse::crypto::init().unwrap();
    // The pepper the server will load (generated into data/keys now, read back at start).
    let pepper = services::server_keys::load_pepper(&s).unwrap();
    let now = chrono::Utc::now().timestamp();
    // Two tokens of the old format: one whose first 11 characters are random, one whose first
    // 11 characters happen to read as the id the first new session will get.
    let legacy = gatehouse::crypto::tokens::new_token(PREFIX);
    let legacy = legacy.expose().to_owned();
    let lookalike = format!(
        "{PREFIX}{}{}",
        b62_11(FIRST_NEW_ID as u64),
        &legacy[PREFIX.len() + 11..]
    );
    {
        // A database at migration 0005 (the one before the split token) with sessions in it.
        let mut conn = rusqlite::Connection::open(s.database_path()).unwrap();
        gatehouse::store::migrations()
            .to_version(&mut conn, 5)
            .unwrap();
        conn.execute(
            "INSERT INTO users (id, username, created_at, updated_at) VALUES (3, 'olduser', 1, 1)",
            [],
        )
        .unwrap();
        let tenant: String = conn
            .query_row("SELECT id FROM tenants WHERE slug = 'default'", [], |r| {
                r.get(0)
            })
            .unwrap();
        conn.execute(
            "INSERT INTO memberships (user_id, tenant_id, role, created_at) VALUES (3, ?1, 'member', 1)",
            [&tenant],
        )
        .unwrap();
        for (id, token, kind) in [
            (7, legacy.as_str(), "browser"),
            (8, lookalike.as_str(), "browser"),
            (9, "dst_run_legacy-run-session", "run"),
        ] {
            conn.execute(
                "INSERT INTO sessions (id, token_hash, kind, user_id, tenant_id, created_at,
                     last_seen_at, idle_expires_at, expires_at)
                 VALUES (?1, ?2, ?3, 3, ?4, ?5, ?5, ?5 + 3600, ?5 + 86400)",
                rusqlite::params![
                    id,
                    pepper.hash(token.as_bytes()).to_vec(),
                    kind,
                    tenant,
                    now
                ],
            )
            .unwrap();
        }
        // A run pointing at its session: the rebuild of `sessions` must not null it.
        conn.execute(
            "INSERT INTO runs (id, tenant_id, mode, workflow, session_id, created_by, created_at,
                 expires_at)
             VALUES ('run_old', ?1, 'live', 'deploy', 9, 3, ?2, ?2 + 86400)",
            rusqlite::params![tenant, now],
        )
        .unwrap();
    }
    let app = spawn_in(dir, s.clone()).await;
    app.create_user("newuser", STRONG_PASSWORD, false).await;
    let fresh = token_of(&sign_in(&app, "newuser", STRONG_PASSWORD).await);
    let fresh_id = current_id(&app, &fresh).await;
    assert_eq!(
        fresh_id, FIRST_NEW_ID,
        "the first new session after the upgrade"
    );
    assert_eq!(id_in(&fresh), fresh_id);

    // The old tokens still sign their holder in, each as its own row (no mass sign-out), even
    // the one whose leading characters name the new session's id.
    assert_eq!(current_id(&app, &legacy).await, 7);
    assert_eq!(current_id(&app, &lookalike).await, 8);
    let resp = app
        .client
        .get(app.url("/v1/auth/session"))
        .header("Dispatched-Session", &legacy)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let me: Value = resp.json().await.unwrap();
    assert_eq!(me["account"]["username"], "olduser", "{me}");
    // A wrong legacy token is refused.
    let mut wrong = legacy.clone().into_bytes();
    let last = wrong.len() - 1;
    wrong[last] = if wrong[last] == b'a' { b'b' } else { b'a' };
    error_message(list(&app, &String::from_utf8(wrong).unwrap()).await, 401).await;

    let conn = rusqlite::Connection::open(s.database_path()).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version as usize, all);
    let run_session: Option<i64> = conn
        .query_row(
            "SELECT session_id FROM runs WHERE id = 'run_old'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(run_session, Some(9), "the run still points at its session");
    let fk_problems: i64 = conn
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(fk_problems, 0);
    // `token_hash` has no UNIQUE index any more, only the partial one for the old rows.
    let unique: i64 = conn
        .query_row(
            "SELECT count(*) FROM pragma_index_list('sessions') WHERE \"unique\" = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(unique, 0);
    let partial: i64 = conn
        .query_row(
            "SELECT count(*) FROM pragma_index_list('sessions')
             WHERE name = 'sessions_legacy_token' AND partial = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(partial, 1);
}

#[tokio::test]
async fn cleanup_deletes_expired_sessions_and_keeps_live_ones() {
    let app = spawn().await;
    app.create_user("max", STRONG_PASSWORD, false).await;
    let expired = token_of(&sign_in(&app, "max", STRONG_PASSWORD).await);
    let live = token_of(&sign_in(&app, "max", STRONG_PASSWORD).await);
    let (expired_id, live_id) = (id_in(&expired), id_in(&live));
    // One session past its absolute expiry, plus an expired row of the old kind (id < 2^40).
    let stale_hash = app.ctx.pepper.hash(b"dst_sess_stale-legacy-token").to_vec();
    app.ctx
        .db
        .write(move |tx| {
            tx.execute(
                "UPDATE sessions SET expires_at = 1, idle_expires_at = 1 WHERE id = ?1",
                [expired_id],
            )?;
            tx.execute(
                "INSERT INTO sessions (id, token_hash, kind, created_at, last_seen_at,
                     idle_expires_at, expires_at)
                 VALUES (42, ?1, 'browser', 0, 0, 1, 1)",
                [stale_hash],
            )?;
            Ok(())
        })
        .await
        .unwrap();
    let report = services::cleanup::run_once(&app.ctx).await.unwrap();
    let deleted: u64 = report
        .tables
        .iter()
        .filter(|t| t.table == "sessions")
        .map(|t| t.deleted)
        .sum();
    assert_eq!(deleted, 2, "{report:?}");
    let ids: Vec<i64> = app
        .ctx
        .db
        .read(|c| {
            let mut st = c.prepare("SELECT id FROM sessions ORDER BY id")?;
            let ids = st
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<i64>>>()?;
            Ok(ids)
        })
        .await
        .unwrap();
    assert_eq!(ids, vec![live_id]);
    assert_eq!(current_id(&app, &live).await, live_id);
    error_message(list(&app, &expired).await, 401).await;
}
