//! The threads that run reads of the index: `api.max_concurrent_reads` of them take reads
//! from one queue. A thread that ends a read takes the next one straight away, so under
//! load a read costs no thread wake-up. (Through tokio's blocking pool behind a semaphore,
//! each read first waited on an async thread for a permit that the previous read released,
//! then woke a parked blocking thread: on two cores, wake-ups and context switches took about
//! a quarter of the node's time under a query load.)
//!
//! A read that turns to something long that need not be limited (counting a list's total,
//! or waiting for another read's count) calls [`step_aside`]: the pool starts another thread
//! so that as many threads as before take reads, and the one that stepped aside ends once
//! its read is done, if the pool is then larger than its size. At most [`MAX_ASIDE`] reads
//! are aside at once (many clients waiting on one cold total would otherwise start a thread
//! each); past that, a read keeps its thread.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

type Read = Box<dyn FnOnce() + Send>;

/// Most reads aside at once, each with a thread of its own.
const MAX_ASIDE: usize = 256;

/// The pool; its threads end when it is dropped (after the reads queued so far).
pub(crate) struct ReadPool {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when a read is queued or the pool closes.
    queued: Condvar,
    /// Threads taking reads, when none stepped aside.
    size: usize,
    /// Most reads aside at once.
    max_aside: usize,
}

#[derive(Default)]
struct State {
    reads: VecDeque<Read>,
    /// Threads that take reads: those running a read that did not step aside, and idle ones.
    takers: usize,
    /// Of the takers, those waiting for a read.
    idle: usize,
    /// Reads that stepped aside and have not ended.
    aside: usize,
    closed: bool,
}

thread_local! {
    /// On a pool thread: its pool, and whether the read it runs stepped aside.
    static CURRENT: RefCell<Option<(Arc<Shared>, bool)>> = const { RefCell::new(None) };
}

impl ReadPool {
    pub(crate) fn new(size: usize) -> Self {
        Self::with_limits(size, MAX_ASIDE)
    }

    fn with_limits(size: usize, max_aside: usize) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            queued: Condvar::new(),
            size: size.max(1),
            max_aside,
        });
        for _ in 0..shared.size {
            shared.start_taker();
        }
        ReadPool { shared }
    }

    /// Queues `read`; it runs on one of the pool's threads.
    pub(crate) fn run(&self, read: impl FnOnce() + Send + 'static) {
        let mut state = self.shared.lock();
        state.reads.push_back(Box::new(read));
        if state.idle > 0 {
            self.shared.queued.notify_one();
        }
    }
}

impl Drop for ReadPool {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.queued.notify_all();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a thread that takes reads (counted in `takers` from now).
    fn start_taker(self: &Arc<Self>) {
        self.lock().takers += 1;
        let shared = self.clone();
        let started = std::thread::Builder::new()
            .name("raleph-read".into())
            .spawn(move || take_reads(shared));
        if let Err(e) = started {
            // The other threads go on taking reads.
            self.lock().takers -= 1;
            tracing::warn!("cannot start a read thread: {e}");
        }
    }

    /// The next read for a taker thread, or `None` when it is to end: the pool closed and
    /// nothing is queued, or it has more takers than its size.
    fn next(&self) -> Option<Read> {
        let mut state = self.lock();
        loop {
            if state.takers > self.size {
                state.takers -= 1;
                return None;
            }
            if let Some(read) = state.reads.pop_front() {
                return Some(read);
            }
            if state.closed {
                state.takers -= 1;
                return None;
            }
            state.idle += 1;
            state = self.queued.wait(state).unwrap_or_else(|p| p.into_inner());
            state.idle -= 1;
        }
    }
}

fn take_reads(shared: Arc<Shared>) {
    CURRENT.with(|current| *current.borrow_mut() = Some((shared.clone(), false)));
    while let Some(read) = shared.next() {
        // A read that panics fails its request (its reply is dropped), not the thread.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(read));
        let stepped_aside = CURRENT.with(|current| match current.borrow_mut().as_mut() {
            Some((_, stepped)) => std::mem::take(stepped),
            None => false,
        });
        if stepped_aside {
            // Back among the takers; `next` ends this thread if the pool is now too large.
            let mut state = shared.lock();
            state.aside -= 1;
            state.takers += 1;
        }
    }
}

/// Called by a read about to do something long that need not hold one of the pool's
/// threads: another thread takes reads meanwhile. Does nothing outside a pool thread, when
/// the read already stepped aside, or when [`MAX_ASIDE`] reads are aside already.
pub(crate) fn step_aside() {
    let shared = CURRENT.with(|current| match current.borrow_mut().as_mut() {
        Some((shared, stepped)) if !*stepped => {
            let mut state = shared.lock();
            if state.aside >= shared.max_aside {
                return None;
            }
            state.aside += 1;
            state.takers -= 1;
            drop(state);
            *stepped = true;
            Some(shared.clone())
        }
        _ => None,
    });
    if let Some(shared) = shared {
        shared.start_taker();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::{Receiver, channel};

    use super::*;

    /// A read that reports when it starts, then waits to be released.
    fn blocking_read(
        pool: &ReadPool,
        name: &'static str,
        started: &std::sync::mpsc::Sender<&'static str>,
        step: bool,
    ) -> std::sync::mpsc::Sender<()> {
        let (release, released): (_, Receiver<()>) = channel();
        let started = started.clone();
        pool.run(move || {
            if step {
                step_aside();
            }
            started.send(name).expect("send");
            released.recv().expect("release");
        });
        release
    }

    fn takers(pool: &ReadPool) -> usize {
        pool.shared.lock().takers
    }

    #[test]
    fn runs_at_most_its_size_at_once() {
        let pool = ReadPool::new(2);
        let (started_tx, started) = channel();
        let a = blocking_read(&pool, "a", &started_tx, false);
        let b = blocking_read(&pool, "b", &started_tx, false);
        let c = blocking_read(&pool, "c", &started_tx, false);
        let mut first = [
            started.recv().expect("a read"),
            started.recv().expect("a read"),
        ];
        first.sort_unstable();
        assert_eq!(first, ["a", "b"]);
        // The third waits for a thread...
        assert_eq!(pool.shared.lock().reads.len(), 1);
        a.send(()).expect("release");
        // ...and gets the one the first read left.
        assert_eq!(started.recv().expect("c"), "c");
        b.send(()).expect("release");
        c.send(()).expect("release");
    }

    #[test]
    fn a_read_that_steps_aside_leaves_its_thread_to_others() {
        let pool = ReadPool::new(1);
        let (started_tx, started) = channel();
        let counting = blocking_read(&pool, "count", &started_tx, true);
        assert_eq!(started.recv().expect("count"), "count");
        // The pool's only thread is counting, yet the next read runs.
        let quick = blocking_read(&pool, "quick", &started_tx, false);
        assert_eq!(started.recv().expect("quick"), "quick");
        quick.send(()).expect("release");
        counting.send(()).expect("release");
        // Back to one thread taking reads once both are done.
        let (done_tx, done) = channel();
        for _ in 0..2 {
            let done_tx = done_tx.clone();
            pool.run(move || done_tx.send(()).expect("send"));
        }
        done.recv().expect("done");
        done.recv().expect("done");
        let (last_tx, last) = channel();
        pool.run(move || last_tx.send(()).expect("send"));
        last.recv().expect("last");
        // The read that just ended rejoined before this check could run on its thread.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while takers(&pool) != 1 && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert_eq!(takers(&pool), 1);
    }

    #[test]
    fn reads_aside_are_bounded() {
        let pool = ReadPool::with_limits(1, 1);
        let (started_tx, started) = channel();
        let first = blocking_read(&pool, "first", &started_tx, true);
        assert_eq!(started.recv().expect("first"), "first");
        // One read is aside already: the second keeps its thread...
        let second = blocking_read(&pool, "second", &started_tx, true);
        assert_eq!(started.recv().expect("second"), "second");
        // ...so a third waits for a thread, and no more than two run.
        let third = blocking_read(&pool, "third", &started_tx, false);
        assert_eq!(pool.shared.lock().reads.len(), 1);
        assert_eq!(pool.shared.lock().aside, 1);
        second.send(()).expect("release");
        assert_eq!(started.recv().expect("third"), "third");
        third.send(()).expect("release");
        first.send(()).expect("release");
    }

    #[test]
    fn a_panicking_read_fails_alone() {
        let pool = ReadPool::new(1);
        pool.run(|| panic!("read panicked"));
        let (tx, rx) = channel();
        pool.run(move || tx.send(7).expect("send"));
        assert_eq!(rx.recv().expect("the next read runs"), 7);
    }
}
