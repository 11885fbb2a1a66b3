//! The bounded Argon2id pool.
//!
//! `hash_concurrency` threads (one per core by default) each compute one hash at a time, fed
//! from one queue that holds at most `hash_queue` waiting hashes; beyond that a request gets 503
//! at once. So a flood of sign-ins queues or is refused, and memory stays bounded at
//! concurrency × m. A hash thread that finishes takes the next queued hash itself, so under load
//! the cores go from hash to hash without a wake-up hand-off between them (a semaphore in front
//! of `spawn_blocking` cost three thread wake-ups per hash; `BENCHMARKS.md`, section 4).
//! Verifying against an unknown user hashes against a dummy hash of the same cost, so unknown
//! users and wrong passwords take the same time.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, OnceLock};

use crossbeam_channel::{bounded, Sender};

use super::types::Password;
use crate::config::PasswordSettings;
use crate::crypto::password::{self, Params};
use crate::error::{Error, Result};

type Job = Box<dyn FnOnce() + Send>;

/// The bounded hashing pool; its threads end when the last handle is dropped.
pub struct Hasher {
    jobs: Sender<Job>,
    params: Params,
    dummy: Arc<OnceLock<String>>,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher")
            .field("queued", &self.jobs.len())
            .field("params", &self.params)
            .finish()
    }
}

impl Hasher {
    /// Starts the hash threads; the dummy hash is computed on a background thread so start-up
    /// does not wait for it (a verify that needs it first waits for that one computation).
    pub fn new(cfg: &PasswordSettings) -> Result<Hasher> {
        let threads = if cfg.hash_concurrency == 0 {
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
        // The queue holds the waiting hashes; a thread holds the one it computes.
        let (jobs, queue) = bounded::<Job>(cfg.hash_queue);
        for i in 0..threads.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("gatehouse-hash-{i}"))
                .spawn(move || {
                    while let Ok(job) = queue.recv() {
                        // A panicking hash drops its result sender (the caller gets an error);
                        // the thread stays in service.
                        let _ = catch_unwind(AssertUnwindSafe(job));
                    }
                })
                .map_err(|e| Error::internal(format!("cannot start a hash thread: {e}")))?;
        }
        Ok(Hasher {
            jobs,
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
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.jobs.try_send(job).map_err(|e| {
            Error::from_queue(e, "too many password hashes in progress", "hash pool")
        })?;
        rx.await
            .map_err(|_| Error::internal("a password hash failed"))
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
