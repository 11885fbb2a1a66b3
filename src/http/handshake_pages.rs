//! The handshake pages: `/login` (the Noise handshake runs in the page on Web Crypto) and
//! `/secrets` and `/tenants/new` (the tenant key pair is made in the page), plus their static scripts and styles, embedded in the binary.
//!
//! No inline script anywhere (CSP `script-src 'self'`). The server's static Noise key is
//! embedded in `/login` as a `<meta>` tag, so the page pins the key it was served with.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use askama::Template;

use crate::crypto;
use crate::error::{Error, Result};
use crate::services::Ctx;

/// `/login`.
#[derive(Template)]
#[template(path = "handshake/login.html")]
struct LoginPage {
    server_key: String,
}

/// `/secrets`.
#[derive(Template)]
#[template(path = "handshake/secrets.html")]
struct SecretsPage;

/// `/tenants/new`.
#[derive(Template)]
#[template(path = "handshake/tenant_new.html")]
struct TenantNewPage;

/// Static files of these pages: path, content type, contents.
const STATIC: &[(&str, &str, &str)] = &[
    (
        "/static/handshake.js",
        "text/javascript; charset=utf-8",
        include_str!("../../templates/static/handshake.js"),
    ),
    (
        "/static/tenants.js",
        "text/javascript; charset=utf-8",
        include_str!("../../templates/static/tenants.js"),
    ),
    (
        "/static/login.js",
        "text/javascript; charset=utf-8",
        include_str!("../../templates/static/login.js"),
    ),
    (
        "/static/secrets.js",
        "text/javascript; charset=utf-8",
        include_str!("../../templates/static/secrets.js"),
    ),
    (
        "/static/tenant-new.js",
        "text/javascript; charset=utf-8",
        include_str!("../../templates/static/tenant-new.js"),
    ),
    (
        "/static/handshake.css",
        "text/css; charset=utf-8",
        include_str!("../../templates/static/handshake.css"),
    ),
];

/// Registers the pages and their static files.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/login").get(login))
        .service(web::resource("/secrets").get(secrets))
        .service(web::resource("/tenants/new").get(tenant_new));
    for (path, content_type, body) in STATIC {
        cfg.service(web::resource(*path).get(move || async move {
            HttpResponse::Ok()
                .insert_header((header::CONTENT_TYPE, *content_type))
                .insert_header((header::CACHE_CONTROL, "no-cache"))
                .body(*body)
        }));
    }
}

fn html(page: &impl Template) -> Result<HttpResponse> {
    let body = page.render().map_err(Error::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(body))
}

async fn login(ctx: web::Data<Ctx>) -> Result<HttpResponse> {
    html(&LoginPage {
        server_key: crypto::b64(&ctx.handshakes.server_public()),
    })
}

async fn secrets() -> Result<HttpResponse> {
    html(&SecretsPage)
}

async fn tenant_new() -> Result<HttpResponse> {
    html(&TenantNewPage)
}
