//! Bad input gets a clear 4xx with a JSON body, never a 500, and stored data is untouched.

mod support;

use raleph_crypto::EthSigner;
use raleph_message::MessageType;
use serde_json::{Map, Value, json};
use support::{RunningNode, now};

async fn send(http: &reqwest::Client, url: &str, body: Vec<u8>) -> (u16, Value) {
    let response = http
        .post(format!("{url}/api/v0/messages"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn bad_input_gets_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = RunningNode::start(dir.path());
    let http = reqwest::Client::new();
    let signer = EthSigner::new_random();
    let mut content = Map::new();
    content.insert("type".into(), "t".into());
    let good = raleph_sdk::signed_message(&signer, MessageType::Post, content, Some("API"), now());
    let (status, _) = send(
        &http,
        &node.url,
        json!({"sync": true, "message": good})
            .to_string()
            .into_bytes(),
    )
    .await;
    assert_eq!(status, 200);

    let mut wrong_hash = good.clone();
    wrong_hash["item_hash"] = json!("0".repeat(64));
    let mut bad_type = good.clone();
    bad_type["type"] = json!("SHOUT");
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("malformed JSON", b"{\"message\": ".to_vec(), 422),
        ("not an object", b"[1,2]".to_vec(), 422),
        ("no message", b"{}".to_vec(), 422),
        (
            "hash mismatch",
            json!({"message": wrong_hash}).to_string().into_bytes(),
            422,
        ),
        (
            "unknown type",
            json!({"message": bad_type}).to_string().into_bytes(),
            422,
        ),
        ("oversized body", vec![b' '; 2 * 1024 * 1024], 413),
    ];
    for (name, body, expected) in cases {
        // The node answers an oversized body without reading it and closes the connection:
        // a fresh client keeps that closed connection out of the shared pool.
        let (status, body) = send(&reqwest::Client::new(), &node.url, body).await;
        assert_eq!(status, expected, "{name}: {body}");
    }
    for (path, expected) in [
        (format!("/api/v0/messages/{}", "ab".repeat(32)), 404),
        ("/api/v0/messages/not-a-hash".to_owned(), 400),
        (format!("/api/v0/messages/{}/status", "ab".repeat(32)), 404),
        ("/api/v0/messages.json?page=0".to_owned(), 422),
        ("/api/v0/messages.json?page=x".to_owned(), 422),
        ("/api/v0/messages/page/abc.json".to_owned(), 400),
        ("/api/v0/messages.json?cursor=%%%".to_owned(), 422),
        (
            "/api/v0/messages.json?msgStatuses=forgotten,processed".to_owned(),
            400,
        ),
        (
            "/api/v0/messages.json?startDate=10&endDate=5".to_owned(),
            422,
        ),
        ("/api/v0/aggregates/0xnobody.json".to_owned(), 404),
    ] {
        let response = http
            .get(format!("{}{path}", node.url))
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let body: Value = response.json().await.expect("a JSON body");
        assert_eq!(status, expected, "{path}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{path}: the body names the problem"
        );
    }
    // The good message is still there, unchanged.
    let hash = good["item_hash"].as_str().expect("hash");
    let stored: Value = http
        .get(format!("{}/api/v0/messages/{hash}", node.url))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(stored["status"], "processed");
    assert_eq!(stored["message"]["item_content"], good["item_content"]);
}

#[tokio::test]
async fn metrics_and_info() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = RunningNode::start(dir.path());
    let text = reqwest::get(format!("{}/metrics", node.url))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        text.contains("pyaleph_status_sync_messages_total 0"),
        "{text}"
    );
    let version: Value = reqwest::get(format!("{}/api/v0/version", node.url))
        .await
        .expect("v")
        .json()
        .await
        .expect("j");
    assert!(
        version["version"]
            .as_str()
            .is_some_and(|v| v.starts_with("raleph-"))
    );
}

/// `--database-resident`: the node locks its index file in memory (its locked memory covers
/// the file) and serves as usual.
#[tokio::test]
async fn resident_index_is_locked_in_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = RunningNode::start_with(dir.path(), &["--database-resident"]);
    let size = std::fs::metadata(dir.path().join("index.sqlite"))
        .expect("the index file")
        .len();
    assert!(size > 0);
    let status = format!("/proc/{}/status", node.child.id());
    let locked_bytes = || {
        std::fs::read_to_string(&status)
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmLck:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .unwrap_or(0)
            * 1024
    };
    let locked = support::wait_until(std::time::Duration::from_secs(10), || async {
        locked_bytes() >= size / 4096 * 4096
    })
    .await;
    assert!(
        locked,
        "{} bytes locked for a {size}-byte index",
        locked_bytes()
    );
    let response = reqwest::get(format!("{}/api/v0/messages.json", node.url))
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200);
}

/// The totals the store keeps are exact at every request, with no cache in between: a list
/// read, then grown, answers its new total at once (it used to be cached for 30 s).
#[tokio::test]
async fn kept_totals_are_exact_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = RunningNode::start(dir.path());
    let http = reqwest::Client::new();
    let (alice, bob) = (EthSigner::new_random(), EthSigner::new_random());
    let post = |signer: &EthSigner, i: usize| {
        let mut content = Map::new();
        content.insert("type".into(), "note".into());
        content.insert("content".into(), json!({ "i": i }));
        let message =
            raleph_sdk::signed_message(signer, MessageType::Post, content, Some("TOTALS"), now());
        json!({"sync": true, "message": message})
            .to_string()
            .into_bytes()
    };
    let total = |query: String| {
        let http = http.clone();
        let url = format!("{}/api/v0/messages.json?pagination=5&{query}", node.url);
        async move {
            let page: Value = http
                .get(url)
                .send()
                .await
                .expect("list")
                .json()
                .await
                .expect("json");
            page["pagination_total"].as_u64().expect("a total")
        }
    };
    let alice_address = alice.address();
    let filters = [
        String::new(),
        "msgType=POST".to_owned(),
        format!("addresses={alice_address}"),
        "channels=TOTALS".to_owned(),
        "contentTypes=note".to_owned(),
    ];
    let mut sent = (0, 0);
    for round in 0..3 {
        for i in 0..6 {
            let (signer, count) = if i % 3 == 0 {
                (&bob, &mut sent.1)
            } else {
                (&alice, &mut sent.0)
            };
            let (status, body) = send(&http, &node.url, post(signer, round * 10 + i)).await;
            assert_eq!(status, 200, "{body}");
            *count += 1;
        }
        let expected = [
            sent.0 + sent.1,
            sent.0 + sent.1,
            sent.0,
            sent.0 + sent.1,
            sent.0 + sent.1,
        ];
        for (filter, expected) in filters.iter().zip(expected) {
            assert_eq!(
                total(filter.clone()).await,
                expected,
                "round {round}: {filter}"
            );
        }
    }
}

/// `/a/{x}.json/{y}` as `/a/{}/{}` (and a catch-all `{*rest}` as `{}`): routes spell a
/// `{x}.json` segment `{x}`, and name their parameters as they like.
fn path_shape(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        out.push_str("{}");
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c + 1);
        rest = rest[close..]
            .strip_prefix(".json")
            .unwrap_or(&rest[close..]);
    }
    out.push_str(rest);
    out
}

/// The OpenAPI document covers the whole node: every documented operation is served by the
/// running binary (the API's routes, the anchoring proof, compute's), and every route of
/// those routers, read from their sources, is documented.
#[tokio::test]
async fn the_openapi_document_covers_the_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = RunningNode::start(dir.path());
    let http = reqwest::Client::new();
    let doc: Value = http
        .get(format!("{}/api/openapi.json", node.url))
        .send()
        .await
        .expect("document")
        .json()
        .await
        .expect("JSON");
    let paths = doc["paths"].as_object().expect("paths");
    let hash = "93a23971a914e5eacbf0a8d25154cda309c3c1c72fbb9914d47c60f3cb681588";
    let mut documented = std::collections::BTreeSet::new();
    for (path, item) in paths {
        documented.insert(path_shape(path));
        let mut uri = String::new();
        let mut rest = path.as_str();
        while let Some(open) = rest.find('{') {
            uri.push_str(&rest[..open]);
            let close = rest[open..].find('}').map_or(rest.len(), |c| open + c + 1);
            uri.push_str(match &rest[open + 1..close - 1] {
                "asset" => "docs.js",
                "page" => "1",
                "path" => "a/b",
                "hash" | "item_hash" | "cid" | "reference" => hash,
                _ => "0xabc",
            });
            rest = &rest[close..];
        }
        uri.push_str(rest);
        for method in item.as_object().expect("a path item").keys() {
            let request = match method.as_str() {
                "get" => http.get(format!("{}{uri}", node.url)),
                "post" => http
                    .post(format!("{}{uri}", node.url))
                    .header("content-type", "application/json")
                    .body("{}"),
                other => panic!("{other} {path}: an unexpected method"),
            };
            let response = request.send().await.expect("an answer");
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            assert_ne!(status, 405, "{method} {path}: {body}");
            assert!(
                !body.contains("no such route"),
                "{method} {path} is documented but not routed: {status} {body}"
            );
        }
    }
    let sources = [
        include_str!("../../raleph-api/src/lib.rs"),
        include_str!("../src/anchoring/proof.rs"),
        include_str!("../../raleph-compute/src/http.rs"),
        include_str!("../../raleph-compute/src/control/mod.rs"),
    ];
    for source in sources {
        for route in source
            .split(".route(")
            .skip(1)
            .filter_map(|call| call.split('"').nth(1))
        {
            assert!(
                documented.contains(&path_shape(route)),
                "{route} is routed but not documented"
            );
        }
    }
    // The status history has its first sample as soon as the monitor starts.
    let sampled = support::wait_until(std::time::Duration::from_secs(10), || async {
        let history: Value = http
            .get(format!("{}/api/v0/status/history", node.url))
            .send()
            .await
            .expect("history")
            .json()
            .await
            .expect("JSON");
        history["interval_secs"] == 10
            && history["samples"]
                .as_array()
                .is_some_and(|s| !s.is_empty() && s[0]["messages"] == 0)
    })
    .await;
    assert!(sampled, "the status monitor samples at start");
}
