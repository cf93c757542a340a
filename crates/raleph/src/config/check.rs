//! Values that deserialize but that no node can run with, found before the node starts.

use super::NodeConfig;
use crate::network::{MAX_SYNC_DURATION_SECS, MIN_CHUNK};

/// A refused value: the dotted key it is at, and why.
pub struct Problem {
    pub key: String,
    pub reason: String,
}

/// Every problem of `config`:
/// - every duration (a field named `*_secs` or `*_ms`, in any section) must be a finite
///   number, zero or more: a negative or infinite one used to panic the node when it was
///   first used, possibly long after start;
/// - every peer must be a multiaddr;
/// - the limits of [`limit_problems`] must be within their bounds.
pub fn problems(config: &NodeConfig) -> Vec<Problem> {
    let mut problems = limit_problems(config);
    match serde_json::to_value(config) {
        Ok(value) => check_durations(&value, "", &mut problems),
        Err(e) => problems.push(Problem {
            key: String::new(),
            reason: format!("cannot be read back: {e}"),
        }),
    }
    if let Err(e) = config.anchoring.check() {
        problems.push(Problem {
            key: "anchoring".to_owned(),
            reason: format!("{e:#}"),
        });
    }
    for (index, peer) in config.peers.iter().enumerate() {
        if peer.parse::<raleph_p2p::Multiaddr>().is_err() {
            problems.push(Problem {
                key: format!("peers[{index}]"),
                reason: format!("{peer:?} is not a multiaddr"),
            });
        }
    }
    problems
}

/// Collects the durations under `value` (at `path`) that are not finite numbers ≥ 0.
fn check_durations(value: &serde_json::Value, path: &str, problems: &mut Vec<Problem>) {
    let serde_json::Value::Object(fields) = value else {
        return;
    };
    for (name, field) in fields {
        let at = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        if name.ends_with("_secs") || name.ends_with("_ms") {
            // serde_json writes a non-finite float as null.
            let good = field.as_f64().is_some_and(|n| n.is_finite() && n >= 0.0);
            if !good {
                problems.push(Problem {
                    reason: format!("must be a finite number of zero or more, not {field}"),
                    key: at.clone(),
                });
            }
        }
        check_durations(field, &at, problems);
    }
}

/// The limits that zero, or an absurdly large value, would break: a queue of no places
/// panics when it is made, a duration past a year overflows the clock's arithmetic, a file
/// chunk larger than a peer-to-peer answer can never be sent.
fn limit_problems(config: &NodeConfig) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut within = |key: &str, value: u64, min: u64, max: u64| {
        if !(min..=max).contains(&value) {
            problems.push(Problem {
                key: key.to_owned(),
                reason: format!("must be from {min} to {max}, not {value}"),
            });
        }
    };
    let (sync, api) = (&config.sync, &config.api);
    within(
        "sync.http_peer_max_failures",
        sync.http_peer_max_failures.into(),
        1,
        1_000,
    );
    within(
        "sync.max_served_batch",
        sync.max_served_batch.into(),
        1,
        100_000,
    );
    within(
        "sync.max_served_chunk_bytes",
        sync.max_served_chunk_bytes.into(),
        MIN_CHUNK.into(),
        // Room for the answer's header and length prefixes.
        (config.p2p.max_response_bytes as u64).saturating_sub(MIN_CHUNK.into()),
    );
    within(
        "sync.max_outbound_gossip",
        sync.max_outbound_gossip as u64,
        1,
        1_000_000,
    );
    within(
        "sync.max_carried_skeletons",
        sync.max_carried_skeletons as u64,
        0,
        1_000_000,
    );
    within(
        "sync.max_queued_fetches",
        sync.max_queued_fetches as u64,
        1,
        1_000_000,
    );
    within(
        "sync.max_remembered_fetches",
        sync.max_remembered_fetches as u64,
        1,
        10_000_000,
    );
    within(
        "p2p.max_pending_inbound",
        config.p2p.max_pending_inbound as u64,
        1,
        1_000_000,
    );
    within(
        "p2p.max_pending_inbound_per_peer",
        config.p2p.max_pending_inbound_per_peer as u64,
        1,
        config.p2p.max_pending_inbound as u64,
    );
    within(
        "compute.max_table_elements",
        config.compute.max_table_elements as u64,
        1_000,
        10_000_000,
    );
    within(
        "compute.max_control_body_bytes",
        config.compute.max_control_body_bytes as u64,
        1024,
        1024 * 1024,
    );
    within(
        "api.max_upload_metadata_bytes",
        api.max_upload_metadata_bytes as u64,
        1024,
        64 * 1024 * 1024,
    );
    within(
        "api.upload_queue_chunks",
        api.upload_queue_chunks as u64,
        1,
        1024,
    );
    within(
        "compute.max_guest_api_request_bytes",
        config.compute.max_guest_api_request_bytes as u64,
        0,
        64 * 1024 * 1024,
    );
    for (key, secs) in [
        ("sync.http_peer_rest_secs", sync.http_peer_rest_secs),
        ("sync.http_peer_dropped_secs", sync.http_peer_dropped_secs),
        ("sync.bad_peer_penalty_secs", sync.bad_peer_penalty_secs),
        ("sync.fetch_retry_after_secs", sync.fetch_retry_after_secs),
    ] {
        // Negative and non-finite ones are reported by `check_durations`.
        if secs > MAX_SYNC_DURATION_SECS {
            problems.push(Problem {
                key: key.to_owned(),
                reason: format!("must be at most {MAX_SYNC_DURATION_SECS} (a year), not {secs}"),
            });
        }
    }
    problems
}
