//! `GET /.well-known/jwks.json`: the public keys that verify Gatehouse access tokens.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use crate::error::{ErrorBody, Result};
use crate::services::Ctx;

/// A JSON Web Key Set (RFC 7517).
#[derive(Serialize, ToSchema)]
pub struct Jwks {
    /// Ed25519 public keys (`kty: OKP`, `crv: Ed25519`, `alg: EdDSA`, `use: sig`), newest first.
    #[schema(value_type = Vec<Object>)]
    pub keys: Vec<serde_json::Value>,
}

/// The published signing keys. A superseded key stays until every token it signed expired.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "accounts",
    responses(
        (status = 200, description = "The key set", body = Jwks),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ))]
pub async fn jwks(ctx: web::Data<Ctx>) -> Result<HttpResponse> {
    let keys = ctx.keyring.published(&ctx.db).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=60"))
        .json(Jwks {
            keys: keys.into_iter().map(|k| k.jwk).collect(),
        }))
}

/// Registers the route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/.well-known/jwks.json").get(jwks));
}

/// The JWKS part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(jwks), components(schemas(Jwks)))]
pub struct JwksApi;
