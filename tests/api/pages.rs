//! End to end in real headless Chromium: sign in with a password, walk the main pages, sign in
//! by magic link from the outbox, sign out. Screenshots land in `tests/artifacts/`.

use std::time::Duration;

use fantoccini::{Client, Locator};

use crate::browser;
use crate::helpers::{spawn_with, TestApp, STRONG_PASSWORD};

async fn wait_path(c: &Client, path: &str) {
    for _ in 0..100 {
        if c.current_url().await.unwrap().path() == path {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "browser never reached {path}; at {}",
        c.current_url().await.unwrap()
    );
}

/// The text of the first element matching `css`, waiting for it (and across page loads).
async fn text_of(c: &Client, css: &str) -> String {
    let mut last = None;
    for _ in 0..100 {
        match c.find(Locator::Css(css)).await {
            Ok(e) => match e.text().await {
                Ok(t) => return t,
                Err(err) => last = Some(err),
            },
            Err(err) => last = Some(err),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no element {css}: {last:?}");
}

/// Waits until the element matching `css` contains `needle` (pages load after a click).
async fn wait_text(c: &Client, css: &str, needle: &str) {
    let mut last = String::new();
    for _ in 0..100 {
        last = text_of(c, css).await;
        if last.contains(needle) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css} never contained {needle:?}; last text {last:?}");
}

async fn fill(c: &Client, css: &str, value: &str) {
    let e = c.find(Locator::Css(css)).await.unwrap();
    e.clear().await.unwrap();
    e.send_keys(value).await.unwrap();
}

async fn outbox_token(app: &TestApp) -> String {
    let dir = app.ctx.settings.data_dir.join("outbox");
    for _ in 0..100 {
        if let Ok(rd) = std::fs::read_dir(&dir) {
            if let Some(p) = rd
                .filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "eml"))
            {
                let mail = std::fs::read_to_string(p).unwrap();
                return crate::browser_signin::token_in(&mail.replace("\r\n", "\n"));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no mail in the outbox");
}

#[tokio::test]
async fn sign_in_walk_pages_and_sign_out_in_chromium() {
    let app = spawn_with(|s| s.dev = true).await;
    let uid = app.create_user("admin", STRONG_PASSWORD, true).await;
    app.create_user("alice", STRONG_PASSWORD, false).await;
    gatehouse::services::tenants::create(&app.ctx, "Acme Corp", Some(uid))
        .await
        .unwrap();
    let b = browser::start().await;
    let c = &b.client;

    // A page that needs a session sends us to sign in.
    c.goto(&app.url("/dashboard")).await.unwrap();
    wait_path(c, "/sign-in").await;
    b.screenshot("sign-in").await;

    // A wrong password: a message on the page.
    fill(c, "#username", "admin").await;
    fill(c, "#password", "not the password").await;
    c.find(Locator::Css("#password-form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(c, "main > .msg.error", "Invalid username or password").await;
    b.screenshot("sign-in-error").await;

    // Sign in with the password.
    fill(c, "#username", "admin").await;
    fill(c, "#password", STRONG_PASSWORD).await;
    c.find(Locator::Css("#password-form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_path(c, "/dashboard").await;
    assert_eq!(text_of(c, "main h1").await, "Dashboard");
    assert!(text_of(c, "#sessions").await.contains("this device"));
    b.screenshot("dashboard").await;

    // Usable on a phone: the sidebar folds above the content.
    c.set_window_size(390, 844).await.unwrap();
    c.refresh().await.unwrap();
    b.screenshot("dashboard-phone").await;
    c.set_window_size(1280, 900).await.unwrap();

    // The organization switcher (JS submits on change).
    let select = c.find(Locator::Css("#org")).await.unwrap();
    select.select_by_label("Acme Corp").await.unwrap();
    wait_text(c, "dl.facts", "Acme Corp").await;
    assert!(text_of(c, "dl.facts").await.contains("owner"));

    // Profile: a wrong current password shows a message.
    c.goto(&app.url("/profile")).await.unwrap();
    assert_eq!(text_of(c, "main h1").await, "Profile");
    b.screenshot("profile").await;
    fill(c, "#current", "wrong wrong wrong").await;
    fill(c, "#new", "another good passphrase 99").await;
    fill(c, "#confirm", "another good passphrase 99").await;
    c.find(Locator::Css("#password-change button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(c, "main > .msg.error", "current password is wrong").await;

    // Admin users: create one, see it listed; a bad name shows a message.
    c.goto(&app.url("/admin/users")).await.unwrap();
    fill(c, "#u-name", "newbie").await;
    fill(c, "#u-email", "newbie@example.com").await;
    c.find(Locator::Css("#create-user button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(c, "main > .msg.notice", "User newbie created").await;
    wait_text(c, "#users", "newbie@example.com").await;
    fill(c, "#u-name", "bad name!").await;
    c.find(Locator::Css("#create-user button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(c, "main > .msg.error", "username").await;
    c.goto(&app.url("/admin/users")).await.unwrap();
    b.screenshot("admin-users").await;

    // Audit page.
    c.goto(&app.url("/audit")).await.unwrap();
    assert!(text_of(c, "#audit").await.contains("login"));
    b.screenshot("audit").await;

    // API keys: create → shown once → revoke.
    c.goto(&app.url("/api-keys")).await.unwrap();
    {
        fill(c, "#key-name", "ci deploy").await;
        c.find(Locator::Css("#create-key"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        // The answer page replaces this one after the click: wait for the key to be shown.
        wait_text(c, "#new-key-secret", "sk_live_").await;
        let secret = text_of(c, "#new-key-secret").await;
        assert!(secret.starts_with("sk_live_"), "{secret}");
        b.screenshot("api-keys").await;
        c.refresh().await.unwrap();
        let rows = text_of(c, "[data-key-rows]").await;
        assert!(rows.contains("ci deploy"));
        assert!(!rows.contains(&secret), "the secret is shown once only");
        c.find(Locator::Css("[data-revoke]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        c.accept_alert().await.unwrap();
        for _ in 0..50 {
            if !text_of(c, "[data-key-rows]").await.contains("ci deploy") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(!text_of(c, "[data-key-rows]").await.contains("ci deploy"));
        assert_eq!(text_of(c, "main h1").await, "API keys");
    }

    // Sign out.
    c.find(Locator::Css("#sign-out"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_path(c, "/sign-in").await;
    c.goto(&app.url("/dashboard")).await.unwrap();
    wait_path(c, "/sign-in").await;

    // Magic link: request on the sign-in page, open the link from the outbox, press the button.
    fill(c, "#email", "alice@example.com").await;
    c.find(Locator::Css("#magic-form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(c, "main > .msg.notice", "on its way").await;
    let token = outbox_token(&app).await;
    c.goto(&app.url(&format!("/auth/verify?token={token}")))
        .await
        .unwrap();
    b.screenshot("verify").await;
    c.find(Locator::Css("#verify-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_path(c, "/dashboard").await;
    wait_text(c, "dl.facts", "alice").await;
    // Not an admin: no users or audit links.
    assert!(c
        .find(Locator::Css("a[href='/admin/users']"))
        .await
        .is_err());

    b.close().await;
}
