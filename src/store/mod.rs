//! The SQLite store: connection pools, pragmas, embedded numbered migrations.
//!
//! SQL lives in this module and its children only. There are two pools on one file: a pool of
//! read-only connections for concurrent readers (WAL lets them run beside the writer) and a single
//! writer connection, so writers queue in order instead of spinning on `SQLITE_BUSY`. Every write
//! runs in a `BEGIN IMMEDIATE` transaction. All work runs on tokio's blocking pool, never on an
//! actix worker thread.

pub mod api_keys;
pub mod audit;
pub mod cleanup;
pub mod sessions;
pub mod tenants;
pub mod users;

use std::path::Path;
use std::time::Duration;

use r2d2::{Pool, PooledConnection};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use rusqlite_migration::{Migrations, M};

use crate::config::{DatabaseSettings, Synchronous};
use crate::error::{Error, Result};

/// The embedded migrations, in order. Append only; never edit a shipped one.
pub fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(include_str!("../../migrations/0001_foundation.sql")),
        M::up(include_str!("../../migrations/0002_api_keys.sql")),
    ])
}

/// Handle to the database: cheap to clone.
#[derive(Clone)]
pub struct Db {
    readers: Pool<SqliteConnectionManager>,
    writer: Pool<SqliteConnectionManager>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Db")
    }
}

fn apply_pragmas(
    conn: &Connection,
    sync: Synchronous,
    busy_ms: u64,
    read_only: bool,
) -> rusqlite::Result<()> {
    let sync = match sync {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
        Synchronous::Extra => "EXTRA",
    };
    conn.busy_timeout(Duration::from_millis(busy_ms))?;
    conn.execute_batch(&format!(
        "PRAGMA foreign_keys = ON; PRAGMA synchronous = {sync}; PRAGMA temp_store = MEMORY; \
         PRAGMA cache_size = -8000;{}",
        if read_only {
            " PRAGMA query_only = ON;"
        } else {
            ""
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
            conn.pragma_update(None, "foreign_keys", "ON")?;
            migrations()
                .to_latest(&mut conn)
                .map_err(|e| Error::internal(format!("migration failed: {e}")))?;
        }
        let (sync, busy) = (cfg.synchronous, cfg.busy_timeout_ms);
        let writer_mgr = SqliteConnectionManager::file(path)
            .with_init(move |c| apply_pragmas(c, sync, busy, false));
        let reader_mgr = SqliteConnectionManager::file(path)
            .with_flags(OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .with_init(move |c| apply_pragmas(c, sync, busy, true));
        let timeout = Duration::from_millis(busy.max(1_000));
        let writer = Pool::builder()
            .max_size(1)
            .connection_timeout(timeout)
            .build(writer_mgr)?;
        let readers = Pool::builder()
            .max_size(cfg.pool_size.max(1))
            .min_idle(Some(1))
            .connection_timeout(timeout)
            .build(reader_mgr)?;
        Ok(Db { readers, writer })
    }

    /// Runs a read on the blocking pool.
    pub async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let pool = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.get()?;
            f(&conn)
        })
        .await
        .map_err(Error::internal)?
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

    /// Like [`Db::write`], also returning how long the write lock was held (begin to commit).
    pub async fn write_timed<T, F>(&self, f: F) -> Result<(T, Duration)>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    {
        let pool = self.writer.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get()?;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
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

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Copies a live database to `dest` with SQLite's online backup API.
pub fn backup(db: &Db, dest: &Path) -> Result<()> {
    let conn = db.readers.get()?;
    let mut out = Connection::open(dest)?;
    let backup = rusqlite::backup::Backup::new(&conn, &mut out)?;
    // One step copies every page inside a single read transaction: a consistent snapshot that,
    // under WAL, never blocks the server's writers (small steps would restart on every write).
    match backup.step(-1)? {
        rusqlite::backup::StepResult::Done => Ok(()),
        other => Err(Error::Unavailable(format!(
            "backup did not finish: {other:?}"
        ))),
    }
}
