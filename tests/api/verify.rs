//! `POST /api/verify` and `GET /api/auth/forward`: verdicts, reasons, immediate revocation with
//! a warm cache, shared quota, per-address throttling, identity headers, redirects.

use std::time::Duration;

use gatehouse::services::keys::KeyMode;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::keys::{new_key, new_key_with_id, typo, user_with_key};

async fn verify(app: &TestApp, token: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/verify"))
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap()
}

async fn reason(app: &TestApp, token: &str) -> String {
    let r = verify(app, token).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["valid"], false, "{v}");
    v["reason"].as_str().unwrap().to_owned()
}

async fn forward(app: &TestApp, headers: &[(&str, &str)], query: &str) -> reqwest::Response {
    let path = format!("/api/auth/forward{query}");
    forward_as(app, "GET", &path, headers).await
}

/// A forward-auth check with any method, on any path under `/api/auth/forward`.
async fn forward_as(
    app: &TestApp,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = app.client.request(method, app.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn verify_valid_key_answers_principal_scopes_and_quota() {
    let app = spawn().await;
    let uid = app.create_user("alice", STRONG_PASSWORD, false).await;
    let exp = gatehouse::store::now() + 3_600;
    let k = new_key(&app, "alice", |n| {
        n.scopes = vec!["tickets:read".into(), "tickets:write".into()];
        n.expires_at = Some(exp);
    })
    .await;
    let r = verify(&app, &k).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-ratelimit-limit"), "100");
    assert_eq!(header(&r, "x-ratelimit-remaining"), "99");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["kind"], "api_key");
    assert_eq!(v["subject"], format!("user:{uid}"));
    assert_eq!(v["user_id"], uid);
    assert_eq!(v["username"], "alice");
    assert_eq!(v["mode"], "live");
    assert_eq!(v["scopes"], json!(["tickets:read", "tickets:write"]));
    assert_eq!(v["expires_at"], exp);
    assert!(v["tenant_id"].as_str().unwrap().starts_with("ten_"));
    assert_eq!(v["ratelimit"]["limit"], 100);
    assert_eq!(v["ratelimit"]["remaining"], 99);
    assert!(v["ratelimit"]["reset"].as_u64().unwrap() >= gatehouse::store::now() as u64);
    // Cached second answer is the same principal, one less in quota.
    let v: Value = verify(&app, &k).await.json().await.unwrap();
    assert_eq!(v["ratelimit"]["remaining"], 98);
    assert_eq!(v["username"], "alice");
    // A scoped key without the `keys` scope cannot manage keys.
    let r = app
        .client
        .get(app.url("/v1/api-keys"))
        .bearer_auth(&k)
        .send()
        .await
        .unwrap();
    assert!(error_message(r, 403).await.contains("`keys` scope"));
}

#[tokio::test]
async fn verify_reasons_and_immediate_revocation_with_a_warm_cache() {
    let app = spawn().await;
    let (_, k) = user_with_key(&app, "alice").await;
    assert_eq!(reason(&app, &typo(&k)).await, "malformed");
    assert_eq!(reason(&app, &k[..20]).await, "malformed");
    assert_eq!(reason(&app, "hello").await, "malformed");
    assert_eq!(reason(&app, "").await, "malformed");
    let unknown = gatehouse::crypto::tokens::new_api_key("pk_test_");
    assert_eq!(reason(&app, unknown.expose()).await, "unknown");

    let other = new_key(&app, "alice", |_| {}).await;
    // A pass that sees alice as a new user would drop her keys from the cache.
    past_the_change_poll(&app).await;
    // Warm the cache, then revoke over HTTP: the very next check refuses.
    for _ in 0..3 {
        let v: Value = verify(&app, &other).await.json().await.unwrap();
        assert_eq!(v["valid"], true);
    }
    assert!(app.ctx.keys.cached() >= 1);
    let list: Value = app
        .client
        .get(app.url("/v1/api-keys"))
        .bearer_auth(&k)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = list["data"][0]["id"].as_i64().unwrap();
    let r = app
        .client
        .delete(app.url(&format!("/v1/api-keys/{id}")))
        .bearer_auth(&k)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(reason(&app, &other).await, "revoked");
    let r = forward(&app, &[("x-api-key", &other)], "").await;
    assert_eq!(error_message(r, 401).await, "API key has been revoked");

    // Expired: roll with no overlap while cached.
    let v: Value = verify(&app, &k).await.json().await.unwrap();
    assert_eq!(v["valid"], true);
    let own_id = v["credential_id"].as_str().unwrap().to_owned();
    let r = app
        .client
        .post(app.url(&format!("/v1/api-keys/{own_id}/roll")))
        .bearer_auth(&k)
        .json(&json!({"expire_old_in": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(reason(&app, &k).await, "expired");

    // Missing or mistyped body.
    let r = app
        .client
        .post(app.url("/api/verify"))
        .json(&json!({"tok": "x"}))
        .send()
        .await
        .unwrap();
    error_message(r, 400).await;
}

#[tokio::test]
async fn quota_is_shared_by_endpoints_verify_and_forward() {
    let app = spawn_with(|s| s.plans.get_mut("free").unwrap().requests_per_hour = 4).await;
    let (_, k) = user_with_key(&app, "alice").await;
    let r = app
        .client
        .get(app.url("/keys"))
        .bearer_auth(&k)
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "x-ratelimit-remaining"), "3");
    assert_eq!(verify(&app, &k).await.status(), 200);
    let r = forward(&app, &[("x-api-key", &k)], "").await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-ratelimit-remaining"), "1");
    assert_eq!(verify(&app, &k).await.status(), 200);
    let r = verify(&app, &k).await;
    assert_eq!(r.status(), 429);
    assert!(!header(&r, "retry-after").is_empty());
    assert_eq!(header(&r, "x-ratelimit-remaining"), "0");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["reason"], "rate_limited");
    assert_eq!(v["ratelimit"]["remaining"], 0);
    let r = forward(&app, &[("x-api-key", &k)], "").await;
    assert_eq!(header(&r, "x-ratelimit-limit"), "4");
    assert_eq!(error_message(r, 429).await, "Rate limit exceeded");
}

#[tokio::test]
async fn invalid_attempts_are_throttled_per_address_without_blocking_cached_keys() {
    let app = spawn_with(|s| s.keys.invalid_attempts_per_minute = 3).await;
    let (_, k) = user_with_key(&app, "alice").await;
    let fresh = new_key(&app, "alice", |_| {}).await;
    assert_eq!(verify(&app, &k).await.status(), 200); // cached now
    for _ in 0..4 {
        let unknown = gatehouse::crypto::tokens::new_api_key("sk_live_");
        assert_eq!(reason(&app, unknown.expose()).await, "unknown");
    }
    // Over budget: nothing new reaches the database …
    let unknown = gatehouse::crypto::tokens::new_api_key("sk_live_");
    let r = verify(&app, unknown.expose()).await;
    assert!(!header(&r, "retry-after").is_empty());
    assert_eq!(error_message(r, 429).await, "Rate limit exceeded");
    let r = verify(&app, &fresh).await;
    error_message(r, 429).await;
    let r = forward(&app, &[("x-api-key", &fresh)], "").await;
    error_message(r, 429).await;
    // … but a key the cache knows still works.
    let v: Value = verify(&app, &k).await.json().await.unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(forward(&app, &[("x-api-key", &k)], "").await.status(), 200);
}

#[tokio::test]
async fn forward_auth_identity_headers_and_failures() {
    let app = spawn().await;
    let uid = app.create_user("alice", STRONG_PASSWORD, false).await;
    let k = new_key(&app, "alice", |n| n.scopes = vec!["a".into(), "b".into()]).await;
    let bearer = format!("Bearer {k}");
    let apikey = format!("ApiKey {k}");
    for h in [
        ("x-api-key", k.as_str()),
        ("authorization", bearer.as_str()),
        ("authorization", apikey.as_str()),
    ] {
        let r = forward(&app, &[h], "").await;
        assert_eq!(r.status(), 200, "{h:?}");
        assert_eq!(header(&r, "x-gatehouse-subject"), format!("user:{uid}"));
        assert_eq!(header(&r, "x-gatehouse-kind"), "api_key");
        assert_eq!(header(&r, "x-gatehouse-mode"), "live");
        assert_eq!(header(&r, "x-gatehouse-scopes"), "a,b");
        assert!(header(&r, "x-gatehouse-tenant").starts_with("ten_"));
        assert_eq!(header(&r, "x-ratelimit-limit"), "100");
    }
    // X-API-Key wins, so the app's own Authorization header passes through untouched.
    let r = forward(
        &app,
        &[("authorization", "Bearer app-own-token"), ("x-api-key", &k)],
        "",
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = forward(
        &app,
        &[("authorization", "Basic dXNlcjpwdw=="), ("x-api-key", &k)],
        "",
    )
    .await;
    assert_eq!(r.status(), 200);
    // Requirements from the proxy config.
    assert_eq!(
        forward(&app, &[("x-api-key", &k)], "?scope=a")
            .await
            .status(),
        200
    );
    let r = forward(&app, &[("x-api-key", &k)], "?scope=a,c").await;
    assert!(!header(&r, "x-ratelimit-remaining").is_empty());
    assert!(error_message(r, 403).await.contains("`c`"));
    let r = forward(&app, &[("x-api-key", &k)], "?mode=test").await;
    error_message(r, 403).await;
    let t = new_key(&app, "alice", |n| n.mode = Some(KeyMode::Test)).await;
    let r = forward(&app, &[("x-api-key", &t)], "?mode=test").await;
    assert_eq!(header(&r, "x-gatehouse-mode"), "test");
    // Failures: all 401 (a proxy passes only 401 and 403 on).
    let r = forward(&app, &[], "").await;
    assert_eq!(error_message(r, 401).await, "No Bearer token provided");
    let r = forward(&app, &[("x-api-key", &typo(&k))], "").await;
    assert_eq!(
        error_message(r, 401).await,
        "Failed to verify api_key or token"
    );
    let unknown = gatehouse::crypto::tokens::new_api_key("sk_live_");
    let r = forward(&app, &[("x-api-key", unknown.expose())], "").await;
    assert_eq!(error_message(r, 401).await, "Invalid API key");
    // No redirect configured: a navigation gets 401 too.
    let r = forward(&app, &[("sec-fetch-mode", "navigate")], "").await;
    error_message(r, 401).await;
}

#[tokio::test]
async fn forward_auth_redirects_page_navigations_only() {
    let app =
        spawn_with(|s| s.keys.forward_auth_login_url = "https://auth.example.com/login".into())
            .await;
    let nav = [
        ("sec-fetch-mode", "navigate"),
        ("accept", "text/html,application/xhtml+xml"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "app.example.com"),
        ("x-forwarded-uri", "/inbox?page=2"),
    ];
    let r = forward(&app, &nav, "").await;
    assert_eq!(r.status(), 302);
    assert_eq!(
        header(&r, "location"),
        "https://auth.example.com/login?rd=https%3A//app.example.com/inbox%3Fpage%3D2"
    );
    // fetch / XHR never get a redirect.
    let r = forward(&app, &[("sec-fetch-mode", "cors")], "").await;
    error_message(r, 401).await;
    let r = forward(
        &app,
        &[
            ("sec-fetch-mode", "navigate"),
            ("accept", "application/json"),
        ],
        "",
    )
    .await;
    error_message(r, 401).await;
    let r = forward(&app, &[], "").await;
    error_message(r, 401).await;
    // With a credential, navigation is judged like anything else.
    let (_, k) = user_with_key(&app, "alice").await;
    let r = forward(
        &app,
        &[("sec-fetch-mode", "navigate"), ("x-api-key", &k)],
        "",
    )
    .await;
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// Proxies that forward the client's method, and Envoy's `ext_authz`, which also appends the
/// original path and query to the prefix: every method a client sends is answered as GET is;
/// on the prefixed form the query is the app's (not requirements), the requirement headers
/// are, and every copy of them counts (a client cannot widen access with its own copy); only a
/// GET navigation is redirected, back to the original URL Envoy's request carries.
#[tokio::test]
async fn forward_auth_answers_any_method_and_envoys_prefixed_path() {
    let app =
        spawn_with(|s| s.keys.forward_auth_login_url = "https://auth.example.com/login".into())
            .await;
    let uid = app.create_user("alice", STRONG_PASSWORD, false).await;
    let k = new_key(&app, "alice", |n| n.scopes = vec!["a".into(), "b".into()]).await;
    let t = new_key(&app, "alice", |n| n.mode = Some(KeyMode::Test)).await;
    let (revoked_id, revoked) = new_key_with_id(&app, "alice", |_| {}).await;
    assert_eq!(
        forward(&app, &[("x-api-key", &revoked)], "").await.status(),
        200
    );
    let operator = gatehouse::services::keys::Actor::operator();
    gatehouse::services::keys::revoke(&app.ctx, &operator, revoked_id)
        .await
        .unwrap();
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
        for path in [
            "/api/auth/forward",
            "/api/auth/forward/v2/orders?id=7&mode=test",
        ] {
            let r = forward_as(&app, method, path, &[("x-api-key", &k)]).await;
            assert_eq!(r.status(), 200, "{method} {path}");
            assert_eq!(header(&r, "x-gatehouse-subject"), format!("user:{uid}"));
            assert_eq!(header(&r, "x-gatehouse-scopes"), "a,b");
            assert!(!header(&r, "x-ratelimit-remaining").is_empty());
            let r = forward_as(&app, method, path, &[("x-api-key", &revoked)]).await;
            assert_eq!(
                error_message(r, 401).await,
                "API key has been revoked",
                "{method}"
            );
            let r = forward_as(&app, method, path, &[]).await;
            assert_eq!(error_message(r, 401).await, "No Bearer token provided");
        }
    }
    let r = forward_as(&app, "HEAD", "/api/auth/forward/x", &[("x-api-key", &k)]).await;
    assert_eq!(r.status(), 200);
    // A method no proxy forwards for a check is still 405.
    let r = forward_as(&app, "TRACE", "/api/auth/forward/x", &[("x-api-key", &k)]).await;
    assert_eq!(r.status(), 405);
    // On the plain path the query still carries requirements; a malformed one is a 400.
    let r = forward_as(
        &app,
        "POST",
        "/api/auth/forward?mode=test",
        &[("x-api-key", &k)],
    )
    .await;
    error_message(r, 403).await;
    let r = forward_as(
        &app,
        "GET",
        "/api/auth/forward?scope=a&scope=b",
        &[("x-api-key", &k)],
    )
    .await;
    error_message(r, 400).await;
    // Requirement headers, on both forms; every copy counts.
    for path in ["/api/auth/forward", "/api/auth/forward/app"] {
        let ok = forward_as(
            &app,
            "GET",
            path,
            &[("x-api-key", &k), ("x-gatehouse-require-scope", "b, a")],
        )
        .await;
        assert_eq!(ok.status(), 200);
        let r = forward_as(
            &app,
            "GET",
            path,
            &[("x-api-key", &k), ("x-gatehouse-require-scope", "a,c")],
        )
        .await;
        assert!(error_message(r, 403).await.contains("`c`"));
        let r = forward_as(
            &app,
            "GET",
            path,
            &[
                ("x-api-key", &t),
                ("x-gatehouse-require-mode", "test"),
                ("x-gatehouse-require-mode", "live"),
            ],
        )
        .await;
        assert_eq!(
            error_message(r, 403).await,
            "This resource requires a live-mode credential"
        );
        let r = forward_as(
            &app,
            "GET",
            path,
            &[("x-api-key", &t), ("x-gatehouse-require-mode", "test")],
        )
        .await;
        assert_eq!(header(&r, "x-gatehouse-mode"), "test");
        let r = app
            .client
            .get(app.url(path))
            .header("x-api-key", &k)
            .header(
                "x-gatehouse-require-scope",
                reqwest::header::HeaderValue::from_bytes(b"a\xff").unwrap(),
            )
            .send()
            .await
            .unwrap();
        error_message(r, 403).await;
    }
    // Sign-in redirect: a GET navigation only, to the URL Envoy's request carries.
    let nav = [
        ("sec-fetch-mode", "navigate"),
        ("accept", "text/html"),
        ("host", "app.example.com"),
        ("x-forwarded-proto", "https"),
    ];
    let r = forward_as(&app, "GET", "/api/auth/forward/inbox/2?page=3", &nav).await;
    assert_eq!(r.status(), 302);
    assert_eq!(
        header(&r, "location"),
        "https://auth.example.com/login?rd=https%3A//app.example.com/inbox/2%3Fpage%3D3"
    );
    let r = forward_as(&app, "POST", "/api/auth/forward/inbox", &nav).await;
    assert_eq!(error_message(r, 401).await, "No Bearer token provided");
}

/// A browser signed in to Gatehouse on the app's host passes forward-auth with its session
/// cookie; an ended session sends a page navigation back to sign in (401 for anything else); a
/// header credential wins over the cookie; a cross-site state-changing request riding on the
/// cookie is refused.
#[tokio::test]
async fn forward_auth_lets_a_signed_in_browser_through_by_its_session_cookie() {
    let app =
        spawn_with(|s| s.keys.forward_auth_login_url = "https://app.example.com/sign-in".into())
            .await;
    let uid = app.create_user("alice", STRONG_PASSWORD, false).await;
    app.create_user("bob", STRONG_PASSWORD, false).await;
    let cookie = crate::browser_signin::sign_in(&app, "alice", STRONG_PASSWORD).await;
    let nav = [
        ("sec-fetch-mode", "navigate"),
        ("accept", "text/html"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "app.example.com"),
        ("x-forwarded-uri", "/reports"),
    ];
    let with_cookie: Vec<(&str, &str)> = nav
        .iter()
        .copied()
        .chain([("cookie", cookie.as_str())])
        .collect();
    let r = forward_as(&app, "GET", "/api/auth/forward", &with_cookie).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-gatehouse-subject"), format!("user:{uid}"));
    assert_eq!(header(&r, "x-gatehouse-user"), "alice");
    assert_eq!(header(&r, "x-gatehouse-kind"), "session");
    // A same-origin POST passes; a cross-site one riding on the cookie does not.
    let same = [
        ("cookie", cookie.as_str()),
        ("sec-fetch-site", "same-origin"),
    ];
    assert_eq!(
        forward_as(&app, "POST", "/api/auth/forward", &same)
            .await
            .status(),
        200
    );
    let cross = [("cookie", cookie.as_str()), ("sec-fetch-site", "same-site")];
    let r = forward_as(&app, "POST", "/api/auth/forward", &cross).await;
    assert_eq!(error_message(r, 403).await, "Cross-site request refused");
    // A header credential wins over the cookie.
    let k = new_key(&app, "bob", |_| {}).await;
    let r = forward(&app, &[("cookie", cookie.as_str()), ("x-api-key", &k)], "").await;
    assert_eq!(header(&r, "x-gatehouse-user"), "bob");
    // After sign-out the cookie no longer passes: a navigation goes back to sign in.
    let csrf = crate::browser_signin::csrf(&app, &cookie).await;
    let out = app
        .client
        .post(app.url("/sign-out"))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert!(
        out.status().is_redirection() || out.status().is_success(),
        "{}",
        out.status()
    );
    let r = forward_as(&app, "GET", "/api/auth/forward", &with_cookie).await;
    assert_eq!(r.status(), 302);
    assert_eq!(
        header(&r, "location"),
        "https://app.example.com/sign-in?rd=https%3A//app.example.com/reports"
    );
    let r = forward_as(
        &app,
        "GET",
        "/api/auth/forward",
        &[("cookie", cookie.as_str())],
    )
    .await;
    assert_eq!(r.status(), 401);
    // A garbled cookie is no credential a navigation can use either.
    let r = forward(&app, &[("cookie", "gatehouse_session=nonsense")], "").await;
    assert_eq!(r.status(), 401);
}

/// Verify and forward-auth use the one resolver: JWTs and portal tokens are reported with
/// their kind, and a portal token is refused by the admin and key endpoints.
#[tokio::test]
async fn verify_and_forward_report_jwts_and_portal_tokens() {
    let app = spawn().await;
    app.create_user("porter", STRONG_PASSWORD, true).await;
    let key = new_key(&app, "porter", |_| {}).await;
    let login: Value = app
        .client
        .post(app.url("/api/accounts/token/"))
        .json(&json!({"username": "porter", "password": STRONG_PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = login["access"].as_str().unwrap();
    let v: Value = verify(&app, access).await.json().await.unwrap();
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["kind"], "jwt", "{v}");
    let refresh = login["refresh"].as_str().unwrap();
    let v: Value = verify(&app, refresh).await.json().await.unwrap();
    assert_eq!(
        v["valid"], false,
        "a refresh token is not an access credential: {v}"
    );

    // A brand and a portal token issued with the API key.
    let brand: Value = app
        .client
        .post(app.url("/v1/brands"))
        .header("x-api-key", &key)
        .json(&json!({"name": "Support"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let brand_id = brand["id"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| brand["id"].to_string());
    let r = app
        .client
        .post(app.url(&format!("/v1/brands/{brand_id}/portal/token")))
        .header("x-api-key", &key)
        .json(&json!({"customerEmail": "cust@example.com", "expiresIn": "30m"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{brand}");
    let pt: Value = r.json().await.unwrap();
    let pt = pt["accessToken"].as_str().unwrap().to_owned();
    let v: Value = verify(&app, &pt).await.json().await.unwrap();
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["kind"], "portal_token", "{v}");
    assert!(
        v["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "tickets:create"),
        "{v}"
    );
    let r = forward(&app, &[("authorization", &format!("Bearer {pt}"))], "").await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-gatehouse-kind"), "portal_token");
    // Admin and key endpoints refuse it.
    for path in ["/v1/api-keys", "/api/accounts/users/", "/keys"] {
        let r = app
            .client
            .get(app.url(path))
            .bearer_auth(&pt)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
    }
}

/// Verify names why a JWT is refused: expired, or revoked after logout.
#[tokio::test]
async fn verify_reasons_for_jwts() {
    let app = spawn_with(|s| {
        s.jwt.access_ttl_secs = 1;
        s.jwt.leeway_secs = 0;
    })
    .await;
    app.create_user("jay", STRONG_PASSWORD, false).await;
    let login = || async {
        let v: Value = app
            .client
            .post(app.url("/api/accounts/token/"))
            .json(&json!({"username": "jay", "password": STRONG_PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v
    };
    let pair = login().await;
    let r = app
        .client
        .post(app.url("/api/accounts/auth/logout/"))
        .json(&json!({"refresh": pair["refresh"]}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    assert_eq!(
        reason(&app, pair["access"].as_str().unwrap()).await,
        "revoked"
    );
    let pair = login().await;
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert_eq!(
        reason(&app, pair["access"].as_str().unwrap()).await,
        "expired"
    );
}

/// A full key cache makes room by itself: the change poll (once a second) trims it to 80 % of
/// `keys.cache_capacity`, so keys first seen later are cached too, and the keys it dropped
/// still verify (from SQLite).
#[tokio::test]
async fn a_full_key_cache_is_trimmed_and_every_key_still_verifies() {
    let app = spawn_with(|s| s.keys.cache_capacity = 10).await;
    app.create_user("alice", STRONG_PASSWORD, false).await;
    let mut keys = Vec::new();
    for _ in 0..12 {
        keys.push(new_key(&app, "alice", |_| {}).await);
    }
    // Past every change-poll pass that sees alice as a new user (it drops a changed user's
    // keys): a fixed 2.1 s wait here let a late pass empty the cache after the verifies below.
    past_the_change_poll(&app).await;
    for k in &keys {
        assert_eq!(verify(&app, k).await.status(), 200);
    }
    assert!(app.ctx.keys.cached() <= 10, "never above the capacity");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while app.ctx.keys.cached() != 8 {
        assert!(
            std::time::Instant::now() < deadline,
            "not trimmed to 80 %: {} cached",
            app.ctx.keys.cached()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for k in &keys {
        let v: Value = verify(&app, k).await.json().await.unwrap();
        assert_eq!(v["valid"], true, "{v}");
    }
    assert!((8..=10).contains(&app.ctx.keys.cached()));
}

/// IPv6 clients are counted by their /64 (a host picks any address in it); IPv4-mapped IPv6
/// addresses as the IPv4 address.
#[tokio::test]
async fn invalid_attempts_count_an_ipv6_client_by_its_64() {
    let app = spawn_with(|s| {
        s.keys.invalid_attempts_per_minute = 3;
        s.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    let from = |ip: &'static str| {
        let app = &app;
        async move {
            let unknown = gatehouse::crypto::tokens::new_api_key("sk_live_");
            app.client
                .post(app.url("/api/verify"))
                .header("x-forwarded-for", ip)
                .json(&json!({ "token": unknown.expose() }))
                .send()
                .await
                .unwrap()
        }
    };
    // Addresses of one /64 share its budget: 3 a minute, the 4th attempt goes over it (and is
    // answered), the 5th is refused.
    for ip in [
        "2001:db8:7:1::1",
        "2001:db8:7:1::2",
        "2001:db8:7:1:ffff::3",
        "2001:db8:7:1::4",
    ] {
        let v: Value = from(ip).await.json().await.unwrap();
        assert_eq!(v["reason"], "unknown", "{ip}");
    }
    let r = from("2001:db8:7:1:a:b:c:d").await;
    assert!(retry_after(&r) >= 1);
    assert_eq!(error_message(r, 429).await, "Rate limit exceeded");
    // The next /64 has a budget of its own.
    let v: Value = from("2001:db8:7:2::1").await.json().await.unwrap();
    assert_eq!(v["reason"], "unknown");
    // An IPv4 client and its IPv4-mapped IPv6 form are one client.
    for ip in [
        "192.0.2.9",
        "::ffff:192.0.2.9",
        "192.0.2.9",
        "::ffff:192.0.2.9",
    ] {
        let v: Value = from(ip).await.json().await.unwrap();
        assert_eq!(v["reason"], "unknown", "{ip}");
    }
    error_message(from("::ffff:192.0.2.9").await, 429).await;
}
