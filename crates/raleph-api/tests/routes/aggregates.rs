//! `GET /api/v0/aggregates/{address}.json` and `GET /api/v0/aggregates.json`: the merged
//! state of each address (protocol.md §6.6).

use axum::http::StatusCode;
use raleph_crypto::EthSigner;
use serde_json::{Value, json};

use crate::support::*;

/// alice's `profile` (two elements, merged) and `settings`, bob's `profile`, as posted.
struct Fixture {
    node: Node,
    alice: EthSigner,
    bob: EthSigner,
    sent: Vec<Value>,
}

async fn fixture() -> Fixture {
    let node = Node::start();
    let alice = EthSigner::new_random();
    let bob = EthSigner::new_random();
    let sent = vec![
        aggregate(&alice, "profile", json!({"name": "a", "age": 1}), T0 + 1.0),
        aggregate(&alice, "settings", json!({"theme": "dark"}), T0 + 2.0),
        aggregate(&bob, "profile", json!({"name": "b"}), T0 + 3.0),
        aggregate(&alice, "profile", json!({"age": 2, "city": "x"}), T0 + 4.0),
    ];
    for message in &sent {
        node.processed(message).await;
    }
    Fixture {
        node,
        alice,
        bob,
        sent,
    }
}

#[tokio::test]
async fn an_address_has_its_merged_aggregates() {
    let f = fixture().await;
    let alice = f.alice.address();
    for path in [
        format!("/api/v0/aggregates/{alice}.json"),
        format!("/api/v0/aggregates/{alice}"),
    ] {
        let body = f.node.get_ok(&path).await;
        assert_eq!(keys(&body), sorted(&["address", "data", "info"]), "{path}");
        assert_eq!(body["address"], alice.as_str());
        // Top-level keys merged, the later element winning.
        assert_eq!(
            body["data"],
            json!({"profile": {"name": "a", "age": 2, "city": "x"}, "settings": {"theme": "dark"}}),
            "{path}"
        );
        assert_eq!(body["info"], json!({}));
    }
    let some = f
        .node
        .get_ok(&format!("/api/v0/aggregates/{alice}.json?keys=settings"))
        .await;
    assert_eq!(some["data"], json!({"settings": {"theme": "dark"}}));
    // One key and `value_only`: the bare value.
    let value = f
        .node
        .get_ok(&format!(
            "/api/v0/aggregates/{alice}.json?keys=settings&value_only=true"
        ))
        .await;
    assert_eq!(value, json!({"theme": "dark"}));
}

#[tokio::test]
async fn with_info_tells_when_and_by_which_message() {
    let f = fixture().await;
    let alice = f.alice.address();
    let body = f
        .node
        .get_ok(&format!(
            "/api/v0/aggregates/{alice}.json?keys=profile&with_info=true"
        ))
        .await;
    let info = &body["info"]["profile"];
    assert_eq!(
        keys(info),
        sorted(&[
            "created",
            "last_update_item_hash",
            "last_updated",
            "original_item_hash"
        ])
    );
    assert_eq!(info["original_item_hash"], hash_of(&f.sent[0]).as_str());
    assert_eq!(info["last_update_item_hash"], hash_of(&f.sent[3]).as_str());
    assert_eq!(info["created"], "2023-11-14T22:13:21+00:00");
    assert_eq!(info["last_updated"], "2023-11-14T22:13:24+00:00");
}

#[tokio::test]
async fn an_address_without_aggregates_is_404() {
    let f = fixture().await;
    let nobody = EthSigner::new_random().address();
    let answer = f
        .node
        .get(&format!("/api/v0/aggregates/{nobody}.json"))
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.body);
    let alice = f.alice.address();
    let missing_key = f
        .node
        .get(&format!("/api/v0/aggregates/{alice}.json?keys=nothing"))
        .await;
    assert_eq!(missing_key.status, StatusCode::NOT_FOUND);
    // The address matches exactly: not in another case.
    let lowercase = alice.to_lowercase();
    assert_ne!(
        alice, lowercase,
        "an EIP-55 checksummed address has capitals"
    );
    let other_case = f
        .node
        .get(&format!("/api/v0/aggregates/{lowercase}.json"))
        .await;
    assert_eq!(other_case.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_aggregate_list_pages_every_address_and_key() {
    let f = fixture().await;
    let alice = f.alice.address();
    let bob = f.bob.address();
    let body = f.node.get_ok("/api/v0/aggregates.json").await;
    assert_eq!(
        keys(&body),
        sorted(&[
            "aggregates",
            "pagination_item",
            "pagination_page",
            "pagination_per_page",
            "pagination_total"
        ])
    );
    assert_eq!(body["pagination_item"], "aggregates");
    assert_eq!(body["pagination_page"], 1);
    assert_eq!(body["pagination_per_page"], 20);
    assert_eq!(body["pagination_total"], 3);
    let listed = array(&body, "aggregates");
    let named: Vec<(String, String)> = listed
        .iter()
        .map(|a| {
            assert_eq!(
                keys(a),
                sorted(&["address", "content", "created", "key", "last_updated"])
            );
            assert_iso_time(&a["created"]);
            assert_iso_time(&a["last_updated"]);
            (
                a["address"].as_str().expect("address").to_owned(),
                a["key"].as_str().expect("key").to_owned(),
            )
        })
        .collect();
    // Last modified first (the default sort).
    assert_eq!(
        named,
        [
            (alice.clone(), "profile".to_owned()),
            (bob.clone(), "profile".to_owned()),
            (alice.clone(), "settings".to_owned()),
        ]
    );
    assert_eq!(
        listed[0]["content"],
        json!({"name": "a", "age": 2, "city": "x"})
    );
    let created_order = f
        .node
        .get_ok("/api/v0/aggregates.json?sortBy=creation_time&sortOrder=1")
        .await;
    let keys_by_creation: Vec<(&str, &str)> = array(&created_order, "aggregates")
        .iter()
        .map(|a| {
            (
                a["address"].as_str().expect("address"),
                a["key"].as_str().expect("key"),
            )
        })
        .collect();
    assert_eq!(
        keys_by_creation,
        [
            (alice.as_str(), "profile"),
            (alice.as_str(), "settings"),
            (bob.as_str(), "profile"),
        ]
    );
    let of_bob = f
        .node
        .get_ok(&format!("/api/v0/aggregates.json?addresses={bob}"))
        .await;
    assert_eq!(array(&of_bob, "aggregates").len(), 1);
    assert_eq!(of_bob["pagination_total"], 1);
    let profiles = f
        .node
        .get_ok("/api/v0/aggregates.json?keys=profile&pagination=1")
        .await;
    assert_eq!(array(&profiles, "aggregates").len(), 1);
    assert_eq!(profiles["pagination_per_page"], 1);
    assert_eq!(profiles["pagination_total"], 2);
    let second = f
        .node
        .get_ok("/api/v0/aggregates.json?keys=profile&pagination=1&page=2")
        .await;
    assert_eq!(array(&second, "aggregates")[0]["address"], bob.as_str());
    assert_eq!(second["pagination_page"], 2);
}

/// A full page's total is exact at the moment of the answer (issue 15): a key's total is
/// kept by the store, not cached.
#[tokio::test]
async fn a_full_page_of_aggregates_has_an_exact_total() {
    let f = fixture().await;
    let body = f.node.get_ok("/api/v0/aggregates.json?pagination=1").await;
    assert_eq!(body["pagination_total"], 3);
    f.node
        .processed(&aggregate(
            &f.bob,
            "settings",
            json!({"theme": "light"}),
            T0 + 5.0,
        ))
        .await;
    let body = f.node.get_ok("/api/v0/aggregates.json?pagination=1").await;
    assert_eq!(body["pagination_total"], 4);
}
