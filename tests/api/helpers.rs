//! Test harness: start the real application, talk HTTP to it.
#![allow(dead_code, clippy::field_reassign_with_default)]

use std::sync::Arc;

use gatehouse::app::Application;
use gatehouse::config::Settings;
use gatehouse::services::types::{Email, Password, Username};
use gatehouse::services::{self, Ctx};
use serde_json::Value;

/// A password that passes the strength check.
pub const STRONG_PASSWORD: &str = "correct horse battery staple 42";

/// A running server and what a test needs to reach it.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub addr: String,
    /// The bound port.
    pub port: u16,
    /// Temp dir holding the data dir; removed on drop.
    pub dir: tempfile::TempDir,
    /// A client without a cookie store.
    pub client: reqwest::Client,
    /// The server's service context (for seeding data the API cannot create yet).
    pub ctx: Arc<Ctx>,
    /// Stops the server.
    pub handle: actix_web::dev::ServerHandle,
}

/// Settings every test starts from: temp data dir, port 0, no scheduled jobs.
#[allow(clippy::field_reassign_with_default)]
pub fn test_settings(dir: &std::path::Path) -> Settings {
    let mut s = Settings {
        data_dir: dir.join("data"),
        bind: "127.0.0.1:0".into(),
        workers: 2,
        ..Settings::default()
    };
    s.cleanup.schedule = String::new();
    s
}

/// Starts the app with default test settings.
pub async fn spawn() -> TestApp {
    spawn_with(|_| {}).await
}

/// Starts the app after letting the test adjust the settings.
pub async fn spawn_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = test_settings(dir.path());
    adjust(&mut s);
    spawn_in(dir, s).await
}

/// Starts the app on given settings, keeping `dir` alive with it.
pub async fn spawn_in(dir: tempfile::TempDir, mut s: Settings) -> TestApp {
    s.bind = "127.0.0.1:0".into();
    let app = Application::build(s).await.expect("build app");
    let port = app.port();
    let ctx = app.ctx();
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        addr: format!("http://127.0.0.1:{port}"),
        port,
        dir,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        ctx,
        handle,
    }
}

impl TestApp {
    /// Full URL for a path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.addr, path)
    }

    /// Creates a user through the service layer; returns the user id.
    pub async fn create_user(&self, name: &str, password: &str, admin: bool) -> i64 {
        services::users::create(
            &self.ctx,
            services::users::NewUser {
                username: Username::parse(name).unwrap(),
                email: Some(Email::parse(&format!("{name}@example.com")).unwrap()),
                password: Some(Password::new(password.to_owned())),
                is_admin: admin,
                permissions: vec![],
            },
        )
        .await
        .expect("create user")
        .id
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }
}

/// Asserts the JSON error shape and returns the message.
pub async fn error_message(resp: reqwest::Response, status: u16) -> String {
    assert_eq!(resp.status().as_u16(), status, "unexpected status");
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(ct.starts_with("application/json"), "content-type was {ct}");
    let body: Value = resp.json().await.expect("json body");
    assert_eq!(
        body["error"]["code"].as_u64(),
        Some(u64::from(status)),
        "{body}"
    );
    body["error"]["message"]
        .as_str()
        .expect("message")
        .to_owned()
}

/// The `Retry-After` seconds of a refused answer (asserts it is there and numeric).
pub fn retry_after(resp: &reqwest::Response) -> u64 {
    resp.headers()["retry-after"]
        .to_str()
        .expect("Retry-After is text")
        .parse()
        .expect("Retry-After is seconds")
}

/// Path of the built `gatehouse` binary.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_gatehouse")
}

/// Runs the real binary against the app's data directory, as an operator on the same machine
/// would while the server runs: no config file or credentials from the test's environment.
pub fn cli(app: &TestApp, args: &[&str]) -> std::process::Output {
    std::process::Command::new(bin())
        .env("GATEHOUSE_DATA_DIR", &app.ctx.settings.data_dir)
        .env("XDG_CONFIG_HOME", app.dir.path().join("config"))
        .env_remove("GATEHOUSE_CONFIG")
        .env_remove("GATEHOUSE_API_KEY")
        .env_remove("GATEHOUSE_TENANT_KEY")
        .current_dir(app.dir.path())
        .args(args)
        .output()
        .expect("run gatehouse")
}

/// Waits until the key cache's change poll has moved past now: a user created or changed before
/// this call no longer makes a later pass drop that user's cached keys. With the poll's
/// one-second overlap a change is seen by passes up to two seconds later, more when a pass runs
/// late on a loaded machine; a test that counts cached keys waits for this rather than a fixed
/// time.
pub async fn past_the_change_poll(app: &TestApp) {
    let changed = gatehouse::store::now();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while app.ctx.keys.changes_seen_until() <= changed {
        assert!(
            std::time::Instant::now() < deadline,
            "the change poll never ran"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
