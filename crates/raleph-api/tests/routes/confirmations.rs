//! Messages confirmed on chains: `confirmed` and `confirmations` in every message shape, as
//! the reference writes them (`{"chain", "hash", "height"}` each, lowest height first).

use raleph_crypto::EthSigner;
use raleph_db::{Anchor, Chain, ItemHash};
use serde_json::{Value, json};

use crate::support::*;

fn tx(name: &str) -> String {
    format!("0x{}", raleph_message::sha256_hex(name.as_bytes()))
}

fn anchor(chain: Chain, name: &str, height: u64) -> Anchor {
    Anchor {
        chain,
        tx_hash: tx(name),
        log_index: 0,
        height,
        block_hash: tx(&format!("block of {name}")),
        time: T0 + 100.0,
        publisher: format!("0x{}", "ab".repeat(20)),
        protocol: "aleph-offchain".into(),
        archive: None,
        merkle_root: None,
    }
}

fn item(message: &Value) -> ItemHash {
    ItemHash::parse(&hash_of(message)).expect("an item hash")
}

/// A node with three processed posts of alice (oldest first): the first confirmed on BSC at
/// height 3 and on ETH at 10, the second on ETH at 10, the third not at all.
async fn confirmed_node() -> (Node, Vec<Value>) {
    let node = Node::start();
    let alice = EthSigner::new_random();
    let sent = vec![
        post(&alice, "note", json!({"n": 1}), "TEST", T0 + 1.0),
        post(&alice, "note", json!({"n": 2}), "TEST", T0 + 2.0),
        post(&alice, "note", json!({"n": 3}), "TEST", T0 + 3.0),
    ];
    for message in &sent {
        node.processed(message).await;
    }
    let recorded = node
        .pipeline()
        .record_anchor(
            anchor(Chain::Eth, "eth", 10),
            vec![item(&sent[0]), item(&sent[1])],
        )
        .await
        .expect("record");
    assert!(recorded);
    let recorded = node
        .pipeline()
        .record_anchor(anchor(Chain::Bsc, "bsc", 3), vec![item(&sent[0])])
        .await
        .expect("record");
    assert!(recorded);
    (node, sent)
}

fn first_confirmations() -> Value {
    json!([
        {"chain": "BSC", "hash": tx("bsc"), "height": 3},
        {"chain": "ETH", "hash": tx("eth"), "height": 10},
    ])
}

fn second_confirmations() -> Value {
    json!([{"chain": "ETH", "hash": tx("eth"), "height": 10}])
}

/// The message of `list` whose item hash is `message`'s.
fn find<'a>(list: &'a [Value], message: &Value) -> &'a Value {
    list.iter()
        .find(|m| m["item_hash"] == message["item_hash"])
        .expect("listed")
}

#[tokio::test]
async fn lists_show_each_message_confirmations() {
    let (node, sent) = confirmed_node().await;
    let answer = node.get("/api/v0/messages.json").await;
    let messages = array(&answer.body, "messages");
    assert_eq!(messages.len(), 3);
    let first = find(messages, &sent[0]);
    assert_eq!(first["confirmed"], json!(true));
    assert_eq!(first["confirmations"], first_confirmations());
    let second = find(messages, &sent[1]);
    assert_eq!(second["confirmed"], json!(true));
    assert_eq!(second["confirmations"], second_confirmations());
    let third = find(messages, &sent[2]);
    assert_eq!(third["confirmed"], json!(false));
    assert_eq!(third["confirmations"], json!([]));
    // The keys in the reference's order, as bytes.
    let text = String::from_utf8(answer.bytes).expect("UTF-8");
    let written = format!(
        r#""confirmations":[{{"chain":"ETH","hash":"{}","height":10}}],"confirmed":true,"#,
        tx("eth")
    );
    assert!(text.contains(&written), "{text}");

    // Cursor pages, and the page variants, read them too.
    let body = node
        .get_ok("/api/v0/messages.json?pagination=2&cursor=")
        .await;
    let page = array(&body, "messages");
    assert_eq!(page.len(), 2);
    assert_eq!(
        find(page, &sent[1])["confirmations"],
        second_confirmations()
    );
    let body = node.get_ok("/api/v0/messages/page/1.json").await;
    let page = array(&body, "messages");
    assert_eq!(find(page, &sent[0])["confirmations"], first_confirmations());
}

#[tokio::test]
async fn a_message_alone_shows_its_confirmations_and_a_reorg_takes_them() {
    let (node, sent) = confirmed_node().await;
    let alone = |i: usize| format!("/api/v0/messages/{}", hash_of(&sent[i]));
    let body = node.get_ok(&alone(0)).await;
    assert_eq!(body["message"]["confirmed"], json!(true));
    assert_eq!(body["message"]["confirmations"], first_confirmations());
    let body = node.get_ok(&alone(2)).await;
    assert_eq!(body["message"]["confirmed"], json!(false));
    assert_eq!(body["message"]["confirmations"], json!([]));

    // ETH's block 10 is gone: so is what it confirmed.
    let dropped = node
        .pipeline()
        .drop_anchors_from(Chain::Eth, 10)
        .await
        .expect("drop");
    assert_eq!(dropped, 1);
    let body = node.get_ok(&alone(1)).await;
    assert_eq!(body["message"]["confirmed"], json!(false));
    assert_eq!(body["message"]["confirmations"], json!([]));
    let body = node.get_ok(&alone(0)).await;
    assert_eq!(
        body["message"]["confirmations"],
        json!([{"chain": "BSC", "hash": tx("bsc"), "height": 3}])
    );
}

#[tokio::test]
async fn posts_v0_show_their_latest_version_confirmations() {
    let (node, sent) = confirmed_node().await;
    let body = node.get_ok("/api/v0/posts.json").await;
    let posts = array(&body, "posts");
    assert_eq!(posts.len(), 3);
    assert_eq!(
        find(posts, &sent[0])["confirmations"],
        first_confirmations()
    );
    assert_eq!(find(posts, &sent[0])["confirmed"], json!(true));
    assert_eq!(find(posts, &sent[2])["confirmations"], json!([]));
    assert_eq!(find(posts, &sent[2])["confirmed"], json!(false));
    let body = node.get_ok("/api/v0/posts.json?pagination=3&cursor=").await;
    assert_eq!(
        find(array(&body, "posts"), &sent[1])["confirmations"],
        second_confirmations()
    );
    // v1 shows no confirmations.
    let body = node.get_ok("/api/v1/posts.json").await;
    for post in array(&body, "posts") {
        assert!(post.get("confirmations").is_none(), "{post}");
    }
}

#[tokio::test]
async fn lists_filter_on_first_confirmation_height_and_sort_on_its_time() {
    let node = Node::start();
    let alice = EthSigner::new_random();
    let sent = vec![
        post(&alice, "note", json!({"n": 1}), "TEST", T0 + 1.0),
        post(&alice, "note", json!({"n": 2}), "TEST", T0 + 2.0),
        post(&alice, "note", json!({"n": 3}), "TEST", T0 + 3.0),
    ];
    for message in &sent {
        node.processed(message).await;
    }
    // The newest is anchored first (height 5, T0 + 10), the oldest later (height 8, T0 + 20).
    for (i, height, time) in [(2, 5, T0 + 10.0), (0, 8, T0 + 20.0)] {
        let mut a = anchor(Chain::Eth, &format!("tx{i}"), height);
        a.time = time;
        let recorded = node.pipeline().record_anchor(a, vec![item(&sent[i])]).await;
        assert!(recorded.expect("record"));
    }
    let listed = |query: &'static str| {
        let node = &node;
        async move {
            let body = node.get_ok(&format!("/api/v0/messages.json?{query}")).await;
            let total = body["pagination_total"].as_u64().expect("a total");
            (hashes(array(&body, "messages")), total)
        }
    };
    let expect = |indexes: &[usize]| {
        let shown: Vec<String> = indexes.iter().map(|&i| hash_of(&sent[i])).collect();
        (shown, indexes.len() as u64)
    };
    assert_eq!(listed("endBlock=6").await, expect(&[2]));
    assert_eq!(listed("endBlock=9").await, expect(&[2, 0]));
    // `startBlock` keeps unconfirmed messages, as the reference's.
    assert_eq!(listed("startBlock=6").await, expect(&[1, 0]));
    assert_eq!(listed("startBlock=6&endBlock=9").await, expect(&[0]));
    // Newest first: unconfirmed, then latest first confirmation.
    assert_eq!(listed("sortBy=tx-time").await, expect(&[1, 0, 2]));
    assert_eq!(
        listed("sortBy=tx-time&sortOrder=1").await,
        expect(&[2, 0, 1])
    );
    assert_eq!(listed("sortOrder=1").await, expect(&[0, 1, 2]));
}
