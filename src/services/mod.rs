//! Use-cases: users, tenants, sessions, magic links, mail, brands and portal tokens, JWT pairs
//! and their signing keys, audit, cleanup, server keys. No HTTP types here.
//!
//! Every operation takes the shared [`Ctx`] and parsed newtypes from [`types`], and returns the
//! one [`crate::error::Error`]. The CLI and the HTTP handlers call these same functions.

pub mod audit;
pub mod cleanup;
pub mod dev;
pub mod handshake;
pub mod handshake_sessions;
pub mod keys;
pub mod magic_links;
pub mod mail;
pub mod passwords;
pub mod portal;
pub mod principal;
pub mod runs;
pub mod secrets;
pub mod server_keys;
pub mod sessions;
pub mod signing_keys;
pub mod tenants;
pub mod throttle;
pub mod tokens;
pub mod types;
pub mod users;

use std::sync::Arc;

use crate::config::Settings;
use crate::crypto::Pepper;
use crate::error::Result;
use crate::store::Db;

/// Everything a service needs, shared by every request and job.
#[derive(Debug)]
pub struct Ctx {
    /// The validated configuration.
    pub settings: Arc<Settings>,
    /// The database.
    pub db: Db,
    /// The key of every stored credential hash.
    pub pepper: Pepper,
    /// The bounded Argon2id pool.
    pub passwords: passwords::Hasher,
    /// Failed sign-in throttling.
    pub login_throttle: throttle::Throttle,
    /// Buffered audit log writer.
    pub audit: audit::AuditLog,
    /// Outgoing mail (SMTP or outbox), sent in the background.
    pub mailer: mail::Mailer,
    /// Magic-link request throttling, per address and per client.
    pub magic_throttle: throttle::Throttle,
    /// JWT signing keys.
    pub keyring: signing_keys::Keyring,
    /// The server's Noise key, pending handshakes and live session keys.
    pub handshakes: handshake::Handshakes,
    /// API key verification cache and `last_used_at` buffer.
    pub keys: keys::KeyRuntime,
}

impl Ctx {
    /// Opens the database (running migrations) and loads or creates the server secrets.
    pub fn open(settings: Settings) -> Result<Arc<Ctx>> {
        crate::crypto::init()?;
        let settings = Arc::new(settings);
        let db = Db::open(&settings.database_path(), &settings.database)?;
        let pepper = server_keys::load_pepper(&settings)?;
        let passwords = passwords::Hasher::new(&settings.password)?;
        let login_throttle = throttle::Throttle::new(&settings.login);
        let audit = audit::AuditLog::new(db.clone());
        let mailer = mail::Mailer::from_settings(&settings)?;
        let magic_throttle = throttle::Throttle::windowed(
            settings.magic_link.max_per_address,
            settings.magic_link.max_per_client,
            settings.magic_link.window_secs,
        );
        let keyring = signing_keys::Keyring::new(&pepper);
        keyring.init_blocking(&db, &settings)?;
        let handshakes =
            handshake::Handshakes::new(handshake::load_noise_static(&settings)?, &pepper);
        let keys = keys::KeyRuntime::new(&settings.keys);
        Ok(Arc::new(Ctx {
            settings,
            db,
            pepper,
            passwords,
            login_throttle,
            audit,
            mailer,
            magic_throttle,
            keyring,
            handshakes,
            keys,
        }))
    }
}

impl Drop for Ctx {
    /// The last handle going away (a CLI command ending) writes the audit events still queued.
    fn drop(&mut self) {
        self.audit.flush();
    }
}

/// Flushes what services buffer in memory; called once the server has drained.
pub async fn shutdown(ctx: &Ctx) {
    if let Err(e) = keys::flush(ctx).await {
        tracing::warn!(error = %e, "flushing API key last-used times at shutdown failed");
    }
    let audit_ctx = ctx.audit.clone();
    let _ = tokio::task::spawn_blocking(move || audit_ctx.flush()).await;
}
