//! Totals of list queries, cached for a while: counting every matching row on each page
//! request would cost more than the page itself on a large store. A page shorter than its
//! size is exact without counting, so only long lists see a cached (possibly stale) total,
//! as with the reference node.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most totals kept; past this the cache starts over (a bound, not an LRU).
const MAX_ENTRIES: usize = 10_000;

pub(crate) struct CountCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (u64, Instant)>>,
}

impl CountCache {
    pub(crate) fn new(ttl: Duration) -> Self {
        CountCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The cached total for `key`, or `count()` stored under it.
    pub(crate) fn get_or<E>(
        &self,
        key: String,
        count: impl FnOnce() -> Result<u64, E>,
    ) -> Result<u64, E> {
        if let Some((total, at)) = self.lock().get(&key)
            && at.elapsed() < self.ttl
        {
            return Ok(*total);
        }
        let total = count()?;
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key, (total, Instant::now()));
        Ok(total)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, Instant)>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caches_until_the_ttl() {
        let cache = CountCache::new(Duration::from_millis(50));
        assert_eq!(cache.get_or::<()>("a".into(), || Ok(1)), Ok(1));
        assert_eq!(cache.get_or::<()>("a".into(), || Ok(2)), Ok(1));
        assert_eq!(cache.get_or::<()>("b".into(), || Ok(3)), Ok(3));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get_or::<()>("a".into(), || Ok(4)), Ok(4));
        assert_eq!(cache.get_or("c".into(), || Err("failed")), Err("failed"));
    }
}
