//! The static files the pages load, embedded in the binary and served from `/static/{file}`.
//!
//! One table for every page's CSS and JS, so no inline script or style is ever needed
//! (CSP `script-src 'self'`). They change only with the binary: a day of caching, revalidated
//! by `ETag`-less reload when the binary is upgraded (the names do not change, so keep it short).

use actix_web::http::header;
use actix_web::{web, HttpResponse, ResponseError};

use crate::error::Error;

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Every static file: name, content type, contents.
const FILES: &[(&str, &str, &str)] = &[
    (
        "app.css",
        CSS,
        include_str!("../../templates/static/app.css"),
    ),
    ("app.js", JS, include_str!("../../templates/static/app.js")),
    (
        "handshake.css",
        CSS,
        include_str!("../../templates/static/handshake.css"),
    ),
    (
        "handshake.js",
        JS,
        include_str!("../../templates/static/handshake.js"),
    ),
    (
        "login.js",
        JS,
        include_str!("../../templates/static/login.js"),
    ),
    (
        "secrets.js",
        JS,
        include_str!("../../templates/static/secrets.js"),
    ),
    (
        "tenants.js",
        JS,
        include_str!("../../templates/static/tenants.js"),
    ),
    (
        "tenant-new.js",
        JS,
        include_str!("../../templates/static/tenant-new.js"),
    ),
];

/// Registers `/static/{file}`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/static/{file}").get(static_file));
}

async fn static_file(name: web::Path<String>) -> HttpResponse {
    match FILES.iter().find(|(n, _, _)| *n == name.as_str()) {
        Some((_, ct, body)) => HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, *ct))
            .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
            .body(*body),
        None => Error::not_found("Not found").error_response(),
    }
}
