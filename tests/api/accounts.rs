//! Accounts: JWT pairs (obtain, refresh rotation, reuse detection, grace, logout), attacks on
//! token validation, signing-key rotation and the JWKS (checked with PyJWT), users and
//! permissions (401 vs 403), and sign-in throttling.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use gatehouse::config::Settings;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

const PW: &str = STRONG_PASSWORD;

async fn post(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn pair(app: &TestApp, user: &str, pw: &str) -> (String, String) {
    let r = post(
        app,
        "/api/accounts/token/",
        json!({"username": user, "password": pw}),
    )
    .await;
    assert_eq!(r.status(), 200, "login of {user} failed");
    let v: Value = r.json().await.unwrap();
    (
        v["access"].as_str().unwrap().to_owned(),
        v["refresh"].as_str().unwrap().to_owned(),
    )
}

async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    post(
        app,
        "/api/accounts/token/refresh/",
        json!({"refresh": token}),
    )
    .await
}

async fn get_auth(app: &TestApp, path: &str, token: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

fn part(token: &str, i: usize) -> Value {
    let p = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
}

fn forge(header: Value, claims: &Value, sig: &str) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        sig
    )
}

async fn jwks(app: &TestApp) -> Value {
    let r = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn kids(set: &Value) -> Vec<String> {
    set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// Verifies `token` against `jwks` with PyJWT in a separate process; returns its stdout.
fn pyjwt_verify(jwks: &Value, token: &str, aud: &str, iss: &str) -> Result<String, String> {
    let script = r#"
import json, sys, jwt
data = json.load(sys.stdin)
kid = jwt.get_unverified_header(data["token"])["kid"]
jwk = next(k for k in data["jwks"]["keys"] if k["kid"] == kid)
key = jwt.PyJWK(jwk)
claims = jwt.decode(data["token"], key, algorithms=["EdDSA"], audience=data["aud"], issuer=data["iss"],
                    options={"require": ["exp", "iat", "iss", "aud", "sub"]})
assert claims["token_type"] == "access", claims
print(claims["sub"], claims["username"])
"#;
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let input = json!({"jwks": jwks, "token": token, "aud": aud, "iss": iss}).to_string();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[tokio::test]
async fn obtain_pair_from_both_endpoints_with_the_documented_claims() {
    let app = spawn().await;
    let id = app.create_user("alice", PW, false).await;
    let (access, refresh_token) = pair(&app, "alice", PW).await;
    let h = part(&access, 0);
    assert_eq!(h["alg"], "EdDSA");
    assert!(h["kid"].as_str().is_some_and(|k| !k.is_empty()));
    let c = part(&access, 1);
    assert_eq!(c["token_type"], "access");
    assert_eq!(c["sub"], id.to_string());
    assert_eq!(c["username"], "alice");
    assert_eq!(c["iss"], app.ctx.settings.jwt_issuer());
    assert_eq!(c["aud"], "gatehouse");
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 300);
    assert!(c["jti"].as_str().is_some());
    assert!(c["permissions"].is_array());
    assert!(c["tenant"].as_str().unwrap().starts_with("ten_"));
    let rc = part(&refresh_token, 1);
    assert_eq!(rc["token_type"], "refresh");
    assert_eq!(
        rc["exp"].as_i64().unwrap() - rc["iat"].as_i64().unwrap(),
        7 * 86_400
    );
    assert_eq!(rc["sid"], c["sid"]);

    // The access token authenticates; the login alias answers the same shape.
    let r = get_auth(&app, &format!("/api/accounts/users/{id}/"), &access).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["username"], "alice");
    let r = post(
        &app,
        "/api/accounts/auth/login/",
        json!({"username": "alice", "password": PW}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v.as_object().unwrap().len(), 2, "{v}");
    // Without the trailing slash too.
    let r = post(
        &app,
        "/api/accounts/token",
        json!({"username": "alice@example.com", "password": PW}),
    )
    .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn bad_login_bodies_are_clear_4xx() {
    let app = spawn().await;
    for (body, want) in [
        (json!({"username": "a"}), 400),
        (json!({"username": "a", "password": 5}), 400),
        (json!({"username": "a", "password": "x", "extra": 1}), 400),
        (json!([]), 400),
    ] {
        let r = post(&app, "/api/accounts/token/", body.clone()).await;
        let msg = error_message(r, want).await;
        assert!(!msg.is_empty(), "{body}");
    }
    let r = app
        .client
        .post(app.url("/api/accounts/token/"))
        .body("username=a&password=b")
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    error_message(r, 415).await;
    let r = app
        .client
        .post(app.url("/api/accounts/token/"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    error_message(r, 400).await;
    // A misplaced secret is not echoed back.
    let r = post(
        &app,
        "/api/accounts/token/",
        json!({"username": "a", "password": ["hunter2-secret"]}),
    )
    .await;
    assert!(!error_message(r, 400).await.contains("hunter2"));
    // GET on a POST route is a 405 in the error shape.
    let r = app
        .client
        .get(app.url("/api/accounts/token/"))
        .send()
        .await
        .unwrap();
    error_message(r, 405).await;
}

#[tokio::test]
async fn unknown_user_and_wrong_password_look_and_time_the_same() {
    let app = spawn_with(|s| {
        s.login.max_failures_per_account = 100;
        s.login.max_failures_per_address = 1_000;
    })
    .await;
    app.create_user("bob", PW, false).await;
    let attempt = |user: &'static str| {
        let app = &app;
        async move {
            let start = Instant::now();
            let r = post(
                app,
                "/api/accounts/token/",
                json!({"username": user, "password": "wrong password 123"}),
            )
            .await;
            let took = start.elapsed();
            let status = r.status();
            let mut headers: Vec<(String, String)> = r
                .headers()
                .iter()
                .filter(|(k, _)| *k != "date")
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
                .collect();
            headers.sort();
            let body = r.text().await.unwrap();
            (status, headers, body, took)
        }
    };
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..5 {
        known.push(attempt("bob").await);
        unknown.push(attempt("nobody-here").await);
    }
    let (s1, h1, b1, _) = &known[0];
    let (s2, h2, b2, _) = &unknown[0];
    assert_eq!(*s1, StatusCode::UNAUTHORIZED);
    assert_eq!(s1, s2);
    assert_eq!(h1, h2);
    assert_eq!(b1, b2);
    assert!(b1.contains("Invalid username or password"));
    let median = |times: Vec<Duration>| {
        let mut t = times;
        t.sort();
        t[t.len() / 2]
    };
    let (a, b) = (
        median(known.iter().map(|x| x.3).collect()),
        median(unknown.iter().map(|x| x.3).collect()),
    );
    let ratio = a.as_secs_f64() / b.as_secs_f64();
    assert!(
        (1.0 / 3.0..=3.0).contains(&ratio),
        "known {a:?} vs unknown {b:?}"
    );
    // Both cost a real Argon2id verification (not a fast path).
    assert!(
        b >= Duration::from_millis(5),
        "unknown user answered in {b:?}"
    );
}

#[tokio::test]
async fn refresh_rotates_and_a_replayed_token_revokes_the_family() {
    let app = spawn_with(|s| s.jwt.refresh_grace_secs = 0).await;
    let id = app.create_user("carol", PW, false).await;
    let (a1, r1) = pair(&app, "carol", PW).await;
    let r = refresh(&app, &r1).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let (a2, r2) = (
        v["access"].as_str().unwrap().to_owned(),
        v["refresh"].as_str().unwrap().to_owned(),
    );
    assert_ne!(r1, r2);
    assert_ne!(a1, a2);
    assert_eq!(part(&r2, 1)["sid"], part(&r1, 1)["sid"]);
    let me = format!("/api/accounts/users/{id}/");
    assert_eq!(get_auth(&app, &me, &a2).await.status(), 200);

    // Replay of the spent token: 401, and the whole family is gone.
    let msg = error_message(refresh(&app, &r1).await, 401).await;
    assert!(msg.contains("already used"), "{msg}");
    error_message(refresh(&app, &r2).await, 401).await;
    error_message(get_auth(&app, &me, &a2).await, 401).await;
    error_message(get_auth(&app, &me, &a1).await, 401).await;
    // Another sign-in (another family) is unaffected.
    let (a3, r3) = pair(&app, "carol", PW).await;
    assert_eq!(get_auth(&app, &me, &a3).await.status(), 200);
    assert_eq!(refresh(&app, &r3).await.status(), 200);
}

#[tokio::test]
async fn a_retry_within_grace_gets_the_same_pair_and_concurrent_refreshes_mint_one() {
    let app = spawn().await;
    app.create_user("dave", PW, false).await;
    let (_, r1) = pair(&app, "dave", PW).await;
    // Eight concurrent refreshes of the same token: all succeed with one and the same pair.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = app.client.clone();
        let url = app.url("/api/accounts/token/refresh/");
        let body = json!({"refresh": r1});
        tasks.push(tokio::spawn(async move {
            let r = client.post(url).json(&body).send().await.unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        }));
    }
    let mut pairs = Vec::new();
    for t in tasks {
        let (status, v) = t.await.unwrap();
        assert_eq!(status, 200, "{v}");
        pairs.push(v);
    }
    assert!(pairs.iter().all(|p| *p == pairs[0]), "different pairs");
    let family = part(&r1, 1)["sid"].as_str().unwrap().to_owned();
    let rows: i64 = app
        .ctx
        .db
        .read(move |c| {
            Ok(c.query_row(
                "SELECT count(*) FROM refresh_tokens WHERE family_id = ?1",
                [family],
                |r| r.get(0),
            )?)
        })
        .await
        .unwrap();
    assert_eq!(rows, 2, "exactly one successor minted");

    // The successor works; once it is used, the old token is a replay even within grace.
    let r2 = pairs[0]["refresh"].as_str().unwrap().to_owned();
    let r = refresh(&app, &r2).await;
    assert_eq!(r.status(), 200);
    let r3 = r.json::<Value>().await.unwrap()["refresh"]
        .as_str()
        .unwrap()
        .to_owned();
    error_message(refresh(&app, &r1).await, 401).await;
    error_message(refresh(&app, &r3).await, 401).await;
}

#[tokio::test]
async fn logout_revokes_the_family_server_side() {
    let app = spawn().await;
    let id = app.create_user("erin", PW, false).await;
    let me = format!("/api/accounts/users/{id}/");
    let (a1, r1) = pair(&app, "erin", PW).await;
    let (a_other, _) = pair(&app, "erin", PW).await;
    let r = post(&app, "/api/accounts/auth/logout/", json!({"refresh": r1})).await;
    assert_eq!(r.status(), 204);
    error_message(refresh(&app, &r1).await, 401).await;
    let msg = error_message(get_auth(&app, &me, &a1).await, 401).await;
    assert!(msg.contains("revoked"), "{msg}");
    // The other sign-in survives; logging out twice is harmless.
    assert_eq!(get_auth(&app, &me, &a_other).await.status(), 200);
    let r = post(&app, "/api/accounts/auth/logout/", json!({"refresh": r1})).await;
    assert_eq!(r.status(), 204);
    // Failure paths: an access token, garbage, a missing field.
    let msg = error_message(
        post(&app, "/api/accounts/auth/logout/", json!({"refresh": a1})).await,
        401,
    )
    .await;
    assert_eq!(msg, "Token is not a refresh token");
    let msg = error_message(
        post(
            &app,
            "/api/accounts/auth/logout/",
            json!({"refresh": "garbage"}),
        )
        .await,
        400,
    )
    .await;
    assert_eq!(msg, "Failed to verify api_key or token");
    error_message(
        post(&app, "/api/accounts/auth/logout/", json!({})).await,
        400,
    )
    .await;
}

#[tokio::test]
async fn password_change_and_disabling_revoke_every_family() {
    let app = spawn().await;
    app.create_user("root", PW, true).await;
    let id = app.create_user("frank", PW, false).await;
    let me = format!("/api/accounts/users/{id}/");
    let (admin, _) = pair(&app, "root", PW).await;
    let (a1, r1) = pair(&app, "frank", PW).await;
    let (a2, r2) = pair(&app, "frank", PW).await;
    let new_pw = "another very long passphrase 77";
    let r = app
        .client
        .patch(app.url(&me))
        .bearer_auth(&admin)
        .json(&json!({"password": new_pw}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for (a, r) in [(&a1, &r1), (&a2, &r2)] {
        error_message(get_auth(&app, &me, a).await, 401).await;
        error_message(refresh(&app, r).await, 401).await;
    }
    error_message(
        post(
            &app,
            "/api/accounts/token/",
            json!({"username": "frank", "password": PW}),
        )
        .await,
        401,
    )
    .await;
    let (a3, r3) = pair(&app, "frank", new_pw).await;
    assert_eq!(get_auth(&app, &me, &a3).await.status(), 200);

    // Disable: tokens die at once, sign-in fails like a wrong password.
    let r = app
        .client
        .patch(app.url(&me))
        .bearer_auth(&admin)
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["disabled"], true);
    error_message(get_auth(&app, &me, &a3).await, 401).await;
    error_message(refresh(&app, &r3).await, 401).await;
    let msg = error_message(
        post(
            &app,
            "/api/accounts/token/",
            json!({"username": "frank", "password": new_pw}),
        )
        .await,
        401,
    )
    .await;
    assert_eq!(msg, "Invalid username or password");
    // A weak password is refused before anything changes.
    let msg = error_message(
        app.client
            .patch(app.url(&me))
            .bearer_auth(&admin)
            .json(&json!({"password": "short", "disabled": false}))
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    assert!(msg.contains("password"), "{msg}");
    let still: Value = get_auth(&app, &me, &admin).await.json().await.unwrap();
    assert_eq!(still["disabled"], true, "nothing half-written");
}

#[tokio::test]
async fn hostile_and_wrong_tokens_are_refused() {
    let app = spawn().await;
    let id = app.create_user("gina", PW, false).await;
    let me = format!("/api/accounts/users/{id}/");
    let (access, refresh_token) = pair(&app, "gina", PW).await;
    let header = part(&access, 0);
    let claims = part(&access, 1);
    let kid = header["kid"].as_str().unwrap();
    let set = jwks(&app).await;
    let x = set["keys"][0]["x"].as_str().unwrap().to_owned();
    let public = URL_SAFE_NO_PAD.decode(&x).unwrap();

    // alg: none, with and without a signature.
    for sig in ["", "AAAA"] {
        let t = forge(
            json!({"alg": "none", "typ": "JWT", "kid": kid}),
            &claims,
            sig,
        );
        let msg = error_message(get_auth(&app, &me, &t).await, 401).await;
        assert!(msg.contains("algorithm"), "{msg}");
    }
    // HS256 with the public key as the HMAC secret (raw bytes, and the JWK's x string).
    for secret in [public.clone(), x.as_bytes().to_vec()] {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        h.kid = Some(kid.to_owned());
        let t = jsonwebtoken::encode(
            &h,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(&secret),
        )
        .unwrap();
        let msg = error_message(get_auth(&app, &me, &t).await, 401).await;
        assert!(msg.contains("algorithm"), "{msg}");
    }
    // An attacker's own Ed25519 key: unknown kid, our kid, and self-describing headers.
    let evil = gatehouse::crypto::jwt::generate();
    let signer = gatehouse::crypto::jwt::Signer::from_seed(&evil.kid, &evil.seed);
    let t = signer.sign(&claims).unwrap();
    let msg = error_message(get_auth(&app, &me, &t).await, 401).await;
    assert!(msg.contains("key id"), "{msg}");
    let ours = gatehouse::crypto::jwt::Signer::from_seed(kid, &evil.seed);
    let t = ours.sign(&claims).unwrap();
    let msg = error_message(get_auth(&app, &me, &t).await, 401).await;
    assert!(msg.contains("signature"), "{msg}");
    for extra in [
        json!({"jwk": {"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(evil.public)}}),
        json!({"jku": "https://evil.example/jwks.json"}),
        json!({"x5u": "https://evil.example/cert.pem"}),
    ] {
        let mut h = json!({"alg": "EdDSA", "typ": "JWT", "kid": kid});
        for (k, v) in extra.as_object().unwrap() {
            h[k] = v.clone();
        }
        let t = forge(h, &claims, "AAAA");
        let msg = error_message(get_auth(&app, &me, &t).await, 401).await;
        assert!(msg.contains("names its own key"), "{msg}");
    }
    // A tampered payload under the original signature.
    let mut tampered = claims.clone();
    tampered["is_admin"] = json!(true);
    let sig = access.split('.').nth(2).unwrap();
    let t = forge(header.clone(), &tampered, sig);
    let msg = error_message(get_auth(&app, &me, &t).await, 401).await;
    assert!(msg.contains("signature"), "{msg}");
    // A refresh token is not an access token, nor the other way round.
    let msg = error_message(get_auth(&app, &me, &refresh_token).await, 401).await;
    assert!(msg.contains("not an access token"), "{msg}");
    assert_eq!(
        error_message(refresh(&app, &access).await, 401).await,
        "Token is not a refresh token"
    );
    // Undecodable: malformed (400), with the contract text.
    for junk in ["eyJhbGciOi.garbage", "eyJ.a.b.c", "eyJub3QganNvbg.e30.AAAA"] {
        let msg = error_message(get_auth(&app, &me, junk).await, 400).await;
        assert_eq!(msg, "Failed to verify api_key or token");
    }
    // The genuine token still works after all that.
    assert_eq!(get_auth(&app, &me, &access).await.status(), 200);
}

#[tokio::test]
async fn foreign_audience_or_issuer_and_expired_tokens_are_refused() {
    let app = spawn().await;
    let id = app.create_user("hank", PW, false).await;
    let me = format!("/api/accounts/users/{id}/");
    let (access, _) = pair(&app, "hank", PW).await;
    assert_eq!(get_auth(&app, &me, &access).await.status(), 200);

    // The same keys and database, another audience or issuer: the token is refused.
    let data = app.dir.path().join("data");
    for (adjust, want) in [
        (
            Box::new(|s: &mut Settings| s.jwt.audience = "other-service".into())
                as Box<dyn FnOnce(&mut Settings)>,
            "Token audience is not accepted",
        ),
        (
            Box::new(|s: &mut Settings| s.jwt.issuer = Some("https://other.example".into())),
            "Token issuer is not accepted",
        ),
    ] {
        let data = data.clone();
        let other = spawn_with(move |s| {
            s.data_dir = data;
            adjust(s);
        })
        .await;
        assert_eq!(
            error_message(get_auth(&other, &me, &access).await, 401).await,
            want
        );
        other.stop().await;
    }

    let short = spawn_with(|s| {
        s.jwt.access_ttl_secs = 1;
        s.jwt.leeway_secs = 0;
    })
    .await;
    let id = short.create_user("hank", PW, false).await;
    let me = format!("/api/accounts/users/{id}/");
    let (access, _) = pair(&short, "hank", PW).await;
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let msg = error_message(get_auth(&short, &me, &access).await, 401).await;
    assert_eq!(msg, "Token has expired");
}

#[tokio::test]
async fn jwks_verifies_access_tokens_in_pyjwt() {
    let app = spawn().await;
    let id = app.create_user("ivy", PW, false).await;
    let (access, refresh_token) = pair(&app, "ivy", PW).await;
    let set = jwks(&app).await;
    let k = &set["keys"][0];
    assert_eq!(k["kty"], "OKP");
    assert_eq!(k["crv"], "Ed25519");
    assert_eq!(k["alg"], "EdDSA");
    assert_eq!(k["use"], "sig");
    assert!(k.get("d").is_none(), "private part published");
    let iss = app.ctx.settings.jwt_issuer();
    let out = pyjwt_verify(&set, &access, "gatehouse", &iss).unwrap();
    assert_eq!(out, format!("{id} ivy"));
    // PyJWT refuses a wrong audience and a refresh token.
    assert!(pyjwt_verify(&set, &access, "someone-else", &iss).is_err());
    assert!(pyjwt_verify(&set, &refresh_token, "gatehouse", &iss).is_err());
}

#[tokio::test]
async fn signing_key_rotation_keeps_the_old_key_until_its_tokens_expire() {
    let app = spawn_with(|s| {
        s.jwt.access_ttl_secs = 6;
        s.jwt.refresh_ttl_secs = 7;
        s.jwt.refresh_grace_secs = 1;
        s.jwt.leeway_secs = 0;
    })
    .await;
    let id = app.create_user("jack", PW, false).await;
    let me = format!("/api/accounts/users/{id}/");
    let (old_access, old_refresh) = pair(&app, "jack", PW).await;
    let old_kid = part(&old_access, 0)["kid"].as_str().unwrap().to_owned();

    // Rotate with the CLI, as an operator would, while the server runs.
    let rotated = Instant::now();
    let out = std::process::Command::new(bin())
        .args(["signing-key", "rotate"])
        .env("GATEHOUSE_DATA_DIR", app.dir.path().join("data"))
        .env("GATEHOUSE_JWT__ACCESS_TTL_SECS", "6")
        .env("GATEHOUSE_JWT__REFRESH_TTL_SECS", "7")
        .env("GATEHOUSE_JWT__REFRESH_GRACE_SECS", "1")
        .env("GATEHOUSE_JWT__LEEWAY_SECS", "0")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let new_kid = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_ne!(new_kid, old_kid);

    // The rotation is in the audit log (written in the rotating transaction).
    let audited: i64 = app
        .ctx
        .db
        .read(|c| {
            Ok(c.query_row(
                "SELECT count(*) FROM audit_events WHERE event = 'signing_key.rotated'",
                [],
                |r| r.get(0),
            )?)
        })
        .await
        .unwrap();
    assert_eq!(audited, 1);

    // `signing-key list` shows both, the new one active, the old one with a retire time.
    let out = std::process::Command::new(bin())
        .args(["signing-key", "list", "--json"])
        .env("GATEHOUSE_DATA_DIR", app.dir.path().join("data"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed[0]["kid"], new_kid.as_str());
    assert_eq!(listed[0]["active"], true);
    assert_eq!(listed[1]["kid"], old_kid.as_str());
    assert_eq!(listed[1]["active"], false);
    assert!(listed[1]["retire_at"].as_i64().is_some());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("\"d\""));

    // New tokens carry the new kid; the old token keeps working and verifying.
    let (new_access, _) = pair(&app, "jack", PW).await;
    assert_eq!(part(&new_access, 0)["kid"], new_kid.as_str());
    let set = jwks(&app).await;
    assert_eq!(kids(&set), vec![new_kid.clone(), old_kid.clone()]);
    assert_eq!(get_auth(&app, &me, &old_access).await.status(), 200);
    let iss = app.ctx.settings.jwt_issuer();
    pyjwt_verify(&set, &old_access, "gatehouse", &iss).unwrap();
    pyjwt_verify(&set, &new_access, "gatehouse", &iss).unwrap();
    // The old key's refresh token still rotates (into a new-key pair).
    let r = refresh(&app, &old_refresh).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        part(v["refresh"].as_str().unwrap(), 0)["kid"],
        new_kid.as_str()
    );

    // Once every token the old key signed has expired, it is no longer published.
    let retired = rotated + Duration::from_millis(8_200);
    tokio::time::sleep(retired.saturating_duration_since(Instant::now())).await;
    assert_eq!(kids(&jwks(&app).await), vec![new_kid.clone()]);
    error_message(get_auth(&app, &me, &old_access).await, 401).await;

    // A compromised key: --drop-old stops it at once (within the reload interval).
    let (current, _) = pair(&app, "jack", PW).await;
    let out = std::process::Command::new(bin())
        .args(["signing-key", "rotate", "--drop-old"])
        .env("GATEHOUSE_DATA_DIR", app.dir.path().join("data"))
        .output()
        .unwrap();
    assert!(out.status.success());
    tokio::time::sleep(Duration::from_millis(5_200)).await;
    let msg = error_message(get_auth(&app, &me, &current).await, 401).await;
    assert!(msg.contains("key id") || msg.contains("expired"), "{msg}");
    assert!(!kids(&jwks(&app).await).contains(&new_kid));
}

async fn make_user(app: &TestApp, admin: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url("/api/accounts/users/"))
        .bearer_auth(admin)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn users_api_needs_authentication_then_the_named_permission() {
    let app = spawn().await;
    let admin_id = app.create_user("boss", PW, true).await;
    app.create_user("pleb", PW, false).await;
    let (admin, _) = pair(&app, "boss", PW).await;
    let (pleb, _) = pair(&app, "pleb", PW).await;

    // 401 without a credential, with WWW-Authenticate and the contract text.
    let r = app
        .client
        .get(app.url("/api/accounts/users/"))
        .send()
        .await
        .unwrap();
    assert!(r.headers().contains_key("www-authenticate"));
    assert_eq!(error_message(r, 401).await, "No Bearer token provided");
    let r = app
        .client
        .get(app.url("/api/accounts/permissions/"))
        .send()
        .await
        .unwrap();
    error_message(r, 401).await;

    // 403 naming the permission.
    let msg = error_message(get_auth(&app, "/api/accounts/users/", &pleb).await, 403).await;
    assert!(msg.contains("users.view"), "{msg}");
    let msg = error_message(
        make_user(&app, &pleb, json!({"username": "x", "password": PW})).await,
        403,
    )
    .await;
    assert!(msg.contains("users.manage"), "{msg}");
    let msg = error_message(
        get_auth(&app, &format!("/api/accounts/users/{admin_id}/"), &pleb).await,
        403,
    )
    .await;
    assert!(msg.contains("users.view"), "{msg}");

    // The permission list is readable by any signed-in user.
    let r = get_auth(&app, "/api/accounts/permissions/", &pleb).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let names: Vec<&str> = v["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for n in ["users.view", "users.manage", "keys.manage_all"] {
        assert!(names.contains(&n), "{names:?}");
    }

    // The admin does everything: create, read, list, patch, delete.
    let r = make_user(
        &app,
        &admin,
        json!({"username": "viewer", "email": "viewer@example.com", "password": PW,
               "permissions": ["users.view", "users.view"]}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let viewer: Value = r.json().await.unwrap();
    let vid = viewer["id"].as_i64().unwrap();
    // A permission named twice is held once.
    assert_eq!(viewer["permissions"], json!(["users.view"]));
    assert!(viewer.get("password_hash").is_none() && viewer.get("password").is_none());
    let list: Value = get_auth(&app, "/api/accounts/users/?limit=2", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 3);
    assert_eq!(list["users"].as_array().unwrap().len(), 2);
    // Slash-less forms are served too.
    assert_eq!(
        get_auth(&app, "/api/accounts/users", &admin).await.status(),
        200
    );
    assert_eq!(
        get_auth(&app, &format!("/api/accounts/users/{vid}"), &admin)
            .await
            .status(),
        200
    );

    // users.view can list and read, not change. A permission change applies at once.
    let (viewer_tok, _) = pair(&app, "viewer", PW).await;
    assert_eq!(
        get_auth(&app, "/api/accounts/users/", &viewer_tok)
            .await
            .status(),
        200
    );
    let msg = error_message(
        app.client
            .delete(app.url(&format!("/api/accounts/users/{admin_id}/")))
            .bearer_auth(&viewer_tok)
            .send()
            .await
            .unwrap(),
        403,
    )
    .await;
    assert!(msg.contains("users.manage"), "{msg}");
    let r = app
        .client
        .patch(app.url(&format!("/api/accounts/users/{vid}/")))
        .bearer_auth(&admin)
        .json(&json!({"permissions": ["users.view", "users.manage", "users.view"], "email": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["email"], Value::Null);
    assert_eq!(v["permissions"], json!(["users.view", "users.manage"]));

    // users.manage without admin: cannot make admins, grant what it lacks, or touch admins.
    let msg = error_message(
        make_user(
            &app,
            &viewer_tok,
            json!({"username": "sneaky", "is_admin": true}),
        )
        .await,
        403,
    )
    .await;
    assert!(msg.contains("administrator"), "{msg}");
    let msg = error_message(
        make_user(
            &app,
            &viewer_tok,
            json!({"username": "sneaky", "permissions": ["audit.view"]}),
        )
        .await,
        403,
    )
    .await;
    assert!(msg.contains("audit.view"), "{msg}");
    error_message(
        app.client
            .patch(app.url(&format!("/api/accounts/users/{admin_id}/")))
            .bearer_auth(&viewer_tok)
            .json(&json!({"disabled": true}))
            .send()
            .await
            .unwrap(),
        403,
    )
    .await;
    let r = make_user(
        &app,
        &viewer_tok,
        json!({"username": "helper", "permissions": ["users.view"]}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let hid = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();

    // Failure paths: bad fields, unknown permission, duplicates, bad ids, missing users,
    // locking yourself out.
    for (body, status) in [
        (json!({"username": "bad name"}), 400),
        (json!({"username": "ok", "email": "nope"}), 400),
        (json!({"username": "ok", "permissions": ["root"]}), 400),
        (json!({"username": "ok", "password": "short"}), 400),
        (json!({"username": "ok", "unknown": 1}), 400),
        (json!({"username": "viewer"}), 409),
    ] {
        error_message(make_user(&app, &admin, body.clone()).await, status).await;
    }
    error_message(
        get_auth(&app, "/api/accounts/users/abc/", &admin).await,
        400,
    )
    .await;
    error_message(
        get_auth(&app, "/api/accounts/users/99999/", &admin).await,
        404,
    )
    .await;
    error_message(
        get_auth(&app, "/api/accounts/users/?limit=x", &admin).await,
        400,
    )
    .await;
    let msg = error_message(
        app.client
            .patch(app.url(&format!("/api/accounts/users/{admin_id}/")))
            .bearer_auth(&admin)
            .json(&json!({"disabled": true}))
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    assert!(msg.contains("own account"), "{msg}");
    error_message(
        app.client
            .delete(app.url(&format!("/api/accounts/users/{admin_id}/")))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    error_message(
        app.client
            .patch(app.url(&format!("/api/accounts/users/{vid}/")))
            .bearer_auth(&admin)
            .json(&json!({"email": "boss@example.com"}))
            .send()
            .await
            .unwrap(),
        409,
    )
    .await;

    // Delete: 204, then 404; the deleted user's tokens stop working.
    let (helper_tok, _) = {
        let r = app
            .client
            .patch(app.url(&format!("/api/accounts/users/{hid}/")))
            .bearer_auth(&admin)
            .json(&json!({"password": PW}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        pair(&app, "helper", PW).await
    };
    let r = app
        .client
        .delete(app.url(&format!("/api/accounts/users/{hid}/")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    error_message(
        get_auth(&app, &format!("/api/accounts/users/{hid}/"), &admin).await,
        404,
    )
    .await;
    error_message(
        get_auth(&app, "/api/accounts/permissions/", &helper_tok).await,
        401,
    )
    .await;
}

#[tokio::test]
async fn failed_sign_ins_are_throttled_per_account_and_per_address() {
    let app = spawn_with(|s| {
        s.login.max_failures_per_account = 3;
        s.login.max_failures_per_address = 6;
        s.login.window_secs = 60;
        s.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    app.create_user("kate", PW, false).await;
    let from = |ip: &'static str, user: &'static str, pw: &'static str| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/api/accounts/token/"))
                .header("x-forwarded-for", ip)
                .json(&json!({"username": user, "password": pw}))
                .send()
                .await
                .unwrap()
        }
    };
    // The real user signs in from home once: that address is remembered for the account.
    assert_eq!(from("10.0.0.1", "kate", PW).await.status(), 200);
    for _ in 0..3 {
        error_message(from("10.0.0.66", "kate", "wrong guess 1").await, 401).await;
    }
    // The 4th attempt on the account is refused — even with the right password.
    let r = from("10.0.0.67", "kate", PW).await;
    let retry: u64 = retry_after(&r);
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(error_message(r, 429).await, "Rate limit exceeded");
    // An unknown account is throttled the same way (nothing to enumerate).
    for _ in 0..3 {
        error_message(from("10.0.0.70", "ghost", "wrong guess 1").await, 401).await;
    }
    error_message(from("10.0.0.71", "ghost", "x").await, 429).await;
    // The attacker cannot lock the real user out at their remembered address.
    assert_eq!(from("10.0.0.1", "kate", PW).await.status(), 200);

    // Per address: one address spraying many accounts is stopped.
    for i in 0..6 {
        let user: &'static str = Box::leak(format!("spray{i}").into_boxed_str());
        error_message(from("10.0.0.99", user, "wrong guess 1").await, 401).await;
    }
    let r = from("10.0.0.99", "someone-new", "wrong guess 1").await;
    assert!(r.headers().contains_key("retry-after"));
    error_message(r, 429).await;
}

#[tokio::test]
async fn consecutive_failures_are_capped_beyond_the_window() {
    let app = spawn_with(|s| {
        s.login.max_failures_per_account = 1_000;
        s.login.max_consecutive_failures = 4;
        s.login.lockout_secs = 900;
    })
    .await;
    app.create_user("liam", PW, false).await;
    for _ in 0..4 {
        let r = post(
            &app,
            "/api/accounts/token/",
            json!({"username": "liam", "password": "wrong guess 1"}),
        )
        .await;
        error_message(r, 401).await;
    }
    let r = post(
        &app,
        "/api/accounts/token/",
        json!({"username": "liam", "password": PW}),
    )
    .await;
    let retry: u64 = retry_after(&r);
    assert!(retry > 300 && retry <= 900, "{retry}");
    error_message(r, 429).await;
}

#[tokio::test]
async fn tokens_are_stored_only_hashed_or_sealed() {
    let app = spawn().await;
    app.create_user("mia", PW, false).await;
    let (a1, r1) = pair(&app, "mia", PW).await;
    let r = refresh(&app, &r1).await;
    let v: Value = r.json().await.unwrap();
    app.ctx
        .db
        .write(|tx| {
            tx.query_row("PRAGMA wal_checkpoint(FULL)", [], |_| Ok(()))?;
            Ok(())
        })
        .await
        .ok();
    let mut bytes = std::fs::read(app.ctx.settings.database_path()).unwrap();
    let wal = app.ctx.settings.database_path().with_extension("db-wal");
    if let Ok(w) = std::fs::read(wal) {
        bytes.extend(w);
    }
    let hay = String::from_utf8_lossy(&bytes);
    for t in [
        a1.as_str(),
        r1.as_str(),
        v["access"].as_str().unwrap(),
        v["refresh"].as_str().unwrap(),
    ] {
        let sig = t.split('.').nth(2).unwrap();
        assert!(!hay.contains(sig), "a token signature is stored in clear");
    }
    // Nothing secret in the context's Debug output (the keyring's sealing key included).
    let debug = format!("{:?}", app.ctx);
    for purpose in ["jwt signing key seal", "jwt refresh grace seal"] {
        let k = app.ctx.pepper.derive(purpose);
        assert!(
            !debug.contains(&format!("{:?}", &k[..])),
            "{purpose} key in Debug"
        );
    }
    assert!(debug.contains("Keyring"));
    // The private signing key is not stored in clear either: the seed is sealed.
    let sealed: Vec<u8> = app
        .ctx
        .db
        .read(|c| Ok(c.query_row("SELECT sealed_seed FROM signing_keys", [], |r| r.get(0))?))
        .await
        .unwrap();
    assert_eq!(sealed.len(), 24 + 32 + 16);
}

#[tokio::test]
async fn reuse_is_audited_and_expired_refresh_records_are_cleaned_up() {
    let app = spawn_with(|s| {
        s.jwt.access_ttl_secs = 1;
        s.jwt.refresh_ttl_secs = 2;
        s.jwt.refresh_grace_secs = 0;
        s.jwt.leeway_secs = 0;
    })
    .await;
    app.create_user("nora", PW, false).await;
    let (_, r1) = pair(&app, "nora", PW).await;
    assert_eq!(refresh(&app, &r1).await.status(), 200);
    error_message(refresh(&app, &r1).await, 401).await;
    let mut events = Vec::new();
    for _ in 0..50 {
        events = app.ctx.audit.list(None, 100, None).await.unwrap();
        if events.iter().any(|e| e.event == "token.refresh_reuse") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reuse = events
        .iter()
        .find(|e| e.event == "token.refresh_reuse")
        .expect("reuse audited");
    assert_eq!(reuse.outcome, "failure");
    assert!(!reuse.detail.clone().unwrap_or_default().contains(&r1));

    // Once expired, refresh tokens and families are deleted by the cleanup job.
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let report = gatehouse::services::cleanup::run_once(&app.ctx)
        .await
        .unwrap();
    let deleted = |t: &str| {
        report
            .tables
            .iter()
            .find(|r| r.table == t)
            .map(|r| r.deleted)
            .unwrap()
    };
    assert_eq!(deleted("refresh_tokens"), 2);
    assert_eq!(deleted("refresh_families"), 1);
    assert_eq!(
        deleted("signing_keys"),
        0,
        "the active key is never cleaned up"
    );
}

#[tokio::test]
async fn parallel_guesses_cannot_overrun_the_account_limit() {
    let app = spawn_with(|s| {
        s.login.max_failures_per_account = 3;
        s.login.max_failures_per_address = 1_000;
    })
    .await;
    app.create_user("olga", PW, false).await;
    let mut tasks = Vec::new();
    for i in 0..10 {
        let client = app.client.clone();
        let url = app.url("/api/accounts/token/");
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .json(&json!({"username": "olga", "password": format!("wrong guess {i}")}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses.sort();
    assert_eq!(
        statuses,
        [vec![401; 3], vec![429; 7]].concat(),
        "only the limit's worth of guesses reach the password check"
    );
}

#[tokio::test]
async fn a_flood_of_sign_ins_queues_on_the_hash_pool_or_gets_503() {
    // One hash at a time and one waiting: the rest of a burst is refused at once. Hashes at
    // t = 8 (≈ 60 ms) so the burst surely arrives while the first is computed.
    let app = spawn_with(|s| {
        s.password.argon2_ops_limit = 8;
        s.password.hash_concurrency = 1;
        s.password.hash_queue = 1;
        s.login.max_failures_per_account = 1_000;
        s.login.max_failures_per_address = 1_000;
    })
    .await;
    app.create_user("flood", PW, false).await;
    let burst = (0..12).map(|_| {
        post(
            &app,
            "/api/accounts/token/",
            json!({"username": "flood", "password": PW}),
        )
    });
    let answers = futures_util::future::join_all(burst).await;
    let (mut ok, mut refused) = (0, 0);
    for r in answers {
        match r.status().as_u16() {
            200 => ok += 1,
            503 => {
                assert_eq!(r.headers()["retry-after"], "1");
                assert_eq!(
                    error_message(r, 503).await,
                    "Service temporarily unavailable, retry shortly"
                );
                refused += 1;
            }
            other => panic!("a sign-in in the burst got {other}"),
        }
    }
    assert!(ok >= 1, "no sign-in of the burst got through");
    assert!(
        refused >= 1,
        "a burst of 12 on 1 slot + 1 queued was never refused"
    );
    // The pool is still in service afterwards.
    pair(&app, "flood", PW).await;
}
