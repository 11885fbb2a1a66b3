//! The handshake sign-in (SPEC §4.4): tenant keys, the two-call Noise XK handshake, the
//! tenant data key, and the wrapping keys of live sessions.
//!
//! Pending handshakes live in memory only: they last 60 seconds, are used once, and a restart
//! simply makes the client start again. A signed-in session's wrapping key and the tenant data
//! key it unwraps are kept in memory ([`Handshakes`]) for the session's life and wiped when it
//! ends; the session row holds the wrapping key only sealed under a key derived from the session
//! token, so after a restart the first request that presents the token recovers it.

use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use zeroize::Zeroizing;

use super::audit::Detail;
use super::principal::{CredentialKind, Mode, Principal};
use super::server_keys;
use super::sessions;
use super::types::TenantId;
use super::Ctx;
use crate::config::Settings;
use crate::crypto;
use crate::crypto::handshake::{self as hs, Key32, Responder};
use crate::crypto::tokens::SecretToken;
use crate::error::{Error, Result};
use crate::store;

/// What a request without a key-carrying session is told (403).
pub const NEEDS_HANDSHAKE: &str =
    "This endpoint needs a handshake session (Dispatched-Session: dst_sess_…): sign in with the tenant private key first";

/// Where the request came from, for the session row and the audit log.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// The client address.
    pub ip: Option<IpAddr>,
    /// The `User-Agent` header, truncated.
    pub user_agent: Option<String>,
}

struct Pending {
    responder: Responder,
    tenant_id: String,
    user_id: i64,
    username: Option<String>,
    mode: Mode,
    started: Instant,
}

/// The keys of one live session: wiped when dropped.
#[derive(Clone)]
pub struct LiveKeys {
    /// The tenant's wrapping key, from message 3.
    pub wrapping_key: Key32,
    /// The tenant data key it unwraps.
    pub dek: Key32,
    /// The tenant.
    pub tenant_id: String,
    /// Absolute expiry of the session.
    pub expires_at: i64,
}

/// Process-wide handshake state: the server's static Noise key, pending handshakes and the
/// keys of live sessions.
pub struct Handshakes {
    server_static: Key32,
    server_public: [u8; 32],
    seal_salt: Arc<Zeroizing<[u8; 32]>>,
    pending: DashMap<String, Pending>,
    keys: DashMap<i64, LiveKeys>,
    last_sweep: AtomicI64,
}

impl std::fmt::Debug for Handshakes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshakes")
            .field("server_public", &crypto::b64(&self.server_public))
            .field("pending", &self.pending.len())
            .field("live_keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

/// Loads the server's static Noise key: `$CREDENTIALS_DIRECTORY/noise_static`, else
/// `<data_dir>/keys/noise_static` (base64url), generated with mode 0600 on first start.
pub fn load_noise_static(settings: &Settings) -> Result<Key32> {
    let parse = |text: &str, source: &str| {
        crypto::unb64(text)
            .and_then(|b| Key32::from_slice(&b))
            .ok_or_else(|| {
                Error::internal(format!(
                    "the Noise static key in {source} must be 32 bytes of base64url"
                ))
            })
    };
    if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
        let p = Path::new(&dir).join("noise_static");
        if p.is_file() {
            return parse(
                &server_keys::read_secret_file(&p)?,
                "the systemd credential `noise_static`",
            );
        }
    }
    let path = server_keys::keys_dir(settings).join("noise_static");
    if path.is_file() {
        return parse(
            &server_keys::read_secret_file(&path)?,
            "data/keys/noise_static",
        );
    }
    let key = Key32::random();
    if let Err(e) = server_keys::write_secret_file(&path, crypto::b64(key.bytes()).as_bytes()) {
        if path.is_file() {
            return parse(
                &server_keys::read_secret_file(&path)?,
                "data/keys/noise_static",
            );
        }
        return Err(e);
    }
    tracing::info!(path = %path.display(), "generated the server's static Noise key");
    Ok(key)
}

impl Handshakes {
    /// Builds the state around the server's static key.
    pub fn new(server_static: Key32, pepper: &crypto::Pepper) -> Handshakes {
        let server_public = hs::public_key(&server_static);
        let mut salt = Zeroizing::new([0u8; 32]);
        salt.copy_from_slice(pepper.derive("session seal").as_ref());
        Handshakes {
            server_static,
            server_public,
            seal_salt: Arc::new(salt),
            pending: DashMap::new(),
            keys: DashMap::new(),
            last_sweep: AtomicI64::new(0),
        }
    }

    /// The server's static Noise public key (published and pinned).
    pub fn server_public(&self) -> [u8; 32] {
        self.server_public
    }

    /// The keys of a live session, if this process holds them.
    pub fn live(&self, session_id: i64) -> Option<LiveKeys> {
        self.keys.get(&session_id).map(|k| k.clone())
    }

    /// Whether this process holds the keys of a session.
    pub fn holds(&self, session_id: i64) -> bool {
        self.keys.contains_key(&session_id)
    }

    /// Forgets (and wipes) a session's keys.
    pub fn forget(&self, session_id: i64) {
        self.keys.remove(&session_id);
    }

    /// Keeps a session's keys in memory.
    pub fn remember(&self, session_id: i64, keys: LiveKeys) {
        self.keys.insert(session_id, keys);
    }

    /// Number of pending handshakes (for tests and metrics).
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// Number of sessions whose keys are in memory.
    pub fn live_count(&self) -> usize {
        self.keys.len()
    }

    /// Seals a wrapping key under a session token.
    pub fn seal_for_token(&self, token: &str, tenant_id: &str, wk: &Key32) -> Vec<u8> {
        seal_under_token(&self.seal_salt, token, tenant_id, wk)
    }

    /// What seals `wk` under a session token not made yet: a new session's token carries its
    /// row id, so it is made inside the write transaction that picks the id.
    pub fn sealer(&self, tenant_id: &str, wk: &Key32) -> TokenSealer {
        TokenSealer {
            salt: Arc::clone(&self.seal_salt),
            tenant_id: tenant_id.to_owned(),
            wrapping_key: wk.clone(),
        }
    }

    /// Opens what [`Handshakes::seal_for_token`] sealed.
    pub fn unseal_with_token(&self, token: &str, tenant_id: &str, sealed: &[u8]) -> Option<Key32> {
        let k = hs::session_seal_key(token, &self.seal_salt);
        crypto::open(k.bytes(), sealed, &session_ad(tenant_id)).and_then(|b| Key32::from_slice(&b))
    }

    fn sweep_pending(&self, ttl: Duration) {
        self.pending.retain(|_, p| p.started.elapsed() < ttl);
    }
}

fn session_ad(tenant_id: &str) -> Vec<u8> {
    format!("gatehouse session v1:{tenant_id}").into_bytes()
}

fn seal_under_token(salt: &[u8; 32], token: &str, tenant_id: &str, wk: &Key32) -> Vec<u8> {
    let k = hs::session_seal_key(token, salt);
    crypto::seal(k.bytes(), wk.bytes(), &session_ad(tenant_id))
}

/// A wrapping key waiting to be sealed under the token of a session being made
/// ([`Handshakes::sealer`]). Owns what it needs, so it can move into the write transaction.
pub struct TokenSealer {
    salt: Arc<Zeroizing<[u8; 32]>>,
    tenant_id: String,
    wrapping_key: Key32,
}

impl std::fmt::Debug for TokenSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSealer")
            .field("tenant_id", &self.tenant_id)
            .finish_non_exhaustive()
    }
}

impl TokenSealer {
    /// The wrapping key sealed under `token` (what [`Handshakes::unseal_with_token`] opens).
    pub fn seal(&self, token: &SecretToken) -> Vec<u8> {
        seal_under_token(
            &self.salt,
            token.expose(),
            &self.tenant_id,
            &self.wrapping_key,
        )
    }
}

/// Unwraps the tenant data key with a wrapping key.
pub fn unwrap_dek(wk: &Key32, wrapped: &[u8], tenant_id: &str) -> Option<Key32> {
    crypto::open(wk.bytes(), wrapped, tenant_id.as_bytes()).and_then(|b| Key32::from_slice(&b))
}

/// Wraps the tenant data key with a wrapping key (AD = tenant id).
pub fn wrap_dek(wk: &Key32, dek: &Key32, tenant_id: &str) -> Vec<u8> {
    crypto::seal(wk.bytes(), dek.bytes(), tenant_id.as_bytes())
}

/// Decodes a base64url field into bytes, naming the field in the 400.
pub fn decode_field(value: &str, field: &str) -> Result<Vec<u8>> {
    crypto::unb64(value)
        .ok_or_else(|| Error::bad_request(format!("`{field}` must be base64url without padding")))
}

/// A newly created tenant and its private key (shown once, by the CLI).
#[derive(Debug)]
pub struct CreatedTenant {
    /// The tenant.
    pub tenant: store::tenants::TenantRow,
}

/// Creates a tenant whose handshake key is `public_key` (derived on the client from a seed
/// the server never sees); `owner` becomes its owner.
pub async fn create_tenant(
    ctx: &Ctx,
    name: &str,
    owner: Option<i64>,
    public_key: [u8; 32],
) -> Result<CreatedTenant> {
    if hs::is_weak_public_key(&public_key) {
        return Err(Error::bad_request(
            "the tenant public key is not a valid X25519 key",
        ));
    }
    let (name, slug) = super::tenants::name_and_slug(name)?;
    let id = TenantId::generate();
    let now = store::now();
    let tenant = ctx
        .db
        .write(move |tx| {
            let t = store::tenants::insert(tx, id.as_str(), &name, &slug, now)?;
            if let Some(uid) = owner {
                if store::users::get(tx, uid)?.is_none() {
                    return Err(Error::not_found("No such user"));
                }
                store::tenants::set_membership(tx, uid, &t.id, "owner", now)?;
            }
            store::handshake::set_static_key_if_none(tx, &t.id, &public_key, now)?;
            Ok(t)
        })
        .await?;
    ctx.audit.record(
        "tenant.created",
        true,
        Detail {
            tenant_id: Some(tenant.id.clone()),
            detail: Some("with handshake key".into()),
            ..Detail::default()
        },
    );
    Ok(CreatedTenant { tenant })
}

/// Registers a handshake key on an existing tenant that has none (e.g. `default`).
pub async fn register_key(ctx: &Ctx, tenant_id: &TenantId, public_key: [u8; 32]) -> Result<()> {
    if hs::is_weak_public_key(&public_key) {
        return Err(Error::bad_request(
            "the tenant public key is not a valid X25519 key",
        ));
    }
    let t = tenant_id.as_str().to_owned();
    let now = store::now();
    ctx.db
        .write(move |tx| {
            if store::handshake::tenant_keys(tx, &t)?.is_none() {
                return Err(Error::not_found("No such tenant"));
            }
            if !store::handshake::set_static_key_if_none(tx, &t, &public_key, now)? {
                return Err(Error::Conflict(
                    "This tenant already has a handshake key; rotate it from a signed-in session"
                        .into(),
                ));
            }
            Ok(())
        })
        .await
}

/// The answer to message 1.
#[derive(Debug)]
pub struct Begun {
    /// Identifies the pending handshake in the confirm call.
    pub handshake_id: String,
    /// Message 2.
    pub message: Vec<u8>,
    /// Seconds the confirm call has.
    pub expires_in: u64,
}

/// Step 1: an API key of a member of `tenant_id` sends message 1; the server answers message 2.
pub async fn begin(
    ctx: &Ctx,
    principal: &Principal,
    tenant_id: &TenantId,
    message1: &[u8],
    client: &ClientInfo,
) -> Result<Begun> {
    if principal.kind != CredentialKind::ApiKey {
        return Err(Error::forbidden(
            "Starting a handshake needs the API key of a tenant member",
        ));
    }
    let user_id = principal.require_user()?;
    if principal
        .tenant_id
        .as_deref()
        .is_some_and(|t| t != tenant_id.as_str())
    {
        return Err(Error::forbidden("This API key belongs to another tenant"));
    }
    let t = tenant_id.as_str().to_owned();
    let (keys, role) = ctx
        .db
        .read(move |c| {
            Ok((
                store::handshake::tenant_keys(c, &t)?,
                store::tenants::role_of(c, user_id, &t)?,
            ))
        })
        .await?;
    let keys = keys.ok_or_else(|| Error::not_found("No such tenant"))?;
    if role.is_none() {
        return Err(Error::forbidden(
            "The API key's user is not a member of this tenant",
        ));
    }
    if keys.static_public_key.is_none() {
        return Err(Error::Conflict(
            "This tenant has no handshake key yet; create one with `gatehouse tenant create` or register it".into(),
        ));
    }
    let settings = &ctx.settings.handshake;
    let ttl = Duration::from_secs(settings.ttl_secs);
    let hsx = &ctx.handshakes;
    let result = hs::respond(&hsx.server_static, tenant_id.as_str(), message1, None);
    let (responder, message) = match result {
        Ok(x) => x,
        Err(e) => {
            audit(
                ctx,
                "handshake.started",
                false,
                principal,
                tenant_id.as_str(),
                client,
                &e,
            );
            return Err(e);
        }
    };
    hsx.sweep_pending(ttl);
    if hsx.pending.len() >= settings.max_pending {
        return Err(Error::Unavailable("too many pending handshakes".into()));
    }
    let handshake_id = format!("hs_{}", crypto::random_base62(32));
    hsx.pending.insert(
        handshake_id.clone(),
        Pending {
            responder,
            tenant_id: tenant_id.as_str().to_owned(),
            user_id,
            username: principal.username.clone(),
            mode: principal.mode,
            started: Instant::now(),
        },
    );
    Ok(Begun {
        handshake_id,
        message,
        expires_in: settings.ttl_secs,
    })
}

fn audit(
    ctx: &Ctx,
    event: &str,
    ok: bool,
    principal: &Principal,
    tenant_id: &str,
    client: &ClientInfo,
    err: &Error,
) {
    ctx.audit.record(
        event,
        ok,
        Detail {
            actor: principal.username.clone(),
            tenant_id: Some(tenant_id.to_owned()),
            ip: client.ip,
            detail: Some(err.public_message()),
        },
    );
}

/// A signed-in session, as the confirm call answers it.
#[derive(Debug)]
pub struct Confirmed {
    /// The `dst_sess_` token (shown once).
    pub session_token: SecretToken,
    /// Idle expiry (Unix seconds); `POST /api/session/refresh` extends it.
    pub expires_at: i64,
    /// Absolute expiry (Unix seconds).
    pub absolute_expires_at: i64,
    /// The tenant.
    pub tenant_id: String,
    /// The session row id.
    pub session_id: i64,
}

/// Step 2: message 3 proves the tenant key and carries the wrapping key; creates the session.
pub async fn confirm(
    ctx: &Ctx,
    handshake_id: &str,
    message3: &[u8],
    client: &ClientInfo,
) -> Result<Confirmed> {
    let ttl = Duration::from_secs(ctx.settings.handshake.ttl_secs);
    // Removing first makes every handshake single-use, whatever happens next.
    let Some((_, pending)) = ctx.handshakes.pending.remove(handshake_id) else {
        return Err(Error::unauthenticated(
            "Unknown, expired or already used handshake; start again with POST /api/session",
        ));
    };
    if pending.started.elapsed() >= ttl {
        return Err(Error::unauthenticated(
            "The handshake expired; start again with POST /api/session",
        ));
    }
    let info = PendingInfo {
        tenant_id: pending.tenant_id.clone(),
        user_id: pending.user_id,
        username: pending.username.clone(),
        mode: pending.mode,
    };
    let fail = |e: Error, p: &PendingInfo| {
        ctx.audit.record(
            "handshake.signed_in",
            false,
            Detail {
                actor: p.username.clone(),
                tenant_id: Some(p.tenant_id.clone()),
                ip: client.ip,
                detail: Some(e.public_message()),
            },
        );
        e
    };
    let finished = match pending.responder.finish(message3) {
        Ok(f) => f,
        Err(e) => return Err(fail(e, &info)),
    };
    let (tenant_id, user_id, mode, username) = (
        info.tenant_id.clone(),
        info.user_id,
        info.mode,
        info.username.clone(),
    );
    let sealer = ctx.handshakes.sealer(&tenant_id, &finished.wrapping_key);
    let pepper = ctx.pepper.clone();
    let now = store::now();
    let s = &ctx.settings.session;
    let expires_at = now + i64::try_from(s.absolute_timeout_secs).unwrap_or(86_400);
    let idle = (now + i64::try_from(s.idle_timeout_secs).unwrap_or(3_600)).min(expires_at);
    let wk = finished.wrapping_key.clone();
    let remote = finished.remote_static;
    let t = tenant_id.clone();
    let ip = client.ip.map(|i| i.to_string());
    let ua = client.user_agent.clone();
    let res = ctx
        .db
        .write(move |tx| {
            let keys = store::handshake::tenant_keys(tx, &t)?
                .ok_or_else(|| Error::not_found("No such tenant"))?;
            let registered = keys.static_public_key.unwrap_or_default();
            if !crypto::ct_eq(&registered, &remote) {
                return Err(Error::unauthenticated(
                    "The tenant private key does not match this tenant's registered key",
                ));
            }
            let user_ok = store::users::get(tx, user_id)?.is_some_and(|u| !u.disabled);
            if !user_ok || store::tenants::role_of(tx, user_id, &t)?.is_none() {
                return Err(Error::unauthenticated(
                    "The API key's user can no longer sign in to this tenant",
                ));
            }
            let dek = match keys.wrapped_dek {
                Some(w) => unwrap_dek(&wk, &w, &t).ok_or_else(|| {
                    Error::unauthenticated("The wrapping key does not unwrap the tenant data key")
                })?,
                None => {
                    // The tenant's first sign-in creates its data key.
                    let dek = Key32::random();
                    store::handshake::set_wrapped_dek_if_none(tx, &t, &wrap_dek(&wk, &dek, &t))?;
                    dek
                }
            };
            let (id, token) = sessions::insert(
                tx,
                &pepper,
                sessions::PREFIX,
                &store::sessions::NewSession {
                    kind: "handshake",
                    user_id: Some(user_id),
                    tenant_id: Some(&t),
                    mode: mode.as_str(),
                    user_agent: ua.as_deref(),
                    ip: ip.as_deref(),
                    now,
                    idle_expires_at: idle,
                    expires_at,
                },
                Some(&sealer),
            )?;
            Ok((id, dek, token))
        })
        .await;
    let (session_id, dek, token) = match res {
        Ok(x) => x,
        Err(e) => return Err(fail(e, &info)),
    };
    ctx.handshakes.remember(
        session_id,
        LiveKeys {
            wrapping_key: finished.wrapping_key,
            dek,
            tenant_id: tenant_id.clone(),
            expires_at,
        },
    );
    ctx.audit.record(
        "handshake.signed_in",
        true,
        Detail {
            actor: username,
            tenant_id: Some(tenant_id.clone()),
            ip: client.ip,
            detail: None,
        },
    );
    Ok(Confirmed {
        session_token: token,
        expires_at: idle,
        absolute_expires_at: expires_at,
        tenant_id,
        session_id,
    })
}

/// Who started a handshake, kept for the audit record once the responder is consumed.
struct PendingInfo {
    tenant_id: String,
    user_id: i64,
    username: Option<String>,
    mode: Mode,
}

/// The session id a principal authenticated with, if it is a session.
pub fn session_id(p: &Principal) -> Option<i64> {
    match p.kind {
        CredentialKind::Session | CredentialKind::RunSession => {
            p.credential_id.as_deref().and_then(|s| s.parse().ok())
        }
        _ => None,
    }
}

/// The keys of the handshake session `p` authenticated with, or 403 [`NEEDS_HANDSHAKE`].
pub fn keys_of(ctx: &Ctx, p: &Principal) -> Result<(i64, LiveKeys)> {
    if p.kind != CredentialKind::Session {
        return Err(Error::forbidden(NEEDS_HANDSHAKE));
    }
    session_id(p)
        .and_then(|id| ctx.handshakes.live(id).map(|k| (id, k)))
        .ok_or_else(|| Error::forbidden(NEEDS_HANDSHAKE))
}

/// A refreshed session's new idle expiry.
#[derive(Debug, Clone, Copy)]
pub struct Refreshed {
    /// New idle expiry (Unix seconds).
    pub expires_at: i64,
    /// Absolute expiry (Unix seconds).
    pub absolute_expires_at: i64,
}

/// Extends a handshake session's idle expiry (up to its absolute expiry).
pub async fn refresh(ctx: &Ctx, p: &Principal) -> Result<Refreshed> {
    let (id, keys) = keys_of(ctx, p)?;
    let now = store::now();
    let idle_secs = i64::try_from(ctx.settings.session.idle_timeout_secs).unwrap_or(3_600);
    // The same extension as a browser session's (clamped to the absolute expiry in SQL).
    let idle = ctx
        .db
        .write(move |tx| store::sessions::touch(tx, id, now, idle_secs))
        .await?;
    let Some(idle) = idle else {
        ctx.handshakes.forget(id);
        return Err(Error::unauthenticated("Session expired or signed out"));
    };
    Ok(Refreshed {
        expires_at: idle,
        absolute_expires_at: keys.expires_at,
    })
}

/// Ends the session `p` authenticated with and wipes its keys.
pub async fn sign_out(ctx: &Ctx, p: &Principal) -> Result<()> {
    let id = session_id(p).ok_or_else(|| Error::forbidden(NEEDS_HANDSHAKE))?;
    let now = store::now();
    ctx.db
        .write(move |tx| store::sessions::revoke(tx, id, None, now))
        .await?;
    ctx.handshakes.forget(id);
    ctx.audit.record(
        "handshake.signed_out",
        true,
        Detail {
            actor: p.username.clone(),
            tenant_id: p.tenant_id.clone(),
            ..Detail::default()
        },
    );
    Ok(())
}

/// Rotates the tenant key from a signed-in session: registers `new_public`, re-wraps the data
/// key under `new_wrapping`, re-seals the caller's session under its own token, and ends every
/// other handshake and run session of the tenant (they hold the old wrapping key).
pub async fn rotate_key(
    ctx: &Ctx,
    p: &Principal,
    token: &str,
    new_public: [u8; 32],
    new_wrapping: Key32,
) -> Result<()> {
    let (id, keys) = keys_of(ctx, p)?;
    if hs::is_weak_public_key(&new_public) {
        return Err(Error::bad_request(
            "the new public key is not a valid X25519 key",
        ));
    }
    let role = {
        let (uid, t) = (p.user_id.unwrap_or_default(), keys.tenant_id.clone());
        ctx.db
            .read(move |c| store::tenants::role_of(c, uid, &t))
            .await?
    };
    if !matches!(role.as_deref(), Some("owner" | "admin")) && !p.is_admin {
        return Err(Error::forbidden(
            "Rotating the tenant key needs the tenant's owner or admin role",
        ));
    }
    let t = keys.tenant_id.clone();
    let wrapped = wrap_dek(&new_wrapping, &keys.dek, &t);
    let sealed = ctx.handshakes.seal_for_token(token, &t, &new_wrapping);
    let now = store::now();
    let tt = t.clone();
    ctx.db
        .write(move |tx| {
            store::handshake::rotate_tenant_key(tx, &tt, &new_public, &wrapped, now)?;
            store::handshake::reseal_session(tx, id, &sealed)?;
            store::handshake::revoke_tenant_sessions(tx, &tt, id, now)?;
            Ok(())
        })
        .await?;
    ctx.handshakes
        .keys
        .retain(|sid, k| *sid == id || k.tenant_id != t);
    ctx.handshakes.remember(
        id,
        LiveKeys {
            wrapping_key: new_wrapping,
            ..keys
        },
    );
    ctx.audit.record(
        "tenant.key_rotated",
        true,
        Detail {
            actor: p.username.clone(),
            tenant_id: Some(t),
            ..Detail::default()
        },
    );
    Ok(())
}

/// Wipes the keys of sessions that ended elsewhere (revoked by a password change, expired),
/// at most every 30 seconds.
pub async fn sweep(ctx: &Ctx) {
    let now = store::now();
    let last = ctx.handshakes.last_sweep.load(Ordering::Relaxed);
    if now - last < 30
        || ctx
            .handshakes
            .last_sweep
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    let ids: Vec<i64> = ctx.handshakes.keys.iter().map(|e| *e.key()).collect();
    if ids.is_empty() {
        return;
    }
    let probe = ids.clone();
    match ctx
        .db
        .read(move |c| store::handshake::live_session_ids(c, &probe, now))
        .await
    {
        Ok(live) => {
            for id in ids.into_iter().filter(|i| !live.contains(i)) {
                ctx.handshakes.forget(id);
            }
        }
        Err(e) => tracing::warn!(error = %e, "session key sweep failed"),
    }
}
