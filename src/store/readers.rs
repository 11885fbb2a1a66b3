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
//! once instead of growing without bound. Reads that queued while a thread was busy run in one
//! read transaction (at most [`BATCH`]), so SQLite's per-transaction locking is paid once per
//! batch.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crossbeam_channel::{bounded, Receiver, Sender};
use rusqlite::Connection;

use crate::error::{Error, Result};

type Job = Box<dyn FnOnce(&Connection) + Send>;

/// Reads waiting for a reader beyond this are refused with 503.
const QUEUE: usize = 4096;

/// At most this many queued reads share one read transaction.
const BATCH: usize = 32;

/// Handle to the reader threads; they end when the last handle is dropped.
#[derive(Clone)]
pub struct Readers {
    jobs: Sender<Job>,
}

/// One reader thread: takes a read, and the reads queued behind it, until the pool is dropped.
fn serve<O>(queue: &Receiver<Job>, open: O)
where
    O: Fn() -> Result<Connection>,
{
    let mut conn: Option<Connection> = None;
    let mut batch: Vec<Job> = Vec::with_capacity(BATCH);
    while let Ok(job) = queue.recv() {
        if conn.is_none() {
            match open() {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    // Dropping the job drops its result sender: the caller gets an error, and
                    // the next read tries again.
                    tracing::error!(error = %e, "cannot open a read connection");
                    continue;
                }
            }
        }
        let Some(c) = &conn else { continue };
        // Reads that queued up while this thread was busy share one read transaction: SQLite
        // takes and drops its file and WAL-index locks (four fcntl calls) once for the batch
        // instead of once per read. The snapshot starts after every read of the batch was
        // queued, so no read sees older data than it would alone.
        batch.push(job);
        batch.extend(queue.try_iter().take(BATCH - 1));
        let shared = batch.len() > 1 && c.execute_batch("BEGIN").is_ok();
        for job in batch.drain(..) {
            // A panicking read drops its result sender (the caller gets an error); the thread
            // and its connection stay in service.
            let _ = catch_unwind(AssertUnwindSafe(|| job(c)));
        }
        if shared && !c.is_autocommit() {
            // Nothing was written: ending the read transaction cannot lose anything, and a
            // failure here only means SQLite already ended it.
            let _ = c.execute_batch("COMMIT");
        }
    }
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
                .spawn(move || serve(&queue, open))
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
        self.jobs.try_send(job).map_err(|e| {
            Error::from_queue(e, "The database is busy, retry shortly", "read pool")
        })?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_reads_share_a_transaction_and_each_gets_its_own_answer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let w = Connection::open(&path).unwrap();
        w.execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE t (k INTEGER PRIMARY KEY, v INTEGER);
             INSERT INTO t VALUES (1, 10), (2, 20), (3, 30);",
        )
        .unwrap();
        let p = path.clone();
        let readers = Readers::start(1, move || Ok(Connection::open(&p)?)).unwrap();
        // Hold the only reader so that the reads below queue up behind it.
        let (hold_tx, hold_rx) = crossbeam_channel::bounded::<()>(0);
        let (started_tx, started_rx) = crossbeam_channel::bounded::<()>(1);
        let blocker = readers.clone();
        let held = std::thread::spawn(move || {
            blocker.run_blocking(move |_| {
                let _ = started_tx.send(());
                let _ = hold_rx.recv();
                Ok(())
            })
        });
        // Running: its batch is formed, so everything queued from here on waits.
        started_rx.recv().unwrap();
        let mut waiting = Vec::new();
        for k in [1_i64, 2, 3, 4] {
            let r = readers.clone();
            waiting.push(std::thread::spawn(move || {
                r.run_blocking(move |c| {
                    Ok(
                        c.query_row("SELECT v FROM t WHERE k = ?1", [k], |row| row.get(0))
                            .ok(),
                    )
                })
            }));
        }
        let r = readers.clone();
        let panicking = std::thread::spawn(move || {
            r.run_blocking(|_| -> Result<()> { panic!("a read that panics") })
        });
        while readers.jobs.len() < 5 {
            std::thread::yield_now();
        }
        // Committed after the reads were queued, before they run: every one of them sees it.
        w.execute("UPDATE t SET v = v + 1", []).unwrap();
        hold_tx.send(()).unwrap();
        held.join().unwrap().unwrap();
        let got: Vec<Option<i64>> = waiting
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect();
        assert_eq!(got, vec![Some(11), Some(21), Some(31), None]);
        assert!(panicking.join().unwrap().is_err());
        // The thread, its connection and the transaction state are fine afterwards.
        let n: i64 = readers
            .run_blocking(|c| Ok(c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?))
            .unwrap();
        assert_eq!(n, 3);
        let autocommit = readers.run_blocking(|c| Ok(c.is_autocommit())).unwrap();
        assert!(autocommit, "no read transaction left open");
    }
}
