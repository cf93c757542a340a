//! `GET /api/v0/messages.json` (filters, pages, cursors, totals), one message, its status and
//! its content (protocol.md §6.1, §6.2).

use axum::http::StatusCode;
use raleph_crypto::EthSigner;
use raleph_message::MessageType;
use serde_json::{Value, json};

use crate::support::*;

/// The keys of a message in a list (§6.2); a message returned alone has all but `size`.
const LISTED: [&str; 13] = [
    "chain",
    "channel",
    "confirmations",
    "confirmed",
    "content",
    "item_content",
    "item_hash",
    "item_type",
    "sender",
    "signature",
    "size",
    "time",
    "type",
];

const PAGE_KEYS: [&str; 5] = [
    "messages",
    "pagination_item",
    "pagination_page",
    "pagination_per_page",
    "pagination_total",
];

/// A node holding four processed messages, a second apart, and the messages posted (oldest
/// first): two notes of alice on TEST, a blog post of bob on OTHER, an aggregate of alice.
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
        post(&alice, "note", json!({"n": 1}), "TEST", T0 + 1.0),
        post(&alice, "note", json!({"n": 2}), "TEST", T0 + 2.0),
        post(&bob, "blog", json!({"title": "b"}), "OTHER", T0 + 3.0),
        aggregate(&alice, "profile", json!({"name": "alice"}), T0 + 4.0),
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

impl Fixture {
    /// Item hashes of the posted messages at `indexes`.
    fn hashes(&self, indexes: &[usize]) -> Vec<String> {
        indexes.iter().map(|&i| hash_of(&self.sent[i])).collect()
    }

    /// The item hashes a list query answers, in order.
    async fn listed(&self, query: &str) -> Vec<String> {
        let body = self
            .node
            .get_ok(&format!("/api/v0/messages.json?{query}"))
            .await;
        hashes(array(&body, "messages"))
    }
}

/// A listed or returned message shows what was posted, field by field.
fn assert_message_is(shown: &Value, sent: &Value) {
    for key in [
        "chain",
        "channel",
        "item_content",
        "item_hash",
        "item_type",
        "sender",
        "signature",
        "type",
    ] {
        assert_eq!(shown[key], sent[key], "{key} of {shown}");
    }
    assert_eq!(shown["time"].as_f64(), sent["time"].as_f64(), "time");
    assert_eq!(shown["confirmed"], json!(false));
    assert_eq!(shown["confirmations"], json!([]));
    let item_content = sent["item_content"].as_str().expect("inline");
    let content: Value = serde_json::from_str(item_content).expect("JSON content");
    assert_eq!(
        shown["content"], content,
        "content is the parsed item_content"
    );
}

#[tokio::test]
async fn a_list_has_the_page_shape_and_newest_first() {
    let f = fixture().await;
    let body = f.node.get_ok("/api/v0/messages.json").await;
    assert_eq!(keys(&body), sorted(&PAGE_KEYS));
    assert_eq!(body["pagination_item"], "messages");
    assert_eq!(body["pagination_page"], 1);
    assert_eq!(body["pagination_per_page"], 20);
    assert_eq!(body["pagination_total"], 4);
    let messages = array(&body, "messages");
    assert_eq!(hashes(messages), f.hashes(&[3, 2, 1, 0]));
    for (shown, sent) in messages.iter().zip(f.sent.iter().rev()) {
        assert_eq!(keys(shown), sorted(&LISTED));
        assert_message_is(shown, sent);
        let item_content = sent["item_content"].as_str().expect("inline");
        assert_eq!(
            shown["size"],
            item_content.len(),
            "size of an inline message"
        );
    }
    // The same list under its other path.
    assert_eq!(f.node.get_ok("/api/v0/messages").await, body);
}

#[tokio::test]
async fn list_filters_select_what_they_name() {
    let f = fixture().await;
    let alice = f.alice.address();
    let bob = f.bob.address();
    let [h0, h1, h2, _] = <[String; 4]>::try_from(f.hashes(&[0, 1, 2, 3])).expect("four");
    let cases: Vec<(String, Vec<usize>)> = vec![
        ("msgType=POST".into(), vec![2, 1, 0]),
        ("message_type=AGGREGATE".into(), vec![3]),
        ("msgTypes=AGGREGATE,POST".into(), vec![3, 2, 1, 0]),
        ("message_types=AGGREGATE".into(), vec![3]),
        (format!("addresses={bob}"), vec![2]),
        (format!("addresses={alice}"), vec![3, 1, 0]),
        (format!("owners={bob}"), vec![2]),
        ("channels=OTHER".into(), vec![2]),
        ("channels=TEST,OTHER".into(), vec![3, 2, 1, 0]),
        ("contentTypes=blog".into(), vec![2]),
        ("content_types=note".into(), vec![1, 0]),
        ("contentKeys=profile".into(), vec![3]),
        ("chains=ETH".into(), vec![3, 2, 1, 0]),
        ("chains=SOL".into(), vec![]),
        (format!("hashes={h0},{h2}"), vec![2, 0]),
        (format!("hashes[]={h1}"), vec![1]),
        // The start is inclusive, the end exclusive (§6.2).
        (
            format!("startDate={}&endDate={}", T0 + 2.0, T0 + 4.0),
            vec![2, 1],
        ),
        (format!("start_date={}", T0 + 3.0), vec![3, 2]),
        ("sortOrder=1".into(), vec![0, 1, 2, 3]),
        ("sort_order=-1".into(), vec![3, 2, 1, 0]),
        (
            format!("msgType=POST&addresses={alice}&sortOrder=1"),
            vec![0, 1],
        ),
        // Only processed messages by default; asking for pending ones finds none here.
        ("msgStatuses=pending".into(), vec![]),
        ("msgStatuses=processed".into(), vec![3, 2, 1, 0]),
    ];
    for (query, expected) in cases {
        assert_eq!(f.listed(&query).await, f.hashes(&expected), "{query}");
    }
}

#[tokio::test]
async fn content_formats_trim_the_content() {
    let f = fixture().await;
    let body = f
        .node
        .get_ok("/api/v0/messages.json?contentFormat=headers&sortOrder=1")
        .await;
    let messages = array(&body, "messages");
    assert_eq!(messages.len(), 4);
    let alice = f.alice.address();
    // POST: address and type (and ref, which these have not); AGGREGATE: address and key.
    assert_eq!(
        messages[0]["content"],
        json!({"address": alice, "type": "note"})
    );
    assert_eq!(
        messages[3]["content"],
        json!({"address": alice, "key": "profile"})
    );
    for query in ["contentFormat=none", "excludeContent=true"] {
        let body = f
            .node
            .get_ok(&format!("/api/v0/messages.json?{query}"))
            .await;
        let messages = array(&body, "messages");
        assert_eq!(messages.len(), 4, "{query}");
        for m in messages {
            let without_content: Vec<&str> =
                LISTED.iter().copied().filter(|k| *k != "content").collect();
            assert_eq!(keys(m), sorted(&without_content), "{query}");
        }
    }
}

#[tokio::test]
async fn pages_split_the_list_and_count_it() {
    let f = fixture().await;
    let first = f
        .node
        .get_ok("/api/v0/messages.json?pagination=3&page=1")
        .await;
    assert_eq!(hashes(array(&first, "messages")), f.hashes(&[3, 2, 1]));
    assert_eq!(first["pagination_page"], 1);
    assert_eq!(first["pagination_per_page"], 3);
    // A full page: the total is counted.
    assert_eq!(first["pagination_total"], 4);
    let second = f
        .node
        .get_ok("/api/v0/messages.json?pagination=3&page=2")
        .await;
    assert_eq!(hashes(array(&second, "messages")), f.hashes(&[0]));
    assert_eq!(second["pagination_page"], 2);
    assert_eq!(second["pagination_total"], 4);
    // The page in the path, as `/messages/page/{page}.json`.
    for path in [
        "/api/v0/messages/page/2.json?pagination=3",
        "/api/v0/messages/page/2?pagination=3",
    ] {
        assert_eq!(f.node.get_ok(path).await, second, "{path}");
    }
    // Past the end: no messages, the same total.
    let past = f
        .node
        .get_ok("/api/v0/messages.json?pagination=3&page=3")
        .await;
    assert_eq!(array(&past, "messages").len(), 0);
    assert_eq!(past["pagination_total"], 4);
    // `pagination=0`: no limit.
    let all = f.node.get_ok("/api/v0/messages.json?pagination=0").await;
    assert_eq!(hashes(array(&all, "messages")), f.hashes(&[3, 2, 1, 0]));
    assert_eq!(all["pagination_total"], 4);
    // A filtered total.
    let posts = f
        .node
        .get_ok("/api/v0/messages.json?msgType=POST&pagination=2")
        .await;
    assert_eq!(hashes(array(&posts, "messages")), f.hashes(&[2, 1]));
    assert_eq!(posts["pagination_total"], 3);
}

#[tokio::test]
async fn cursors_walk_the_whole_list_once() {
    let f = fixture().await;
    let mut seen = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let body = f
            .node
            .get_ok(&format!(
                "/api/v0/messages.json?pagination=3&cursor={cursor}"
            ))
            .await;
        assert_eq!(
            keys(&body),
            sorted(&["messages", "next_cursor", "pagination_per_page"])
        );
        assert_eq!(body["pagination_per_page"], 3);
        seen.extend(hashes(array(&body, "messages")));
        pages += 1;
        assert!(pages <= 2, "four messages, three a page: two pages");
        match &body["next_cursor"] {
            Value::String(next) => cursor = next.clone(),
            Value::Null => break,
            other => panic!("next_cursor is a string or null, not {other}"),
        }
    }
    assert_eq!(pages, 2);
    assert_eq!(seen, f.hashes(&[3, 2, 1, 0]));
    // Oldest first, filtered.
    let body = f
        .node
        .get_ok("/api/v0/messages.json?cursor=&pagination=5&msgType=POST&sortOrder=1")
        .await;
    assert_eq!(hashes(array(&body, "messages")), f.hashes(&[0, 1, 2]));
    assert_eq!(body["next_cursor"], Value::Null);
}

/// A short page counts itself: a total that is exact today, whatever the cache.
#[tokio::test]
async fn a_short_page_total_follows_new_messages() {
    let f = fixture().await;
    let before = f.node.get_ok("/api/v0/messages.json").await;
    assert_eq!(before["pagination_total"], 4);
    f.node
        .processed(&post(&f.bob, "note", json!({"n": 3}), "TEST", T0 + 5.0))
        .await;
    let after = f.node.get_ok("/api/v0/messages.json").await;
    assert_eq!(after["pagination_total"], 5);
}

/// The total of a long list (a full page) must be exact at the moment of the answer, as the
/// reference's counters are for the unfiltered list and one type, status, sender or owner
/// (issue 15): these totals are kept by the store and read at every request, never from the
/// count cache.
#[tokio::test]
async fn a_full_page_total_is_exact_at_the_moment_of_the_answer() {
    let f = fixture().await;
    let alice = f.alice.address();
    let queries = [
        "pagination=2".to_owned(),
        "pagination=2&msgType=POST".to_owned(),
        format!("pagination=2&addresses={alice}"),
        "pagination=2&channels=TEST".to_owned(),
    ];
    let mut totals = Vec::new();
    for query in &queries {
        let body = f
            .node
            .get_ok(&format!("/api/v0/messages.json?{query}"))
            .await;
        totals.push(body["pagination_total"].as_u64().expect("a total"));
    }
    assert_eq!(totals, [4, 3, 3, 3]);
    f.node
        .processed(&post(&f.alice, "note", json!({"n": 3}), "TEST", T0 + 5.0))
        .await;
    for (query, before) in queries.iter().zip(totals) {
        let body = f
            .node
            .get_ok(&format!("/api/v0/messages.json?{query}"))
            .await;
        assert_eq!(body["pagination_total"], before + 1, "{query}");
    }
}

#[tokio::test]
async fn one_message_has_its_status_and_the_message() {
    let f = fixture().await;
    for sent in &f.sent {
        let hash = hash_of(sent);
        let body = f.node.get_ok(&format!("/api/v0/messages/{hash}")).await;
        assert_eq!(
            keys(&body),
            sorted(&["item_hash", "message", "reception_time", "status"])
        );
        assert_eq!(body["status"], "processed");
        assert_eq!(body["item_hash"], hash.as_str());
        assert_iso_time(&body["reception_time"]);
        let without_size: Vec<&str> = LISTED.iter().copied().filter(|k| *k != "size").collect();
        assert_eq!(keys(&body["message"]), sorted(&without_size));
        assert_message_is(&body["message"], sent);
    }
}

#[tokio::test]
async fn a_message_status_names_it() {
    let f = fixture().await;
    let hash = hash_of(&f.sent[0]);
    let body = f
        .node
        .get_ok(&format!("/api/v0/messages/{hash}/status"))
        .await;
    assert_eq!(
        keys(&body),
        sorted(&["item_hash", "reception_time", "status"])
    );
    assert_eq!(body["status"], "processed");
    assert_eq!(body["item_hash"], hash.as_str());
    assert_iso_time(&body["reception_time"]);
}

#[tokio::test]
async fn a_message_content_is_the_payload_of_a_post_and_the_content_of_others() {
    let f = fixture().await;
    let post_hash = hash_of(&f.sent[0]);
    let payload = f
        .node
        .get_ok(&format!("/api/v0/messages/{post_hash}/content"))
        .await;
    assert_eq!(payload, json!({"n": 1}));
    let aggregate_hash = hash_of(&f.sent[3]);
    let content = f
        .node
        .get_ok(&format!("/api/v0/messages/{aggregate_hash}/content"))
        .await;
    let sent: Value =
        serde_json::from_str(f.sent[3]["item_content"].as_str().expect("inline")).expect("JSON");
    assert_eq!(content, sent);
}

#[tokio::test]
async fn a_submission_answers_as_the_reference() {
    let node = Node::start();
    let signer = EthSigner::new_random();
    let message = signed(
        &signer,
        MessageType::Post,
        json!({"type": "note", "content": {}}),
        "TEST",
        T0,
    );
    // With `sync`: 200 once processed (§6.4).
    let answer = node.submit(&message).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.body,
        json!({"publication_status": {"status": "success", "failed": []}, "message_status": "processed"})
    );
    // Again: a known message is processed at once, not waited for.
    let again = node.submit(&message).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["message_status"], "processed");
    // Without `sync`: 202 pending, then processed.
    let later = post(&signer, "note", json!({}), "TEST", T0 + 1.0);
    let answer = node
        .post(
            "/api/v0/messages",
            "application/json",
            json!({"message": later}).to_string(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);
    assert_eq!(answer.body["message_status"], "pending");
    assert_eq!(
        answer.body["publication_status"],
        json!({"status": "success", "failed": []})
    );
    let hash = hash_of(&later);
    // Until the writer applied it the node may not know it yet (404), then it is processed.
    let mut last = None;
    for _ in 0..400 {
        let answer = node.get(&format!("/api/v0/messages/{hash}/status")).await;
        let processed = answer.status == StatusCode::OK && answer.body["status"] == "processed";
        last = Some((answer.status, answer.body));
        if processed {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let (status, body) = last.expect("asked at least once");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "processed");
}

/// The keys of what remains of a forgotten message (§6.2).
const SKELETON: [&str; 14] = [
    "chain",
    "channel",
    "forgotten_at",
    "forgotten_by",
    "item_hash",
    "item_type",
    "owner",
    "payment_type",
    "sender",
    "signature",
    "size",
    "status",
    "time",
    "type",
];

#[tokio::test]
async fn a_forgotten_message_is_a_skeleton() {
    let f = fixture().await;
    let target = hash_of(&f.sent[0]);
    let forget = signed(
        &f.alice,
        MessageType::Forget,
        json!({"hashes": [target], "reason": "test"}),
        "TEST",
        T0 + 5.0,
    );
    f.node.processed(&forget).await;
    let forget_hash = hash_of(&forget);

    let body = f.node.get_ok(&format!("/api/v0/messages/{target}")).await;
    assert_eq!(
        keys(&body),
        sorted(&[
            "forgotten_by",
            "item_hash",
            "message",
            "reception_time",
            "status"
        ])
    );
    assert_eq!(body["status"], "forgotten");
    assert_eq!(body["item_hash"], target.as_str());
    assert_eq!(body["forgotten_by"], json!([forget_hash]));
    let skeleton = &body["message"];
    assert_eq!(keys(skeleton), sorted(&SKELETON));
    assert_eq!(skeleton["status"], "forgotten");
    assert_eq!(skeleton["forgotten_by"], json!([forget_hash]));
    assert_eq!(skeleton["sender"], f.alice.address().as_str());
    assert_eq!(skeleton["owner"], f.alice.address().as_str());
    assert_eq!(skeleton["type"], "POST");
    assert_eq!(skeleton["time"].as_f64(), Some(T0 + 1.0));
    assert_iso_time(&skeleton["forgotten_at"]);
    let status = f
        .node
        .get_ok(&format!("/api/v0/messages/{target}/status"))
        .await;
    assert_eq!(status["status"], "forgotten");

    // No longer listed as processed; listed alone with `msgStatuses=forgotten`.
    let mut live = vec![forget_hash.clone()];
    live.extend(f.hashes(&[3, 2, 1]));
    assert_eq!(f.listed("").await, live);
    let forgotten = f
        .node
        .get_ok("/api/v0/messages.json?msgStatuses=forgotten")
        .await;
    let listed = array(&forgotten, "messages");
    assert_eq!(listed.len(), 1);
    assert_eq!(keys(&listed[0]), sorted(&SKELETON));
    assert_eq!(listed[0]["item_hash"], target.as_str());
    assert_eq!(forgotten["pagination_total"], 1);
    // Its content is gone: 422, as for any message that is not processed (§6.1).
    let content = f
        .node
        .get(&format!("/api/v0/messages/{target}/content"))
        .await;
    assert_eq!(
        content.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        content.body
    );
}
