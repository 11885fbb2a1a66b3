//! Middleware: security headers, the redacting request log, metrics, and the error normaliser
//! that turns any non-JSON error answer (actix's own 404/405/413…) into the JSON error shape.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::{DefaultHeaders, Next};
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

/// Security headers on every response (handlers may override `Cache-Control`).
pub fn security_headers(https: bool) -> DefaultHeaders {
    let mut h = DefaultHeaders::new()
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'",
        ))
        .add(("Cross-Origin-Opener-Policy", "same-origin"))
        .add(("Cross-Origin-Resource-Policy", "same-origin"))
        .add((
            "Permissions-Policy",
            "camera=(), microphone=(), geolocation=(), interest-cohort=()",
        ))
        .add((header::CACHE_CONTROL, "no-store"));
    if https {
        h = h.add((
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=63072000; includeSubDomains",
        ));
    }
    h
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

/// Logs method, redacted URI, client, status and latency — never a header value.
pub async fn request_log(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
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
    let res = next.call(req).await;
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

fn is_structured(res: &actix_web::HttpResponse<impl MessageBody>) -> bool {
    res.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json") || ct.starts_with("text/html"))
}

/// Replaces any error answer that is not JSON or HTML with the JSON error shape.
pub async fn normalize_errors<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    // Never clone the request before routing: actix needs sole ownership to match the path.
    // Handler and extractor errors arrive here as responses already.
    let res = next.call(req).await?;
    let status = res.status();
    if status.as_u16() < 400 || is_structured(res.response()) {
        return Ok(res.map_into_left_body());
    }
    let headers = res.headers().clone();
    let (req, _) = res.into_parts();
    Ok(ServiceResponse::new(req, rebuild(status, &headers)).map_into_right_body())
}

fn rebuild(status: StatusCode, old: &header::HeaderMap) -> actix_web::HttpResponse {
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
