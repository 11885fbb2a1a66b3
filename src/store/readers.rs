//! The read pool: a fixed set of threads, each owning one read-only connection, fed from one
//! bounded queue.
//!
//! A read is boxed, queued, and run by whichever reader thread is free; its result comes back
//! through a oneshot channel the caller awaits, so no actix worker ever runs SQLite. A reader
//! that finishes looks for more work before it sleeps (crossbeam's receive spins briefly,
//! yielding the CPU), so under load a thread runs read after read and a burst of reads costs a
//! few thread wake-ups rather than a wake-up (and a pool-lock hand-off) per read, as
//! `spawn_blocking` plus a connection pool did. A condition-variable queue that sleeps at once
//! was measured too: it cost a wake-up per read again (25.9 against 17.5 µs of server CPU per
//! verify that misses the key cache; `BENCHMARKS.md`, section 4). A full queue answers 503 at
//! once instead of growing without bound.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crossbeam_channel::{bounded, Sender, TrySendError};
use rusqlite::Connection;

use crate::error::{Error, Result};

type Job = Box<dyn FnOnce(&Connection) + Send>;

/// Reads waiting for a reader beyond this are refused with 503.
const QUEUE: usize = 4096;

/// Handle to the reader threads; they end when the last handle is dropped.
#[derive(Clone)]
pub struct Readers {
    jobs: Sender<Job>,
}

impl Readers {
    /// Starts `threads` reader threads. Each opens its connection with `open` when it gets its
    /// first read (an idle server holds no reader connection: they cost ≈0.1 MiB each), and
    /// again after a failed open.
    pub fn start<O>(threads: usize, open: O) -> Result<Readers>
    where
        O: Fn() -> Result<Connection> + Clone + Send + 'static,
    {
        let (jobs, queue) = bounded::<Job>(QUEUE);
        for i in 0..threads.max(1) {
            let queue = queue.clone();
            let open = open.clone();
            std::thread::Builder::new()
                .name(format!("gatehouse-read-{i}"))
                .spawn(move || {
                    let mut conn: Option<Connection> = None;
                    while let Ok(job) = queue.recv() {
                        if conn.is_none() {
                            match open() {
                                Ok(c) => conn = Some(c),
                                Err(e) => {
                                    // Dropping the job drops its result sender: the caller
                                    // gets an error, and the next read tries again.
                                    tracing::error!(error = %e, "cannot open a read connection");
                                    continue;
                                }
                            }
                        }
                        if let Some(c) = &conn {
                            // A panicking read drops its result sender (the caller gets an
                            // error); the thread and its connection stay in service.
                            let _ = catch_unwind(AssertUnwindSafe(|| job(c)));
                        }
                    }
                })
                .map_err(|e| Error::internal(format!("cannot start a reader thread: {e}")))?;
        }
        Ok(Readers { jobs })
    }

    /// Runs `f` on a reader thread and waits (asynchronously) for its result.
    pub async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |c| {
            let _ = tx.send(f(c));
        });
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(Error::Unavailable(
                    "The database is busy, retry shortly".to_owned(),
                ))
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(Error::internal("the read pool has stopped"))
            }
        }
        rx.await
            .map_err(|_| Error::internal("a database read failed"))?
    }

    /// Runs `f` on a reader thread from a thread that may block (the CLI, blocking jobs).
    pub fn run_blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let job: Job = Box::new(move |c| {
            let _ = tx.send(f(c));
        });
        self.jobs
            .send(job)
            .map_err(|_| Error::internal("the read pool has stopped"))?;
        rx.recv()
            .map_err(|_| Error::internal("a database read failed"))?
    }
}

impl std::fmt::Debug for Readers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readers")
            .field("queued", &self.jobs.len())
            .finish()
    }
}
