//! The SQLite store: connections, pragmas, embedded numbered migrations.
//!
//! SQL lives in this module and its children only. There are two kinds of connection on one
//! file: read-only connections, each owned by a thread of the [`readers`] pool (WAL lets them
//! run beside the writer), and a single writer connection, so writers queue in order instead of
//! spinning on `SQLITE_BUSY`. Every write runs in a `BEGIN IMMEDIATE` transaction on tokio's
//! blocking pool. No SQLite call ever runs on an actix worker thread.

pub mod api_keys;
pub mod audit;
pub mod brands;
pub mod cleanup;
pub mod handshake;
pub mod magic_links;
pub mod portal_tokens;
pub mod readers;
pub mod refresh_tokens;
pub mod sessions;
pub mod signing_keys;
pub mod tenants;
pub mod users;

use std::path::Path;
use std::time::Duration;

use r2d2::{Pool, PooledConnection};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use rusqlite_migration::{Migrations, M};

use crate::config::{DatabaseSettings, Synchronous};
use crate::error::{Error, Result};

/// The embedded migrations, in order. Append only; never edit a shipped one.
///
/// Each one ends by checking foreign keys (`PRAGMA foreign_key_check`), because they run with
/// enforcement off: a table rebuild (0006) drops the old table, which with enforcement on would
/// fire the `ON DELETE` actions of the tables pointing at it.
pub fn migrations() -> Migrations<'static> {
    Migrations::new(
        MIGRATIONS
            .iter()
            .map(|sql| M::up(sql).foreign_key_check())
            .collect(),
    )
}

/// The migration scripts, in order.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_foundation.sql"),
    include_str!("../../migrations/0002_api_keys.sql"),
    include_str!("../../migrations/0003_jwt.sql"),
    include_str!("../../migrations/0004_browser.sql"),
    include_str!("../../migrations/0005_handshake.sql"),
    include_str!("../../migrations/0006_session_token_id.sql"),
    include_str!("../../migrations/0007_users_updated_index.sql"),
    include_str!("../../migrations/0008_api_key_usage.sql"),
    include_str!("../../migrations/0009_api_keys_verify_index.sql"),
    include_str!("../../migrations/0010_api_keys_verify_narrow.sql"),
];

/// How many migrations the binary carries (the schema version of an up-to-date file).
pub fn migrations_len() -> usize {
    MIGRATIONS.len()
}

/// Handle to the database: cheap to clone.
#[derive(Clone)]
pub struct Db {
    readers: readers::Readers,
    writer: Pool<SqliteConnectionManager>,
    sync: Synchronous,
    _alive: std::sync::Arc<()>,
}

/// The writer connection with `synchronous=NORMAL` for one relaxed write. Dropping it puts the
/// configured setting back on every way out — commit, error, or a panic in the write, which
/// before returned the connection to the pool still relaxed, so every later write, a revoke
/// included, committed without its fsync.
struct RelaxedSync {
    conn: PooledConnection<SqliteConnectionManager>,
    normal: &'static str,
}

impl Drop for RelaxedSync {
    fn drop(&mut self) {
        if let Err(e) = self.conn.pragma_update(None, "synchronous", self.normal) {
            tracing::warn!(error = %e, "could not restore the writer's synchronous setting");
        }
    }
}

/// How often the checkpointer folds the WAL back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// Runs `PRAGMA wal_checkpoint(PASSIVE)` on its own connection until every `Db` handle is gone.
/// A passive checkpoint takes no write lock, so writers never wait for it, and no commit pays
/// for a checkpoint (the writer's auto-checkpoint is off).
fn spawn_checkpointer(path: &Path, busy_ms: u64, alive: std::sync::Weak<()>) {
    let path = path.to_path_buf();
    let _ = std::thread::Builder::new()
        .name("gatehouse-checkpoint".into())
        .spawn(move || {
            let Ok(conn) = Connection::open(&path) else {
                return;
            };
            let _ = conn.busy_timeout(Duration::from_millis(busy_ms));
            while alive.upgrade().is_some() {
                std::thread::sleep(CHECKPOINT_EVERY);
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "WAL checkpoint failed");
                }
            }
        });
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Db")
    }
}

fn sync_name(sync: Synchronous) -> &'static str {
    match sync {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
        Synchronous::Extra => "EXTRA",
    }
}

/// How many reader threads `database.pool_size` asks for: 0 means one per core, at least 2.
/// Reads are CPU work once their pages are cached, so threads beyond the cores only add
/// hand-offs: on one core, 8 readers cost ≈12 % of the cache-miss verify throughput against 2
/// (`BENCHMARKS.md`, section 4).
fn reader_threads(configured: u32) -> usize {
    match configured {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get().max(2)),
        n => n as usize,
    }
}

fn apply_pragmas(
    conn: &Connection,
    sync: Synchronous,
    busy_ms: u64,
    read_only: bool,
) -> rusqlite::Result<()> {
    let sync = sync_name(sync);
    conn.busy_timeout(Duration::from_millis(busy_ms))?;
    // Plans do not depend on the values bound. This build's SQLite keeps `ANALYZE`'s stat4
    // samples, and with them present it re-prepares a statement whenever a bound value that
    // its plan estimated with changes: every key look-up then parsed and planned its query
    // again, 12 µs instead of 1 µs over 100 000 keys (`BENCHMARKS.md`, section 4). Gatehouse
    // never runs `ANALYZE`; an operator's `PRAGMA optimize` must not slow it down.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    conn.execute_batch(&format!(
        "PRAGMA foreign_keys = ON; PRAGMA synchronous = {sync}; PRAGMA temp_store = MEMORY; \
         PRAGMA cache_size = -8000;{}",
        if read_only {
            // No `mmap_size`: mapping the file saved 8 % of the CPU of a verify that misses the
            // key cache (20.3 -> 18.7 us over 100 000 keys), but RSS counts the mapped file once
            // per reader connection, and a soak showed the server's RSS jumping between 86 and
            // 217 MiB — a figure an operator would read as a leak. Each reader keeps its own
            // page cache (`cache_size`) instead.
            " PRAGMA query_only = ON;"
        } else {
            // The checkpointer thread folds the WAL back; a commit never runs a checkpoint
            // (measured: every ~1000 pages, the auto-checkpoint made a cleanup commit take
            // 8-10 ms longer, with its fsyncs, and its transaction twice the budget).
            " PRAGMA wal_autocheckpoint = 0;"
        }
    ))
}

impl Db {
    /// Opens (creating if needed) the database, sets WAL, and runs pending migrations.
    pub fn open(path: &Path, cfg: &DatabaseSettings) -> Result<Db> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| {
                    Error::internal(format!("cannot create {}: {e}", dir.display()))
                })?;
            }
        }
        {
            let mut conn = Connection::open(path)?;
            conn.busy_timeout(Duration::from_millis(cfg.busy_timeout_ms))?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            // Off while migrating (SQLite's procedure for rebuilding a table); each migration
            // checks the keys before it commits. The pools' connections turn it on.
            conn.pragma_update(None, "foreign_keys", "OFF")?;
            migrations()
                .to_latest(&mut conn)
                .map_err(|e| Error::internal(format!("migration failed: {e}")))?;
        }
        let (sync, busy) = (cfg.synchronous, cfg.busy_timeout_ms);
        let writer_mgr = SqliteConnectionManager::file(path)
            .with_init(move |c| apply_pragmas(c, sync, busy, false));
        let timeout = Duration::from_millis(busy.max(1_000));
        let writer = Pool::builder()
            .max_size(1)
            .connection_timeout(timeout)
            .build(writer_mgr)?;
        let reader_path = path.to_path_buf();
        let readers = readers::Readers::start(reader_threads(cfg.pool_size), move || {
            let c = Connection::open_with_flags(
                &reader_path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            apply_pragmas(&c, sync, busy, true)?;
            Ok(c)
        })?;
        let alive = std::sync::Arc::new(());
        spawn_checkpointer(path, busy, std::sync::Arc::downgrade(&alive));
        Ok(Db {
            readers,
            writer,
            sync,
            _alive: alive,
        })
    }

    /// Runs a read on a thread of the read pool.
    pub async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.readers.run(f).await
    }

    /// The same as [`Db::read`], for code already on a blocking thread (start-up, the CLI).
    pub fn read_blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.readers.run_blocking(f)
    }

    /// Runs a write in a `BEGIN IMMEDIATE` transaction on the blocking pool; commits on `Ok`.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    {
        let pool = self.writer.clone();
        tokio::task::spawn_blocking(move || Self::write_with(&pool, f))
            .await
            .map_err(Error::internal)?
    }

    /// The same as [`Db::write`], for code already on a blocking thread.
    pub fn write_blocking<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Transaction<'_>) -> Result<T>,
    {
        Self::write_with(&self.writer, f)
    }

    fn write_with<T, F>(pool: &Pool<SqliteConnectionManager>, f: F) -> Result<T>
    where
        F: FnOnce(&Transaction<'_>) -> Result<T>,
    {
        let mut conn = pool.get()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// [`Db::write_relaxed_timed`] without the timing.
    pub async fn write_relaxed<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    {
        Ok(self.write_relaxed_timed(f).await?.0)
    }

    /// A write whose loss in a power cut is harmless (deleting expired rows, last-use times):
    /// committed with `synchronous=NORMAL` (no fsync; the next durable commit syncs it too).
    /// Returns how long the write lock was held, begin to commit.
    pub async fn write_relaxed_timed<T, F>(&self, f: F) -> Result<(T, Duration)>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    {
        let pool = self.writer.clone();
        let normal = sync_name(self.sync);
        tokio::task::spawn_blocking(move || {
            let mut relaxed = RelaxedSync {
                conn: pool.get()?,
                normal,
            };
            relaxed.conn.pragma_update(None, "synchronous", "NORMAL")?;
            let tx = relaxed
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let start = std::time::Instant::now();
            let out = f(&tx)?;
            tx.commit()?;
            Ok((out, start.elapsed()))
        })
        .await
        .map_err(Error::internal)?
    }

    /// A raw writer connection, for the backup and maintenance commands.
    pub fn writer_connection(&self) -> Result<PooledConnection<SqliteConnectionManager>> {
        Ok(self.writer.get()?)
    }

    /// Checks the database answers (`/healthz`).
    pub async fn ping(&self) -> Result<()> {
        self.read(|c| {
            c.query_row("SELECT 1", [], |_| Ok(()))?;
            Ok(())
        })
        .await
    }

    /// The schema version the file is at.
    pub async fn schema_version(&self) -> Result<usize> {
        self.read(|c| {
            let v: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            Ok(usize::try_from(v).unwrap_or(0))
        })
        .await
    }
}

/// SQLite's query plan for `sql` (parameters bound to NULL), its steps joined by `; `.
#[cfg(test)]
pub(crate) fn query_plan(c: &Connection, sql: &str) -> String {
    let mut st = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let nulls = vec![rusqlite::types::Null; st.parameter_count()];
    let rows = st
        .query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))
        .unwrap();
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .unwrap()
        .join("; ")
}

/// The single integer `sql` answers (a `count(*)`).
#[cfg(test)]
pub(crate) fn count(c: &Connection, sql: &str) -> i64 {
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Seconds since the Unix epoch (from `SystemTime`: chrono's `Utc::now` costs three times the
/// instructions, once or more on every verify).
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Copies a live database to `dest` with SQLite's online backup API.
pub fn backup(db: &Db, dest: &Path) -> Result<()> {
    let dest = dest.to_path_buf();
    db.read_blocking(move |conn| {
        let mut out = Connection::open(dest)?;
        let backup = rusqlite::backup::Backup::new(conn, &mut out)?;
        // One step copies every page inside a single read transaction: a consistent snapshot
        // that, under WAL, never blocks the server's writers (small steps would restart on
        // every write). A step that finds the source busy for a moment (the WAL being reset
        // by a checkpoint) is retried, as SQLite's documentation says, for up to 10 s.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match backup.step(-1)? {
                rusqlite::backup::StepResult::Done => return Ok(()),
                other if std::time::Instant::now() >= deadline => {
                    return Err(Error::Unavailable(format!(
                        "backup did not finish: {other:?}"
                    )))
                }
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn writer_sync(db: &Db) -> i64 {
        db.write(|tx| Ok(tx.query_row("PRAGMA synchronous", [], |r| r.get(0))?))
            .await
            .unwrap()
    }

    /// A relaxed write gives the writer back with the configured `synchronous`, whether it
    /// commits, fails or panics.
    #[tokio::test]
    async fn a_relaxed_write_restores_durability_on_every_way_out() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("g.db"), &DatabaseSettings::default()).unwrap();
        assert_eq!(writer_sync(&db).await, 2, "FULL by default");
        let inside = db
            .write_relaxed(|tx| Ok(tx.query_row("PRAGMA synchronous", [], |r| r.get::<_, i64>(0))?))
            .await
            .unwrap();
        assert_eq!(inside, 1, "NORMAL inside the relaxed write");
        assert_eq!(writer_sync(&db).await, 2, "after a commit");
        let failed = db
            .write_relaxed(|tx| -> Result<()> {
                tx.execute("INSERT INTO no_such_table VALUES (1)", [])?;
                Ok(())
            })
            .await;
        assert!(failed.is_err());
        assert_eq!(writer_sync(&db).await, 2, "after an error");
        let panicked = db
            .write_relaxed(|_| -> Result<()> { panic!("a failing batch") })
            .await;
        assert!(panicked.is_err());
        assert_eq!(writer_sync(&db).await, 2, "after a panic");
    }
}
