//! Foundation: health, config layering, migrations, password hashing parameters, cleanup,
//! backup under load, secrets kept out of logs, durability across `kill -9`, error shape.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::*;

#[tokio::test]
async fn healthz_answers_ok_with_schema_version() {
    let app = spawn().await;
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert!(r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(
        v["schema_version"].as_u64().unwrap() as usize,
        gatehouse::store::migrations_len()
    );
}

#[tokio::test]
async fn unknown_route_and_wrong_method_answer_the_json_error_shape() {
    let app = spawn().await;
    let r = app
        .client
        .get(app.url("/no/such/route"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_message(r, 404).await, "Not found");
    let r = app.client.post(app.url("/healthz")).send().await.unwrap();
    assert_eq!(error_message(r, 405).await, "Method not allowed");
    let r = app.client.delete(app.url("/metrics")).send().await.unwrap();
    error_message(r, 405).await;
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let app = spawn().await;
    app.client.get(app.url("/healthz")).send().await.unwrap();
    let r = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("# TYPE gatehouse_http_responses_total counter"));
    let line = text
        .lines()
        .find(|l| l.starts_with("gatehouse_http_responses_total{class=\"2xx\"}"))
        .unwrap();
    let n: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 1, "{line}");
}

fn cli(data_dir: &std::path::Path) -> Command {
    let mut c = Command::new(bin());
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GATEHOUSE_DATA_DIR", data_dir)
        .current_dir(data_dir.parent().unwrap());
    c
}

#[test]
fn config_precedence_is_default_then_file_then_env() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let file = dir.path().join("g.toml");
    std::fs::write(
        &file,
        "bind = \"127.0.0.1:9001\"\npublic_url = \"https://auth.example.com\"\n[plans.free]\nrequests_per_hour = 77\nconcurrent = 3\n",
    )
    .unwrap();
    // Defaults only.
    let out = cli(&data).arg("check-config").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let v: toml::Value = toml::from_str(&text).unwrap();
    assert_eq!(v["bind"].as_str(), Some("127.0.0.1:8080"));
    assert_eq!(
        v["plans"]["free"]["requests_per_hour"].as_integer(),
        Some(100)
    );
    // File over defaults.
    let out = cli(&data)
        .args(["--config", file.to_str().unwrap(), "check-config"])
        .output()
        .unwrap();
    let v: toml::Value = toml::from_str(&String::from_utf8(out.stdout).unwrap()).unwrap();
    assert_eq!(v["bind"].as_str(), Some("127.0.0.1:9001"));
    assert_eq!(v["public_url"].as_str(), Some("https://auth.example.com"));
    assert_eq!(
        v["plans"]["free"]["requests_per_hour"].as_integer(),
        Some(77)
    );
    // Env over file, nested with `__`; GATEHOUSE_CONFIG names the file.
    let out = cli(&data)
        .env("GATEHOUSE_CONFIG", &file)
        .env("GATEHOUSE_BIND", "127.0.0.1:9002")
        .env("GATEHOUSE_PLANS__FREE__REQUESTS_PER_HOUR", "55")
        .arg("check-config")
        .output()
        .unwrap();
    let v: toml::Value = toml::from_str(&String::from_utf8(out.stdout).unwrap()).unwrap();
    assert_eq!(v["bind"].as_str(), Some("127.0.0.1:9002"));
    assert_eq!(v["public_url"].as_str(), Some("https://auth.example.com"));
    assert_eq!(
        v["plans"]["free"]["requests_per_hour"].as_integer(),
        Some(55)
    );
    assert_eq!(v["plans"]["free"]["concurrent"].as_integer(), Some(3));
}

#[test]
fn unknown_key_and_bad_value_stop_start_up_with_an_actionable_message() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let file = dir.path().join("g.toml");
    std::fs::write(&file, "bnid = \"127.0.0.1:1\"\n").unwrap();
    let out = cli(&data)
        .args(["--config", file.to_str().unwrap(), "serve"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("bnid"), "{err}");
    assert!(err.contains("Fix"), "{err}");

    let out = cli(&data)
        .env("GATEHOUSE_BIND", "not-an-address")
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("`bind`") && err.contains("GATEHOUSE_BIND"),
        "{err}"
    );

    let out = cli(&data)
        .env("GATEHOUSE_PASSWORD__ARGON2_MEM_LIMIT_KIB", "lots")
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("password.argon2_mem_limit_kib"), "{err}");

    let out = cli(&data)
        .args(["--config", "/nonexistent/g.toml", "check-config"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn check_config_masks_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let out = cli(&data)
        .env(
            "GATEHOUSE_SECRETS__PEPPER",
            "c2VjcmV0LXBlcHBlci12YWx1ZS0xMjM0NTY3ODkw",
        )
        .env("GATEHOUSE_MAIL__SMTP_PASSWORD", "smtp-hunter2")
        .arg("check-config")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("c2VjcmV0LXBlcHBlci12YWx1ZS0xMjM0NTY3ODkw"));
    assert!(!text.contains("smtp-hunter2"));
    assert!(text.contains("***SECRET***"));
}

#[tokio::test]
async fn migrations_run_on_an_empty_db_and_on_a_db_from_the_previous_migration() {
    let all = gatehouse::store::migrations_len();
    assert!(all >= 1);
    let dir = tempfile::tempdir().unwrap();
    let s = test_settings(dir.path());
    std::fs::create_dir_all(&s.data_dir).unwrap();
    // A database left at the previous migration, with a user in it.
    {
        let mut conn = rusqlite::Connection::open(s.database_path()).unwrap();
        gatehouse::store::migrations()
            .to_version(&mut conn, all - 1)
            .unwrap();
        if all > 1 {
            conn.execute(
                "INSERT INTO users (username, created_at, updated_at) VALUES ('olduser', 1, 1)",
                [],
            )
            .unwrap();
        }
    }
    let app = spawn_in(dir, s.clone()).await;
    let v: serde_json::Value = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["schema_version"].as_u64().unwrap() as usize, all);
    let conn = rusqlite::Connection::open(s.database_path()).unwrap();
    if all > 1 {
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM users WHERE username='olduser'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1, "data from the previous schema survives");
    }
    let tenants: i64 = conn
        .query_row(
            "SELECT count(*) FROM tenants WHERE slug='default'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tenants, 1);
    let fk: i64 = conn
        .query_row("PRAGMA journal_mode = WAL", [], |_| Ok(1))
        .unwrap();
    assert_eq!(fk, 1);

    // The `migrate` command on an empty database brings it to the latest version.
    let dir2 = tempfile::tempdir().unwrap();
    let data2 = dir2.path().join("data");
    let out = cli(&data2).arg("migrate").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        format!("schema_version={all}")
    );
    let mode: String = rusqlite::Connection::open(data2.join("gatehouse.db"))
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn user_add_stores_argon2id_with_configured_parameters_and_rehashes_on_change() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = cli(&data)
        .args([
            "user",
            "add",
            "carol",
            "--email",
            "carol@example.com",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{STRONG_PASSWORD}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let id: i64 = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let conn = rusqlite::Connection::open(data.join("gatehouse.db")).unwrap();
    let hash: String = conn
        .query_row("SELECT password_hash FROM users WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
    let p = gatehouse::crypto::password::params_of(&hash).unwrap();
    assert_eq!((p.mem_kib, p.ops), (19_456, 2));
    assert!(!hash.contains(STRONG_PASSWORD));

    // Duplicate → exit 5; weak password → exit 1 with the reason; no password flag → exit 2.
    let mut child = cli(&data)
        .args(["user", "add", "carol", "--password-stdin"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(STRONG_PASSWORD.as_bytes())
        .unwrap();
    assert_eq!(child.wait_with_output().unwrap().status.code(), Some(5));
    let mut child = cli(&data)
        .args(["user", "add", "dave", "--password-stdin"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"password").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("password"));
    let out = cli(&data)
        .args(["user", "passwd", "carol"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = cli(&data)
        .args(["user", "disable", "nobody"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));

    // Raised parameters: the next successful sign-in rehashes.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut s = test_settings(dir.path());
        s.password.argon2_ops_limit = 3;
        let ctx = gatehouse::services::Ctx::open(s).unwrap();
        let pw = gatehouse::services::types::Password::new(STRONG_PASSWORD.into());
        gatehouse::services::tokens::login(&ctx, "carol", &pw, None)
            .await
            .unwrap();
    });
    // The sign-in recorded itself (re-hash and last sign-in) with the family it started.
    let (hash, last_login): (String, Option<i64>) = conn
        .query_row(
            "SELECT password_hash, last_login_at FROM users WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(last_login.is_some());
    assert_eq!(
        gatehouse::crypto::password::params_of(&hash).unwrap().ops,
        3
    );
}

fn insert_session(
    conn: &rusqlite::Connection,
    hash: &[u8],
    expires_at: i64,
    idle: i64,
    revoked: Option<i64>,
) {
    conn.execute(
        "INSERT INTO sessions (token_hash, kind, created_at, last_seen_at, idle_expires_at, expires_at, revoked_at)
         VALUES (?1, 'browser', 0, 0, ?2, ?3, ?4)",
        rusqlite::params![hash, idle, expires_at, revoked],
    )
    .unwrap();
}

#[test]
fn cleanup_deletes_expired_rows_and_keeps_live_ones() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(cli(&data).arg("migrate").output().unwrap().status.success());
    let now = chrono::Utc::now().timestamp();
    {
        let conn = rusqlite::Connection::open(data.join("gatehouse.db")).unwrap();
        conn.execute_batch("BEGIN").unwrap();
        for i in 0..1_500u32 {
            insert_session(&conn, &i.to_be_bytes(), now - 10, now + 100, None);
        }
        insert_session(&conn, b"idle-expired", now + 1000, now - 1, None);
        insert_session(&conn, b"revoked", now + 1000, now + 1000, Some(now - 5));
        insert_session(&conn, b"live-1", now + 1000, now + 1000, None);
        insert_session(&conn, b"live-2", now + 5000, now + 3000, None);
        conn.execute(
            "INSERT INTO audit_events (at, event) VALUES (?1, 'old'), (?2, 'recent')",
            [now - 91 * 86_400, now - 3600],
        )
        .unwrap();
        conn.execute_batch("COMMIT").unwrap();
    }
    let out = cli(&data).arg("cleanup").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("sessions=1502"), "{text}");
    assert!(text.contains("audit_events=1"), "{text}");
    let conn = rusqlite::Connection::open(data.join("gatehouse.db")).unwrap();
    let left: Vec<Vec<u8>> = conn
        .prepare("SELECT token_hash FROM sessions ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(left, vec![b"live-1".to_vec(), b"live-2".to_vec()]);
    let events: Vec<String> = conn
        .prepare("SELECT event FROM audit_events WHERE event IN ('old','recent')")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(events, vec!["recent".to_owned()]);
    // A second pass finds nothing.
    let out = cli(&data).arg("cleanup").output().unwrap();
    assert!(String::from_utf8(out.stdout).unwrap().contains("total=0"));
}

#[tokio::test]
async fn scheduled_cleanup_runs_from_config() {
    let app = spawn_with(|s| s.cleanup.schedule = "*/1 * * * * *".into()).await;
    let now = chrono::Utc::now().timestamp();
    {
        let conn = rusqlite::Connection::open(app.ctx.settings.database_path()).unwrap();
        insert_session(&conn, b"expired", now - 1, now - 1, None);
        insert_session(&conn, b"live", now + 100, now + 100, None);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let conn = rusqlite::Connection::open(app.ctx.settings.database_path()).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))
            .unwrap();
        if n == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the scheduled job did not run");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn backup_of_a_live_database_passes_integrity_check_while_the_server_writes() {
    let app = spawn().await;
    let ctx = app.ctx.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                gatehouse::services::users::create(
                    &ctx,
                    gatehouse::services::users::NewUser {
                        username: gatehouse::services::types::Username::parse(&format!("u{i}"))
                            .unwrap(),
                        email: None,
                        password: None,
                        is_admin: false,
                        permissions: vec![],
                    },
                )
                .await
                .unwrap();
                i += 1;
            }
            i
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let dest = app.dir.path().join("backup.db");
    let data = app.ctx.settings.data_dir.clone();
    let out = tokio::task::spawn_blocking({
        let dest = dest.clone();
        move || cli(&data).arg("backup").arg(&dest).output().unwrap()
    })
    .await
    .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(written > 10, "the server kept writing ({written} users)");
    let conn = rusqlite::Connection::open(&dest).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let users: i64 = conn
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap();
    assert!(users > 0);
    // An existing destination is refused.
    let out = cli(&app.ctx.settings.data_dir)
        .arg("backup")
        .arg(&dest)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
}

#[tokio::test]
async fn backup_never_waits_for_the_write_lock() {
    // A server that writes without pause holds the write lock most of the time; the backup
    // command must get by without it. Here another connection holds it for the whole backup.
    let app = spawn().await;
    let blocker = rusqlite::Connection::open(app.ctx.settings.database_path()).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let dest = app.dir.path().join("while-locked.db");
    let data = app.ctx.settings.data_dir.clone();
    let out = tokio::task::spawn_blocking({
        let dest = dest.clone();
        move || {
            cli(&data)
                .env("GATEHOUSE_DATABASE__BUSY_TIMEOUT_MS", "300")
                .arg("backup")
                .arg(&dest)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    blocker.execute_batch("ROLLBACK").unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let check: String = rusqlite::Connection::open(&dest)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

#[test]
fn key_files_are_private_and_the_pepper_is_stable() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(cli(&data).arg("init").output().unwrap().status.success());
    let pepper = data.join("keys/pepper");
    let mode = std::fs::metadata(&pepper).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dmode = std::fs::metadata(data.join("keys"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dmode, 0o700);
    let first = std::fs::read(&pepper).unwrap();
    assert!(cli(&data).arg("init").output().unwrap().status.success());
    assert_eq!(std::fs::read(&pepper).unwrap(), first);
}

/// A server process started from the real binary, with its output captured to files.
pub struct ServerProcess {
    pub child: std::process::Child,
    pub addr: String,
    pub stdout: std::path::PathBuf,
    pub stderr: std::path::PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `gatehouse serve` on a free port and waits for `/healthz`.
pub async fn start_server(data: &std::path::Path, envs: &[(&str, &str)]) -> ServerProcess {
    let port = free_port();
    let stdout = data.parent().unwrap().join(format!("stdout-{port}.log"));
    let stderr = data.parent().unwrap().join(format!("stderr-{port}.log"));
    let mut c = cli(data);
    c.env("GATEHOUSE_BIND", format!("127.0.0.1:{port}"))
        .env("GATEHOUSE_WORKERS", "2")
        .envs(envs.iter().copied())
        .arg("serve")
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap());
    let child = c.spawn().unwrap();
    let addr = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while client.get(format!("{addr}/healthz")).send().await.is_err() {
        assert!(
            Instant::now() < deadline,
            "server did not start: {}",
            std::fs::read_to_string(&stderr).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    ServerProcess {
        child,
        addr,
        stdout,
        stderr,
    }
}

impl ServerProcess {
    /// Everything the process printed so far.
    pub fn output(&self) -> String {
        format!(
            "{}{}",
            std::fs::read_to_string(&self.stdout).unwrap_or_default(),
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        )
    }
    /// SIGTERM, then wait.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().unwrap()
    }
}

#[tokio::test]
async fn secrets_fed_to_the_server_never_reach_its_logs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let pepper = "UGVwcGVyLWZvci10ZXN0cy1vbmx5LTAxMjM0NTY3ODk";
    let smtp = "smtp-password-do-not-log";
    let server = start_server(
        &data,
        &[
            ("GATEHOUSE_SECRETS__PEPPER", pepper),
            ("GATEHOUSE_MAIL__SMTP_PASSWORD", smtp),
            ("GATEHOUSE_LOG__LEVEL", "trace"),
            ("GATEHOUSE_LOG__FORMAT", "json"),
        ],
    )
    .await;
    let key = "sk_live_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA000000";
    let sess = "dst_sess_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
    let run = "dst_run_CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC";
    let jwt = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJsZWFrIn0.c2lnbmF0dXJlLWxlYWs";
    let c = reqwest::Client::new();
    let paths = ["/healthz", "/api/verify", "/workflows/pay", "/nope"];
    for p in paths {
        for (h, v) in [
            ("authorization", format!("Bearer {key}")),
            ("authorization", format!("Bearer {jwt}")),
            ("x-api-key", key.to_owned()),
            ("dispatched-session", sess.to_owned()),
            ("cookie", format!("gatehouse_session={sess}")),
        ] {
            let _ = c
                .get(format!("{}{p}", server.addr))
                .header(h, v)
                .send()
                .await;
        }
        let _ = c
            .post(format!(
                "{}{p}?dispatched_session={run}&token={sess}",
                server.addr
            ))
            .body(format!("{{\"token\":\"{key}\",\"password\":\"{smtp}\"}}"))
            .header("content-type", "application/json")
            .send()
            .await;
    }
    let out = server.output();
    let status = server.terminate();
    assert!(status.success(), "graceful stop on SIGTERM");
    assert!(
        out.contains("gatehouse::request"),
        "request log present:\n{out}"
    );
    assert!(out.contains("[REDACTED]"), "query values redacted:\n{out}");
    for secret in [pepper, smtp, key, sess, run, jwt, "c2lnbmF0dXJlLWxlYWs"] {
        assert!(!out.contains(secret), "{secret} leaked into the logs");
    }
}

#[tokio::test]
async fn dev_sandbox_seeds_an_admin_and_demo_tenant_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let out_path = dir.path().join("dev.out");
    let mut child = cli(&data)
        .env("GATEHOUSE_BIND", format!("127.0.0.1:{port}"))
        .args(["serve", "--dev"])
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while client
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let printed = std::fs::read_to_string(&out_path).unwrap();
    // The printed API keys work, in the demo tenant, live and test.
    let keys: Vec<&str> = printed
        .lines()
        .filter_map(|l| l.trim().strip_prefix("API key:"))
        .map(str::trim)
        .collect();
    assert_eq!(keys.len(), 2, "{printed}");
    for (key, mode) in keys.iter().zip(["live", "test"]) {
        let v: serde_json::Value = client
            .post(format!("http://127.0.0.1:{port}/api/verify"))
            .json(&serde_json::json!({ "token": key }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["valid"], true, "{v}");
        assert_eq!(v["mode"], mode, "{v}");
    }
    let tsk = printed
        .lines()
        .find_map(|l| l.trim().strip_prefix("tenant key:"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    assert!(tsk.starts_with("tsk_") && tsk.len() == 47, "{tsk}");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    assert!(printed.contains("admin user:   admin"), "{printed}");
    let pw = printed
        .lines()
        .find_map(|l| l.trim().strip_prefix("password:"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert!(pw.len() >= 18, "{printed}");
    let tenant = printed
        .lines()
        .find_map(|l| l.trim().strip_prefix("demo tenant:"))
        .unwrap()
        .trim()
        .to_owned();
    assert!(gatehouse::services::types::TenantId::parse(&tenant).is_ok());
    // The printed password signs the admin in.
    let rt_dir = dir.path().to_path_buf();
    let pw2 = pw.clone();
    let ok = tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let s = test_settings(&rt_dir);
            let ctx = gatehouse::services::Ctx::open(s).unwrap();
            let p = gatehouse::services::types::Password::new(pw2);
            gatehouse::services::users::authenticate(&ctx, "admin", &p, None)
                .await
                .map(|u| u.user.is_admin)
        })
    })
    .await
    .unwrap();
    assert_eq!(ok.ok(), Some(true));
    // A second run finds the sandbox and prints no new password.
    let out = cli(&data)
        .args(["user", "list", "--json"])
        .output()
        .unwrap();
    let users: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(users.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn pepper_can_come_from_a_file_and_then_no_key_file_is_generated() {
    let dir = tempfile::tempdir().unwrap();
    let pepper_file = dir.path().join("pepper");
    std::fs::write(
        &pepper_file,
        "UGVwcGVyLWZyb20tYS1maWxlLTAxMjM0NTY3ODkwMTI\n",
    )
    .unwrap();
    let mut s = test_settings(dir.path());
    s.secrets.pepper_file = Some(pepper_file.clone());
    let app = spawn_in(dir, s).await;
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(!app.ctx.settings.data_dir.join("keys/pepper").exists());
    let expected = gatehouse::crypto::Pepper::from_bytes(
        gatehouse::crypto::unb64("UGVwcGVyLWZyb20tYS1maWxlLTAxMjM0NTY3ODkwMTI").unwrap(),
    )
    .unwrap();
    assert_eq!(app.ctx.pepper.hash(b"x"), expected.hash(b"x"));
    assert!(!format!("{:?}", app.ctx).contains("UGVwcGVy"));
}

fn add_user_cli(data: &std::path::Path, name: &str, admin: bool) {
    use std::io::Write;
    let mut c = cli(data);
    c.args(["user", "add", name, "--password-stdin"]);
    if admin {
        c.arg("--admin");
    }
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(STRONG_PASSWORD.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
}

async fn login(c: &reqwest::Client, addr: &str, user: &str) -> serde_json::Value {
    let r = c
        .post(format!("{addr}/api/accounts/token/"))
        .json(&serde_json::json!({"username": user, "password": STRONG_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn an_acknowledged_write_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_user_cli(&data, "root", true);
    let mut server = start_server(&data, &[]).await;
    let c = reqwest::Client::new();
    let pair = login(&c, &server.addr, "root").await;
    let access = pair["access"].as_str().unwrap().to_owned();
    let r = c
        .post(format!("{}/api/accounts/users/", server.addr))
        .bearer_auth(&access)
        .json(&serde_json::json!({"username": "durable", "password": STRONG_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // SIGKILL right after the 2xx: no chance to flush anything.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let server = start_server(&data, &[]).await;
    // The created user exists and can sign in; the refresh token issued before the kill works.
    login(&c, &server.addr, "durable").await;
    let r = c
        .post(format!("{}/api/accounts/token/refresh/", server.addr))
        .json(&serde_json::json!({"refresh": pair["refresh"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(server.terminate().success());
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_user_cli(&data, "drain", false);
    let server = start_server(&data, &[]).await;
    let c = reqwest::Client::new();
    // Each sign-in costs an Argon2id hash on a pool of one per core: eight of them queue.
    let mut inflight = Vec::new();
    for _ in 0..8 {
        let c = c.clone();
        let url = format!("{}/api/accounts/token/", server.addr);
        inflight.push(tokio::spawn(async move {
            c.post(url)
                .json(&serde_json::json!({"username": "drain", "password": STRONG_PASSWORD}))
                .send()
                .await
                .map(|r| r.status().as_u16())
        }));
    }
    tokio::time::sleep(Duration::from_millis(40)).await;
    let pid = server.child.id() as i32;
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let mut statuses = Vec::new();
    for h in inflight {
        statuses.push(h.await.unwrap().expect("in-flight request answered"));
    }
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let addr = server.addr.clone();
    assert!(server.terminate().success(), "clean exit after draining");
    // Once stopped, nothing listens any more.
    assert!(c.get(format!("{addr}/healthz")).send().await.is_err());
}

#[test]
fn cli_commands_write_their_audit_events_before_exiting() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_user_cli(&data, "audited", false);
    assert!(cli(&data)
        .args(["user", "disable", "audited"])
        .output()
        .unwrap()
        .status
        .success());
    let conn = rusqlite::Connection::open(data.join("gatehouse.db")).unwrap();
    let events: Vec<String> = conn
        .prepare("SELECT event FROM audit_events WHERE actor = 'audited' ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        events,
        vec!["user.created".to_owned(), "user.disabled".to_owned()]
    );
}

#[test]
fn the_sample_config_is_valid_and_lists_every_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/gatehouse.toml");
    let out = cli(&data)
        .args(["--config", sample.to_str().unwrap(), "check-config"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every key the binary knows appears in the sample (no drift after adding config).
    let effective: toml::Value = toml::from_str(&String::from_utf8(out.stdout).unwrap()).unwrap();
    let sample: toml::Value = toml::from_str(&std::fs::read_to_string(&sample).unwrap()).unwrap();
    fn keys(v: &toml::Value, prefix: &str, out: &mut Vec<String>) {
        if let toml::Value::Table(t) = v {
            for (k, v) in t {
                let p = format!("{prefix}{k}");
                out.push(p.clone());
                keys(v, &format!("{p}."), out);
            }
        }
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    keys(&effective, "", &mut a);
    keys(&sample, "", &mut b);
    let missing: Vec<_> = a.iter().filter(|k| !b.contains(k)).collect();
    assert!(
        missing.is_empty(),
        "keys missing from systemd/gatehouse.toml: {missing:?}"
    );
}
