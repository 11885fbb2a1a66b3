//! The handshake client behind `gatehouse login`, `secrets`, `runs` and `logout`.
//!
//! It runs the Noise XK handshake against a server with `snow` (through [`crate::crypto`]),
//! pins the server's static key on first use, and keeps session tokens under the user's config
//! directory (`$XDG_CONFIG_HOME/gatehouse/`, else `~/.config/gatehouse/`), every file mode
//! 0600. The API key and the tenant private key come from the environment or from 0600 files,
//! never from the command line; the private key never leaves this process.

use std::collections::BTreeMap;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::crypto::handshake::{self as hs, TenantSeed};
use crate::crypto::{b64, tokens::SecretToken, unb64};
use crate::error::{Error, Result};

/// The client's config directory.
pub fn config_dir() -> Result<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|x| !x.is_empty()) {
        return Ok(PathBuf::from(x).join("gatehouse"));
    }
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".config").join("gatehouse"))
        .ok_or_else(|| {
            Error::bad_request("set HOME or XDG_CONFIG_HOME for the client's config directory")
        })
}

/// Reads a secret from a file that only its owner can read.
pub fn read_private_file(path: &Path) -> Result<String> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::bad_request(format!("cannot read {}: {e}", path.display())))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(Error::bad_request(format!(
            "{} is readable by others; run `chmod 600 {}`",
            path.display(),
            path.display()
        )));
    }
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|e| Error::bad_request(format!("cannot read {}: {e}", path.display())))
}

/// A secret from an environment variable, else from a 0600 file.
pub fn secret_from(env: &str, file: Option<&Path>, what: &str) -> Result<SecretToken> {
    if let Some(f) = file {
        return read_private_file(f).map(SecretToken::new);
    }
    match std::env::var(env) {
        Ok(v) if !v.trim().is_empty() => Ok(SecretToken::new(v.trim().to_owned())),
        _ => Err(Error::bad_request(format!(
            "no {what}: set {env} or pass a 0600 file (never on the command line)"
        ))),
    }
}

fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::internal(format!("cannot create {}: {e}", dir.display())))?;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| Error::internal(format!("cannot write {}: {e}", tmp.display())))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::internal(format!("cannot write {}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, path)
        .map_err(|e| Error::internal(format!("cannot write {}: {e}", path.display())))
}

/// A stored session.
#[derive(Clone, Serialize, Deserialize)]
pub struct StoredSession {
    /// The server's URL.
    pub server: String,
    /// The tenant.
    pub tenant_id: String,
    /// `dst_sess_…`.
    pub session_token: String,
    /// Idle expiry.
    pub expires_at: i64,
}

impl std::fmt::Debug for StoredSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSession")
            .field("server", &self.server)
            .field("tenant_id", &self.tenant_id)
            .finish_non_exhaustive()
    }
}

/// The client state file: pinned server keys and sessions by tenant.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    /// Server URL → pinned static public key (base64url).
    #[serde(default)]
    pub pins: BTreeMap<String, String>,
    /// Tenant id → session.
    #[serde(default)]
    pub sessions: BTreeMap<String, StoredSession>,
    /// The tenant of the latest sign-in.
    #[serde(default)]
    pub current: Option<String>,
}

impl State {
    fn path() -> Result<PathBuf> {
        Ok(config_dir()?.join("state.json"))
    }
    /// Loads the state (empty if none).
    pub fn load() -> Result<State> {
        let p = Self::path()?;
        if !p.exists() {
            return Ok(State::default());
        }
        let text = read_private_file(&p)?;
        serde_json::from_str(&text)
            .map_err(|e| Error::bad_request(format!("{} is corrupt: {e}", p.display())))
    }
    /// Saves the state, mode 0600.
    pub fn save(&self) -> Result<()> {
        let data = serde_json::to_vec_pretty(self).map_err(Error::internal)?;
        write_private(&Self::path()?, &data)
    }
    /// The session for `tenant`, or the current one.
    pub fn session(&self, tenant: Option<&str>) -> Result<StoredSession> {
        let t = tenant
            .map(str::to_owned)
            .or_else(|| self.current.clone())
            .ok_or_else(|| Error::unauthenticated("not signed in: run `gatehouse login` first"))?;
        self.sessions.get(&t).cloned().ok_or_else(|| {
            Error::unauthenticated(format!("not signed in to {t}: run `gatehouse login`"))
        })
    }
}

fn http() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(Error::internal)
}

fn url(server: &str, path: &str) -> String {
    format!("{}{}", server.trim_end_matches('/'), path)
}

/// Turns an error answer into an [`Error`] of the same class.
async fn check(resp: reqwest::Response) -> Result<Value> {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if status < 300 {
        return Ok(body);
    }
    let msg = body["error"]["message"]
        .as_str()
        .unwrap_or("the server answered an error")
        .to_owned();
    Err(match status {
        400 => Error::BadRequest(msg),
        401 => Error::Unauthenticated(msg),
        403 => Error::Forbidden(msg),
        404 => Error::NotFound(msg),
        409 => Error::Conflict(msg),
        _ => Error::Unavailable(format!("{status}: {msg}")),
    })
}

fn net(e: reqwest::Error) -> Error {
    Error::Unavailable(format!("cannot reach the server: {e}"))
}

/// Signs in to `tenant` on `server`; stores and returns the session.
pub async fn login(
    server: &str,
    tenant: &str,
    api_key: &SecretToken,
    seed: &TenantSeed,
) -> Result<StoredSession> {
    let client = http()?;
    let mut state = State::load()?;
    let fetched: Value = check(
        client
            .get(url(server, "/api/session/server-key"))
            .send()
            .await
            .map_err(net)?,
    )
    .await?;
    let fetched = fetched["public_key"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let key = server.trim_end_matches('/').to_owned();
    let pinned = match state.pins.get(&key) {
        Some(p) if p != &fetched => {
            return Err(Error::forbidden(format!(
                "the server key of {key} changed since it was pinned; if this is expected, remove its pin from {}",
                State::path()?.display()
            )))
        }
        Some(p) => p.clone(),
        None => {
            eprintln!("gatehouse: pinned the server key of {key}: {fetched}");
            state.pins.insert(key.clone(), fetched.clone());
            fetched
        }
    };
    let server_pub = unb64(&pinned)
        .ok_or_else(|| Error::bad_request("the pinned server key is not base64url"))?;
    let (initiator, m1) = hs::initiate(seed, &server_pub, tenant, None)?;
    let r = check(
        client
            .post(url(server, "/api/session"))
            .bearer_auth(api_key.expose())
            .json(&json!({"tenant_id": tenant, "message": b64(&m1)}))
            .send()
            .await
            .map_err(net)?,
    )
    .await?;
    let m2 = r["message"]
        .as_str()
        .and_then(unb64)
        .ok_or_else(|| Error::bad_request("the server's message 2 is not base64url"))?;
    let (m3, _) = initiator.finish(&m2, &seed.wrapping_key())?;
    let r = check(
        client
            .post(url(server, "/api/session/confirm"))
            .json(&json!({"handshake_id": r["handshake_id"], "message": b64(&m3)}))
            .send()
            .await
            .map_err(net)?,
    )
    .await?;
    let session = StoredSession {
        server: key,
        tenant_id: tenant.to_owned(),
        session_token: r["session_token"].as_str().unwrap_or_default().to_owned(),
        expires_at: r["expires_at"].as_i64().unwrap_or_default(),
    };
    state.sessions.insert(tenant.to_owned(), session.clone());
    state.current = Some(tenant.to_owned());
    state.save()?;
    Ok(session)
}

/// Calls the API with the stored session of `tenant` (or the current one).
pub async fn call(
    tenant: Option<&str>,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Result<Value> {
    let s = State::load()?.session(tenant)?;
    let mut req = http()?
        .request(method, url(&s.server, path))
        .header("Dispatched-Session", &s.session_token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    check(req.send().await.map_err(net)?).await
}

/// Ends the stored session of `tenant` (or the current one) and forgets it.
pub async fn logout(tenant: Option<&str>) -> Result<String> {
    let mut state = State::load()?;
    let s = state.session(tenant)?;
    let result = call(
        Some(&s.tenant_id),
        reqwest::Method::DELETE,
        "/api/session",
        None,
    )
    .await;
    state.sessions.remove(&s.tenant_id);
    if state.current.as_deref() == Some(&s.tenant_id) {
        state.current = state.sessions.keys().next().cloned();
    }
    state.save()?;
    match result {
        Ok(_) | Err(Error::Unauthenticated(_)) => Ok(s.tenant_id),
        Err(e) => Err(e),
    }
}
