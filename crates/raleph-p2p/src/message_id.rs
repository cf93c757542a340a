//! The gossipsub message id of reference nodes (p2p.md §4.5).
//!
//! The id is content-addressed: SipHash-1-3 with zero keys over `le_u64(len) ‖ data`, printed as
//! a decimal `u64`. It ignores author and sequence number, so the same bytes published by two
//! nodes share one id, and IHAVE/IWANT ids match the reference's. This is what Rust's
//! `DefaultHasher` produces for a `Vec<u8>` today, but that hasher's algorithm is not guaranteed
//! stable, so the function is spelled out here.

use std::hash::Hasher;

use siphasher::sip::SipHasher13;

/// The reference message id of `data`, as the decimal string gossipsub carries.
pub fn message_id(data: &[u8]) -> String {
    message_id_u64(data).to_string()
}

/// The same id as a number.
pub fn message_id_u64(data: &[u8]) -> u64 {
    let mut hasher = SipHasher13::new_with_keys(0, 0);
    // Widening usize to u64 is lossless on every supported target.
    hasher.write(&(data.len() as u64).to_le_bytes());
    hasher.write(data);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(data: &str, expected: &str) {
        assert_eq!(message_id(data.as_bytes()), expected, "id of {data:?}");
    }

    #[test]
    fn reference_vectors() {
        // All four vectors of p2p.md §4.5.
        check("", "13646096770106105413");
        check("hello", "9754003402134539932");
        check("ALEPH-TEST", "319835362550027422");
        check(
            r#"{"address": "/ip4/192.0.2.10/tcp/4025/p2p/QmZkurbY2G2hWay59yiTgQNaQxHSNzKZFt2jbnwJhQcKgV", "interests": null, "peer_type": "P2P", "version": "v0.6.0"}"#,
            "18315834386537896735",
        );
    }
}
