//! The time the node's rules read, injected: [`SystemClock`] in a running node, a
//! [`ManualClock`] in tests, which move it on explicitly instead of sleeping, so a test of a
//! grace period, a retry or a cache lifetime does not depend on how busy the machine is.
//!
//! It is the time rules are decided by (message times, retry schedules, grace pins, expiry,
//! cache lifetimes), not the time threads wait for: waiting on a channel or for I/O stays on
//! the real clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// A source of time.
pub trait Clock: Send + Sync + 'static {
    /// Seconds since the Unix epoch: the time stored with messages, pins and schedules.
    fn now(&self) -> f64;
    /// Time since an arbitrary fixed origin, never going back: for lifetimes measured in
    /// the process (caches), which a change of the wall clock must not stretch or cut.
    fn monotonic(&self) -> Duration;
}

/// The machine's clocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> f64 {
        crate::now()
    }

    fn monotonic(&self) -> Duration {
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        ORIGIN.get_or_init(Instant::now).elapsed()
    }
}

/// A clock that moves only when told to (for tests). Clones share one time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    /// The wall time, as the bits of an `f64`.
    now: Arc<AtomicU64>,
    /// How far it was moved on since it was made, in nanoseconds.
    moved: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock that reads `now` (seconds since the epoch) until it is moved on.
    pub fn at(now: f64) -> ManualClock {
        ManualClock {
            now: Arc::new(AtomicU64::new(now.to_bits())),
            moved: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A clock that starts at the machine's time (files on disk carry real times).
    pub fn starting_now() -> ManualClock {
        ManualClock::at(crate::now())
    }

    /// Moves both times on by `by`.
    pub fn advance(&self, by: Duration) {
        let by_secs = by.as_secs_f64();
        let _ = self
            .now
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |bits| {
                Some((f64::from_bits(bits) + by_secs).to_bits())
            });
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.moved.fetch_add(nanos, Ordering::AcqRel);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> f64 {
        f64::from_bits(self.now.load(Ordering::Acquire))
    }

    fn monotonic(&self) -> Duration {
        Duration::from_nanos(self.moved.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_its_clones_follow() {
        let clock = ManualClock::at(1_000.0);
        let shared = clock.clone();
        assert_eq!(clock.now(), 1_000.0);
        assert_eq!(clock.monotonic(), Duration::ZERO);
        clock.advance(Duration::from_millis(1_500));
        assert_eq!(shared.now(), 1_001.5);
        assert_eq!(shared.monotonic(), Duration::from_millis(1_500));
    }

    #[test]
    fn the_system_clock_goes_forward() {
        let clock = SystemClock;
        let (first, wall) = (clock.monotonic(), clock.now());
        assert!(clock.monotonic() >= first);
        assert!(wall > 1.6e9, "seconds since the epoch");
    }
}
