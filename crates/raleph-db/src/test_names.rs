//! Item hashes with names, for tests: the store takes only well-formed item hashes, and tests
//! read better with `"m1"` than with 64 hex digits. Used by the unit tests and, through a
//! `#[path]` module, by the integration tests (so it names its types by their crate).

use raleph_message::ItemHash;

/// A test's item hash, named: the name's bytes in hex, padded with zeros to the 64 characters
/// of a SHA-256 digest. Hashes sort as their names do, and [`name`] reads the name back, so a
/// test can write and compare short names. A name that already is an item hash is kept.
pub fn h(name: &str) -> ItemHash {
    if let Ok(hash) = ItemHash::parse(name) {
        return hash;
    }
    assert!(
        name.len() <= 32,
        "a test hash name has at most 32 bytes: {name:?}"
    );
    let mut hex: String = name.bytes().map(|b| format!("{b:02x}")).collect();
    hex.extend(std::iter::repeat_n('0', 64 - hex.len()));
    ItemHash::parse(&hex).expect("64 lowercase hex characters")
}

/// The name [`h`] made `hash` from (a hash it did not make is returned whole).
pub fn name(hash: &ItemHash) -> String {
    let hex = hash.as_str().trim_end_matches("00");
    let bytes: Option<Vec<u8>> = (0..hex.len() / 2 * 2)
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect();
    match bytes.and_then(|b| String::from_utf8(b).ok()) {
        Some(name) if h(&name) == *hash => name,
        _ => hash.to_string(),
    }
}
