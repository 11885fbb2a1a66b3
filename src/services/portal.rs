//! Brands (workspaces inside a tenant) and customer portal tokens.
//!
//! A portal token (`pt_` + 43 base62, stored only as its keyed hash) authenticates one customer
//! of one brand with a fixed set of scopes; Gatehouse owns no tickets, it only tells the app
//! behind it who the customer is. Only an API key may issue one.

use std::net::IpAddr;

use serde::Serialize;

use super::audit::Detail;
use super::principal::{CredentialKind, Mode, Principal};
use super::types::Email;
use super::Ctx;
use crate::crypto::tokens::{new_token, token_well_formed, SecretToken};
use crate::error::{Error, Result};
use crate::store::brands::BrandRow;
use crate::store::portal_tokens::{NewPortal, PortalRow};
use crate::store::{self};

/// Prefix of portal tokens.
pub const PREFIX: &str = "pt_";

/// Scopes every portal token carries.
pub const SCOPES: [&str; 4] = [
    "tickets:read_own",
    "tickets:create",
    "comments:create",
    "attachments:upload",
];

/// The 401 message for an unknown, revoked or expired portal token.
pub const TOKEN_ENDED: &str = "Portal token expired or revoked";

/// Default lifetime when `expiresIn` is absent.
pub const DEFAULT_EXPIRES_IN: i64 = 86_400;

/// A brand as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Brand {
    /// `brd_` + 16 hex.
    pub id: String,
    /// Display name.
    pub name: String,
    /// URL-safe name, unique in the organization.
    pub slug: String,
    /// The organization (tenant).
    pub organization_id: String,
    /// Creation time (Unix seconds).
    pub created_at: i64,
}

impl From<BrandRow> for Brand {
    fn from(b: BrandRow) -> Self {
        Brand {
            id: b.id,
            name: b.name,
            slug: b.slug,
            organization_id: b.tenant_id,
            created_at: b.created_at,
        }
    }
}

fn tenant_of(p: &Principal) -> Result<String> {
    p.tenant_id
        .clone()
        .ok_or_else(|| Error::forbidden("This credential is not in an organization"))
}

/// The brands of the caller's organization.
pub async fn list_brands(ctx: &Ctx, p: &Principal) -> Result<Vec<Brand>> {
    p.require_user()?;
    let t = tenant_of(p)?;
    let rows = ctx.db.read(move |c| store::brands::list(c, &t)).await?;
    Ok(rows.into_iter().map(Brand::from).collect())
}

/// Creates a brand (organization owners and admins, or server admins).
pub async fn create_brand(ctx: &Ctx, p: &Principal, name: &str) -> Result<Brand> {
    let uid = p.require_user()?;
    let t = tenant_of(p)?;
    let name = name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Error::bad_request("name must be 1 to 100 characters"));
    }
    let slug = super::tenants::slugify(&name);
    if slug.is_empty() {
        return Err(Error::bad_request(
            "name needs at least one letter or digit",
        ));
    }
    let is_admin = p.is_admin;
    let row = BrandRow {
        id: format!(
            "brd_{}",
            crate::crypto::random_bytes(8)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ),
        tenant_id: t,
        name,
        slug,
        created_at: store::now(),
    };
    let r = row.clone();
    ctx.db
        .write(move |tx| {
            let role = store::tenants::role_of(tx, uid, &r.tenant_id)?;
            if !is_admin && !matches!(role.as_deref(), Some("owner" | "admin")) {
                return Err(Error::forbidden(
                    "Creating brands needs the owner or admin role in this organization",
                ));
            }
            store::brands::insert(tx, &r)
        })
        .await?;
    Ok(row.into())
}

/// Parses `30m`, `24h`, `7d`, `90s` into seconds.
pub fn parse_expires_in(s: &str) -> Result<i64> {
    let s = s.trim();
    let bad = || {
        Error::bad_request(
            "expiresIn must be a number and a unit (s, m, h or d), e.g. 30m, 24h, 7d",
        )
    };
    let unit = s.chars().last().ok_or_else(bad)?;
    let n: i64 = s[..s.len() - unit.len_utf8()].parse().map_err(|_| bad())?;
    let mul = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        _ => return Err(bad()),
    };
    if n <= 0 {
        return Err(bad());
    }
    n.checked_mul(mul).ok_or_else(bad)
}

/// A portal token just issued (the secret is shown once).
#[derive(Debug)]
pub struct Issued {
    /// The token.
    pub token: SecretToken,
    /// Its expiry (Unix seconds).
    pub expires_at: i64,
}

/// Issues a portal token for a customer of a brand in the caller's organization. API keys only.
pub async fn issue(
    ctx: &Ctx,
    p: &Principal,
    brand_id: &str,
    customer_email: &Email,
    customer_name: Option<String>,
    expires_in: Option<&str>,
    ip: Option<IpAddr>,
) -> Result<Issued> {
    if p.kind != CredentialKind::ApiKey {
        return Err(Error::forbidden(
            "Portal tokens can only be issued with an API key",
        ));
    }
    let t = tenant_of(p)?;
    issue_unchecked(
        ctx,
        &t,
        p.mode,
        brand_id,
        customer_email,
        customer_name,
        expires_in,
        p.credential_id.clone(),
        ip,
    )
    .await
}

/// Issues a portal token without checking the caller (the caller is the server itself: the
/// API-key handler above, the CLI, or tests seeding data).
#[allow(clippy::too_many_arguments)]
pub async fn issue_unchecked(
    ctx: &Ctx,
    tenant_id: &str,
    mode: Mode,
    brand_id: &str,
    customer_email: &Email,
    customer_name: Option<String>,
    expires_in: Option<&str>,
    issued_by: Option<String>,
    ip: Option<IpAddr>,
) -> Result<Issued> {
    let secs = match expires_in {
        Some(s) => parse_expires_in(s)?,
        None => DEFAULT_EXPIRES_IN,
    };
    let max = i64::try_from(ctx.settings.portal.max_expires_in_secs).unwrap_or(i64::MAX);
    let secs = secs.min(max);
    if let Some(n) = &customer_name {
        if n.chars().count() > 200 {
            return Err(Error::bad_request(
                "customerName must be at most 200 characters",
            ));
        }
    }
    let token = new_token(PREFIX);
    let h = ctx.pepper.hash(token.expose().as_bytes()).to_vec();
    let now = store::now();
    let expires_at = now.saturating_add(secs);
    let (t, b, e) = (
        tenant_id.to_owned(),
        brand_id.to_owned(),
        customer_email.as_str().to_owned(),
    );
    let by = issued_by.clone();
    ctx.db
        .write(move |tx| {
            match store::brands::get(tx, &b)? {
                Some(brand) if brand.tenant_id == t => {}
                _ => return Err(Error::not_found("No such brand in this organization")),
            }
            store::portal_tokens::insert(
                tx,
                &NewPortal {
                    token_hash: &h,
                    brand_id: &b,
                    tenant_id: &t,
                    mode: mode.as_str(),
                    customer_email: &e,
                    customer_name: customer_name.as_deref(),
                    issued_by: by.as_deref(),
                    now,
                    expires_at,
                },
            )
        })
        .await?;
    ctx.audit.record(
        "portal_token.issued",
        true,
        Detail {
            actor: issued_by,
            tenant_id: Some(tenant_id.to_owned()),
            ip,
            detail: Some(format!(
                "brand={brand_id} customer={}",
                customer_email.as_str()
            )),
        },
    );
    Ok(Issued { token, expires_at })
}

fn is_live(r: &PortalRow, now: i64) -> bool {
    r.revoked_at.is_none() && r.expires_at > now
}

/// Resolves a `pt_` token (400 malformed, 401 unknown/expired/revoked).
pub async fn resolve(ctx: &Ctx, raw: &str) -> Result<Principal> {
    if !token_well_formed(raw, PREFIX) {
        return Err(Error::MalformedCredential);
    }
    let h = ctx.pepper.hash(raw.as_bytes()).to_vec();
    let now = store::now();
    let row = ctx
        .db
        .read(move |c| store::portal_tokens::by_hash(c, &h))
        .await?
        .filter(|r| is_live(r, now))
        .ok_or_else(|| Error::unauthenticated(TOKEN_ENDED))?;
    Ok(Principal {
        kind: CredentialKind::PortalToken,
        subject: format!("customer:{}:{}", row.brand_id, row.customer_email),
        user_id: None,
        username: None,
        tenant_id: Some(row.tenant_id),
        mode: Mode::parse(&row.mode).unwrap_or(Mode::Live),
        scopes: SCOPES.iter().map(|s| (*s).to_owned()).collect(),
        is_admin: false,
        permissions: Vec::new(),
        expires_at: Some(row.expires_at),
        credential_id: Some(row.id.to_string()),
    })
}

/// The customer a portal token stands for.
pub async fn me(ctx: &Ctx, p: &Principal) -> Result<PortalRow> {
    if p.kind != CredentialKind::PortalToken {
        return Err(Error::forbidden("This endpoint needs a portal token"));
    }
    let id: i64 = p
        .credential_id
        .as_deref()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::unauthenticated(TOKEN_ENDED))?;
    ctx.db
        .read(move |c| store::portal_tokens::get(c, id))
        .await?
        .ok_or_else(|| Error::unauthenticated(TOKEN_ENDED))
}
