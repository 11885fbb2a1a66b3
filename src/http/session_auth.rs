//! Who is calling, for the browser-facing routes: a header credential or the session cookie,
//! resolved by the one resolver — plus the cookie's flags and CSRF protection.
//!
//! Requests authenticated by a header credential (`Authorization`, `X-API-Key`,
//! `Dispatched-Session`) cannot be forged by another site, so they need no CSRF token.
//! A state-changing request authenticated by the cookie must pass two checks:
//! `Sec-Fetch-Site` (when sent) must be `same-origin` or `none` and `Origin` (when sent) must be
//! ours; and it must carry the session's CSRF token — in the `X-CSRF-Token` header for
//! [`Auth`] (fetch from our JS), or in the `csrf` form field for [`FormAuth`] (HTML forms),
//! whose principal is only reachable through [`FormAuth::verify`].

use std::future::Future;
use std::pin::Pin;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::http::{header, Method};
use actix_web::{web, FromRequest, HttpRequest};

use super::extract::credential_from_headers;
use crate::auth::{resolver, Principal};
use crate::config::Settings;
use crate::error::{Error, Result, NO_CREDENTIAL};
use crate::services::{sessions, Ctx};

/// Header carrying the CSRF token on fetch requests.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The session cookie's name: `__Host-gatehouse_session` on https, `gatehouse_session` on http.
pub fn cookie_name(s: &Settings) -> &'static str {
    if s.is_https() {
        "__Host-gatehouse_session"
    } else {
        "gatehouse_session"
    }
}

/// The session cookie: HttpOnly, SameSite=Lax, Path=/, Secure on https; lives as long as the
/// session's absolute lifetime (the server enforces the idle timeout).
pub fn session_cookie(s: &Settings, token: &str) -> Cookie<'static> {
    Cookie::build(cookie_name(s), token.to_owned())
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(s.is_https())
        .path("/")
        .max_age(actix_web::cookie::time::Duration::seconds(
            i64::try_from(s.session.absolute_timeout_secs).unwrap_or(86_400),
        ))
        .finish()
}

/// A cookie that removes the session cookie.
pub fn clear_cookie(s: &Settings) -> Cookie<'static> {
    let mut c = session_cookie(s, "");
    c.make_removal();
    c
}

/// The session token from the cookie, if any.
pub fn cookie_token(req: &HttpRequest, s: &Settings) -> Option<String> {
    req.cookie(cookie_name(s))
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty())
}

/// Whether a request method changes state (the ones CSRF checks guard).
pub fn is_unsafe(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Whether the browser says another site (or a sibling subdomain) made it send this request:
/// `Sec-Fetch-Site` present and neither `same-origin` nor `none`.
pub fn sent_by_another_site(req: &HttpRequest) -> bool {
    req.headers().get("sec-fetch-site").is_some_and(|site| {
        let site = site.to_str().unwrap_or("");
        site != "same-origin" && site != "none"
    })
}

/// Refuses a request another site made the browser send (`Sec-Fetch-Site`, `Origin`).
pub fn same_site_check(req: &HttpRequest, s: &Settings) -> Result<()> {
    if sent_by_another_site(req) {
        return Err(Error::forbidden("Cross-site request refused"));
    }
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("").trim_end_matches('/');
        let public = s.public_url.trim_end_matches('/');
        let public_origin = public
            .split_once("://")
            .map(|(scheme, rest)| format!("{scheme}://{}", rest.split('/').next().unwrap_or("")))
            .unwrap_or_default();
        let host = req.connection_info().host().to_owned();
        let same_host = origin
            .split_once("://")
            .is_some_and(|(_, h)| h.eq_ignore_ascii_case(&host));
        if !(origin.eq_ignore_ascii_case(&public_origin) || same_host) {
            return Err(Error::forbidden("Cross-site request refused"));
        }
    }
    Ok(())
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Auth {
    /// Who it is.
    pub principal: Principal,
    /// The session token when the cookie authenticated the request (for the CSRF token).
    cookie_token: Option<crate::crypto::tokens::SecretToken>,
}

impl Auth {
    /// Whether the session cookie (not a header) authenticated the request.
    pub fn via_cookie(&self) -> bool {
        self.cookie_token.is_some()
    }

    /// The CSRF token pages embed, for cookie sessions.
    pub fn csrf(&self, ctx: &Ctx) -> String {
        self.cookie_token
            .as_ref()
            .map(|t| sessions::csrf_token(ctx, t.expose()))
            .unwrap_or_default()
    }
}

async fn authenticate(req: &HttpRequest) -> Result<Auth> {
    let ctx = req
        .app_data::<web::Data<Ctx>>()
        .ok_or_else(|| Error::internal("no context"))?;
    if let Some((raw, _)) = credential_from_headers(req.headers())? {
        let principal = resolver::resolve(ctx, &raw).await?;
        return Ok(Auth {
            principal,
            cookie_token: None,
        });
    }
    let Some(raw) = cookie_token(req, &ctx.settings) else {
        return Err(Error::unauthenticated(NO_CREDENTIAL));
    };
    if !raw.starts_with(sessions::PREFIX) {
        return Err(Error::MalformedCredential);
    }
    let principal = resolver::resolve(ctx, &raw).await?;
    Ok(Auth {
        principal,
        cookie_token: Some(crate::crypto::tokens::SecretToken::new(raw)),
    })
}

impl FromRequest for Auth {
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Auth>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let auth = authenticate(&req).await?;
            if auth.via_cookie() && is_unsafe(req.method()) {
                let ctx = req
                    .app_data::<web::Data<Ctx>>()
                    .ok_or_else(|| Error::internal("no context"))?;
                same_site_check(&req, &ctx.settings)?;
                let presented = req
                    .headers()
                    .get(CSRF_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let ok = auth
                    .cookie_token
                    .as_ref()
                    .is_some_and(|t| sessions::csrf_ok(ctx, t.expose(), presented));
                if !ok {
                    return Err(Error::forbidden(
                        "Missing or invalid CSRF token (send the X-CSRF-Token header)",
                    ));
                }
            }
            Ok(auth)
        })
    }
}

/// An authenticated caller posting an HTML form: the principal is released by
/// [`FormAuth::verify`] once the form's `csrf` field checks out.
#[derive(Debug)]
pub struct FormAuth(Auth);

impl FormAuth {
    /// Checks the form's CSRF token (cookie sessions) and yields the caller.
    pub fn verify(self, ctx: &Ctx, presented: &str) -> Result<Auth> {
        if let Some(t) = &self.0.cookie_token {
            if !sessions::csrf_ok(ctx, t.expose(), presented) {
                return Err(Error::forbidden(
                    "This form has expired or did not come from this site; reload the page and try again",
                ));
            }
        }
        Ok(self.0)
    }
}

impl FromRequest for FormAuth {
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<FormAuth>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let auth = authenticate(&req).await?;
            if auth.via_cookie() && is_unsafe(req.method()) {
                let ctx = req
                    .app_data::<web::Data<Ctx>>()
                    .ok_or_else(|| Error::internal("no context"))?;
                same_site_check(&req, &ctx.settings)?;
            }
            Ok(FormAuth(auth))
        })
    }
}
