//! The one middleware, [`envelope`]: the error normaliser that turns any non-JSON error answer
//! (actix's own 404/405/413…) into the JSON error shape, rate-limit headers, security headers,
//! metrics and the redacting request log.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::web;

use super::HttpState;
use crate::error::json_error;

/// Query parameters whose values are never logged.
const REDACTED_PARAMS: &[&str] = &[
    "dispatched_session",
    "token",
    "access_token",
    "refresh",
    "api_key",
    "key",
    "secret",
    "password",
    "code",
];

/// Request counters exposed at `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Responses by status class: 1xx..5xx.
    pub by_class: [AtomicU64; 5],
    /// Requests in flight.
    pub in_flight: AtomicU64,
    /// Sum of response times, microseconds.
    pub latency_us_sum: AtomicU64,
}

/// The policy for JSON and every other non-document answer: nothing may load or frame it.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// The policy for HTML pages (handlers may set a looser one, e.g. Swagger UI's inline styles).
const PAGE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";

/// Security headers every answer carries, unless its handler set the header itself.
const ALWAYS: [(HeaderName, HeaderValue); 5] = [
    (
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ),
    (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    (
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    ),
    (
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    ),
    (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
];

/// What only documents use, added to HTML answers.
const DOCUMENT: [(HeaderName, HeaderValue); 2] = [
    (
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    ),
    (
        HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), interest-cohort=()"),
    ),
];

/// Adds the security headers a handler did not set: the common set on every answer, a strict
/// `default-src 'none'` policy on JSON and other non-HTML answers, and the document policies
/// (page CSP, opener and permissions policies) on HTML. HSTS when served over HTTPS.
pub fn add_security_headers(headers: &mut header::HeaderMap, https: bool) {
    let html = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|ct| ct.as_bytes().starts_with(b"text/html"));
    let mut add = |name: HeaderName, value: HeaderValue| {
        if !headers.contains_key(&name) {
            headers.insert(name, value);
        }
    };
    for (name, value) in ALWAYS {
        add(name, value);
    }
    if html {
        add(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(PAGE_CSP),
        );
        for (name, value) in DOCUMENT {
            add(name, value);
        }
    } else {
        add(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(API_CSP),
        );
    }
    if https {
        add(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=63072000; includeSubDomains"),
        );
    }
}

/// The path and query as logged: values of sensitive parameters replaced.
pub fn redact_uri(path: &str, query: &str) -> String {
    if query.is_empty() {
        return path.to_owned();
    }
    let q: Vec<String> = query
        .split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if v.is_empty() {
                pair.to_owned()
            } else if REDACTED_PARAMS.iter().any(|r| k.eq_ignore_ascii_case(r)) {
                format!("{k}=[REDACTED]")
            } else {
                format!("{k}={v}")
            }
        })
        .collect();
    format!("{path}?{}", q.join("&"))
}

fn is_structured(res: &actix_web::HttpResponse<impl MessageBody>) -> bool {
    res.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json") || ct.starts_with("text/html"))
}

/// The one middleware around every route, in a single pass over the answer (each layer of
/// middleware costs a boxed future and a poll per request on the hot path):
///
/// 1. replaces any error answer that is not JSON or HTML (actix's own 404/405/413…) with the
///    JSON error shape;
/// 2. adds `X-RateLimit-*` to key-authenticated answers and frees the key's concurrency slot
///    ([`super::auth_extract`] left both in the request);
/// 3. adds the security headers ([`add_security_headers`]);
/// 4. counts the answer for `/metrics` and writes the request log line — method, redacted URI,
///    client, status and latency, never a header value.
///
/// A HEAD request is routed as the GET of its path (every path that serves GET serves HEAD, as
/// RFC 9110 asks of a general-purpose server; uptime monitors use it), except the GET routes
/// that change something ([`super::routes::GET_WITH_EFFECTS`]). actix's HTTP/1 codec decided
/// from the request line that the answer goes out without its body; the log line keeps `HEAD`.
pub async fn envelope<B: MessageBody + 'static>(
    mut req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let start = Instant::now();
    let state = req.app_data::<web::Data<HttpState>>().cloned();
    // Build the log line's parts only when the line will be written (the hot path runs at
    // tens of thousands of requests a second with the request log off).
    let logged = tracing::enabled!(target: "gatehouse::request", tracing::Level::INFO).then(|| {
        let client = state
            .as_ref()
            .and_then(|s| s.trusted.client_ip(req.request()))
            .map(|ip| ip.to_string())
            .unwrap_or_default();
        (
            req.method().clone(),
            redact_uri(req.path(), req.query_string()),
            client,
        )
    });
    if let Some(s) = &state {
        s.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
    }
    if req.method() == Method::HEAD && head_is_get(req.path()) {
        req.head_mut().method = Method::GET;
    }
    // Never clone the request before routing: actix needs sole ownership to match the path.
    // Handler and extractor errors arrive here as responses already.
    let res = next.call(req).await.map(|res| {
        let status = res.status();
        let mut res = if status.as_u16() < 400 || is_structured(res.response()) {
            res.map_into_left_body()
        } else {
            let headers = res.headers().clone();
            let (req, _) = res.into_parts();
            let head = head_is_get(req.path());
            ServiceResponse::new(req, rebuild(status, &headers, head)).map_into_right_body()
        };
        super::auth_extract::finish_rate_limit(&mut res);
        add_security_headers(res.headers_mut(), state.as_ref().is_some_and(|s| s.https));
        res
    });
    let status = match &res {
        Ok(r) => r.status(),
        Err(e) => e.as_response_error().status_code(),
    };
    let elapsed = start.elapsed();
    if let Some(s) = &state {
        s.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
        let class = (status.as_u16() / 100).clamp(1, 5) as usize - 1;
        s.metrics.by_class[class].fetch_add(1, Ordering::Relaxed);
        s.metrics
            .latency_us_sum
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }
    if let Some((method, uri, client)) = logged {
        tracing::info!(target: "gatehouse::request", %method, uri = %uri, client = %client,
            status = status.as_u16(), micros = elapsed.as_micros() as u64);
    }
    res
}

/// Whether a HEAD of `path` is served as its GET (see [`envelope`]).
fn head_is_get(path: &str) -> bool {
    !super::routes::GET_WITH_EFFECTS.contains(&path)
}

fn rebuild(
    status: StatusCode,
    old: &header::HeaderMap,
    head_is_get: bool,
) -> actix_web::HttpResponse {
    let message = match status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::METHOD_NOT_ALLOWED => "Method not allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "Request body is too large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "Unsupported media type",
        StatusCode::BAD_REQUEST => "Bad request",
        s if s.is_server_error() => "Internal server error",
        s => s.canonical_reason().unwrap_or("Error"),
    };
    let mut resp = json_error(status, message);
    for name in [header::ALLOW, header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
        if let Some(v) = old.get(&name) {
            resp.headers_mut().insert(name, v.clone());
        }
    }
    // A path that serves GET serves HEAD too (see `envelope`); actix lists only the routes.
    if let Some(allow) = old.get(header::ALLOW).and_then(|v| v.to_str().ok()) {
        if head_is_get && allow.split(", ").any(|m| m == "GET") {
            if let Ok(v) = HeaderValue::from_str(&format!("{allow}, HEAD")) {
                resp.headers_mut().insert(header::ALLOW, v);
            }
        }
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    #[test]
    fn redaction() {
        let u = super::redact_uri("/workflows/x", "dispatched_session=dst_run_abc&a=1");
        assert_eq!(u, "/workflows/x?dispatched_session=[REDACTED]&a=1");
        assert_eq!(super::redact_uri("/x", ""), "/x");
    }
}
