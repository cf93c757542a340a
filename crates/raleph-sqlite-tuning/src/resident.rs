//! Keeps the index file's pages in memory (`database_resident`), for hosts that page out
//! file pages nobody read lately whatever memory is free (the VMs this project measures on
//! run DAMON with a page-out scheme: pages untouched for about a minute leave the page cache).
//! There a first request for a list reads each of its rows back from disk, ~0.1 ms apiece on
//! a disk capped at ~15 000 reads per second: a 20-row page of an address takes 2–3 ms.
//!
//! A thread maps the file read-only and locks the mapping (`mlock`), which reads the file once
//! and keeps its pages in the page cache, where SQLite's reads and the checkpointer's writes
//! find them (the page cache is shared, so nothing here is ever stale). The mapping is never
//! read from Rust. Every few seconds the thread maps and locks what the file grew by; if the
//! file shrank, it starts over. The memory is the file's size, counted in the node's
//! resident set (`RssFile`), and at most half of the machine's memory is locked (a larger
//! file has only its start kept, with a warning). Locking needs `RLIMIT_MEMLOCK` of at least
//! the file's size (root, `ulimit -l unlimited`, systemd's `LimitMEMLOCK=infinity`): without
//! it the thread says so once and stops, and the node runs as without the option.
//!
//! This is one of the workspace's unsafe modules: `mmap`, `mlock` and `munmap` are FFI.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the file's size is checked for growth.
const GROWTH_CHECK: Duration = Duration::from_secs(5);

/// The locking thread, stopped (and the memory unlocked) when this is dropped.
pub struct Resident {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Resident {
    /// Starts keeping the file at `path` in memory.
    pub fn start(path: &Path) -> std::io::Result<Resident> {
        let path = path.to_owned();
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("raleph-resident".into())
            .spawn(move || keep(&path, &stopped))?;
        Ok(Resident {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Resident {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The thread: lock, then follow the file's growth until told to stop.
fn keep(path: &Path, stopped: &mpsc::Receiver<()>) {
    let mut locked = Locked::new(path.to_owned(), half_of_memory());
    let mut first = true;
    let mut warned_capped = false;
    loop {
        let result = locked.follow();
        if locked.capped && !warned_capped {
            warned_capped = true;
            tracing::warn!(
                file = %path.display(),
                kept_mib = locked.max >> 20,
                "the index file is larger than half of this machine's memory: only its first \
                 part is kept in memory (database_resident), so as not to starve the machine"
            );
        }
        match result {
            Ok(Some(grew)) if grew > 0 => {
                let mib = locked.len >> 20;
                if first {
                    tracing::info!(file = %path.display(), mib, "index file kept in memory");
                } else {
                    tracing::debug!(file = %path.display(), mib, "index file grew, kept in memory");
                }
                first = false;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(
                    file = %path.display(),
                    error = %e,
                    "cannot keep the index file in memory (database_resident): the lock limit \
                     (RLIMIT_MEMLOCK, `ulimit -l`) must be at least the file's size; going on \
                     without it"
                );
                return;
            }
        }
        match stopped.recv_timeout(GROWTH_CHECK) {
            Err(RecvTimeoutError::Timeout) => {}
            // Told to stop, or the handle is gone.
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// The locked mappings of one file, which together cover its first `len` bytes, at most
/// `max`.
struct Locked {
    path: PathBuf,
    regions: Vec<Region>,
    len: u64,
    max: u64,
    /// The file is longer than `max`.
    capped: bool,
}

impl Locked {
    fn new(path: PathBuf, max: u64) -> Self {
        Locked {
            path,
            regions: Vec::new(),
            len: 0,
            max,
            capped: false,
        }
    }

    /// Maps and locks what the file grew by since the last call (whole pages of memory).
    /// Returns how many bytes were added, `None` when the file is not there yet.
    fn follow(&mut self) -> std::io::Result<Option<u64>> {
        let file = match std::fs::File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let page = page_size();
        let file_len = file.metadata()?.len();
        self.capped = file_len > self.max;
        let size = file_len.min(self.max) / page * page;
        if size < self.len {
            // Shrunk (a VACUUM): start over rather than keep pages past its end.
            self.regions.clear();
            self.len = 0;
        }
        if size == self.len {
            return Ok(Some(0));
        }
        let region = Region::lock(&file, self.len, size - self.len)?;
        self.regions.push(region);
        let grew = size - self.len;
        self.len = size;
        Ok(Some(grew))
    }
}

/// One mapping of `len` bytes of a file, locked in memory; unmapped (and so unlocked) on
/// drop.
struct Region {
    addr: *mut libc::c_void,
    len: usize,
}

// The mapping is only ever unmapped, never read, so it may move between threads.
unsafe impl Send for Region {}

impl Region {
    fn lock(file: &std::fs::File, offset: u64, len: u64) -> std::io::Result<Region> {
        let too_big = || std::io::Error::other("file too large to map");
        let len = usize::try_from(len).map_err(|_| too_big())?;
        let offset = libc::off_t::try_from(offset).map_err(|_| too_big())?;
        // SAFETY: a new read-only shared mapping at an address the kernel picks; no Rust
        // reference ever points into it, so a later change or truncation of the file cannot
        // break an assumption of this program (a page past the file's end is never touched).
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                offset,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let region = Region { addr, len };
        // SAFETY: the range is the mapping just made. `mlock` reads every page in and keeps it.
        if unsafe { libc::mlock(region.addr, region.len) } != 0 {
            // Dropping `region` unmaps it.
            return Err(std::io::Error::last_os_error());
        }
        Ok(region)
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `lock`, unmapped once; nothing refers into it.
        unsafe {
            libc::munmap(self.addr, self.len);
        }
    }
}

/// At most this much is locked: memory locked past it would leave the rest of the machine
/// (and the node's own allocations) too little.
fn half_of_memory() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let pages = unsafe { libc::sysconf(libc::_SC_PHYS_PAGES) };
    u64::try_from(pages)
        .ok()
        .filter(|&p| p > 0)
        .map_or(u64::MAX, |p| p.saturating_mul(page_size()) / 2)
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|&s| s > 0).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Held by every test that locks memory: `VmLck` counts the whole process, so a test
    /// reading it must not see another one lock or unlock at the same time.
    static LOCKING: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn locking() -> std::sync::MutexGuard<'static, ()> {
        LOCKING
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// This process's locked memory, from /proc (kB).
    fn locked_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmLck:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmLck")
    }

    #[test]
    fn follows_the_file_as_it_grows_and_shrinks() -> std::io::Result<()> {
        let _alone = locking();
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("index.sqlite");
        let mut locked = Locked::new(path.clone(), u64::MAX);
        assert_eq!(locked.follow()?, None, "no file yet");
        std::fs::write(&path, vec![7u8; 1 << 20])?;
        let before = locked_kib();
        assert_eq!(locked.follow()?, Some(1 << 20));
        assert!(locked_kib() >= before + 1024, "the first MiB is locked");
        assert_eq!(locked.follow()?, Some(0));
        // Grows by a page and a half: the whole page is locked, the half waits.
        let page = page_size() as usize;
        std::fs::write(&path, vec![7u8; (1 << 20) + page + page / 2])?;
        assert_eq!(locked.follow()?, Some(page as u64));
        assert_eq!(locked.regions.len(), 2);
        // Shrinks: locked again from the start, at the new size.
        std::fs::write(&path, vec![7u8; 4 * page])?;
        assert_eq!(locked.follow()?, Some(4 * page as u64));
        assert_eq!(locked.regions.len(), 1);
        drop(locked);
        assert!(locked_kib() < before + 1024, "unlocked when dropped");
        Ok(())
    }

    #[test]
    fn locks_no_more_than_its_limit() -> std::io::Result<()> {
        let _alone = locking();
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("index.sqlite");
        let page = page_size();
        let mut locked = Locked::new(path.clone(), 2 * page + 100);
        std::fs::write(&path, vec![7u8; 5 * page as usize])?;
        assert_eq!(locked.follow()?, Some(2 * page));
        assert!(locked.capped);
        // Growing past the limit locks nothing more.
        std::fs::write(&path, vec![7u8; 9 * page as usize])?;
        assert_eq!(locked.follow()?, Some(0));
        assert_eq!(locked.len, 2 * page);
        std::fs::write(&path, vec![7u8; page as usize])?;
        assert_eq!(locked.follow()?, Some(page));
        assert!(!locked.capped);
        assert!(half_of_memory() > 1 << 20);
        Ok(())
    }
}
