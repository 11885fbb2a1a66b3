//! `/healthz` and `/metrics`.

use std::sync::atomic::Ordering;

use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::HttpState;
use crate::error::Result;
use crate::services::Ctx;

/// Health answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: &'static str,
    /// The database answered.
    pub database: &'static str,
    /// Schema version.
    pub schema_version: usize,
}

/// Checks the database answers.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, body = Health), (status = 503, body = crate::error::ErrorBody)))]
pub async fn healthz(ctx: web::Data<Ctx>) -> Result<HttpResponse> {
    let v = ctx.db.schema_version().await?;
    Ok(HttpResponse::Ok().json(Health {
        status: "ok",
        database: "ok",
        schema_version: v,
    }))
}

/// Prometheus text metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(state: web::Data<HttpState>) -> HttpResponse {
    let m = &state.metrics;
    let mut out = String::new();
    out.push_str("# HELP gatehouse_http_responses_total HTTP responses by status class.\n");
    out.push_str("# TYPE gatehouse_http_responses_total counter\n");
    for (i, c) in m.by_class.iter().enumerate() {
        out.push_str(&format!(
            "gatehouse_http_responses_total{{class=\"{}xx\"}} {}\n",
            i + 1,
            c.load(Ordering::Relaxed)
        ));
    }
    out.push_str("# HELP gatehouse_http_in_flight Requests being served.\n");
    out.push_str("# TYPE gatehouse_http_in_flight gauge\n");
    out.push_str(&format!(
        "gatehouse_http_in_flight {}\n",
        m.in_flight.load(Ordering::Relaxed)
    ));
    out.push_str("# HELP gatehouse_http_latency_seconds_sum Total time spent serving requests.\n");
    out.push_str("# TYPE gatehouse_http_latency_seconds_sum counter\n");
    out.push_str(&format!(
        "gatehouse_http_latency_seconds_sum {}\n",
        m.latency_us_sum.load(Ordering::Relaxed) as f64 / 1e6
    ));
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(out)
}
