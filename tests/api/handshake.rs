//! Handshake sign-in (SPEC §4.4): the Noise XK handshake over HTTP with a `snow` client,
//! sessions that survive restarts, secrets, runs and their webhook, and every refusal.
//!
//! The first handshake call needs an API key of a tenant member; API keys come from the `keys`
//! branch. Until it is merged, most tests start the handshake through the service entry point
//! ([`begin_via_service`], the same function the handler calls after resolving the key) and do
//! everything else over HTTP; the full sign-in runs the first call with a real API key.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use gatehouse::auth::{CredentialKind, Mode, Principal};
use gatehouse::crypto::handshake::{self as hs, Key32, TenantSeed};
use gatehouse::crypto::{b64, unb64};
use gatehouse::services;
use gatehouse::services::types::TenantId;
use serde_json::{json, Value};

use crate::helpers::*;

/// A tenant made by `gatehouse tenant create`, and its owner.
pub struct Tenant {
    pub id: String,
    pub seed: TenantSeed,
    pub private_key: String,
    pub owner_id: i64,
}

/// Creates a user and a tenant they own, through the CLI.
pub async fn tenant_with_owner(app: &TestApp, owner: &str) -> Tenant {
    let owner_id = app.create_user(owner, STRONG_PASSWORD, false).await;
    tenant_owned_by(app, owner, owner_id)
}

/// Creates a tenant owned by an existing user, through the CLI.
pub fn tenant_owned_by(app: &TestApp, owner: &str, owner_id: i64) -> Tenant {
    let out = cli(
        app,
        &[
            "tenant",
            "create",
            &format!("{owner} corp"),
            "--owner",
            owner,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let id = lines[0].strip_prefix("tenant_id=").unwrap().to_owned();
    let private_key = lines[1].strip_prefix("private_key=").unwrap().to_owned();
    Tenant {
        seed: TenantSeed::parse(&private_key).unwrap(),
        id,
        private_key,
        owner_id,
    }
}

/// The principal an API key of `user_id` for `tenant` resolves to.
pub fn api_key_principal(user_id: i64, tenant: &str) -> Principal {
    Principal {
        kind: CredentialKind::ApiKey,
        subject: format!("user:{user_id}"),
        user_id: Some(user_id),
        username: None,
        tenant_id: Some(tenant.to_owned()),
        mode: Mode::Live,
        scopes: vec![],
        is_admin: false,
        permissions: vec![],
        expires_at: None,
        credential_id: Some("key".into()),
    }
}

pub async fn server_public(app: &TestApp) -> Vec<u8> {
    let v: Value = app
        .client
        .get(app.url("/api/session/server-key"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    unb64(v["public_key"].as_str().unwrap()).unwrap()
}

/// Message 1 → service `begin` (as the handler does after resolving the API key) → message 2.
pub async fn begin_via_service(
    app: &TestApp,
    user_id: i64,
    tenant: &str,
    seed: &TenantSeed,
) -> (hs::Initiator, String, Vec<u8>) {
    let (init, m1) = hs::initiate(seed, &server_public(app).await, tenant, None).unwrap();
    let b = services::handshake::begin(
        &app.ctx,
        &api_key_principal(user_id, tenant),
        &TenantId::parse(tenant).unwrap(),
        &m1,
        &Default::default(),
    )
    .await
    .unwrap();
    (init, b.handshake_id, b.message)
}

pub async fn confirm(app: &TestApp, handshake_id: &str, m3: &[u8]) -> reqwest::Response {
    app.client
        .post(app.url("/api/session/confirm"))
        .json(&json!({"handshake_id": handshake_id, "message": b64(m3)}))
        .send()
        .await
        .unwrap()
}

/// A full sign-in; returns the `dst_sess_` token.
pub async fn sign_in(app: &TestApp, t: &Tenant) -> String {
    let (init, id, m2) = begin_via_service(app, t.owner_id, &t.id, &t.seed).await;
    let (m3, _) = init.finish(&m2, &t.seed.wrapping_key()).unwrap();
    let r = confirm(app, &id, &m3).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["tenant_id"], t.id.as_str());
    v["session_token"].as_str().unwrap().to_owned()
}

/// The whole handshake over HTTP with an API key.
pub async fn sign_in_http(
    app: &TestApp,
    api_key: &str,
    tenant: &str,
    seed: &TenantSeed,
) -> reqwest::Response {
    let (init, m1) = hs::initiate(seed, &server_public(app).await, tenant, None).unwrap();
    let r = app
        .client
        .post(app.url("/api/session"))
        .header("X-API-Key", api_key)
        .json(&json!({"tenant_id": tenant, "message": b64(&m1)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["expires_in"], 60);
    let m2 = unb64(v["message"].as_str().unwrap()).unwrap();
    let (m3, _) = init.finish(&m2, &seed.wrapping_key()).unwrap();
    confirm(app, v["handshake_id"].as_str().unwrap(), &m3).await
}

/// An API key for a tenant member, through the keys branch's CLI.
pub fn api_key(app: &TestApp, user: &str, tenant: &str) -> String {
    let out = cli(
        app,
        &[
            "key", "create", "--user", user, "--tenant", tenant, "--name", "test",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .find_map(|w| {
            let w = w.trim_start_matches("key=").trim_start_matches("secret=");
            (w.starts_with("sk_") || w.starts_with("pk_")).then(|| w.to_owned())
        })
        .expect("the key in the output")
}

fn sess(
    app: &TestApp,
    token: &str,
    method: reqwest::Method,
    path: &str,
) -> reqwest::RequestBuilder {
    app.client
        .request(method, app.url(path))
        .header("Dispatched-Session", token)
}

async fn count(app: &TestApp, sql: &'static str) -> i64 {
    app.ctx
        .db
        .read(move |c| Ok(c.query_row(sql, [], |r| r.get::<_, i64>(0))?))
        .await
        .unwrap()
}

#[tokio::test]
async fn server_key_is_published_pinned_in_a_0600_file_and_stable_across_restarts() {
    let app = spawn().await;
    let key = server_public(&app).await;
    assert_eq!(key.len(), 32);
    assert!(!hs::is_weak_public_key(&key));
    let path = app.dir.path().join("data/keys/noise_static");
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    app.stop().await;
    let dir = app.dir;
    let s = test_settings(dir.path());
    let app2 = spawn_in(dir, s).await;
    assert_eq!(server_public(&app2).await, key);
}

#[tokio::test]
async fn tenant_create_prints_two_lines_and_registers_only_the_public_key() {
    let app = spawn().await;
    let t = tenant_with_owner(&app, "alice").await;
    assert!(t.private_key.starts_with("tsk_") && t.private_key.len() == 47);
    let id = t.id.clone();
    let (pk, dek, role): (Vec<u8>, Option<Vec<u8>>, String) = app
        .ctx
        .db
        .read(move |c| {
            Ok(c.query_row(
                "SELECT t.static_public_key, t.wrapped_dek, m.role FROM tenants t
                 JOIN memberships m ON m.tenant_id = t.id WHERE t.id = ?1",
                [&id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?)
        })
        .await
        .unwrap();
    assert_eq!(pk, t.seed.static_public());
    assert!(dek.is_none(), "the DEK is created at the first sign-in");
    assert_eq!(role, "owner");
    // Unknown owner: refused, nothing created.
    let out = cli(&app, &["tenant", "create", "Ghost", "--owner", "nobody"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(out.stdout.is_empty());
    // An existing tenant without a key gets one once.
    let out = cli(&app, &["tenant", "set-key", "default"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("private_key=tsk_"));
    let out = cli(&app, &["tenant", "set-key", "default"]);
    assert_eq!(out.status.code(), Some(5));
}

#[tokio::test]
async fn full_http_sign_in_with_an_api_key() {
    {
        let app = spawn().await;
        let t = tenant_with_owner(&app, "alice").await;
        let key = api_key(&app, "alice", &t.id);
        let r = sign_in_http(&app, &key, &t.id, &t.seed).await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        let token = v["session_token"].as_str().unwrap();
        assert!(token.starts_with("dst_sess_"));
        let r = sess(&app, token, reqwest::Method::GET, "/api/session")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        // A bare API key cannot reach secrets.
        let r = app
            .client
            .get(app.url("/api/secrets"))
            .header("X-API-Key", &key)
            .send()
            .await
            .unwrap();
        assert!(error_message(r, 403).await.contains("handshake session"));
        // Another user's key (not a member) cannot start a handshake for the tenant.
        let bob = tenant_with_owner(&app, "bob").await;
        let bob_key = api_key(&app, "bob", &bob.id);
        let (_, m1) = hs::initiate(&t.seed, &server_public(&app).await, &t.id, None).unwrap();
        let r = app
            .client
            .post(app.url("/api/session"))
            .header("X-API-Key", &bob_key)
            .json(&json!({"tenant_id": t.id, "message": b64(&m1)}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
    }
}

#[tokio::test]
async fn first_call_needs_a_credential_and_validates_input() {
    let app = spawn().await;
    let r = app
        .client
        .post(app.url("/api/session"))
        .json(&json!({"tenant_id": "ten_0123456789abcdef", "message": "AA"}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_message(r, 401).await, "No Bearer token provided");
    let r = app
        .client
        .post(app.url("/api/session"))
        .header("X-API-Key", "not-a-key")
        .json(&json!({"tenant_id": "ten_0123456789abcdef", "message": "AA"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_message(r, 400).await,
        "Failed to verify api_key or token"
    );
    let r = app
        .client
        .post(app.url("/api/session/confirm"))
        .json(&json!({"handshake_id": "hs_nope", "message": "%%%"}))
        .send()
        .await
        .unwrap();
    assert!(error_message(r, 400).await.contains("base64url"));
    let r = app
        .client
        .post(app.url("/api/session/confirm"))
        .json(&json!({"handshake_id": "hs_nope", "message": b64(&[0u8; 96])}))
        .send()
        .await
        .unwrap();
    assert!(error_message(r, 401).await.contains("handshake"));
}

#[tokio::test]
async fn sign_in_secrets_round_trip_and_isolation() {
    let app = spawn().await;
    let t = tenant_with_owner(&app, "alice").await;
    let token = sign_in(&app, &t).await;
    assert!(token.starts_with("dst_sess_") && token.len() == 9 + 43);
    use reqwest::Method;
    let r = sess(&app, &token, Method::GET, "/api/session")
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["tenant_id"], t.id.as_str());
    assert_eq!(v["has_keys"], true);

    let r = sess(&app, &token, Method::PUT, "/api/secrets/db.password")
        .json(&json!({"value": "hunter2-swordfish"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = sess(&app, &token, Method::GET, "/api/secrets/db.password")
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["value"], "hunter2-swordfish");
    sess(&app, &token, Method::PUT, "/api/secrets/api-token")
        .json(&json!({"value": "second"}))
        .send()
        .await
        .unwrap();
    let v: Value = sess(&app, &token, Method::GET, "/api/secrets")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = v["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["api-token", "db.password"]);
    assert!(
        !v.to_string().contains("hunter2"),
        "listing shows no values"
    );

    // Another tenant's session sees none of it.
    let other = tenant_with_owner(&app, "bob").await;
    let token_b = sign_in(&app, &other).await;
    let r = sess(&app, &token_b, Method::GET, "/api/secrets/db.password")
        .send()
        .await
        .unwrap();
    assert_eq!(error_message(r, 404).await, "No such secret");

    // Failure paths.
    let r = sess(&app, &token, Method::PUT, "/api/secrets/bad%20name")
        .json(&json!({"value": "x"}))
        .send()
        .await
        .unwrap();
    assert!(error_message(r, 400).await.contains("secret name"));
    let r = sess(&app, &token, Method::PUT, "/api/secrets/big")
        .json(&json!({"value": "x".repeat(70_000)}))
        .send()
        .await
        .unwrap();
    assert!(r.status() == 400 || r.status() == 413);
    let r = sess(&app, &token, Method::PUT, "/api/secrets/x")
        .json(&json!({"nope": 1}))
        .send()
        .await
        .unwrap();
    error_message(r, 400).await;
    let r = sess(&app, &token, Method::DELETE, "/api/secrets/db.password")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = sess(&app, &token, Method::DELETE, "/api/secrets/db.password")
        .send()
        .await
        .unwrap();
    assert_eq!(error_message(r, 404).await, "No such secret");
    let r = app
        .client
        .get(app.url("/api/secrets"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_message(r, 401).await, "No Bearer token provided");
    let r = sess(&app, "dst_sess_short", Method::GET, "/api/secrets")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_message(r, 400).await,
        "Failed to verify api_key or token"
    );
    let fake = format!("dst_sess_{}", "a".repeat(43));
    let r = sess(&app, &fake, Method::GET, "/api/secrets")
        .send()
        .await
        .unwrap();
    error_message(r, 401).await;
}

#[tokio::test]
async fn refusals_create_nothing() {
    let app = spawn_with(|s| s.handshake.ttl_secs = 1).await;
    let t = tenant_with_owner(&app, "alice").await;
    let pk = server_public(&app).await;
    let tid = TenantId::parse(&t.id).unwrap();
    let p = api_key_principal(t.owner_id, &t.id);
    let begin = |m1: Vec<u8>, p: Principal| {
        let ctx = app.ctx.clone();
        let tid = tid.clone();
        async move { services::handshake::begin(&ctx, &p, &tid, &m1, &Default::default()).await }
    };

    // Wrong tenant private key: message 3 proves another static key.
    let wrong = TenantSeed::generate();
    let (init, id, m2) = begin_via_service(&app, t.owner_id, &t.id, &wrong).await;
    let (m3, _) = init.finish(&m2, &wrong.wrapping_key()).unwrap();
    let msg = error_message(confirm(&app, &id, &m3).await, 401).await;
    assert!(msg.contains("does not match"), "{msg}");
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM tenants WHERE wrapped_dek IS NOT NULL"
        )
        .await,
        0,
        "a refused first sign-in creates no data key"
    );

    // Replay: a used handshake is gone, even after a success.
    let (init, id, m2) = begin_via_service(&app, t.owner_id, &t.id, &t.seed).await;
    let (m3, _) = init.finish(&m2, &t.seed.wrapping_key()).unwrap();
    let mut altered = m3.clone();
    altered[60] ^= 0x01;
    let msg = error_message(confirm(&app, &id, &altered).await, 400).await;
    assert!(msg.contains("message 3"), "{msg}");
    let msg = error_message(confirm(&app, &id, &m3).await, 401).await;
    assert!(msg.contains("already used"), "{msg}");
    let (init, id, m2) = begin_via_service(&app, t.owner_id, &t.id, &t.seed).await;
    let (m3, _) = init.finish(&m2, &t.seed.wrapping_key()).unwrap();
    assert_eq!(confirm(&app, &id, &m3).await.status(), 200);
    error_message(confirm(&app, &id, &m3).await, 401).await;
    assert_eq!(count(&app, "SELECT count(*) FROM sessions").await, 1);

    // Altered message 1, low-order and all-zero ephemeral keys, wrong length.
    let (_, m1) = hs::initiate(&t.seed, &pk, &t.id, None).unwrap();
    let mut bad = m1.clone();
    bad[35] ^= 1;
    assert!(begin(bad, p.clone())
        .await
        .unwrap_err()
        .to_string()
        .contains("message 1"));
    let mut zero = m1.clone();
    zero[..32].copy_from_slice(&[0u8; 32]);
    assert!(begin(zero, p.clone())
        .await
        .unwrap_err()
        .to_string()
        .contains("low-order"));
    let mut low = m1.clone();
    low[..32].copy_from_slice(&{
        let mut one = [0u8; 32];
        one[0] = 1;
        one
    });
    assert!(begin(low, p.clone())
        .await
        .unwrap_err()
        .to_string()
        .contains("low-order"));
    assert!(begin(m1[..40].to_vec(), p.clone()).await.is_err());
    // Message 1 for another server key fails to authenticate.
    let (_, foreign) =
        hs::initiate(&t.seed, &hs::public_key(&Key32::random()), &t.id, None).unwrap();
    assert!(begin(foreign, p.clone()).await.is_err());

    // Only an API key of a member of this tenant may start.
    let mut not_key = p.clone();
    not_key.kind = CredentialKind::Session;
    let e = begin(m1.clone(), not_key).await.unwrap_err();
    assert!(e.to_string().contains("API key"), "{e}");
    let bob = app.create_user("bob", STRONG_PASSWORD, false).await;
    let e = begin(m1.clone(), api_key_principal(bob, &t.id))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not a member"), "{e}");
    let e = begin(
        m1.clone(),
        api_key_principal(t.owner_id, "ten_ffffffffffffffff"),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("another tenant"), "{e}");
    // A tenant without a registered key.
    let default = services::tenants::default_tenant(&app.ctx).await.unwrap();
    let e = services::handshake::begin(
        &app.ctx,
        &api_key_principal(t.owner_id, &default.id),
        &TenantId::parse(&default.id).unwrap(),
        &m1,
        &Default::default(),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("not a member") || e.to_string().contains("no handshake key"));

    // Expired handshake (ttl 1 s here).
    let (init, id, m2) = begin_via_service(&app, t.owner_id, &t.id, &t.seed).await;
    let (m3, _) = init.finish(&m2, &t.seed.wrapping_key()).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let msg = error_message(confirm(&app, &id, &m3).await, 401).await;
    assert!(msg.contains("expired"), "{msg}");

    assert_eq!(
        count(&app, "SELECT count(*) FROM sessions").await,
        1,
        "refusals created no session"
    );
    assert_eq!(app.ctx.handshakes.pending_count(), 0);
}

#[tokio::test]
async fn session_survives_a_restart_and_refresh_and_sign_out_work() {
    let app = spawn().await;
    let t = tenant_with_owner(&app, "alice").await;
    let token = sign_in(&app, &t).await;
    use reqwest::Method;
    let r = sess(&app, &token, Method::PUT, "/api/secrets/stripe")
        .json(&json!({"value": "sk_stripe_value"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.stop().await;
    let dir = app.dir;
    let s = test_settings(dir.path());
    let app = spawn_in(dir, s).await;
    assert_eq!(
        app.ctx.handshakes.live_count(),
        0,
        "a new process holds no keys"
    );
    let v: Value = sess(&app, &token, Method::GET, "/api/secrets/stripe")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["value"], "sk_stripe_value",
        "the token unsealed the key after the restart"
    );
    assert_eq!(app.ctx.handshakes.live_count(), 1);

    let before: i64 = count(&app, "SELECT idle_expires_at FROM sessions").await;
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let r = sess(&app, &token, Method::POST, "/api/session/refresh")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(v["expires_at"].as_i64().unwrap() > before);
    assert_eq!(v["tenant_id"], t.id.as_str());

    let r = sess(&app, &token, Method::DELETE, "/api/session")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(app.ctx.handshakes.live_count(), 0, "keys wiped at sign-out");
    let r = sess(&app, &token, Method::GET, "/api/secrets")
        .send()
        .await
        .unwrap();
    assert!(error_message(r, 401).await.contains("signed out"));
    let r = sess(&app, &token, Method::POST, "/api/session/refresh")
        .send()
        .await
        .unwrap();
    error_message(r, 401).await;
}

#[tokio::test]
async fn expired_session_is_refused() {
    let app = spawn_with(|s| {
        s.session.idle_timeout_secs = 1;
        s.session.absolute_timeout_secs = 1;
    })
    .await;
    let t = tenant_with_owner(&app, "alice").await;
    let token = sign_in(&app, &t).await;
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    let r = sess(&app, &token, reqwest::Method::GET, "/api/secrets")
        .send()
        .await
        .unwrap();
    assert!(error_message(r, 401).await.contains("expired"));
    assert_eq!(app.ctx.handshakes.live_count(), 0);
}

#[tokio::test]
async fn runs_webhook_with_query_token_and_encrypted_events() {
    let app = spawn_with(|s| s.handshake.max_callback_bytes = 2048).await;
    let t = tenant_with_owner(&app, "alice").await;
    let token = sign_in(&app, &t).await;
    use reqwest::Method;
    let r = sess(&app, &token, Method::POST, "/api/runs")
        .json(&json!({"workflow": "deploy"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    let run_id = v["run_id"].as_str().unwrap().to_owned();
    let run = v["session"].as_str().unwrap().to_owned();
    assert!(run.starts_with("dst_run_"));
    let now = chrono::Utc::now().timestamp();
    assert!((v["expires_at"].as_i64().unwrap() - now - 86_400).abs() < 5);

    let r = app
        .client
        .post(app.url(&format!("/workflows/deploy?dispatched_session={run}")))
        .header("content-type", "application/json")
        .body(r#"{"status":"paid","amount":42}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");
    assert_eq!(r.headers()["cache-control"], "no-store");
    let r = app
        .client
        .post(app.url("/workflows/deploy"))
        .header("Dispatched-Session", &run)
        .body(vec![0xff, 0xfe, 0x00])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);

    let v: Value = sess(
        &app,
        &token,
        Method::GET,
        &format!("/api/runs/{run_id}/events"),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let events = v["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["body"], r#"{"status":"paid","amount":42}"#);
    assert_eq!(events[0]["content_type"], "application/json");
    assert_eq!(events[1]["body_b64"], b64(&[0xff, 0xfe, 0x00]));
    let v: Value = sess(&app, &token, Method::GET, "/api/runs")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["runs"][0]["id"], run_id.as_str());

    // Refusals.
    let r = app
        .client
        .post(app.url(&format!("/workflows/other?dispatched_session={run}")))
        .body("x")
        .send()
        .await
        .unwrap();
    assert!(error_message(r, 403).await.contains("another workflow"));
    let r = app
        .client
        .post(app.url(&format!("/workflows/deploy?dispatched_session={run}")))
        .body("x".repeat(4096))
        .send()
        .await
        .unwrap();
    error_message(r, 413).await;
    let r = app
        .client
        .post(app.url(&format!("/workflows/deploy?dispatched_session={token}")))
        .body("x")
        .send()
        .await
        .unwrap();
    assert!(error_message(r, 403).await.contains("run session"));
    let r = app
        .client
        .post(app.url("/workflows/deploy"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(error_message(r, 401).await, "No Bearer token provided");
    let r = app
        .client
        .post(app.url(&format!(
            "/workflows/deploy?dispatched_session=dst_run_{}",
            "b".repeat(43)
        )))
        .body("x")
        .send()
        .await
        .unwrap();
    error_message(r, 401).await;
    // The query form works on /workflows/… only.
    let r = app
        .client
        .get(app.url(&format!("/api/secrets?dispatched_session={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(error_message(r, 401).await, "No Bearer token provided");
    // A run session carries keys but is no handshake session: secrets say what is needed.
    let r = sess(&app, &run, Method::GET, "/api/secrets")
        .send()
        .await
        .unwrap();
    assert!(error_message(r, 403).await.contains("handshake session"));
    let r = sess(&app, &run, Method::POST, "/api/runs")
        .json(&json!({"workflow": "x"}))
        .send()
        .await
        .unwrap();
    error_message(r, 403).await;
    let r = sess(&app, &token, Method::POST, "/api/runs")
        .json(&json!({"workflow": "no spaces"}))
        .send()
        .await
        .unwrap();
    error_message(r, 400).await;
    let other = tenant_with_owner(&app, "bob").await;
    let token_b = sign_in(&app, &other).await;
    let r = sess(
        &app,
        &token_b,
        Method::GET,
        &format!("/api/runs/{run_id}/events"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(error_message(r, 404).await, "No such run");

    // The run token keeps working after a restart: it unseals its own copy of the key.
    app.stop().await;
    let dir = app.dir;
    let s = test_settings(dir.path());
    let app = spawn_in(dir, s).await;
    let r = app
        .client
        .post(app.url(&format!("/workflows/deploy?dispatched_session={run}")))
        .body("after restart")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
}

#[tokio::test]
async fn the_database_holds_no_key_token_or_secret_in_the_clear() {
    let app = spawn().await;
    let t = tenant_with_owner(&app, "alice").await;
    let token = sign_in(&app, &t).await;
    use reqwest::Method;
    let secret_value = "plaintext-secret-value-0123456789";
    sess(&app, &token, Method::PUT, "/api/secrets/s1")
        .json(&json!({"value": secret_value}))
        .send()
        .await
        .unwrap();
    let v: Value = sess(&app, &token, Method::POST, "/api/runs")
        .json(&json!({"workflow": "pay"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let run = v["session"].as_str().unwrap().to_owned();
    let callback = "callback-body-that-must-be-encrypted";
    let r = app
        .client
        .post(app.url(&format!("/workflows/pay?dispatched_session={run}")))
        .body(callback)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    // The session token carries its row id, the key of the in-memory session keys.
    let session_id = gatehouse::crypto::tokens::token_id(&token, "dst_sess_").unwrap() as i64;
    let live = app
        .ctx
        .handshakes
        .live(session_id)
        .expect("the session's keys");
    let wk = *live.wrapping_key.bytes();
    let dek = *live.dek.bytes();
    let seed_priv = *t.seed.static_private().bytes();
    let mut haystack = Vec::new();
    for f in ["gatehouse.db", "gatehouse.db-wal"] {
        if let Ok(b) = std::fs::read(app.dir.path().join("data").join(f)) {
            haystack.extend(b);
        }
    }
    assert!(haystack.len() > 4096);
    let contains = |needle: &[u8]| haystack.windows(needle.len()).any(|w| w == needle);
    for (what, needle) in [
        ("wrapping key", wk.to_vec()),
        ("wrapping key b64", b64(&wk).into_bytes()),
        ("DEK", dek.to_vec()),
        ("DEK b64", b64(&dek).into_bytes()),
        ("secret value", secret_value.as_bytes().to_vec()),
        ("callback body", callback.as_bytes().to_vec()),
        ("session token", token.as_bytes().to_vec()),
        ("session token body", token.as_bytes()[9..].to_vec()),
        ("run token", run.as_bytes().to_vec()),
        ("run token body", run.as_bytes()[8..].to_vec()),
        ("tenant private key", t.private_key.as_bytes().to_vec()),
        ("tenant seed static private", seed_priv.to_vec()),
    ] {
        assert!(!contains(&needle), "{what} found in the SQLite file");
    }
    // The public key is there (sanity check that the scan sees the data).
    assert!(contains(&t.seed.static_public()));
}

#[tokio::test]
async fn rotating_the_tenant_key_rewraps_the_dek_and_ends_other_sessions() {
    let app = spawn().await;
    let t = tenant_with_owner(&app, "alice").await;
    let token = sign_in(&app, &t).await;
    let other_session = sign_in(&app, &t).await;
    use reqwest::Method;
    sess(&app, &token, Method::PUT, "/api/secrets/keep")
        .json(&json!({"value": "still here"}))
        .send()
        .await
        .unwrap();
    let new_seed = TenantSeed::generate();
    let r = sess(&app, &token, Method::POST, "/api/session/rotate-key")
        .json(&json!({"public_key": b64(&new_seed.static_public()), "wrapping_key": b64(new_seed.wrapping_key().bytes())}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let v: Value = sess(&app, &token, Method::GET, "/api/secrets/keep")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["value"], "still here");
    let r = sess(&app, &other_session, Method::GET, "/api/secrets")
        .send()
        .await
        .unwrap();
    error_message(r, 401).await;
    // The old key no longer signs in; the new one does and still decrypts.
    let (init, id, m2) = begin_via_service(&app, t.owner_id, &t.id, &t.seed).await;
    let (m3, _) = init.finish(&m2, &t.seed.wrapping_key()).unwrap();
    error_message(confirm(&app, &id, &m3).await, 401).await;
    let rotated = Tenant {
        id: t.id.clone(),
        private_key: new_seed.encode().expose().to_owned(),
        seed: new_seed,
        owner_id: t.owner_id,
    };
    let fresh = sign_in(&app, &rotated).await;
    let v: Value = sess(&app, &fresh, Method::GET, "/api/secrets/keep")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["value"], "still here");
    // The rotating session survives a restart with its re-sealed key.
    app.stop().await;
    let dir = app.dir;
    let s = test_settings(dir.path());
    let app = spawn_in(dir, s).await;
    let v: Value = sess(&app, &token, Method::GET, "/api/secrets/keep")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["value"], "still here");
    let r = sess(&app, &token, Method::POST, "/api/session/rotate-key")
        .json(&json!({"public_key": b64(&[0u8; 32]), "wrapping_key": b64(&[1u8; 32])}))
        .send()
        .await
        .unwrap();
    error_message(r, 400).await;
}

fn write_state(app: &TestApp, tenant: &str, token: &str) {
    let dir = app.dir.path().join("config/gatehouse");
    std::fs::create_dir_all(&dir).unwrap();
    let state = json!({
        "pins": {},
        "sessions": {tenant: {"server": app.addr, "tenant_id": tenant, "session_token": token, "expires_at": 0}},
        "current": tenant,
    });
    let p = dir.join("state.json");
    std::fs::write(&p, state.to_string()).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn cli_stdin(app: &TestApp, args: &[&str], input: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(bin())
        .env("XDG_CONFIG_HOME", app.dir.path().join("config"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn cli_secrets_runs_and_logout_use_the_stored_session() {
    let app = spawn().await;
    let t = tenant_with_owner(&app, "alice").await;
    let token = sign_in(&app, &t).await;
    write_state(&app, &t.id, &token);
    let app_ref = &app;
    let run = move |args: &[&str], input: &str| {
        let out = cli_stdin(app_ref, args, input);
        (
            out.status.code(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (code, _, err) = run(&["secrets", "set", "cli-secret"], "from the cli\n");
    assert_eq!(code, Some(0), "{err}");
    let (_, out, _) = run(&["secrets", "get", "cli-secret"], "");
    assert_eq!(out, "from the cli\n");
    let (_, out, _) = run(&["secrets", "list"], "");
    assert_eq!(out, "cli-secret\n");
    let (code, _, _) = run(&["secrets", "get", "missing"], "");
    assert_eq!(code, Some(4));
    let (_, out, _) = run(&["runs", "start", "nightly"], "");
    assert!(
        out.contains("run_id=run_") && out.contains("session=dst_run_"),
        "{out}"
    );
    let (code, _, _) = run(&["secrets", "rm", "cli-secret"], "");
    assert_eq!(code, Some(0));
    let (code, out, _) = run(&["logout"], "");
    assert_eq!(code, Some(0));
    assert_eq!(out, format!("tenant_id={}\n", t.id));
    let r = sess(&app, &token, reqwest::Method::GET, "/api/secrets")
        .send()
        .await
        .unwrap();
    error_message(r, 401).await;
    let (code, _, err) = run(&["secrets", "list"], "");
    assert_eq!(code, Some(1));
    assert!(err.contains("gatehouse login"), "{err}");
}

#[tokio::test]
async fn cli_login_reads_secrets_from_env_or_0600_files_only() {
    let app = spawn().await;
    let t = tenant_with_owner(&app, "alice").await;
    let out = Command::new(bin())
        .env("XDG_CONFIG_HOME", app.dir.path().join("config"))
        .env_remove("GATEHOUSE_API_KEY")
        .env_remove("GATEHOUSE_TENANT_KEY")
        .args(["login", "--server", &app.addr, "--tenant", &t.id])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("GATEHOUSE_API_KEY"));
    let f = app.dir.path().join("tsk");
    std::fs::write(&f, &t.private_key).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(bin())
        .env("XDG_CONFIG_HOME", app.dir.path().join("config"))
        .env("GATEHOUSE_API_KEY", "sk_live_whatever")
        .args([
            "login",
            "--server",
            &app.addr,
            "--tenant",
            &t.id,
            "--key-file",
        ])
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 600"));
}

#[tokio::test]
async fn cli_login_signs_in_and_pins_the_server_key() {
    {
        let app = spawn().await;
        let t = tenant_with_owner(&app, "alice").await;
        let key = api_key(&app, "alice", &t.id);
        let login = || {
            Command::new(bin())
                .env("XDG_CONFIG_HOME", app.dir.path().join("config"))
                .env("GATEHOUSE_API_KEY", &key)
                .env("GATEHOUSE_TENANT_KEY", &t.private_key)
                .args(["login", "--server", &app.addr, "--tenant", &t.id])
                .output()
                .unwrap()
        };
        let out = login();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(stdout.contains(&format!("tenant_id={}", t.id)));
        assert!(!stdout.contains("dst_sess_"));
        let state = app.dir.path().join("config/gatehouse/state.json");
        assert_eq!(
            std::fs::metadata(&state).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let text = std::fs::read_to_string(&state).unwrap();
        assert!(text.contains(&b64(&server_public(&app).await)));
        assert!(!text.contains(&t.private_key));
        let out = cli_stdin(&app, &["secrets", "set", "k"], "v");
        assert!(out.status.success());
        // A different server key at the same URL is refused (pinning).
        let v: Value = serde_json::from_str(&text).unwrap();
        let mut v = v;
        v["pins"][app.addr.as_str()] = json!(b64(&hs::public_key(&Key32::random())));
        std::fs::write(&state, v.to_string()).unwrap();
        let out = login();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("changed"));
    }
}

#[tokio::test]
async fn openapi_lists_the_handshake_endpoints() {
    let doc = gatehouse::http::openapi::document(&gatehouse::config::Settings::default());
    let json = serde_json::to_value(&doc).unwrap();
    for p in [
        "/api/session",
        "/api/session/confirm",
        "/api/session/server-key",
        "/api/secrets/{name}",
        "/api/runs",
        "/workflows/{name}",
    ] {
        assert!(json["paths"].get(p).is_some(), "{p} missing");
    }
}

#[tokio::test]
async fn confirm_sets_an_http_only_cookie_when_asked() {
    let app = spawn().await;
    let t = tenant_with_owner(&app, "alice").await;
    let (init, id, m2) = begin_via_service(&app, t.owner_id, &t.id, &t.seed).await;
    let (m3, _) = init.finish(&m2, &t.seed.wrapping_key()).unwrap();
    let r = app
        .client
        .post(app.url("/api/session/confirm"))
        .json(&json!({"handshake_id": id, "message": b64(&m3), "cookie": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    let v: Value = r.json().await.unwrap();
    let token = v["session_token"].as_str().unwrap();
    assert!(
        cookie.starts_with(&format!("gatehouse_session={token}")),
        "{cookie}"
    );
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Path=/")
    );
}

#[tokio::test]
async fn tokens_never_reach_the_server_log() {
    let app = spawn().await;
    let t = tenant_with_owner(&app, "alice").await;
    let token = sign_in(&app, &t).await;
    let v: Value = sess(&app, &token, reqwest::Method::POST, "/api/runs")
        .json(&json!({"workflow": "pay"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let run = v["session"].as_str().unwrap().to_owned();
    app.stop().await;
    // The real binary, on the same data directory, in another process.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(bin())
        .env("GATEHOUSE_DATA_DIR", app.dir.path().join("data"))
        .env("GATEHOUSE_BIND", format!("127.0.0.1:{port}"))
        .env("GATEHOUSE_CLEANUP__SCHEDULE", "")
        .arg("serve")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let r = client
        .post(format!("{base}/workflows/pay?dispatched_session={run}&x=1"))
        .body("logged?")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        202,
        "the run token unsealed its key in a fresh process"
    );
    let r = client
        .get(format!("{base}/api/secrets"))
        .header("Dispatched-Session", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let bad = format!("dst_run_{}", "Z".repeat(43));
    let r = client
        .post(format!("{base}/workflows/pay?dispatched_session={bad}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let out = child.wait_with_output().unwrap();
    let log =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        log.contains("/workflows/pay?dispatched_session=[REDACTED]"),
        "{log}"
    );
    for secret in [&token[9..], &run[8..], &bad[8..], &t.private_key[4..]] {
        assert!(!log.contains(secret), "a secret reached the log:\n{log}");
    }
}

#[tokio::test]
async fn tenants_can_be_created_from_a_client_made_public_key_by_admins_only() {
    let app = spawn().await;
    let t = tenant_with_owner(&app, "alice").await;
    let token = sign_in(&app, &t).await;
    let seed = TenantSeed::generate();
    let body = json!({"name": "Web made", "public_key": b64(&seed.static_public())});
    let r = sess(&app, &token, reqwest::Method::POST, "/api/tenants")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(error_message(r, 403).await.contains("tenants.manage"));
    let r = app
        .client
        .post(app.url("/api/tenants"))
        .json(&body)
        .send()
        .await
        .unwrap();
    error_message(r, 401).await;

    let admin_id = app.create_user("root", STRONG_PASSWORD, true).await;
    let admin_tenant = tenant_owned_by(&app, "root", admin_id);
    let admin = sign_in(&app, &admin_tenant).await;
    let r = sess(&app, &admin, reqwest::Method::POST, "/api/tenants")
        .json(&json!({"name": "Web made", "public_key": b64(&[0u8; 32])}))
        .send()
        .await
        .unwrap();
    error_message(r, 400).await;
    let r = sess(&app, &admin, reqwest::Method::POST, "/api/tenants")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    let created = Tenant {
        id: v["tenant_id"].as_str().unwrap().to_owned(),
        private_key: seed.encode().expose().to_owned(),
        seed,
        owner_id: admin_id,
    };
    // The admin owns it and signs in with the private key only they hold.
    let s = sign_in(&app, &created).await;
    assert!(s.starts_with("dst_sess_"));
    let r = sess(&app, &admin, reqwest::Method::POST, "/api/tenants")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_message(r, 409).await,
        "A tenant with that slug already exists"
    );
}

#[tokio::test]
async fn a_password_change_ends_handshake_sessions() {
    let app = spawn().await;
    let t = tenant_with_owner(&app, "alice").await;
    let token = sign_in(&app, &t).await;
    let r = sess(&app, &token, reqwest::Method::GET, "/api/secrets")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    services::users::set_password(
        &app.ctx,
        t.owner_id,
        &gatehouse::services::types::Password::new("another strong passphrase 77".into()),
        None,
    )
    .await
    .unwrap();
    let r = sess(&app, &token, reqwest::Method::GET, "/api/secrets")
        .send()
        .await
        .unwrap();
    error_message(r, 401).await;
    assert_eq!(
        app.ctx.handshakes.live_count(),
        0,
        "the ended session's keys are wiped"
    );
}

#[tokio::test]
async fn test_mode_sessions_see_only_test_data() {
    let app = spawn().await;
    let t = tenant_with_owner(&app, "alice").await;
    let live = sign_in(&app, &t).await;
    let (init, m1) = hs::initiate(&t.seed, &server_public(&app).await, &t.id, None).unwrap();
    let mut p = api_key_principal(t.owner_id, &t.id);
    p.mode = Mode::Test;
    let b = services::handshake::begin(
        &app.ctx,
        &p,
        &TenantId::parse(&t.id).unwrap(),
        &m1,
        &Default::default(),
    )
    .await
    .unwrap();
    let (m3, _) = init.finish(&b.message, &t.seed.wrapping_key()).unwrap();
    let v: Value = confirm(&app, &b.handshake_id, &m3)
        .await
        .json()
        .await
        .unwrap();
    let test = v["session_token"].as_str().unwrap().to_owned();
    use reqwest::Method;
    sess(&app, &live, Method::PUT, "/api/secrets/shared-name")
        .json(&json!({"value": "live value"}))
        .send()
        .await
        .unwrap();
    let r = sess(&app, &test, Method::GET, "/api/secrets/shared-name")
        .send()
        .await
        .unwrap();
    assert_eq!(error_message(r, 404).await, "No such secret");
    sess(&app, &test, Method::PUT, "/api/secrets/shared-name")
        .json(&json!({"value": "test value"}))
        .send()
        .await
        .unwrap();
    let v: Value = sess(&app, &live, Method::GET, "/api/secrets/shared-name")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["value"], "live value");
    let v: Value = sess(&app, &test, Method::GET, "/api/session")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["mode"], "test");
}
