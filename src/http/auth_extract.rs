//! The [`Authenticated`] extractor and the middleware that puts `X-RateLimit-*` on responses.
//!
//! `Authenticated` reads the credential from the headers (`Authorization: Bearer|ApiKey`,
//! `X-API-Key`, `Dispatched-Session`) — or, without one, the browser session cookie, with the
//! CSRF checks of [`super::session_auth::Auth`] on state changes — resolves it with the one
//! resolver, and for an API key
//! counts the request against the key's hourly quota and takes a concurrency slot for the
//! request's lifetime. The rate-limit state is left in the request's extensions, so
//! [`finish_rate_limit`] can add the headers to whatever answer the handler gives — success,
//! 403, 404 or the 429 itself — and release the slot once the answer is ready.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::{Payload, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};

use super::extract::credential_from_headers;
use super::HttpState;
use crate::auth::ratelimit::{ConcurrencyGuard, RateLimitInfo};
use crate::auth::{resolver, Principal};
use crate::error::{Error, NO_CREDENTIAL};
use crate::services::Ctx;

/// A request made with a valid credential; for API keys, within the key's rate limits.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

/// Marks a request authenticated by the session cookie rather than a header credential.
#[derive(Debug, Clone, Copy)]
pub struct ViaCookie;

/// Whether the session cookie (not a header) authenticated this request.
pub fn via_cookie(req: &HttpRequest) -> bool {
    req.extensions().get::<ViaCookie>().is_some()
}

impl FromRequest for Authenticated {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { authenticate(&req).await.map_err(Into::into) })
    }
}

async fn authenticate(req: &HttpRequest) -> Result<Authenticated, Error> {
    let ctx = req
        .app_data::<web::Data<Ctx>>()
        .ok_or_else(|| Error::internal("service context missing"))?
        .clone();
    let state = req
        .app_data::<web::Data<HttpState>>()
        .ok_or_else(|| Error::internal("http state missing"))?
        .clone();
    let Some((raw, _)) = credential_from_headers(req.headers())? else {
        // No header credential: the browser session cookie, CSRF-checked on state changes.
        let auth = super::session_auth::Auth::extract(req)
            .await
            .map_err(|e| match e {
                Error::Unauthenticated(_) => Error::unauthenticated(NO_CREDENTIAL),
                other => other,
            })?;
        req.extensions_mut().insert(ViaCookie);
        return Ok(Authenticated(auth.principal));
    };
    let resolved = resolver::resolve_full(&ctx, &raw, None)
        .await
        .map_err(Error::from)?;
    if let Some(key) = resolved.key() {
        let info = state.limits.check(key);
        req.extensions_mut().insert(info);
        if info.limited() {
            return Err(Error::RateLimited {
                retry_after: info.retry_after,
            });
        }
        let guard = state.limits.enter(key)?;
        req.extensions_mut().insert(guard);
    }
    Ok(Authenticated(resolved.into_principal()))
}

/// Sets `X-RateLimit-Limit`, `-Remaining` and `-Reset` from a check's result.
pub fn set_rate_limit_headers(headers: &mut HeaderMap, info: &RateLimitInfo) {
    // Names built at compile time: `from_static` at run time checks every byte, on every answer.
    const LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
    const REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
    const RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
    for (name, value) in [
        (LIMIT, u64::from(info.limit)),
        (REMAINING, u64::from(info.remaining)),
        (RESET, info.reset),
    ] {
        headers.insert(name, HeaderValue::from(value));
    }
    if info.limited() {
        headers.insert(
            actix_web::http::header::RETRY_AFTER,
            HeaderValue::from(info.retry_after),
        );
    }
}

/// Adds the rate-limit headers to a key-authenticated answer and frees its concurrency slot
/// (called by [`super::middleware::envelope`] on every answer).
pub fn finish_rate_limit<B>(res: &mut ServiceResponse<B>) {
    let info = res.request().extensions().get::<RateLimitInfo>().copied();
    drop(res.request().extensions_mut().remove::<ConcurrencyGuard>());
    if let Some(info) = info {
        set_rate_limit_headers(res.headers_mut(), &info);
    }
}
