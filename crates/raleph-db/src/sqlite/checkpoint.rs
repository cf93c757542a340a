//! WAL checkpoints on a thread of their own.
//!
//! SQLite's automatic checkpoint runs inside the committing connection: with one writer that
//! is about a fifth of the writer thread's time under ingest, spent copying WAL pages back into
//! the database while the next batch waits. The writer turns the automatic checkpoint off and
//! this thread copies pages on its own connection instead, on the other core:
//!
//! - every [`PASSIVE_EVERY`] a passive checkpoint copies what it can without taking any lock a
//!   writer or reader needs;
//! - a passive checkpoint cannot finish while the writer keeps appending, so the WAL would only
//!   grow; once it holds more than [`RESTART_FRAMES`] frames a restart checkpoint briefly holds
//!   the writer back, copies the few frames the passive pass missed, and lets the next write
//!   start the log over. Its busy timeout is short: if readers hold it up, it tries again later.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use super::backend;
use crate::Result;

/// Time between passive checkpoints.
const PASSIVE_EVERY: Duration = Duration::from_millis(100);
/// WAL frames (pages) past which a restart checkpoint runs: 16 384 × 4 KiB = 64 MiB.
const RESTART_FRAMES: i64 = 16_384;
/// How long a restart checkpoint waits for the writer and for readers before giving up.
const RESTART_BUSY_TIMEOUT: Duration = Duration::from_millis(200);

/// Owns the checkpoint thread; dropping it stops the thread.
pub(crate) struct Checkpointer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub(crate) fn spawn(path: &Path) -> Result<Self> {
        let conn = Connection::open(path).map_err(backend)?;
        conn.busy_timeout(RESTART_BUSY_TIMEOUT).map_err(backend)?;
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("raleph-checkpoint".into())
            .spawn(move || run(conn, &signal))
            .map_err(|e| crate::StoreError::Backend(Box::new(e)))?;
        Ok(Checkpointer {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let (stopped, wake) = &*self.stop;
        *stopped.lock().unwrap_or_else(|p| p.into_inner()) = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(conn: Connection, stop: &(Mutex<bool>, Condvar)) {
    let (stopped, wake) = stop;
    loop {
        let guard = stopped.lock().unwrap_or_else(|p| p.into_inner());
        let (guard, _) = wake
            .wait_timeout_while(guard, PASSIVE_EVERY, |stopped| !*stopped)
            .unwrap_or_else(|p| p.into_inner());
        if *guard {
            return;
        }
        drop(guard);
        match checkpoint(&conn, "PASSIVE") {
            Ok((_, frames, _)) if frames >= RESTART_FRAMES => {
                if let Err(e) = checkpoint(&conn, "RESTART") {
                    tracing::warn!("WAL restart checkpoint failed: {e}");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("WAL checkpoint failed: {e}"),
        }
    }
}

/// Runs one checkpoint; returns (blocked, frames in the WAL, frames checkpointed).
fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<(i64, i64, i64)> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })
}
