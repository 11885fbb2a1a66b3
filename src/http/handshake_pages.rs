//! The handshake pages: `/login` (the Noise handshake runs in the page on Web Crypto) and
//! `/secrets` and `/tenants/new` (the tenant key pair is made in the page), plus their static scripts and styles, embedded in the binary.
//!
//! No inline script anywhere (CSP `script-src 'self'`). The server's static Noise key is
//! embedded in `/login` as a `<meta>` tag, so the page pins the key it was served with.

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

/// Registers the pages (their static files are in [`super::assets`]).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/login").get(login))
        .service(web::resource("/secrets").get(secrets))
        .service(web::resource("/tenants/new").get(tenant_new));
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
