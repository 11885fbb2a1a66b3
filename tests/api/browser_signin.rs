//! Browser sign-in over real HTTP: mail to an SMTP listener on loopback, magic links, cookie
//! sessions, organizations, CSRF, brands and portal tokens, and the audit log.

use std::time::{Duration, Instant};

use gatehouse::auth::Mode;
use gatehouse::config::{MailTransport, Settings, SmtpSecurity};
use gatehouse::services;
use gatehouse::services::types::Email;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use crate::helpers::{error_message, spawn_with, TestApp, STRONG_PASSWORD};

// ---------------------------------------------------------------- SMTP sink

/// A minimal SMTP server on loopback that hands every received message to a channel.
pub struct SmtpSink {
    /// Its port.
    pub port: u16,
    rx: mpsc::UnboundedReceiver<String>,
}

impl SmtpSink {
    /// Starts listening on 127.0.0.1, any port.
    pub async fn start() -> SmtpSink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let (r, mut w) = sock.into_split();
                    let mut lines = BufReader::new(r).lines();
                    w.write_all(b"220 sink ESMTP\r\n").await.unwrap();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let upper = line.to_ascii_uppercase();
                        if upper.starts_with("EHLO") {
                            w.write_all(b"250-sink\r\n250 8BITMIME\r\n").await.unwrap();
                        } else if upper.starts_with("DATA") {
                            w.write_all(b"354 go ahead\r\n").await.unwrap();
                            let mut msg = String::new();
                            while let Ok(Some(l)) = lines.next_line().await {
                                if l == "." {
                                    break;
                                }
                                msg.push_str(&l);
                                msg.push('\n');
                            }
                            let _ = tx.send(msg);
                            w.write_all(b"250 queued\r\n").await.unwrap();
                        } else if upper.starts_with("QUIT") {
                            let _ = w.write_all(b"221 bye\r\n").await;
                            break;
                        } else {
                            w.write_all(b"250 OK\r\n").await.unwrap();
                        }
                    }
                });
            }
        });
        SmtpSink { port, rx }
    }

    /// The next message, or `None` after `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<String> {
        tokio::time::timeout(wait, self.rx.recv())
            .await
            .ok()
            .flatten()
    }
}

/// The `ml_` token in a message (undoing quoted-printable soft breaks).
pub fn token_in(mail: &str) -> String {
    let joined = mail.replace("=\n", "");
    let at = joined.find("token=").expect("a link in the mail");
    let rest = &joined[at..];
    let start = rest.find("ml_").expect("an ml_ token");
    let tok: String = rest[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    assert_eq!(tok.len(), 3 + 43, "token {tok}");
    tok
}

fn smtp_settings(s: &mut Settings, port: u16) {
    s.mail.transport = MailTransport::Smtp;
    s.mail.smtp_host = "127.0.0.1".into();
    s.mail.smtp_port = port;
    s.mail.smtp_security = SmtpSecurity::None;
    s.mail.from = "Gatehouse <auth@example.com>".into();
    s.magic_link.max_per_client = 1_000;
}

async fn spawn_smtp(adjust: impl FnOnce(&mut Settings)) -> (TestApp, SmtpSink) {
    let sink = SmtpSink::start().await;
    let port = sink.port;
    let app = spawn_with(|s| {
        smtp_settings(s, port);
        adjust(s);
    })
    .await;
    (app, sink)
}

// ---------------------------------------------------------------- helpers

/// The session cookie's `name=value` from a response, and the whole header.
fn session_cookie(resp: &reqwest::Response) -> Option<(String, String)> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.contains("gatehouse_session="))
        .map(|v| {
            let pair = v.split(';').next().unwrap().trim().to_owned();
            (pair, v.to_owned())
        })
}

fn token_of(pair: &str) -> String {
    pair.split_once('=').unwrap().1.to_owned()
}

/// Signs in with a password through the sign-in form; returns the cookie pair `name=value`.
pub async fn sign_in(app: &TestApp, user: &str, password: &str) -> String {
    sign_in_as(app, user, password, None).await
}

/// The sign-in form's POST, ready for extra headers.
fn sign_in_form(app: &TestApp, user: &str, password: &str) -> reqwest::RequestBuilder {
    app.client
        .post(app.url("/sign-in"))
        .form(&[("username", user), ("password", password)])
}

async fn sign_in_as(app: &TestApp, user: &str, password: &str, ua: Option<&str>) -> String {
    let mut req = sign_in_form(app, user, password);
    if let Some(ua) = ua {
        req = req.header("user-agent", ua);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 303, "sign-in should redirect");
    assert_eq!(resp.headers()["location"], "/dashboard");
    session_cookie(&resp).expect("session cookie").0
}

/// The user's recorded last sign-in time, read from the database file.
fn last_login(app: &TestApp, user: &str) -> Option<i64> {
    let c = rusqlite::Connection::open(app.ctx.settings.database_path()).unwrap();
    c.query_row(
        "SELECT last_login_at FROM users WHERE username = ?1",
        [user],
        |r| r.get(0),
    )
    .unwrap()
}

/// The CSRF token a page embeds for this session.
pub async fn csrf(app: &TestApp, cookie: &str) -> String {
    let page = app
        .client
        .get(app.url("/dashboard"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let body = page.text().await.unwrap();
    let at = body
        .find("name=\"csrf-token\" content=\"")
        .expect("csrf meta");
    let rest = &body[at + "name=\"csrf-token\" content=\"".len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

async fn whoami(app: &TestApp, cookie: &str) -> reqwest::Response {
    app.client
        .get(app.url("/v1/auth/session"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
}

async fn request_link(app: &TestApp, email: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/auth/magic-link"))
        .json(&json!({ "email": email }))
        .send()
        .await
        .unwrap()
}

async fn verify(app: &TestApp, token: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/auth/verify"))
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap()
}

// ---------------------------------------------------------------- magic links

#[tokio::test]
async fn magic_link_mail_verify_and_single_use() {
    let (app, mut sink) = spawn_smtp(|_| {}).await;
    app.create_user("alice", STRONG_PASSWORD, false).await;

    let resp = request_link(&app, "alice@example.com").await;
    assert_eq!(resp.status().as_u16(), 202);
    let mail = sink.next(Duration::from_secs(10)).await.expect("mail");
    assert!(mail.contains("To: alice@example.com"), "{mail}");
    assert!(
        mail.contains("Subject: Your Gatehouse sign-in link"),
        "{mail}"
    );
    let token = token_in(&mail);

    // The landing page shows a button that POSTs the token; GET never consumes it.
    for _ in 0..3 {
        let page = app
            .client
            .get(app.url(&format!("/auth/verify?token={token}")))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status().as_u16(), 200);
        assert!(page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let body = page.text().await.unwrap();
        assert!(body.contains("method=\"post\" action=\"/v1/auth/verify\""));
        assert!(body.contains(&token));
        assert!(!body.contains("<script>"), "no inline script");
    }

    assert_eq!(last_login(&app, "alice"), None);
    let resp = verify(&app, &token).await;
    assert_eq!(resp.status().as_u16(), 200);
    // The sign-in is recorded with the session it started.
    assert!(last_login(&app, "alice").is_some());
    let (pair, header) = session_cookie(&resp).expect("cookie");
    assert!(pair.starts_with("gatehouse_session=dst_sess_"), "{pair}");
    assert!(header.contains("HttpOnly"), "{header}");
    assert!(header.contains("SameSite=Lax"), "{header}");
    assert!(header.contains("Path=/"), "{header}");
    assert!(
        !header.contains("Secure"),
        "http dev URL: no Secure ({header})"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["account"]["username"], "alice");
    assert_eq!(body["organization"]["slug"], "default");
    assert_eq!(
        body["session"]["token"].as_str().unwrap(),
        token_of(&pair),
        "the JSON token is the cookie's"
    );

    // Single use.
    let again = verify(&app, &token).await;
    assert!(error_message(again, 401)
        .await
        .contains("invalid, expired or already used"));
    let page = app
        .client
        .get(app.url(&format!("/auth/verify?token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 400);
    assert!(page.text().await.unwrap().contains("already used"));

    // The session works, by cookie and by header.
    let me = whoami(&app, &pair).await;
    assert_eq!(me.status().as_u16(), 200);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["account"]["username"], "alice");
    assert_eq!(me["member"]["role"], "member");
    let me = app
        .client
        .get(app.url("/v1/auth/session"))
        .header("Dispatched-Session", token_of(&pair))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status().as_u16(), 200);

    // Neither the link nor the session token is stored in clear.
    let db = std::fs::read(app.ctx.settings.database_path()).unwrap();
    let wal = std::fs::read(app.ctx.settings.database_path().with_extension("db-wal"))
        .unwrap_or_default();
    for secret in [token.as_str(), token_of(&pair).as_str()] {
        for file in [&db, &wal] {
            assert!(
                !file.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "a token is stored in clear"
            );
        }
    }
}

#[tokio::test]
async fn verify_form_post_redirects_and_failures_render_html() {
    let (app, mut sink) = spawn_smtp(|_| {}).await;
    app.create_user("bob", STRONG_PASSWORD, false).await;
    request_link(&app, "bob@example.com").await;
    let token = token_in(&sink.next(Duration::from_secs(10)).await.unwrap());
    let resp = app
        .client
        .post(app.url("/v1/auth/verify"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(resp.headers()["location"], "/dashboard");
    assert!(session_cookie(&resp).is_some());
    // The same form again: an HTML page with the message, not JSON.
    let resp = app
        .client
        .post(app.url("/v1/auth/verify"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(resp.text().await.unwrap().contains("already used"));
}

#[tokio::test]
async fn unknown_address_same_answer_similar_time_and_no_mail() {
    let (app, mut sink) = spawn_smtp(|_| {}).await;
    for i in 0..12 {
        app.create_user(&format!("known{i}"), STRONG_PASSWORD, false)
            .await;
    }
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    let mut bodies = std::collections::HashSet::new();
    for i in 0..12 {
        for (addr, times) in [
            (format!("known{i}@example.com"), &mut known),
            (format!("nobody{i}@example.com"), &mut unknown),
        ] {
            let start = Instant::now();
            let resp = request_link(&app, &addr).await;
            times.push(start.elapsed());
            assert_eq!(resp.status().as_u16(), 202);
            bodies.insert(resp.text().await.unwrap());
        }
    }
    assert_eq!(bodies.len(), 1, "one answer for every address: {bodies:?}");
    known.sort();
    unknown.sort();
    let (mk, mu) = (known[6], unknown[6]);
    let diff = mk.abs_diff(mu);
    assert!(
        diff < Duration::from_millis(50),
        "medians differ too much: known {mk:?} unknown {mu:?}"
    );
    // Only the known addresses get mail.
    let mut got = Vec::new();
    while let Some(m) = sink.next(Duration::from_secs(3)).await {
        got.push(m);
    }
    assert_eq!(got.len(), 12);
    assert!(got.iter().all(|m| m.contains("To: known")));
}

#[tokio::test]
async fn newer_link_voids_older_and_expiry() {
    let (app, mut sink) = spawn_smtp(|s| s.magic_link.ttl_secs = 2).await;
    app.create_user("carol", STRONG_PASSWORD, false).await;
    request_link(&app, "carol@example.com").await;
    let first = token_in(&sink.next(Duration::from_secs(10)).await.unwrap());
    request_link(&app, "carol@example.com").await;
    let second = token_in(&sink.next(Duration::from_secs(10)).await.unwrap());
    assert_ne!(first, second);
    error_message(verify(&app, &first).await, 401).await;
    assert_eq!(verify(&app, &second).await.status().as_u16(), 200);

    request_link(&app, "carol@example.com").await;
    let third = token_in(&sink.next(Duration::from_secs(10)).await.unwrap());
    tokio::time::sleep(Duration::from_millis(2_600)).await;
    error_message(verify(&app, &third).await, 401).await;
}

#[tokio::test]
async fn magic_link_bad_input_and_throttling() {
    let (app, _sink) = spawn_smtp(|s| {
        s.magic_link.max_per_address = 2;
    })
    .await;
    assert!(
        error_message(request_link(&app, "not-an-address").await, 400)
            .await
            .contains("email")
    );
    let resp = app
        .client
        .post(app.url("/v1/auth/magic-link"))
        .body("{")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    error_message(resp, 400).await;
    assert_eq!(
        error_message(verify(&app, "ml_short").await, 400).await,
        "token must be a magic-link token (ml_…)"
    );
    let unknown = format!("ml_{}", "a".repeat(43));
    error_message(verify(&app, &unknown).await, 401).await;
    // Neither JSON nor a form: a 4xx in the JSON error shape, never a 500.
    let resp = app
        .client
        .post(app.url("/v1/auth/verify"))
        .header("content-type", "text/plain")
        .body("ml_x")
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    assert!((400..500).contains(&status), "{status}");
    error_message(resp, status).await;
    let resp = app
        .client
        .post(app.url("/v1/auth/verify"))
        .json(&json!({ "token": 42 }))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    assert!((400..500).contains(&status), "{status}");

    for _ in 0..2 {
        assert_eq!(
            request_link(&app, "x@example.com").await.status().as_u16(),
            202
        );
    }
    let resp = request_link(&app, "X@example.com").await;
    assert!(resp.headers().contains_key("retry-after"));
    assert_eq!(error_message(resp, 429).await, "Rate limit exceeded");
    // Another address from the same client still gets through.
    assert_eq!(
        request_link(&app, "y@example.com").await.status().as_u16(),
        202
    );
}

#[tokio::test]
async fn signup_by_link_only_when_allowed() {
    let (app, mut sink) = spawn_smtp(|s| s.magic_link.allow_signup = true).await;
    request_link(&app, "new.person@example.com").await;
    let token = token_in(&sink.next(Duration::from_secs(10)).await.unwrap());
    let resp = verify(&app, &token).await;
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["account"]["email"], "new.person@example.com");
    assert_eq!(body["organization"]["slug"], "default");
}

// ---------------------------------------------------------------- sessions

#[tokio::test]
async fn https_cookie_flags_hsts_and_no_fixation() {
    let app = spawn_with(|s| s.public_url = "https://auth.example.com".into()).await;
    app.create_user("dave", STRONG_PASSWORD, false).await;
    let resp = sign_in_form(&app, "dave", STRONG_PASSWORD)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    assert!(resp.headers()["strict-transport-security"]
        .to_str()
        .unwrap()
        .contains("max-age="));
    let (pair, header) = session_cookie(&resp).unwrap();
    assert!(
        pair.starts_with("__Host-gatehouse_session=dst_sess_"),
        "{pair}"
    );
    for flag in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(header.contains(flag), "{flag} missing: {header}");
    }
    assert!(
        !header.contains("Domain="),
        "__Host- cookies have no Domain"
    );

    // Signing in again while holding a session: a new token, and the old one ends.
    let resp = sign_in_form(&app, "dave", STRONG_PASSWORD)
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    let (pair2, _) = session_cookie(&resp).unwrap();
    assert_ne!(pair, pair2);
    assert_eq!(whoami(&app, &pair2).await.status().as_u16(), 200);
    error_message(whoami(&app, &pair).await, 401).await;
    // A made-up cookie value is never adopted.
    let planted = format!("__Host-gatehouse_session=dst_sess_{}", "A".repeat(43));
    let resp = sign_in_form(&app, "dave", STRONG_PASSWORD)
        .header("cookie", &planted)
        .send()
        .await
        .unwrap();
    let (pair3, _) = session_cookie(&resp).unwrap();
    assert_ne!(pair3, planted);
    error_message(whoami(&app, &planted).await, 401).await;
}

#[tokio::test]
async fn wrong_password_renders_page_message() {
    let app = spawn_with(|_| {}).await;
    app.create_user("erin", STRONG_PASSWORD, false).await;
    let resp = sign_in_form(&app, "erin", "wrong password here")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert!(session_cookie(&resp).is_none());
    assert_eq!(
        last_login(&app, "erin"),
        None,
        "a wrong password is no sign-in"
    );
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let body = resp.text().await.unwrap();
    assert!(body.contains("Invalid username or password"));
    // A page needing a session sends the visitor to sign in.
    let resp = app.client.get(app.url("/dashboard")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(resp.headers()["location"], "/sign-in");
    // The right password signs in, and the sign-in is recorded with its session.
    sign_in(&app, "erin", STRONG_PASSWORD).await;
    assert!(last_login(&app, "erin").is_some());
}

#[tokio::test]
async fn idle_timeout_refresh_and_absolute_timeout() {
    let app = spawn_with(|s| {
        s.session.idle_timeout_secs = 3;
        s.session.absolute_timeout_secs = 6;
    })
    .await;
    app.create_user("frank", STRONG_PASSWORD, false).await;

    // Idle: unused for longer than the idle timeout → ended.
    let idle = sign_in(&app, "frank", STRONG_PASSWORD).await;
    tokio::time::sleep(Duration::from_millis(3_300)).await;
    error_message(whoami(&app, &idle).await, 401).await;

    // Refreshing keeps it alive past the idle timeout, but not past the absolute one.
    let pair = sign_in(&app, "frank", STRONG_PASSWORD).await;
    let token = token_of(&pair);
    let started = Instant::now();
    let mut last_expiry = 0;
    // Timestamps are whole seconds: stay a second clear of the absolute expiry.
    while started.elapsed() < Duration::from_millis(3_000) {
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        let resp = app
            .client
            .post(app.url("/api/session/refresh"))
            .header("Dispatched-Session", &token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let b: Value = resp.json().await.unwrap();
        assert!(b["expires_at"].as_i64().unwrap() <= b["absolute_expires_at"].as_i64().unwrap());
        last_expiry = b["absolute_expires_at"].as_i64().unwrap();
    }
    assert!(
        started.elapsed() > Duration::from_secs(3),
        "past the idle timeout"
    );
    assert_eq!(whoami(&app, &pair).await.status().as_u16(), 200);
    let now = chrono::Utc::now().timestamp();
    tokio::time::sleep(Duration::from_secs((last_expiry - now + 1).max(0) as u64)).await;
    error_message(whoami(&app, &pair).await, 401).await;
    let resp = app
        .client
        .post(app.url("/api/session/refresh"))
        .header("Dispatched-Session", &token)
        .send()
        .await
        .unwrap();
    error_message(resp, 401).await;
}

#[tokio::test]
async fn list_and_revoke_sessions() {
    let app = spawn_with(|_| {}).await;
    app.create_user("gina", STRONG_PASSWORD, false).await;
    app.create_user("hank", STRONG_PASSWORD, false).await;
    let laptop = sign_in_as(&app, "gina", STRONG_PASSWORD, Some("Laptop Firefox")).await;
    let phone = sign_in_as(&app, "gina", STRONG_PASSWORD, Some("Phone Safari")).await;
    let tablet = sign_in_as(&app, "gina", STRONG_PASSWORD, Some("Tablet Chrome")).await;
    let other_user = sign_in(&app, "hank", STRONG_PASSWORD).await;

    let resp = app
        .client
        .get(app.url("/api/sessions"))
        .header("cookie", &laptop)
        .send()
        .await
        .unwrap();
    let list: Value = resp.json().await.unwrap();
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 3);
    assert!(sessions.iter().any(|s| s["device"] == "Phone Safari"));
    assert!(sessions.iter().all(|s| s["address"] == "127.0.0.1"
        && s["createdAt"].is_i64()
        && s["lastSeenAt"].is_i64()));
    let current: Vec<_> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["device"], "Laptop Firefox");
    let phone_id = sessions
        .iter()
        .find(|s| s["device"] == "Phone Safari")
        .unwrap()["id"]
        .as_i64()
        .unwrap();

    // Revoke one (by header credential: no CSRF token needed).
    let resp = app
        .client
        .delete(app.url(&format!("/api/sessions/{phone_id}")))
        .header("Dispatched-Session", token_of(&laptop))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    error_message(whoami(&app, &phone).await, 401).await;
    // Not someone else's, not twice.
    for (who, id) in [
        (&other_user, phone_id),
        (&laptop, phone_id),
        (&laptop, 999_999),
    ] {
        let resp = app
            .client
            .delete(app.url(&format!("/api/sessions/{id}")))
            .header("Dispatched-Session", token_of(who))
            .send()
            .await
            .unwrap();
        error_message(resp, 404).await;
    }
    let resp = app
        .client
        .delete(app.url("/api/sessions/abc"))
        .header("Dispatched-Session", token_of(&laptop))
        .send()
        .await
        .unwrap();
    error_message(resp, 400).await;

    // Revoke all others.
    let token = csrf(&app, &laptop).await;
    let resp = app
        .client
        .post(app.url("/api/sessions/revoke-others"))
        .header("cookie", &laptop)
        .header("x-csrf-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    error_message(whoami(&app, &tablet).await, 401).await;
    assert_eq!(whoami(&app, &laptop).await.status().as_u16(), 200);
    assert_eq!(whoami(&app, &other_user).await.status().as_u16(), 200);

    // Logout ends the session and clears the cookie.
    let resp = app
        .client
        .post(app.url("/v1/auth/logout"))
        .header("cookie", &laptop)
        .header("x-csrf-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let (cleared, header) = session_cookie(&resp).unwrap();
    assert_eq!(cleared, "gatehouse_session=");
    assert!(header.contains("Max-Age=0"), "{header}");
    error_message(whoami(&app, &laptop).await, 401).await;
}

#[tokio::test]
async fn password_change_and_disable_end_sessions() {
    let app = spawn_with(|_| {}).await;
    let admin_id = app.create_user("root", STRONG_PASSWORD, true).await;
    let uid = app.create_user("ivan", STRONG_PASSWORD, false).await;
    let a = sign_in(&app, "ivan", STRONG_PASSWORD).await;
    let b = sign_in(&app, "ivan", STRONG_PASSWORD).await;
    let token = csrf(&app, &a).await;
    let new_pw = "a different long passphrase 77";
    let resp = app
        .client
        .post(app.url("/profile/password"))
        .header("cookie", &a)
        .form(&[
            ("csrf", token.as_str()),
            ("current", STRONG_PASSWORD),
            ("new", new_pw),
            ("confirm", new_pw),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.text().await.unwrap().contains("Password changed"));
    assert_eq!(whoami(&app, &a).await.status().as_u16(), 200);
    error_message(whoami(&app, &b).await, 401).await;

    // Wrong current password: a message on the page.
    let resp = app
        .client
        .post(app.url("/profile/password"))
        .header("cookie", &a)
        .form(&[
            ("csrf", token.as_str()),
            ("current", "nope nope nope"),
            ("new", new_pw),
            ("confirm", new_pw),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("current password is wrong"));

    // An admin disables the user: their session ends.
    let admin = sign_in(&app, "root", STRONG_PASSWORD).await;
    let admin_csrf = csrf(&app, &admin).await;
    let resp = app
        .client
        .post(app.url(&format!("/admin/users/{uid}/disable")))
        .header("cookie", &admin)
        .form(&[("csrf", admin_csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.text().await.unwrap().contains("User ivan disabled"));
    error_message(whoami(&app, &a).await, 401).await;
    // Admins cannot disable themselves; non-admins cannot disable anyone.
    let resp = app
        .client
        .post(app.url(&format!("/admin/users/{admin_id}/disable")))
        .header("cookie", &admin)
        .form(&[("csrf", admin_csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
}

// ---------------------------------------------------------------- organizations

#[tokio::test]
async fn switch_organization_keeps_the_session() {
    let app = spawn_with(|_| {}).await;
    let uid = app.create_user("judy", STRONG_PASSWORD, false).await;
    let other = app.create_user("kim", STRONG_PASSWORD, false).await;
    let second = services::tenants::create(&app.ctx, "Second Org", Some(uid))
        .await
        .unwrap();
    let foreign = services::tenants::create(&app.ctx, "Foreign", Some(other))
        .await
        .unwrap();
    let pair = sign_in(&app, "judy", STRONG_PASSWORD).await;
    let me: Value = whoami(&app, &pair).await.json().await.unwrap();
    assert_eq!(me["organization"]["slug"], "default");
    assert_eq!(me["organizations"].as_array().unwrap().len(), 2);
    let token = csrf(&app, &pair).await;

    let resp = app
        .client
        .post(app.url("/v1/auth/session/organization"))
        .header("cookie", &pair)
        .header("x-csrf-token", &token)
        .json(&json!({ "organization_id": second.id }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["organization"]["id"], second.id.as_str());
    assert_eq!(body["member"]["role"], "owner");
    let me: Value = whoami(&app, &pair).await.json().await.unwrap();
    assert_eq!(me["organization"]["name"], "Second Org");

    // Not a member → 403; unknown → 403; malformed body → 400.
    for id in [foreign.id.as_str(), "ten_0000000000000000"] {
        let resp = app
            .client
            .post(app.url("/v1/auth/session/organization"))
            .header("cookie", &pair)
            .header("x-csrf-token", &token)
            .json(&json!({ "organizationId": id }))
            .send()
            .await
            .unwrap();
        assert!(error_message(resp, 403).await.contains("not a member"));
    }
    let resp = app
        .client
        .post(app.url("/v1/auth/session/organization"))
        .header("cookie", &pair)
        .header("x-csrf-token", &token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    error_message(resp, 400).await;
    let me: Value = whoami(&app, &pair).await.json().await.unwrap();
    assert_eq!(me["organization"]["name"], "Second Org");

    // The sidebar switcher (form post) works too.
    let resp = app
        .client
        .post(app.url("/organization"))
        .header("cookie", &pair)
        .form(&[
            ("csrf", token.as_str()),
            (
                "organization_id",
                me["organizations"][0]["id"].as_str().unwrap(),
            ),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    let me: Value = whoami(&app, &pair).await.json().await.unwrap();
    assert_eq!(me["organization"]["slug"], "default");
}

// ---------------------------------------------------------------- CSRF

#[tokio::test]
async fn csrf_rejects_cross_site_and_tokenless_posts() {
    let app = spawn_with(|_| {}).await;
    app.create_user("lena", STRONG_PASSWORD, false).await;
    let pair = sign_in(&app, "lena", STRONG_PASSWORD).await;
    let token = csrf(&app, &pair).await;

    // A cross-site form POST (what another site can make a browser send): refused.
    let resp = app
        .client
        .post(app.url("/sign-out"))
        .header("cookie", &pair)
        .header("origin", "https://evil.example")
        .header("sec-fetch-site", "cross-site")
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("Cross-site request refused"));
    // Cross-site even with the right token.
    let resp = app
        .client
        .post(app.url("/v1/auth/logout"))
        .header("cookie", &pair)
        .header("x-csrf-token", &token)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert!(error_message(resp, 403).await.contains("Cross-site"));
    let resp = app
        .client
        .post(app.url("/v1/auth/logout"))
        .header("cookie", &pair)
        .header("x-csrf-token", &token)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    error_message(resp, 403).await;
    // Same site but no or a wrong token.
    for t in ["", "bm90IHRoZSB0b2tlbg"] {
        let resp = app
            .client
            .post(app.url("/v1/auth/logout"))
            .header("cookie", &pair)
            .header("x-csrf-token", t)
            .header("sec-fetch-site", "same-origin")
            .send()
            .await
            .unwrap();
        assert!(error_message(resp, 403).await.contains("CSRF"));
    }
    let resp = app
        .client
        .post(app.url("/sign-out"))
        .header("cookie", &pair)
        .form(&[("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    // A token from another session does not fit this one.
    let other = sign_in(&app, "lena", STRONG_PASSWORD).await;
    let other_token = csrf(&app, &other).await;
    assert_ne!(other_token, token);
    let resp = app
        .client
        .post(app.url("/v1/auth/logout"))
        .header("cookie", &pair)
        .header("x-csrf-token", &other_token)
        .send()
        .await
        .unwrap();
    error_message(resp, 403).await;
    assert_eq!(
        whoami(&app, &pair).await.status().as_u16(),
        200,
        "still signed in"
    );

    // A cross-site sign-in form post (login CSRF) is refused too.
    let resp = sign_in_form(&app, "lena", STRONG_PASSWORD)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    assert!(session_cookie(&resp).is_none());

    // Same origin with the token: accepted.
    let resp = app
        .client
        .post(app.url("/v1/auth/logout"))
        .header("cookie", &pair)
        .header("x-csrf-token", &token)
        .header("sec-fetch-site", "same-origin")
        .header("origin", app.addr.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}

#[tokio::test]
async fn pages_send_security_headers_and_static_assets() {
    let app = spawn_with(|_| {}).await;
    let resp = app.client.get(app.url("/sign-in")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let h = resp.headers();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["cross-origin-opener-policy"], "same-origin");
    assert!(h.contains_key("referrer-policy"));
    assert_eq!(h["cache-control"], "no-store");
    assert!(
        h.get("strict-transport-security").is_none(),
        "no HSTS on http"
    );
    let body = resp.text().await.unwrap();
    assert!(
        !body.contains("<script>") && !body.contains("style="),
        "no inline script/style"
    );
    for (path, ct) in [
        ("/static/app.js", "text/javascript"),
        ("/static/app.css", "text/css"),
    ] {
        let resp = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with(ct));
        assert!(resp.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age"));
    }
    let resp = app
        .client
        .get(app.url("/static/nope.js"))
        .send()
        .await
        .unwrap();
    error_message(resp, 404).await;
}

// ---------------------------------------------------------------- brands and portal tokens

async fn issue_portal(app: &TestApp, tenant: &str, brand: &str, expires: &str) -> String {
    services::portal::issue_unchecked(
        &app.ctx,
        tenant,
        Mode::Live,
        brand,
        &Email::parse("customer@shop.example").unwrap(),
        Some("Cus Tomer".into()),
        Some(expires),
        Some("test".into()),
        None,
    )
    .await
    .unwrap()
    .token
    .expose()
    .to_owned()
}

#[tokio::test]
async fn brands_and_portal_token_scope_and_refusals() {
    let app = spawn_with(|_| {}).await;
    app.create_user("admin", STRONG_PASSWORD, true).await;
    app.create_user("member", STRONG_PASSWORD, false).await;
    let admin = sign_in(&app, "admin", STRONG_PASSWORD).await;
    let admin_csrf = csrf(&app, &admin).await;
    let member = sign_in(&app, "member", STRONG_PASSWORD).await;

    // Brands: admins create, members list, bad input refused.
    let resp = app
        .client
        .post(app.url("/v1/brands"))
        .header("cookie", &admin)
        .header("x-csrf-token", &admin_csrf)
        .json(&json!({ "name": "Acme Support" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let brand: Value = resp.json().await.unwrap();
    let brand_id = brand["id"].as_str().unwrap().to_owned();
    assert!(brand_id.starts_with("brd_"));
    assert_eq!(brand["slug"], "acme-support");
    let resp = app
        .client
        .post(app.url("/v1/brands"))
        .header("cookie", &admin)
        .header("x-csrf-token", &admin_csrf)
        .json(&json!({ "name": "Acme Support" }))
        .send()
        .await
        .unwrap();
    error_message(resp, 409).await;
    let resp = app
        .client
        .post(app.url("/v1/brands"))
        .header("Dispatched-Session", token_of(&admin))
        .json(&json!({ "name": "  " }))
        .send()
        .await
        .unwrap();
    error_message(resp, 400).await;
    let resp = app
        .client
        .post(app.url("/v1/brands"))
        .header("Dispatched-Session", token_of(&member))
        .json(&json!({ "name": "Mine" }))
        .send()
        .await
        .unwrap();
    assert!(error_message(resp, 403).await.contains("owner or admin"));
    let resp = app
        .client
        .get(app.url("/v1/brands"))
        .header("cookie", &member)
        .send()
        .await
        .unwrap();
    let list: Value = resp.json().await.unwrap();
    assert_eq!(list["brands"][0]["id"], brand_id.as_str());

    // Issuing a portal token: API key only.
    let url = app.url(&format!("/v1/brands/{brand_id}/portal/token"));
    let body = json!({ "customerEmail": "c@shop.example", "expiresIn": "30m" });
    let resp = app.client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(error_message(resp, 401).await, "No Bearer token provided");
    let resp = app
        .client
        .post(&url)
        .header("cookie", &admin)
        .header("x-csrf-token", &admin_csrf)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(error_message(resp, 403).await.contains("API key"));
    let resp = app
        .client
        .post(&url)
        .header("Dispatched-Session", token_of(&admin))
        .json(&body)
        .send()
        .await
        .unwrap();
    error_message(resp, 403).await;

    let tenant = services::tenants::default_tenant(&app.ctx)
        .await
        .unwrap()
        .id;
    let pt = issue_portal(&app, &tenant, &brand_id, "2h").await;
    assert!(pt.starts_with("pt_") && pt.len() == 46);
    let resp = app
        .client
        .post(&url)
        .bearer_auth(&pt)
        .json(&body)
        .send()
        .await
        .unwrap();
    error_message(resp, 403).await;

    // Who the portal token is.
    let resp = app
        .client
        .get(app.url("/v1/portal/me"))
        .bearer_auth(&pt)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let me: Value = resp.json().await.unwrap();
    assert_eq!(me["kind"], "portal_token");
    assert_eq!(me["brand"]["id"], brand_id.as_str());
    assert_eq!(me["brand"]["name"], "Acme Support");
    assert_eq!(me["customer"]["email"], "customer@shop.example");
    assert_eq!(me["customer"]["name"], "Cus Tomer");
    assert_eq!(
        me["scopes"],
        json!([
            "tickets:read_own",
            "tickets:create",
            "comments:create",
            "attachments:upload"
        ])
    );
    // /v1/portal/me is for portal tokens only.
    let resp = app
        .client
        .get(app.url("/v1/portal/me"))
        .header("cookie", &admin)
        .send()
        .await
        .unwrap();
    error_message(resp, 403).await;

    // Every admin and account endpoint refuses it.
    for (method, path) in [
        ("GET", "/v1/brands"),
        ("POST", "/v1/brands"),
        ("GET", "/api/audit"),
        ("GET", "/api/sessions"),
        ("GET", "/v1/auth/session"),
        ("POST", "/api/session/refresh"),
        ("POST", "/v1/auth/logout"),
    ] {
        let req = match method {
            "GET" => app.client.get(app.url(path)),
            _ => app.client.post(app.url(path)).json(&json!({ "name": "x" })),
        };
        let resp = req.bearer_auth(&pt).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 403, "{method} {path}");
    }

    // Malformed and unknown portal tokens; an expired one.
    let resp = app
        .client
        .get(app.url("/v1/portal/me"))
        .bearer_auth("pt_short")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_message(resp, 400).await,
        "Failed to verify api_key or token"
    );
    let resp = app
        .client
        .get(app.url("/v1/portal/me"))
        .bearer_auth(format!("pt_{}", "Z".repeat(43)))
        .send()
        .await
        .unwrap();
    error_message(resp, 401).await;
    let short = issue_portal(&app, &tenant, &brand_id, "1s").await;
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let resp = app
        .client
        .get(app.url("/v1/portal/me"))
        .bearer_auth(&short)
        .send()
        .await
        .unwrap();
    error_message(resp, 401).await;

    // A brand of another organization cannot be used.
    let err = services::portal::issue_unchecked(
        &app.ctx,
        "ten_0000000000000000",
        Mode::Live,
        &brand_id,
        &Email::parse("c@shop.example").unwrap(),
        None,
        None,
        None,
        None,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, gatehouse::error::Error::NotFound(_)));
}

#[test]
fn openapi_lists_the_browser_endpoints() {
    let doc = serde_json::to_value(gatehouse::http::openapi::document(
        &gatehouse::config::Settings::default(),
    ))
    .unwrap();
    for path in [
        "/v1/auth/magic-link",
        "/v1/auth/verify",
        "/v1/auth/session",
        "/v1/auth/session/organization",
        "/v1/auth/logout",
        "/api/session/refresh",
        "/api/sessions",
        "/api/sessions/{id}",
        "/v1/brands",
        "/v1/brands/{brand_id}/portal/token",
        "/v1/portal/me",
        "/api/audit",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from OpenAPI"
        );
    }
}

#[test]
fn expires_in_parsing_and_cap() {
    use gatehouse::services::portal::parse_expires_in;
    assert_eq!(parse_expires_in("30m").unwrap(), 1_800);
    assert_eq!(parse_expires_in("24h").unwrap(), 86_400);
    assert_eq!(parse_expires_in("7d").unwrap(), 604_800);
    for bad in [
        "",
        "m",
        "10",
        "-5m",
        "0h",
        "3w",
        "1.5h",
        "99999999999999999999d",
    ] {
        assert!(parse_expires_in(bad).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn portal_expiry_is_capped_by_config() {
    let app = spawn_with(|s| s.portal.max_expires_in_secs = 3_600).await;
    let tenant = services::tenants::default_tenant(&app.ctx)
        .await
        .unwrap()
        .id;
    let uid = app.create_user("owner", STRONG_PASSWORD, true).await;
    let _ = uid;
    let pair = sign_in(&app, "owner", STRONG_PASSWORD).await;
    let resp = app
        .client
        .post(app.url("/v1/brands"))
        .header("Dispatched-Session", token_of(&pair))
        .json(&json!({ "name": "Shop" }))
        .send()
        .await
        .unwrap();
    let brand: Value = resp.json().await.unwrap();
    let issued = services::portal::issue_unchecked(
        &app.ctx,
        &tenant,
        Mode::Live,
        brand["id"].as_str().unwrap(),
        &Email::parse("c@shop.example").unwrap(),
        None,
        Some("30d"),
        None,
        None,
    )
    .await
    .unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!(issued.expires_at <= now + 3_600 && issued.expires_at >= now + 3_590);
}

/// Issuing a portal token with an API key created through the API by a browser session.
#[tokio::test]
async fn portal_token_with_api_key() {
    let app = spawn_with(|_| {}).await;
    app.create_user("ops", STRONG_PASSWORD, true).await;
    let pair = sign_in(&app, "ops", STRONG_PASSWORD).await;
    let token = csrf(&app, &pair).await;
    let brand: Value = app
        .client
        .post(app.url("/v1/brands"))
        .header("cookie", &pair)
        .header("x-csrf-token", &token)
        .json(&json!({ "name": "Helpdesk" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key: Value = app
        .client
        .post(app.url("/v1/api-keys"))
        .header("cookie", &pair)
        .header("x-csrf-token", &token)
        .json(&json!({ "name": "portal issuer" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = key["secret"].as_str().expect("key secret").to_owned();
    let url = app.url(&format!(
        "/v1/brands/{}/portal/token",
        brand["id"].as_str().unwrap()
    ));
    let resp = app
        .client
        .post(&url)
        .bearer_auth(&secret)
        .json(
            &json!({ "customerEmail": "c@shop.example", "customerName": "C", "expiresIn": "30m" }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let body: Value = resp.json().await.unwrap();
    let pt = body["accessToken"].as_str().unwrap();
    assert!(pt.starts_with("pt_"));
    let exp = chrono::DateTime::parse_from_rfc3339(body["expiresAt"].as_str().unwrap()).unwrap();
    let left = exp.timestamp() - chrono::Utc::now().timestamp();
    assert!((1_790..=1_800).contains(&left), "{left}");
    for bad in [
        json!({ "customerEmail": "nope" }),
        json!({ "customerEmail": "c@x.io", "expiresIn": "forever" }),
    ] {
        let resp = app
            .client
            .post(&url)
            .bearer_auth(&secret)
            .json(&bad)
            .send()
            .await
            .unwrap();
        error_message(resp, 400).await;
    }
    let resp = app
        .client
        .post(app.url("/v1/brands/brd_0000000000000000/portal/token"))
        .bearer_auth(&secret)
        .json(&json!({ "customerEmail": "c@shop.example" }))
        .send()
        .await
        .unwrap();
    error_message(resp, 404).await;
}

// ---------------------------------------------------------------- audit

#[tokio::test]
async fn audit_log_for_admins_only() {
    let app = spawn_with(|_| {}).await;
    app.create_user("boss", STRONG_PASSWORD, true).await;
    app.create_user("pleb", STRONG_PASSWORD, false).await;
    let _ = sign_in_form(&app, "pleb", "wrong wrong wrong")
        .send()
        .await
        .unwrap();
    let pleb = sign_in(&app, "pleb", STRONG_PASSWORD).await;
    let boss = sign_in(&app, "boss", STRONG_PASSWORD).await;
    let resp = app
        .client
        .get(app.url("/api/audit"))
        .header("cookie", &pleb)
        .send()
        .await
        .unwrap();
    assert!(error_message(resp, 403).await.contains("audit.view"));
    let resp = app.client.get(app.url("/api/audit")).send().await.unwrap();
    error_message(resp, 401).await;
    let page = app
        .client
        .get(app.url("/audit"))
        .header("cookie", &pleb)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 403);
    assert!(page.text().await.unwrap().contains("audit.view"));

    // Events are written by a background writer: poll briefly.
    let mut events = Vec::new();
    for _ in 0..50 {
        let resp = app
            .client
            .get(app.url("/api/audit?limit=500"))
            .header("cookie", &boss)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let body: Value = resp.json().await.unwrap();
        events = body["events"].as_array().unwrap().clone();
        if events
            .iter()
            .filter(|e| e["event"] == "session.created")
            .count()
            >= 2
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let has = |event: &str, outcome: &str, actor: &str| {
        events
            .iter()
            .any(|e| e["event"] == event && e["outcome"] == outcome && e["actor"] == actor)
    };
    assert!(has("login", "failure", "pleb"), "{events:?}");
    assert!(has("login", "success", "pleb"));
    assert!(has("session.created", "success", "boss"));
    assert!(events
        .iter()
        .all(|e| e["ip"] == "127.0.0.1" || e["ip"].is_null()));
    let page = app
        .client
        .get(app.url("/audit"))
        .header("cookie", &boss)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap().contains("session.created"));
    let resp = app
        .client
        .get(app.url("/api/audit?limit=abc"))
        .header("cookie", &boss)
        .send()
        .await
        .unwrap();
    error_message(resp, 400).await;
}

#[tokio::test]
async fn outbox_transport_writes_eml_files() {
    let app = spawn_with(|s| s.mail.transport = MailTransport::Outbox).await;
    app.create_user("olga", STRONG_PASSWORD, false).await;
    assert_eq!(
        request_link(&app, "olga@example.com")
            .await
            .status()
            .as_u16(),
        202
    );
    let outbox = app.ctx.settings.data_dir.join("outbox");
    let mut found = None;
    for _ in 0..50 {
        if let Ok(rd) = std::fs::read_dir(&outbox) {
            found = rd
                .filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "eml"));
            if found.is_some() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mail = std::fs::read_to_string(found.expect("an .eml in the outbox")).unwrap();
    let token = token_in(&mail.replace("\r\n", "\n"));
    assert_eq!(verify(&app, &token).await.status().as_u16(), 200);
}

#[tokio::test]
async fn smtp_failure_is_retried_and_the_answer_is_unchanged() {
    // Nothing listens on this port at first; the sink starts after the first attempt failed.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let app = spawn_with(|s| {
        smtp_settings(s, port);
        s.mail.send_attempts = 3;
    })
    .await;
    app.create_user("pete", STRONG_PASSWORD, false).await;
    let resp = request_link(&app, "pete@example.com").await;
    assert_eq!(resp.status().as_u16(), 202);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Start a sink on that very port; the retry (after ~0.5 s) delivers.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        if let Ok((sock, _)) = listener.accept().await {
            let (r, mut w) = sock.into_split();
            let mut lines = BufReader::new(r).lines();
            w.write_all(b"220 sink\r\n").await.unwrap();
            while let Ok(Some(line)) = lines.next_line().await {
                let u = line.to_ascii_uppercase();
                if u.starts_with("DATA") {
                    w.write_all(b"354 go\r\n").await.unwrap();
                    let mut m = String::new();
                    while let Ok(Some(l)) = lines.next_line().await {
                        if l == "." {
                            break;
                        }
                        m.push_str(&l);
                        m.push('\n');
                    }
                    let _ = tx.send(m);
                    w.write_all(b"250 ok\r\n").await.unwrap();
                } else if u.starts_with("QUIT") {
                    let _ = w.write_all(b"221 bye\r\n").await;
                    break;
                } else {
                    w.write_all(b"250 ok\r\n").await.unwrap();
                }
            }
        }
    });
    let mail = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("retried delivery")
        .unwrap();
    let token = token_in(&mail);
    assert_eq!(verify(&app, &token).await.status().as_u16(), 200);
}

#[tokio::test]
async fn cleanup_removes_spent_links_and_expired_portal_tokens() {
    let (app, mut sink) = spawn_smtp(|s| s.magic_link.ttl_secs = 1).await;
    app.create_user("quinn", STRONG_PASSWORD, true).await;
    request_link(&app, "quinn@example.com").await;
    sink.next(Duration::from_secs(10)).await.unwrap();
    request_link(&app, "quinn@example.com").await;
    sink.next(Duration::from_secs(10)).await.unwrap();
    let pair = sign_in(&app, "quinn", STRONG_PASSWORD).await;
    let brand: Value = app
        .client
        .post(app.url("/v1/brands"))
        .header("Dispatched-Session", token_of(&pair))
        .json(&json!({ "name": "Store" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tenant = services::tenants::default_tenant(&app.ctx)
        .await
        .unwrap()
        .id;
    let brand_id = brand["id"].as_str().unwrap();
    issue_portal(&app, &tenant, brand_id, "1s").await;
    let live = issue_portal(&app, &tenant, brand_id, "1h").await;
    let count = |table: &'static str| {
        let ctx = app.ctx.clone();
        async move {
            ctx.db
                .read(move |c| {
                    Ok(
                        c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
                            r.get::<_, i64>(0)
                        })?,
                    )
                })
                .await
                .unwrap()
        }
    };
    assert_eq!(count("magic_links").await, 2);
    assert_eq!(count("portal_tokens").await, 2);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    services::cleanup::run_once(&app.ctx).await.unwrap();
    assert_eq!(count("magic_links").await, 0);
    assert_eq!(count("portal_tokens").await, 1);
    let resp = app
        .client
        .get(app.url("/v1/portal/me"))
        .bearer_auth(&live)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);

    // Issuing was audited.
    let mut seen = false;
    for _ in 0..50 {
        let events = app.ctx.audit.list(None, 500, None).await.unwrap();
        if events.iter().any(|e| {
            e.event == "portal_token.issued" && e.tenant_id.as_deref() == Some(tenant.as_str())
        }) {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen, "portal_token.issued not audited");
}

/// The key endpoints accept the session cookie only with the CSRF token, and `GET /keys/new`
/// (a state change on a GET, by contract) never with the cookie.
#[tokio::test]
async fn key_endpoints_with_the_cookie_need_csrf_and_keys_new_refuses_it() {
    let app = spawn_with(|_| {}).await;
    app.create_user("kim", STRONG_PASSWORD, false).await;
    let pair = sign_in(&app, "kim", STRONG_PASSWORD).await;
    let token = csrf(&app, &pair).await;
    let r = app
        .client
        .post(app.url("/v1/api-keys"))
        .header("cookie", &pair)
        .json(&json!({ "name": "no csrf" }))
        .send()
        .await
        .unwrap();
    assert!(error_message(r, 403).await.contains("CSRF"));
    let r = app
        .client
        .post(app.url("/v1/api-keys"))
        .header("cookie", &pair)
        .header("x-csrf-token", &token)
        .header("sec-fetch-site", "cross-site")
        .json(&json!({ "name": "cross site" }))
        .send()
        .await
        .unwrap();
    error_message(r, 403).await;
    let r = app
        .client
        .get(app.url("/keys/new"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert!(error_message(r, 403).await.contains("header credential"));
    // Reading with the cookie is fine, and nothing was created by the refused calls.
    let r = app
        .client
        .get(app.url("/v1/api-keys"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 0, "{v}");
}

/// An admin manages another user's keys from the browser: list and create with `user`.
#[tokio::test]
async fn admin_manages_another_users_keys_with_the_cookie() {
    let app = spawn_with(|_| {}).await;
    app.create_user("boss", STRONG_PASSWORD, true).await;
    app.create_user("worker", STRONG_PASSWORD, false).await;
    let pair = sign_in(&app, "boss", STRONG_PASSWORD).await;
    let token = csrf(&app, &pair).await;
    let r = app
        .client
        .post(app.url("/v1/api-keys"))
        .header("cookie", &pair)
        .header("x-csrf-token", &token)
        .json(&json!({ "name": "for worker", "user": "worker" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let list: Value = app
        .client
        .get(app.url("/v1/api-keys?user=worker"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["for worker"]);
    // The worker may not list the boss's keys.
    let wpair = sign_in(&app, "worker", STRONG_PASSWORD).await;
    let r = app
        .client
        .get(app.url("/v1/api-keys?user=boss"))
        .header("cookie", &wpair)
        .send()
        .await
        .unwrap();
    assert!(error_message(r, 403).await.contains("keys.manage_all"));
    // The admin page links each user to their keys page, which renders.
    let page = app
        .client
        .get(app.url("/api-keys?user=worker"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("data-user=\"worker\""), "{page}");
}
