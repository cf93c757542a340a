//! Values that deserialize but that no node can run with, found before the node starts.

use super::NodeConfig;

/// A refused value: the dotted key it is at, and why.
pub struct Problem {
    pub key: String,
    pub reason: String,
}

/// Every problem of `config`:
/// - every duration (a field named `*_secs` or `*_ms`, in any section) must be a finite
///   number, zero or more: a negative or infinite one used to panic the node when it was
///   first used, possibly long after start;
/// - every peer must be a multiaddr.
pub fn problems(config: &NodeConfig) -> Vec<Problem> {
    let mut problems = Vec::new();
    match serde_json::to_value(config) {
        Ok(value) => check_durations(&value, "", &mut problems),
        Err(e) => problems.push(Problem {
            key: String::new(),
            reason: format!("cannot be read back: {e}"),
        }),
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
