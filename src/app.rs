//! [`Application`]: what `gatehouse serve` and every integration test start.
//!
//! `build` opens the store, loads the server secrets, binds the listener (port 0 works, for
//! tests) and starts the scheduled jobs; `run_until_stopped` serves until SIGTERM/SIGINT, then
//! drains in-flight requests and stops the jobs.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};

use crate::config::Settings;
use crate::error::{Error, Result};
use crate::services::Ctx;

/// A built, bound, not yet running server.
pub struct Application {
    port: u16,
    server: Server,
    ctx: Arc<Ctx>,
    scheduler: Option<tokio_cron_scheduler::JobScheduler>,
}

impl Application {
    /// Opens the store, binds `settings.bind` and prepares the server and jobs.
    pub async fn build(settings: Settings) -> Result<Application> {
        let ctx = tokio::task::spawn_blocking(move || Ctx::open(settings))
            .await
            .map_err(Error::internal)??;
        Self::build_with(ctx).await
    }

    /// Like [`Application::build`] with an already opened context (the CLI seeds it first).
    pub async fn build_with(ctx: Arc<Ctx>) -> Result<Application> {
        let listener = TcpListener::bind(&ctx.settings.bind).map_err(|e| {
            Error::internal(format!(
                "cannot listen on {}: {e} (set `bind` / GATEHOUSE_BIND to a free address)",
                ctx.settings.bind
            ))
        })?;
        let port = listener.local_addr().map_err(Error::internal)?.port();
        let server = crate::http::server(ctx.clone(), listener).map_err(Error::internal)?;
        let scheduler = crate::jobs::start(ctx.clone()).await?;
        crate::services::keys::start_background(&ctx);
        Ok(Application {
            port,
            server,
            ctx,
            scheduler,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The shared service context.
    pub fn ctx(&self) -> Arc<Ctx> {
        self.ctx.clone()
    }

    /// A handle that can stop the server gracefully.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped, then drains and shuts the jobs down.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        if let Some(mut s) = self.scheduler {
            let _ = s.shutdown().await;
        }
        crate::services::shutdown(&self.ctx).await;
        result
    }
}
