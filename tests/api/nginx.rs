//! Behind a real nginx: `auth_request` to Gatehouse's forward-auth lets a valid key through to
//! a small upstream and stops a revoked one; a key over its quota gets 429 with `Retry-After`
//! through the `error_page` recipe of docs/forward-auth.md (nginx itself turns any auth status
//! but 2xx, 401 and 403 into 500).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;
use crate::keys::user_with_key;

const NGINX: &str = "/usr/sbin/nginx";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An upstream that answers 200 and echoes the identity header nginx passed on.
fn start_upstream() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut reader = BufReader::new(s.try_clone().unwrap());
            let mut subject = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line
                    .to_ascii_lowercase()
                    .strip_prefix("x-gatehouse-subject:")
                {
                    subject = v.trim().to_owned();
                }
            }
            let body = format!("upstream ok; subject={subject}");
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_nginx(dir: &std::path::Path, listen: u16, upstream: u16, gatehouse: u16) -> Nginx {
    let d = dir.display();
    let conf = format!(
        r#"
user root root;
worker_processes 1;
error_log {d}/error.log warn;
pid {d}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{listen};
        location / {{
            auth_request /_gatehouse;
            auth_request_set $gh_subject $upstream_http_x_gatehouse_subject;
            auth_request_set $gh_status $upstream_status;
            auth_request_set $gh_retry_after $upstream_http_retry_after;
            error_page 500 = @gatehouse_refused;
            proxy_set_header X-Gatehouse-Subject $gh_subject;
            proxy_pass http://127.0.0.1:{upstream};
        }}
        location @gatehouse_refused {{
            default_type application/json;
            if ($gh_status = 429) {{
                add_header Retry-After $gh_retry_after always;
                return 429 '{{"error":{{"code":429,"message":"Rate limit exceeded"}}}}';
            }}
            return 500 '{{"error":{{"code":500,"message":"Internal server error"}}}}';
        }}
        location = /_gatehouse {{
            internal;
            proxy_pass http://127.0.0.1:{gatehouse}/api/auth/forward;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
        }}
    }}
}}
"#
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let child = Command::new(NGINX)
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&path)
        .arg("-g")
        .arg("daemon off;")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start nginx");
    Nginx(child)
}

/// nginx in front of `app` and an upstream, started and answering; `(url, nginx, its dir)`.
async fn behind_nginx(app: &TestApp) -> (String, Nginx, tempfile::TempDir) {
    if !std::path::Path::new(NGINX).exists() {
        panic!("nginx is required at {NGINX} (Debian package nginx-light)");
    }
    let upstream = start_upstream();
    let listen = free_port();
    let dir = tempfile::tempdir().unwrap();
    let nginx = start_nginx(dir.path(), listen, upstream, app.port);
    let url = format!("http://127.0.0.1:{listen}/inbox");
    let mut up = false;
    for _ in 0..100 {
        if app.client.get(&url).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        up,
        "nginx did not start: {:?}",
        std::fs::read_to_string(dir.path().join("error.log"))
    );
    (url, nginx, dir)
}

/// `GET url` through nginx with the key in `X-API-Key`.
async fn with_key(app: &TestApp, url: &str, key: &str) -> reqwest::Response {
    app.client
        .get(url)
        .header("x-api-key", key)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn nginx_auth_request_lets_valid_keys_through_and_stops_revoked_ones() {
    let app = spawn().await;
    let (uid, k) = user_with_key(&app, "alice").await;
    let (url, _nginx, _dir) = behind_nginx(&app).await;
    let r = with_key(&app, &url, &k).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.text().await.unwrap(),
        format!("upstream ok; subject=user:{uid}")
    );
    // The app's own Authorization header passes through while X-API-Key authenticates.
    let r = app
        .client
        .get(&url)
        .header("x-api-key", &k)
        .header("authorization", "Basic dXNlcjpwdw==")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Whatever the method of the app's request, the key is checked and lets it through.
    for method in ["POST", "PUT", "PATCH", "DELETE", "HEAD"] {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = app.client.request(m.clone(), &url).header("x-api-key", &k);
        assert_eq!(r.send().await.unwrap().status(), 200, "{method} with a key");
        let r = app.client.request(m, &url).send().await.unwrap();
        assert_eq!(r.status(), 401, "{method} without a key");
    }
    let r = app.client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = app.client.get(&url).bearer_auth(&k).send().await.unwrap();
    assert_eq!(r.status(), 200);

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
    let r = with_key(&app, &url, &k).await;
    assert_eq!(r.status(), 401, "a revoked key got through nginx");
}

#[tokio::test]
async fn nginx_passes_the_quota_429_on_with_retry_after() {
    let app = spawn_with(|s| s.plans.get_mut("free").unwrap().requests_per_hour = 2).await;
    let (_, k) = user_with_key(&app, "alice").await;
    let (url, _nginx, dir) = behind_nginx(&app).await;
    for _ in 0..2 {
        assert_eq!(with_key(&app, &url, &k).await.status(), 200);
    }
    let r = with_key(&app, &url, &k).await;
    let log = std::fs::read_to_string(dir.path().join("error.log"));
    assert_eq!(r.status(), 429, "{log:?}");
    let retry = retry_after(&r);
    assert!((1..=1800).contains(&retry), "Retry-After {retry}");
    assert_eq!(error_message(r, 429).await, "Rate limit exceeded");
    // Gatehouse gone: nginx's own 500 stays a 500, not a 429.
    app.stop().await;
    assert_eq!(with_key(&app, &url, &k).await.status(), 500);
}
