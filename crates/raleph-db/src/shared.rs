//! Pure helpers every backend shares, so that they compute derived state the same way.

use serde_json::{Map, Value};

use crate::{Result, StoreError};

/// Parses JSON the store wrote itself; a failure means the stored data is corrupt.
pub(crate) fn parse_json(s: &str) -> Result<Value> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("stored JSON: {e}")))
}

/// The merged value of an aggregate, from its elements' contents in content-time order:
/// a shallow, top-level merge where later values replace earlier ones, nested objects are
/// replaced whole, null values are kept, and keys keep the position of their first
/// appearance. Elements that are not objects are skipped.
pub(crate) fn merge_aggregate<'a>(contents: impl IntoIterator<Item = &'a str>) -> Result<String> {
    let mut merged = Map::new();
    for content in contents {
        if let Value::Object(fields) = parse_json(content)? {
            merged.extend(fields);
        }
    }
    Ok(Value::Object(merged).to_string())
}

/// The message count and per-status counts from the `counters` table's `(name, n)` rows
/// (`messages`, `status:<status>`), in status order; zero counts are left out.
pub(crate) fn split_counters(rows: Vec<(String, i64)>) -> (u64, Vec<(crate::MessageStatus, u64)>) {
    let mut messages = 0;
    let mut by_status = Vec::new();
    for (name, n) in rows {
        let n = n.max(0) as u64;
        if name == "messages" {
            messages = n;
        } else if let Some(status) = name.strip_prefix("status:").and_then(|s| s.parse().ok())
            && n > 0
        {
            by_status.push((status, n));
        }
    }
    by_status.sort_by_key(|(status, _): &(crate::MessageStatus, u64)| status.as_str());
    (messages, by_status)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merge_is_shallow_ordered_and_keeps_null() {
        let a = json!({"a": {"x": 1}, "b": 1, "c": 1}).to_string();
        let b = json!({"a": {"y": 2}, "b": null}).to_string();
        let merged = merge_aggregate([a.as_str(), b.as_str(), "[1]"]).expect("merge");
        assert_eq!(merged, r#"{"a":{"y":2},"b":null,"c":1}"#);
        assert!(merge_aggregate(["{"]).is_err());
    }
}
