//! The node on PostgreSQL: `raleph node --database postgres://...` stores, serves, and keeps
//! what it acknowledged across a `kill -9`.
//!
//! Runs against `DATABASE_URL` (see `scripts/postgres.sh`), in a fresh database created for
//! the test and dropped after it. Without `DATABASE_URL` the test prints a notice and passes,
//! unless `RALEPH_REQUIRE_POSTGRES=1`, which makes it fail (as does an unreachable server).

mod support;

use std::time::Duration;

use raleph_crypto::EthSigner;
use raleph_message::MessageType;
use serde_json::{Map, Value, json};
use support::{RunningNode, now, wait_until};

/// A database of the test's own on the server `DATABASE_URL` names; dropped at the end.
struct FreshDatabase {
    admin_url: String,
    name: String,
    url: String,
}

/// The sync PostgreSQL client must not run on an async thread: run `f` on a thread of its own.
fn off_runtime<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(f).join().expect("database thread")
}

impl FreshDatabase {
    fn create() -> Option<FreshDatabase> {
        let required = std::env::var("RALEPH_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
        let admin_url = match std::env::var("DATABASE_URL") {
            Ok(url) if !url.trim().is_empty() => url.trim().to_owned(),
            _ if required => {
                panic!(
                    "RALEPH_REQUIRE_POSTGRES=1 but DATABASE_URL is not set (scripts/postgres.sh)"
                )
            }
            _ => {
                eprintln!(
                    "notice: DATABASE_URL is not set, skipping the node-on-PostgreSQL test \
                     (run scripts/postgres.sh and export what it prints)"
                );
                return None;
            }
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!("raleph_node_test_{}_{nanos}", std::process::id());
        let url = with_database(&admin_url, &name);
        let (admin, create) = (admin_url.clone(), format!("CREATE DATABASE \"{name}\""));
        off_runtime(move || {
            let mut client = ::postgres::Client::connect(&admin, ::postgres::NoTls)
                .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at DATABASE_URL: {e}"));
            client
                .batch_execute(&create)
                .expect("create the test database");
        });
        Some(FreshDatabase {
            admin_url,
            name,
            url,
        })
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        let (admin, drop_sql) = (
            self.admin_url.clone(),
            format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
        );
        off_runtime(move || {
            let dropped = ::postgres::Client::connect(&admin, ::postgres::NoTls)
                .and_then(|mut client| client.batch_execute(&drop_sql));
            if let Err(e) = dropped {
                eprintln!("could not drop the test database: {e}");
            }
        });
    }
}

/// `url` naming database `name` instead of its own.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let (scheme, rest) = base.split_once("://").expect("a postgres:// URL");
    let authority = rest
        .split_once('/')
        .map_or(rest, |(authority, _)| authority);
    format!("{scheme}://{authority}/{name}{query}")
}

fn post(signer: &EthSigner, n: usize, channel: &str) -> Value {
    let mut content = Map::new();
    content.insert("type".into(), "pg-test".into());
    // Key order and non-ASCII text are served exactly as signed.
    content.insert(
        "content".into(),
        json!({"z": n, "a": "é😀", "m": [1.5, null]}),
    );
    raleph_sdk::signed_message(signer, MessageType::Post, content, Some(channel), now())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_runs_on_postgres() {
    let Some(database) = FreshDatabase::create() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let node = RunningNode::start_with(dir.path(), &["--database", &database.url]);
    let client = raleph_sdk::Client::new(&node.url);
    let signer = EthSigner::new_random();

    // A post, processed synchronously, then read back byte for byte.
    let message = post(&signer, 0, "PG");
    let (status, body) = client.submit(&message, true).await.expect("submit");
    assert_eq!(status, 200, "{body}");
    let hash = message["item_hash"].as_str().expect("hash");
    let stored = client.message(hash).await.expect("get");
    assert_eq!(stored["status"], "processed", "{stored}");
    assert_eq!(stored["message"]["item_content"], message["item_content"]);
    let posts = client
        .get(&format!(
            "/api/v0/posts.json?addresses={}",
            signer.address()
        ))
        .await
        .expect("posts");
    assert_eq!(posts["posts"][0]["item_hash"], hash, "{posts}");

    // An aggregate, merged and served.
    let mut content = Map::new();
    content.insert("key".into(), "profile".into());
    content.insert("content".into(), json!({"name": "pg", "b": null}));
    let aggregate =
        raleph_sdk::signed_message(&signer, MessageType::Aggregate, content, None, now());
    let (status, body) = client.submit(&aggregate, true).await.expect("submit");
    assert_eq!(status, 200, "{body}");
    let value = client
        .get(&format!(
            "/api/v0/aggregates/{}.json?keys=profile",
            signer.address()
        ))
        .await
        .expect("aggregate");
    assert_eq!(
        value["data"]["profile"],
        json!({"name": "pg", "b": null}),
        "{value}"
    );

    // Acknowledged asynchronously, then kill -9: all of it is there after a restart.
    let mut acknowledged = Vec::new();
    for n in 1..=50 {
        let message = post(&signer, n, "PG-ASYNC");
        let (status, body) = client.submit(&message, false).await.expect("submit");
        assert!(matches!(status, 200 | 202), "{status} {body}");
        acknowledged.push(message["item_hash"].as_str().expect("hash").to_owned());
    }
    node.kill9();
    let node = RunningNode::start_with(dir.path(), &["--database", &database.url]);
    let client = raleph_sdk::Client::new(&node.url);
    let query = format!(
        "addresses={}&channels=PG-ASYNC&pagination=0",
        signer.address()
    );
    let all_there = wait_until(Duration::from_secs(60), || async {
        let page = client.messages(&query).await.expect("list");
        let stored: Vec<&str> = page["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["item_hash"].as_str())
            .collect();
        stored.len() == acknowledged.len()
            && acknowledged.iter().all(|h| stored.contains(&h.as_str()))
    })
    .await;
    assert!(
        all_there,
        "every acknowledged message is processed after the restart"
    );
    let stored = client.message(hash).await.expect("get");
    assert_eq!(stored["message"]["item_content"], message["item_content"]);
    drop(node);
}
