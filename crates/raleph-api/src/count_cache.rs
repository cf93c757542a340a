//! Totals of list queries, cached for a while: counting every matching row on each page
//! request would cost more than the page itself on a large store. A page shorter than its
//! size is exact without counting, so only long lists see a cached (possibly stale) total,
//! as with the reference node.
//!
//! One count per key at a time: requests that find the same total being counted wait for it
//! instead of running the same count (a burst of clients on a cold filter would otherwise
//! count it once each, all at once). Once a total is older than the TTL, the next request
//! counts it again while others still get the previous total.
//!
//! `get_or` blocks while another thread counts: call it from a blocking thread, as the
//! count itself. A count, or a wait for one, frees the caller's read slot first (see
//! `AppState::read`), so slow totals never keep the quick reads waiting.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Most totals kept; past this the cache starts over (a bound, not an LRU).
const MAX_ENTRIES: usize = 10_000;

pub(crate) struct CountCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

#[derive(Default)]
struct Entry {
    /// The last total and when it was counted.
    total: Option<(u64, Instant)>,
    /// The count under way, if any.
    counting: Option<Arc<Flight>>,
}

/// A count under way; waiters sleep until it ends.
#[derive(Default)]
struct Flight {
    /// `None` while counting; then the total, or `Err(())` if the count failed.
    outcome: Mutex<Option<Result<u64, ()>>>,
    ended: Condvar,
}

impl Flight {
    fn finish(&self, outcome: Result<u64, ()>) {
        *lock(&self.outcome) = Some(outcome);
        self.ended.notify_all();
    }

    fn wait(&self) -> Result<u64, ()> {
        let mut outcome = lock(&self.outcome);
        loop {
            if let Some(outcome) = *outcome {
                return outcome;
            }
            outcome = self
                .ended
                .wait(outcome)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}

/// Ends a flight even if the count panics, so that no waiter sleeps forever.
struct Leader<'a> {
    cache: &'a CountCache,
    key: String,
    flight: Arc<Flight>,
    outcome: Result<u64, ()>,
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        {
            let mut entries = self.cache.lock();
            if entries.len() >= MAX_ENTRIES && !entries.contains_key(&self.key) {
                entries.clear();
            }
            let entry = entries.entry(std::mem::take(&mut self.key)).or_default();
            if entry
                .counting
                .as_ref()
                .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
            {
                entry.counting = None;
            }
            if let Ok(total) = self.outcome {
                entry.total = Some((total, Instant::now()));
            }
        }
        self.flight.finish(self.outcome);
    }
}

impl CountCache {
    pub(crate) fn new(ttl: Duration) -> Self {
        CountCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The cached total for `key`, or `count()` stored under it. While a count of `key` runs,
    /// other callers wait for its total (or take the previous one, if there is one).
    pub(crate) fn get_or<E>(
        &self,
        key: String,
        count: impl FnOnce() -> Result<u64, E>,
    ) -> Result<u64, E> {
        let flight = {
            let mut entries = self.lock();
            let entry = entries.get(&key);
            let fresh = entry
                .and_then(|e| e.total)
                .filter(|(_, at)| at.elapsed() < self.ttl);
            let previous = entry.and_then(|e| e.total);
            match (fresh, entry.and_then(|e| e.counting.clone())) {
                (Some((total, _)), _) => return Ok(total),
                (None, Some(flight)) => match previous {
                    // Being counted again: the previous total will do meanwhile.
                    Some((total, _)) => return Ok(total),
                    None => Err(flight),
                },
                (None, None) => {
                    let flight = Arc::new(Flight::default());
                    entries.entry(key.clone()).or_default().counting = Some(flight.clone());
                    Ok(flight)
                }
            }
        };
        // Counting, or waiting for another request's count, may take long: it does not hold
        // one of the limited read slots meanwhile.
        crate::release_read_slot();
        match flight {
            Ok(flight) => {
                let mut leader = Leader {
                    cache: self,
                    key,
                    flight,
                    outcome: Err(()),
                };
                let total = count()?;
                leader.outcome = Ok(total);
                Ok(total)
            }
            Err(flight) => match flight.wait() {
                Ok(total) => Ok(total),
                // The count failed (its caller got the error): count here.
                Err(()) => count(),
            },
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        lock(&self.entries)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use std::sync::Barrier;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn a_count_does_not_hold_a_read_slot() {
        let slots = Arc::new(tokio::sync::Semaphore::new(1));
        let hold = || {
            let held = slots.clone().try_acquire_owned().unwrap();
            crate::READ_SLOT.with(|slot| *slot.borrow_mut() = Some(held));
        };
        let free = || slots.available_permits() as u64;
        let cache = CountCache::new(Duration::from_secs(30));
        // A count runs with the slot freed...
        hold();
        assert_eq!(cache.get_or::<()>("a".into(), || Ok(free())), Ok(1));
        // ...while a cached total is answered holding it.
        hold();
        assert_eq!(cache.get_or::<()>("a".into(), || Ok(7)), Ok(1));
        assert_eq!(free(), 0);
        crate::release_read_slot();
        assert_eq!(free(), 1);
    }

    #[test]
    fn caches_until_the_ttl() {
        let cache = CountCache::new(Duration::from_millis(50));
        assert_eq!(cache.get_or::<()>("a".into(), || Ok(1)), Ok(1));
        assert_eq!(cache.get_or::<()>("a".into(), || Ok(2)), Ok(1));
        assert_eq!(cache.get_or::<()>("b".into(), || Ok(3)), Ok(3));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get_or::<()>("a".into(), || Ok(4)), Ok(4));
        assert_eq!(cache.get_or("c".into(), || Err("failed")), Err("failed"));
        // A failed count is not cached.
        assert_eq!(cache.get_or::<()>("c".into(), || Ok(5)), Ok(5));
    }

    /// Callers arriving while a key is counted wait for that count instead of counting.
    #[test]
    fn one_count_per_key_at_a_time() {
        let cache = Arc::new(CountCache::new(Duration::from_secs(60)));
        let counts = Arc::new(AtomicUsize::new(0));
        let start = Arc::new(Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (cache, counts, start) = (cache.clone(), counts.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    cache.get_or::<()>("k".into(), || {
                        counts.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(200));
                        Ok(42)
                    })
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().expect("thread"), Ok(42));
        }
        assert_eq!(counts.load(Ordering::SeqCst), 1);
    }

    /// A stale total is counted again by one caller; the others get the previous total.
    #[test]
    fn stale_totals_are_recounted_once() {
        let cache = Arc::new(CountCache::new(Duration::from_millis(20)));
        assert_eq!(cache.get_or::<()>("k".into(), || Ok(1)), Ok(1));
        std::thread::sleep(Duration::from_millis(30));
        let (entered_tx, entered_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let recount = {
            let cache = cache.clone();
            std::thread::spawn(move || {
                cache.get_or::<()>("k".into(), move || {
                    entered_tx.send(()).expect("send");
                    release_rx.recv().expect("release");
                    Ok(2)
                })
            })
        };
        entered_rx.recv().expect("recount started");
        assert_eq!(cache.get_or::<()>("k".into(), || Ok(99)), Ok(1));
        release_tx.send(()).expect("release");
        assert_eq!(recount.join().expect("thread"), Ok(2));
        assert_eq!(cache.get_or::<()>("k".into(), || Ok(99)), Ok(2));
    }

    /// When the count fails, a waiter counts for itself; a panicking count wakes waiters.
    #[test]
    fn failed_or_panicking_counts_release_waiters() {
        let cache = Arc::new(CountCache::new(Duration::from_secs(60)));
        let (entered_tx, entered_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let leader = {
            let cache = cache.clone();
            std::thread::spawn(move || {
                cache.get_or::<&str>("k".into(), move || {
                    entered_tx.send(()).expect("send");
                    release_rx.recv().expect("release");
                    panic!("count panicked");
                })
            })
        };
        entered_rx.recv().expect("count started");
        let waiter = {
            let cache = cache.clone();
            std::thread::spawn(move || cache.get_or::<&str>("k".into(), || Ok(7)))
        };
        std::thread::sleep(Duration::from_millis(50));
        release_tx.send(()).expect("release");
        assert!(leader.join().is_err());
        assert_eq!(waiter.join().expect("waiter"), Ok(7));
        assert_eq!(cache.get_or::<&str>("k".into(), || Ok(8)), Ok(8));
    }
}
