//! The status monitor: a task, started with the server and stopped with it, that reads the
//! node's counters every [`POLL_SECS`] while status websockets listen (publishing each change
//! to them), and every [`HISTORY_INTERVAL_SECS`] whatever happens, keeping the last hour of
//! those samples in a ring of fixed size for `/api/v0/status/history`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;

use super::Snapshot;
use crate::AppState;

/// Seconds between two history samples.
pub const HISTORY_INTERVAL_SECS: u64 = 10;
/// Samples kept: an hour of them.
pub const HISTORY_SAMPLES: usize = 3600 / HISTORY_INTERVAL_SECS as usize;
/// Seconds between two reads of the counters while status websockets listen.
pub const POLL_SECS: u64 = 2;
/// Polls per history sample.
const POLLS_PER_SAMPLE: u64 = HISTORY_INTERVAL_SECS / POLL_SECS;
/// `storage_bytes` not read yet.
const UNKNOWN: u64 = u64::MAX;

/// One history sample (the explorer's node page reads exactly these fields).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Sample {
    /// Seconds since the epoch, by the node's clock.
    pub time: f64,
    pub messages: u64,
    /// Pending queue and unapplied journal records.
    pub pending: u64,
    pub peers: u64,
    pub storage_bytes: Option<u64>,
}

/// What the monitor shares with the routes, in [`AppState`].
pub(crate) struct Hub {
    /// The latest metrics dict; status websockets wait for its changes.
    latest: watch::Sender<Option<Arc<Value>>>,
    history: Mutex<VecDeque<Sample>>,
    /// The bytes of the files held, as last sampled ([`UNKNOWN`] before).
    storage_bytes: AtomicU64,
    /// Open status websockets.
    pub sockets: AtomicUsize,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            latest: watch::Sender::new(None),
            history: Mutex::new(VecDeque::with_capacity(HISTORY_SAMPLES)),
            storage_bytes: AtomicU64::new(UNKNOWN),
            sockets: AtomicUsize::new(0),
        }
    }
}

impl Hub {
    pub(crate) fn storage_bytes(&self) -> Option<u64> {
        Some(self.storage_bytes.load(Ordering::Relaxed)).filter(|b| *b != UNKNOWN)
    }

    /// Adds a sample, dropping the oldest once the ring is full.
    pub(crate) fn record(&self, sample: Sample) {
        let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        if history.len() == HISTORY_SAMPLES {
            history.pop_front();
        }
        history.push_back(sample);
    }

    /// `{"interval_secs", "samples": [...]}`, oldest first.
    pub(crate) fn history_json(&self) -> Value {
        let history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let samples: Vec<Value> = history
            .iter()
            .map(|s| {
                json!({
                    "time": s.time,
                    "messages": s.messages,
                    "pending": s.pending,
                    "peers": s.peers,
                    "storage_bytes": s.storage_bytes,
                })
            })
            .collect();
        json!({ "interval_secs": HISTORY_INTERVAL_SECS, "samples": samples })
    }

    /// Publishes a metrics dict to the status websockets, if it differs from the last one.
    pub(crate) fn publish(&self, metrics: Value) {
        self.latest.send_if_modified(|latest| {
            if latest.as_deref() == Some(&metrics) {
                return false;
            }
            *latest = Some(Arc::new(metrics));
            true
        });
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<Option<Arc<Value>>> {
        self.latest.subscribe()
    }

    fn listened(&self) -> bool {
        self.latest.receiver_count() > 0
    }
}

/// The running monitor; dropping it stops the task.
pub struct StatusMonitor {
    task: tokio::task::JoinHandle<()>,
}

impl StatusMonitor {
    /// Starts the monitor of `state`'s node on the current tokio runtime. Keep it as long as
    /// the server runs.
    pub fn start(state: &AppState) -> StatusMonitor {
        let state = state.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(POLL_SECS));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for n in 0u64.. {
                tick.tick().await;
                let sample_due = n.is_multiple_of(POLLS_PER_SAMPLE);
                if sample_due || state.status.listened() {
                    step(&state, sample_due).await;
                }
            }
        });
        StatusMonitor { task }
    }
}

impl StatusMonitor {
    /// Takes a history sample now, as the monitor does every [`HISTORY_INTERVAL_SECS`] (and
    /// publishes the counters to the status websockets).
    pub async fn sample(state: &AppState) {
        step(state, true).await;
    }
}

impl Drop for StatusMonitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One round of the monitor: the counters read and published, and with `sample_due` the
/// stored bytes read and a history sample kept. A failed read skips the round.
async fn step(state: &AppState, sample_due: bool) {
    let hub = &state.status;
    if sample_due {
        match state.read(|r| r.stored_file_bytes()).await {
            Ok(bytes) => hub
                .storage_bytes
                .store(bytes.min(UNKNOWN - 1), Ordering::Relaxed),
            Err(_) => tracing::debug!("the status monitor could not read the stored bytes"),
        }
    }
    let Ok(snapshot) = Snapshot::read(state).await else {
        tracing::debug!("the status monitor could not read the counters");
        return;
    };
    if sample_due {
        hub.record(Sample {
            time: state.clock.now(),
            messages: snapshot.messages,
            pending: snapshot.waiting(),
            peers: snapshot.peer_count(),
            storage_bytes: snapshot.storage_bytes,
        });
    }
    hub.publish(snapshot.to_json());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: u64) -> Sample {
        Sample {
            time: n as f64,
            messages: n,
            pending: 0,
            peers: 1,
            storage_bytes: n.is_multiple_of(2).then_some(n),
        }
    }

    #[test]
    fn the_ring_keeps_the_last_hour_oldest_first() {
        assert_eq!(HISTORY_SAMPLES, 360);
        let hub = Hub::default();
        assert_eq!(
            hub.history_json(),
            json!({"interval_secs": 10, "samples": []})
        );
        for n in 0..400 {
            hub.record(sample(n));
        }
        let history = hub.history_json();
        let samples = history["samples"].as_array().expect("samples");
        assert_eq!(samples.len(), 360);
        assert_eq!(
            samples[0],
            json!({"time": 40.0, "messages": 40, "pending": 0, "peers": 1, "storage_bytes": 40})
        );
        assert_eq!(samples[359]["messages"], 399);
        assert_eq!(samples[359]["storage_bytes"], Value::Null);
        assert!(hub.history.lock().expect("lock").capacity() >= 360);
    }

    #[test]
    fn only_changes_are_published() {
        let hub = Hub::default();
        let mut rx = hub.subscribe();
        assert!(hub.listened());
        hub.publish(json!({"a": 1}));
        assert!(rx.has_changed().expect("open"));
        assert_eq!(rx.borrow_and_update().as_deref(), Some(&json!({"a": 1})));
        hub.publish(json!({"a": 1}));
        assert!(!rx.has_changed().expect("open"));
        hub.publish(json!({"a": 2}));
        assert!(rx.has_changed().expect("open"));
    }
}
