//! The hot path: `POST /api/verify` for apps and `GET /api/auth/forward` for reverse proxies.
//!
//! Both use the one resolver, count the check against the key's hourly quota (no concurrency
//! slot: the answer is immediate) and never write to SQLite. Invalid credentials are counted per
//! client address; an address over `keys.invalid_attempts_per_minute` can still use keys the
//! cache knows, but nothing it sends reaches the database until its budget recovers.
//!
//! `/api/verify` answers 200 with `{"valid": true, …}` or `{"valid": false, "reason": …}`; a
//! key over its quota gets 429 with `reason: "rate_limited"` and `Retry-After`. Forward-auth
//! answers 200 with identity headers, 401 (no, bad or unknown credential — a proxy only passes
//! 401 and 403 through), 403 (a `?scope=` or `?mode=` requirement not met) or 429.

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::auth_extract::set_rate_limit_headers;
use super::extract::credential_from_headers;
use super::HttpState;
use crate::auth::ratelimit::RateLimitInfo;
use crate::auth::resolver::{self, Resolved};
use crate::auth::{CredentialKind, Principal};
use crate::error::{json_error, Error, ErrorBody, Result, MALFORMED_CREDENTIAL, NO_CREDENTIAL};
use crate::services::keys::{KeyIdentity, Rejection};
use crate::services::Ctx;

/// Registers `/api/verify` and `/api/auth/forward`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/verify").post(verify))
        .service(forward_methods(web::resource("/api/auth/forward"), forward))
        .service(forward_methods(
            web::resource("/api/auth/forward/{path:.*}"),
            forward_prefixed,
        ));
}

/// The methods forward-auth answers (HEAD too, as GET: see the envelope middleware). nginx,
/// Caddy and Traefik ask with GET whatever the client's method; Envoy's HTTP `ext_authz`
/// forwards the client's method, and would otherwise get 405 for every POST.
fn forward_methods<F, Args>(resource: actix_web::Resource, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args> + Clone,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    [
        actix_web::http::Method::GET,
        actix_web::http::Method::POST,
        actix_web::http::Method::PUT,
        actix_web::http::Method::PATCH,
        actix_web::http::Method::DELETE,
    ]
    .into_iter()
    .fold(resource, |r, m| r.route(web::method(m).to(handler.clone())))
}

/// Body of a verify call.
#[derive(Debug, Deserialize, ToSchema)]
pub struct VerifyRequest {
    /// The credential to check (API key or any other kind the resolver knows).
    pub token: String,
}

/// A valid credential: who it is, what it may do, how much quota is left.
#[derive(Debug, Serialize, ToSchema)]
pub struct Verified {
    /// Always `true`.
    pub valid: bool,
    /// The principal the one resolver made of the credential, field by field.
    #[serde(flatten)]
    pub principal: Principal,
    /// Quota state after this check (API keys only).
    pub ratelimit: Option<RateLimitInfo>,
}

/// A refused credential.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotVerified {
    /// Always `false`.
    pub valid: bool,
    /// `malformed`, `unknown`, `revoked`, `expired` or `rate_limited`.
    pub reason: &'static str,
    /// Quota state, when the reason is `rate_limited`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratelimit: Option<RateLimitInfo>,
}

/// What `POST /api/verify` answers with 200, for the OpenAPI document: a valid credential or
/// why it is not (the handler writes one of the two; this type only describes them).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum Verdict {
    /// `valid: true`.
    Verified(Verified),
    /// `valid: false`, with the reason.
    NotVerified(NotVerified),
}

/// The verify answer of an API key, written field by field from the cached key identity: the
/// bytes [`Verified`] serializes to with the key's principal (a unit test holds them equal),
/// without building the principal's strings or serde's per-field machinery on the hottest path.
/// Strings that need no escaping are copied as they are; any other goes through serde_json.
fn key_answer(k: &KeyIdentity, ratelimit: Option<RateLimitInfo>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let mut n = itoa::Buffer::new();
    out.extend_from_slice(b"{\"valid\":true,\"kind\":\"api_key\",\"subject\":\"user:");
    out.extend_from_slice(n.format(k.user_id).as_bytes());
    out.extend_from_slice(b"\",\"user_id\":");
    out.extend_from_slice(n.format(k.user_id).as_bytes());
    out.extend_from_slice(b",\"username\":");
    json_str(&mut out, &k.username);
    out.extend_from_slice(b",\"tenant_id\":");
    json_str(&mut out, &k.tenant_id);
    out.extend_from_slice(b",\"mode\":\"");
    out.extend_from_slice(k.mode.as_str().as_bytes());
    out.extend_from_slice(b"\",\"scopes\":");
    json_strs(&mut out, &k.scopes);
    out.extend_from_slice(if k.is_admin {
        b",\"is_admin\":true,\"permissions\":"
    } else {
        b",\"is_admin\":false,\"permissions\":"
    });
    json_strs(&mut out, &k.permissions);
    out.extend_from_slice(b",\"expires_at\":");
    match k.expires_at {
        Some(t) => out.extend_from_slice(n.format(t).as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"credential_id\":\"");
    out.extend_from_slice(n.format(k.key_id).as_bytes());
    out.extend_from_slice(b"\",\"ratelimit\":");
    match ratelimit {
        Some(i) => {
            out.extend_from_slice(b"{\"limit\":");
            out.extend_from_slice(n.format(i.limit).as_bytes());
            out.extend_from_slice(b",\"remaining\":");
            out.extend_from_slice(n.format(i.remaining).as_bytes());
            out.extend_from_slice(b",\"reset\":");
            out.extend_from_slice(n.format(i.reset).as_bytes());
            out.push(b'}');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.push(b'}');
    out
}

/// A JSON string: copied as it is when nothing in it needs escaping, else serde_json's.
fn json_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else if serde_json::to_writer(&mut *out, s).is_err() {
        // Writing to a Vec cannot fail; keep the document well-formed regardless.
        out.extend_from_slice(b"\"\"");
    }
}

fn json_strs(out: &mut Vec<u8>, v: &[String]) {
    out.push(b'[');
    for (i, s) in v.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json_str(out, s);
    }
    out.push(b']');
}

fn count(state: &HttpState, r: &Resolved) -> Option<RateLimitInfo> {
    r.key().map(|k| state.limits.check(k))
}

fn is_server_side(e: &Error) -> bool {
    matches!(e, Error::Internal(_) | Error::Unavailable(_))
}

/// Checks a credential: valid (with principal, scopes and quota) or why not.
#[utoipa::path(post, path = "/api/verify", tag = "verify", request_body = VerifyRequest,
    responses((status = 200, description = "Verdict: `Verified` or `NotVerified`", body = Verdict),
        (status = 400, body = ErrorBody), (status = 429, body = NotVerified)))]
pub async fn verify(
    req: HttpRequest,
    ctx: web::Data<Ctx>,
    state: web::Data<HttpState>,
    body: web::Json<VerifyRequest>,
) -> Result<HttpResponse> {
    let ip = state.trusted.client_ip(&req);
    let blocked = state.limits.address_blocked(ip);
    match resolver::resolve_full(&ctx, body.token.trim(), blocked).await {
        Ok(r) => {
            let info = count(&state, &r);
            if let Some(i) = info.filter(RateLimitInfo::limited) {
                let mut resp = HttpResponse::TooManyRequests().json(NotVerified {
                    valid: false,
                    reason: "rate_limited",
                    ratelimit: Some(i),
                });
                set_rate_limit_headers(resp.headers_mut(), &i);
                return Ok(resp);
            }
            let mut resp = match &r {
                // A static value: `ContentType::json()` formats the MIME type and copies it.
                Resolved::ApiKey(key) => HttpResponse::Ok()
                    .insert_header((
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    ))
                    .body(key_answer(key, info)),
                Resolved::Other(_) => HttpResponse::Ok().json(Verified {
                    valid: true,
                    principal: r.into_principal(),
                    ratelimit: info,
                }),
            };
            if let Some(i) = &info {
                set_rate_limit_headers(resp.headers_mut(), i);
            }
            Ok(resp)
        }
        Err(Rejection::Throttled(retry_after)) => Err(Error::RateLimited { retry_after }),
        Err(Rejection::Failed(e)) if is_server_side(&e) => Err(e),
        Err(rejection) => {
            let _ = state.limits.invalid_attempt(ip);
            Ok(HttpResponse::Ok().json(NotVerified {
                valid: false,
                reason: rejection.reason(),
                ratelimit: None,
            }))
        }
    }
}

/// Requirements a proxy can add to the forward-auth URL. On the prefixed form
/// (`/api/auth/forward/{path}`) the query is the original request's and is not read: the
/// proxy sets the `X-Gatehouse-Require-Scope` / `-Mode` headers instead (both forms read them).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ForwardQuery {
    /// Comma-separated scopes the credential must hold (a key without scopes holds all).
    pub scope: Option<String>,
    /// `live` or `test`: the credential must be of this mode.
    #[param(value_type = Option<crate::services::types::Mode>)]
    pub mode: Option<String>,
}

/// Header forms of the `?mode=` / `?scope=` requirements (the only form on the prefixed path).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // describes the headers for the OpenAPI document
struct RequireHeaders {
    /// `live` or `test`. Every value sent must match: requirements only add up, so a client's
    /// own copy of the header can narrow its access, never widen it.
    #[param(rename = "X-Gatehouse-Require-Mode")]
    mode: Option<String>,
    /// Comma-separated scopes the credential must hold; every value sent counts.
    #[param(rename = "X-Gatehouse-Require-Scope")]
    scope: Option<String>,
}

/// Every requirement of one forward-auth request: from the query and from every copy of the
/// requirement headers.
struct Requirements<'a> {
    modes: Vec<&'a str>,
    scopes: Vec<&'a str>,
}

impl<'a> Requirements<'a> {
    /// `Err` when a requirement header is not readable text (fail closed).
    fn of(req: &'a HttpRequest, q: &'a ForwardQuery) -> std::result::Result<Self, ()> {
        let header = |name: &str| -> std::result::Result<Vec<&'a str>, ()> {
            req.headers()
                .get_all(name)
                .map(|v| v.to_str().map_err(|_| ()))
                .collect()
        };
        let modes = q
            .mode
            .as_deref()
            .into_iter()
            .chain(header("x-gatehouse-require-mode")?)
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .collect();
        let scopes = q
            .scope
            .as_deref()
            .into_iter()
            .chain(header("x-gatehouse-require-scope")?)
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        Ok(Requirements { modes, scopes })
    }
}

fn header_str<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A browser page navigation (not fetch/XHR, not asking for JSON).
fn is_navigation(req: &HttpRequest) -> bool {
    header_str(req, "sec-fetch-mode") == Some("navigate")
        && !header_str(req, "accept").is_some_and(|a| a.contains("application/json"))
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The URL the user was going to, from the proxy's headers (Traefik, Caddy, nginx conventions).
fn original_url(req: &HttpRequest) -> Option<String> {
    if let Some(u) = header_str(req, "x-original-url") {
        return Some(u.to_owned());
    }
    let proto = header_str(req, "x-forwarded-proto").unwrap_or("https");
    let Some(host) = header_str(req, "x-forwarded-host") else {
        // The prefixed form (Envoy's `ext_authz` with `path_prefix`): the request keeps the
        // original authority, path (after the prefix) and query.
        let tail = req.match_info().get("path")?;
        let host = header_str(req, "host")?;
        let query = req.query_string();
        let sep = if query.is_empty() { "" } else { "?" };
        return Some(format!("{proto}://{host}/{tail}{sep}{query}"));
    };
    let uri = header_str(req, "x-forwarded-uri")
        .or_else(|| header_str(req, "x-original-uri"))
        .unwrap_or("/");
    Some(format!("{proto}://{host}{uri}"))
}

/// The redirect to `keys.forward_auth_login_url` (with `rd=` the original URL) for a GET or
/// HEAD browser page navigation, when the login URL is set. A redirected form POST would lose
/// its body, and fetch/XHR want a status, not a page.
fn sign_in_redirect(req: &HttpRequest, ctx: &Ctx) -> Option<HttpResponse> {
    let login = &ctx.settings.keys.forward_auth_login_url;
    if login.is_empty() || req.method() != actix_web::http::Method::GET || !is_navigation(req) {
        return None;
    }
    let target = match original_url(req) {
        Some(u) => format!(
            "{login}{}rd={}",
            if login.contains('?') { '&' } else { '?' },
            percent_encode(&u)
        ),
        None => login.clone(),
    };
    Some(
        HttpResponse::Found()
            .insert_header((header::LOCATION, target))
            .finish(),
    )
}

fn deny(status: StatusCode, message: &str, info: Option<&RateLimitInfo>) -> HttpResponse {
    let mut resp = json_error(status, message);
    if let Some(i) = info {
        set_rate_limit_headers(resp.headers_mut(), i);
    }
    resp
}

fn forward_credential(req: &HttpRequest) -> std::result::Result<Option<String>, ()> {
    // X-API-Key first, so the app's own `Authorization` header can pass through untouched.
    if let Some(v) = req.headers().get("x-api-key") {
        return match v.to_str().map(str::trim) {
            Ok(t) if !t.is_empty() => Ok(Some(t.to_owned())),
            _ => Err(()),
        };
    }
    credential_from_headers(req.headers())
        .map(|c| c.map(|(t, _)| t))
        .map_err(|_| ())
}

/// Forward-auth for nginx `auth_request`, Traefik `forwardAuth` and Caddy `forward_auth` (any
/// of the methods a proxy may forward; the answer does not depend on it, but for the sign-in
/// redirect, which only a GET gets).
#[utoipa::path(method(get, post, put, patch, delete), path = "/api/auth/forward", tag = "verify",
    params(ForwardQuery, RequireHeaders),
    responses((status = 200, description = "Allowed; identity in `X-Gatehouse-*` headers"),
        (status = 302, description = "Browser navigation without a credential, when `keys.forward_auth_login_url` is set"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn forward(
    req: HttpRequest,
    ctx: web::Data<Ctx>,
    state: web::Data<HttpState>,
    q: web::Query<ForwardQuery>,
) -> HttpResponse {
    check(req, ctx, state, q.into_inner()).await
}

/// The forward-auth check of both forms, with the requirements of the query (none on the
/// prefixed form).
async fn check(
    req: HttpRequest,
    ctx: web::Data<Ctx>,
    state: web::Data<HttpState>,
    q: ForwardQuery,
) -> HttpResponse {
    // A header credential first; else the browser's session cookie (it reaches here when the
    // app shares the host with Gatehouse's sign-in).
    let (raw, from_cookie) = match forward_credential(&req) {
        Ok(Some(raw)) => (raw, false),
        Ok(None) => match super::session_auth::cookie_token(&req, &ctx.settings) {
            Some(token) => (token, true),
            None => {
                return sign_in_redirect(&req, &ctx)
                    .unwrap_or_else(|| deny(StatusCode::UNAUTHORIZED, NO_CREDENTIAL, None))
            }
        },
        Err(()) => return deny(StatusCode::UNAUTHORIZED, MALFORMED_CREDENTIAL, None),
    };
    // The cookie rides along on whatever the browser sends: a state-changing request another
    // site made it send (a sibling subdomain is "same-site" to SameSite=Lax) is refused.
    if from_cookie
        && super::session_auth::is_unsafe(req.method())
        && super::session_auth::sent_by_another_site(&req)
    {
        return deny(StatusCode::FORBIDDEN, "Cross-site request refused", None);
    }
    let ip = state.trusted.client_ip(&req);
    let blocked = state.limits.address_blocked(ip);
    let resolved = match resolver::resolve_full(&ctx, &raw, blocked).await {
        Ok(r) => r,
        Err(Rejection::Throttled(retry_after)) => {
            return actix_web::ResponseError::error_response(&Error::RateLimited { retry_after })
        }
        Err(Rejection::Failed(e)) if is_server_side(&e) => {
            return actix_web::ResponseError::error_response(&e)
        }
        Err(rejection) => {
            let _ = state.limits.invalid_attempt(ip);
            // An ended or expired browser session: back to sign in, as with no cookie.
            if from_cookie {
                if let Some(redirect) = sign_in_redirect(&req, &ctx) {
                    return redirect;
                }
            }
            let message = match Error::from(rejection) {
                Error::MalformedCredential => MALFORMED_CREDENTIAL.to_owned(),
                other => other.public_message(),
            };
            return deny(StatusCode::UNAUTHORIZED, &message, None);
        }
    };
    let info = count(&state, &resolved);
    if let Some(i) = info.filter(RateLimitInfo::limited) {
        return deny(
            StatusCode::TOO_MANY_REQUESTS,
            crate::error::RATE_LIMITED,
            Some(&i),
        );
    }
    // What the identity headers and requirements need, borrowed from the cached key identity
    // or the principal of any other kind.
    let (kind, mode, scopes, subject, tenant, user) = match &resolved {
        Resolved::ApiKey(k) => (
            CredentialKind::ApiKey,
            k.mode,
            k.scopes.as_slice(),
            std::borrow::Cow::Owned(format!("user:{}", k.user_id)),
            k.tenant_id.as_str(),
            k.username.as_str(),
        ),
        Resolved::Other(p) => (
            p.kind,
            p.mode,
            p.scopes.as_slice(),
            std::borrow::Cow::Borrowed(p.subject.as_str()),
            p.tenant_id.as_deref().unwrap_or(""),
            p.username.as_deref().unwrap_or(""),
        ),
    };
    let Ok(required) = Requirements::of(&req, &q) else {
        return deny(
            StatusCode::FORBIDDEN,
            "A X-Gatehouse-Require-* header is not readable",
            info.as_ref(),
        );
    };
    if let Some(m) = required.modes.iter().find(|m| **m != mode.as_str()) {
        return deny(
            StatusCode::FORBIDDEN,
            &format!("This resource requires a {m}-mode credential"),
            info.as_ref(),
        );
    }
    if !scopes.is_empty() {
        if let Some(missing) = required
            .scopes
            .iter()
            .find(|s| !scopes.iter().any(|have| have == *s))
        {
            return deny(
                StatusCode::FORBIDDEN,
                &format!("The credential lacks the scope `{missing}`"),
                info.as_ref(),
            );
        }
    }
    let mut resp = HttpResponse::Ok().finish();
    let h = resp.headers_mut();
    let scopes = scopes.join(",");
    for (name, value) in [
        ("x-gatehouse-subject", subject.as_ref()),
        ("x-gatehouse-tenant", tenant),
        ("x-gatehouse-kind", kind.as_str()),
        ("x-gatehouse-mode", mode.as_str()),
        ("x-gatehouse-scopes", scopes.as_str()),
        ("x-gatehouse-user", user),
    ] {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(HeaderName::from_static(name), v);
        }
    }
    if let Some(i) = &info {
        set_rate_limit_headers(h, i);
    }
    resp
}

/// Forward-auth under a path prefix, for Envoy's HTTP `ext_authz` (`path_prefix:
/// /api/auth/forward`): Envoy sends the client's method and appends the original path and
/// query. Answers as [`forward`]; requirements come only from the `X-Gatehouse-Require-*`
/// headers, since the query is the original request's.
#[utoipa::path(method(get, post, put, patch, delete), path = "/api/auth/forward/{path}",
    tag = "verify", params(("path" = String, Path, description = "The original request's path, without its leading `/`"), RequireHeaders),
    responses((status = 200, description = "Allowed; identity in `X-Gatehouse-*` headers"),
        (status = 302, description = "Browser navigation without a credential, when `keys.forward_auth_login_url` is set"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn forward_prefixed(
    req: HttpRequest,
    ctx: web::Data<Ctx>,
    state: web::Data<HttpState>,
) -> HttpResponse {
    check(req, ctx, state, ForwardQuery::default()).await
}

/// The verify endpoints' part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(verify, forward, forward_prefixed),
    components(schemas(VerifyRequest, Verdict, Verified, NotVerified, RateLimitInfo))
)]
pub struct VerifyApi;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::keys::KeyMode;

    #[test]
    fn key_answer_is_the_generic_answer() {
        let key = |mode, is_admin, expires_at, username: &str, scopes: &[&str]| KeyIdentity {
            key_id: 42,
            user_id: 7,
            username: username.into(),
            tenant_id: "ten_1".into(),
            mode,
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            is_admin,
            permissions: if is_admin {
                vec!["users:read".into(), "keys.manage".into()]
            } else {
                Vec::new()
            },
            expires_at,
            plan: "free".into(),
            rate: Default::default(),
        };
        let keys = [
            key(
                KeyMode::Test,
                true,
                Some(1_900_000_000),
                "ana \"q\"",
                &["read", "write"],
            ),
            key(KeyMode::Live, false, None, "bob", &[]),
            key(
                KeyMode::Live,
                true,
                None,
                "c\\d\u{1}é\u{2028}",
                &["a\"b", "ü"],
            ),
        ];
        let info = RateLimitInfo {
            limit: 100,
            remaining: 99,
            reset: 1_800_000_000,
            retry_after: 0,
        };
        for key in &keys {
            for ratelimit in [Some(info), None] {
                let fast = String::from_utf8(key_answer(key, ratelimit)).unwrap();
                let generic = serde_json::to_string(&Verified {
                    valid: true,
                    principal: resolver::key_principal(key),
                    ratelimit,
                })
                .unwrap();
                assert_eq!(fast, generic);
            }
        }
    }
}
