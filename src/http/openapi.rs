//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations.
//!
//! Each HTTP module that adds endpoints declares its own `#[derive(OpenApi)]` list and is
//! merged in [`document`], so the document always covers every JSON route.

use utoipa::OpenApi;

use super::health;
use crate::error::{ErrorBody, ErrorDetail};

/// The operations part of the document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Gatehouse",
        description = "Self-hosted authentication appliance: API keys, JWTs, sessions, portal tokens and a zero-knowledge handshake sign-in."
    ),
    paths(health::healthz, health::metrics),
    components(schemas(ErrorBody, ErrorDetail, health::Health))
)]
pub struct ApiDoc;

/// The whole document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(super::keys::KeysApi::openapi());
    doc.merge(super::verify::VerifyApi::openapi());
    doc
}
