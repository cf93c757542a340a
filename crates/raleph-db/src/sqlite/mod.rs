//! The embedded SQLite backend: one write connection owned by the pipeline, a small pool of
//! read connections for the API. WAL mode lets reads run while a write commits.

mod checkpoint;
mod read;
mod schema;
mod write;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};

pub use read::SqliteReader;
pub use schema::SCHEMA_VERSION;
pub use write::SqliteWriter;

pub use crate::Durability;
use crate::{Result, StoreError};

pub(crate) fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(Box::new(e))
}

/// Opens (creating and migrating if needed) the database at `path`.
pub fn open(path: &Path, durability: Durability) -> Result<(SqliteWriter, SqliteReader)> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| StoreError::Backend(Box::new(e)))?;
    }
    let mut conn = Connection::open(path).map_err(backend)?;
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
    schema::migrate(&mut conn)?;
    // Table statistics let the planner pick the most selective index when a query combines
    // filters (an address and a type, say); `optimize` refreshes only what changed enough.
    conn.execute_batch("PRAGMA optimize=0x10002")
        .map_err(backend)?;
    let reader = SqliteReader::new(Arc::new(ReadPool {
        path: path.to_owned(),
        idle: Mutex::new(Vec::new()),
    }));
    let checkpointer = checkpoint::Checkpointer::spawn(path)?;
    Ok((SqliteWriter::new(conn, checkpointer), reader))
}

fn configure(conn: &Connection) -> Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(backend)?;
    conn.pragma_update(None, "foreign_keys", "OFF")
        .map_err(backend)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(backend)?;
    // A larger page cache made commits slower (SQLite walks its page hash at the end of every
    // transaction); pages that fall out of it come back cheaply from the memory map.
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)
        .map_err(backend)?;
    conn.pragma_update(None, "mmap_size", MMAP_BYTES)
        .map_err(backend)?;
    Ok(())
}

/// The writer's page cache, in KiB.
const WRITER_CACHE_KIB: i64 = 32 * 1024;
/// Database pages are read through a memory map of up to this many bytes: no read system
/// call and no private copy per connection (the OS page cache is shared by all of them).
const MMAP_BYTES: i64 = 1 << 30;

/// Read connections, opened on demand and kept for reuse.
pub(crate) struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

/// Most idle read connections kept open.
const MAX_IDLE_READERS: usize = 16;

impl ReadPool {
    pub(crate) fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => {
                let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let conn = Connection::open_with_flags(&self.path, flags).map_err(backend)?;
                conn.busy_timeout(std::time::Duration::from_secs(10))
                    .map_err(backend)?;
                conn.pragma_update(None, "mmap_size", MMAP_BYTES)
                    .map_err(backend)?;
                conn
            }
        };
        let result = f(&conn);
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        result
    }
}

#[cfg(test)]
mod tests;
