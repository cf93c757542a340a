//! Blockchain anchoring end to end: a real chain (anvil, with the AlephSync contract deployed
//! from the committed artifact), two real nodes with no p2p link between them. Node A packs:
//! it anchors its messages in an archive through `doEmit`. Node B learns them only from the
//! chain and A's archive (fetched over HTTP from A's raw file route, as from a gateway). Both
//! show them confirmed, serve their inclusion proofs, and `raleph message verify` checks a
//! proof against the chain alone.
//!
//! Skips (with a printed reason) without `$RALEPH_ANVIL`; fails instead under
//! `RALEPH_REQUIRE_ANVIL=1`, as the test command sets.

mod support;

use std::time::Duration;

use raleph_chain::B256;
use raleph_chain::verify::{Claim, check};
use raleph_crypto::EthSigner;
use raleph_message::MessageType;
use serde_json::{Map, Value, json};
use support::chain::{Chain, PACKER, get};
use support::{now, wait_until};

#[tokio::test(flavor = "multi_thread")]
async fn a_packer_anchors_and_a_node_without_peers_learns_from_the_chain() {
    let Some(chain) = Chain::start().await else {
        return;
    };
    let a = chain.node("a", true, "");
    let hashes = chain.post(&a, 5).await;
    let gateway = format!(
        "[anchoring]\narchive_gateways = [\"{}/api/v0/storage/raw/\"]",
        a.url
    );
    let b = chain.node("b", false, &gateway);
    assert!(
        chain.until_confirmed(&[&a, &b], &hashes).await,
        "A's messages confirmed on A and on B"
    );
    assert_eq!(chain.sync_events().await, 1, "one batch, one transaction");
    let (anvil, http, contract) = (&chain.anvil, &chain.http, &chain.contract);

    // B's proof of a message holds against the chain alone.
    let hash = &hashes[2];
    let (status, proofs) = get(http, &format!("{}/api/v0/messages/{hash}/proof", b.url)).await;
    assert_eq!(status, 200, "{proofs}");
    let anchor = &proofs["anchors"][0];
    let root: B256 = anchor["merkle_root"]
        .as_str()
        .expect("root")
        .parse()
        .expect("hex");
    let path: Vec<B256> = anchor["proof"]
        .as_array()
        .expect("proof")
        .iter()
        .map(|h| h.as_str().expect("hex").parse().expect("hash"))
        .collect();
    let claim = Claim {
        chain: raleph_message::Chain::Eth,
        item_hash: hash,
        tx_hash: anchor["tx_hash"]
            .as_str()
            .expect("tx")
            .parse()
            .expect("hash"),
        log_index: anchor["log_index"].as_u64().expect("index"),
        archive: anchor["archive"].as_str().expect("cid"),
        merkle_root: root,
        proof: &path,
    };
    let contract_address = contract.parse().expect("address");
    let verified = check(&anvil.url(), &claim, Some(contract_address))
        .await
        .expect("the proof holds on chain");
    assert_eq!(verified.height, anchor["height"].as_u64().expect("height"));
    // B's status says how far it has read the chain: at least to the anchoring block.
    let (_, metrics) = get(http, &format!("{}/metrics.json", b.url)).await;
    let synced = metrics["raleph_chain_synced_height"]["ETH"].as_u64();
    assert!(synced >= Some(verified.height), "{metrics}");
    // A serves the same anchor for it.
    let (_, a_proofs) = get(http, &format!("{}/api/v0/messages/{hash}/proof", a.url)).await;
    assert_eq!(a_proofs["anchors"][0]["tx_hash"], anchor["tx_hash"]);
    // Unknown and malformed hashes.
    let (status, _) = get(
        http,
        &format!("{}/api/v0/messages/{}/proof", b.url, "0".repeat(64)),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = get(http, &format!("{}/api/v0/messages/nope/proof", b.url)).await;
    assert_eq!(status, 400);

    // The command line does the same check.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_raleph"))
        .args([
            "message",
            "verify",
            hash,
            "--api",
            &b.url,
            "--rpc",
            &anvil.url(),
        ])
        .args(["--contract", contract])
        .output()
        .expect("run raleph message verify");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("verified"), "{stdout}");
}

/// The packer is killed with its batch's transaction sent but not mined, and the transaction
/// is dropped from the pool while it is down: restarted, it sends the same batch again, once.
/// Killed again with the new transaction pending, it waits for it instead of sending a third.
#[tokio::test(flavor = "multi_thread")]
async fn a_packer_killed_mid_batch_neither_loses_nor_repeats_it() {
    let Some(chain) = Chain::start().await else {
        return;
    };
    let _: Value = chain.anvil.rpc("evm_setAutomine", json!([false])).await;
    let a = chain.node("a", true, "");
    let hashes = chain.post(&a, 4).await;
    let sent = wait_until(Duration::from_secs(30), || async {
        let (latest, pending) = chain.nonces().await;
        pending > latest
    })
    .await;
    assert!(sent, "the batch's transaction reached the pool");
    a.kill9();
    let _: Value = chain
        .anvil
        .rpc("anvil_dropAllTransactions", json!([]))
        .await;
    assert_eq!(chain.nonces().await, (0, 0), "dropped");

    let a = chain.node("a", true, "");
    let resent = wait_until(Duration::from_secs(30), || async {
        let (latest, pending) = chain.nonces().await;
        pending > latest
    })
    .await;
    assert!(resent, "the open batch is sent again after the restart");
    a.kill9();
    // Still pending: a restart waits for it.
    let a = chain.node("a", true, "");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(chain.nonces().await, (0, 1), "no second transaction");
    let _: Value = chain.anvil.rpc("evm_setAutomine", json!([true])).await;
    assert!(chain.until_confirmed(&[&a], &hashes).await, "confirmed");
    assert_eq!(chain.sync_events().await, 1, "the batch was emitted once");
    // Nothing left to anchor: no more transactions.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(chain.sync_events().await, 1);
}

/// A reorg takes the anchoring block away: both nodes drop the confirmations with it, and the
/// packer, seeing its batch open again, anchors it anew.
#[tokio::test(flavor = "multi_thread")]
async fn a_reorg_takes_confirmations_away_and_the_batch_is_anchored_again() {
    let Some(chain) = Chain::start().await else {
        return;
    };
    let snapshot: String = chain.anvil.rpc("evm_snapshot", json!([])).await;
    let a = chain.node("a", true, "");
    let hashes = chain.post(&a, 3).await;
    let gateway = format!(
        "[anchoring]\narchive_gateways = [\"{}/api/v0/storage/raw/\"]",
        a.url
    );
    let b = chain.node("b", false, &gateway);
    assert!(chain.until_confirmed(&[&a, &b], &hashes).await, "confirmed");
    let first_tx = {
        let (_, proofs) = get(
            &chain.http,
            &format!("{}/api/v0/messages/{}/proof", b.url, hashes[0]),
        )
        .await;
        proofs["anchors"][0]["tx_hash"].clone()
    };
    // Back to before the anchoring transaction, then a longer chain without it.
    let head = chain.anvil.head().await;
    let reverted: bool = chain.anvil.rpc("evm_revert", json!([snapshot])).await;
    assert!(reverted);
    chain.anvil.mine(head + 3 - chain.anvil.head().await).await;
    let dropped = wait_until(Duration::from_secs(30), || async {
        let (_, body) = get(
            &chain.http,
            &format!("{}/api/v0/messages/{}", b.url, hashes[0]),
        )
        .await;
        body["message"]["confirmed"] == false
    })
    .await;
    assert!(dropped, "B dropped the confirmation the reorg took away");
    assert!(
        chain.until_confirmed(&[&a, &b], &hashes).await,
        "anchored again"
    );
    let (_, proofs) = get(
        &chain.http,
        &format!("{}/api/v0/messages/{}/proof", b.url, hashes[0]),
    )
    .await;
    assert_eq!(
        proofs["anchors"].as_array().map(Vec::len),
        Some(1),
        "{proofs}"
    );
    assert_ne!(
        proofs["anchors"][0]["tx_hash"], first_tx,
        "a new transaction"
    );
}

/// Serves fixed bytes by CID, as an IPFS gateway would (and one that lies, for one CID).
async fn gateway(files: Vec<(String, Vec<u8>)>) -> (String, GatewayFiles) {
    use axum::extract::Path as UrlPath;
    let files: GatewayFiles =
        std::sync::Arc::new(std::sync::Mutex::new(files.into_iter().collect()));
    let served = files.clone();
    let app = axum::Router::new().route(
        "/ipfs/{cid}",
        axum::routing::get(move |UrlPath(cid): UrlPath<String>| {
            let found = served.lock().expect("files").get(&cid).cloned();
            async move {
                match found {
                    Some(bytes) => (axum::http::StatusCode::OK, bytes),
                    None => (axum::http::StatusCode::NOT_FOUND, Vec::new()),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    (format!("http://{addr}/ipfs/"), files)
}

/// What a test gateway serves, by CID; files added later are served from then on.
type GatewayFiles = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>>;

/// The CIDv0 a node computes for `bytes`.
fn cid_of(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = raleph_storage::FileStore::open(dir.path()).expect("store");
    store.put_bytes(bytes, false).expect("put").cid_v0
}

fn archive(messages: &[Value]) -> Vec<u8> {
    json!({"protocol": "aleph", "version": 1, "content": {"messages": messages}})
        .to_string()
        .into_bytes()
}

fn offchain(cid: &str) -> String {
    json!({"protocol": "aleph-offchain", "version": 1, "content": cid}).to_string()
}

fn signed(signer: &EthSigner, i: usize) -> Value {
    let mut content = Map::new();
    content.insert("type".into(), "note".into());
    content.insert("content".into(), json!({"i": i}));
    raleph_sdk::signed_message(signer, MessageType::Post, content, Some("HOSTILE"), now())
}

/// Events no node should act on: bad JSON, an unknown protocol, an emitter not authorized,
/// an archive over the limit, an archive whose bytes are not its CID's, an archive of forged
/// messages. None stores a processed message; the one good event after them does.
#[tokio::test(flavor = "multi_thread")]
async fn hostile_events_are_refused_with_nothing_processed() {
    let Some(chain) = Chain::start().await else {
        return;
    };
    let signer = EthSigner::new_random();
    let (unauthorized, forged, lied_about, good) = (
        signed(&signer, 1),
        {
            let mut m = signed(&signer, 2);
            m["signature"] = json!(format!("0x{}", "ab".repeat(65)));
            m
        },
        signed(&signer, 3),
        signed(&signer, 4),
    );
    let unauthorized_archive = archive(std::slice::from_ref(&unauthorized));
    let forged_archive = archive(std::slice::from_ref(&forged));
    let huge_archive = archive(&[json!({"padding": "x".repeat(8192)})]);
    let true_archive = archive(std::slice::from_ref(&lied_about));
    let good_archive = archive(std::slice::from_ref(&good));
    let lie_cid = cid_of(&true_archive);
    let (url, _) = gateway(vec![
        (cid_of(&unauthorized_archive), unauthorized_archive.clone()),
        (cid_of(&forged_archive), forged_archive.clone()),
        (cid_of(&huge_archive), huge_archive.clone()),
        (
            lie_cid.clone(),
            b"{\"protocol\": \"aleph\", \"version\": 1, \"content\": {\"messages\": []}}".to_vec(),
        ),
        (cid_of(&good_archive), good_archive.clone()),
    ])
    .await;
    let b = chain.node_with(
        "b",
        false,
        &format!("[anchoring]\narchive_gateways = [\"{url}\"]\narchive_fetch_timeout_secs = 2"),
        "[anchoring.evm.limits]\nmax_archive_bytes = 4096\n",
    );
    let config = chain.anvil.config(
        chain.contract.parse().expect("address"),
        vec![chain.packer.parse().expect("address")],
    );
    let packer = raleph_chain::Writer::new(&config, chain.anvil.key(PACKER)).expect("writer");
    let stranger = raleph_chain::Writer::new(&config, chain.anvil.key(2)).expect("writer");
    for payload in [
        "{not json".to_owned(),
        json!({"protocol": "nope", "version": 1, "content": "x"}).to_string(),
        offchain(&cid_of(&huge_archive)),
        offchain(&lie_cid),
        offchain(&cid_of(&forged_archive)),
    ] {
        packer.emit(&payload).await.expect("emit");
    }
    stranger
        .emit(&offchain(&cid_of(&unauthorized_archive)))
        .await
        .expect("emit");
    packer
        .emit(&offchain(&cid_of(&good_archive)))
        .await
        .expect("emit");
    let good_hash = good["item_hash"].as_str().expect("hash").to_owned();
    assert!(
        chain
            .until_confirmed(&[&b], std::slice::from_ref(&good_hash))
            .await,
        "the good event after the hostile ones is read"
    );
    let status = |m: &Value| {
        let hash = m["item_hash"].as_str().expect("hash").to_owned();
        let http = chain.http.clone();
        let url = b.url.clone();
        async move { get(&http, &format!("{url}/api/v0/messages/{hash}")).await }
    };
    assert_eq!(
        status(&unauthorized).await.0,
        404,
        "an unauthorized emitter is ignored"
    );
    assert_eq!(
        status(&lied_about).await.0,
        404,
        "bytes that are not the CID's are refused"
    );
    let (_, body) = status(&forged).await;
    assert_eq!(
        body["status"], "rejected",
        "a forged message is rejected: {body}"
    );
    let (_, list) = get(&chain.http, &format!("{}/api/v0/messages.json", b.url)).await;
    assert_eq!(
        list["pagination_total"], 1,
        "only the good message is processed: {list}"
    );
}

/// An archive found nowhere when its event is read does not hold the reader back, and is
/// looked for again: once a gateway serves it, its messages are taken in and the anchor
/// confirms them, with their proof, as if it had been found at once.
#[tokio::test(flavor = "multi_thread")]
async fn an_archive_found_late_is_taken_in_and_confirmed() {
    let Some(chain) = Chain::start().await else {
        return;
    };
    let signer = EthSigner::new_random();
    let late = [signed(&signer, 1), signed(&signer, 2)];
    let late_archive = archive(&late);
    let hashes: Vec<String> = late
        .iter()
        .map(|m| m["item_hash"].as_str().expect("hash").to_owned())
        .collect();
    let (url, files) = gateway(Vec::new()).await;
    let b = chain.node(
        "b",
        false,
        &format!(
            "[anchoring]\narchive_gateways = [\"{url}\"]\narchive_fetch_timeout_secs = 1\narchive_retry_secs = 1"
        ),
    );
    let config = chain.anvil.config(
        chain.contract.parse().expect("address"),
        vec![chain.packer.parse().expect("address")],
    );
    let packer = raleph_chain::Writer::new(&config, chain.anvil.key(PACKER)).expect("writer");
    let emitted = packer
        .emit(&offchain(&cid_of(&late_archive)))
        .await
        .expect("emit");
    // B reads past the event (its position is saved after the event is handled) without the
    // archive, which nobody serves yet.
    let read_past = wait_until(Duration::from_secs(60), || async {
        chain.anvil.mine(1).await;
        let (_, metrics) = get(&chain.http, &format!("{}/metrics.json", b.url)).await;
        metrics["raleph_chain_synced_height"]["ETH"].as_u64() >= Some(emitted.block_height)
    })
    .await;
    assert!(read_past, "B read the event's block");
    for hash in &hashes {
        let (status, _) = get(&chain.http, &format!("{}/api/v0/messages/{hash}", b.url)).await;
        assert_eq!(status, 404, "not known before the archive is found");
    }
    let pending_txs = |url: String| {
        let http = chain.http.clone();
        async move {
            let (_, metrics) = get(&http, &format!("{url}/metrics.json")).await;
            metrics["pyaleph_status_sync_pending_txs_total"].clone()
        }
    };
    assert_eq!(
        pending_txs(b.url.clone()).await,
        1,
        "the anchor waits for its archive"
    );
    // The archive turns up: B takes it in on a later look and confirms its messages.
    files
        .lock()
        .expect("files")
        .insert(cid_of(&late_archive), late_archive.clone());
    assert!(
        chain.until_confirmed(&[&b], &hashes).await,
        "the late archive's messages are processed and confirmed"
    );
    let (status, proofs) = get(
        &chain.http,
        &format!("{}/api/v0/messages/{}/proof", b.url, hashes[1]),
    )
    .await;
    assert_eq!(status, 200, "{proofs}");
    let anchor = &proofs["anchors"][0];
    assert_eq!(anchor["tx_hash"], json!(format!("{:#x}", emitted.tx_hash)));
    assert_eq!(anchor["position"], 1, "{proofs}");
    assert_eq!(pending_txs(b.url.clone()).await, 0, "nothing left waiting");
}

/// A user publishes a message through the contract (`doMessage`, the smart-contract protocol):
/// unsigned, vouched for by the chain, it is processed with the emitter as its sender, and
/// confirmed by that transaction. The same message offered over the API, unsigned, is refused.
#[tokio::test(flavor = "multi_thread")]
async fn a_contract_message_is_processed_with_its_emitter_as_sender() {
    use alloy_sol_types::SolCall;
    let Some(chain) = Chain::start().await else {
        return;
    };
    let b = chain.node("b", false, "");
    const USER: usize = 3;
    let user = chain.anvil.key(USER).address().to_checksum(None);
    let content = json!({
        "type": "note",
        "address": user,
        "time": now(),
        "content": {"via": "contract"},
    })
    .to_string();
    let call = raleph_chain::events::doMessageCall {
        msgtype: "POST".to_owned(),
        msgcontent: content.clone(),
    }
    .abi_encode();
    let receipt = chain
        .anvil
        .call(USER, chain.contract.parse().expect("address"), call)
        .await;
    assert!(receipt.status());
    let hash = raleph_message::sha256_hex(content.as_bytes());
    assert!(
        chain
            .until_confirmed(&[&b], std::slice::from_ref(&hash))
            .await,
        "the contract message is processed and confirmed"
    );
    let (_, body) = get(&chain.http, &format!("{}/api/v0/messages/{hash}", b.url)).await;
    assert_eq!(body["message"]["sender"], user.as_str());
    assert_eq!(body["message"]["signature"], Value::Null);
    assert_eq!(body["message"]["type"], "POST");

    // Unsigned through the API: refused.
    let forged = json!({
        "sender": user, "chain": "ETH", "signature": null, "type": "POST",
        "item_type": "inline", "item_content": content.replace("contract", "api"),
        "item_hash": raleph_message::sha256_hex(content.replace("contract", "api").as_bytes()),
        "time": now(), "channel": null,
    });
    let response = chain
        .http
        .post(format!("{}/api/v0/messages", b.url))
        .json(&json!({"sync": true, "message": forged}))
        .send()
        .await
        .expect("post");
    assert_eq!(
        response.status().as_u16(),
        422,
        "unsigned messages only come from a chain"
    );
}

/// Two EVM chains at once: A packs on the first (as ETH), C on the second (as BSC), and B
/// follows both, learning A's messages from one and C's from the other.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_follows_several_chains_at_once() {
    let (Some(eth), Some(bsc)) = (Chain::start().await, Chain::start().await) else {
        return;
    };
    let as_bsc = |table: String| table.replace("chain = \"ETH\"", "chain = \"BSC\"");
    let a = eth.node("a", true, "");
    let c = bsc.node_config("c", &as_bsc(bsc.table_with(true, "")));
    let from_a = eth.post(&a, 2).await;
    let from_c = bsc.post(&c, 2).await;
    let b = eth.node_config(
        "b",
        &format!(
            "[anchoring]\narchive_gateways = [\"{}/api/v0/storage/raw/\", \"{}/api/v0/storage/raw/\"]\n{}\n{}",
            a.url,
            c.url,
            eth.table_with(false, ""),
            as_bsc(bsc.table_with(false, "")),
        ),
    );
    let both = wait_until(Duration::from_secs(90), || async {
        eth.anvil.mine(1).await;
        bsc.anvil.mine(1).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        for (hashes, chain) in [(&from_a, "ETH"), (&from_c, "BSC")] {
            for hash in hashes.iter() {
                let (_, body) = get(&eth.http, &format!("{}/api/v0/messages/{hash}", b.url)).await;
                if body["message"]["confirmations"][0]["chain"] != chain {
                    return false;
                }
            }
        }
        true
    })
    .await;
    assert!(both, "B confirms A's messages on ETH and C's on BSC");
}
