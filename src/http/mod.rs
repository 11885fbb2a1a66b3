//! The HTTP layer: route table, extractors, middleware and thin handlers.
//!
//! Handlers extract, call one service function, and map the result; the route table in
//! [`routes`] is the one place every endpoint is listed.

pub mod accounts;
pub mod assets;
pub mod auth_extract;
pub mod browser;
pub mod extract;
pub mod handshake;
pub mod handshake_pages;
pub mod health;
pub mod jwks;
pub mod keys;
pub mod middleware;
pub mod openapi;
pub mod pages;
pub mod routes;
pub mod session_auth;
pub mod verify;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};

use crate::error::Error;
use crate::services::Ctx;

/// Shared per-process HTTP state (beside the service [`Ctx`]).
#[derive(Debug)]
pub struct HttpState {
    /// Request counters for `/metrics`.
    pub metrics: middleware::Metrics,
    /// Parsed `trusted_proxies`.
    pub trusted: extract::TrustedProxies,
    /// Per-key rate limits and per-address throttling of invalid credentials.
    pub limits: Arc<crate::auth::ratelimit::RateLimits>,
    /// Served over HTTPS (`public_url`): answers carry HSTS.
    pub https: bool,
    /// The OpenAPI document of this configuration, made on the first request for it.
    pub openapi: std::sync::OnceLock<String>,
}

/// Builds the actix server on a bound listener.
pub fn server(ctx: Arc<Ctx>, listener: TcpListener) -> std::io::Result<Server> {
    let limits = Arc::new(crate::auth::ratelimit::RateLimits::new(&ctx.settings));
    crate::auth::ratelimit::start_housekeeping(&limits);
    let state = web::Data::new(HttpState {
        metrics: middleware::Metrics::default(),
        trusted: extract::TrustedProxies::from_settings(&ctx.settings),
        limits,
        https: ctx.settings.is_https(),
        openapi: std::sync::OnceLock::new(),
    });
    let ctx_data = web::Data::from(ctx.clone());
    let workers = if ctx.settings.workers == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        ctx.settings.workers
    };
    let max_body = ctx.settings.max_body_bytes;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(ctx_data.clone())
            .app_data(state.clone())
            .app_data(
                web::JsonConfig::default()
                    .limit(max_body)
                    .error_handler(extract::json_error_handler),
            )
            .app_data(web::PayloadConfig::default().limit(max_body))
            .app_data(web::PathConfig::default().error_handler(|e, _| {
                Error::bad_request(format!("Invalid path parameter: {e}")).into()
            }))
            .app_data(web::QueryConfig::default().error_handler(|e, _| {
                Error::bad_request(format!("Invalid query string: {e}")).into()
            }))
            .configure(routes::configure)
            .default_service(web::to(routes::not_found))
            .wrap(actix_web::middleware::from_fn(middleware::envelope))
    })
    .workers(workers)
    .shutdown_timeout(10)
    .listen(listener)?
    .run();
    Ok(server)
}
