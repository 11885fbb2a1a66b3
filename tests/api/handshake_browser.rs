//! The handshake in real headless Chromium: the page's Web Crypto module against the shared
//! vector and against the server's `snow`, the secrets page with several tenants, refresh and
//! sign-out, and (with an API key from the keys branch) the whole `/login` flow with a check
//! of the page's recorded network traffic.

use std::time::Duration;

use fantoccini::Locator;
use gatehouse::crypto::{b64, unb64};
use gatehouse::services;
use gatehouse::services::types::TenantId;
use serde_json::{json, Value};

use crate::browser::{self, Browser};
use crate::handshake::{api_key, api_key_principal, tenant_owned_by, tenant_with_owner, Tenant};
use crate::helpers::*;

fn vector() -> Value {
    let p = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/vectors/handshake-xk.json"
    );
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

async fn wait_for(b: &Browser, script: &str) -> Value {
    for _ in 0..100 {
        let v = b.client.execute(script, vec![]).await.unwrap();
        if !v.is_null() && v != json!(false) && v != json!("") {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {script}");
}

#[tokio::test]
async fn page_module_reproduces_the_vector_in_chromium() {
    let app = spawn().await;
    let b = browser::start().await;
    b.client.goto(&app.url("/login")).await.unwrap();
    wait_for(&b, "return !!window.GatehouseHandshake").await;
    let v = vector();
    let out = b
        .client
        .execute_async(
            r#"const [v, done] = arguments;
            (async () => {
              const H = window.GatehouseHandshake;
              const hs = await H.start({
                tenantId: v.tenant_id,
                seed: H.parseTenantKey(v.tenant_private_key),
                serverPublic: H.unb64u(v.server_static_public),
                testOnlyEphemeral: H.unb64u(v.client_ephemeral_private),
              });
              const r = await hs.finish(H.unb64u(v.message2));
              done({ m1: H.b64u(hs.message1), m3: H.b64u(r.message3), hash: H.b64u(r.handshakeHash) });
            })().catch((e) => done({ error: String(e) }));"#,
            vec![v.clone()],
        )
        .await
        .unwrap();
    assert!(out.get("error").is_none(), "{out}");
    let made = b
        .client
        .execute_async(
            r#"const [v, done] = arguments;
            const H = window.GatehouseHandshake;
            H.newTenantKey(H.parseTenantKey(v.tenant_private_key)).then(done, (e) => done(String(e)));"#,
            vec![v.clone()],
        )
        .await
        .unwrap();
    assert_eq!(made["publicKey"], v["client_static_public"]);
    assert_eq!(made["privateKey"], v["tenant_private_key"]);
    assert_eq!(out["m1"], v["message1"]);
    assert_eq!(out["m3"], v["message3"]);
    assert_eq!(out["hash"], v["handshake_hash"]);
    // A tampered message 2 is refused by the page.
    let err = b
        .client
        .execute_async(
            r#"const [v, done] = arguments;
            (async () => {
              const H = window.GatehouseHandshake;
              const hs = await H.start({ tenantId: v.tenant_id, seed: H.parseTenantKey(v.tenant_private_key),
                serverPublic: H.unb64u(v.server_static_public) });
              const m2 = H.unb64u(v.message2); m2[40] ^= 1;
              await hs.finish(m2);
              done("accepted");
            })().catch((e) => done(String(e)));"#,
            vec![v.clone()],
        )
        .await
        .unwrap();
    assert!(err.as_str().unwrap().contains("pinned server"), "{err}");
    b.close().await;
}

/// Runs the page's handshake (fresh Web Crypto ephemeral keys) against the server's `snow`.
/// The first call goes through the service entry point the handler uses after resolving an API
/// key; the confirm call is HTTP. Returns the session token.
async fn page_handshake(app: &TestApp, b: &Browser, t: &Tenant) -> String {
    let server_key = b64(&app.ctx.handshakes.server_public());
    let m1 = b
        .client
        .execute_async(
            r#"const [tenant, tsk, server, done] = arguments;
            (async () => {
              const H = window.GatehouseHandshake;
              window.__hs = await H.start({ tenantId: tenant, seed: H.parseTenantKey(tsk), serverPublic: H.unb64u(server) });
              done(H.b64u(window.__hs.message1));
            })().catch((e) => done("error: " + e));"#,
            vec![json!(t.id), json!(t.private_key), json!(server_key)],
        )
        .await
        .unwrap();
    let m1 = unb64(m1.as_str().unwrap()).expect("message 1");
    let begun = services::handshake::begin(
        &app.ctx,
        &api_key_principal(t.owner_id, &t.id),
        &TenantId::parse(&t.id).unwrap(),
        &m1,
        &Default::default(),
    )
    .await
    .unwrap();
    let m3 = b
        .client
        .execute_async(
            r#"const [m2, done] = arguments;
            (async () => {
              const H = window.GatehouseHandshake;
              const r = await window.__hs.finish(H.unb64u(m2));
              done(H.b64u(r.message3));
            })().catch((e) => done("error: " + e));"#,
            vec![json!(b64(&begun.message))],
        )
        .await
        .unwrap();
    let r = crate::handshake::confirm(
        app,
        &begun.handshake_id,
        &unb64(m3.as_str().unwrap()).unwrap(),
    )
    .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["session_token"].as_str().unwrap().to_owned()
}

async fn store_session(b: &Browser, tenant: &str, token: &str) {
    b.client
        .execute(
            "window.GatehouseTenants.add(arguments[0], arguments[1], 0);",
            vec![json!(tenant), json!(token)],
        )
        .await
        .unwrap();
}

async fn save_secret(b: &Browser, name: &str, value: &str) {
    b.client
        .find(Locator::Id("secret-name"))
        .await
        .unwrap()
        .send_keys(name)
        .await
        .unwrap();
    b.client
        .find(Locator::Id("secret-value"))
        .await
        .unwrap()
        .send_keys(value)
        .await
        .unwrap();
    b.client
        .find(Locator::Id("secret-save"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(
        b,
        &format!("return !!document.querySelector('#secrets-table tr[data-name=\"{name}\"]')"),
    )
    .await;
}

async fn show_secret(b: &Browser, name: &str) -> String {
    b.client
        .find(Locator::Css(&format!(
            "tr[data-name=\"{name}\"] .show-secret"
        )))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(
        b,
        "return document.getElementById('secret-shown').textContent",
    )
    .await
    .as_str()
    .unwrap()
    .to_owned()
}

#[tokio::test]
async fn page_handshake_interoperates_and_secrets_page_handles_several_tenants() {
    let app = spawn().await;
    let alice = tenant_with_owner(&app, "alice").await;
    let bob = tenant_with_owner(&app, "bob").await;
    let b = browser::start().await;
    b.client.goto(&app.url("/login")).await.unwrap();
    wait_for(
        &b,
        "return !!window.GatehouseHandshake && !!window.GatehouseTenants",
    )
    .await;
    let token_a = page_handshake(&app, &b, &alice).await;
    store_session(&b, &alice.id, &token_a).await;
    let token_b = page_handshake(&app, &b, &bob).await;
    store_session(&b, &bob.id, &token_b).await;
    // Nothing but session tokens in the page's storage.
    let storage = b
        .client
        .execute(
            "return JSON.stringify(sessionStorage) + JSON.stringify(localStorage)",
            vec![],
        )
        .await
        .unwrap();
    let storage = storage.as_str().unwrap();
    assert!(storage.contains(&token_a) && storage.contains(&token_b));
    assert!(!storage.contains(&alice.private_key[4..]) && !storage.contains("tsk_"));

    b.client.goto(&app.url("/secrets")).await.unwrap();
    let active = wait_for(&b, "return document.body.dataset.ready").await;
    assert_eq!(active, json!(bob.id), "the latest sign-in is active");
    save_secret(&b, "bob-secret", "bob's value").await;
    assert_eq!(show_secret(&b, "bob-secret").await, "bob's value");

    // Switch tenants with the switcher.
    b.client
        .find(Locator::Css(&format!(
            "#tenant-switcher option[value=\"{}\"]",
            alice.id
        )))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(
        &b,
        &format!("return document.body.dataset.ready === '{}'", alice.id),
    )
    .await;
    save_secret(&b, "alice-secret", "alice's value").await;
    assert_eq!(show_secret(&b, "alice-secret").await, "alice's value");
    let rows = b
        .client
        .execute(
            "return document.querySelectorAll('#secrets-table tbody tr').length",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(rows, json!(1), "alice sees only her secrets");

    // A page refresh keeps both sessions.
    b.client.refresh().await.unwrap();
    wait_for(
        &b,
        &format!("return document.body.dataset.ready === '{}'", alice.id),
    )
    .await;
    assert_eq!(show_secret(&b, "alice-secret").await, "alice's value");

    // Signing out ends the active tenant's session and switches to the next.
    b.client
        .find(Locator::Id("sign-out"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(
        &b,
        &format!("return document.body.dataset.ready === '{}'", bob.id),
    )
    .await;
    let r = app
        .client
        .get(app.url("/api/secrets"))
        .header("Dispatched-Session", &token_a)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "alice's session ended server-side");
    let r = app
        .client
        .get(app.url("/api/secrets"))
        .header("Dispatched-Session", &token_b)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "bob's session lives on");
    b.client
        .find(Locator::Id("sign-out"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    for _ in 0..50 {
        if b.client.current_url().await.unwrap().path() == "/login" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(b.client.current_url().await.unwrap().path(), "/login");
    // The performance log records request bodies: the network check below can see a leak.
    let log = network_log(&b).await;
    assert!(
        log.contains("/api/secrets/alice-secret"),
        "request URLs are recorded"
    );
    assert!(log.contains("alice's value"), "request bodies are recorded");
    b.close().await;
}

#[tokio::test]
async fn pages_have_no_inline_script_and_pin_the_server_key() {
    let app = spawn().await;
    for path in ["/login", "/secrets"] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'"));
        let html = r.text().await.unwrap();
        for tag in html.split("<script").skip(1) {
            let head = tag.split('>').next().unwrap();
            assert!(
                head.contains("src=\"/static/"),
                "inline script in {path}: {tag}"
            );
            assert!(
                tag.trim_start_matches(head).starts_with("></script>"),
                "inline script in {path}"
            );
        }
    }
    let html = app
        .client
        .get(app.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains(&b64(&app.ctx.handshakes.server_public())));
    assert!(!html.contains("name=\"tenant_key\"") && !html.contains("localStorage"));
    for js in [
        "/static/handshake.js",
        "/static/login.js",
        "/static/secrets.js",
        "/static/tenants.js",
    ] {
        let r = app.client.get(app.url(js)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript"));
        assert!(
            !r.text().await.unwrap().contains("localStorage"),
            "{js} must not use localStorage"
        );
    }
}

/// Every network request body and URL the page sent, from Chromium's performance log.
async fn network_log(b: &Browser) -> String {
    let sid = b.client.session_id().await.unwrap().unwrap();
    let v: Value = reqwest::Client::new()
        .post(format!("{}/session/{sid}/se/log", b.driver_url))
        .json(&json!({"type": "performance"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entries = v["value"].as_array().expect("performance log entries");
    assert!(!entries.is_empty());
    entries
        .iter()
        .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn login_page_signs_in_stores_and_reads_a_secret_survives_refresh_and_never_sends_the_key() {
    {
        let app = spawn().await;
        let t = tenant_with_owner(&app, "alice").await;
        let key = api_key(&app, "alice", &t.id);
        let b = browser::start().await;
        b.client.goto(&app.url("/login")).await.unwrap();
        wait_for(&b, "return !!window.GatehouseHandshake").await;
        b.client
            .find(Locator::Id("tenant-id"))
            .await
            .unwrap()
            .send_keys(&t.id)
            .await
            .unwrap();
        b.client
            .find(Locator::Id("api-key"))
            .await
            .unwrap()
            .send_keys(&key)
            .await
            .unwrap();
        b.client
            .find(Locator::Id("tenant-key"))
            .await
            .unwrap()
            .send_keys(&t.private_key)
            .await
            .unwrap();
        b.client
            .find(Locator::Id("login-submit"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_for(
            &b,
            &format!("return document.body.dataset.ready === '{}'", t.id),
        )
        .await;
        save_secret(&b, "from-the-page", "page value").await;
        assert_eq!(show_secret(&b, "from-the-page").await, "page value");
        b.client.refresh().await.unwrap();
        wait_for(
            &b,
            &format!("return document.body.dataset.ready === '{}'", t.id),
        )
        .await;
        assert_eq!(show_secret(&b, "from-the-page").await, "page value");
        let storage = b
            .client
            .execute(
                "return JSON.stringify(sessionStorage) + JSON.stringify(localStorage)",
                vec![],
            )
            .await
            .unwrap();
        assert!(!storage.as_str().unwrap().contains(&t.private_key[4..]));

        let log = network_log(&b).await;
        assert!(
            log.contains("/api/session/confirm"),
            "the log recorded the sign-in"
        );
        let seed = unb64(&t.private_key[4..]).unwrap();
        let hex: String = seed.iter().map(|x| format!("{x:02x}")).collect();
        let std_b64 = base64_std(&seed);
        let static_priv = t.seed.static_private();
        let wrapping = t.seed.wrapping_key();
        for (what, needle) in [
            ("private key", t.private_key.clone()),
            ("seed b64url", t.private_key[4..].to_owned()),
            ("seed std b64", std_b64.trim_end_matches('=').to_owned()),
            ("seed hex", hex.clone()),
            ("seed HEX", hex.to_uppercase()),
            ("static private b64url", b64(static_priv.bytes())),
            ("wrapping key b64url", b64(wrapping.bytes())),
        ] {
            assert!(
                !log.contains(&needle),
                "{what} appeared in the page's network traffic"
            );
        }
        b.close().await;
    }
}

fn base64_std(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[tokio::test]
async fn admin_page_makes_the_tenant_key_in_the_page_and_sends_only_the_public_key() {
    let app = spawn().await;
    let admin_id = app.create_user("root", STRONG_PASSWORD, true).await;
    let t = tenant_owned_by(&app, "root", admin_id);
    let b = browser::start().await;
    b.client.goto(&app.url("/login")).await.unwrap();
    wait_for(
        &b,
        "return !!window.GatehouseHandshake && !!window.GatehouseTenants",
    )
    .await;
    let token = page_handshake(&app, &b, &t).await;
    store_session(&b, &t.id, &token).await;
    b.client.goto(&app.url("/tenants/new")).await.unwrap();
    wait_for(&b, "return !!window.GatehouseHandshake").await;
    b.client
        .find(Locator::Id("tenant-name"))
        .await
        .unwrap()
        .send_keys("Made in the page")
        .await
        .unwrap();
    b.client
        .find(Locator::Id("tenant-create"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let tsk = wait_for(
        &b,
        "return document.getElementById('new-private-key').textContent",
    )
    .await;
    let tsk = tsk.as_str().unwrap().to_owned();
    let id = wait_for(
        &b,
        "return document.getElementById('new-tenant-id').textContent",
    )
    .await;
    let id = id.as_str().unwrap().to_owned();
    let seed = gatehouse::crypto::handshake::TenantSeed::parse(&tsk).unwrap();
    let tid = id.clone();
    let stored: Vec<u8> = app
        .ctx
        .db
        .read(move |c| {
            Ok(c.query_row(
                "SELECT static_public_key FROM tenants WHERE id = ?1",
                [&tid],
                |r| r.get(0),
            )?)
        })
        .await
        .unwrap();
    assert_eq!(
        stored,
        seed.static_public(),
        "the server holds the page-made public key"
    );
    let log = network_log(&b).await;
    assert!(log.contains("/api/tenants"));
    assert!(
        !log.contains(&tsk[4..]),
        "the private key never went over the network"
    );
    // The new tenant signs in with the private key the page showed.
    let made = Tenant {
        id,
        private_key: tsk,
        seed,
        owner_id: admin_id,
    };
    let fresh = crate::handshake::sign_in(&app, &made).await;
    assert!(fresh.starts_with("dst_sess_"));
    b.close().await;
}
