//! The read pool: a fixed set of threads, each owning one read-only connection, fed from one
//! bounded queue.
//!
//! A read is boxed, queued, and run by whichever reader thread is free; its result comes back
//! through a oneshot channel the caller awaits, so no actix worker ever runs SQLite. Results go
//! by way of the asking thread's mailbox ([`Mailbox`]), so a burst of answers wakes that thread
//! once, not once per read. A reader that finishes looks for more work before it sleeps
//! (crossbeam's receive spins briefly, yielding the CPU), so under load a thread runs read after
//! read and a burst of reads costs a few thread wake-ups rather than a wake-up (and a pool-lock
//! hand-off) per read, as `spawn_blocking` plus a connection pool did. A condition-variable queue that sleeps at once
//! was measured too: it cost a wake-up per read again (25.9 against 17.5 µs of server CPU per
//! verify that misses the key cache; `BENCHMARKS.md`, section 4). A full queue answers 503 at
//! once instead of growing without bound. Reads that queued while a thread was busy run in one
//! read transaction (at most [`BATCH`]), so SQLite's per-transaction locking is paid once per
//! batch.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use crossbeam_channel::{bounded, Receiver, Sender};
use rusqlite::Connection;

use crate::error::{Error, Result};

/// A read, and where its result goes: to the asking thread's mailbox, or (`None`) straight to
/// the caller (blocking callers).
struct Job {
    read: Box<dyn FnOnce(&Connection) -> Delivery + Send>,
    mailbox: Option<Arc<Mailbox>>,
}

/// Hands a result to its waiting caller; run on the caller's thread where one is waiting.
type Delivery = Box<dyn FnOnce() + Send>;

impl Job {
    /// Runs `f`; `send` then hands its result to the caller.
    fn new<T, F, S>(f: F, send: S, mailbox: Option<Arc<Mailbox>>) -> Job
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
        S: FnOnce(Result<T>) + Send + 'static,
    {
        let read = move |c: &Connection| -> Delivery {
            let r = f(c);
            Box::new(move || send(r))
        };
        Job {
            read: Box::new(read),
            mailbox,
        }
    }
}

/// Results waiting to be handed over on one asking thread, and the wakers of that thread's
/// waiting reads. A reader thread puts each result in the mailbox and wakes one waiting read
/// unless one is already woken and has not yet taken the mailbox's contents; that read hands
/// every result over on its own thread, where waking the other waiting tasks is a local queue
/// push. Waking each caller from the reader thread instead cost an `eventfd` write per read
/// (the worker's runtime is woken from another thread): 0.92 writes per cache-miss verify
/// before, 0.02 after, +2.3 % cache-miss verify throughput (`BENCHMARKS.md`, section 4).
#[derive(Default)]
struct Mailbox {
    inner: parking_lot::Mutex<MailboxInner>,
    /// Names each waiting read of this thread.
    next_id: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct MailboxInner {
    done: Vec<Delivery>,
    waiting: Vec<(u64, Waker)>,
    /// A waiting read was woken for `done` and has not handed it over yet.
    woken: bool,
}

impl Mailbox {
    /// Adds a result, and wakes a waiting read if none is woken already.
    fn deliver(&self, d: Delivery) {
        let wake = {
            let mut inner = self.inner.lock();
            inner.done.push(d);
            if inner.woken {
                None
            } else {
                let first = inner.waiting.first().map(|(_, w)| w.clone());
                inner.woken = first.is_some();
                first
            }
        };
        if let Some(w) = wake {
            w.wake();
        }
    }

    /// Runs the deliveries that arrived for this thread; `leaving` (a read that is done
    /// waiting) gives up its place among the wakers in the same turn of the lock.
    fn hand_over(&self, leaving: Option<u64>) {
        let done = {
            let mut inner = self.inner.lock();
            if let Some(id) = leaving {
                inner.waiting.retain(|(w, _)| *w != id);
            }
            inner.woken = false;
            std::mem::take(&mut inner.done)
        };
        for d in done {
            d();
        }
    }
}

thread_local! {
    static MAILBOX: Arc<Mailbox> = Arc::new(Mailbox::default());
}

/// A read waiting for its result: hands over whatever arrived for its thread each time it is
/// polled, and keeps its waker in the mailbox while it waits.
struct Waiting<T> {
    rx: tokio::sync::oneshot::Receiver<Result<T>>,
    mailbox: Arc<Mailbox>,
    id: u64,
}

impl<T> std::future::Future for Waiting<T> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        loop {
            self.mailbox.hand_over(None);
            if let Poll::Ready(r) = Pin::new(&mut self.rx).poll(cx) {
                // Its waker leaves the mailbox when it is dropped, right after this answer.
                return Poll::Ready(r.map_err(|_| Error::internal("a database read failed"))?);
            }
            let mut inner = self.mailbox.inner.lock();
            match inner.waiting.iter_mut().find(|(w, _)| *w == self.id) {
                Some((_, w)) => w.clone_from(cx.waker()),
                None => inner.waiting.push((self.id, cx.waker().clone())),
            }
            // A result that arrived since the hand-over above found this waker, or none.
            if inner.done.is_empty() {
                return Poll::Pending;
            }
        }
    }
}

impl<T> Drop for Waiting<T> {
    fn drop(&mut self) {
        // Results this read's waker was woken for go to their callers still.
        self.mailbox.hand_over(Some(self.id));
    }
}

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
            let Ok(deliver) = catch_unwind(AssertUnwindSafe(|| (job.read)(c))) else {
                continue;
            };
            match job.mailbox {
                Some(m) => m.deliver(deliver),
                None => deliver(),
            }
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
        let mailbox = MAILBOX.with(Arc::clone);
        let id = mailbox
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let send = move |r| {
            let _ = tx.send(r);
        };
        let job = Job::new(f, send, Some(mailbox.clone()));
        self.jobs.try_send(job).map_err(|e| {
            Error::from_queue(e, "The database is busy, retry shortly", "read pool")
        })?;
        Waiting { rx, mailbox, id }.await
    }

    /// Runs `f` on a reader thread from a thread that may block (the CLI, blocking jobs).
    pub fn run_blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let send = move |r| {
            let _ = tx.send(r);
        };
        let job = Job::new(f, send, None);
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
    use std::thread::JoinHandle;
    use std::time::Duration;

    /// A WAL database with table `t (k, v)` filled by `rows` (SQL), its writer connection, and
    /// one reader thread over it.
    fn one_reader(rows: &str) -> (tempfile::TempDir, Connection, Readers) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let w = Connection::open(&path).unwrap();
        let schema = "PRAGMA journal_mode=WAL; CREATE TABLE t (k INTEGER PRIMARY KEY, v INTEGER);";
        w.execute_batch(&format!("{schema} {rows}")).unwrap();
        let readers = Readers::start(1, move || Ok(Connection::open(&path)?)).unwrap();
        (dir, w, readers)
    }

    /// Holds the only reader thread until the returned sender is sent to. Returns once the
    /// holding read runs: its batch is formed, so every read queued afterwards waits behind it.
    fn hold(readers: &Readers) -> (crossbeam_channel::Sender<()>, JoinHandle<Result<()>>) {
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
        started_rx.recv().unwrap();
        (hold_tx, held)
    }

    #[test]
    fn queued_reads_share_a_transaction_and_each_gets_its_own_answer() {
        let (_dir, w, readers) = one_reader("INSERT INTO t VALUES (1, 10), (2, 20), (3, 30);");
        // Hold the only reader so that the reads below queue up behind it.
        let (hold_tx, held) = hold(&readers);
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

    #[test]
    fn async_reads_are_handed_over_even_when_the_woken_waiter_is_dropped() {
        let (_dir, _w, readers) = one_reader(
            "WITH RECURSIVE n(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM n WHERE k < 19)
             INSERT INTO t SELECT k, k * 10 FROM n;",
        );
        let read = |k: i64| {
            let r = readers.clone();
            async move {
                r.run(move |c| {
                    Ok(c.query_row("SELECT v FROM t WHERE k = ?1", [k], |row| row.get(0))?)
                })
                .await
            }
        };
        // Hold the only reader so that every read below is answered in one batch.
        let (hold_tx, held) = hold(&readers);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            // Each read in a task of its own, polled only when woken. `first` runs first, so
            // its waker is the one the reader wakes for the batch.
            let first = tokio::spawn(read(0));
            tokio::task::yield_now().await;
            let rest: Vec<_> = (1..20).map(|k| tokio::spawn(read(k))).collect();
            tokio::task::yield_now().await;
            hold_tx.send(()).unwrap();
            held.join().unwrap().unwrap();
            // One reader thread: this read runs after the batch, so every answer is in the
            // mailbox now, and `first` was woken for them.
            let after = readers.clone();
            std::thread::spawn(move || after.run_blocking(|_| Ok(())))
                .join()
                .unwrap()
                .unwrap();
            // Cancelled before it runs again: its read hands the answers over as it is dropped.
            first.abort();
            let got =
                tokio::time::timeout(Duration::from_secs(5), futures_util::future::join_all(rest))
                    .await
                    .expect("every answer reached its caller");
            let got: Vec<i64> = got.into_iter().map(|r| r.unwrap().unwrap()).collect();
            assert_eq!(got, (1..20).map(|k| k * 10).collect::<Vec<i64>>());
        });
        let mailbox = MAILBOX.with(Arc::clone);
        let inner = mailbox.inner.lock();
        assert!(
            inner.done.is_empty() && inner.waiting.is_empty(),
            "nothing left behind"
        );
    }
}
