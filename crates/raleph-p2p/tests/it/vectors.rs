//! The reference vectors of p2p.md §4.5, through the public API.

use raleph_p2p::{PeerType, alive_payload, message_id};

#[test]
fn message_ids_match_the_reference() {
    for (data, id) in [
        ("", "13646096770106105413"),
        ("hello", "9754003402134539932"),
        ("ALEPH-TEST", "319835362550027422"),
    ] {
        assert_eq!(message_id(data.as_bytes()), id, "{data:?}");
    }
}

#[test]
fn alive_payload_is_the_fourth_vector() {
    let payload = alive_payload(
        "/ip4/192.0.2.10/tcp/4025/p2p/QmZkurbY2G2hWay59yiTgQNaQxHSNzKZFt2jbnwJhQcKgV",
        PeerType::P2p,
        "v0.6.0",
    );
    assert_eq!(
        payload,
        br#"{"address": "/ip4/192.0.2.10/tcp/4025/p2p/QmZkurbY2G2hWay59yiTgQNaQxHSNzKZFt2jbnwJhQcKgV", "interests": null, "peer_type": "P2P", "version": "v0.6.0"}"#
    );
    assert_eq!(message_id(&payload), "18315834386537896735");
}
