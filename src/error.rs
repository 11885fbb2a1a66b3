//! The one operation error type, and its single mapping to HTTP.
//!
//! Services return [`Error`]; they know nothing about HTTP. The [`actix_web::ResponseError`]
//! implementation here is the only place a status code and the JSON error shape
//! `{"error": {"code": N, "message": "…"}}` are chosen. The user-facing message is kept apart
//! from the logged detail: internal errors answer a generic 500 and log what went wrong.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// Message for a request that carries no credential (a contract text).
pub const NO_CREDENTIAL: &str = "No Bearer token provided";
/// Message for a credential that cannot even be parsed (a contract text).
pub const MALFORMED_CREDENTIAL: &str = "Failed to verify api_key or token";
/// Message for a rate-limited request (a contract text).
pub const RATE_LIMITED: &str = "Rate limit exceeded";

/// Everything an operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No credential, or one that is unknown, revoked or expired (401).
    #[error("{0}")]
    Unauthenticated(String),
    /// A credential that is malformed: bad prefix, checksum, undecodable (400).
    #[error("{MALFORMED_CREDENTIAL}")]
    MalformedCredential,
    /// Authenticated, but not allowed; the message says what is missing (403).
    #[error("{0}")]
    Forbidden(String),
    /// The input is invalid; the message says how (400).
    #[error("{0}")]
    BadRequest(String),
    /// The thing asked for does not exist, or is not visible to the caller (404).
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with existing state, e.g. a duplicate name (409).
    #[error("{0}")]
    Conflict(String),
    /// Too many requests; retry after the given number of seconds (429).
    #[error("{RATE_LIMITED}")]
    RateLimited {
        /// Seconds until a retry may succeed.
        retry_after: u64,
    },
    /// The server is overloaded or a dependency is down; retry later (503).
    #[error("{0}")]
    Unavailable(String),
    /// Anything else. The detail is logged, never sent (500).
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result alias used across services.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An internal error from anything displayable; the text is only logged.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Error::Internal(detail.to_string())
    }

    /// A job refused by the bounded queue of a thread pool (the read pool, the hash pool): a
    /// full queue is a 503 with `busy` (the request may retry), stopped threads an internal
    /// error naming the pool.
    pub fn from_queue<J>(e: crossbeam_channel::TrySendError<J>, busy: &str, pool: &str) -> Self {
        match e {
            crossbeam_channel::TrySendError::Full(_) => Error::Unavailable(busy.to_owned()),
            crossbeam_channel::TrySendError::Disconnected(_) => {
                Error::internal(format!("the {pool} has stopped"))
            }
        }
    }

    /// A 401 with the given message.
    pub fn unauthenticated(msg: impl Into<String>) -> Self {
        Error::Unauthenticated(msg.into())
    }

    /// A 400 with the given message.
    pub fn bad_request(msg: impl Into<String>) -> Self {
        Error::BadRequest(msg.into())
    }

    /// A 403 with the given message.
    pub fn forbidden(msg: impl Into<String>) -> Self {
        Error::Forbidden(msg.into())
    }

    /// A 404 with the given message.
    pub fn not_found(msg: impl Into<String>) -> Self {
        Error::NotFound(msg.into())
    }

    /// The message a client sees.
    pub fn public_message(&self) -> String {
        match self {
            Error::Internal(_) => "Internal server error".to_owned(),
            other => other.to_string(),
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::DatabaseBusy
                    || f.code == rusqlite::ErrorCode::DatabaseLocked =>
            {
                Error::Unavailable("The database is busy, retry shortly".to_owned())
            }
            other => Error::Internal(format!("sqlite: {other}")),
        }
    }
}

impl From<r2d2::Error> for Error {
    fn from(e: r2d2::Error) -> Self {
        Error::Unavailable(format!("database pool: {e}"))
    }
}

/// The JSON error body: `{"error": {"code": N, "message": "…"}}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error itself.
    pub error: ErrorDetail,
}

/// Inner part of [`ErrorBody`].
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// The HTTP status code, repeated.
    pub code: u16,
    /// A human-readable message.
    pub message: String,
}

/// Builds the JSON error response for a status and message.
pub fn json_error(status: StatusCode, message: &str) -> HttpResponse {
    let mut resp = HttpResponse::build(status).json(ErrorBody {
        error: ErrorDetail {
            code: status.as_u16(),
            message: message.to_owned(),
        },
    });
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Bearer realm="gatehouse", ApiKey realm="gatehouse""#),
        );
    }
    resp
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        match self {
            Error::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Error::MalformedCredential | Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        match self {
            Error::Internal(detail) => tracing::error!(%detail, "internal error"),
            Error::Unavailable(detail) => tracing::warn!(%detail, "unavailable"),
            _ => {}
        }
        let message = match self {
            Error::Unavailable(_) => "Service temporarily unavailable, retry shortly".to_owned(),
            other => other.public_message(),
        };
        let mut resp = json_error(status, &message);
        if let Error::RateLimited { retry_after } = self {
            if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}
