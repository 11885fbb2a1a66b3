//! JWT pairs: sign-in, refresh rotation with reuse detection and a grace window, logout, and
//! verification of access tokens.
//!
//! Every refresh token is recorded by `jti` in a family (one family per sign-in). Refreshing
//! spends the presented token and mints a successor in one `BEGIN IMMEDIATE` transaction
//! (`UPDATE … SET spent_at = ? WHERE jti = ? AND spent_at IS NULL`), so of two concurrent
//! refreshes exactly one mints a pair. The successor pair is kept sealed (pepper-derived key,
//! AD = the spent jti) so that an identical retry within `jwt.refresh_grace_secs` — a client
//! that lost the response, or the loser of a concurrent race — gets the very same pair back.
//! A spent token presented after the grace window, or after its successor was itself used,
//! is a replay (RFC 9700 §4.14.2): the whole family is revoked. Logout revokes the family;
//! a password change or disabling the user revokes all of the user's families.
//!
//! Access tokens name their family (`sid`): Gatehouse itself refuses an access token whose
//! family was revoked or whose user was disabled, at once; services verifying offline against
//! the JWKS accept it until its `exp` (5 minutes by default).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::audit::Detail;
use super::types::Password;
use super::{users, Ctx};
use crate::crypto::jwt::{self, Expect, Rejection};
use crate::crypto::{self, tokens::SecretToken};
use crate::error::{Error, Result};
use crate::store::{self, users::UserRow};

/// `token_type` of an access token.
pub const ACCESS: &str = "access";
/// `token_type` of a refresh token.
pub const REFRESH: &str = "refresh";

/// The claims of both token types. Access tokens also carry the user's name, tenant and rights.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer (`jwt.issuer`, default the public URL).
    pub iss: String,
    /// Audience (`jwt.audience`).
    pub aud: String,
    /// The user id, as a string.
    pub sub: String,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expires at (Unix seconds).
    pub exp: i64,
    /// Unique token id.
    pub jti: String,
    /// `access` or `refresh`.
    pub token_type: String,
    /// The refresh family (sign-in) this token belongs to.
    pub sid: String,
    /// The user name (access tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The user's tenant (access tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Whether the user is an administrator (access tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_admin: Option<bool>,
    /// The user's named permissions (access tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
}

/// An access/refresh pair. `Debug` masks both.
#[derive(Debug, Clone)]
pub struct TokenPair {
    /// The access token.
    pub access: SecretToken,
    /// The refresh token.
    pub refresh: SecretToken,
}

#[derive(Serialize, Deserialize)]
struct SealedPair {
    access: String,
    refresh: String,
}

/// A verified access token and the user it belongs to, as the database has them now.
#[derive(Debug, Clone)]
pub struct VerifiedAccess {
    /// The token's claims.
    pub claims: Claims,
    /// The user (current admin flag and permissions, not the token's copy).
    pub user: UserRow,
    /// The user's tenant.
    pub tenant: Option<String>,
}

fn expect(ctx: &Ctx) -> (String, String, u64) {
    (
        ctx.settings.jwt_issuer(),
        ctx.settings.jwt.audience.clone(),
        ctx.settings.jwt.leeway_secs,
    )
}

fn to_error(r: Rejection) -> Error {
    match r {
        Rejection::Malformed => Error::MalformedCredential,
        Rejection::Expired => Error::unauthenticated("Token has expired"),
        Rejection::Invalid(why) => Error::unauthenticated(why),
    }
}

/// Checks header, key, signature, registered claims and `token_type`.
async fn verify(ctx: &Ctx, raw: &str, token_type: &str) -> Result<Claims> {
    let header = jwt::check_header(raw).map_err(to_error)?;
    let key = ctx
        .keyring
        .verifier(&ctx.db, &header.kid)
        .await?
        .ok_or_else(|| Error::unauthenticated("Token key id is unknown"))?;
    let (iss, aud, leeway) = expect(ctx);
    let claims: Claims = jwt::verify(
        raw,
        &key,
        &Expect {
            issuer: &iss,
            audience: &aud,
            leeway_secs: leeway,
        },
    )
    .map_err(to_error)?;
    if claims.token_type != token_type {
        return Err(Error::unauthenticated(if token_type == ACCESS {
            "Token is not an access token"
        } else {
            "Token is not a refresh token"
        }));
    }
    let now = store::now();
    if claims.iat > now + i64::try_from(leeway).unwrap_or(0) {
        return Err(Error::unauthenticated("Token is issued in the future"));
    }
    Ok(claims)
}

fn grace_key(ctx: &Ctx) -> Zeroizing<[u8; 32]> {
    ctx.pepper.derive("jwt refresh grace seal")
}

fn tenant_of(c: &rusqlite::Connection, user_id: i64) -> Result<Option<String>> {
    Ok(store::tenants::memberships_of(c, user_id)?
        .into_iter()
        .next()
        .map(|(t, _)| t.id))
}

/// Signs a new pair in `family` for `user` and records the refresh token (inside `tx`).
fn mint(
    ctx_parts: &MintCtx,
    tx: &rusqlite::Transaction<'_>,
    user: &UserRow,
    family: &str,
    now: i64,
) -> Result<(TokenPair, String)> {
    let signer = ctx_parts.keyring.signer_in_tx(tx, now)?;
    let tenant = tenant_of(tx, user.id)?;
    let access_jti = crypto::random_base62(22);
    let refresh_jti = crypto::random_base62(22);
    let base = |jti: &str, ttl: u64, token_type: &str| Claims {
        iss: ctx_parts.issuer.clone(),
        aud: ctx_parts.audience.clone(),
        sub: user.id.to_string(),
        iat: now,
        exp: now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX)),
        jti: jti.to_owned(),
        token_type: token_type.to_owned(),
        sid: family.to_owned(),
        username: None,
        tenant: None,
        is_admin: None,
        permissions: None,
    };
    let mut access = base(&access_jti, ctx_parts.access_ttl, ACCESS);
    access.username = Some(user.username.clone());
    access.tenant = tenant;
    access.is_admin = Some(user.is_admin);
    access.permissions = Some(user.permissions.clone());
    let refresh = base(&refresh_jti, ctx_parts.refresh_ttl, REFRESH);
    store::refresh_tokens::insert_token(tx, &refresh_jti, family, user.id, now, refresh.exp)?;
    let pair = TokenPair {
        access: SecretToken::new(signer.sign(&access).map_err(Error::internal)?),
        refresh: SecretToken::new(signer.sign(&refresh).map_err(Error::internal)?),
    };
    Ok((pair, refresh_jti))
}

/// What minting needs, owned so it can move into a blocking transaction.
struct MintCtx {
    keyring: super::signing_keys::Keyring,
    issuer: String,
    audience: String,
    access_ttl: u64,
    refresh_ttl: u64,
}

fn mint_ctx(ctx: &Ctx) -> MintCtx {
    MintCtx {
        keyring: ctx.keyring.clone(),
        issuer: ctx.settings.jwt_issuer(),
        audience: ctx.settings.jwt.audience.clone(),
        access_ttl: ctx.settings.jwt.access_ttl_secs,
        refresh_ttl: ctx.settings.jwt.refresh_ttl_secs,
    }
}

/// Signs in with a user name (or e-mail) and password and starts a new family.
pub async fn login(
    ctx: &Ctx,
    login: &str,
    password: &Password,
    ip: Option<IpAddr>,
) -> Result<TokenPair> {
    let signed = users::authenticate(ctx, login, password, ip).await?;
    issue(ctx, signed).await
}

/// Starts a new family for a user who has just signed in, records the sign-in in the same
/// transaction, and returns the family's first pair.
pub async fn issue(ctx: &Ctx, signed: users::SignIn) -> Result<TokenPair> {
    let m = mint_ctx(ctx);
    ctx.db
        .write(move |tx| {
            let now = store::now();
            let user = &signed.user;
            let family = crypto::random_base62(22);
            let exp = now.saturating_add(i64::try_from(m.refresh_ttl).unwrap_or(i64::MAX));
            store::refresh_tokens::insert_family(tx, &family, user.id, now, exp)?;
            let fresh = store::users::get(tx, user.id)?
                .filter(|u| !u.disabled)
                .ok_or_else(|| Error::unauthenticated(users::BAD_LOGIN))?;
            signed.record(tx, now)?;
            Ok(mint(&m, tx, &fresh, &family, now)?.0)
        })
        .await
}

enum Outcome {
    Fresh(TokenPair),
    Replay(TokenPair),
    Reused { family: String, user_id: i64 },
    Dead,
}

/// Rotates a refresh token: the old one is spent and a new pair returned (see the module doc).
pub async fn refresh(ctx: &Ctx, raw: &str, ip: Option<IpAddr>) -> Result<TokenPair> {
    let claims = verify(ctx, raw, REFRESH).await?;
    let m = mint_ctx(ctx);
    let grace = i64::try_from(ctx.settings.jwt.refresh_grace_secs).unwrap_or(0);
    let seal_key = grace_key(ctx);
    let jti = claims.jti.clone();
    let outcome = ctx
        .db
        .write(move |tx| {
            let now = store::now();
            let Some(st) = store::refresh_tokens::state(tx, &jti)? else {
                return Ok(Outcome::Dead);
            };
            if st.family_id != claims.sid || st.user_id.to_string() != claims.sub {
                return Ok(Outcome::Dead);
            }
            if st.family_revoked_at.is_some() || st.user_disabled {
                return Ok(Outcome::Dead);
            }
            if store::refresh_tokens::spend(tx, &jti, now)? {
                let user = store::users::get(tx, st.user_id)?
                    .ok_or_else(|| Error::unauthenticated("Token is no longer valid"))?;
                let (pair, next) = mint(&m, tx, &user, &st.family_id, now)?;
                let sealed_pair = serde_json::to_vec(&SealedPair {
                    access: pair.access.expose().to_owned(),
                    refresh: pair.refresh.expose().to_owned(),
                })
                .map(Zeroizing::new)
                .map_err(Error::internal)?;
                let sealed = crypto::seal(&seal_key, &sealed_pair, jti.as_bytes());
                store::refresh_tokens::set_successor(tx, &jti, &next, &sealed)?;
                return Ok(Outcome::Fresh(pair));
            }
            // Already spent: a retry within the grace window gets the same pair, anything
            // else is a replay and ends the family.
            let within_grace = st.spent_at.is_some_and(|t| now - t < grace);
            if within_grace && !st.successor_spent {
                if let Some(pair) = st
                    .sealed_successor
                    .as_deref()
                    .and_then(|s| crypto::open(&seal_key, s, jti.as_bytes()))
                    .and_then(|p| serde_json::from_slice::<SealedPair>(&p).ok())
                {
                    return Ok(Outcome::Replay(TokenPair {
                        access: SecretToken::new(pair.access),
                        refresh: SecretToken::new(pair.refresh),
                    }));
                }
            }
            store::refresh_tokens::revoke_family(tx, &st.family_id, now, "reuse detected")?;
            Ok(Outcome::Reused {
                family: st.family_id,
                user_id: st.user_id,
            })
        })
        .await?;
    match outcome {
        Outcome::Fresh(p) => Ok(p),
        Outcome::Replay(p) => {
            ctx.audit.record(
                "token.refresh_retry",
                true,
                Detail {
                    ip,
                    ..Detail::default()
                },
            );
            Ok(p)
        }
        Outcome::Reused { family, user_id } => {
            ctx.audit.record(
                "token.refresh_reuse",
                false,
                Detail {
                    actor: Some(format!("user:{user_id}")),
                    ip,
                    detail: Some(format!(
                        "a spent refresh token was presented; family {family} revoked"
                    )),
                    ..Detail::default()
                },
            );
            Err(Error::unauthenticated(
                "Refresh token was already used; the session has been revoked",
            ))
        }
        Outcome::Dead => Err(Error::unauthenticated("Token is no longer valid")),
    }
}

/// Revokes the family of a refresh token (idempotent for a known token).
pub async fn logout(ctx: &Ctx, raw: &str, ip: Option<IpAddr>) -> Result<()> {
    let claims = verify(ctx, raw, REFRESH).await?;
    let jti = claims.jti.clone();
    let user_id = ctx
        .db
        .write(move |tx| {
            let Some(st) = store::refresh_tokens::state(tx, &jti)? else {
                return Err(Error::unauthenticated("Token is no longer valid"));
            };
            if st.family_id != claims.sid {
                return Err(Error::unauthenticated("Token is no longer valid"));
            }
            store::refresh_tokens::revoke_family(tx, &st.family_id, store::now(), "logout")?;
            Ok(st.user_id)
        })
        .await?;
    ctx.audit.record(
        "logout",
        true,
        Detail {
            actor: Some(format!("user:{user_id}")),
            ip,
            ..Detail::default()
        },
    );
    Ok(())
}

/// Verifies an access token: signature, claims, type, and that its family and user are live.
pub async fn verify_access(ctx: &Ctx, raw: &str) -> Result<VerifiedAccess> {
    let claims = verify(ctx, raw, ACCESS).await?;
    let user_id: i64 = claims
        .sub
        .parse()
        .map_err(|_| Error::unauthenticated("Token subject is invalid"))?;
    let family = claims.sid.clone();
    let found = ctx
        .db
        .read(move |c| {
            if !store::refresh_tokens::family_live(c, &family, user_id, store::now())? {
                return Ok(None);
            }
            let user = store::users::get(c, user_id)?;
            let tenant = tenant_of(c, user_id)?;
            Ok(user.map(|u| (u, tenant)))
        })
        .await?;
    let (user, tenant) = found.ok_or_else(|| Error::unauthenticated("Token has been revoked"))?;
    Ok(VerifiedAccess {
        claims,
        user,
        tenant,
    })
}
