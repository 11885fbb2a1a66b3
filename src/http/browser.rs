//! JSON endpoints of browser sign-in: magic links, sessions, organizations, brands, portal
//! tokens and the audit log. Thin: extract, call one service, map the answer.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::session_auth::{self, same_site_check, Auth};
use super::HttpState;
use crate::auth::CredentialKind;
use crate::error::{Error, ErrorBody, Result};
use crate::services::types::{Email, TenantId};
use crate::services::{magic_links, portal, sessions, Ctx};
use crate::store::audit::AuditEvent;

/// Registers the routes of this module.
///
/// Each path is one resource, so another method gets 405 with `Allow` (a bare `route` would
/// let it fall through to the 404 fallback).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/v1/auth/magic-link").post(magic_link))
        .service(web::resource("/v1/auth/verify").post(verify))
        .service(web::resource("/v1/auth/session").get(session))
        .service(web::resource("/v1/auth/session/organization").post(switch_organization))
        .service(web::resource("/v1/auth/logout").post(logout))
        .service(web::resource("/api/session/refresh").post(refresh))
        .service(web::resource("/api/sessions").get(list_sessions))
        .service(web::resource("/api/sessions/revoke-others").post(revoke_other_sessions))
        .service(web::resource("/api/sessions/{id}").delete(revoke_session))
        .service(
            web::resource("/v1/brands")
                .get(list_brands)
                .post(create_brand),
        )
        .service(web::resource("/v1/brands/{brand_id}/portal/token").post(portal_token))
        .service(web::resource("/v1/portal/me").get(portal_me))
        .service(web::resource("/api/audit").get(audit));
}

/// The OpenAPI part of this module.
#[derive(OpenApi)]
#[openapi(
    paths(
        magic_link, verify, session, switch_organization, logout, refresh, list_sessions,
        revoke_other_sessions, revoke_session, list_brands, create_brand, portal_token,
        portal_me, audit
    ),
    components(schemas(
        MagicLinkBody, Accepted, VerifyBody, SignedIn, SessionInfo, Account, Organization,
        Member, SessionAnswer, OrganizationBody, SessionList,
        sessions::SessionView, Message, BrandBody, BrandList, portal::Brand, PortalTokenBody,
        PortalTokenAnswer, PortalMe, Customer, BrandRef, AuditList, AuditEvent
    )),
    tags((name = "browser", description = "Magic links, browser sessions, organizations, brands, portal tokens"))
)]
pub struct BrowserApi;

fn client_ip(req: &HttpRequest) -> Option<std::net::IpAddr> {
    req.app_data::<web::Data<HttpState>>()
        .and_then(|s| s.trusted.client_ip(req))
}

fn user_agent(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(actix_web::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Where a sign-in request comes from (device, address, the session it replaces).
pub fn sign_in_origin(req: &HttpRequest, ctx: &Ctx) -> sessions::Origin {
    sessions::Origin {
        user_agent: user_agent(req),
        ip: client_ip(req),
        replaces: session_auth::cookie_token(req, &ctx.settings),
    }
}

/// `{email}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct MagicLinkBody {
    /// The address to send the link to.
    #[schema(value_type = Email)]
    pub email: String,
}

/// The one answer to a link request.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// Always the same text.
    pub message: &'static str,
}

/// Sends a sign-in link — the same 202 answer whether or not the address belongs to a user.
#[utoipa::path(post, path = "/v1/auth/magic-link", tag = "browser", request_body = MagicLinkBody,
    responses((status = 202, body = Accepted), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "cross-site request"),
        (status = 429, body = ErrorBody)))]
pub async fn magic_link(
    req: HttpRequest,
    ctx: web::Data<Ctx>,
    body: web::Json<MagicLinkBody>,
) -> Result<HttpResponse> {
    same_site_check(&req, &ctx.settings)?;
    let email = Email::parse(&body.email)?;
    magic_links::request(&ctx.clone().into_inner(), email, client_ip(&req))?;
    Ok(HttpResponse::Accepted().json(Accepted {
        message: magic_links::REQUESTED,
    }))
}

/// `{token}` (JSON, or the form of the verify page).
#[derive(Debug, Deserialize, ToSchema)]
pub struct VerifyBody {
    /// The `ml_…` token from the link.
    #[schema(min_length = 46, max_length = 46, pattern = "^ml_[A-Za-z0-9]{43}$")]
    pub token: String,
}

/// The new session.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    /// Session id (for the sessions list).
    pub id: i64,
    /// The `dst_sess_…` token (also set as the cookie) for the `Dispatched-Session` header.
    pub token: String,
    /// Ends if unused until then (Unix seconds).
    pub idle_expires_at: i64,
    /// Ends at the latest (Unix seconds).
    pub expires_at: i64,
}

/// The signed-in account.
#[derive(Debug, Serialize, ToSchema)]
pub struct Account {
    /// User id.
    pub id: i64,
    /// User name.
    pub username: String,
    /// E-mail address.
    pub email: Option<String>,
    /// Server administrator.
    #[serde(rename = "isAdmin")]
    pub is_admin: bool,
}

/// An organization (tenant).
#[derive(Debug, Serialize, ToSchema)]
pub struct Organization {
    /// `ten_…`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// URL-safe name.
    pub slug: String,
}

/// The membership in the active organization.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// `owner`, `admin` or `member`.
    pub role: String,
    /// The organization.
    pub organization_id: String,
}

/// Answer to a successful verify.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignedIn {
    /// The session.
    pub session: SessionInfo,
    /// Who signed in.
    pub account: Account,
    /// The active organization.
    pub organization: Option<Organization>,
}

fn account(u: &crate::store::users::UserRow) -> Account {
    Account {
        id: u.id,
        username: u.username.clone(),
        email: u.email.clone(),
        is_admin: u.is_admin,
    }
}

fn organization(t: &crate::store::tenants::TenantRow) -> Organization {
    Organization {
        id: t.id.clone(),
        name: t.name.clone(),
        slug: t.slug.clone(),
    }
}

/// Consumes a magic link: `{session, account, organization}` and the session cookie. The verify
/// page's form post gets a redirect to the dashboard instead.
#[utoipa::path(post, path = "/v1/auth/verify", tag = "browser", operation_id = "magic_link_verify", request_body = VerifyBody,
    responses((status = 200, body = SignedIn, description = "signed in; sets the session cookie"),
        (status = 303, description = "form post: signed in, to the dashboard"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn verify(
    req: HttpRequest,
    ctx: web::Data<Ctx>,
    body: web::Either<web::Json<VerifyBody>, web::Form<VerifyBody>>,
) -> Result<HttpResponse> {
    let (token, is_form) = match body {
        web::Either::Left(j) => (j.into_inner().token, false),
        web::Either::Right(f) => (f.into_inner().token, true),
    };
    if let Err(e) = same_site_check(&req, &ctx.settings) {
        return if is_form {
            Ok(super::pages::message_page(&e, "/sign-in"))
        } else {
            Err(e)
        };
    }
    let started = match magic_links::verify(&ctx, token.trim(), sign_in_origin(&req, &ctx)).await {
        Ok(s) => s,
        Err(e) if is_form => return Ok(super::pages::message_page(&e, "/sign-in")),
        Err(e) => return Err(e),
    };
    let cookie = session_auth::session_cookie(&ctx.settings, started.token.expose());
    if is_form {
        return Ok(HttpResponse::SeeOther()
            .cookie(cookie)
            .insert_header(("Location", "/dashboard"))
            .finish());
    }
    Ok(HttpResponse::Ok().cookie(cookie).json(SignedIn {
        session: SessionInfo {
            id: started.session.id,
            token: started.token.expose().to_owned(),
            idle_expires_at: started.session.idle_expires_at,
            expires_at: started.session.expires_at,
        },
        account: account(&started.user),
        organization: started.organization.as_ref().map(organization),
    }))
}

/// `{account, organization, member}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionAnswer {
    /// Who is signed in.
    pub account: Account,
    /// The active organization.
    pub organization: Option<Organization>,
    /// The membership there.
    pub member: Option<Member>,
    /// Every organization the account belongs to (for the switcher).
    pub organizations: Vec<Organization>,
}

async fn session_answer(ctx: &Ctx, auth: &Auth) -> Result<SessionAnswer> {
    let w = sessions::whoami(ctx, &auth.principal).await?;
    Ok(SessionAnswer {
        account: account(&w.user),
        member: match (&w.organization, &w.role) {
            (Some(o), Some(r)) => Some(Member {
                role: r.clone(),
                organization_id: o.id.clone(),
            }),
            _ => None,
        },
        organization: w.organization.as_ref().map(organization),
        organizations: w
            .organizations
            .iter()
            .map(|(t, _)| organization(t))
            .collect(),
    })
}

/// Who the caller is: account, active organization and membership.
#[utoipa::path(get, path = "/v1/auth/session", tag = "browser",
    responses((status = 200, body = SessionAnswer), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn session(ctx: web::Data<Ctx>, auth: Auth) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(session_answer(&ctx, &auth).await?))
}

/// `{organization_id}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct OrganizationBody {
    /// The organization to make active (`organizationId` also accepted).
    #[serde(alias = "organizationId")]
    #[schema(value_type = TenantId)]
    pub organization_id: String,
}

/// Switches the session's active organization, keeping the session.
#[utoipa::path(post, path = "/v1/auth/session/organization", tag = "browser",
    request_body = OrganizationBody,
    responses((status = 200, body = SessionAnswer), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "not a member, not a session, or CSRF")),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn switch_organization(
    req: HttpRequest,
    ctx: web::Data<Ctx>,
    auth: Auth,
    body: web::Json<OrganizationBody>,
) -> Result<HttpResponse> {
    let organization = TenantId::parse(body.organization_id.trim())?;
    sessions::switch_organization(
        &ctx,
        &auth.principal,
        organization.as_str(),
        client_ip(&req),
    )
    .await?;
    let mut auth = auth;
    auth.principal.tenant_id = Some(organization.as_str().to_owned());
    Ok(HttpResponse::Ok().json(session_answer(&ctx, &auth).await?))
}

/// A short confirmation.
#[derive(Debug, Serialize, ToSchema)]
pub struct Message {
    /// What happened.
    pub message: String,
}

/// Ends the caller's session and clears the cookie.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "browser", operation_id = "session_logout",
    responses((status = 200, body = Message), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn logout(req: HttpRequest, ctx: web::Data<Ctx>, auth: Auth) -> Result<HttpResponse> {
    sessions::logout(&ctx, &auth.principal, client_ip(&req)).await?;
    Ok(HttpResponse::Ok()
        .cookie(session_auth::clear_cookie(&ctx.settings))
        .json(Message {
            message: "Signed out".into(),
        }))
}

/// Extends the session's idle timeout (never past its absolute lifetime).
#[utoipa::path(post, path = "/api/session/refresh", tag = "browser", operation_id = "session_refresh",
    responses((status = 200, body = super::handshake::RefreshResponse), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn refresh(ctx: web::Data<Ctx>, auth: Auth) -> Result<HttpResponse> {
    let p = &auth.principal;
    let tenant_id = p.tenant_id.clone().unwrap_or_default();
    // A handshake session also keeps its unsealed keys alive; a browser session only its row.
    let (expires_at, absolute_expires_at) = if crate::services::handshake::keys_of(&ctx, p).is_ok()
    {
        let r = crate::services::handshake::refresh(&ctx, p).await?;
        (r.expires_at, r.absolute_expires_at)
    } else {
        let s = sessions::refresh(&ctx, p).await?;
        (s.idle_expires_at, s.expires_at)
    };
    Ok(HttpResponse::Ok().json(super::handshake::RefreshResponse {
        expires_at,
        absolute_expires_at,
        tenant_id,
    }))
}

/// The caller's active sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    /// Newest use first.
    pub sessions: Vec<sessions::SessionView>,
}

/// Lists the caller's active browser sessions.
#[utoipa::path(get, path = "/api/sessions", tag = "browser",
    responses((status = 200, body = SessionList), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn list_sessions(ctx: web::Data<Ctx>, auth: Auth) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(SessionList {
        sessions: sessions::list(&ctx, &auth.principal).await?,
    }))
}

/// Revokes one of the caller's sessions.
#[utoipa::path(delete, path = "/api/sessions/{id}", tag = "browser",
    params(("id" = i64, Path, description = "session id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn revoke_session(
    req: HttpRequest,
    ctx: web::Data<Ctx>,
    auth: Auth,
    id: web::Path<i64>,
) -> Result<HttpResponse> {
    sessions::revoke(&ctx, &auth.principal, id.into_inner(), client_ip(&req)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Revokes every session of the caller except the current one.
#[utoipa::path(post, path = "/api/sessions/revoke-others", tag = "browser",
    responses((status = 200, body = Message), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn revoke_other_sessions(
    req: HttpRequest,
    ctx: web::Data<Ctx>,
    auth: Auth,
) -> Result<HttpResponse> {
    let n = sessions::revoke_others(&ctx, &auth.principal, client_ip(&req)).await?;
    Ok(HttpResponse::Ok().json(Message {
        message: format!("{n} other session(s) revoked"),
    }))
}

/// The organization's brands.
#[derive(Debug, Serialize, ToSchema)]
pub struct BrandList {
    /// Oldest first.
    pub brands: Vec<portal::Brand>,
}

/// Lists the brands of the active organization.
#[utoipa::path(get, path = "/v1/brands", tag = "browser",
    responses((status = 200, body = BrandList), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn list_brands(ctx: web::Data<Ctx>, auth: Auth) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(BrandList {
        brands: portal::list_brands(&ctx, &auth.principal).await?,
    }))
}

/// `{name}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct BrandBody {
    /// Display name: 1–100 characters, at least one of them a letter or digit (for the slug).
    #[schema(min_length = 1, max_length = 100, pattern = "[A-Za-z0-9]")]
    pub name: String,
}

/// Creates a brand (organization owners and admins).
#[utoipa::path(post, path = "/v1/brands", tag = "browser", request_body = BrandBody,
    responses((status = 201, body = portal::Brand), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn create_brand(
    ctx: web::Data<Ctx>,
    auth: Auth,
    body: web::Json<BrandBody>,
) -> Result<HttpResponse> {
    let b = portal::create_brand(&ctx, &auth.principal, &body.name).await?;
    Ok(HttpResponse::Created().json(b))
}

/// `{customerEmail, customerName?, expiresIn}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortalTokenBody {
    /// The customer's address.
    #[schema(value_type = Email)]
    pub customer_email: String,
    /// The customer's name (at most 200 characters).
    #[schema(max_length = 200)]
    pub customer_name: Option<String>,
    /// Lifetime: a positive number and a unit, `s`, `m`, `h` or `d`, like `30m`, `24h`, `7d`
    /// (default `24h`, capped by `portal.max_expires_in_secs`).
    #[schema(pattern = "^0*[1-9][0-9]{0,12}[smhd]$")]
    pub expires_in: Option<String>,
}

/// A new portal token (shown once).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortalTokenAnswer {
    /// `pt_…`.
    pub access_token: String,
    /// Expiry, RFC 3339.
    pub expires_at: String,
}

fn rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// Issues a portal token for a customer of a brand. API keys only (sessions and portal tokens get 403).
#[utoipa::path(post, path = "/v1/brands/{brand_id}/portal/token", tag = "browser",
    params(("brand_id" = String, Path, description = "brand id")),
    request_body = PortalTokenBody,
    responses((status = 201, body = PortalTokenAnswer), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn portal_token(
    req: HttpRequest,
    ctx: web::Data<Ctx>,
    auth: Auth,
    brand_id: web::Path<String>,
    body: web::Json<PortalTokenBody>,
) -> Result<HttpResponse> {
    if auth.principal.kind != CredentialKind::ApiKey {
        return Err(Error::forbidden(
            "Portal tokens can only be issued with an API key",
        ));
    }
    let body = body.into_inner();
    let email = Email::parse(&body.customer_email)
        .map_err(|_| Error::bad_request("customerEmail is not a valid e-mail address"))?;
    let issued = portal::issue(
        &ctx,
        &auth.principal,
        &brand_id,
        &email,
        body.customer_name,
        body.expires_in.as_deref(),
        client_ip(&req),
    )
    .await?;
    Ok(
        HttpResponse::build(StatusCode::CREATED).json(PortalTokenAnswer {
            access_token: issued.token.expose().to_owned(),
            expires_at: rfc3339(issued.expires_at),
        }),
    )
}

/// The brand a portal customer belongs to.
#[derive(Debug, Serialize, ToSchema)]
pub struct BrandRef {
    /// Brand id.
    pub id: String,
    /// Brand name.
    pub name: String,
}

/// The customer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Customer {
    /// Address.
    pub email: String,
    /// Name.
    pub name: Option<String>,
}

/// Who a portal token stands for.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortalMe {
    /// Always `portal_token`.
    pub kind: &'static str,
    /// `customer:<brand>:<email>`.
    pub subject: String,
    /// The brand.
    pub brand: BrandRef,
    /// The organization.
    pub organization_id: String,
    /// The customer.
    pub customer: Customer,
    /// What the token may do.
    pub scopes: Vec<String>,
    /// Expiry, RFC 3339.
    pub expires_at: String,
}

/// Answers who a portal token is (portal tokens only).
#[utoipa::path(get, path = "/v1/portal/me", tag = "browser",
    responses((status = 200, body = PortalMe), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn portal_me(ctx: web::Data<Ctx>, auth: Auth) -> Result<HttpResponse> {
    let row = portal::me(&ctx, &auth.principal).await?;
    Ok(HttpResponse::Ok().json(PortalMe {
        kind: "portal_token",
        subject: auth.principal.subject.clone(),
        brand: BrandRef {
            id: row.brand_id,
            name: row.brand_name,
        },
        organization_id: row.tenant_id,
        customer: Customer {
            email: row.customer_email,
            name: row.customer_name,
        },
        scopes: auth.principal.scopes.clone(),
        expires_at: rfc3339(row.expires_at),
    }))
}

/// `?limit=&before=`.
#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    /// At most this many (1–1000, default 100).
    pub limit: Option<i64>,
    /// Only events with a smaller id (paging).
    pub before: Option<i64>,
}

/// Audit events, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditList {
    /// The events.
    pub events: Vec<AuditEvent>,
}

/// Security events, newest first (permission `audit.view`).
#[utoipa::path(get, path = "/api/audit", tag = "browser",
    params(("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "1–1000, default 100"),
        ("before" = Option<i64>, Query, description = "only ids below this")),
    responses((status = 200, body = AuditList), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn audit(
    ctx: web::Data<Ctx>,
    auth: Auth,
    q: web::Query<AuditQuery>,
) -> Result<HttpResponse> {
    auth.principal.require("audit.view")?;
    let events = ctx
        .audit
        .list(None, q.limit.unwrap_or(100), q.before)
        .await?;
    Ok(HttpResponse::Ok().json(AuditList { events }))
}
