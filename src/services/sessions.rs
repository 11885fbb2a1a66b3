//! Browser sessions: sign-in, resolution, sliding idle expiry, refresh, listing, revocation and
//! switching the active organization.
//!
//! A session token (`dst_sess_` + 43 base62) is a split token: its first 11 characters are the
//! session's row id, the other 32 are random, and the row keeps only the keyed hash of the whole
//! token. A look-up reads the row by id and compares the hash ([`store::sessions::by_token`]), so
//! the table needs no index over random hashes; tokens from before ids were carried are still
//! found by hash. [`insert`] makes every kind of session (browser, handshake, run) this way.
//! Every sign-in makes a new token (no fixation) and ends the session the browser held before,
//! if any.
//! Use slides the idle expiry, but the row is written at most once per `touch interval`
//! (a minute, or a quarter of the idle timeout if that is shorter), so a busy session does not
//! cost one write per request. The absolute expiry never moves.

use std::net::IpAddr;

use serde::Serialize;

use super::audit::Detail;
use super::handshake::TokenSealer;
use super::principal::{CredentialKind, Mode, Principal};
use super::Ctx;
use crate::crypto::tokens::{new_token_with_id, token_id, token_well_formed, SecretToken};
use crate::crypto::Pepper;
use crate::error::{Error, Result};
use crate::store::sessions::{FromToken, NewSession, SessionRow};
use crate::store::tenants::TenantRow;
use crate::store::users::UserRow;
use crate::store::{self};

/// Prefix of browser/handshake session tokens.
pub const PREFIX: &str = "dst_sess_";

/// The 401 message for an unknown, revoked or expired session.
pub const SESSION_ENDED: &str = "Session expired or revoked; sign in again";

/// A freshly made session: the token (shown once) and its row.
#[derive(Debug)]
pub struct Started {
    /// The token for the cookie / `Dispatched-Session` header.
    pub token: SecretToken,
    /// The stored session.
    pub session: SessionRow,
    /// The signed-in user.
    pub user: UserRow,
    /// The active organization, if the user belongs to one.
    pub organization: Option<TenantRow>,
    /// The user's role there.
    pub role: Option<String>,
}

/// One session as shown in the "active sessions" list.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    /// Session id.
    pub id: i64,
    /// Device (User-Agent at sign-in).
    pub device: String,
    /// Client address at sign-in.
    pub address: String,
    /// Creation time (Unix seconds).
    pub created_at: i64,
    /// Last use (Unix seconds, coarse to a minute).
    pub last_seen_at: i64,
    /// When it ends if unused (Unix seconds).
    pub idle_expires_at: i64,
    /// When it ends regardless (Unix seconds).
    pub expires_at: i64,
    /// Whether this is the session making the request.
    pub current: bool,
}

fn hash(ctx: &Ctx, token: &str) -> Vec<u8> {
    ctx.pepper.hash(token.as_bytes()).to_vec()
}

/// What a presented session or run token is looked up by: the row id it carries (`None` if it
/// reads as none) and its keyed hash. Call [`token_well_formed`] first.
pub fn lookup_key(ctx: &Ctx, raw: &str, prefix: &str) -> (Option<i64>, Vec<u8>) {
    let id = token_id(raw, prefix).and_then(|n| i64::try_from(n).ok());
    (id, hash(ctx, raw))
}

/// Inserts a session of any kind and makes its token, inside the caller's write transaction:
/// the token carries the row id the store picks, and the row keeps the token's keyed hash.
/// `sealer` (handshake and run sessions) seals the wrapping key under the new token. Returns
/// the id and the token (to show once).
pub fn insert(
    tx: &rusqlite::Transaction<'_>,
    pepper: &Pepper,
    prefix: &str,
    row: &NewSession<'_>,
    sealer: Option<&TokenSealer>,
) -> Result<(i64, SecretToken)> {
    store::sessions::insert(tx, row, |id| {
        let id = u64::try_from(id).map_err(|_| Error::internal("negative session id"))?;
        let token = new_token_with_id(prefix, id);
        let kept = FromToken {
            token_hash: pepper.hash(token.expose().as_bytes()).to_vec(),
            sealed_key: sealer.map(|s| s.seal(&token)),
        };
        Ok((kept, token))
    })
}

fn touch_interval(ctx: &Ctx) -> i64 {
    let idle = i64::try_from(ctx.settings.session.idle_timeout_secs).unwrap_or(i64::MAX);
    (idle / 4).clamp(0, 60)
}

fn idle_secs(ctx: &Ctx) -> i64 {
    i64::try_from(ctx.settings.session.idle_timeout_secs).unwrap_or(i64::MAX / 4)
}

fn absolute_secs(ctx: &Ctx) -> i64 {
    i64::try_from(ctx.settings.session.absolute_timeout_secs).unwrap_or(i64::MAX / 4)
}

/// Where a sign-in comes from.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// User-Agent.
    pub user_agent: Option<String>,
    /// Client address.
    pub ip: Option<IpAddr>,
    /// Session token the browser already held, ended by this sign-in.
    pub replaces: Option<String>,
}

/// Starts a browser session for a user who has just proven who they are, and records the
/// sign-in in the same transaction.
pub async fn start(
    ctx: &Ctx,
    signed: super::users::SignIn,
    origin: Origin,
    method: &str,
) -> Result<Started> {
    let pepper = ctx.pepper.clone();
    let replaced = origin
        .replaces
        .as_deref()
        .filter(|t| token_well_formed(t, PREFIX))
        .map(|t| lookup_key(ctx, t, PREFIX));
    let now = store::now();
    let (idle, abs) = (idle_secs(ctx), absolute_secs(ctx));
    let ua: Option<String> = origin
        .user_agent
        .as_deref()
        .map(|s| s.chars().take(256).collect());
    let ip = origin.ip.map(|i| i.to_string());
    let user_id = signed.user.id;
    let (session, org, token, signed) = ctx
        .db
        .write(move |tx| {
            signed.record(tx, now)?;
            if let Some((claimed_id, h)) = replaced {
                if let Some(old) = store::sessions::by_token(tx, claimed_id, &h)? {
                    store::sessions::revoke(tx, old.id, None, now)?;
                }
            }
            let org = store::tenants::memberships_of(tx, user_id)?
                .into_iter()
                .next();
            let (id, token) = insert(
                tx,
                &pepper,
                PREFIX,
                &NewSession {
                    kind: "browser",
                    user_id: Some(user_id),
                    tenant_id: org.as_ref().map(|(t, _)| t.id.as_str()),
                    mode: "live",
                    user_agent: ua.as_deref(),
                    ip: ip.as_deref(),
                    now,
                    idle_expires_at: now.saturating_add(idle).min(now.saturating_add(abs)),
                    expires_at: now.saturating_add(abs),
                },
                None,
            )?;
            let s = store::sessions::get(tx, id)?
                .ok_or_else(|| Error::internal("inserted session vanished"))?;
            Ok((s, org, token, signed))
        })
        .await?;
    let user = signed.user;
    ctx.audit.record(
        "session.created",
        true,
        Detail {
            actor: Some(user.username.clone()),
            tenant_id: session.tenant_id.clone(),
            ip: origin.ip,
            detail: Some(format!("method={method} session={}", session.id)),
        },
    );
    let (organization, role) = match org {
        Some((t, r)) => (Some(t), Some(r)),
        None => (None, None),
    };
    Ok(Started {
        token,
        session,
        user,
        organization,
        role,
    })
}

fn is_live(s: &SessionRow, now: i64) -> bool {
    s.revoked_at.is_none() && s.expires_at > now && s.idle_expires_at > now
}

/// Finishes resolving a browser session whose row (and user) the session-token resolver
/// ([`super::handshake_sessions::resolve`]) has read: 401 unless it is live and its user
/// enabled; slides the idle expiry at most once per touch interval, off the request path.
pub fn finish(ctx: &Ctx, s: SessionRow, user: Option<UserRow>, now: i64) -> Result<Principal> {
    let user = match user {
        Some(u) if is_live(&s, now) && !u.disabled && s.kind == "browser" => u,
        _ => return Err(Error::unauthenticated(SESSION_ENDED)),
    };
    if now - s.last_seen_at >= touch_interval(ctx) {
        let (id, idle) = (s.id, idle_secs(ctx));
        let db = ctx.db.clone();
        // Off the request path: the answer does not wait for the write.
        tokio::spawn(async move {
            if let Err(e) = db
                .write(move |tx| store::sessions::touch(tx, id, now, idle))
                .await
            {
                tracing::warn!(error = %e, "session last-seen not recorded");
            }
        });
    }
    Ok(principal_of(&s, &user))
}

fn principal_of(s: &SessionRow, u: &UserRow) -> Principal {
    Principal {
        kind: CredentialKind::Session,
        subject: format!("user:{}", u.id),
        user_id: Some(u.id),
        username: Some(u.username.clone()),
        tenant_id: s.tenant_id.clone(),
        mode: Mode::parse(&s.mode).unwrap_or(Mode::Live),
        scopes: Vec::new(),
        is_admin: u.is_admin,
        permissions: u.permissions.clone(),
        expires_at: Some(s.idle_expires_at.min(s.expires_at)),
        credential_id: Some(s.id.to_string()),
    }
}

/// The session id of a session principal (403 for any other kind).
pub fn session_id(p: &Principal) -> Result<i64> {
    if p.kind != CredentialKind::Session {
        return Err(Error::forbidden("This endpoint needs a browser session"));
    }
    p.credential_id
        .as_deref()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::forbidden("This endpoint needs a browser session"))
}

/// Extends the idle expiry now (never past the absolute expiry); returns the session.
pub async fn refresh(ctx: &Ctx, p: &Principal) -> Result<SessionRow> {
    let id = session_id(p)?;
    let (now, idle) = (store::now(), idle_secs(ctx));
    ctx.db
        .write(move |tx| {
            store::sessions::touch(tx, id, now, idle)?
                .ok_or_else(|| Error::unauthenticated(SESSION_ENDED))?;
            store::sessions::get(tx, id)?.ok_or_else(|| Error::unauthenticated(SESSION_ENDED))
        })
        .await
}

/// The caller's live browser sessions.
pub async fn list(ctx: &Ctx, p: &Principal) -> Result<Vec<SessionView>> {
    let uid = p.require_user()?;
    let current = session_id(p).ok();
    let now = store::now();
    let rows = ctx
        .db
        .read(move |c| store::sessions::live_for_user(c, uid, "browser", now))
        .await?;
    Ok(rows
        .into_iter()
        .map(|s| SessionView {
            id: s.id,
            device: s.user_agent.unwrap_or_else(|| "unknown device".into()),
            address: s.ip.unwrap_or_else(|| "unknown".into()),
            created_at: s.created_at,
            last_seen_at: s.last_seen_at,
            idle_expires_at: s.idle_expires_at,
            expires_at: s.expires_at,
            current: Some(s.id) == current,
        })
        .collect())
}

/// Revokes one of the caller's sessions (404 if it is not theirs or already ended).
pub async fn revoke(ctx: &Ctx, p: &Principal, id: i64, ip: Option<IpAddr>) -> Result<()> {
    let uid = p.require_user()?;
    let now = store::now();
    let done = ctx
        .db
        .write(move |tx| store::sessions::revoke(tx, id, Some(uid), now))
        .await?;
    if !done {
        return Err(Error::not_found("No such active session"));
    }
    ctx.audit.record(
        "session.revoked",
        true,
        Detail {
            actor: p.username.clone(),
            tenant_id: p.tenant_id.clone(),
            ip,
            detail: Some(format!("session={id}")),
        },
    );
    Ok(())
}

/// Revokes every session of the caller except the current one; returns how many.
pub async fn revoke_others(ctx: &Ctx, p: &Principal, ip: Option<IpAddr>) -> Result<usize> {
    let uid = p.require_user()?;
    let keep = session_id(p).ok();
    let now = store::now();
    let n = ctx
        .db
        .write(move |tx| store::sessions::revoke_all_for_user(tx, uid, keep, now))
        .await?;
    ctx.audit.record(
        "session.revoked",
        true,
        Detail {
            actor: p.username.clone(),
            tenant_id: p.tenant_id.clone(),
            ip,
            detail: Some(format!("all others ({n})")),
        },
    );
    Ok(n)
}

/// Ends the caller's own session (sign-out).
pub async fn logout(ctx: &Ctx, p: &Principal, ip: Option<IpAddr>) -> Result<()> {
    let id = session_id(p)?;
    let now = store::now();
    ctx.db
        .write(move |tx| store::sessions::revoke(tx, id, None, now))
        .await?;
    ctx.audit.record(
        "logout",
        true,
        Detail {
            actor: p.username.clone(),
            tenant_id: p.tenant_id.clone(),
            ip,
            detail: Some(format!("session={id}")),
        },
    );
    Ok(())
}

/// Who the session is: the user, the active organization and the membership there.
#[derive(Debug, Clone)]
pub struct Whoami {
    /// The user.
    pub user: UserRow,
    /// The active organization.
    pub organization: Option<TenantRow>,
    /// The role there.
    pub role: Option<String>,
    /// Every organization the user belongs to, with the role.
    pub organizations: Vec<(TenantRow, String)>,
}

/// Describes the caller's account and active organization.
pub async fn whoami(ctx: &Ctx, p: &Principal) -> Result<Whoami> {
    let uid = p.require_user()?;
    let tenant = p.tenant_id.clone();
    ctx.db
        .read(move |c| {
            let user =
                store::users::get(c, uid)?.ok_or_else(|| Error::unauthenticated(SESSION_ENDED))?;
            let organizations = store::tenants::memberships_of(c, uid)?;
            let current = tenant
                .as_deref()
                .and_then(|t| organizations.iter().find(|(o, _)| o.id == t).cloned());
            let (organization, role) = match current {
                Some((t, r)) => (Some(t), Some(r)),
                None => (None, None),
            };
            Ok(Whoami {
                user,
                organization,
                role,
                organizations,
            })
        })
        .await
}

/// Switches the session's active organization (403 unless the user is a member there).
pub async fn switch_organization(
    ctx: &Ctx,
    p: &Principal,
    tenant_id: &str,
    ip: Option<IpAddr>,
) -> Result<()> {
    let id = session_id(p)?;
    let uid = p.require_user()?;
    let t = tenant_id.to_owned();
    ctx.db
        .write(move |tx| {
            if store::tenants::role_of(tx, uid, &t)?.is_none() {
                return Err(Error::forbidden(
                    "You are not a member of that organization",
                ));
            }
            if !store::sessions::set_tenant(tx, id, &t)? {
                return Err(Error::unauthenticated(SESSION_ENDED));
            }
            Ok(())
        })
        .await?;
    ctx.audit.record(
        "session.organization_switched",
        true,
        Detail {
            actor: p.username.clone(),
            tenant_id: Some(tenant_id.to_owned()),
            ip,
            detail: None,
        },
    );
    Ok(())
}

/// The CSRF token bound to a session token: a keyed hash, so it cannot be forged without the
/// server pepper and changes with every sign-in.
pub fn csrf_token(ctx: &Ctx, session_token: &str) -> String {
    let key = ctx.pepper.derive("csrf");
    let mut data = Vec::with_capacity(64 + session_token.len());
    data.extend_from_slice(key.as_slice());
    data.extend_from_slice(session_token.as_bytes());
    crate::crypto::b64(&ctx.pepper.hash(&data))
}

/// Whether `presented` is the CSRF token of `session_token` (constant time).
pub fn csrf_ok(ctx: &Ctx, session_token: &str, presented: &str) -> bool {
    crate::crypto::ct_eq(
        csrf_token(ctx, session_token).as_bytes(),
        presented.as_bytes(),
    )
}
