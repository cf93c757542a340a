//! The validation kit the schema is written with: reading a field as the reference's models
//! do (required, optional, defaulted), and checking or coercing one JSON value (strings,
//! lists, bounded integers, booleans, item hashes), each error named by its path.

use serde_json::{Map, Value};

use crate::content::ContentError;
use crate::item_hash::{ItemHash, ItemHashKind};

pub(super) type Object = Map<String, Value>;
pub(super) type Res<T> = Result<T, ContentError>;

// Access to fields, as the models see them: an `Optional` field is absent or null alike; a
// field with a default may be absent but not null; a required field must be present and not null.

pub(super) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

pub(super) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

pub(super) fn invalid<T>(at: &str, reason: impl Into<String>) -> Res<T> {
    Err(ContentError::invalid(at, reason))
}

/// A required, non-null field and its path.
pub(super) fn required<'a>(map: &'a Object, parent: &str, key: &str) -> Res<(&'a Value, String)> {
    let at = join(parent, key);
    match map.get(key) {
        None => Err(ContentError::Missing(at)),
        Some(Value::Null) => invalid(&at, "must not be null"),
        Some(value) => Ok((value, at)),
    }
}

/// An `Optional` field: absent and null both mean "not given".
pub(super) fn optional<'a>(map: &'a Object, key: &str) -> Option<&'a Value> {
    map.get(key).filter(|v| !v.is_null())
}

/// A field with a default: may be absent, may not be null.
pub(super) fn defaulted<'a>(map: &'a Object, parent: &str, key: &str) -> Res<Option<&'a Value>> {
    match map.get(key) {
        None => Ok(None),
        Some(Value::Null) => invalid(&join(parent, key), "must not be null"),
        Some(value) => Ok(Some(value)),
    }
}

/// A boolean field with a default.
pub(super) fn bool_field(map: &Object, parent: &str, key: &str, default: bool) -> Res<bool> {
    match defaulted(map, parent, key)? {
        Some(value) => boolean(value, &join(parent, key)),
        None => Ok(default),
    }
}

/// Refuses keys outside the allowed sets, for the models that forbid extra fields.
pub(super) fn only_keys(map: &Object, at: &str, allowed: &[&[&str]]) -> Res<()> {
    match map
        .keys()
        .find(|k| !allowed.iter().any(|set| set.contains(&k.as_str())))
    {
        Some(extra) => Err(ContentError::Unexpected(join(at, extra))),
        None => Ok(()),
    }
}

pub(super) fn object<'a>(value: &'a Value, at: &str) -> Res<&'a Object> {
    value
        .as_object()
        .ok_or_else(|| ContentError::invalid(at, "must be an object"))
}

pub(super) fn list<'a>(value: &'a Value, at: &str, max: usize) -> Res<&'a Vec<Value>> {
    let items = value
        .as_array()
        .ok_or_else(|| ContentError::invalid(at, "must be a list"))?;
    if items.len() > max {
        return invalid(at, format!("at most {max} entries"));
    }
    Ok(items)
}

pub(super) fn string<'a>(value: &'a Value, at: &str) -> Res<&'a str> {
    value
        .as_str()
        .ok_or_else(|| ContentError::invalid(at, "must be a string"))
}

/// A string of at most `max` characters (Unicode code points, as the reference counts).
pub(super) fn bounded_str<'a>(value: &'a Value, at: &str, max: usize) -> Res<&'a str> {
    let s = string(value, at)?;
    if s.chars().count() > max {
        return invalid(at, format!("at most {max} characters"));
    }
    Ok(s)
}

pub(super) fn string_list(value: &Value, at: &str) -> Res<()> {
    for (i, item) in list(value, at, usize::MAX)?.iter().enumerate() {
        string(item, &index(at, i))?;
    }
    Ok(())
}

/// One of a fixed set of strings (an enum or a literal), compared exactly.
pub(super) fn choice(value: &Value, at: &str, choices: &[&'static str]) -> Res<&'static str> {
    let s = string(value, at)?;
    choices
        .iter()
        .find(|c| **c == s)
        .copied()
        .ok_or_else(|| ContentError::invalid(at, format!("must be one of {}", choices.join(", "))))
}

/// An item hash: 64 lowercase hex characters, or an IPFS CID.
pub(super) fn item_hash(value: &Value, at: &str) -> Res<String> {
    let s = string(value, at)?;
    let hash = ItemHash::parse(s).map_err(|e| ContentError::invalid(at, e.to_string()))?;
    // The reference only takes lowercase SHA-256 digests.
    if hash.kind() == ItemHashKind::Sha256 && s.bytes().any(|b| b.is_ascii_uppercase()) {
        return invalid(at, "a SHA-256 item hash is lowercase hex");
    }
    Ok(hash.into_string())
}

/// Python truthiness of a raw JSON value.
pub(super) fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// A boolean, coerced as the reference does: `true`/`false`, the numbers 0 and 1, and the
/// strings `0 1 f t n y no on off yes true false` in any case.
pub(super) fn boolean(value: &Value, at: &str) -> Res<bool> {
    let parsed = match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_f64() {
            Some(0.0) => Some(false),
            Some(1.0) => Some(true),
            _ => None,
        },
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "0" | "off" | "f" | "false" | "n" | "no" => Some(false),
            "1" | "on" | "t" | "true" | "y" | "yes" => Some(true),
            _ => None,
        },
        _ => None,
    };
    parsed.ok_or_else(|| ContentError::invalid(at, "must be a boolean"))
}

/// An integer, coerced as the reference does (pydantic's lax `int`, see `lax`).
pub(super) fn int(value: &Value, at: &str) -> Res<i128> {
    crate::content::lax::int_from_value(value)
        .ok_or_else(|| ContentError::invalid(at, "must be an integer"))
}

/// A strict integer: a JSON integer, nothing coerced.
fn strict_int(value: &Value, at: &str) -> Res<i128> {
    let n = value.as_number().filter(|n| n.is_i64() || n.is_u64());
    n.and_then(|n| {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    })
    .ok_or_else(|| ContentError::invalid(at, "must be an integer"))
}

fn in_range(n: i128, at: &str, min: i128, max: i128) -> Res<i128> {
    if (min..=max).contains(&n) {
        Ok(n)
    } else {
        invalid(at, format!("must be between {min} and {max}"))
    }
}

pub(super) fn bounded_int(value: &Value, at: &str, min: i128, max: i128) -> Res<i128> {
    in_range(int(value, at)?, at, min, max)
}

pub(super) fn strict_bounded_int(value: &Value, at: &str, min: i128, max: i128) -> Res<i128> {
    in_range(strict_int(value, at)?, at, min, max)
}
