//! The embedded SQLite backend: one write connection owned by the pipeline, a small pool of
//! read connections for the API. WAL mode lets reads run while a write commits.

mod checkpoint;
mod conn;
mod read;
mod schema;
mod write;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

pub use raleph_sqlite_tuning::Resident;
use raleph_sqlite_tuning::{page_cache, wal_batch};
pub use read::SqliteReader;
pub use schema::SCHEMA_VERSION;
pub use write::SqliteWriter;

pub use crate::Durability;
use crate::{Result, StoreError};

pub(crate) fn backend(e: rusqlite::Error) -> StoreError {
    use rusqlite::ffi::ErrorCode as C;
    // A stored value that does not read as what the store writes there (`Columns::corrupt`).
    if let rusqlite::Error::FromSqlConversionFailure(column, _, reason) = &e {
        return StoreError::Corrupt(format!("column {column}: {reason}"));
    }
    // Failures of the file or the machine, not of the statement: a full disk, an I/O error,
    // a file that cannot be opened or written, no memory.
    let unavailable = e.sqlite_error_code().is_some_and(|code| {
        matches!(
            code,
            C::DiskFull
                | C::SystemIoFailure
                | C::CannotOpen
                | C::ReadOnly
                | C::OutOfMemory
                | C::FileLockingProtocolFailed
        )
    });
    if unavailable {
        StoreError::Unavailable(Box::new(e))
    } else {
        StoreError::Backend(Box::new(e))
    }
}

/// Whether this process's SQLite uses the page cache wrapper (see `page_cache`): it does when
/// [`open`] ran before anything else initialized SQLite.
pub fn page_cache_wrapped() -> bool {
    page_cache::install()
}

/// Opens (creating and migrating if needed) the database at `path`.
pub fn open(path: &Path, durability: Durability) -> Result<(SqliteWriter, SqliteReader)> {
    // First, before anything initializes SQLite (registering a VFS does).
    if !page_cache::install() {
        tracing::debug!("SQLite was initialized before the page cache wrapper could be installed");
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| StoreError::Backend(Box::new(e)))?;
    }
    let mut conn = match durability {
        // The log is written once per commit, at its sync (see `wal_batch`). Without a sync
        // per commit the buffered frames could stay unwritten while readers expect them.
        Durability::Full => {
            wal_batch::register().map_err(|e| StoreError::Backend(e.into()))?;
            Connection::open_with_flags_and_vfs(path, OpenFlags::default(), wal_batch::NAME)
        }
        Durability::Normal => Connection::open(path),
    }
    .map_err(backend)?;
    configure(&conn)?;
    let synchronous = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", synchronous)
        .map_err(backend)?;
    // Checkpoints run on their own thread (see `checkpoint`), not inside the writer's commits.
    conn.pragma_update(None, "wal_autocheckpoint", 0)
        .map_err(backend)?;
    // After a checkpoint restarts the log, the WAL file is cut back to this size.
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
        .map_err(backend)?;
    // Savepoints (one per message) keep their undo pages in memory, not in a temporary file.
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(backend)?;
    // Plans that do not depend on bound values, as on the read connections: otherwise a new
    // value in a range (such as the pending queue's due time, checked on every round of the
    // writer) expires the statement, which is then prepared again (6 % of a relaying writer).
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(backend)?;
    schema::migrate(&mut conn)?;
    // Table statistics let the planner pick the most selective index when a query combines
    // filters (an address and a type, say); `optimize` refreshes only what changed enough.
    conn.execute_batch("PRAGMA optimize=0x10002")
        .map_err(backend)?;
    let statistics = Arc::new(AtomicU64::new(0));
    let reader = SqliteReader::new(Arc::new(ReadPool {
        path: path.to_owned(),
        idle: Mutex::new(Vec::new()),
        statistics: statistics.clone(),
    }));
    let checkpointer = checkpoint::Checkpointer::spawn(path)?;
    Ok((SqliteWriter::new(conn, checkpointer, statistics), reader))
}

fn configure(conn: &Connection) -> Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(backend)?;
    conn.pragma_update(None, "foreign_keys", "OFF")
        .map_err(backend)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(backend)?;
    // Its size once had to stay small (SQLite walked its page hash at the end of every
    // transaction that split a page, until `page_cache` stopped that).
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)
        .map_err(backend)?;
    conn.pragma_update(None, "mmap_size", MMAP_BYTES)
        .map_err(backend)?;
    Ok(())
}

/// The writer's page cache, in KiB. Pages changed since the last checkpoint are read back from
/// the WAL with a system call each when they fall out of it (the memory map covers only the
/// database file); 96 MiB rather than 32 cut the writer's CPU per AGGREGATE by about a sixth and
/// lifted 100 000-message ingest by ~8 % (BENCHMARKS.md, session 10), for ~65 MiB more RSS.
const WRITER_CACHE_KIB: i64 = 96 * 1024;
/// The writer reads database pages through a memory map of up to this many bytes: no read
/// system call and no private copy.
const MMAP_BYTES: i64 = 1 << 30;
/// Each read connection's page cache, in KiB (at most `MAX_IDLE_READERS` idle connections).
const READER_CACHE_KIB: i64 = 8 * 1024;
/// Prepared statements each read connection keeps.
const READER_STATEMENTS: usize = 64;

/// Read connections, opened on demand and kept for reuse.
pub(crate) struct ReadPool {
    path: PathBuf,
    /// Idle connections, with the statistics generation they were opened in.
    idle: Mutex<Vec<(Connection, u64)>>,
    /// Bumped by the writer when it refreshes the planner's statistics. A connection reads
    /// them once, when it opens, and would otherwise plan with those of its first minute
    /// forever (say, of an empty store): older connections are closed instead of reused.
    statistics: Arc<AtomicU64>,
}

/// Most idle read connections kept open.
const MAX_IDLE_READERS: usize = 16;

impl ReadPool {
    pub(crate) fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let current = self.statistics.load(Ordering::Acquire);
        let pooled = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            idle.retain(|(_, generation)| *generation == current);
            idle.pop()
        };
        let (conn, generation) = match pooled {
            Some(pooled) => pooled,
            None => {
                let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let conn = Connection::open_with_flags(&self.path, flags).map_err(backend)?;
                conn.busy_timeout(std::time::Duration::from_secs(10))
                    .map_err(backend)?;
                // Pages are read into the connection's own cache, not through a memory map:
                // each connection maps the file separately, and the pages a query walks count
                // once per connection in the node's resident size (gigabytes on a large store
                // under concurrent queries, for no speed gained over this cache).
                conn.pragma_update(None, "mmap_size", 0).map_err(backend)?;
                conn.pragma_update(None, "cache_size", -READER_CACHE_KIB)
                    .map_err(backend)?;
                // List queries differ in text with their filters and the number of values of
                // each: keep more of them prepared than rusqlite's default 16.
                conn.set_prepared_statement_cache_capacity(READER_STATEMENTS);
                // Plans from the statement's text and the statistics, not from the values
                // bound to it: with STAT4 samples, binding a value to a range or tag term
                // (time ranges, cursors, tags) otherwise marks the statement expired and
                // each run prepares it again (~200 000 instructions, a third of such a
                // page). The lists that need a particular index name it.
                conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
                    .map_err(backend)?;
                (conn, current)
            }
        };
        let result = f(&conn);
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE_READERS && generation == self.statistics.load(Ordering::Acquire) {
            idle.push((conn, generation));
        }
        result
    }
}

#[cfg(test)]
mod tests;
