//! Resolving session tokens to a [`Principal`]: handshake sessions (`dst_sess_…` rows of kind
//! `handshake`, recovering the session's keys after a restart) and run sessions (`dst_run_…`)
//! here, browser sessions (`dst_sess_…` rows of kind `browser`) finished by
//! [`sessions::finish`] from the same single read.
//!
//! Called from the credential resolver's `Session` and `RunSession` arms.

use super::handshake::{self, LiveKeys};
use super::principal::{CredentialKind, Mode, Principal};
use super::{runs, sessions, Ctx};
use crate::crypto::tokens;
use crate::error::{Error, Result};
use crate::store;

/// Scope carried by run sessions: they may only deliver workflow callbacks.
pub const RUN_SCOPE: &str = "workflow.callback";

/// Resolves a `dst_sess_` (handshake or browser) or `dst_run_` token.
pub async fn resolve(ctx: &Ctx, raw: &str) -> Result<Principal> {
    let run = raw.starts_with(runs::PREFIX);
    let prefix = if run { runs::PREFIX } else { sessions::PREFIX };
    if !tokens::token_well_formed(raw, prefix) {
        return Err(Error::MalformedCredential);
    }
    handshake::sweep(ctx).await;
    let (claimed_id, hash) = sessions::lookup_key(ctx, raw, prefix);
    let now = store::now();
    let found = ctx
        .db
        .read(move |c| {
            let Some(row) = store::sessions::by_token(c, claimed_id, &hash)? else {
                return Ok(None);
            };
            let user = match row.user_id {
                Some(u) => store::users::get(c, u)?,
                None => None,
            };
            let member = match (row.user_id, &row.tenant_id) {
                (Some(u), Some(t)) if row.kind != "browser" => {
                    store::tenants::role_of(c, u, t)?.is_some()
                }
                _ => false,
            };
            let run = if row.kind == "run" {
                store::handshake::run_by_session(c, row.id)?
            } else {
                None
            };
            let wrapped = match &row.tenant_id {
                Some(t) if row.kind != "browser" => {
                    store::handshake::tenant_keys(c, t)?.and_then(|k| k.wrapped_dek)
                }
                _ => None,
            };
            Ok(Some((row, user, member, run, wrapped)))
        })
        .await?;
    let Some((row, user, member, run_row, wrapped)) = found else {
        return Err(Error::unauthenticated("Unknown or expired session"));
    };
    let expected = if run { "run" } else { "handshake" };
    if row.kind == "browser" && !run {
        return sessions::finish(ctx, row, user, now);
    }
    if row.kind != expected {
        return Err(Error::unauthenticated("Unknown or expired session"));
    }
    if row.revoked_at.is_some() || row.expires_at <= now || row.idle_expires_at <= now {
        ctx.handshakes.forget(row.id);
        return Err(Error::unauthenticated("Session expired or signed out"));
    }
    let (Some(user), Some(tenant_id)) = (user, row.tenant_id.clone()) else {
        return Err(Error::unauthenticated("Unknown or expired session"));
    };
    if user.disabled || !member {
        ctx.handshakes.forget(row.id);
        return Err(Error::unauthenticated(
            "This session's user can no longer act in its tenant",
        ));
    }
    if !ctx.handshakes.holds(row.id) {
        // After a restart: the presented token unseals the wrapping key.
        let wk = row
            .sealed_key
            .as_deref()
            .and_then(|s| ctx.handshakes.unseal_with_token(raw, &tenant_id, s))
            .ok_or_else(|| {
                Error::unauthenticated("This session's key cannot be recovered; sign in again")
            })?;
        let dek = wrapped
            .as_deref()
            .and_then(|w| handshake::unwrap_dek(&wk, w, &tenant_id))
            .ok_or_else(|| {
                Error::unauthenticated(
                    "The tenant key changed since this session began; sign in again",
                )
            })?;
        ctx.handshakes.remember(
            row.id,
            LiveKeys {
                wrapping_key: wk,
                dek,
                tenant_id: tenant_id.clone(),
                expires_at: row.expires_at,
            },
        );
    }
    let mode = Mode::parse(&row.mode)?;
    let expires_at = Some(row.idle_expires_at.min(row.expires_at));
    let credential_id = Some(row.id.to_string());
    if run {
        let run_row =
            run_row.ok_or_else(|| Error::unauthenticated("Unknown or expired session"))?;
        return Ok(Principal {
            kind: CredentialKind::RunSession,
            subject: format!("run:{}", run_row.id),
            user_id: None,
            username: None,
            tenant_id: Some(tenant_id),
            mode,
            scopes: vec![RUN_SCOPE.to_owned()],
            is_admin: false,
            permissions: vec![],
            expires_at,
            credential_id,
        });
    }
    Ok(Principal {
        kind: CredentialKind::Session,
        subject: format!("user:{}", user.id),
        user_id: Some(user.id),
        username: Some(user.username),
        tenant_id: Some(tenant_id),
        mode,
        scopes: vec![],
        is_admin: user.is_admin,
        permissions: user.permissions,
        expires_at,
        credential_id,
    })
}
