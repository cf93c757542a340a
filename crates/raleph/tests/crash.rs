//! A message acknowledged with 200 or 202 survives `kill -9` of the node at any moment.

mod support;

use std::sync::Arc;
use std::time::Duration;

use raleph_crypto::EthSigner;
use raleph_message::MessageType;
use serde_json::{Map, Value, json};
use support::{RunningNode, now, wait_until};
use tokio::sync::Mutex;

const MESSAGES: usize = 2000;

/// Messages per sender task; each task sends its slice in order.
const PER_SENDER: usize = MESSAGES / 8;

/// Files uploaded before the ingest, pinned by the STORE messages of the mix.
const FILES: usize = 20;

fn file_bytes(i: usize) -> Vec<u8> {
    format!("crash test file {i}\n")
        .repeat(100 + i)
        .into_bytes()
}

async fn upload_files(node: &RunningNode) -> Vec<String> {
    let mut hashes = Vec::new();
    for i in 0..FILES {
        let part = reqwest::multipart::Part::bytes(file_bytes(i)).file_name("f");
        let form = reqwest::multipart::Form::new().part("file", part);
        let answer: Value = reqwest::Client::new()
            .post(format!("{}/api/v0/storage/add_file", node.url))
            .multipart(form)
            .send()
            .await
            .expect("upload")
            .json()
            .await
            .expect("json");
        hashes.push(answer["hash"].as_str().expect("hash").to_owned());
    }
    hashes
}

/// Message `n`: mostly posts; every 7th an amend of the post six before it (same sender task,
/// so the original is acknowledged first); every 5th an aggregate update on one of three keys;
/// every 50th a STORE of one of the uploaded files.
fn messages(signer: &EthSigner, files: &[String]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::with_capacity(MESSAGES);
    for n in 0..MESSAGES {
        if n % 50 == 25 {
            let file = &files[(n / 50) % files.len()];
            out.push(raleph_sdk::store_message(
                signer,
                file,
                Some("CRASH"),
                now(),
            ));
            continue;
        }
        let mut content = Map::new();
        let message_type = if n % 5 == 4 {
            content.insert("key".into(), format!("k{}", n % 3).into());
            content.insert("content".into(), json!({ format!("f{}", n % 11): n }));
            MessageType::Aggregate
        } else if n % 7 == 6 && n % PER_SENDER >= 6 && out[n - 6]["type"] == "POST" {
            let original = &out[n - 6];
            let is_original = original["item_content"]
                .as_str()
                .is_some_and(|c| c.contains("crash-test"));
            content.insert(
                "type".into(),
                if is_original { "amend" } else { "crash-test" }.into(),
            );
            if is_original {
                content.insert("ref".into(), original["item_hash"].clone());
            }
            content.insert("content".into(), json!({ "n": n, "amend": is_original }));
            MessageType::Post
        } else {
            content.insert("type".into(), "crash-test".into());
            content.insert("content".into(), json!({ "n": n }));
            MessageType::Post
        };
        out.push(raleph_sdk::signed_message(
            signer,
            message_type,
            content,
            Some("CRASH"),
            now(),
        ));
    }
    out
}

/// Posts and aggregates of `address`, as the API serves them: the derived state.
async fn derived_state(client: &raleph_sdk::Client, address: &str) -> Value {
    let posts = client
        .get(&format!(
            "/api/v0/posts.json?addresses={address}&pagination=0"
        ))
        .await
        .expect("posts");
    let mut posts: Vec<Value> = posts["posts"]
        .as_array()
        .expect("posts")
        .iter()
        .map(|p| json!([p["original_item_hash"], p["item_hash"], p["content"]]))
        .collect();
    posts.sort_by_key(|p| p.to_string());
    let aggregates = client
        .get(&format!("/api/v0/aggregates/{address}.json"))
        .await
        .expect("aggregates");
    let files = client
        .get(&format!("/api/v0/addresses/{address}/files?pagination=0"))
        .await
        .expect("files");
    let mut pins: Vec<Value> = files["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| json!([f["file_hash"], f["item_hash"], f["size"]]))
        .collect();
    pins.sort_by_key(|p| p.to_string());
    json!({ "posts": posts, "aggregates": aggregates["data"], "pins": pins })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_messages_survive_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = RunningNode::start(dir.path());
    let client = Arc::new(raleph_sdk::Client::new(&node.url));
    let signer = EthSigner::new_random();
    let files = upload_files(&node).await;
    let messages = messages(&signer, &files);
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));

    // Eight concurrent senders; the node is killed while they are still sending.
    let mut senders = Vec::new();
    for chunk in messages.chunks(PER_SENDER) {
        let chunk = chunk.to_vec();
        let client = client.clone();
        let acknowledged = acknowledged.clone();
        senders.push(tokio::spawn(async move {
            for m in chunk {
                // Refused, or cut by the kill: not acknowledged, so no promise was made.
                if let Ok((200 | 202, _)) = client.submit(&m, false).await {
                    let hash = m["item_hash"].as_str().unwrap_or_default().to_owned();
                    acknowledged.lock().await.push(hash);
                }
            }
        }));
    }
    let enough = wait_until(Duration::from_secs(60), || {
        let acknowledged = acknowledged.clone();
        async move { acknowledged.lock().await.len() >= MESSAGES / 5 }
    })
    .await;
    assert!(enough, "the node acknowledged messages");
    node.kill9();
    for sender in senders {
        let _ = sender.await;
    }
    let acknowledged = acknowledged.lock().await.clone();
    assert!(
        acknowledged.len() < MESSAGES,
        "the kill happened mid-ingest"
    );

    let node = RunningNode::start(dir.path());
    let client = raleph_sdk::Client::new(&node.url);
    let all_processed = wait_until(Duration::from_secs(60), || async {
        let page = client
            .messages(&format!(
                "addresses={}&channels=CRASH&pagination=0",
                signer.address()
            ))
            .await
            .expect("list");
        let stored: std::collections::HashSet<&str> = page["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["item_hash"].as_str())
            .collect();
        acknowledged.iter().all(|h| stored.contains(h.as_str()))
    })
    .await;
    assert!(
        all_processed,
        "every acknowledged message is processed after the restart"
    );
    // Each exactly once.
    let page = client
        .messages("channels=CRASH&pagination=0")
        .await
        .expect("list");
    let hashes: Vec<&str> = page["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["item_hash"].as_str())
        .collect();
    let unique: std::collections::HashSet<&&str> = hashes.iter().collect();
    assert_eq!(unique.len(), hashes.len());

    // Derived state equals a clean replay of the same messages: every message the crashed
    // node holds, in a fresh node, one at a time in their original order.
    let nothing_pending = wait_until(Duration::from_secs(60), || async {
        let metrics = reqwest::get(format!("{}/metrics", node.url))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        metrics.contains("pyaleph_status_sync_pending_messages_total 0\n")
    })
    .await;
    assert!(nothing_pending, "the restarted node settles");
    let held: std::collections::HashSet<String> = hashes.iter().map(|h| (*h).to_owned()).collect();
    let replay_dir = tempfile::tempdir().expect("tempdir");
    let replay = RunningNode::start(replay_dir.path());
    let replay_client = raleph_sdk::Client::new(&replay.url);
    assert_eq!(upload_files(&replay).await, files);
    for m in messages
        .iter()
        .filter(|m| held.contains(m["item_hash"].as_str().unwrap_or("")))
    {
        // `sync`: each is processed before the next is sent, as an ordered replay needs.
        let (status, body) = replay_client.submit(m, true).await.expect("replay");
        assert_eq!(status, 200, "{body}");
    }
    let address = signer.address();
    let crashed = derived_state(&client, &address).await;
    assert!(
        crashed["posts"].as_array().is_some_and(|p| !p.is_empty())
            && crashed["aggregates"]
                .as_object()
                .is_some_and(|a| !a.is_empty())
            && crashed["pins"].as_array().is_some_and(|p| !p.is_empty()),
        "{crashed}"
    );
    assert_eq!(crashed, derived_state(&replay_client, &address).await);
}
