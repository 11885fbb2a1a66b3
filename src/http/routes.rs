//! The route table: every endpoint Gatehouse serves, in one place.

use actix_web::{web, HttpResponse};

use super::{accounts, handshake, handshake_pages, health, jwks, openapi};
use crate::error::{Error, Result};

/// GET routes that change something (`GET /keys/new` creates a key: the agent API's
/// contract). Every other path that serves GET serves HEAD as its GET without the body
/// ([`super::middleware::envelope`]); these do not, or a HEAD would make a key no one sees.
pub const GET_WITH_EFFECTS: &[&str] = &["/keys/new"];

/// Every JSON (and text) endpoint, as `(method, path)` in OpenAPI spelling. The OpenAPI test
/// checks each one is served and documented, and that the document lists nothing else. HTML
/// pages (Swagger UI) are not part of it. Paths ending in `/` are also served without it.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/metrics"),
    ("get", "/api/openapi.json"),
    ("get", "/.well-known/jwks.json"),
    ("post", "/api/accounts/token/"),
    ("post", "/api/accounts/auth/login/"),
    ("post", "/api/accounts/token/refresh/"),
    ("post", "/api/accounts/auth/logout/"),
    ("get", "/api/accounts/users/"),
    ("post", "/api/accounts/users/"),
    ("get", "/api/accounts/users/{id}/"),
    ("patch", "/api/accounts/users/{id}/"),
    ("delete", "/api/accounts/users/{id}/"),
    ("get", "/api/accounts/permissions/"),
    ("post", "/v1/auth/magic-link"),
    ("post", "/v1/auth/verify"),
    ("get", "/v1/auth/session"),
    ("post", "/v1/auth/session/organization"),
    ("post", "/v1/auth/logout"),
    ("post", "/api/session/refresh"),
    ("get", "/api/sessions"),
    ("delete", "/api/sessions/{id}"),
    ("post", "/api/sessions/revoke-others"),
    ("get", "/v1/brands"),
    ("post", "/v1/brands"),
    ("post", "/v1/brands/{brand_id}/portal/token"),
    ("get", "/v1/portal/me"),
    ("get", "/api/audit"),
    ("get", "/api/session/server-key"),
    ("post", "/api/session"),
    ("get", "/api/session"),
    ("delete", "/api/session"),
    ("post", "/api/session/confirm"),
    ("post", "/api/session/rotate-key"),
    ("post", "/api/tenants"),
    ("get", "/api/secrets"),
    ("get", "/api/secrets/{name}"),
    ("put", "/api/secrets/{name}"),
    ("delete", "/api/secrets/{name}"),
    ("post", "/api/runs"),
    ("get", "/api/runs"),
    ("get", "/api/runs/{id}/events"),
    ("post", "/workflows/{name}"),
    ("post", "/v1/api-keys"),
    ("get", "/v1/api-keys"),
    ("delete", "/v1/api-keys/{id}"),
    ("post", "/v1/api-keys/{id}/roll"),
    ("get", "/api/accounts/api-keys/"),
    ("post", "/api/accounts/api-keys/"),
    ("delete", "/api/accounts/api-keys/{id}/"),
    ("get", "/keys"),
    ("get", "/keys/new"),
    ("post", "/keys/new"),
    ("post", "/api/verify"),
    ("get", "/api/auth/forward"),
    ("post", "/api/auth/forward"),
    ("put", "/api/auth/forward"),
    ("patch", "/api/auth/forward"),
    ("delete", "/api/auth/forward"),
    ("get", "/api/auth/forward/{path}"),
    ("post", "/api/auth/forward/{path}"),
    ("put", "/api/auth/forward/{path}"),
    ("patch", "/api/auth/forward/{path}"),
    ("delete", "/api/auth/forward/{path}"),
];

/// Registers every route.
///
/// Order matters for speed: actix tries routes in registration order, and every pattern with a
/// `{segment}` costs a regex match on the way past. The hot path (verify, forward-auth) and the
/// health check come first, so they are found after a couple of string comparisons.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(super::verify::configure)
        .service(web::resource("/healthz").get(health::healthz))
        .service(web::resource("/metrics").get(health::metrics))
        .configure(jwks::configure)
        .configure(accounts::configure)
        .configure(openapi::configure)
        .configure(super::keys::configure);
    super::browser::configure(cfg);
    super::pages::configure(cfg);
    super::assets::configure(cfg);
    handshake::configure(cfg);
    handshake_pages::configure(cfg);
}

/// Fallback for unknown routes: 404 in the JSON error shape.
pub async fn not_found() -> Result<HttpResponse> {
    Err(Error::not_found("Not found"))
}
