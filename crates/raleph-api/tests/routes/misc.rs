//! Channels and address statistics (protocol.md §6.1).

use raleph_crypto::EthSigner;
use raleph_message::MessageType;
use serde_json::json;

use crate::support::*;

const STATS_KEYS: [&str; 7] = [
    "aggregate",
    "forget",
    "instance",
    "messages",
    "post",
    "program",
    "store",
];

#[tokio::test]
async fn channels_lists_each_channel_once() {
    let node = Node::start();
    let empty = node.get_ok("/api/v0/channels/list.json").await;
    assert_eq!(empty, json!({"channels": []}));
    let signer = EthSigner::new_random();
    for (i, channel) in ["B-CHANNEL", "A-CHANNEL", "B-CHANNEL"].iter().enumerate() {
        node.processed(&post(
            &signer,
            "note",
            json!({"i": i}),
            channel,
            T0 + i as f64,
        ))
        .await;
    }
    let body = node.get_ok("/api/v0/channels/list.json").await;
    assert_eq!(keys(&body), ["channels"]);
    let mut channels: Vec<&str> = array(&body, "channels")
        .iter()
        .map(|c| c.as_str().expect("a channel name"))
        .collect();
    channels.sort_unstable();
    assert_eq!(channels, ["A-CHANNEL", "B-CHANNEL"]);
}

/// alice: two posts and an aggregate; bob: one post.
async fn two_senders() -> (Node, String, String) {
    let node = Node::start();
    let alice = EthSigner::new_random();
    let bob = EthSigner::new_random();
    node.processed(&post(&alice, "note", json!({}), "TEST", T0))
        .await;
    node.processed(&post(&alice, "note", json!({"n": 2}), "TEST", T0 + 1.0))
        .await;
    node.processed(&signed(
        &alice,
        MessageType::Aggregate,
        json!({"key": "k", "content": {"a": 1}}),
        "TEST",
        T0 + 2.0,
    ))
    .await;
    node.processed(&post(&bob, "note", json!({}), "TEST", T0 + 3.0))
        .await;
    (node, alice.address(), bob.address())
}

#[tokio::test]
async fn address_stats_v0_count_messages_by_type() {
    let (node, alice, bob) = two_senders().await;
    for query in [
        format!("addresses={alice},{bob}"),
        format!("addresses[]={alice}&addresses[]={bob}"),
    ] {
        let body = node
            .get_ok(&format!("/api/v0/addresses/stats.json?{query}"))
            .await;
        assert_eq!(keys(&body), ["data"], "{query}");
        let a = &body["data"][&alice];
        assert_eq!(keys(a), sorted(&STATS_KEYS));
        assert_eq!(
            *a,
            json!({"messages": 3, "post": 2, "aggregate": 1, "store": 0, "forget": 0, "program": 0, "instance": 0})
        );
        assert_eq!(body["data"][&bob]["messages"], 1);
        assert_eq!(body["data"][&bob]["post"], 1);
    }
    let only_bob = node
        .get_ok(&format!("/api/v0/addresses/stats.json?addresses={bob}"))
        .await;
    assert_eq!(keys(&only_bob["data"]), [bob.as_str()]);
}

#[tokio::test]
async fn address_stats_v1_sort_and_page() {
    let (node, alice, bob) = two_senders().await;
    let body = node.get_ok("/api/v1/addresses/stats.json").await;
    assert_eq!(
        keys(&body),
        sorted(&[
            "data",
            "pagination_item",
            "pagination_page",
            "pagination_per_page",
            "pagination_total"
        ])
    );
    assert_eq!(body["pagination_item"], "addresses");
    assert_eq!(body["pagination_page"], 1);
    assert_eq!(body["pagination_per_page"], 20);
    assert_eq!(body["pagination_total"], 2);
    assert_eq!(body["data"][&alice]["messages"], 3);
    assert_eq!(keys(&body["data"][&bob]), sorted(&STATS_KEYS));
    // Most messages first, one a page.
    let first = node
        .get_ok("/api/v1/addresses/stats.json?pagination=1")
        .await;
    assert_eq!(keys(&first["data"]), [alice.as_str()]);
    assert_eq!(first["pagination_total"], 2);
    let fewest = node
        .get_ok("/api/v1/addresses/stats.json?pagination=1&sortOrder=1")
        .await;
    assert_eq!(keys(&fewest["data"]), [bob.as_str()]);
    let second = node
        .get_ok("/api/v1/addresses/stats.json?pagination=1&page=2")
        .await;
    assert_eq!(keys(&second["data"]), [bob.as_str()]);
    assert_eq!(second["pagination_page"], 2);
    // `addressContains`, whatever the case.
    let part = bob[2..10].to_uppercase();
    let found = node
        .get_ok(&format!(
            "/api/v1/addresses/stats.json?addressContains={part}"
        ))
        .await;
    assert_eq!(keys(&found["data"]), [bob.as_str()]);
    assert_eq!(found["pagination_total"], 1);
}
