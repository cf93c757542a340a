//! The compute node API the published CLI uses for programs, against the real node: a
//! WebAssembly program (the test guest) deployed with real signed messages, its executions
//! listed, its logs read by its owner with the reference's signed headers (ETH and SOL
//! wallets), refused to anyone else, streamed over a WebSocket, stopped, rebooted and started
//! by an allocation notice.
//!
//! The `X-SignedPubKey` headers below were built by the published SDK's own code
//! (aleph-sdk-python 2.4.0, `VmClient._generate_pubkey_signature_header`) from fixed keys, so
//! the wallet signatures are the reference client's, byte for byte:
//! `$(scripts/python-env.sh)/bin/python tests/compat/control_vectors.py` prints them. Each
//! operation is signed here, at request time, with the same ephemeral P-256 key.

mod support;

use std::path::Path;
use std::time::Duration;

use raleph_compute::control::client::{self, EphemeralKey};
use raleph_crypto::{Chain, EthSigner, SignedFields, SolSigner};
use raleph_message::MessageType;
use reqwest::multipart::{Form, Part};
use serde_json::{Map, Value, json};
use sha2::Digest;
use support::{RunningNode, guest_wasm, now, wait_until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The wallet of the ETH owner (secret 0x11 × 32), another wallet (0x22 × 32), the SOL owner
/// (seed 0x33 × 32).
const OWNER_SECRET: [u8; 32] = [0x11; 32];
const OTHER_SECRET: [u8; 32] = [0x22; 32];
const SOL_SEED: [u8; 32] = [0x33; 32];
const OWNER_ADDRESS: &str = "0x19E7E376E7C213B7E7e7e46cc70A5dD086DAff2A";
/// The ephemeral keys each header authorizes: the secret scalar is the byte repeated.
const OWNER_KEY: u8 = 0x41;
const OTHER_KEY: u8 = 0x42;
const SOL_KEY: u8 = 0x43;
/// What the SDK signs for `http://127.0.0.1:<port>`: the URL's hostname.
const DOMAIN: &str = "127.0.0.1";
const EXPIRES: &str = "2099-01-01T00:00:00Z";

const ETH_OWNER: &str = "{\"sender\": \"0x19E7E376E7C213B7E7e7e46cc70A5dD086DAff2A\", \"payload\": \"7b227075626b6579223a207b22637276223a2022502d323536222c20226b7479223a20224543222c202278223a20225a704933564759726976686c755f4b6f6e6348747233735a5a4856455f5673653150464f4c346874697438222c202279223a20226833525f7958365a6f30657537355a6a474f77614a4f6368313837334e7877677851726655316a5941776f227d2c2022616c67223a20224543445341222c2022646f6d61696e223a20223132372e302e302e31222c202261646472657373223a2022307831394537453337364537433231334237453765376534366363373041356444303836444166663241222c202265787069726573223a2022323039392d30312d30315430303a30303a30305a222c2022636861696e223a2022455448227d\", \"signature\": \"0xfc586ac78278ec163e53860b941a98790c99ee5bbfa6a9f0bdfa986a645c1a3c6db0a20be55eec30f8a557f6f6e7b163e1e4dcf6b22184ed0fea8792f05950341c\", \"content\": {\"domain\": \"127.0.0.1\"}}";
const ETH_OWNER_EXPIRED: &str = "{\"sender\": \"0x19E7E376E7C213B7E7e7e46cc70A5dD086DAff2A\", \"payload\": \"7b227075626b6579223a207b22637276223a2022502d323536222c20226b7479223a20224543222c202278223a20225a704933564759726976686c755f4b6f6e6348747233735a5a4856455f5673653150464f4c346874697438222c202279223a20226833525f7958365a6f30657537355a6a474f77614a4f6368313837334e7877677851726655316a5941776f227d2c2022616c67223a20224543445341222c2022646f6d61696e223a20223132372e302e302e31222c202261646472657373223a2022307831394537453337364537433231334237453765376534366363373041356444303836444166663241222c202265787069726573223a2022323032302d30312d30315430303a30303a30302e3030303030315a222c2022636861696e223a2022455448227d\", \"signature\": \"0x277aaca8eb84c137a7c866bf8cfc73f7dc056cccc350ddf185a33e3d401c0b457dcd4c055614124f7c74a0f11ac97ccd794d2348c1bdd5f48399979b8b48e7291b\", \"content\": {\"domain\": \"127.0.0.1\"}}";
const ETH_OTHER: &str = "{\"sender\": \"0x1563915e194D8CfBA1943570603F7606A3115508\", \"payload\": \"7b227075626b6579223a207b22637276223a2022502d323536222c20226b7479223a20224543222c202278223a20224f744f474770566945354a52613757543777565950744c6c686d39637469594b4d42636a663969626b4b38222c202279223a2022304a5963666a6348576d65526f35786839574b56734374744a6c5a3759563567716b4875484936444f4930227d2c2022616c67223a20224543445341222c2022646f6d61696e223a20223132372e302e302e31222c202261646472657373223a2022307831353633393135653139344438436642413139343335373036303346373630364133313135353038222c202265787069726573223a2022323039392d30312d30315430303a30303a30305a222c2022636861696e223a2022455448227d\", \"signature\": \"0x1c8b0c044e54cf7e2c3ef957cbc78a040d5bd3b0d29564ad15c2dbed9b380f3040da18694e90a7bf38be2a8b24c5339ff4e1266c5c7267f4c16ccfc0f9869f7c1b\", \"content\": {\"domain\": \"127.0.0.1\"}}";
const SOL_OWNER: &str = "{\"sender\": \"2btLJAAb1S3x6hZYdVyAePjqtQYi2ZBSRGy4569RZu8h\", \"payload\": \"7b227075626b6579223a207b22637276223a2022502d323536222c20226b7479223a20224543222c202278223a202246537a31457141443254347266333475644f5859476c6166334e68787868546553653530446c64556d4355222c202279223a2022696566627572696c4c594c704550644941673261364d6652372d46435875456738545176426368745a5038227d2c2022616c67223a20224543445341222c2022646f6d61696e223a20223132372e302e302e31222c202261646472657373223a20223262744c4a4141623153337836685a596456794165506a7174515969325a425352477934353639525a753868222c202265787069726573223a2022323039392d30312d30315430303a30303a30305a222c2022636861696e223a2022534f4c227d\", \"signature\": \"0x55c5c516c7015a19bcda2b4809655682d800332356849a48e371050858cdab0779c254d55a772151b184570b8052906c3fcc7c038180f9ab366c68d5a4507b04\", \"content\": {\"domain\": \"127.0.0.1\"}}";

fn program_content(code_ref: &str) -> Map<String, Value> {
    raleph_sdk::ProgramSpec {
        code_ref: code_ref.to_owned(),
        encoding: "plain".into(),
        entrypoint: "wasi:http/proxy".into(),
        use_latest: false,
        runtime_ref: raleph_compute::runtimes::WASM_RUNTIME.clone(),
        runtime_comment: "wasi-http".into(),
        memory_mib: 64,
        vcpus: 1,
        seconds: 5,
        internet: false,
        variables: Map::new(),
        on_message: Vec::new(),
        volumes: Vec::new(),
        allow_amend: false,
        replaces: None,
    }
    .content()
}

/// A message signed by a Solana wallet, as `raleph_sdk::signed_message` builds ETH ones.
fn sol_message(
    signer: &SolSigner,
    message_type: MessageType,
    mut content: Map<String, Value>,
) -> Value {
    let sender = signer.address();
    let time = now();
    content.insert("address".into(), sender.clone().into());
    content.insert("time".into(), json!(time));
    let item_content = Value::Object(content).to_string();
    let item_hash = hex::encode(sha2::Sha256::digest(item_content.as_bytes()));
    let fields = SignedFields {
        chain: Chain::Sol,
        sender: &sender,
        message_type: message_type.as_str(),
        item_hash: &item_hash,
        time,
    };
    json!({
        "sender": sender,
        "chain": "SOL",
        "signature": signer.sign_message(&fields),
        "type": message_type.as_str(),
        "item_type": "inline",
        "item_content": item_content,
        "item_hash": item_hash,
        "time": time,
        "channel": "TEST",
    })
}

struct Node {
    _node: RunningNode,
    url: String,
    /// `127.0.0.1:<port>`.
    authority: String,
    http: reqwest::Client,
}

impl Node {
    async fn submit(&self, message: &Value) -> String {
        let (status, body) = raleph_sdk::Client::new(&self.url)
            .submit(message, true)
            .await
            .expect("submit");
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["message_status"], "processed", "{body}");
        message["item_hash"].as_str().expect("hash").to_owned()
    }

    async fn store(&self, signer: &EthSigner, bytes: &[u8]) -> String {
        let mut content = Map::new();
        content.insert("item_type".into(), "storage".into());
        content.insert(
            "item_hash".into(),
            hex::encode(sha2::Sha256::digest(bytes)).into(),
        );
        let store =
            raleph_sdk::signed_message(signer, MessageType::Store, content, Some("TEST"), now());
        let metadata = json!({"message": store, "sync": true}).to_string();
        let form = Form::new()
            .text("metadata", metadata)
            .part("file", Part::bytes(bytes.to_vec()).file_name("code.wasm"));
        let response = self
            .http
            .post(format!("{}/api/v0/storage/add_file", self.url))
            .multipart(form)
            .send()
            .await
            .expect("upload");
        assert_eq!(response.status(), 200);
        store["item_hash"].as_str().expect("hash").to_owned()
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }

    async fn get_json(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).expect("json")
    }

    /// A request with the two headers (either may be left out).
    async fn signed(
        &self,
        method: &str,
        path: &str,
        pubkey: Option<&str>,
        operation: Option<String>,
    ) -> (u16, String) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(pubkey) = pubkey {
            request = request.header("X-SignedPubKey", pubkey);
        }
        if let Some(operation) = operation {
            request = request.header("X-SignedOperation", operation);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }

    /// A request signed as the SDK signs it: `key` signs `method path` for the node's domain.
    async fn operate(&self, method: &str, path: &str, pubkey: &str, key: u8) -> (u16, String) {
        let operation = ephemeral(key).signed_operation(method, path, DOMAIN, now());
        self.signed(method, path, Some(pubkey), Some(operation))
            .await
    }
}

fn ephemeral(byte: u8) -> EphemeralKey {
    EphemeralKey::from_secret_bytes(&[byte; 32]).expect("key")
}

fn error_of(body: &str) -> String {
    let value: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("JSON error: {body}"));
    value["error"].as_str().expect("error").to_owned()
}

fn start_node(dir: &Path) -> Node {
    let config = dir.join("raleph.toml");
    std::fs::write(&config, "[compute]\nidle_timeout_secs = 300.0\n").expect("config");
    let node = RunningNode::start_with(
        &dir.join("data"),
        &["--config", config.to_str().expect("path")],
    );
    let url = node.url.clone();
    Node {
        authority: url.trim_start_matches("http://").to_owned(),
        url,
        _node: node,
        http: reqwest::Client::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_read_logs_stop_and_reboot_their_programs() {
    let wasm = guest_wasm(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let node = start_node(dir.path());
    let owner = EthSigner::from_secret_bytes(&OWNER_SECRET).expect("key");
    assert_eq!(owner.address(), OWNER_ADDRESS);
    let other = EthSigner::from_secret_bytes(&OTHER_SECRET).expect("key");
    assert!(
        ETH_OTHER.contains(&other.address()),
        "the vectors' other wallet"
    );
    let code = node.store(&owner, &wasm).await;
    let program = node
        .submit(&raleph_sdk::signed_message(
            &owner,
            MessageType::Program,
            program_content(&code),
            Some("TEST"),
            now(),
        ))
        .await;
    let machine = format!("/control/machine/{program}");
    let logs = format!("{machine}/logs");

    // This crate builds the same X-SignedPubKey as the SDK from the same keys.
    let sdk: Value = serde_json::from_str(ETH_OWNER).expect("json");
    let wallet_signature = hex::decode(&sdk["signature"].as_str().expect("sig")[2..]).expect("hex");
    let payload = ephemeral(OWNER_KEY).pubkey_payload(OWNER_ADDRESS, "ETH", DOMAIN, EXPIRES);
    assert_eq!(
        client::signed_pubkey_header(&payload, &wallet_signature, OWNER_ADDRESS, DOMAIN),
        ETH_OWNER
    );

    // Never executed on this node: 404, as the reference (the CLI says so).
    let (status, body) = node.operate("GET", &logs, ETH_OWNER, OWNER_KEY).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(error_of(&body), "No execution found for this VM");
    assert_eq!(node.get("/about/executions/list").await, (200, "{}".into()));

    // The program runs and prints.
    let (status, body) = node
        .get(&format!("/vm/{program}/print?text=hello-owner"))
        .await;
    assert_eq!((status, body.as_str()), (200, "printed"));

    // Listed as running, in both shapes.
    let v1 = node.get_json("/about/executions/list").await;
    assert_eq!(
        v1[&program],
        json!({"networking": {"ipv4": "", "ipv6": ""}, "vm_type": "microvm", "awaiting_confidential_init": false})
    );
    let v2 = node.get_json("/v2/about/executions/list").await;
    assert_eq!(v2[&program]["running"], true);
    assert_eq!(v2[&program]["vm_type"], "microvm");
    assert_eq!(v2[&program]["networking"]["mapped_ports"], json!({}));
    assert!(v2[&program]["status"]["started_at"].is_null());

    // The owner reads the logs: the reference's journal entries, one a line.
    let (status, body) = node.operate("GET", &logs, ETH_OWNER, OWNER_KEY).await;
    assert_eq!(status, 200, "{body}");
    let entries: Vec<Value> = serde_json::from_str(&body).expect("json");
    let stdout = entries
        .iter()
        .find(|e| e["MESSAGE"] == "to stdout: hello-owner")
        .unwrap_or_else(|| panic!("the printed line in {body}"));
    assert_eq!(stdout["file"], "stdout");
    assert_eq!(
        stdout["SYSLOG_IDENTIFIER"],
        format!("vm-{program}-stdout").as_str()
    );
    let stamp = stdout["__REALTIME_TIMESTAMP"].as_str().expect("time");
    assert_eq!(stamp.len(), "2026-01-01 00:00:00.000000".len(), "{stamp}");
    assert_eq!(&stamp[10..11], " ");
    let stderr = entries
        .iter()
        .find(|e| e["MESSAGE"] == "to stderr")
        .expect("stderr line");
    assert_eq!(stderr["file"], "stderr");

    // Another wallet, correctly signed: 403.
    let (status, body) = node.operate("GET", &logs, ETH_OTHER, OTHER_KEY).await;
    assert_eq!(
        (status, error_of(&body).as_str()),
        (403, "Unauthorized sender")
    );
    // The owner's header with another wallet's ephemeral key: the operation does not verify.
    let (status, body) = node.operate("GET", &logs, ETH_OWNER, OTHER_KEY).await;
    assert_eq!(
        (status, error_of(&body).as_str()),
        (401, "Signature could not verified")
    );
    // An expired key.
    let (status, body) = node
        .operate("GET", &logs, ETH_OWNER_EXPIRED, OWNER_KEY)
        .await;
    assert_eq!((status, error_of(&body).as_str()), (401, "Token expired"));
    // An operation signed for another path, another method, another domain.
    let key = ephemeral(OWNER_KEY);
    let stop_path = format!("{machine}/stop");
    let other_path = key.signed_operation("GET", &stop_path, DOMAIN, now());
    let (status, body) = node
        .signed("GET", &logs, Some(ETH_OWNER), Some(other_path))
        .await;
    assert_eq!(status, 401, "{body}");
    assert!(error_of(&body).starts_with("Invalid path"), "{body}");
    let post = key.signed_operation("POST", &logs, DOMAIN, now());
    let (status, body) = node.signed("GET", &logs, Some(ETH_OWNER), Some(post)).await;
    assert!(
        status == 401 && error_of(&body).starts_with("Invalid method"),
        "{body}"
    );
    let elsewhere = key.signed_operation("GET", &logs, "crn.example.org", now());
    let (status, body) = node
        .signed("GET", &logs, Some(ETH_OWNER), Some(elsewhere))
        .await;
    assert!(
        status == 401 && error_of(&body).starts_with("Invalid domain"),
        "{body}"
    );
    // An operation three minutes old: 400, as the reference's validation error.
    let old = key.signed_operation("GET", &logs, DOMAIN, now() - 180.0);
    let (status, body) = node.signed("GET", &logs, Some(ETH_OWNER), Some(old)).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        error_of(&body).contains("Time is too far in the past"),
        "{body}"
    );
    // Missing, malformed and oversized headers.
    let (status, body) = node.signed("GET", &logs, None, None).await;
    assert_eq!(
        (status, error_of(&body).as_str()),
        (400, "Missing X-SignedPubKey header")
    );
    let fresh = key.signed_operation("GET", &logs, DOMAIN, now());
    let (status, _) = node
        .signed("GET", &logs, Some("{not json"), Some(fresh.clone()))
        .await;
    assert_eq!(status, 400);
    let huge = format!("{{\"payload\": \"{}\"}}", "ab".repeat(6000));
    let (status, body) = node.signed("GET", &logs, Some(&huge), Some(fresh)).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = node.signed("GET", &logs, Some(ETH_OWNER), None).await;
    assert_eq!(
        (status, error_of(&body).as_str()),
        (400, "Missing X-SignedOperation header")
    );
    // A reference that is not a hash, and a program the node does not know.
    let (status, body) = node
        .operate(
            "GET",
            "/control/machine/not-a-hash/logs",
            ETH_OWNER,
            OWNER_KEY,
        )
        .await;
    assert_eq!(
        (status, error_of(&body).as_str()),
        (400, "Invalid ref: 'not-a-hash'")
    );
    let unknown = "b".repeat(64);
    let (status, _) = node
        .operate(
            "POST",
            &format!("/control/machine/{unknown}/stop"),
            ETH_OWNER,
            OWNER_KEY,
        )
        .await;
    assert_eq!(status, 404);

    // Streamed over a WebSocket: what is kept, then what comes.
    let mut ws = WebSocket::connect(&node.authority, &format!("{machine}/stream_logs")).await;
    let stream_path = format!("{machine}/stream_logs");
    ws.send_text(&auth_packet(ETH_OWNER, OWNER_KEY, &stream_path))
        .await;
    assert_eq!(ws.recv_json().await, Some(json!({"status": "connected"})));
    let first = ws.recv_json().await.expect("a line");
    assert_eq!(
        first,
        json!({"type": "stdout", "message": "to stdout: hello-owner"})
    );
    assert_eq!(
        ws.recv_json().await,
        Some(json!({"type": "stderr", "message": "to stderr"}))
    );
    let (status, _) = node.get(&format!("/vm/{program}/print?text=live")).await;
    assert_eq!(status, 200);
    assert_eq!(
        ws.recv_json().await,
        Some(json!({"type": "stdout", "message": "to stdout: live"}))
    );
    drop(ws);
    // Another wallet is refused inside the socket.
    let mut ws = WebSocket::connect(&node.authority, &stream_path).await;
    ws.send_text(&auth_packet(ETH_OTHER, OTHER_KEY, &stream_path))
        .await;
    assert_eq!(
        ws.recv_json().await,
        Some(json!({"status": "failed", "reason": "unauthorized sender"}))
    );
    assert_eq!(ws.recv_json().await, None, "then closed");
    let mut ws = WebSocket::connect(&node.authority, &stream_path).await;
    ws.send_text(r#"{"auth": "invalid auth package"}"#).await;
    assert_eq!(
        ws.recv_json().await,
        Some(
            json!({"status": "failed", "reason": "Invalid format for auth packet, see /doc/operator_auth.md"})
        )
    );

    // Stop: unloaded, no longer listed; stopping again has nothing to do.
    let (status, body) = node.operate("POST", &stop_path, ETH_OTHER, OTHER_KEY).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = node.operate("POST", &stop_path, ETH_OWNER, OWNER_KEY).await;
    assert_eq!(
        (status, body),
        (200, format!("Stopped VM with ref {program}"))
    );
    assert_eq!(node.get("/about/executions/list").await, (200, "{}".into()));
    let (status, body) = node.operate("POST", &stop_path, ETH_OWNER, OWNER_KEY).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "Already stopped, nothing to do")
    );
    // The logs outlive the execution; a stream of a stopped program ends after them.
    let (status, body) = node.operate("GET", &logs, ETH_OWNER, OWNER_KEY).await;
    assert!(status == 200 && body.contains("to stdout: live"), "{body}");
    let mut ws = WebSocket::connect(&node.authority, &stream_path).await;
    ws.send_text(&auth_packet(ETH_OWNER, OWNER_KEY, &stream_path))
        .await;
    let mut received = Vec::new();
    while let Some(message) = ws.recv_json().await {
        received.push(message);
    }
    assert_eq!(received.first(), Some(&json!({"status": "connected"})));
    assert_eq!(
        received.last(),
        Some(&json!({"type": "system", "message": "VM is not running, past logs sent"}))
    );

    // Reboot a stopped program: started; reboot a running one: restarted.
    let reboot = format!("{machine}/reboot");
    let (status, body) = node.operate("POST", &reboot, ETH_OWNER, OWNER_KEY).await;
    assert_eq!(
        (status, body),
        (
            200,
            format!("Starting VM (was not running) with ref {program}")
        )
    );
    assert!(node.get_json("/about/executions/list").await[&program].is_object());
    let (status, body) = node.operate("POST", &reboot, ETH_OWNER, OWNER_KEY).await;
    assert_eq!(
        (status, body),
        (200, format!("Rebooted VM with ref {program}"))
    );

    // An allocation notice starts a stopped program; a hash that is no program of this node
    // gets the reference's answer for an instance it cannot host.
    let (status, _) = node.operate("POST", &stop_path, ETH_OWNER, OWNER_KEY).await;
    assert_eq!(status, 200);
    let notify = |body: String| {
        node.http
            .post(format!("{}/control/allocation/notify", node.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let response = notify(json!({"instance": program}).to_string())
        .await
        .expect("notify");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.expect("json"),
        json!({"success": true, "successful": true, "failing": [], "errors": {}})
    );
    assert!(node.get_json("/about/executions/list").await[&program].is_object());
    let response = notify(json!({"instance": unknown}).to_string())
        .await
        .expect("notify");
    assert_eq!(response.status(), 503);
    let response = notify("not json".into()).await.expect("notify");
    assert_eq!(response.status(), 400);
    // A body past the routes' 16 KiB limit: a 413 in the same JSON shape as every error.
    let response = notify(" ".repeat(16 * 1024 + 1)).await.expect("notify");
    assert_eq!(response.status(), 413);
    let body = response.json::<Value>().await.expect("a JSON error");
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("16384")),
        "{body}"
    );

    // A program owned by a Solana wallet, read with a SOL-signed key.
    let sol = SolSigner::from_seed(&SOL_SEED);
    let sol_program = node
        .submit(&sol_message(
            &sol,
            MessageType::Program,
            program_content(&code),
        ))
        .await;
    let (status, _) = node
        .get(&format!("/vm/{sol_program}/print?text=from-sol"))
        .await;
    assert_eq!(status, 200);
    let sol_logs = format!("/control/machine/{sol_program}/logs");
    let (status, body) = node.operate("GET", &sol_logs, SOL_OWNER, SOL_KEY).await;
    assert!(
        status == 200 && body.contains("to stdout: from-sol"),
        "{status} {body}"
    );
    let (status, _) = node.operate("GET", &sol_logs, ETH_OWNER, OWNER_KEY).await;
    assert_eq!(status, 403);
    let (status, _) = node.operate("GET", &logs, SOL_OWNER, SOL_KEY).await;
    assert_eq!(status, 403);

    // A browser's preflight is answered.
    let preflight = node
        .http
        .request(reqwest::Method::OPTIONS, format!("{}{logs}", node.url))
        .header("origin", "https://console.example.org")
        .header("access-control-request-method", "GET")
        .header(
            "access-control-request-headers",
            "x-signedpubkey,x-signedoperation",
        )
        .send()
        .await
        .expect("preflight");
    assert_eq!(preflight.status(), 200);
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://console.example.org"
    );
}

/// The first message of a log stream, as the SDK's `VmClient.get_logs` sends it.
fn auth_packet(pubkey: &str, key: u8, path: &str) -> String {
    let operation = ephemeral(key).signed_operation("GET", path, DOMAIN, now());
    json!({"auth": {
        "X-SignedPubKey": serde_json::from_str::<Value>(pubkey).expect("json"),
        "X-SignedOperation": serde_json::from_str::<Value>(&operation).expect("json"),
    }})
    .to_string()
}

/// A minimal WebSocket client: the handshake, masked text frames out, frames in.
struct WebSocket {
    stream: tokio::net::TcpStream,
}

impl WebSocket {
    async fn connect(authority: &str, path: &str) -> WebSocket {
        let mut stream = tokio::net::TcpStream::connect(authority)
            .await
            .expect("connect");
        let request = format!(
            "GET {path} HTTP/1.1\r\nhost: {authority}\r\nconnection: Upgrade\r\n\
             upgrade: websocket\r\nsec-websocket-version: 13\r\n\
             sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte).await.expect("handshake");
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        WebSocket { stream }
    }

    async fn send_text(&mut self, text: &str) {
        let mask = [0x12u8, 0x34, 0x56, 0x78];
        let mut frame = vec![0x81];
        let len = text.len();
        if len < 126 {
            frame.push(0x80 | len as u8);
        } else {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        frame.extend_from_slice(&mask);
        frame.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&frame).await.expect("send");
    }

    /// The next text message as JSON; `None` once the server closes.
    async fn recv_json(&mut self) -> Option<Value> {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(10), self.frame())
                .await
                .expect("a frame within 10 s")?;
            match frame.0 {
                0x1 => return Some(serde_json::from_slice(&frame.1).expect("json")),
                0x8 => return None,
                _ => {}
            }
        }
    }

    async fn frame(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut head = [0u8; 2];
        self.stream.read_exact(&mut head).await.ok()?;
        let mut len = u64::from(head[1] & 0x7f);
        if len == 126 {
            let mut ext = [0u8; 2];
            self.stream.read_exact(&mut ext).await.ok()?;
            len = u64::from(u16::from_be_bytes(ext));
        } else if len == 127 {
            let mut ext = [0u8; 8];
            self.stream.read_exact(&mut ext).await.ok()?;
            len = u64::from_be_bytes(ext);
        }
        let mut payload = vec![0u8; usize::try_from(len).ok()?];
        self.stream.read_exact(&mut payload).await.ok()?;
        Some((head[0] & 0x0f, payload))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executions_are_listed_only_while_programs_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = start_node(dir.path());
    assert_eq!(node.get("/about/executions/list").await, (200, "{}".into()));
    assert_eq!(
        node.get("/v2/about/executions/list").await,
        (200, "{}".into())
    );
    // Wrong methods are JSON errors too.
    let response = node
        .http
        .post(format!("{}/about/executions/list", node.url))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 405);
    assert!(response.text().await.expect("body").contains("error"));
    let answered = wait_until(Duration::from_secs(2), || async {
        node.get("/control/machine/x/logs").await.0 == 400
    })
    .await;
    assert!(answered, "an unsigned request is refused at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_domain_refuses_operations_signed_for_another() {
    let unknown = format!("/control/machine/{}/logs", "c".repeat(64));
    // Without `compute.domain` the request's host is the domain: authenticated, then 404.
    let dir = tempfile::tempdir().expect("tempdir");
    let node = start_node(dir.path());
    let (status, body) = node.operate("GET", &unknown, ETH_OWNER, OWNER_KEY).await;
    assert_eq!(status, 404, "{body}");
    // With it, an operation signed for this host (127.0.0.1) but not for that name is refused.
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("raleph.toml");
    std::fs::write(&config, "[compute]\ndomain = \"node.example.org\"\n").expect("config");
    let running = RunningNode::start_with(
        &dir.path().join("data"),
        &["--config", config.to_str().expect("path")],
    );
    let url = running.url.clone();
    let pinned = Node {
        authority: url.trim_start_matches("http://").to_owned(),
        url,
        _node: running,
        http: reqwest::Client::new(),
    };
    let (status, body) = pinned.operate("GET", &unknown, ETH_OWNER, OWNER_KEY).await;
    assert_eq!(status, 401, "{body}");
}
