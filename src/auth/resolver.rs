//! The one credential resolver: prefix → kind → format check → store look-up → [`Principal`].

use super::{CredentialKind, Mode, Principal};
use crate::error::{Error, Result};
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

/// Resolves a raw credential to a principal.
///
/// 400 for a malformed credential, 401 for an unknown, revoked or expired one.
pub async fn resolve(ctx: &Ctx, raw: &str) -> Result<Principal> {
    let claimed = classify(raw)?;
    match claimed {
        // Handshake sessions first; a `browser` row answers `None` and goes to the browser arm.
        Claimed::Session => match crate::services::handshake_sessions::resolve(ctx, raw).await? {
            Some(p) => Ok(p),
            None => crate::services::sessions::resolve(ctx, raw).await,
        },
        Claimed::RunSession => crate::services::handshake_sessions::resolve(ctx, raw)
            .await?
            .ok_or_else(|| unsupported(ctx, claimed)),
        Claimed::PortalToken => crate::services::portal::resolve(ctx, raw).await,
        Claimed::Jwt => jwt(ctx, raw).await,
        other => Err(unsupported(ctx, other)),
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
