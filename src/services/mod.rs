//! Use-cases: users, tenants, audit, cleanup, server keys. No HTTP types here.
//!
//! Every operation takes the shared [`Ctx`] and parsed newtypes from [`types`], and returns the
//! one [`crate::error::Error`]. The CLI and the HTTP handlers call these same functions.

pub mod audit;
pub mod cleanup;
pub mod dev;
pub mod keys;
pub mod passwords;
pub mod server_keys;
pub mod tenants;
pub mod throttle;
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
        let keys = keys::KeyRuntime::new(&settings.keys);
        Ok(Arc::new(Ctx {
            settings,
            db,
            pepper,
            passwords,
            login_throttle,
            audit,
            keys,
        }))
    }
}

/// Flushes what services buffer in memory; called once the server has drained.
pub async fn shutdown(ctx: &Ctx) {
    if let Err(e) = keys::flush(ctx).await {
        tracing::warn!(error = %e, "flushing API key last-used times at shutdown failed");
    }
}
