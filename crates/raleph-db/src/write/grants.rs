//! `security_grants`: who each `security` aggregate grants something to, kept with the
//! aggregate so that "who granted this address" is a range of the table's key instead of a
//! scan of every security aggregate (`authorizations/received`).

use super::{Session, Value};
use crate::Result;

/// The aggregate key whose value holds an address's grants.
pub(crate) const SECURITY: &str = "security";

/// The addresses a `security` value's `authorizations` name, each once, sorted. A value that
/// is not JSON, or whose entries are not objects with a string `address`, grants nothing
/// (as the pipeline's authorization reads it).
pub(crate) fn grantees(value: &str) -> Vec<String> {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(value) else {
        return Vec::new();
    };
    let mut out: Vec<String> = value
        .get("authorizations")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.get("address")?.as_str())
        .filter(|address| !address.is_empty())
        .map(str::to_owned)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Brings `owner`'s rows up to date with its `security` value (`None`: it has none now).
/// Called at every change of an aggregate of that key, in the same transaction.
pub(crate) fn refresh(s: &mut dyn Session, owner: &str, value: Option<&str>) -> Result<()> {
    s.execute(
        "DELETE FROM security_grants WHERE owner = $1",
        &[Value::Text(owner)],
    )?;
    for grantee in value.map(grantees).unwrap_or_default() {
        s.execute(
            "INSERT INTO security_grants (grantee, owner) VALUES ($1, $2)",
            &[Value::Text(&grantee), Value::Text(owner)],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grantees_are_the_named_addresses_once() {
        let value = r#"{"authorizations": [{"address": "0xB", "types": ["POST"]},
            {"address": "0xA"}, {"address": "0xB", "chain": "ETH"}, {"address": ""},
            {"address": 3}, "junk", {"types": []}]}"#;
        assert_eq!(grantees(value), ["0xA", "0xB"]);
        for nothing in ["", "[]", "{}", r#"{"authorizations": {"address": "0xA"}}"#] {
            assert!(grantees(nothing).is_empty(), "{nothing}");
        }
    }
}
