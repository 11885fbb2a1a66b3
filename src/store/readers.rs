//! The read pool: a fixed set of threads, each owning one read-only connection, fed from one
//! bounded queue.
//!
//! A read is boxed, queued, and run by whichever reader thread is free; its result comes back
//! through a oneshot channel the caller awaits, so no actix worker ever runs SQLite. A reader
//! that finds more work queued when it finishes takes it at once, so under load a thread runs
//! read after read without sleeping, and a burst of reads costs a few thread wake-ups rather
//! than a wake-up (and a pool-lock hand-off) per read, as `spawn_blocking` plus a connection
//! pool did — measured in `BENCHMARKS.md`, section 2. A full queue answers 503 at once instead
//! of growing without bound.

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
    /// Starts one thread per connection.
    pub fn start(connections: Vec<Connection>) -> Result<Readers> {
        let (jobs, queue) = bounded::<Job>(QUEUE);
        for (i, conn) in connections.into_iter().enumerate() {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("gatehouse-read-{i}"))
                .spawn(move || {
                    while let Ok(job) = queue.recv() {
                        // A panicking read drops its result sender (the caller gets an error);
                        // the thread and its connection stay in service.
                        let _ = catch_unwind(AssertUnwindSafe(|| job(&conn)));
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
