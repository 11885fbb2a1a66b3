//! The ceiling for the key benchmark: a bare actix-web hello-world on one worker, built with
//! the same release profile as Gatehouse. Usage: `bench_baseline 127.0.0.1:9100`.
#![allow(clippy::expect_used)]

use actix_web::{web, App, HttpServer};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9100".into());
    HttpServer::new(|| App::new().route("/", web::get().to(|| async { "hello" })))
        .workers(1)
        .bind(addr)?
        .run()
        .await
}
