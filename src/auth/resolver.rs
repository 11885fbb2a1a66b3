//! The one credential resolver: prefix → kind → format check → store look-up → [`Principal`].

use std::sync::Arc;

use super::{CredentialKind, Mode, Principal};
use crate::error::{Error, Result};
use crate::services::keys::{self, KeyIdentity, Rejection};
use crate::services::{tokens, Ctx};

/// The kind a raw credential claims to be, from its prefix alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claimed {
    /// `sk_live_`, `sk_test_`, `pk_live_`, `pk_test_`.
    ApiKey,
    /// Starts with `eyJ`.
    Jwt,
    /// `dst_sess_`.
    Session,
    /// `dst_run_`.
    RunSession,
    /// `pt_`.
    PortalToken,
}

/// Classifies a raw credential by prefix; unknown prefixes are malformed (400).
pub fn classify(raw: &str) -> Result<Claimed> {
    let c = if raw.starts_with("sk_") || raw.starts_with("pk_") {
        Claimed::ApiKey
    } else if raw.starts_with("eyJ") {
        Claimed::Jwt
    } else if raw.starts_with("dst_sess_") {
        Claimed::Session
    } else if raw.starts_with("dst_run_") {
        Claimed::RunSession
    } else if raw.starts_with("pt_") {
        Claimed::PortalToken
    } else {
        return Err(Error::MalformedCredential);
    };
    Ok(c)
}

/// A resolved credential. An API key stays the cached identity (the hot verify path answers
/// from it without building a [`Principal`]); every other kind is its principal.
#[derive(Debug)]
pub enum Resolved {
    /// A verified API key (plan and id for rate limiting, everything its principal holds).
    ApiKey(Arc<KeyIdentity>),
    /// Any other credential.
    Other(Principal),
}

impl Resolved {
    /// The verified key, when the credential is an API key.
    pub fn key(&self) -> Option<&Arc<KeyIdentity>> {
        match self {
            Resolved::ApiKey(k) => Some(k),
            Resolved::Other(_) => None,
        }
    }

    /// Who is calling.
    pub fn into_principal(self) -> Principal {
        match self {
            Resolved::ApiKey(k) => key_principal(&k),
            Resolved::Other(p) => p,
        }
    }
}

/// Resolves a raw credential to a principal.
///
/// 400 for a malformed credential, 401 for an unknown, revoked or expired one.
pub async fn resolve(ctx: &Ctx, raw: &str) -> Result<Principal> {
    resolve_full(ctx, raw, None)
        .await
        .map(Resolved::into_principal)
        .map_err(Error::from)
}

/// Resolves a raw credential, keeping why it was refused (for verify answers).
///
/// `db_blocked = Some(wait)`: the caller's address is throttled for invalid attempts, so a
/// credential not already cached is refused without a database look-up.
pub async fn resolve_full(
    ctx: &Ctx,
    raw: &str,
    db_blocked: Option<u64>,
) -> std::result::Result<Resolved, Rejection> {
    let claimed = classify(raw).map_err(|_| Rejection::Malformed)?;
    match claimed {
        Claimed::ApiKey => Ok(Resolved::ApiKey(
            keys::verify_with(ctx, raw, db_blocked).await?,
        )),
        other => other_kind(ctx, raw, other)
            .await
            .map(Resolved::Other)
            .map_err(Rejection::Failed),
    }
}

/// Every kind but API keys: sessions and run sessions (one read of the row, whatever its kind),
/// portal tokens and JWTs.
async fn other_kind(ctx: &Ctx, raw: &str, claimed: Claimed) -> Result<Principal> {
    match claimed {
        Claimed::Session | Claimed::RunSession => {
            crate::services::handshake_sessions::resolve(ctx, raw).await
        }
        Claimed::PortalToken => crate::services::portal::resolve(ctx, raw).await,
        Claimed::Jwt => jwt(ctx, raw).await,
        Claimed::ApiKey => Err(unsupported(ctx, claimed)),
    }
}

/// The principal of a verified API key: its owner, acting in the key's tenant and mode.
pub fn key_principal(k: &KeyIdentity) -> Principal {
    Principal {
        kind: CredentialKind::ApiKey,
        subject: format!("user:{}", k.user_id),
        user_id: Some(k.user_id),
        username: Some(k.username.to_string()),
        tenant_id: Some(k.tenant_id.to_string()),
        mode: k.mode,
        scopes: k.scopes.clone(),
        is_admin: k.is_admin,
        permissions: k.permissions.clone(),
        expires_at: k.expires_at,
        credential_id: Some(k.key_id.to_string()),
    }
}

/// An EdDSA access token: verified offline, then its family and user checked live, so logout,
/// a password change or disabling the user end it at once here. Admin flag and permissions
/// come from the user as stored now, not from the token's copy.
async fn jwt(ctx: &Ctx, raw: &str) -> Result<Principal> {
    let v = tokens::verify_access(ctx, raw).await?;
    Ok(Principal {
        kind: CredentialKind::Jwt,
        subject: format!("user:{}", v.user.id),
        user_id: Some(v.user.id),
        username: Some(v.user.username),
        tenant_id: v.tenant,
        mode: Mode::Live,
        scopes: Vec::new(),
        is_admin: v.user.is_admin,
        permissions: v.user.permissions,
        expires_at: Some(v.claims.exp),
        credential_id: Some(v.claims.jti),
    })
}

/// A credential kind this build does not issue yet.
fn unsupported(_ctx: &Ctx, claimed: Claimed) -> Error {
    Error::unauthenticated(format!(
        "{claimed:?} credentials are not accepted by this server"
    ))
}
