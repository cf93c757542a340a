//! Totals of list queries the store does not keep, cached for a while: counting every
//! matching row on each page request would cost more than the page itself on a large store.
//! Only those are cached: a page shorter than its size is exact without counting, and the
//! totals the store keeps (no filter, one type, sender, channel, content type, content key or
//! tag, a time range alone or with types; all posts, or by post types or channels alone; all
//! aggregates, or by keys alone; see
//! `raleph_db::ReadStore::kept_message_total`) are read exact at every request. The others
//! (combinations of filters, refs, owners, chains, posts by address…) may be up to
//! `count_cache_secs` old (30 s by default), twice that for a list nobody asked for since.
//!
//! One count per key at a time: requests that find the same total being counted wait for it
//! instead of running the same count (a burst of clients on a cold filter would otherwise
//! count it once each, all at once). Once a total is older than the TTL, it is counted again
//! on the cache's own thread, and requests get the previous total meanwhile: a request never
//! waits for a total it already had (on a large store a long list's count reads its index
//! range, often from disk: tens of milliseconds). Only a total older than twice the TTL is
//! counted again while the request waits, so a list asked for rarely is not answered with a
//! total from long ago.
//!
//! `get_or` blocks while it or another thread counts a total the cache does not have: call
//! it from a read thread, as the count itself. A count, or a wait for one, steps aside from
//! the read threads first (see `read_pool`), so slow totals never keep the quick reads
//! waiting.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use raleph_pipeline::Clock;

/// Most totals kept; past this the cache starts over (a bound, not an LRU).
const MAX_ENTRIES: usize = 10_000;

/// A cache key: the digest of the query's text, so that an entry costs the same whatever the
/// length of the query a client sent (the cache holds at most `MAX_ENTRIES` of them).
type Key = [u8; 32];

fn digest(query: &str) -> Key {
    use sha2::Digest;
    sha2::Sha256::digest(query.as_bytes()).into()
}

pub(crate) struct CountCache {
    shared: Arc<Shared>,
    /// Recounts of stale totals, run one at a time by the `raleph-recount` thread: a burst of
    /// stale totals must not count all at once on cores that serve requests. `None` if the
    /// thread could not start: stale totals are then counted by the requests that find them.
    recounts: Option<Sender<Job>>,
}

struct Shared {
    ttl: Duration,
    entries: Mutex<HashMap<Key, Entry>>,
    /// Ages totals (its monotonic time).
    clock: Arc<dyn Clock>,
}

type Job = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Entry {
    /// The last total and when it was counted (the clock's monotonic time).
    total: Option<(u64, Duration)>,
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
struct Leader {
    shared: Arc<Shared>,
    key: Key,
    flight: Arc<Flight>,
    outcome: Result<u64, ()>,
}

impl Drop for Leader {
    fn drop(&mut self) {
        {
            let mut entries = self.shared.lock();
            if entries.len() >= MAX_ENTRIES && !entries.contains_key(&self.key) {
                entries.clear();
            }
            let entry = entries.entry(self.key).or_default();
            if entry
                .counting
                .as_ref()
                .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
            {
                entry.counting = None;
            }
            if let Ok(total) = self.outcome {
                entry.total = Some((total, self.shared.clock.monotonic()));
            }
        }
        self.flight.finish(self.outcome);
    }
}

/// What a request does about a total, decided under the lock.
enum Plan {
    /// A total to answer with (fresh, or stale and being counted again).
    Answer(u64),
    /// Count it here: no usable total, nobody counting.
    Count(Arc<Flight>),
    /// Wait for another request's count.
    Wait(Arc<Flight>),
    /// Answer with this stale total and count it again on the recount thread.
    AnswerAndRecount(u64, Arc<Flight>),
}

impl CountCache {
    /// A cache whose totals are fresh for `ttl` of `clock`'s time.
    pub(crate) fn new(ttl: Duration, clock: Arc<dyn Clock>) -> Self {
        let (recounts, jobs) = channel();
        let spawned = std::thread::Builder::new()
            .name("raleph-recount".into())
            .spawn(move || run_jobs(jobs));
        if let Err(e) = &spawned {
            tracing::warn!("cannot start the recount thread: {e}");
        }
        CountCache {
            shared: Arc::new(Shared {
                ttl,
                entries: Mutex::new(HashMap::new()),
                clock,
            }),
            recounts: spawned.is_ok().then_some(recounts),
        }
    }

    /// The cached total for `query` (a query's text: any string naming it), or `count()`
    /// stored under it. While a count of `query` runs, other callers wait for its total (or
    /// take the previous one, if there is one). A stale total is answered at once and `count`
    /// runs on the recount thread.
    pub(crate) fn get_or<E: std::fmt::Display>(
        &self,
        query: &str,
        count: impl FnOnce() -> Result<u64, E> + Send + 'static,
    ) -> Result<u64, E> {
        let key = digest(query);
        // Counting, or waiting for another request's count, may take long: it does not hold
        // one of the read threads meanwhile.
        match self.shared.plan(&key, self.recounts.is_some()) {
            Plan::Answer(total) => Ok(total),
            Plan::AnswerAndRecount(total, flight) => {
                self.recount(self.leader(key, flight), count);
                Ok(total)
            }
            Plan::Count(flight) => {
                crate::read_pool::step_aside();
                lead(self.leader(key, flight), count)
            }
            Plan::Wait(flight) => {
                crate::read_pool::step_aside();
                match flight.wait() {
                    Ok(total) => Ok(total),
                    // The count failed (its caller got the error): count here.
                    Err(()) => count(),
                }
            }
        }
    }

    fn leader(&self, key: Key, flight: Arc<Flight>) -> Leader {
        Leader {
            shared: self.shared.clone(),
            key,
            flight,
            outcome: Err(()),
        }
    }

    /// Queues a recount for the recount thread. Should that thread be gone, the job is
    /// dropped, and with it the leader: its flight ends and the next request tries again.
    fn recount<E: std::fmt::Display>(
        &self,
        leader: Leader,
        count: impl FnOnce() -> Result<u64, E> + Send + 'static,
    ) {
        let Some(recounts) = &self.recounts else {
            return;
        };
        let _ = recounts.send(Box::new(move || {
            if let Err(e) = lead(leader, count) {
                tracing::warn!("counting a list total failed: {e}");
            }
        }));
    }

    /// Waits until every recount queued so far has ended.
    #[cfg(test)]
    fn finish_recounts(&self) {
        let (done, ended) = channel();
        let recounts = self.recounts.as_ref().expect("recount thread");
        recounts
            .send(Box::new(move || {
                let _ = done.send(());
            }))
            .expect("recount thread");
        ended.recv().expect("recount thread");
    }
}

impl Shared {
    /// `recount`: stale totals can be counted again on the recount thread.
    fn plan(&self, key: &Key, recount: bool) -> Plan {
        let now = self.clock.monotonic();
        let age = |at: Duration| now.saturating_sub(at);
        let mut entries = self.lock();
        let (total, counting) = entries
            .get(key)
            .map_or((None, None), |e| (e.total, e.counting.clone()));
        match (total, counting) {
            (Some((total, at)), _) if age(at) < self.ttl => Plan::Answer(total),
            // Being counted again: the previous total will do meanwhile.
            (Some((total, _)), Some(_)) => Plan::Answer(total),
            (None, Some(flight)) => Plan::Wait(flight),
            (total, None) => {
                let flight = Arc::new(Flight::default());
                entries.entry(*key).or_default().counting = Some(flight.clone());
                match total {
                    Some((total, at)) if recount && age(at) < self.ttl * 2 => {
                        Plan::AnswerAndRecount(total, flight)
                    }
                    _ => Plan::Count(flight),
                }
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Entry>> {
        lock(&self.entries)
    }
}

/// Runs `count` as the leader of its flight: its total is stored and its waiters woken.
fn lead<E>(mut leader: Leader, count: impl FnOnce() -> Result<u64, E>) -> Result<u64, E> {
    let total = count()?;
    leader.outcome = Ok(total);
    Ok(total)
}

fn run_jobs(jobs: Receiver<Job>) {
    for job in jobs {
        // A panicking count ends its flight (see `Leader`) and must not end the thread.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
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

    use raleph_pipeline::{ManualClock, SystemClock};

    use super::*;

    /// A cache on a clock the test moves on.
    fn manual(ttl: Duration) -> (CountCache, ManualClock) {
        let clock = ManualClock::starting_now();
        (CountCache::new(ttl, Arc::new(clock.clone())), clock)
    }

    /// A cache on the machine's clock, for tests of concurrency rather than of lifetimes.
    fn system(ttl: Duration) -> CountCache {
        CountCache::new(ttl, Arc::new(SystemClock))
    }

    /// A read that counts a total leaves its read thread to other reads meanwhile.
    #[test]
    fn a_count_does_not_hold_a_read_thread() {
        let pool = crate::read_pool::ReadPool::new(1);
        let cache = Arc::new(system(Duration::from_secs(30)));
        let (entered_tx, entered) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let (total_tx, total) = std::sync::mpsc::channel();
        let counting = cache.clone();
        pool.run(move || {
            let counted = counting.get_or::<&str>("a", move || {
                entered_tx.send(()).expect("send");
                release_rx.recv().expect("release");
                Ok(1)
            });
            total_tx.send(counted).expect("send");
        });
        entered.recv().expect("count started");
        // The pool's only thread is counting, yet the next read runs.
        let (other_tx, other) = std::sync::mpsc::channel();
        let reading = cache.clone();
        pool.run(move || {
            let counted = reading.get_or::<&str>("b", || Ok(2));
            other_tx.send(counted).expect("send");
        });
        assert_eq!(other.recv().expect("other read"), Ok(2));
        release_tx.send(()).expect("release");
        assert_eq!(total.recv().expect("count"), Ok(1));
    }

    #[test]
    fn caches_until_the_ttl() {
        let (cache, clock) = manual(Duration::from_secs(30));
        assert_eq!(cache.get_or::<&str>("a", || Ok(1)), Ok(1));
        clock.advance(Duration::from_secs(29));
        assert_eq!(cache.get_or::<&str>("a", || Ok(2)), Ok(1));
        assert_eq!(cache.get_or::<&str>("b", || Ok(3)), Ok(3));
        assert_eq!(cache.get_or("c", || Err("failed")), Err("failed"));
        // A failed count is not cached.
        assert_eq!(cache.get_or::<&str>("c", || Ok(5)), Ok(5));
        // Past twice the TTL, a total is counted again while the request waits.
        clock.advance(Duration::from_secs(32));
        assert_eq!(cache.get_or::<&str>("a", || Ok(4)), Ok(4));
        assert_eq!(cache.get_or::<&str>("a", || Ok(6)), Ok(4));
    }

    /// Callers arriving while a key is counted wait for that count instead of counting.
    #[test]
    fn one_count_per_key_at_a_time() {
        let cache = Arc::new(system(Duration::from_secs(60)));
        let counts = Arc::new(AtomicUsize::new(0));
        let start = Arc::new(Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (cache, counts, start) = (cache.clone(), counts.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    cache.get_or::<&str>("k", move || {
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

    /// A stale total is answered at once and counted again on the recount thread, once;
    /// requests meanwhile get the previous total.
    #[test]
    fn stale_totals_are_recounted_in_the_background() {
        let (cache, clock) = manual(Duration::from_secs(30));
        assert_eq!(cache.get_or::<&str>("k", || Ok(1)), Ok(1));
        clock.advance(Duration::from_secs(31));
        let (entered_tx, entered_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let recounts = Arc::new(AtomicUsize::new(0));
        let counted = recounts.clone();
        let recount = move || {
            counted.fetch_add(1, Ordering::SeqCst);
            entered_tx.send(()).expect("send");
            release_rx.recv().expect("release");
            Ok::<_, String>(2)
        };
        // The request that finds the total stale is not kept waiting for the recount.
        assert_eq!(cache.get_or("k", recount), Ok(1));
        entered_rx.recv().expect("recount started");
        let again = recounts.clone();
        let count_again = move || {
            again.fetch_add(1, Ordering::SeqCst);
            Ok::<_, String>(99)
        };
        assert_eq!(cache.get_or("k", count_again), Ok(1));
        release_tx.send(()).expect("release");
        cache.finish_recounts();
        assert_eq!(cache.get_or::<&str>("k", || Ok(99)), Ok(2));
        assert_eq!(recounts.load(Ordering::SeqCst), 1);
    }

    /// A recount that fails keeps the previous total, and a later request tries again.
    #[test]
    fn a_failed_recount_keeps_the_previous_total() {
        let (cache, clock) = manual(Duration::from_secs(30));
        assert_eq!(cache.get_or::<String>("k", || Ok(1)), Ok(1));
        clock.advance(Duration::from_secs(31));
        assert_eq!(cache.get_or("k", || Err("failed".to_owned())), Ok(1));
        cache.finish_recounts();
        assert_eq!(cache.get_or::<String>("k", || Ok(3)), Ok(1));
        cache.finish_recounts();
        assert_eq!(cache.get_or::<String>("k", || Ok(99)), Ok(3));
    }

    /// When the count fails, a waiter counts for itself; a panicking count wakes waiters.
    #[test]
    fn failed_or_panicking_counts_release_waiters() {
        let cache = Arc::new(system(Duration::from_secs(60)));
        let (entered_tx, entered_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let leader = {
            let cache = cache.clone();
            std::thread::spawn(move || {
                cache.get_or::<&str>("k", move || {
                    entered_tx.send(()).expect("send");
                    release_rx.recv().expect("release");
                    panic!("count panicked");
                })
            })
        };
        entered_rx.recv().expect("count started");
        let waiter = {
            let cache = cache.clone();
            std::thread::spawn(move || cache.get_or::<&str>("k", || Ok(7)))
        };
        std::thread::sleep(Duration::from_millis(50));
        release_tx.send(()).expect("release");
        assert!(leader.join().is_err());
        assert_eq!(waiter.join().expect("waiter"), Ok(7));
        assert_eq!(cache.get_or::<&str>("k", || Ok(8)), Ok(8));
    }
}
