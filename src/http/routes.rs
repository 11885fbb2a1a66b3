//! The route table: every endpoint Gatehouse serves, in one place.

use actix_web::{web, HttpResponse};

use super::health;
use crate::error::{Error, Result};

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/healthz").get(health::healthz))
        .service(web::resource("/metrics").get(health::metrics))
        .configure(super::keys::configure)
        .configure(super::verify::configure);
}

/// Fallback for unknown routes: 404 in the JSON error shape.
pub async fn not_found() -> Result<HttpResponse> {
    Err(Error::not_found("Not found"))
}
