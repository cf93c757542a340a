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

fn message(signer: &EthSigner, n: usize) -> Value {
    let mut content = Map::new();
    content.insert("type".into(), "crash-test".into());
    content.insert("content".into(), json!({ "n": n }));
    raleph_sdk::signed_message(signer, MessageType::Post, content, Some("CRASH"), now())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_messages_survive_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = RunningNode::start(dir.path());
    let client = Arc::new(raleph_sdk::Client::new(&node.url));
    let signer = EthSigner::new_random();
    let messages: Vec<Value> = (0..MESSAGES).map(|n| message(&signer, n)).collect();
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));

    // Eight concurrent senders; the node is killed while they are still sending.
    let mut senders = Vec::new();
    for chunk in messages.chunks(MESSAGES / 8) {
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
}
