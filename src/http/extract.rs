//! Extractors: the client address (trusted-proxy aware), the presented credential, and a JSON
//! body that may be left out.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use actix_web::error::JsonPayloadError;
use actix_web::http::header;
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use serde::de::DeserializeOwned;

use crate::config::{cidr_contains, parse_cidr, Settings};
use crate::error::Error;

/// Peers whose `X-Forwarded-For` is believed.
#[derive(Debug, Default, Clone)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    /// Parses `trusted_proxies` (already validated).
    pub fn from_settings(s: &Settings) -> TrustedProxies {
        TrustedProxies(
            s.trusted_proxies
                .iter()
                .filter_map(|p| parse_cidr(p))
                .collect(),
        )
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| cidr_contains(*n, ip))
    }

    /// The client address: the peer, unless the peer is a trusted proxy, in which case the
    /// right-most address in `X-Forwarded-For` that is not itself a trusted proxy.
    pub fn client_ip(&self, req: &HttpRequest) -> Option<IpAddr> {
        let peer = req.peer_addr()?.ip();
        if !self.trusts(peer) {
            return Some(peer);
        }
        let xff: Vec<IpAddr> = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse().ok())
            .collect();
        Some(
            xff.iter()
                .rev()
                .find(|ip| !self.trusts(**ip))
                .copied()
                .unwrap_or(peer),
        )
    }
}

/// Where a credential was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `Authorization: Bearer …` or `Authorization: ApiKey …`.
    Authorization,
    /// `X-API-Key`.
    ApiKeyHeader,
    /// `Dispatched-Session` header.
    SessionHeader,
}

/// The raw credential a request carries in its headers, if any.
///
/// `Authorization: Bearer K`, `Authorization: ApiKey K`, `X-API-Key: K`, `Dispatched-Session: S`.
/// An `Authorization` header with another scheme counts as malformed.
pub fn credential_from_headers(
    headers: &header::HeaderMap,
) -> Result<Option<(String, Source)>, Error> {
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        let v = v.to_str().map_err(|_| Error::MalformedCredential)?.trim();
        let (scheme, rest) = v.split_once(' ').unwrap_or((v, ""));
        if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("apikey") {
            let token = rest.trim();
            if token.is_empty() {
                return Err(Error::MalformedCredential);
            }
            return Ok(Some((token.to_owned(), Source::Authorization)));
        }
        // Another scheme (e.g. Basic for the app behind a proxy) is not ours: fall through.
    }
    for (name, source) in [
        ("x-api-key", Source::ApiKeyHeader),
        ("dispatched-session", Source::SessionHeader),
    ] {
        if let Some(v) = headers.get(name) {
            let token = v.to_str().map_err(|_| Error::MalformedCredential)?.trim();
            if token.is_empty() {
                return Err(Error::MalformedCredential);
            }
            return Ok(Some((token.to_owned(), source)));
        }
    }
    Ok(None)
}

/// A JSON body that may be left out: no body (or only white space) gives `None`; any other body
/// must be a valid JSON `T` with a JSON content type and is refused as `web::Json` refuses it
/// (400, 413, 415). `Option<web::Json<T>>` would turn every invalid body into `None` as well, so
/// a mistyped field would silently mean "the default".
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned + 'static> FromRequest for OptionalJson<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let bytes = web::Bytes::from_request(req, payload);
        let req = req.clone();
        Box::pin(async move {
            // A body over the limit is actix's 413, which the envelope middleware words.
            let body = bytes.await?;
            if body.iter().all(u8::is_ascii_whitespace) {
                return Ok(OptionalJson(None));
            }
            // Anything else is what `web::Json` makes of it: its content-type check, its
            // limit, and `json_error_handler` for the failures (the app's `JsonConfig`).
            let json = web::Json::<T>::from_request(&req, &mut Payload::from(body)).await?;
            Ok(OptionalJson(Some(json.into_inner())))
        })
    }
}

/// Maps actix's JSON extractor failures to the JSON error shape (400, 413 or 415).
pub fn json_error_handler(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let (status, msg) = match &err {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => (
            actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
            "Request body is too large".to_owned(),
        ),
        JsonPayloadError::ContentType => (
            actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json".to_owned(),
        ),
        JsonPayloadError::Deserialize(e) if e.is_data() => (
            actix_web::http::StatusCode::BAD_REQUEST,
            format!("Invalid request body: {}", without_quoted(&e.to_string())),
        ),
        JsonPayloadError::Deserialize(e) => (
            actix_web::http::StatusCode::BAD_REQUEST,
            format!("Malformed JSON: {e}"),
        ),
        _ => (
            actix_web::http::StatusCode::BAD_REQUEST,
            "Invalid request body".to_owned(),
        ),
    };
    actix_web::error::InternalError::from_response(err, crate::error::json_error(status, &msg))
        .into()
}

/// Drops quoted values from a serde message: a misplaced secret must not echo back.
fn without_quoted(msg: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for c in msg.chars() {
        if c == '"' {
            if !inside {
                out.push_str("\"…\"");
            }
            inside = !inside;
        } else if !inside {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn quoted_values_are_dropped() {
        let m = super::without_quoted("invalid type: string \"hunter2\", expected u64 at line 1");
        assert!(!m.contains("hunter2"));
        assert!(m.contains("expected u64"));
    }
}
