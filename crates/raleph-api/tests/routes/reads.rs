//! The rest of the reference's read API: item hashes, authorizations, an address's post types
//! and channels (protocol.md §6.1).

use raleph_api::ApiConfig;
use raleph_crypto::EthSigner;
use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn message_hashes_by_reception_time() {
    let node = Node::start();
    let empty = node.get_ok("/api/v0/messages/hashes").await;
    assert_eq!(
        empty,
        json!({"hashes": [], "pagination_per_page": 20, "pagination_page": 1,
               "pagination_total": 0, "pagination_item": "hashes"})
    );
    let signer = EthSigner::new_random();
    let mut sent = Vec::new();
    for i in 0..3 {
        let message = post(&signer, "note", json!({"i": i}), "TEST", T0 + f64::from(i));
        node.processed(&message).await;
        sent.push(hash_of(&message));
    }
    // Received in submission order: newest first by default.
    let body = node.get_ok("/api/v0/messages/hashes").await;
    let newest_first: Vec<String> = sent.iter().rev().cloned().collect();
    assert_eq!(body["hashes"], json!(newest_first));
    assert_eq!(body["pagination_total"], 3);
    let body = node
        .get_ok("/api/v0/messages/hashes?sortOrder=1&pagination=2&page=2")
        .await;
    assert_eq!(body["hashes"], json!([sent[2]]));
    assert_eq!(
        (
            body["pagination_page"].clone(),
            body["pagination_per_page"].clone()
        ),
        (json!(2), json!(2))
    );
    assert_eq!(body["pagination_total"], 3);
    let body = node
        .get_ok("/api/v0/messages/hashes?hash_only=false&status=processed&pagination=1")
        .await;
    let rows = array(&body, "hashes");
    assert_eq!(rows.len(), 1);
    assert_eq!(keys(&rows[0]), ["item_hash", "reception_time", "status"]);
    assert_eq!(rows[0]["status"], "processed");
    assert_eq!(rows[0]["item_hash"], json!(sent[2]));
    assert_iso_time(&rows[0]["reception_time"]);
    assert_eq!(body["pagination_total"], 3);
    // No rejected message, and nothing received before 1970 + 1 s.
    let body = node.get_ok("/api/v0/messages/hashes?status=rejected").await;
    assert_eq!(
        (body["hashes"].clone(), body["pagination_total"].clone()),
        (json!([]), json!(0))
    );
    let body = node.get_ok("/api/v0/messages/hashes?endDate=1").await;
    assert_eq!(
        (body["hashes"].clone(), body["pagination_total"].clone()),
        (json!([]), json!(0))
    );
    let body = node
        .get_ok("/api/v0/messages/hashes?startDate=1&pagination=1")
        .await;
    assert_eq!(body["pagination_total"], 3);
    for bad in [
        "status=lost",
        "page=0",
        "pagination=-1",
        "pagination=1001",
        "sortOrder=2",
        "hash_only=maybe",
        "startDate=-5",
        "endDate=x",
    ] {
        let answer = node.get(&format!("/api/v0/messages/hashes?{bad}")).await;
        assert_eq!(answer.status, 422, "{bad}: {}", answer.body);
        assert!(answer.body["error"].is_string(), "{bad}");
    }
}

/// alice grants bob POSTs on one channel and carol everything; dave grants bob aggregates.
async fn grants() -> (Node, String, String, String, String) {
    let node = Node::start();
    let [alice, bob, carol, dave] = [(); 4].map(|()| EthSigner::new_random());
    let (b, c) = (bob.address(), carol.address());
    node.processed(&aggregate(
        &alice,
        "security",
        json!({"authorizations": [
            {"address": b, "types": ["POST"], "channels": ["BLOG"]},
            {"address": c},
            {"address": b, "types": ["STORE"], "chain": "ETH"},
        ]}),
        T0,
    ))
    .await;
    node.processed(&aggregate(
        &dave,
        "security",
        json!({"authorizations": [{"address": b, "types": ["AGGREGATE"], "aggregate_keys": ["k"]}]}),
        T0 + 1.0,
    ))
    .await;
    (node, alice.address(), b, c, dave.address())
}

#[tokio::test]
async fn authorizations_granted_by_an_address() {
    let (node, alice, bob, carol, _) = grants().await;
    let body = node
        .get_ok(&format!("/api/v0/authorizations/granted/{alice}.json"))
        .await;
    assert_eq!(
        body,
        json!({
            "authorizations": {
                bob.clone(): [{"types": ["POST"], "channels": ["BLOG"]}, {"types": ["STORE"], "chain": "ETH"}],
                carol.clone(): [{}],
            },
            "pagination_page": 1,
            "pagination_per_page": 20,
            "pagination_total": 2,
            "pagination_item": "authorizations",
            "address": alice,
        })
    );
    // An entry without a field allows every value of it.
    let filtered = |query: &str| format!("/api/v0/authorizations/granted/{alice}.json?{query}");
    let body = node.get_ok(&filtered("types=STORE")).await;
    assert_eq!(
        body["authorizations"],
        json!({bob.clone(): [{"types": ["STORE"], "chain": "ETH"}], carol.clone(): [{}]})
    );
    let body = node.get_ok(&filtered("channels=NEWS&chains=SOL")).await;
    assert_eq!(body["authorizations"], json!({carol.clone(): [{}]}));
    let body = node
        .get_ok(&filtered(&format!("grantee={bob}&postTypes=x")))
        .await;
    assert_eq!(body["pagination_total"], 1);
    let body = node.get_ok(&filtered("pagination=1&page=2")).await;
    assert_eq!(body["authorizations"], json!({carol.clone(): [{}]}));
    assert_eq!(body["pagination_total"], 2);
    // An address without a security aggregate grants nothing.
    let body = node
        .get_ok(&format!("/api/v0/authorizations/granted/{carol}.json"))
        .await;
    assert_eq!(
        (
            body["authorizations"].clone(),
            body["pagination_total"].clone()
        ),
        (json!({}), json!(0))
    );
    for bad in ["pagination=0", "pagination=501", "page=0", "page=x"] {
        let answer = node.get(&filtered(bad)).await;
        assert_eq!(answer.status, 422, "{bad}: {}", answer.body);
    }
}

#[tokio::test]
async fn authorizations_received_by_an_address() {
    let (node, alice, bob, carol, dave) = grants().await;
    let received = |address: &str, query: &str| {
        format!("/api/v0/authorizations/received/{address}.json?{query}")
    };
    let body = node.get_ok(&received(&bob, "")).await;
    let mut expected = serde_json::Map::new();
    let mut owners = [alice.clone(), dave.clone()];
    owners.sort();
    for owner in &owners {
        let entries = if *owner == alice {
            json!([{"types": ["POST"], "channels": ["BLOG"]}, {"types": ["STORE"], "chain": "ETH"}])
        } else {
            json!([{"types": ["AGGREGATE"], "aggregate_keys": ["k"]}])
        };
        expected.insert(owner.clone(), entries);
    }
    assert_eq!(body["authorizations"], Value::Object(expected));
    assert_eq!(body["pagination_total"], 2);
    assert_eq!(body["address"], json!(bob));
    let body = node
        .get_ok(&received(&bob, "aggregateKeys=k&types=AGGREGATE"))
        .await;
    assert_eq!(
        body["authorizations"],
        json!({dave.clone(): [{"types": ["AGGREGATE"], "aggregate_keys": ["k"]}]})
    );
    let body = node
        .get_ok(&received(&bob, &format!("granter={alice}")))
        .await;
    assert_eq!(body["pagination_total"], 1);
    let body = node.get_ok(&received(&carol, "")).await;
    assert_eq!(body["authorizations"], json!({alice.clone(): [{}]}));
    let body = node.get_ok(&received(&alice, "")).await;
    assert_eq!(body["authorizations"], json!({}));
}

/// Many owners grant one address: the answer pages through them in owner order, and only the
/// page counts against the response bound (the reference reads them all, then pages).
#[tokio::test]
async fn authorizations_received_from_many_owners_are_paged() {
    let node = Node::start_with(ApiConfig {
        max_response_bytes: 1500,
        ..ApiConfig::default()
    });
    let grantee = EthSigner::new_random().address();
    let mut owners = Vec::new();
    for i in 0..25 {
        let owner = EthSigner::new_random();
        let mut entries = vec![json!({"address": grantee, "channels": [format!("c{i}")]})];
        // Every fifth owner only grants on another chain, which `chains=ETH` filters out.
        if i % 5 == 0 {
            entries = vec![json!({"address": grantee, "chain": "SOL"})];
        } else {
            owners.push(owner.address());
        }
        node.processed(&aggregate(
            &owner,
            "security",
            json!({"authorizations": entries}),
            T0 + i as f64,
        ))
        .await;
    }
    owners.sort();
    let received = |query: &str| format!("/api/v0/authorizations/received/{grantee}.json?{query}");
    let mut seen = Vec::new();
    for page in 1..=3 {
        let body = node
            .get_ok(&received(&format!("chains=ETH&pagination=8&page={page}")))
            .await;
        assert_eq!(body["pagination_total"], 20, "{body}");
        let shown = body["authorizations"].as_object().expect("an object");
        assert_eq!(shown.len(), if page == 3 { 4 } else { 8 });
        seen.extend(shown.keys().cloned());
    }
    assert_eq!(seen, owners, "each owner once, in order, across the pages");
    let past = node
        .get_ok(&received("chains=ETH&pagination=8&page=4"))
        .await;
    assert_eq!(past["authorizations"], json!({}));
    assert_eq!(past["pagination_total"], 20);
    // All 25 on one page are more than the bound: refused, while pages under it are served.
    let whole = node.get(&received("pagination=25")).await;
    assert_eq!(whole.status, 422, "{}", whole.body);
    assert!(whole.body["error"].is_string());
}

#[tokio::test]
async fn post_types_and_channels_of_an_address() {
    let node = Node::start();
    let signer = EthSigner::new_random();
    let address = signer.address();
    let empty = node
        .get_ok(&format!("/api/v0/addresses/{address}/post_types"))
        .await;
    assert_eq!(empty, json!({"address": address, "post_types": []}));
    for (i, (post_type, channel)) in [("note", "B"), ("blog", "A"), ("note", "A")]
        .iter()
        .enumerate()
    {
        node.processed(&post(&signer, post_type, json!({}), channel, T0 + i as f64))
            .await;
    }
    node.processed(&aggregate(&signer, "k", json!({"a": 1}), T0 + 5.0))
        .await;
    assert_eq!(
        node.get_ok(&format!("/api/v0/addresses/{address}/post_types"))
            .await,
        json!({"address": address, "post_types": ["blog", "note"]})
    );
    assert_eq!(
        node.get_ok(&format!("/api/v0/addresses/{address}/channels"))
            .await,
        json!({"address": address, "channels": ["A", "B", "TEST"]})
    );
}
