//! The bounded Argon2id pool.
//!
//! At most `hash_concurrency` hashes run at once (each takes `argon2_mem_limit_kib` of memory),
//! and at most `hash_queue` more wait for a slot; beyond that a request gets 503 at once. So a
//! flood of sign-ins queues or is refused, and memory stays bounded at concurrency × m.
//! Verifying against an unknown user hashes against a dummy hash of the same cost, so unknown
//! users and wrong passwords take the same time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::Semaphore;

use super::types::Password;
use crate::config::PasswordSettings;
use crate::crypto::password::{self, Params};
use crate::error::{Error, Result};

/// The bounded hashing pool.
#[derive(Debug)]
pub struct Hasher {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_in_flight: usize,
    params: Params,
    dummy: Arc<OnceLock<String>>,
}

struct QueueGuard<'a>(&'a AtomicUsize);

impl Drop for QueueGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Hasher {
    /// Builds the pool; the dummy hash is computed on a background thread so start-up does not
    /// wait for it (a verify that needs it first waits for that one computation).
    pub fn new(cfg: &PasswordSettings) -> Result<Hasher> {
        let slots = if cfg.hash_concurrency == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            cfg.hash_concurrency
        };
        let params = Params {
            ops: cfg.argon2_ops_limit,
            mem_kib: cfg.argon2_mem_limit_kib,
        };
        let dummy = Arc::new(OnceLock::new());
        let filler = dummy.clone();
        let _ = std::thread::Builder::new()
            .name("gatehouse-dummy-hash".into())
            .spawn(move || {
                let _ = filler.get_or_init(|| make_dummy(params));
                // Hand the hash's 19 MiB working memory back to the OS now rather than keep it
                // resident in an idle server. SAFETY: malloc_trim only releases free heap pages.
                #[allow(unsafe_code)]
                unsafe {
                    libc::malloc_trim(0);
                }
            });
        Ok(Hasher {
            slots: Arc::new(Semaphore::new(slots)),
            waiting: AtomicUsize::new(0),
            max_in_flight: slots + cfg.hash_queue,
            params,
            dummy,
        })
    }

    /// The configured parameters.
    pub fn params(&self) -> Params {
        self.params
    }

    async fn on_pool<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let queued = self.waiting.fetch_add(1, Ordering::SeqCst);
        let _guard = QueueGuard(&self.waiting);
        if queued >= self.max_in_flight {
            return Err(Error::Unavailable(
                "too many password hashes in progress".into(),
            ));
        }
        let _permit = self
            .slots
            .acquire()
            .await
            .map_err(|_| Error::internal("hash pool closed"))?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(Error::internal)
    }

    /// Hashes a new password with the current parameters.
    pub async fn hash(&self, pw: &Password) -> Result<String> {
        let pw = pw.clone();
        let params = self.params;
        self.on_pool(move || password::hash(pw.expose(), params))
            .await?
    }

    /// Verifies a password; `stored = None` (unknown user, no password) costs the same and fails.
    pub async fn verify(&self, stored: Option<String>, pw: &Password) -> Result<bool> {
        let pw = pw.clone();
        let real = stored.is_some();
        let dummy = self.dummy.clone();
        let params = self.params;
        let ok = self
            .on_pool(move || {
                let hash = match &stored {
                    Some(h) => h.as_str(),
                    None => dummy.get_or_init(|| make_dummy(params)).as_str(),
                };
                password::verify(hash, pw.expose())
            })
            .await?;
        Ok(ok && real)
    }

    /// Whether a stored hash was made with other parameters than the current ones.
    pub fn needs_rehash(&self, stored: &str) -> bool {
        password::needs_rehash(stored, self.params)
    }
}

/// A hash of a random password with the current parameters, to verify unknown users against.
fn make_dummy(params: Params) -> String {
    password::hash(&crate::crypto::random_base62(24), params)
        .unwrap_or_else(|_| "$argon2id$v=19$m=19456,t=2,p=1$invalid".to_owned())
}
