//! `GET /api/v0/posts.json` and `/api/v1/posts.json`: originals folded with their latest
//! amend, in the two shapes (protocol.md §6.5).

use raleph_crypto::EthSigner;
use raleph_message::MessageType;
use serde_json::{Value, json};

use crate::support::*;

/// The 19 keys of a v0 post: the SDK's `Post` model forbids any other.
const V0: [&str; 19] = [
    "address",
    "chain",
    "channel",
    "confirmations",
    "confirmed",
    "content",
    "hash",
    "item_content",
    "item_hash",
    "item_type",
    "original_item_hash",
    "original_signature",
    "original_type",
    "ref",
    "sender",
    "signature",
    "size",
    "time",
    "type",
];

const V1: [&str; 9] = [
    "address",
    "channel",
    "content",
    "created",
    "item_hash",
    "last_updated",
    "original_item_hash",
    "original_type",
    "ref",
];

const PAGE_KEYS: [&str; 5] = [
    "pagination_item",
    "pagination_page",
    "pagination_per_page",
    "pagination_total",
    "posts",
];

/// alice's blog post (amended once) and bob's note with a free-text ref, as posted.
struct Fixture {
    node: Node,
    alice: EthSigner,
    bob: EthSigner,
    original: Value,
    amend: Value,
    note: Value,
}

async fn fixture() -> Fixture {
    let node = Node::start();
    let alice = EthSigner::new_random();
    let bob = EthSigner::new_random();
    let original = post(
        &alice,
        "blog",
        json!({"title": "t", "v": 1}),
        "TEST",
        T0 + 1.0,
    );
    let amend = signed(
        &alice,
        MessageType::Post,
        json!({"type": "amend", "ref": hash_of(&original), "content": {"title": "t", "v": 2}}),
        "TEST",
        T0 + 2.0,
    );
    let note = signed(
        &bob,
        MessageType::Post,
        json!({"type": "note", "ref": "topic", "content": {"x": 1}}),
        "OTHER",
        T0 + 3.0,
    );
    for message in [&original, &amend, &note] {
        node.processed(message).await;
    }
    Fixture {
        node,
        alice,
        bob,
        original,
        amend,
        note,
    }
}

fn posts(body: &Value) -> &Vec<Value> {
    array(body, "posts")
}

fn original_hashes(posts: &[Value]) -> Vec<String> {
    posts
        .iter()
        .map(|p| {
            p["original_item_hash"]
                .as_str()
                .expect("an original item hash")
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn v0_posts_fold_the_latest_amend_into_the_original() {
    let f = fixture().await;
    let body = f.node.get_ok("/api/v0/posts.json").await;
    assert_eq!(keys(&body), sorted(&PAGE_KEYS));
    assert_eq!(body["pagination_item"], "posts");
    assert_eq!(body["pagination_page"], 1);
    assert_eq!(body["pagination_per_page"], 20);
    assert_eq!(body["pagination_total"], 2);
    let listed = posts(&body);
    // Only originals, the latest updated first.
    assert_eq!(
        original_hashes(listed),
        [hash_of(&f.note), hash_of(&f.original)]
    );
    for p in listed {
        assert_eq!(keys(p), sorted(&V0));
        assert_eq!(p["confirmations"], json!([]));
        assert_eq!(p["confirmed"], json!(false));
        assert_eq!(p["chain"], "ETH");
        assert_eq!(p["item_type"], "inline");
        assert_eq!(p["hash"], p["original_item_hash"]);
    }

    let note = &listed[0];
    let bob = f.bob.address();
    assert_eq!(note["item_hash"], hash_of(&f.note).as_str());
    assert_eq!(note["type"], "note");
    assert_eq!(note["original_type"], "note");
    assert_eq!(note["ref"], "topic");
    assert_eq!(note["content"], json!({"x": 1}));
    assert_eq!(note["address"], bob.as_str());
    assert_eq!(note["sender"], bob.as_str());
    assert_eq!(note["channel"], "OTHER");
    assert_eq!(note["signature"], f.note["signature"]);
    assert_eq!(note["original_signature"], f.note["signature"]);
    assert_eq!(note["item_content"], f.note["item_content"]);
    assert_eq!(note["time"].as_f64(), Some(T0 + 3.0));

    // The amended post: the latest version's message and payload, the original's identity.
    let blog = &listed[1];
    let alice = f.alice.address();
    assert_eq!(blog["item_hash"], hash_of(&f.amend).as_str());
    assert_eq!(blog["original_item_hash"], hash_of(&f.original).as_str());
    assert_eq!(blog["type"], "amend");
    assert_eq!(blog["original_type"], "blog");
    assert_eq!(blog["content"], json!({"title": "t", "v": 2}));
    assert_eq!(blog["item_content"], f.amend["item_content"]);
    assert_eq!(blog["signature"], f.amend["signature"]);
    assert_eq!(blog["original_signature"], f.original["signature"]);
    assert_eq!(blog["address"], alice.as_str());
    assert_eq!(blog["sender"], alice.as_str());
    assert_eq!(blog["channel"], "TEST");
    assert_eq!(blog["time"].as_f64(), Some(T0 + 2.0));
    let amend_content = f.amend["item_content"].as_str().expect("inline");
    assert_eq!(blog["size"], amend_content.len());
}

#[tokio::test]
async fn v1_posts_have_their_own_shape() {
    let f = fixture().await;
    let body = f.node.get_ok("/api/v1/posts.json").await;
    assert_eq!(keys(&body), sorted(&PAGE_KEYS));
    assert_eq!(body["pagination_item"], "posts");
    assert_eq!(body["pagination_total"], 2);
    let listed = posts(&body);
    assert_eq!(
        original_hashes(listed),
        [hash_of(&f.note), hash_of(&f.original)]
    );
    for p in listed {
        assert_eq!(keys(p), sorted(&V1));
        assert_iso_time(&p["created"]);
        assert_iso_time(&p["last_updated"]);
    }
    let blog = &listed[1];
    assert_eq!(blog["item_hash"], hash_of(&f.amend).as_str());
    assert_eq!(blog["original_type"], "blog");
    assert_eq!(blog["content"], json!({"title": "t", "v": 2}));
    assert_eq!(blog["address"], f.alice.address().as_str());
    assert_eq!(blog["channel"], "TEST");
    // Created with the original (T0 + 1), last updated by the amend (T0 + 2).
    assert_eq!(blog["created"], "2023-11-14T22:13:21+00:00");
    assert_eq!(blog["last_updated"], "2023-11-14T22:13:22+00:00");
    let note = &listed[0];
    assert_eq!(note["ref"], "topic");
    assert_eq!(note["created"], "2023-11-14T22:13:23+00:00");
}

#[tokio::test]
async fn post_filters_and_pages() {
    let f = fixture().await;
    let alice = f.alice.address();
    let original = hash_of(&f.original);
    let note = hash_of(&f.note);
    let cases: Vec<(String, Vec<&str>)> = vec![
        // `addresses` matches the owner.
        (format!("addresses={alice}"), vec![&original]),
        // `types` is the original's type, even when amended.
        ("types=blog".into(), vec![&original]),
        ("types=amend".into(), vec![]),
        ("refs=topic".into(), vec![&note]),
        // `hashes` are original item hashes.
        (format!("hashes={original}"), vec![&original]),
        (format!("hashes={}", hash_of(&f.amend)), vec![]),
        ("channels=OTHER".into(), vec![&note]),
        ("sortOrder=1".into(), vec![&original, &note]),
    ];
    for version in ["v0", "v1"] {
        for (query, expected) in &cases {
            let body = f
                .node
                .get_ok(&format!("/api/{version}/posts.json?{query}"))
                .await;
            assert_eq!(
                original_hashes(posts(&body)),
                *expected,
                "{version} {query}"
            );
            assert_eq!(
                body["pagination_total"],
                expected.len(),
                "{version} {query}"
            );
        }
        let first = f
            .node
            .get_ok(&format!("/api/{version}/posts.json?pagination=1"))
            .await;
        assert_eq!(original_hashes(posts(&first)), [note.as_str()]);
        assert_eq!(first["pagination_per_page"], 1);
        assert_eq!(first["pagination_total"], 2);
        let second = f
            .node
            .get_ok(&format!("/api/{version}/posts/page/2.json?pagination=1"))
            .await;
        assert_eq!(original_hashes(posts(&second)), [original.as_str()]);
        assert_eq!(second["pagination_page"], 2);
        assert_eq!(second["pagination_total"], 2);
        let cursor_page = f
            .node
            .get_ok(&format!("/api/{version}/posts.json?pagination=1&cursor="))
            .await;
        assert_eq!(
            keys(&cursor_page),
            sorted(&["next_cursor", "pagination_per_page", "posts"])
        );
        let next = cursor_page["next_cursor"]
            .as_str()
            .expect("a full page has a next cursor");
        let rest = f
            .node
            .get_ok(&format!(
                "/api/{version}/posts.json?pagination=1&cursor={next}"
            ))
            .await;
        assert_eq!(original_hashes(posts(&rest)), [original.as_str()]);
    }
}

/// A full page's total is exact at the moment of the answer (issue 15): a post type's total
/// is kept by the store, not cached.
#[tokio::test]
async fn a_full_page_of_posts_has_an_exact_total() {
    let f = fixture().await;
    for version in ["v0", "v1"] {
        let body = f
            .node
            .get_ok(&format!("/api/{version}/posts.json?pagination=1"))
            .await;
        assert_eq!(body["pagination_total"], 2, "{version}");
    }
    f.node
        .processed(&post(&f.bob, "note", json!({"x": 2}), "OTHER", T0 + 4.0))
        .await;
    for version in ["v0", "v1"] {
        let body = f
            .node
            .get_ok(&format!("/api/{version}/posts.json?pagination=1"))
            .await;
        assert_eq!(body["pagination_total"], 3, "{version}");
    }
}
