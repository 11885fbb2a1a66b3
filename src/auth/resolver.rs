//! The one credential resolver: prefix → kind → format check → store look-up → [`Principal`].

use super::Principal;
use crate::error::{Error, Result};
use crate::services::Ctx;

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
        // Handshake sessions and run sessions; a `browser` row answers `None` (browser arm).
        Claimed::Session | Claimed::RunSession => {
            crate::services::handshake_sessions::resolve(ctx, raw)
                .await?
                .ok_or_else(|| unsupported(ctx, claimed))
        }
        _ => Err(unsupported(ctx, claimed)),
    }
}

/// A credential kind this build does not issue yet.
fn unsupported(_ctx: &Ctx, claimed: Claimed) -> Error {
    Error::unauthenticated(format!(
        "{claimed:?} credentials are not accepted by this server"
    ))
}
