//! Which version of a program answers, and which programs listen to messages: kept in memory
//! from one read of the node's PROGRAM messages at start, then from the pipeline's events.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::spec::ProgramSpec;

/// A program with `on.message` subscriptions.
#[derive(Debug, Clone)]
pub struct Listener {
    pub item_hash: String,
    pub time: f64,
    pub subscriptions: Vec<Map<String, Value>>,
}

#[derive(Debug, Default)]
pub struct ProgramIndex {
    /// Original → its updates (item hash, content time).
    updates: HashMap<String, Vec<(String, f64)>>,
    /// Update → the original it replaces.
    original_of: HashMap<String, String>,
    listeners: HashMap<String, Listener>,
    /// Programs with `on.persistent`: kept running.
    persistent: std::collections::BTreeSet<String>,
}

impl ProgramIndex {
    /// Records a processed PROGRAM.
    pub fn add(&mut self, spec: &ProgramSpec, time: f64) {
        if let Some(original) = &spec.replaces {
            self.original_of
                .insert(spec.item_hash.clone(), original.clone());
            let updates = self.updates.entry(original.clone()).or_default();
            if !updates.iter().any(|(hash, _)| *hash == spec.item_hash) {
                updates.push((spec.item_hash.clone(), time));
            }
        }
        if spec.persistent {
            self.persistent.insert(spec.item_hash.clone());
        }
        if !spec.on_message.is_empty() {
            self.listeners.insert(
                spec.item_hash.clone(),
                Listener {
                    item_hash: spec.item_hash.clone(),
                    time,
                    subscriptions: spec.on_message.clone(),
                },
            );
        }
    }

    /// The version that answers for `item_hash`: its newest update, or itself.
    pub fn current(&self, item_hash: &str) -> String {
        self.updates
            .get(item_hash)
            .and_then(|updates| updates.iter().max_by(|a, b| a.1.total_cmp(&b.1)))
            .map_or_else(|| item_hash.to_owned(), |(hash, _)| hash.clone())
    }

    /// The original an update replaces (itself when it is not an update).
    pub fn original(&self, item_hash: &str) -> String {
        self.original_of
            .get(item_hash)
            .cloned()
            .unwrap_or_else(|| item_hash.to_owned())
    }

    /// Forgets a program; an original takes its updates with it. Returns every hash dropped.
    pub fn remove(&mut self, item_hash: &str) -> Vec<String> {
        let mut gone = vec![item_hash.to_owned()];
        if let Some(updates) = self.updates.remove(item_hash) {
            gone.extend(updates.into_iter().map(|(hash, _)| hash));
        }
        for hash in &gone {
            self.listeners.remove(hash);
            self.persistent.remove(hash);
            if let Some(original) = self.original_of.remove(hash)
                && let Some(updates) = self.updates.get_mut(&original)
            {
                // An update forgotten on its own: the newest one left answers.
                updates.retain(|(update, _)| update != hash);
            }
        }
        gone
    }

    /// Persistent programs (originals and updates as published).
    pub fn persistent(&self) -> Vec<String> {
        self.persistent.iter().cloned().collect()
    }

    /// Programs whose subscriptions match this message (its JSON as the API shows it).
    pub fn listeners_of(&self, message: &Value) -> Vec<String> {
        let mut matched: Vec<&Listener> = self
            .listeners
            .values()
            .filter(|l| l.subscriptions.iter().any(|s| matches(s, message)))
            .collect();
        matched.sort_by(|a, b| a.time.total_cmp(&b.time));
        matched.into_iter().map(|l| l.item_hash.clone()).collect()
    }

    /// Every listener, oldest first (or newest first).
    pub fn listeners(&self, newest_first: bool) -> Vec<Listener> {
        let mut all: Vec<Listener> = self.listeners.values().cloned().collect();
        all.sort_by(|a, b| a.time.total_cmp(&b.time));
        if newest_first {
            all.reverse();
        }
        all
    }
}

/// The reference's rule: every key of the subscription is present in the message with an
/// equal value; objects are compared key by key, recursively.
pub fn matches(subscription: &Map<String, Value>, message: &Value) -> bool {
    subscription.iter().all(|(key, wanted)| {
        let Some(actual) = message.get(key) else {
            return false;
        };
        match wanted {
            Value::Object(inner) => matches(inner, actual),
            _ => wanted == actual,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subscriptions_match_key_by_key_recursively() {
        let message =
            json!({"type": "POST", "sender": "0xA", "content": {"type": "chat", "address": "0xA"}});
        let sub = |v: Value| v.as_object().unwrap().clone();
        assert!(matches(&sub(json!({"type": "POST"})), &message));
        assert!(matches(
            &sub(json!({"content": {"type": "chat"}})),
            &message
        ));
        assert!(!matches(
            &sub(json!({"content": {"type": "other"}})),
            &message
        ));
        assert!(!matches(&sub(json!({"channel": "x"})), &message));
        assert!(matches(&sub(json!({})), &message));
    }
}
