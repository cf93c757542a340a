//! A chain for tests: anvil with the AlephSync contract deployed from the committed artifact,
//! and nodes configured to follow it (and, for a packing node, to anchor on it).

use std::time::Duration;

use raleph_chain::testing::Anvil;
use raleph_crypto::EthSigner;
use raleph_message::MessageType;
use serde_json::{Map, Value, json};

use super::{RunningNode, now, wait_until};

/// Dev accounts: 0 deploys the contract, 1 packs.
pub const DEPLOYER: usize = 0;
pub const PACKER: usize = 1;

/// A chain with the sync contract, and what nodes need to follow it.
pub struct Chain {
    pub anvil: Anvil,
    pub contract: String,
    pub packer: String,
    pub key_file: std::path::PathBuf,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

impl Chain {
    pub async fn start() -> Option<Chain> {
        let anvil = Anvil::start_or_skip(&[])?;
        let contract = format!("{:#x}", anvil.deploy(DEPLOYER).await);
        let packer = format!("{:#x}", anvil.key(PACKER).address());
        let dir = tempfile::tempdir().expect("tempdir");
        let key_file = dir.path().join("packer.key");
        std::fs::write(&key_file, anvil.key_hex(PACKER)).expect("key file");
        Some(Chain {
            anvil,
            contract,
            packer,
            key_file,
            dir,
            http: reqwest::Client::new(),
        })
    }

    /// The `[[anchoring.evm]]` table: confirmation depth 1, packing when `packing`, then
    /// `extra` (its `[anchoring.evm.limits]`).
    pub fn table_with(&self, packing: bool, extra: &str) -> String {
        let mut table = format!(
            "[[anchoring.evm]]\nchain = \"ETH\"\nrpc_url = \"{}\"\nsync_contract = \"{}\"\n\
             authorized_emitters = [\"{}\"]\nconfirmations = 1\npoll_interval_secs = 1\n",
            self.anvil.url(),
            self.contract,
            self.packer
        );
        if packing {
            table.push_str(&format!(
                "[anchoring.evm.packing]\nkey_file = \"{}\"\ncommit_delay_secs = 1\n",
                self.key_file.display()
            ));
        }
        table.push_str(extra);
        table
    }

    /// Starts node `name` (its data directory kept across restarts) following the chain;
    /// `before` goes first in its configuration file (top-level settings, `[anchoring]`).
    pub fn node(&self, name: &str, packing: bool, before: &str) -> RunningNode {
        self.node_with(name, packing, before, "")
    }

    /// The same, with `extra` at the end of the chain's table.
    pub fn node_with(&self, name: &str, packing: bool, before: &str, extra: &str) -> RunningNode {
        self.node_config(
            name,
            &format!("{before}\n{}", self.table_with(packing, extra)),
        )
    }

    /// Starts node `name` with the configuration file `config`.
    pub fn node_config(&self, name: &str, config: &str) -> RunningNode {
        let path = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, config).expect("config");
        let config = path.display().to_string();
        RunningNode::start_with(&self.dir.path().join(name), &["--config", &config])
    }

    /// Posts `count` signed POSTs to `node`; returns their item hashes.
    pub async fn post(&self, node: &RunningNode, count: usize) -> Vec<String> {
        let signer = EthSigner::new_random();
        let mut hashes = Vec::new();
        for i in 0..count {
            let mut content = Map::new();
            content.insert("type".into(), "note".into());
            content.insert("content".into(), json!({"i": i}));
            let message = raleph_sdk::signed_message(
                &signer,
                MessageType::Post,
                content,
                Some("ANCHOR"),
                now(),
            );
            hashes.push(message["item_hash"].as_str().expect("hash").to_owned());
            let response = self
                .http
                .post(format!("{}/api/v0/messages", node.url))
                .json(&json!({"sync": true, "message": message}))
                .send()
                .await
                .expect("post");
            assert_eq!(response.status().as_u16(), 200);
        }
        hashes
    }

    /// Mines a block now and then until every node shows every message confirmed.
    pub async fn until_confirmed(&self, nodes: &[&RunningNode], hashes: &[String]) -> bool {
        wait_until(Duration::from_secs(90), || async {
            self.anvil.mine(1).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            for node in nodes {
                for hash in hashes {
                    if !confirmed(&self.http, node, hash).await {
                        return false;
                    }
                }
            }
            true
        })
        .await
    }

    /// The sync events the contract emitted so far.
    pub async fn sync_events(&self) -> usize {
        let logs: Vec<Value> = self
            .anvil
            .rpc(
                "eth_getLogs",
                json!([{"address": self.contract, "fromBlock": "0x0", "toBlock": "latest"}]),
            )
            .await;
        let topic = format!("{:#x}", raleph_chain::events::SYNC_EVENT_TOPIC);
        logs.iter()
            .filter(|log| log["topics"][0] == topic.as_str())
            .count()
    }

    /// The packing account's (latest, pending) nonces.
    pub async fn nonces(&self) -> (u64, u64) {
        let count = |tag: &'static str| async move {
            let n: String = self
                .anvil
                .rpc("eth_getTransactionCount", json!([self.packer, tag]))
                .await;
            u64::from_str_radix(n.trim_start_matches("0x"), 16).expect("hex count")
        };
        (count("latest").await, count("pending").await)
    }
}

pub async fn get(http: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = http.get(url).send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Whether the node holds `hash` processed and confirmed.
pub async fn confirmed(http: &reqwest::Client, node: &RunningNode, hash: &str) -> bool {
    let (status, body) = get(http, &format!("{}/api/v0/messages/{hash}", node.url)).await;
    status == 200
        && body["status"] == "processed"
        && body["message"]["confirmed"] == true
        && body["message"]["confirmations"][0]["chain"] == "ETH"
}
