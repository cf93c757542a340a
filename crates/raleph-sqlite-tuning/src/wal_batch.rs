//! A SQLite VFS that writes the write-ahead log in one system call per commit.
//!
//! SQLite appends each WAL frame (a 24-byte header, then one 4 KiB page) with two separate
//! `pwrite`s. A commit of a batch of messages writes a few hundred frames, so the writer
//! thread spent about a third of its time in the kernel's buffered-write path, and the
//! frames, 4 120 bytes each, straddle the kernel's pages so most pages are touched twice.
//! This VFS is the platform's default VFS with one change: a WAL file keeps contiguous
//! writes in memory and hands them to the real file as one write when SQLite syncs it, reads
//! it, asks its size or truncates it, when a write is not contiguous, or past a size bound.
//!
//! Durability is unchanged: with `synchronous=FULL` a commit syncs the log before it is
//! acknowledged or made visible to readers, and the sync writes the buffer first. Only the
//! writer connection opens the database through this VFS; it is not used with
//! `synchronous=NORMAL`, where a commit does not sync (see `raleph_db::sqlite::open`).
//!
//! This is the crate's only unsafe code: it is SQLite's C interface for VFSes.

use std::ffi::{CStr, c_int, c_void};
use std::ptr;
use std::sync::OnceLock;

use rusqlite::ffi;

/// The name connections pass to open through this VFS.
pub const NAME: &CStr = c"raleph-wal-batch";

/// Past this many buffered bytes the buffer is written out, so a transaction larger than
/// the page cache (which spills frames before its commit) keeps memory bounded.
const MAX_BUFFERED: usize = 8 << 20;

/// Largest write handed to the real file at once: the Unix VFS keeps only the low 17 bits of
/// a write's length (it is made for page-sized writes), so longer writes go in pieces.
const MAX_WRITE: usize = 124 << 10;

/// Registers the VFS once per process (not as the default). Fails only if SQLite has no
/// default VFS to wrap.
pub fn register() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            // SAFETY: `sqlite3_vfs_find(NULL)` returns the default VFS, a static object that
            // lives as long as the process. The copy we register is leaked, so it does too;
            // SQLite links it into its list (it writes `pNext`), which is why it is mutable.
            unsafe {
                let real = ffi::sqlite3_vfs_find(ptr::null());
                if real.is_null() {
                    return Err("SQLite has no default VFS".into());
                }
                REAL.set(RealVfs(real)).ok();
                let mut vfs = ptr::read(real);
                vfs.zName = NAME.as_ptr();
                vfs.pNext = ptr::null_mut();
                vfs.szOsFile = (size_of::<WalFile>() as c_int) + (*real).szOsFile;
                vfs.xOpen = Some(open);
                // Every other entry (and `pAppData`, which the Unix VFS reads) stays the
                // default VFS's own, so those calls behave exactly as before.
                let vfs = Box::leak(Box::new(vfs));
                match ffi::sqlite3_vfs_register(vfs, 0) {
                    ffi::SQLITE_OK => Ok(()),
                    rc => Err(format!("registering the SQLite VFS failed ({rc})")),
                }
            }
        })
        .clone()
}

/// The default VFS, set once by `register`.
struct RealVfs(*mut ffi::sqlite3_vfs);
// SAFETY: the pointer names SQLite's static default VFS, safe to use from any thread.
unsafe impl Send for RealVfs {}
// SAFETY: as above; it is never written through.
unsafe impl Sync for RealVfs {}
static REAL: OnceLock<RealVfs> = OnceLock::new();

/// The file object SQLite allocates (`szOsFile` bytes) for a WAL file: our part, then the
/// real file object right after it. `repr(C)` keeps `base` first (SQLite sees a
/// `sqlite3_file`) and the size a multiple of 8, so the real object is aligned.
#[repr(C)]
struct WalFile {
    base: ffi::sqlite3_file,
    real: *mut ffi::sqlite3_file,
    pending: *mut Pending,
}

/// Bytes written by SQLite but not yet by the real file: `data` belongs at `offset`.
#[derive(Default)]
struct Pending {
    offset: i64,
    data: Vec<u8>,
}

static WAL_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 1,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: None,
    xShmLock: None,
    xShmBarrier: None,
    xShmUnmap: None,
    xFetch: None,
    xUnfetch: None,
};

unsafe extern "C" fn open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let Some(real_vfs) = REAL.get().map(|r| r.0) else {
        return ffi::SQLITE_ERROR;
    };
    // SAFETY: SQLite gives `file` as `szOsFile` writable bytes, at least the real VFS's size,
    // and `real_vfs` is the default VFS (see `register`).
    unsafe {
        let real_open = (*real_vfs).xOpen.expect("a VFS always has xOpen");
        if flags & ffi::SQLITE_OPEN_WAL == 0 {
            // Any other file is the real VFS's own object, in place: its methods see it as is.
            return real_open(real_vfs, name, file, flags, out_flags);
        }
        let wal = file.cast::<WalFile>();
        let real = file
            .cast::<u8>()
            .add(size_of::<WalFile>())
            .cast::<ffi::sqlite3_file>();
        let rc = real_open(real_vfs, name, real, flags, out_flags);
        if rc != ffi::SQLITE_OK {
            // SQLite closes a file only if `pMethods` is set.
            (*wal).base.pMethods = ptr::null();
            return rc;
        }
        (*wal).real = real;
        (*wal).pending = Box::into_raw(Box::default());
        (*wal).base.pMethods = &WAL_METHODS;
        ffi::SQLITE_OK
    }
}

/// The parts of an open WAL file. SAFETY (callers): `file` was opened by `open` with
/// `WAL_METHODS` and not yet closed; SQLite never calls one file's methods concurrently.
unsafe fn parts<'a>(
    file: *mut ffi::sqlite3_file,
) -> (
    &'a ffi::sqlite3_io_methods,
    *mut ffi::sqlite3_file,
    &'a mut Pending,
) {
    // SAFETY: see the function's contract.
    unsafe {
        let wal = file.cast::<WalFile>();
        let real = (*wal).real;
        (&*(*real).pMethods, real, &mut *(*wal).pending)
    }
}

/// Writes the buffered bytes to the real file.
unsafe fn flush(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: forwarded contract of `parts`.
    unsafe {
        let (methods, real, pending) = parts(file);
        if pending.data.is_empty() {
            return ffi::SQLITE_OK;
        }
        let write = methods.xWrite.expect("a file always has xWrite");
        let mut rc = ffi::SQLITE_OK;
        let mut offset = pending.offset;
        for chunk in pending.data.chunks(MAX_WRITE) {
            rc = write(
                real,
                chunk.as_ptr().cast::<c_void>(),
                chunk.len() as c_int,
                offset,
            );
            if rc != ffi::SQLITE_OK {
                break;
            }
            offset += chunk.len() as i64;
        }
        // On failure the bytes are dropped too: SQLite rolls the transaction back and writes
        // its frames again.
        pending.data.clear();
        rc
    }
}

unsafe extern "C" fn write(
    file: *mut ffi::sqlite3_file,
    data: *const c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    // SAFETY: SQLite passes a file opened by `open` and `amount` readable bytes at `data`.
    unsafe {
        let (_, _, pending) = parts(file);
        let contiguous = pending.offset + pending.data.len() as i64 == offset;
        if !pending.data.is_empty() && !contiguous {
            let rc = flush(file);
            if rc != ffi::SQLITE_OK {
                return rc;
            }
        }
        let (_, _, pending) = parts(file);
        if pending.data.is_empty() {
            pending.offset = offset;
        }
        let bytes = std::slice::from_raw_parts(data.cast::<u8>(), amount.max(0) as usize);
        pending.data.extend_from_slice(bytes);
        if pending.data.len() >= MAX_BUFFERED {
            return flush(file);
        }
        ffi::SQLITE_OK
    }
}

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite closes a file opened by `open` once; `pending` was made by Box::into_raw.
    unsafe {
        let flushed = flush(file);
        let (methods, real, _) = parts(file);
        let closed = methods.xClose.expect("a file always has xClose")(real);
        let wal = file.cast::<WalFile>();
        drop(Box::from_raw((*wal).pending));
        (*wal).pending = ptr::null_mut();
        if flushed != ffi::SQLITE_OK {
            flushed
        } else {
            closed
        }
    }
}

type Real = *mut ffi::sqlite3_file;

/// Calls a method of the real file. SAFETY (callers): as `parts`.
unsafe fn forward(
    file: *mut ffi::sqlite3_file,
    call: impl FnOnce(&ffi::sqlite3_io_methods, Real) -> c_int,
) -> c_int {
    // SAFETY: forwarded contract of `parts`.
    let (methods, real, _) = unsafe { parts(file) };
    call(methods, real)
}

/// Writes the buffer out, then calls a method of the real file: for every method that reads
/// the file, asks its size, or acts on its contents. SAFETY (callers): as `parts`.
unsafe fn after_flush(
    file: *mut ffi::sqlite3_file,
    call: impl FnOnce(&ffi::sqlite3_io_methods, Real) -> c_int,
) -> c_int {
    // SAFETY: forwarded contract of `parts`.
    unsafe {
        let rc = flush(file);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        forward(file, call)
    }
}

// The methods below are SQLite's calls on a file `open` made; SAFETY for each: SQLite passes
// that file and valid pointers for the call, and never calls one file's methods concurrently.

unsafe extern "C" fn read(
    file: *mut ffi::sqlite3_file,
    data: *mut c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    // SAFETY: see above.
    unsafe {
        after_flush(file, |m, real| {
            m.xRead.expect("a file has xRead")(real, data, amount, offset)
        })
    }
}

unsafe extern "C" fn truncate(file: *mut ffi::sqlite3_file, size: ffi::sqlite3_int64) -> c_int {
    // SAFETY: see above.
    unsafe {
        after_flush(file, |m, real| {
            m.xTruncate.expect("a file has xTruncate")(real, size)
        })
    }
}

unsafe extern "C" fn sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    // SAFETY: see above.
    unsafe {
        after_flush(file, |m, real| {
            m.xSync.expect("a file has xSync")(real, flags)
        })
    }
}

unsafe extern "C" fn file_size(
    file: *mut ffi::sqlite3_file,
    size: *mut ffi::sqlite3_int64,
) -> c_int {
    // SAFETY: see above.
    unsafe {
        after_flush(file, |m, real| {
            m.xFileSize.expect("a file has xFileSize")(real, size)
        })
    }
}

/// Controls may act on the file's contents (size hints, chunk sizes): after a flush.
unsafe extern "C" fn file_control(
    file: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    // SAFETY: see above.
    unsafe {
        after_flush(file, |m, real| {
            m.xFileControl.expect("a file has xFileControl")(real, op, arg)
        })
    }
}

unsafe extern "C" fn lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    // SAFETY: see above.
    unsafe {
        forward(file, |m, real| {
            m.xLock.expect("a file has xLock")(real, level)
        })
    }
}

unsafe extern "C" fn unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    // SAFETY: see above.
    unsafe {
        forward(file, |m, real| {
            m.xUnlock.expect("a file has xUnlock")(real, level)
        })
    }
}

unsafe extern "C" fn check_reserved_lock(file: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    // SAFETY: see above.
    unsafe {
        forward(file, |m, real| {
            m.xCheckReservedLock.expect("a file has xCheckReservedLock")(real, out)
        })
    }
}

unsafe extern "C" fn sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: see above.
    unsafe {
        forward(file, |m, real| {
            m.xSectorSize.expect("a file has xSectorSize")(real)
        })
    }
}

unsafe extern "C" fn device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: see above.
    unsafe {
        forward(file, |m, real| {
            m.xDeviceCharacteristics
                .expect("a file has xDeviceCharacteristics")(real)
        })
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::{Connection, OpenFlags, params};

    use super::*;

    fn open_batched(path: &std::path::Path) -> Connection {
        register().expect("register");
        let conn = Connection::open_with_flags_and_vfs(path, OpenFlags::default(), NAME)
            .expect("open through the VFS");
        conn.pragma_update(None, "journal_mode", "WAL")
            .expect("wal");
        conn.pragma_update(None, "synchronous", "FULL")
            .expect("full");
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .expect("no auto checkpoint");
        conn
    }

    /// Rows with incompressible, row-specific payloads, so a wrong or lost page shows.
    fn payload(i: i64) -> Vec<u8> {
        (0..700).map(|k| ((i * 31 + k * 7) % 251) as u8).collect()
    }

    fn check(conn: &Connection, rows: i64) {
        let integrity: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("integrity_check");
        assert_eq!(integrity, "ok");
        let mut stmt = conn
            .prepare("SELECT id, body FROM t ORDER BY id")
            .expect("prepare");
        let mut seen = 0;
        for row in stmt
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
            .expect("query")
        {
            let (id, body) = row.expect("row");
            assert_eq!(body, payload(id), "row {id}");
            seen += 1;
        }
        assert_eq!(seen, rows);
    }

    #[test]
    fn spills_restarts_and_reopens_keep_every_row() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.sqlite");
        let conn = open_batched(&path);
        // A tiny page cache makes SQLite spill frames to the log mid-transaction and read
        // them back, and one 20 000-row transaction passes the buffer bound several times.
        conn.pragma_update(None, "cache_size", 16).expect("cache");
        conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
            .expect("create");
        let insert = |from: i64, to: i64| {
            conn.execute_batch("BEGIN").expect("begin");
            for i in from..to {
                conn.execute(
                    "INSERT INTO t (id, body) VALUES (?1, ?2)",
                    params![i, payload(i)],
                )
                .expect("insert");
            }
            conn.execute_batch("COMMIT").expect("commit");
        };
        insert(0, 20_000);
        // A reader on the default VFS sees exactly what was committed.
        let reader =
            Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("reader");
        check(&reader, 20_000);
        // Checkpoint and restart the log from another connection, as the node's checkpointer
        // does; the next commits rewrite the log from its start.
        let other = Connection::open(&path).expect("checkpointer");
        for round in 0..5 {
            other
                .query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()))
                .expect("checkpoint");
            for k in 0..10 {
                let from = 20_000 + round * 1_000 + k * 100;
                insert(from, from + 100);
            }
        }
        check(&reader, 25_000);
        drop((conn, reader, other));
        check(&open_batched(&path), 25_000);
    }
}
