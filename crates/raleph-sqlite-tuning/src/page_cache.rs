//! SQLite's default page cache, with truncations that can drop nothing skipped.
//!
//! At the end of every write transaction SQLite truncates the page cache to the database's
//! size. The default cache walks its whole hash table for that when it has ever held a page
//! number far above that size since the last truncation, and it has: when a B-tree balance
//! reorders sibling pages, it swaps two page numbers through a temporary one, the page of the
//! 1 GiB pending byte (page 262 145 with 4 KiB pages). So on a store under 1 GiB every
//! transaction that split a page ends by visiting every cached page: with a 32 MiB writer cache
//! that was a quarter of the writer's time when relaying gossip (a few messages per
//! transaction). This wrapper keeps its own upper bound of the page numbers the cache holds,
//! leaving out that transient one, and passes a truncation on only when a page at or past the
//! limit may exist. Everything else goes straight to the default cache.

use std::os::raw::{c_int, c_uint, c_void};
use std::sync::OnceLock;

use rusqlite::ffi;

/// The default page cache's methods, read once before ours replace them.
static DEFAULT: OnceLock<Methods> = OnceLock::new();

/// `sqlite3_pcache_methods2` holds raw pointers; the default cache's are process-global and
/// immutable once SQLite is configured.
struct Methods(ffi::sqlite3_pcache_methods2);
// SAFETY: the methods table is read-only after configuration and its functions are called
// under SQLite's own locking.
unsafe impl Send for Methods {}
unsafe impl Sync for Methods {}

/// SQLite's pending-byte offset: the page holding it is never part of a database.
const PENDING_BYTE: c_uint = 0x4000_0000;

/// One cache: the default one inside, and what this wrapper knows of its page numbers.
struct Cache {
    inner: *mut ffi::sqlite3_pcache,
    /// No page number above this is in the cache (the pending-byte page aside, see `swapping`).
    max_key: c_uint,
    /// The pending-byte page number for this cache's page size.
    pending: c_uint,
    /// A page is keyed by the pending-byte page number, mid-swap.
    swapping: bool,
}

fn default() -> &'static ffi::sqlite3_pcache_methods2 {
    &DEFAULT.get().expect("installed before use").0
}

/// Installs the wrapper, if SQLite is not initialized yet (its configuration is global and
/// fixed at initialization). Returns whether it is in use.
pub fn install() -> bool {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    *INSTALLED.get_or_init(|| {
        let mut methods = std::mem::MaybeUninit::<ffi::sqlite3_pcache_methods2>::zeroed();
        // SAFETY: GETPCACHE2 fills the struct; both calls fail harmlessly (SQLITE_MISUSE)
        // once SQLite is initialized.
        unsafe {
            if ffi::sqlite3_config(ffi::SQLITE_CONFIG_GETPCACHE2, methods.as_mut_ptr())
                != ffi::SQLITE_OK
            {
                return false;
            }
            let methods = methods.assume_init();
            if methods.xCreate.is_none() || DEFAULT.set(Methods(methods)).is_err() {
                return false;
            }
            ffi::sqlite3_config(ffi::SQLITE_CONFIG_PCACHE2, &WRAPPER.0) == ffi::SQLITE_OK
        }
    })
}

static WRAPPER: Methods = Methods(ffi::sqlite3_pcache_methods2 {
    iVersion: 1,
    pArg: std::ptr::null_mut(),
    xInit: Some(init),
    xShutdown: Some(shutdown),
    xCreate: Some(create),
    xCachesize: Some(cache_size),
    xPagecount: Some(page_count),
    xFetch: Some(fetch),
    xUnpin: Some(unpin),
    xRekey: Some(rekey),
    xTruncate: Some(truncate),
    xDestroy: Some(destroy),
    xShrink: Some(shrink),
});

/// The wrapper behind SQLite's handle.
///
/// # Safety
/// `p` must come from `create` and not be destroyed.
unsafe fn cache<'a>(p: *mut ffi::sqlite3_pcache) -> &'a mut Cache {
    // SAFETY: per the caller; SQLite uses one cache from one connection at a time.
    unsafe { &mut *p.cast::<Cache>() }
}

unsafe extern "C" fn init(_: *mut c_void) -> c_int {
    let d = default();
    // SAFETY: forwarding SQLite's call to the default cache, with its own argument.
    d.xInit.map_or(ffi::SQLITE_OK, |f| unsafe { f(d.pArg) })
}

unsafe extern "C" fn shutdown(_: *mut c_void) {
    let d = default();
    if let Some(f) = d.xShutdown {
        // SAFETY: as `init`.
        unsafe { f(d.pArg) }
    }
}

unsafe extern "C" fn create(
    page_size: c_int,
    extra: c_int,
    purgeable: c_int,
) -> *mut ffi::sqlite3_pcache {
    let Some(create) = default().xCreate else {
        return std::ptr::null_mut();
    };
    // SAFETY: forwarding SQLite's call.
    let inner = unsafe { create(page_size, extra, purgeable) };
    if inner.is_null() {
        return inner;
    }
    let pending = PENDING_BYTE / c_uint::try_from(page_size.max(1)).unwrap_or(1) + 1;
    let wrapper = Box::new(Cache {
        inner,
        max_key: 0,
        pending,
        swapping: false,
    });
    Box::into_raw(wrapper).cast()
}

unsafe extern "C" fn cache_size(p: *mut ffi::sqlite3_pcache, n: c_int) {
    if let Some(f) = default().xCachesize {
        // SAFETY: `p` came from `create`.
        unsafe { f(cache(p).inner, n) }
    }
}

unsafe extern "C" fn page_count(p: *mut ffi::sqlite3_pcache) -> c_int {
    // SAFETY: `p` came from `create`.
    default()
        .xPagecount
        .map_or(0, |f| unsafe { f(cache(p).inner) })
}

unsafe extern "C" fn fetch(
    p: *mut ffi::sqlite3_pcache,
    key: c_uint,
    create_flag: c_int,
) -> *mut ffi::sqlite3_pcache_page {
    let Some(f) = default().xFetch else {
        return std::ptr::null_mut();
    };
    // SAFETY: `p` came from `create`.
    let c = unsafe { cache(p) };
    // SAFETY: forwarding SQLite's call.
    let page = unsafe { f(c.inner, key, create_flag) };
    if !page.is_null() {
        c.max_key = c.max_key.max(key);
    }
    page
}

unsafe extern "C" fn unpin(
    p: *mut ffi::sqlite3_pcache,
    page: *mut ffi::sqlite3_pcache_page,
    discard: c_int,
) {
    if let Some(f) = default().xUnpin {
        // SAFETY: `p` came from `create`; `page` from its `fetch`.
        unsafe { f(cache(p).inner, page, discard) }
    }
}

unsafe extern "C" fn rekey(
    p: *mut ffi::sqlite3_pcache,
    page: *mut ffi::sqlite3_pcache_page,
    old: c_uint,
    new: c_uint,
) {
    // SAFETY: `p` came from `create`.
    let c = unsafe { cache(p) };
    if let Some(f) = default().xRekey {
        // SAFETY: forwarding SQLite's call.
        unsafe { f(c.inner, page, old, new) }
    }
    if new == c.pending {
        c.swapping = true;
    } else {
        if old == c.pending {
            c.swapping = false;
        }
        c.max_key = c.max_key.max(new);
    }
}

unsafe extern "C" fn truncate(p: *mut ffi::sqlite3_pcache, limit: c_uint) {
    // SAFETY: `p` came from `create`.
    let c = unsafe { cache(p) };
    if limit > c.max_key && !c.swapping {
        return; // nothing at or past `limit`: the default cache would only walk its table
    }
    if let Some(f) = default().xTruncate {
        // SAFETY: forwarding SQLite's call.
        unsafe { f(c.inner, limit) }
    }
    if !c.swapping {
        c.max_key = c.max_key.min(limit.saturating_sub(1));
    }
}

unsafe extern "C" fn destroy(p: *mut ffi::sqlite3_pcache) {
    // SAFETY: `p` came from `create` (a boxed `Cache`) and SQLite destroys it once.
    let c = unsafe { Box::from_raw(p.cast::<Cache>()) };
    if let Some(f) = default().xDestroy {
        // SAFETY: forwarding SQLite's call.
        unsafe { f(c.inner) }
    }
}

unsafe extern "C" fn shrink(p: *mut ffi::sqlite3_pcache) {
    if let Some(f) = default().xShrink {
        // SAFETY: `p` came from `create`.
        unsafe { f(cache(p).inner) }
    }
}
