//! API keys: the three management contracts, header forms, failure paths, modes, plans and
//! rate limits, concurrency, roll overlap, single-active, the CLI, and that no secret is stored.

use std::time::Duration;

use gatehouse::services::keys::{self, Actor, KeyMode, NewKey};
use gatehouse::services::types::Username;
use rusqlite::OptionalExtension;
use serde_json::{json, Value};

use crate::helpers::*;

/// Creates a key for `user` through the service layer (as the operator); returns the secret.
pub async fn new_key(app: &TestApp, user: &str, adjust: impl FnOnce(&mut NewKey)) -> String {
    new_key_with_id(app, user, adjust).await.1
}

/// [`new_key`], with the key's id: `(id, secret)`.
pub async fn new_key_with_id(
    app: &TestApp,
    user: &str,
    adjust: impl FnOnce(&mut NewKey),
) -> (i64, String) {
    let mut new = NewKey {
        name: "test key".into(),
        user: Some(Username::parse(user).unwrap()),
        ..NewKey::default()
    };
    adjust(&mut new);
    let created = keys::create(&app.ctx, &Actor::operator(), new)
        .await
        .expect("create key");
    (created.key.id, created.secret.expose().to_owned())
}

/// A user with a live key: (user id, key).
pub async fn user_with_key(app: &TestApp, name: &str) -> (i64, String) {
    let id = app.create_user(name, STRONG_PASSWORD, false).await;
    (id, new_key(app, name, |_| {}).await)
}

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

/// Flips one character inside the random part (the checksum no longer matches).
pub fn typo(key: &str) -> String {
    let mut b = key.as_bytes().to_vec();
    b[10] = if b[10] == b'a' { b'b' } else { b'a' };
    String::from_utf8(b).unwrap()
}

async fn get(app: &TestApp, path: &str, key: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

async fn post(app: &TestApp, path: &str, key: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn v1_create_list_revoke_and_the_secret_is_shown_once() {
    let app = spawn().await;
    let (uid, k) = user_with_key(&app, "alice").await;
    let r = post(&app, "/v1/api-keys", &k, json!({"name": "ci"})).await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(
        secret.starts_with("sk_live_") && secret.len() == 8 + 38,
        "{secret}"
    );
    assert!(gatehouse::crypto::tokens::api_key_well_formed(&secret));
    assert_eq!(created["name"], "ci");
    assert_eq!(created["mode"], "live");
    assert_eq!(created["plan"], "free");
    assert_eq!(created["user_id"], uid);
    assert_eq!(
        created["masked"],
        format!("sk_live_…{}", &secret[secret.len() - 4..])
    );
    let id = created["id"].as_i64().unwrap();

    let r = get(&app, "/v1/api-keys", &secret).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(
        !text.contains(&secret) && !text.contains(&k),
        "listing leaks a key"
    );
    let list: Value = serde_json::from_str(&text).unwrap();
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert!(data.iter().all(|d| d.get("secret").is_none()));
    assert_eq!(data[0]["id"], id, "newest first");

    let r = app
        .client
        .delete(app.url(&format!("/v1/api-keys/{id}")))
        .bearer_auth(&k)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(v["revoked_at"].as_i64().is_some());
    let msg = error_message(get(&app, "/v1/api-keys", &secret).await, 401).await;
    assert_eq!(msg, "API key has been revoked");
    // Revoking again is idempotent; the listing no longer shows it.
    let r = app
        .client
        .delete(app.url(&format!("/v1/api-keys/{id}")))
        .bearer_auth(&k)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let list: Value = get(&app, "/v1/api-keys", &k).await.json().await.unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn all_three_header_forms_are_accepted() {
    let app = spawn().await;
    let (_, k) = user_with_key(&app, "alice").await;
    let forms = [
        ("authorization", format!("Bearer {k}")),
        ("authorization", format!("ApiKey {k}")),
        ("x-api-key", k.clone()),
    ];
    for (name, value) in forms {
        let r = app
            .client
            .get(app.url("/v1/api-keys"))
            .header(name, &value)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{name}: {value}");
    }
}

#[tokio::test]
async fn credential_failure_paths() {
    let app = spawn().await;
    let (_, k) = user_with_key(&app, "alice").await;
    let r = app
        .client
        .get(app.url("/v1/api-keys"))
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("www-authenticate").is_some());
    assert_eq!(error_message(r, 401).await, "No Bearer token provided");
    for bad in [
        typo(&k),
        k[..k.len() - 1].to_owned(),
        format!("{k}x"),
        k.replace("sk_live_", "xk_live_"),
        k.replace("sk_live_", "sk_prod_"),
        "sk_live_".to_owned(),
    ] {
        let msg = error_message(get(&app, "/v1/api-keys", &bad).await, 400).await;
        assert_eq!(msg, "Failed to verify api_key or token", "{bad}");
    }
    let unknown = gatehouse::crypto::tokens::new_api_key("sk_live_");
    let msg = error_message(get(&app, "/v1/api-keys", unknown.expose()).await, 401).await;
    assert_eq!(msg, "Invalid API key");
    let r = app
        .client
        .get(app.url("/v1/api-keys"))
        .header("authorization", "Bearer ")
        .send()
        .await
        .unwrap();
    error_message(r, 400).await;
    // An expiring key stops at its expiry, even with the cache warm.
    let short = new_key(&app, "alice", |n| {
        n.expires_at = Some(gatehouse::store::now() + 1)
    })
    .await;
    assert_eq!(get(&app, "/v1/api-keys", &short).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let msg = error_message(get(&app, "/v1/api-keys", &short).await, 401).await;
    assert_eq!(msg, "API key has expired");
}

#[tokio::test]
async fn create_validation_failures() {
    let app = spawn().await;
    let (_, k) = user_with_key(&app, "alice").await;
    let past = gatehouse::store::now() - 10;
    let cases: &[(Value, u16)] = &[
        (json!({"name": ""}), 400),
        (json!({"name": "x".repeat(101)}), 400),
        (json!({"name": "a", "mode": "prod"}), 400),
        (json!({"name": "a", "plan": "nope"}), 400),
        (json!({"name": "a", "plan": "pro"}), 403),
        (json!({"name": "a", "expires_at": past}), 400),
        (json!({"name": "a", "scopes": ["bad scope"]}), 400),
        (json!({"name": "a", "tenant_id": "nope"}), 400),
        (
            json!({"name": "a", "tenant_id": "ten_0123456789abcdef"}),
            404,
        ),
        (json!({"name": "a", "user": "ghost"}), 404),
        (json!({"nom": "a"}), 400),
        (json!({"name": 5}), 400),
    ];
    for (body, status) in cases {
        let r = post(&app, "/v1/api-keys", &k, body.clone()).await;
        error_message(r, *status).await;
    }
    let r = app
        .client
        .post(app.url("/v1/api-keys"))
        .bearer_auth(&k)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    error_message(r, 400).await;
    let r = app
        .client
        .delete(app.url("/v1/api-keys/abc"))
        .bearer_auth(&k)
        .send()
        .await
        .unwrap();
    error_message(r, 400).await;
    let r = post(
        &app,
        "/v1/api-keys/999/roll",
        &k,
        json!({"expire_old_in": 10}),
    )
    .await;
    error_message(r, 404).await;
    // Nothing half-written: still exactly one key.
    let list: Value = get(&app, "/v1/api-keys", &k).await.json().await.unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
}

/// A roll of key `id` with a raw body of the given content type, or with no body at all.
async fn roll_raw(
    app: &TestApp,
    id: i64,
    key: &str,
    body: Option<(&str, &'static str)>,
) -> reqwest::Response {
    let req = app
        .client
        .post(app.url(&format!("/v1/api-keys/{id}/roll")))
        .bearer_auth(key);
    let req = match body {
        Some((content_type, body)) => req.header("content-type", content_type).body(body),
        None => req,
    };
    req.send().await.unwrap()
}

#[tokio::test]
async fn roll_keeps_the_old_key_for_the_overlap() {
    let app = spawn().await;
    let (_, k) = user_with_key(&app, "alice").await;
    let list: Value = get(&app, "/v1/api-keys", &k).await.json().await.unwrap();
    let id = list["data"][0]["id"].as_i64().unwrap();
    let r = post(
        &app,
        &format!("/v1/api-keys/{id}/roll"),
        &k,
        json!({"expire_old_in": 60}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let rolled: Value = r.json().await.unwrap();
    let new = rolled["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, k);
    assert_eq!(rolled["rolled_from"], id);
    assert_eq!(rolled["name"], "test key");
    let now = gatehouse::store::now();
    let old_exp = rolled["old_expires_at"].as_i64().unwrap();
    assert!(
        (now + 58..=now + 61).contains(&old_exp),
        "{old_exp} vs {now}"
    );
    // Both work during the overlap.
    assert_eq!(get(&app, "/v1/api-keys", &k).await.status(), 200);
    assert_eq!(get(&app, "/v1/api-keys", &new).await.status(), 200);
    // Too long an overlap is refused.
    let new_id = rolled["id"].as_i64().unwrap();
    let r = post(
        &app,
        &format!("/v1/api-keys/{new_id}/roll"),
        &new,
        json!({"expire_old_in": 99_999_999}),
    )
    .await;
    error_message(r, 400).await;
    // A body that is not a valid roll is refused, not read as "no overlap given" (which would
    // end the old key after the default hour instead of the day asked for).
    for body in [
        json!({"expire_old_in": "86400"}),
        json!({"expire_old_in": -1}),
    ] {
        let r = post(&app, &format!("/v1/api-keys/{new_id}/roll"), &new, body).await;
        let msg = error_message(r, 400).await;
        assert!(msg.starts_with("Invalid request body"), "{msg}");
    }
    let r = roll_raw(
        &app,
        new_id,
        &new,
        Some(("application/json", "{\"expire_old_in\": 60")),
    )
    .await;
    assert!(error_message(r, 400).await.starts_with("Malformed JSON"));
    let r = roll_raw(&app, new_id, &new, Some(("text/plain", "{}"))).await;
    error_message(r, 415).await;
    // A zero overlap ends the old key at once, though the cache knows it.
    let r = post(
        &app,
        &format!("/v1/api-keys/{new_id}/roll"),
        &new,
        json!({"expire_old_in": 0}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let third: Value = r.json().await.unwrap();
    let msg = error_message(get(&app, "/v1/api-keys", &new).await, 401).await;
    assert_eq!(msg, "API key has expired");
    let third_id = third["id"].as_i64().unwrap();
    let third = third["secret"].as_str().unwrap();
    assert_eq!(get(&app, "/v1/api-keys", third).await.status(), 200);
    // Rolling an expired key is a conflict; no body at all takes the default overlap.
    error_message(roll_raw(&app, new_id, third, None).await, 409).await;
    let r = roll_raw(&app, third_id, third, None).await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    let old_exp = v["old_expires_at"].as_i64().unwrap();
    let now = gatehouse::store::now();
    assert!((now + 3_598..=now + 3_601).contains(&old_exp), "{old_exp}");
}

#[tokio::test]
async fn test_keys_see_and_change_only_test_data() {
    let app = spawn().await;
    let (_, live) = user_with_key(&app, "alice").await;
    let test = new_key(&app, "alice", |n| n.mode = Some(KeyMode::Test)).await;
    assert!(test.starts_with("sk_test_"));
    let r = post(&app, "/v1/api-keys", &test, json!({"name": "t2"})).await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["mode"], "test");
    assert!(v["secret"].as_str().unwrap().starts_with("sk_test_"));
    let r = post(
        &app,
        "/v1/api-keys",
        &test,
        json!({"name": "x", "mode": "live"}),
    )
    .await;
    assert!(error_message(r, 403).await.contains("test-mode"));
    let list: Value = get(&app, "/v1/api-keys", &test).await.json().await.unwrap();
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert!(data.iter().all(|d| d["mode"] == "test"));
    let live_list: Value = get(&app, "/v1/api-keys", &live).await.json().await.unwrap();
    let live_data = live_list["data"].as_array().unwrap();
    assert_eq!(live_data.len(), 1);
    let live_id = live_data[0]["id"].as_i64().unwrap();
    let r = app
        .client
        .delete(app.url(&format!("/v1/api-keys/{live_id}")))
        .bearer_auth(&test)
        .send()
        .await
        .unwrap();
    error_message(r, 404).await;
    assert_eq!(get(&app, "/v1/api-keys", &live).await.status(), 200);
}

#[tokio::test]
async fn other_users_keys_are_invisible_and_admins_manage_all() {
    let app = spawn().await;
    let (_, alice) = user_with_key(&app, "alice").await;
    let (bob_id, bob) = user_with_key(&app, "bob").await;
    app.create_user("root", STRONG_PASSWORD, true).await;
    let admin = new_key(&app, "root", |_| {}).await;
    let bob_list: Value = get(&app, "/api/accounts/api-keys/", &bob)
        .await
        .json()
        .await
        .unwrap();
    let bob_key_id = bob_list[0]["id"].as_i64().unwrap();

    // Alice cannot see or revoke Bob's key, nor list his keys.
    let r = app
        .client
        .delete(app.url(&format!("/api/accounts/api-keys/{bob_key_id}/")))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    error_message(r, 404).await;
    let r = app
        .client
        .delete(app.url(&format!("/v1/api-keys/{bob_key_id}")))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    error_message(r, 404).await;
    let r = get(&app, "/api/accounts/api-keys/?user=bob", &alice).await;
    assert!(error_message(r, 403).await.contains("keys.manage_all"));
    let r = post(
        &app,
        "/api/accounts/api-keys/",
        &alice,
        json!({"name": "x", "user": "bob"}),
    )
    .await;
    error_message(r, 403).await;
    let mine: Value = get(&app, "/api/accounts/api-keys/", &alice)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine.as_array().unwrap().len(), 1);

    // The admin sees everyone's keys, one user's with ?user=, and acts for Bob.
    let all: Value = get(&app, "/api/accounts/api-keys/", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all.as_array().unwrap().len(), 3);
    let only_bob: Value = get(&app, "/api/accounts/api-keys/?user=bob", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(only_bob.as_array().unwrap().len(), 1);
    assert_eq!(only_bob[0]["username"], "bob");
    let r = post(
        &app,
        "/api/accounts/api-keys/",
        &admin,
        json!({"name": "for bob", "user": "bob", "plan": "pro"}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let made: Value = r.json().await.unwrap();
    assert_eq!(made["user_id"], bob_id);
    assert_eq!(made["plan"], "pro");
    let r = app
        .client
        .delete(app.url(&format!("/api/accounts/api-keys/{bob_key_id}/")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let msg = error_message(get(&app, "/keys", &bob).await, 401).await;
    assert_eq!(msg, "API key has been revoked");
    let r = get(&app, "/api/accounts/api-keys/?user=nobody", &admin).await;
    error_message(r, 404).await;
}

#[tokio::test]
async fn agent_api_contract() {
    let app = spawn().await;
    let (_, k) = user_with_key(&app, "alice").await;
    let r = get(&app, "/keys/new", &k).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["message"], "API key generated successfully");
    let pk = v["publicKey"].as_str().unwrap().to_owned();
    assert!(pk.starts_with("pk_live_"));
    assert!(gatehouse::crypto::tokens::api_key_well_formed(&pk));
    let r = app
        .client
        .post(app.url("/keys/new?name=agent"))
        .bearer_auth(&pk)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = get(&app, "/keys", &pk).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let list = v["apiKeys"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[0]["name"], "agent");
    let masked = list[1]["publicKey"].as_str().unwrap();
    assert_eq!(masked, format!("pk_live_…{}", &pk[pk.len() - 4..]));
    assert!(list[1]["created_at"].as_i64().is_some());
    assert!(!v.to_string().contains(&pk));
    let r = app.client.get(app.url("/keys/new")).send().await.unwrap();
    assert_eq!(error_message(r, 401).await, "No Bearer token provided");
}

#[tokio::test]
async fn single_active_per_user_revokes_the_previous_key() {
    let app = spawn_with(|s| s.keys.single_active_per_user = true).await;
    let (_, k1) = user_with_key(&app, "alice").await;
    let test = new_key(&app, "alice", |n| n.mode = Some(KeyMode::Test)).await;
    assert_eq!(get(&app, "/v1/api-keys", &k1).await.status(), 200);
    let r = post(&app, "/api/accounts/api-keys/", &k1, json!({"name": "k2"})).await;
    assert_eq!(r.status(), 201);
    let k2: Value = r.json().await.unwrap();
    let k2 = k2["secret"].as_str().unwrap();
    let msg = error_message(get(&app, "/v1/api-keys", &k1).await, 401).await;
    assert_eq!(msg, "API key has been revoked");
    assert_eq!(get(&app, "/v1/api-keys", k2).await.status(), 200);
    // The other mode's key is not touched.
    assert_eq!(get(&app, "/v1/api-keys", &test).await.status(), 200);
}

#[tokio::test]
async fn hourly_limit_headers_and_429_after_exactly_the_limit() {
    let app = spawn_with(|s| {
        s.plans.get_mut("free").unwrap().requests_per_hour = 5;
        s.plans.get_mut("test").unwrap().requests_per_hour = 2;
    })
    .await;
    let (_, k) = user_with_key(&app, "alice").await;
    let before = gatehouse::store::now() as u64;
    for i in 0..5u32 {
        // Errors count too, and carry the headers: every other call is a 404.
        let r = if i % 2 == 0 {
            get(&app, "/v1/api-keys", &k).await
        } else {
            app.client
                .delete(app.url("/v1/api-keys/424242"))
                .header("x-api-key", &k)
                .send()
                .await
                .unwrap()
        };
        assert_eq!(r.status(), if i % 2 == 0 { 200 } else { 404 });
        assert_eq!(header(&r, "x-ratelimit-limit").as_deref(), Some("5"));
        let remaining: u32 = header(&r, "x-ratelimit-remaining")
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(remaining, 4 - i);
        let reset: u64 = header(&r, "x-ratelimit-reset").unwrap().parse().unwrap();
        assert!(reset >= before && reset <= before + 3_601, "{reset}");
    }
    let r = get(&app, "/v1/api-keys", &k).await;
    assert_eq!(header(&r, "x-ratelimit-remaining").as_deref(), Some("0"));
    assert_eq!(header(&r, "x-ratelimit-limit").as_deref(), Some("5"));
    let retry = retry_after(&r);
    assert!((1..=720).contains(&retry), "{retry}");
    assert_eq!(error_message(r, 429).await, "Rate limit exceeded");
    // Test keys get the lower test plan, whatever their own plan.
    let t = new_key(&app, "alice", |n| n.mode = Some(KeyMode::Test)).await;
    for _ in 0..2 {
        let r = get(&app, "/keys", &t).await;
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "x-ratelimit-limit").as_deref(), Some("2"));
    }
    error_message(get(&app, "/keys", &t).await, 429).await;
    // Requests without a key carry no rate-limit headers.
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert!(r.headers().get("x-ratelimit-limit").is_none());
}

#[tokio::test]
async fn concurrency_cap_answers_429() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_with(|s| s.plans.get_mut("free").unwrap().concurrent = 1).await;
    let (_, k) = user_with_key(&app, "alice").await;
    // Hold one request open: headers sent, body still missing.
    let mut slow = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .unwrap();
    let body = br#"{"name": "held"}"#;
    let head = format!(
        "POST /v1/api-keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {k}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    slow.write_all(&body[..7]).await.unwrap();
    let mut held = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(40)).await;
        let r = get(&app, "/v1/api-keys", &k).await;
        if r.status() == 429 {
            assert!(r.headers().get("x-ratelimit-limit").is_some());
            assert!(r.headers().get("retry-after").is_some());
            assert_eq!(error_message(r, 429).await, "Rate limit exceeded");
            held = true;
            break;
        }
    }
    assert!(held, "the second concurrent request was not refused");
    // Finish the slow request: its slot is freed.
    slow.write_all(&body[7..]).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::io::AsyncReadExt::read(&mut slow, &mut buf)
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 201"));
    drop(slow);
    assert_eq!(get(&app, "/v1/api-keys", &k).await.status(), 200);
}

#[tokio::test]
async fn secrets_are_not_in_the_database_file_or_debug() {
    let app = spawn().await;
    let (_, k) = user_with_key(&app, "alice").await;
    let r = post(&app, "/v1/api-keys", &k, json!({"name": "grep me"})).await;
    let v: Value = r.json().await.unwrap();
    let secret = v["secret"].as_str().unwrap().to_owned();
    let r = get(&app, "/keys/new", &k).await;
    let pk: Value = r.json().await.unwrap();
    let pk = pk["publicKey"].as_str().unwrap().to_owned();
    // Use them, and let last_used_at be flushed.
    get(&app, "/v1/api-keys", &secret).await;
    gatehouse::services::keys::flush(&app.ctx).await.unwrap();
    let db = app.ctx.settings.database_path();
    let mut bytes = std::fs::read(&db).unwrap();
    let wal = db.with_extension("db-wal");
    assert!(wal.exists(), "expected a WAL file");
    bytes.extend(std::fs::read(&wal).unwrap());
    let grep = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(grep("grep me"), "the test must see the rows it writes");
    for s in [&k, &secret, &pk] {
        assert!(!grep(s), "a key is stored in clear");
        assert!(
            !grep(&s[8..40]),
            "the random part of a key is stored in clear"
        );
    }
    let created = keys::create(
        &app.ctx,
        &Actor::operator(),
        NewKey {
            name: "dbg".into(),
            user: Some(Username::parse("alice").unwrap()),
            ..NewKey::default()
        },
    )
    .await
    .unwrap();
    assert!(!format!("{created:?}").contains(created.secret.expose()));
}

#[tokio::test]
async fn last_used_at_is_flushed_in_batches() {
    let app = spawn_with(|s| s.keys.last_used_flush_secs = 1).await;
    let (_, k) = user_with_key(&app, "alice").await;
    let list: Value = get(&app, "/v1/api-keys", &k).await.json().await.unwrap();
    let id = list["data"][0]["id"].as_i64().unwrap();
    // The listing already shows the buffered use.
    assert!(list["data"][0]["last_used_at"].as_i64().is_some());
    let mut flushed = None;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        flushed = stored_last_used(&app, id).await;
        if flushed.is_some() {
            break;
        }
    }
    let at = flushed.expect("last_used_at was not flushed");
    assert!((gatehouse::store::now() - at).abs() <= 5);
}

/// `last_used_at` as stored for key `id`.
async fn stored_last_used(app: &TestApp, id: i64) -> Option<i64> {
    app.ctx
        .db
        .read(move |c| {
            Ok(c.query_row(
                "SELECT last_used_at FROM api_key_usage WHERE key_id = ?1",
                [id],
                |r| r.get::<_, Option<i64>>(0),
            )
            .optional()?
            .flatten())
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn last_used_at_is_kept_to_its_resolution() {
    // With the cache off every request reads the key again from SQLite: the use recorded in
    // memory still holds the next one back.
    for (resolution, capacity, moves) in [
        (3600, 10_000, false),
        (3600, 0, false),
        (1, 10_000, true),
        (1, 0, true),
    ] {
        let app = spawn_with(|s| {
            s.keys.last_used_resolution_secs = resolution;
            s.keys.cache_capacity = capacity;
        })
        .await;
        let (_, k) = user_with_key(&app, "alice").await;
        let list: Value = get(&app, "/v1/api-keys", &k).await.json().await.unwrap();
        let id = list["data"][0]["id"].as_i64().unwrap();
        keys::flush(&app.ctx).await.unwrap();
        let first = stored_last_used(&app, id)
            .await
            .expect("first use recorded");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let list: Value = get(&app, "/v1/api-keys", &k).await.json().await.unwrap();
        keys::flush(&app.ctx).await.unwrap();
        let second = stored_last_used(&app, id).await.unwrap();
        assert_eq!(
            second > first,
            moves,
            "resolution {resolution} s, cache capacity {capacity}"
        );
        assert_eq!(list["data"][0]["last_used_at"], json!(second));
    }
}

#[tokio::test]
async fn a_flush_larger_than_one_transaction_writes_every_key() {
    let app = spawn().await;
    app.create_user("alice", STRONG_PASSWORD, false).await;
    let n = keys::FLUSH_CHUNK + 40;
    let mut secrets = Vec::with_capacity(n);
    for _ in 0..n {
        secrets.push(new_key(&app, "alice", |_| {}).await);
    }
    for s in &secrets {
        keys::verify_with(&app.ctx, s, None).await.unwrap();
    }
    keys::flush(&app.ctx).await.unwrap();
    let (used, unused): (i64, i64) = app
        .ctx
        .db
        .read(|c| {
            Ok(c.query_row(
                "SELECT count(g.last_used_at), count(*) - count(g.last_used_at)
                 FROM api_keys k LEFT JOIN api_key_usage g ON g.key_id = k.id",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?)
        })
        .await
        .unwrap();
    assert_eq!((used, unused), (n as i64, 0));
}

#[tokio::test]
async fn cli_key_create_list_revoke() {
    // The default 10 s flush: the change poll, not the flush, brings the CLI's revoke in.
    let app = spawn().await;
    app.create_user("alice", STRONG_PASSWORD, false).await;
    let run = |args: &[&str]| cli(&app, args);
    let out = run(&[
        "key", "create", "--user", "alice", "--name", "cli", "--mode", "test",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let key = stdout.trim().to_owned();
    assert_eq!(stdout, format!("{key}\n"), "the key alone on stdout");
    assert!(key.starts_with("sk_test_"));
    assert_eq!(get(&app, "/v1/api-keys", &key).await.status(), 200);

    let out = run(&["key", "list", "--user", "alice", "--json"]);
    assert!(out.status.success());
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        list[0]["masked"],
        format!("sk_test_…{}", &key[key.len() - 4..])
    );
    let id = list[0]["id"].as_i64().unwrap().to_string();
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&key));

    let out = run(&["key", "revoke", &id]);
    assert!(out.status.success());
    // Another process revoked it: the change poll (once a second) drops the cached key.
    assert!(
        refused_within(&app, &key, Duration::from_secs(3)).await,
        "a key revoked by the CLI kept working"
    );
    assert_eq!(run(&["key", "revoke", "424242"]).status.code(), Some(4));
    assert_eq!(
        run(&["key", "create", "--user", "ghost", "--name", "x"])
            .status
            .code(),
        Some(4)
    );
    assert_eq!(
        run(&["key", "create", "--user", "alice", "--name", "x", "--plan", "gold"])
            .status
            .code(),
        Some(1)
    );
}

/// Whether `key` is refused (401) within `limit`, asking every 100 ms.
async fn refused_within(app: &TestApp, key: &str, limit: Duration) -> bool {
    let until = std::time::Instant::now() + limit;
    while std::time::Instant::now() < until {
        if get(app, "/v1/api-keys", key).await.status() == 401 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn cli_user_disable_stops_a_cached_key() {
    let app = spawn().await;
    let (_, k) = user_with_key(&app, "alice").await;
    // Cached now, and trusted for minutes: only the change poll can drop it.
    assert_eq!(get(&app, "/v1/api-keys", &k).await.status(), 200);
    let out = cli(&app, &["user", "disable", "alice"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        refused_within(&app, &k, Duration::from_secs(3)).await,
        "the key of a user disabled by the CLI kept working"
    );
    // The refusal is the owner's state, not a dropped cache entry that happened to miss.
    let r = app
        .client
        .post(app.url("/api/verify"))
        .json(&serde_json::json!({ "token": k }))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["reason"], "revoked");
}

#[tokio::test]
async fn disabling_the_owner_stops_the_key_at_once() {
    let app = spawn().await;
    let (uid, k) = user_with_key(&app, "alice").await;
    assert_eq!(get(&app, "/v1/api-keys", &k).await.status(), 200);
    gatehouse::services::users::set_disabled(&app.ctx, uid, true)
        .await
        .unwrap();
    error_message(get(&app, "/v1/api-keys", &k).await, 401).await;
}

#[tokio::test]
async fn openapi_lists_the_key_endpoints_with_both_schemes() {
    let doc = serde_json::to_value(gatehouse::http::openapi::document(
        &gatehouse::config::Settings::default(),
    ))
    .unwrap();
    for path in [
        "/v1/api-keys",
        "/v1/api-keys/{id}",
        "/v1/api-keys/{id}/roll",
        "/api/accounts/api-keys/",
        "/api/accounts/api-keys/{id}/",
        "/keys",
        "/keys/new",
        "/api/verify",
        "/api/auth/forward",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["api_key"]["name"], "X-API-Key");
}
