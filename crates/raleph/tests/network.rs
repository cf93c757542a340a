//! Nodes as separate processes on loopback: gossip reaches every node, a node that was down
//! catches up, a partition heals and every node ends in the same state, files come from peers.

mod support;

use std::path::Path;
use std::time::Duration;

use raleph_crypto::EthSigner;
use raleph_message::MessageType;
use serde_json::{Map, Value, json};
use support::{RunningNode, now, wait_until};

/// How long any convergence may take here; the test fails, not hangs, past it.
const CONVERGE: Duration = Duration::from_secs(60);

/// Fast sync and re-dial, and no discovery: the topology is exactly the `--peer` flags.
const CONFIG: &str = r#"
[p2p]
redial_interval_secs = 0.5
dial_discovered = false
[sync]
interval_secs = 0.5
"#;

struct Node {
    node: RunningNode,
    client: raleph_sdk::Client,
}

fn start(dir: &Path, extra: &[&str]) -> Node {
    start_configured(dir, CONFIG, extra)
}

fn start_configured(dir: &Path, config_text: &str, extra: &[&str]) -> Node {
    let config = dir.join("node.toml");
    std::fs::create_dir_all(dir).expect("dir");
    std::fs::write(&config, config_text).expect("config");
    let config = config.to_str().expect("path").to_owned();
    let mut args = vec!["--config", config.as_str()];
    args.extend_from_slice(extra);
    let node = RunningNode::start_with(&dir.join("data"), &args);
    let client = raleph_sdk::Client::new(&node.url);
    Node { node, client }
}

/// A free loopback port for a node that must come back on the same address.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn post(signer: &EthSigner, post_type: &str, body: Value, reference: Option<&str>) -> Value {
    let mut content = Map::new();
    content.insert("type".into(), post_type.into());
    content.insert("content".into(), body);
    if let Some(reference) = reference {
        content.insert("ref".into(), reference.into());
    }
    raleph_sdk::signed_message(signer, MessageType::Post, content, Some("NET"), now())
}

fn aggregate(signer: &EthSigner, key: &str, body: Value) -> Value {
    let mut content = Map::new();
    content.insert("key".into(), key.into());
    content.insert("content".into(), body);
    raleph_sdk::signed_message(signer, MessageType::Aggregate, content, Some("NET"), now())
}

fn forget(signer: &EthSigner, hashes: &[&str]) -> Value {
    forget_by(signer, "hashes", hashes)
}

/// A FORGET whose content lists `targets` under `field` (`hashes` or `aggregates`); `hashes`,
/// which the reference requires, is at least empty.
fn forget_by(signer: &EthSigner, field: &str, targets: &[&str]) -> Value {
    let mut content = Map::new();
    content.insert("hashes".into(), json!([]));
    content.insert(field.into(), json!(targets));
    raleph_sdk::signed_message(signer, MessageType::Forget, content, Some("NET"), now())
}

fn hash(message: &Value) -> String {
    message["item_hash"].as_str().expect("item_hash").to_owned()
}

/// A file's bytes as a node serves them.
async fn raw_file(node: &Node, sha256: &str) -> Vec<u8> {
    let url = format!("{}/api/v0/storage/raw/{sha256}", node.node.url);
    let response = reqwest::get(url).await.expect("raw");
    response.bytes().await.expect("bytes").to_vec()
}

async fn submit(node: &Node, message: &Value) {
    let (status, body) = node.client.submit(message, false).await.expect("submit");
    assert!(matches!(status, 200 | 202), "{status} {body}");
}

async fn status_of(node: &Node, item_hash: &str) -> Option<String> {
    let url = format!("{}/api/v0/messages/{item_hash}/status", node.node.url);
    let body: Value = reqwest::get(url).await.ok()?.json().await.ok()?;
    body["status"].as_str().map(str::to_owned)
}

async fn wait_status(node: &Node, item_hash: &str, wanted: &str) -> bool {
    wait_until(CONVERGE, || async {
        status_of(node, item_hash).await.as_deref() == Some(wanted)
    })
    .await
}

/// Raleph peers a node is connected to.
async fn raleph_peers(node: &Node) -> usize {
    let url = format!("{}/api/v0/p2p/peers", node.node.url);
    let Ok(response) = reqwest::get(url).await else {
        return 0;
    };
    let body: Value = response.json().await.unwrap_or_default();
    body["peers"]
        .as_array()
        .map_or(0, |p| p.iter().filter(|p| p["is_raleph"] == true).count())
}

async fn wait_peers(node: &Node, n: usize) -> bool {
    wait_until(CONVERGE, || async { raleph_peers(node).await >= n }).await
}

/// The item hashes of a messages.json page, sorted.
fn sorted_hashes(page: &Value) -> Vec<String> {
    let mut hashes: Vec<String> = page["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| m["item_hash"].as_str().unwrap_or("").to_owned())
        .collect();
    hashes.sort();
    hashes
}

/// What must be equal on every node: processed messages, posts, aggregates, forgotten set.
async fn state(node: &Node, address: &str) -> Value {
    let get = |path: String| async move { node.client.get(&path).await.unwrap_or(Value::Null) };
    let messages =
        get("/api/v0/messages.json?channels=NET&pagination=500&sort_order=1".into()).await;
    let processed = sorted_hashes(&messages);
    let posts = get(format!(
        "/api/v0/posts.json?addresses={address}&pagination=500"
    ))
    .await;
    let mut posts: Vec<Value> = posts["posts"]
        .as_array()
        .map(|p| {
            p.iter()
                .map(|p| json!([p["original_item_hash"], p["item_hash"], p["content"]]))
                .collect()
        })
        .unwrap_or_default();
    posts.sort_by_key(|p| p.to_string());
    let aggregates = get(format!("/api/v0/aggregates/{address}.json")).await;
    let forgotten =
        get("/api/v0/messages.json?channels=NET&message_statuses=forgotten&pagination=500".into())
            .await;
    let forgotten = sorted_hashes(&forgotten);
    json!({
        "processed": processed,
        "posts": posts,
        "aggregates": aggregates["data"],
        "forgotten": forgotten,
    })
}

async fn converged(nodes: &[&Node], address: &str, expected_processed: usize) -> bool {
    let first = state(nodes[0], address).await;
    if first["processed"].as_array().map_or(0, Vec::len) != expected_processed {
        return false;
    }
    for node in &nodes[1..] {
        if state(node, address).await != first {
            return false;
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_posted_on_a_reaches_c_through_b() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = start(&dir.path().join("a"), &[]);
    let b = start(&dir.path().join("b"), &["--peer", &a.node.p2p]);
    let c = start(&dir.path().join("c"), &["--peer", &b.node.p2p]);
    assert!(wait_peers(&b, 2).await, "B connects to A and C");
    assert!(wait_peers(&c, 1).await, "C connects to B");

    let signer = EthSigner::new_random();
    let message = post(&signer, "note", json!({"hello": "network"}), None);
    submit(&a, &message).await;
    assert!(
        wait_status(&c, &hash(&message), "processed").await,
        "C processed it"
    );
    assert!(
        wait_status(&b, &hash(&message), "processed").await,
        "B processed it"
    );

    // The peer views and metrics show the traffic.
    let peers: Value = reqwest::get(format!("{}/api/v0/p2p/peers", b.node.url))
        .await
        .expect("peers")
        .json()
        .await
        .expect("json");
    let accepted: u64 = peers["peers"]
        .as_array()
        .expect("peers")
        .iter()
        .map(|p| p["counters"]["messages_accepted"].as_u64().unwrap_or(0))
        .sum();
    assert!(accepted >= 1, "{peers}");
    let identity: Value = reqwest::get(format!("{}/api/v0/p2p/identity", c.node.url))
        .await
        .expect("identity")
        .json()
        .await
        .expect("json");
    assert_eq!(identity["addresses"][0], json!(c.node.p2p));
    let metrics = reqwest::get(format!("{}/metrics", b.node.url))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("raleph_p2p_peers 2"), "{metrics}");
    assert!(
        metrics.contains("raleph_p2p_peer_messages_accepted_total{peer="),
        "{metrics}"
    );

    // A message with a bad signature is refused by A's API and reaches nobody; a later good
    // one shows the network kept working.
    let mut forged = post(&signer, "note", json!({"forged": true}), None);
    forged["sender"] = json!(EthSigner::new_random().address());
    let (status, _) = a.client.submit(&forged, false).await.expect("submit");
    assert_eq!(status, 422);
    let after = post(&signer, "note", json!({"after": true}), None);
    submit(&a, &after).await;
    assert!(wait_status(&c, &hash(&after), "processed").await);
    assert_eq!(status_of(&c, &hash(&forged)).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_node_catches_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = start(&dir.path().join("a"), &[]);
    let b_port = format!("127.0.0.1:{}", free_port());
    let b_args = ["--peer", a.node.p2p.as_str(), "--p2p-addr", b_port.as_str()];
    let b = start(&dir.path().join("b"), &b_args);
    let c = start(&dir.path().join("c"), &["--peer", &b.node.p2p]);
    assert!(wait_peers(&c, 1).await && wait_peers(&a, 1).await);

    let signer = EthSigner::new_random();
    let address = signer.address();
    let first = post(&signer, "note", json!({"n": 0}), None);
    submit(&a, &first).await;
    let doomed = post(&signer, "note", json!({"doomed": true}), None);
    submit(&a, &doomed).await;
    // The owner lets a delegate act for it.
    let delegate = EthSigner::new_random();
    let security = aggregate(
        &signer,
        "security",
        json!({"authorizations": [{"address": delegate.address()}]}),
    );
    submit(&a, &security).await;
    assert!(wait_status(&c, &hash(&doomed), "processed").await);
    assert!(wait_status(&c, &hash(&security), "processed").await);

    // B goes down: A and C are cut off from each other.
    b.node.kill9();
    let mut sent = vec![first.clone()];
    for n in 1..=40 {
        let m = post(&signer, "note", json!({ "n": n }), None);
        submit(&a, &m).await;
        sent.push(m);
    }
    let amend = post(
        &signer,
        "amend",
        json!({"n": 0, "amended": true}),
        Some(&hash(&first)),
    );
    submit(&a, &amend).await;
    let agg1 = aggregate(&signer, "profile", json!({"name": "a"}));
    submit(&a, &agg1).await;
    let agg2 = aggregate(&signer, "profile", json!({"bio": "b"}));
    submit(&a, &agg2).await;
    // A FORGET of a message every node holds, and one of a message only A ever held: C must
    // learn that it is gone although it will never see it.
    let forget_doomed = forget(&signer, &[&hash(&doomed)]);
    submit(&a, &forget_doomed).await;
    let unseen = post(&signer, "note", json!({"unseen": true}), None);
    submit(&a, &unseen).await;
    let forget_unseen = forget(&signer, &[&hash(&unseen)]);
    submit(&a, &forget_unseen).await;
    // The same for a message the delegate sent on the owner's behalf, which only the
    // delegate may forget: with a FORGET it sends for the owner (its grant covers FORGETs).
    let for_owner = |message_type, mut content: Map<String, Value>| {
        content.insert("address".into(), address.clone().into());
        raleph_sdk::signed_message(&delegate, message_type, content, Some("NET"), now())
    };
    let mut note = Map::new();
    note.insert("type".into(), "note".into());
    note.insert("content".into(), json!({"unseen": "delegated"}));
    let unseen_delegated = for_owner(MessageType::Post, note);
    submit(&a, &unseen_delegated).await;
    let mut targets = Map::new();
    targets.insert("hashes".into(), json!([hash(&unseen_delegated)]));
    let forget_delegated = for_owner(MessageType::Forget, targets);
    submit(&a, &forget_delegated).await;
    assert!(wait_status(&a, &hash(&unseen_delegated), "forgotten").await);
    // An aggregate only A ever held, forgotten by key: C learns of its elements only as
    // skeletons, which do not carry the key (shaped as an item hash, as the reference types
    // the keys a FORGET names).
    let scratch_key = "5c".repeat(32);
    let scratch = [
        aggregate(&signer, &scratch_key, json!({"draft": 1})),
        aggregate(&signer, &scratch_key, json!({"draft": 2})),
    ];
    for element in &scratch {
        submit(&a, element).await;
    }
    let forget_scratch = forget_by(&signer, "aggregates", &[&scratch_key]);
    submit(&a, &forget_scratch).await;
    assert!(wait_status(&a, &hash(&scratch[1]), "forgotten").await);
    assert_eq!(status_of(&c, &hash(&sent[5])).await, None, "C is cut off");

    // B comes back on the same address with the same data: it syncs from A, C from B.
    let b = start(&dir.path().join("b"), &b_args);
    let got_forget = wait_status(&c, &hash(&forget_doomed), "processed").await;
    assert!(
        got_forget,
        "C got the FORGET: A {:?} B {:?} C {:?}; B peers {}, C peers {}",
        status_of(&a, &hash(&forget_doomed)).await,
        status_of(&b, &hash(&forget_doomed)).await,
        status_of(&c, &hash(&forget_doomed)).await,
        raleph_peers(&b).await,
        raleph_peers(&c).await,
    );
    assert!(wait_status(&c, &hash(&doomed), "forgotten").await);
    assert!(wait_status(&c, &hash(&unseen), "forgotten").await);
    assert!(wait_status(&c, &hash(&forget_unseen), "processed").await);
    assert!(wait_status(&c, &hash(&unseen_delegated), "forgotten").await);
    assert!(wait_status(&c, &hash(&forget_delegated), "processed").await);
    assert!(wait_status(&c, &hash(&forget_scratch), "processed").await);
    for element in &scratch {
        assert!(wait_status(&c, &hash(element), "forgotten").await);
    }
    // 41 posts, an amend, three aggregates, four FORGETs (forgotten messages are not listed).
    let expected = 41 + 1 + 3 + 4;
    let nodes = [&a, &b, &c];
    let all_equal = wait_until(CONVERGE, || converged(&nodes, &address, expected)).await;
    assert!(
        all_equal,
        "states differ:\nA {}\nB {}\nC {}",
        state(&a, &address).await,
        state(&b, &address).await,
        state(&c, &address).await
    );
    let aggregates = state(&c, &address).await["aggregates"].clone();
    assert_eq!(aggregates["profile"], json!({"name": "a", "bio": "b"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partition_heals_and_both_sides_converge() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = start(&dir.path().join("a"), &[]);
    let bridge_port = format!("127.0.0.1:{}", free_port());
    let bridge_args = [
        "--peer",
        a.node.p2p.as_str(),
        "--p2p-addr",
        bridge_port.as_str(),
    ];
    let bridge = start(&dir.path().join("b"), &bridge_args);
    let c = start(&dir.path().join("c"), &["--peer", &bridge.node.p2p]);
    assert!(wait_peers(&c, 1).await && wait_peers(&a, 1).await);
    let signer = EthSigner::new_random();
    let address = signer.address();
    let original = post(&signer, "note", json!({"v": 1}), None);
    submit(&a, &original).await;
    assert!(wait_status(&c, &hash(&original), "processed").await);

    // The partition: the only link between A and C goes down, and both sides take writes,
    // some of which depend on each other across the cut.
    bridge.node.kill9();
    let on_a_post = post(&signer, "note", json!({"side": "a"}), None);
    submit(&a, &on_a_post).await;
    let on_a_agg = aggregate(&signer, "k", json!({"a": 1}));
    submit(&a, &on_a_agg).await;
    let on_c_amend = post(&signer, "amend", json!({"v": 2}), Some(&hash(&original)));
    submit(&c, &on_c_amend).await;
    let on_c_agg = aggregate(&signer, "k", json!({"c": 3}));
    submit(&c, &on_c_agg).await;
    // C forgets A's partition-time post, which C has never seen.
    let on_c_forget = forget(&signer, &[&hash(&on_a_post)]);
    submit(&c, &on_c_forget).await;

    let bridge = start(&dir.path().join("b"), &bridge_args);
    for node in [&a, &bridge, &c] {
        assert!(wait_status(node, &hash(&on_a_post), "forgotten").await);
        assert!(wait_status(node, &hash(&on_c_amend), "processed").await);
    }
    // original, amend, two aggregates, the FORGET.
    let nodes = [&a, &bridge, &c];
    let all_equal = wait_until(CONVERGE, || converged(&nodes, &address, 5)).await;
    assert!(
        all_equal,
        "states differ:\nA {}\nB {}\nC {}",
        state(&a, &address).await,
        state(&bridge, &address).await,
        state(&c, &address).await
    );
    let state = state(&a, &address).await;
    assert_eq!(state["aggregates"]["k"], json!({"a": 1, "c": 3}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stored_file_is_fetched_from_a_peer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = start(&dir.path().join("a"), &[]);
    let c = start(&dir.path().join("c"), &["--peer", &a.node.p2p]);
    assert!(wait_peers(&c, 1).await);
    // Several fetch chunks' worth, not a multiple of the chunk size.
    let bytes: Vec<u8> = (0..9_500_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let path = dir.path().join("upload.bin");
    std::fs::write(&path, &bytes).expect("write");
    let sha256 = raleph_sdk::sha256_file(&path, |_| {}).await.expect("hash");
    let signer = EthSigner::new_random();
    let store = raleph_sdk::store_message(&signer, &sha256, Some("NET"), now());
    let (status, body) = a
        .client
        .upload_file(&path, Some(&store), |_| {})
        .await
        .expect("upload");
    assert_eq!(status, 200, "{body}");
    assert!(
        wait_status(&c, &hash(&store), "processed").await,
        "C fetched the file"
    );
    let raw = raw_file(&c, &sha256).await;
    assert!(raw == bytes, "C serves the same bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_file_is_fetched_over_http_as_from_a_reference_node() {
    // No p2p link at all: C knows A only as an HTTP API, the way reference nodes fetch from
    // each other (`GET /api/v0/storage/{hash}`, base64 JSON).
    let dir = tempfile::tempdir().expect("tempdir");
    let a = start(&dir.path().join("a"), &[]);
    let config = format!("{CONFIG}http_peers = [\"{}\"]\n", a.node.url);
    let c = start_configured(&dir.path().join("c"), &config, &[]);
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let path = dir.path().join("file.bin");
    std::fs::write(&path, &bytes).expect("write");
    let sha256 = raleph_sdk::sha256_file(&path, |_| {}).await.expect("hash");
    // Uploaded to A without a message (kept by a grace pin).
    let (status, body) = a
        .client
        .upload_file(&path, None, |_| {})
        .await
        .expect("upload");
    assert_eq!(status, 200, "{body}");
    // The STORE goes to C only, which does not hold the file.
    let signer = EthSigner::new_random();
    let store = raleph_sdk::store_message(&signer, &sha256, Some("NET"), now());
    submit(&c, &store).await;
    assert!(
        wait_status(&c, &hash(&store), "processed").await,
        "C fetched the file from A's API"
    );
    let raw = raw_file(&c, &sha256).await;
    assert!(raw == bytes);
}
