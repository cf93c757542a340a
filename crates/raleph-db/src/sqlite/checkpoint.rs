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
//!   start the log over. A writer with a backlog starts its next transaction microseconds after
//!   the last, so the restart asks for a turn ([`Checkpointer::yield_to_restart`]): the writer
//!   waits before its next transaction until the restart is done (at most
//!   [`MAX_WRITER_WAIT`]), and the restart polls for the lock every millisecond. Without the
//!   turn the WAL grew to 900 MB during a million-message ingest. If readers hold the restart
//!   up past [`RESTART_BUSY_TIMEOUT`], it tries again later.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use super::backend;
use crate::Result;

/// Time between passive checkpoints.
const PASSIVE_EVERY: Duration = Duration::from_millis(if cfg!(test) { 10 } else { 100 });
/// WAL frames (pages) past which a restart checkpoint runs: 16 384 × 4 KiB = 64 MiB.
const RESTART_FRAMES: i64 = if cfg!(test) { 256 } else { 16_384 };
/// How long a restart checkpoint waits for the writer and for readers before giving up.
const RESTART_BUSY_TIMEOUT: Duration = Duration::from_millis(500);
/// Longest the writer waits for a restart checkpoint before its next transaction.
const MAX_WRITER_WAIT: Duration = Duration::from_millis(500);

/// Owns the checkpoint thread; dropping it stops the thread.
pub(crate) struct Checkpointer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    turn: Arc<Turn>,
    thread: Option<JoinHandle<()>>,
}

/// A restart checkpoint's request for the writer to pause between two transactions.
#[derive(Default)]
struct Turn {
    wanted: Mutex<bool>,
    done: Condvar,
}

impl Turn {
    fn set(&self, wanted: bool) {
        *self.wanted.lock().unwrap_or_else(|p| p.into_inner()) = wanted;
        if !wanted {
            self.done.notify_all();
        }
    }
}

impl Checkpointer {
    pub(crate) fn spawn(path: &Path) -> Result<Self> {
        let conn = Connection::open(path).map_err(backend)?;
        // Poll every millisecond rather than SQLite's growing sleeps, so the restart takes the
        // lock as soon as the writer pauses for it.
        conn.busy_handler(Some(poll_each_millisecond))
            .map_err(backend)?;
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let turn = Arc::new(Turn::default());
        let (signal, asks) = (Arc::clone(&stop), Arc::clone(&turn));
        let thread = std::thread::Builder::new()
            .name("raleph-checkpoint".into())
            .spawn(move || run(conn, &signal, &asks))
            .map_err(|e| crate::StoreError::Backend(Box::new(e)))?;
        Ok(Checkpointer {
            stop,
            turn,
            thread: Some(thread),
        })
    }

    /// Called by the writer before each transaction: waits while a restart checkpoint asks
    /// for its turn, up to [`MAX_WRITER_WAIT`].
    pub(crate) fn yield_to_restart(&self) {
        let wanted = self.turn.wanted.lock().unwrap_or_else(|p| p.into_inner());
        if *wanted {
            let _ = self
                .turn
                .done
                .wait_timeout_while(wanted, MAX_WRITER_WAIT, |wanted| *wanted);
        }
    }
}

fn poll_each_millisecond(attempts: i32) -> bool {
    std::thread::sleep(Duration::from_millis(1));
    Duration::from_millis(attempts.max(0) as u64) < RESTART_BUSY_TIMEOUT
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

fn run(conn: Connection, stop: &(Mutex<bool>, Condvar), turn: &Turn) {
    let (stopped, wake) = stop;
    // A checkpoint fails every 100 ms while the disk is full: said once a minute at most.
    let mut last_failure_logged: Option<std::time::Instant> = None;
    let mut log_failure = |what: &str, e: &rusqlite::Error| {
        if last_failure_logged.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
            tracing::warn!("WAL {what} failed: {e}");
            last_failure_logged = Some(std::time::Instant::now());
        }
    };
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
                turn.set(true);
                let restarted = checkpoint(&conn, "RESTART");
                turn.set(false);
                if let Err(e) = restarted {
                    log_failure("restart checkpoint", &e);
                }
            }
            Ok(_) => {}
            Err(e) => log_failure("checkpoint", &e),
        }
    }
}

/// Runs one checkpoint; returns (blocked, frames in the WAL, frames checkpointed).
fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<(i64, i64, i64)> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// A writer that starts each transaction right after the last still lets restart
    /// checkpoints in, so the WAL stays near the restart threshold instead of growing.
    #[test]
    fn a_busy_writer_yields_to_restart_checkpoints() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("wal.sqlite");
        let writer = Connection::open(&path).expect("open");
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
                 PRAGMA journal_size_limit = 0;
                 CREATE TABLE pages (id INTEGER PRIMARY KEY, bytes BLOB);",
            )
            .expect("schema");
        let checkpointer = Checkpointer::spawn(&path).expect("checkpointer");
        let started = Instant::now();
        let mut largest_wal = 0;
        let mut id = 0;
        while started.elapsed() < Duration::from_millis(1500) {
            checkpointer.yield_to_restart();
            writer.execute_batch("BEGIN IMMEDIATE").expect("begin");
            for _ in 0..32 {
                id += 1;
                writer
                    .execute(
                        "INSERT INTO pages (id, bytes) VALUES (?1, zeroblob(4000))",
                        [id],
                    )
                    .expect("insert");
            }
            writer.execute_batch("COMMIT").expect("commit");
            let wal = std::fs::metadata(dir.path().join("wal.sqlite-wal")).map_or(0, |m| m.len());
            largest_wal = largest_wal.max(wal);
        }
        // 1.5 s of back-to-back transactions write thousands of frames; restarts keep the
        // log within a few times the threshold.
        let frames_written = id / 32 * 33;
        let limit = 8 * RESTART_FRAMES as u64 * 4096;
        assert!(
            frames_written > 4 * RESTART_FRAMES,
            "{frames_written} frames"
        );
        assert!(largest_wal < limit, "WAL reached {largest_wal} bytes");
    }
}
