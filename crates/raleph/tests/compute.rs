//! Programs run by the real node: a WebAssembly component (built from
//! `crates/raleph-compute/guest` by this test) deployed with real signed STORE and PROGRAM
//! messages, called over HTTP, updated, triggered and forgotten.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use raleph_crypto::EthSigner;
use raleph_message::MessageType;
use reqwest::multipart::{Form, Part};
use serde_json::{Map, Value, json};
use sha2::Digest;
use support::{RunningNode, guest_wasm, now, wait_until};

fn sha256(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

struct Deployer {
    url: String,
    signer: EthSigner,
    http: reqwest::Client,
}

impl Deployer {
    /// Uploads bytes with a signed STORE (`reference`: a new version of that STORE).
    async fn store(&self, bytes: &[u8], reference: Option<&str>) -> String {
        let mut content = Map::new();
        content.insert("item_type".into(), "storage".into());
        content.insert("item_hash".into(), sha256(bytes).into());
        if let Some(reference) = reference {
            content.insert("ref".into(), reference.into());
        }
        let store = raleph_sdk::signed_message(
            &self.signer,
            MessageType::Store,
            content,
            Some("TEST"),
            now(),
        );
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
        assert_eq!(
            response.status(),
            200,
            "{}",
            response.text().await.unwrap_or_default()
        );
        store["item_hash"].as_str().expect("hash").to_owned()
    }

    async fn submit(&self, message_type: MessageType, content: Map<String, Value>) -> String {
        let message =
            raleph_sdk::signed_message(&self.signer, message_type, content, Some("TEST"), now());
        let (status, body) = raleph_sdk::Client::new(&self.url)
            .submit(&message, true)
            .await
            .expect("submit");
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["message_status"], "processed", "{body}");
        message["item_hash"].as_str().expect("hash").to_owned()
    }

    async fn program(&self, spec: &raleph_sdk::ProgramSpec) -> String {
        self.submit(MessageType::Program, spec.content()).await
    }

    /// Polls `path` until it answers `expected` (a change takes effect once the node's
    /// compute has seen the processed message, a few milliseconds after the reply).
    async fn eventually(&self, path: &str, expected: (u16, &str)) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let got = self.get(path).await;
            if got.0 == expected.0 && (expected.1.is_empty() || got.1 == expected.1) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{path}: expected {expected:?}, last answer {got:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
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
}

fn program_spec(code_ref: &str) -> raleph_sdk::ProgramSpec {
    let mut variables = Map::new();
    variables.insert("GREETING".into(), "hi".into());
    raleph_sdk::ProgramSpec {
        code_ref: code_ref.to_owned(),
        encoding: "plain".into(),
        entrypoint: "wasi:http/proxy".into(),
        use_latest: true,
        runtime_ref: raleph_compute::runtimes::WASM_RUNTIME.clone(),
        runtime_comment: "wasi-http".into(),
        memory_mib: 64,
        vcpus: 2,
        seconds: 2,
        internet: false,
        variables,
        on_message: Vec::new(),
        volumes: vec![
            json!({"mount": "/state", "name": "state", "persistence": "host", "size_mib": 8}),
        ],
        allow_amend: true,
        replaces: None,
    }
}

/// A loopback HTTP server answering "outside" to anything: what a program with internet may
/// reach and one without may not.
async fn outside_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buffer = [0u8; 4096];
                let _ = socket.read(&mut buffer).await;
                let _ = socket
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\nconnection: close\r\n\r\noutside",
                    )
                    .await;
            });
        }
    });
    format!("{addr}")
}

fn start_node(dir: &Path) -> RunningNode {
    let config = dir.join("raleph.toml");
    std::fs::write(
        &config,
        "[compute]\nallow_private_destinations = true\nidle_timeout_secs = 30.0\n",
    )
    .expect("config");
    RunningNode::start_with(
        &dir.join("data"),
        &["--config", config.to_str().expect("path")],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wasm_program_answers_is_updated_and_forgotten() {
    let v1 = guest_wasm(1);
    let v2 = guest_wasm(2);
    let dir = tempfile::tempdir().expect("tempdir");
    let node = start_node(dir.path());
    let owner = Deployer {
        url: node.url.clone(),
        signer: EthSigner::new_random(),
        http: reqwest::Client::new(),
    };
    let code = owner.store(&v1, None).await;
    let program = owner.program(&program_spec(&code)).await;
    let vm = format!("/vm/{program}");

    // Answers, with the path it was called on and the reference's headers.
    let response = owner
        .http
        .get(format!("{}{vm}/hello?x=1", node.url))
        .send()
        .await
        .expect("call");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["aleph-program-itemhash"],
        program.as_str()
    );
    assert_eq!(response.headers()["aleph-program-code-ref"], code.as_str());
    assert_eq!(
        response.text().await.unwrap(),
        "hello from /hello?x=1 (version 1)"
    );

    // Method, body, repeated headers and the forwarded prefix reach the program.
    let echoed = owner
        .http
        .post(format!("{}{vm}/echo?q=2", node.url))
        .header("x-many", "one")
        .header("x-many", "two")
        .body(vec![b'z'; 100_000])
        .send()
        .await
        .expect("echo")
        .text()
        .await
        .unwrap();
    for line in [
        "method=POST",
        "target=/echo?q=2",
        "body-bytes=100000",
        "x-many: one",
        "x-many: two",
    ] {
        assert!(echoed.contains(line), "{line} in {echoed}");
    }
    assert!(
        echoed.contains(&format!("x-forwarded-prefix: {vm}")),
        "{echoed}"
    );

    // Repeated response headers are kept, and the status.
    let cookies = owner
        .http
        .get(format!("{}{vm}/cookies", node.url))
        .send()
        .await
        .unwrap();
    assert_eq!(cookies.status(), 201);
    let set: Vec<_> = cookies.headers().get_all("set-cookie").iter().collect();
    assert_eq!(set.len(), 2);

    // Variables and the node's own values are the environment.
    assert_eq!(
        owner.get(&format!("{vm}/env?name=GREETING")).await,
        (200, "hi".into())
    );
    assert_eq!(
        owner.get(&format!("{vm}/env?name=ALEPH_ITEM_HASH")).await,
        (200, program.clone())
    );

    // A streamed body arrives whole.
    let (status, streamed) = owner.get(&format!("{vm}/stream?n=50")).await;
    assert_eq!(status, 200);
    assert_eq!(streamed.lines().count(), 50);

    // Host-based routing: the first label is the base32 of the hash.
    let label = raleph_compute::http::base32_encode(&hex::decode(&program).unwrap());
    let by_host = owner
        .http
        .get(format!("{}/by-host", node.url))
        .header("host", format!("{label}.localhost"))
        .send()
        .await
        .unwrap();
    assert_eq!(by_host.status(), 200);
    assert_eq!(
        by_host.text().await.unwrap(),
        "hello from /by-host (version 1)"
    );

    // Runaway programs: a loop is stopped at resources.seconds, a memory hog at
    // resources.memory, a panic is a 500 without details; the node goes on answering.
    let started = Instant::now();
    let (status, body) = owner.get(&format!("{vm}/loop")).await;
    assert_eq!(status, 504, "{body}");
    assert!(started.elapsed() < Duration::from_secs(10));
    for path in ["/bomb", "/panic"] {
        let (status, body) = owner.get(&format!("{vm}{path}")).await;
        assert_eq!(status, 500, "{path}: {body}");
        let body: Value = serde_json::from_str(&body).expect("json error");
        assert!(body["error_id"].is_string(), "{body}");
        assert!(!body.to_string().contains("panics on purpose"), "{body}");
    }
    assert_eq!(owner.get(&format!("{vm}/version")).await, (200, "1".into()));

    // Without internet: the outside is refused, the node's API is reachable.
    let outside = outside_server().await;
    let (status, body) = owner
        .get(&format!("{vm}/fetch?url=http://{outside}/"))
        .await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body.contains("refused") || body.contains("Denied"),
        "{body}"
    );
    let (status, body) = owner
        .get(&format!(
            "{vm}/fetch?url=http://aleph.api/api/v0/messages/{program}"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.starts_with("200 ") && body.contains(&program),
        "{body}"
    );

    // A persistent volume keeps what is written; the code is read-only... and absent here.
    let written = owner
        .http
        .post(format!("{}{vm}/write?path=/state/note", node.url))
        .body("kept")
        .send()
        .await
        .unwrap();
    assert_eq!(written.status(), 200);
    assert_eq!(
        owner.get(&format!("{vm}/read?path=/state/note")).await,
        (200, "kept".into())
    );
    let (status, _) = owner.get(&format!("{vm}/read?path=/etc/passwd")).await;
    assert_eq!(status, 404);
    // Past its size_mib (8) the volume turns read-only; what it holds stays readable.
    let big = owner
        .http
        .post(format!("{}{vm}/write?path=/state/big", node.url))
        .body(vec![b'x'; 9 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 200);
    let after = owner
        .http
        .post(format!("{}{vm}/write?path=/state/more", node.url))
        .body("more")
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 403, "a full volume is read-only");
    assert_eq!(
        owner.get(&format!("{vm}/read?path=/state/note")).await,
        (200, "kept".into())
    );

    // A new version of the code (a STORE amending the code's STORE) answers at once.
    owner.store(&v2, Some(&code)).await;
    owner.eventually(&format!("{vm}/version"), (200, "2")).await;
    assert_eq!(
        owner.get(&format!("{vm}/read?path=/state/note")).await,
        (200, "kept".into())
    );

    // An update of the PROGRAM (replaces) answers for the original at once.
    let mut update = program_spec(&code);
    update.variables.insert("GREETING".into(), "bye".into());
    update.replaces = Some(program.clone());
    let update_hash = owner.program(&update).await;
    owner
        .eventually(&format!("{vm}/env?name=GREETING"), (200, "bye"))
        .await;

    // Unknown and invalid hashes.
    let unknown = "a".repeat(64);
    assert_eq!(owner.get(&format!("/vm/{unknown}/")).await.0, 404);
    assert_eq!(owner.get("/vm/not-a-hash/").await.0, 400);

    // FORGET the original: it and its update stop answering.
    let mut forget = Map::new();
    forget.insert("hashes".into(), json!([program]));
    owner.submit(MessageType::Forget, forget).await;
    owner.eventually(&format!("{vm}/version"), (404, "")).await;
    owner
        .eventually(&format!("/vm/{update_hash}/version"), (404, ""))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_internet_and_listings() {
    let v1 = guest_wasm(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let node = start_node(dir.path());
    let owner = Deployer {
        url: node.url.clone(),
        signer: EthSigner::new_random(),
        http: reqwest::Client::new(),
    };
    let code = owner.store(&v1, None).await;

    // With internet (and private destinations allowed by this node's config).
    let mut spec = program_spec(&code);
    spec.internet = true;
    spec.on_message = vec![json!({"channel": "TRIGGERS"})];
    let program = owner.program(&spec).await;
    let vm = format!("/vm/{program}");
    let outside = outside_server().await;
    assert_eq!(
        owner
            .get(&format!("{vm}/fetch?url=http://{outside}/"))
            .await,
        (200, "200 outside".into())
    );

    // Listed where the reference lists them.
    let (status, listed) = owner.get("/api/v0/programs/on/message").await;
    assert_eq!(status, 200);
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed[0]["item_hash"], program.as_str());
    assert_eq!(
        listed[0]["content"]["on"]["message"][0]["channel"],
        "TRIGGERS"
    );
    let (_, runtimes) = owner.get("/api/v0/runtimes").await;
    let runtimes: Value = serde_json::from_str(&runtimes).unwrap();
    assert_eq!(
        runtimes[0]["ref"],
        raleph_compute::runtimes::WASM_RUNTIME.as_str()
    );
    assert_eq!(runtimes[0]["kind"], "wasm");

    // A message in the subscribed channel reaches the program; another does not.
    let post = |channel: &'static str, text: &'static str| {
        let mut content = Map::new();
        content.insert("type".into(), "note".into());
        content.insert("content".into(), json!({"text": text}));
        raleph_sdk::signed_message(
            &owner.signer,
            MessageType::Post,
            content,
            Some(channel),
            now(),
        )
    };
    let client = raleph_sdk::Client::new(&node.url);
    client
        .submit(&post("OTHER", "ignored"), true)
        .await
        .expect("post");
    let wanted = post("TRIGGERS", "delivered");
    client.submit(&wanted, true).await.expect("post");
    let wanted_hash = wanted["item_hash"].as_str().unwrap().to_owned();
    let delivered = wait_until(Duration::from_secs(10), || async {
        let (status, body) = owner.get(&format!("{vm}/read?path=/state/messages")).await;
        status == 200 && body.contains(&wanted_hash)
    })
    .await;
    assert!(delivered, "the trigger reached the program");
    let (_, seen) = owner.get(&format!("{vm}/read?path=/state/messages")).await;
    assert!(!seen.contains("ignored"), "{seen}");
    assert_eq!(seen.lines().count(), 1, "{seen}");
}

/// Runs the `raleph` client and returns its stdout, failing on a non-zero exit.
fn raleph(args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_raleph"))
        .args(args)
        .output()
        .expect("run raleph");
    assert!(
        output.status.success(),
        "raleph {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_deploys_components_and_bundles() {
    let wasm = guest_wasm(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let node = start_node(dir.path());
    let key = dir.path().join("key.hex");
    let key = key.to_str().expect("path");
    raleph(&["key", "new", "--out", key]);
    let component = dir.path().join("app.wasm");
    std::fs::write(&component, &wasm).expect("write");
    let deployed = raleph(&[
        "program",
        "deploy",
        component.to_str().expect("path"),
        "--env",
        "COLOR=blue",
        "--key",
        key,
        "--api",
        &node.url,
    ]);
    let hash = deployed.split_whitespace().next().expect("hash").to_owned();
    assert!(deployed.contains("processed"), "{deployed}");
    let called = raleph(&[
        "program",
        "call",
        &hash,
        "/env?name=COLOR",
        "--api",
        &node.url,
    ]);
    assert_eq!(called, "blue");
    let echoed = raleph(&[
        "program",
        "call",
        &hash,
        "/echo",
        "-X",
        "PUT",
        "-d",
        "payload",
        "-H",
        "X-Test: 7",
        "--api",
        &node.url,
    ]);
    assert!(
        echoed.contains("method=PUT") && echoed.contains("body=payload"),
        "{echoed}"
    );
    assert!(echoed.contains("x-test: 7"), "{echoed}");

    // A bundle: a directory with app.wasm; its other files are read-only under /app.
    let bundle = dir.path().join("site");
    std::fs::create_dir_all(bundle.join("static")).expect("mkdir");
    std::fs::write(bundle.join("app.wasm"), &wasm).expect("write");
    std::fs::write(bundle.join("static/page.html"), "<p>asset</p>").expect("write");
    let deployed = raleph(&[
        "program",
        "deploy",
        bundle.to_str().expect("path"),
        "--key",
        key,
        "--api",
        &node.url,
    ]);
    let bundled = deployed.split_whitespace().next().expect("hash").to_owned();
    let asset = raleph(&[
        "program",
        "call",
        &bundled,
        "/read?path=/app/static/page.html",
        "--api",
        &node.url,
    ]);
    assert_eq!(asset, "<p>asset</p>");
    let http = reqwest::Client::new();
    let written = http
        .post(format!("{}/vm/{bundled}/write?path=/app/new", node.url))
        .body("x")
        .send()
        .await
        .expect("call");
    assert_eq!(written.status(), 403, "the bundle is read-only");

    // The owner reads what the program printed; another key may not.
    raleph(&[
        "program",
        "call",
        &hash,
        "/print?text=visible",
        "--api",
        &node.url,
    ]);
    let logs = raleph(&["program", "logs", &hash, "--key", key, "--api", &node.url]);
    assert!(logs.contains("stdout: to stdout: visible"), "{logs}");
    assert!(logs.contains("stderr: to stderr"), "{logs}");
    let stranger = dir.path().join("stranger.hex");
    let stranger = stranger.to_str().expect("path");
    raleph(&["key", "new", "--out", stranger]);
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_raleph"))
        .args([
            "program", "logs", &hash, "--key", stranger, "--api", &node.url,
        ])
        .output()
        .expect("run raleph");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("403"));
    let stopped = raleph(&["program", "stop", &hash, "--key", key, "--api", &node.url]);
    assert!(stopped.contains("Stopped"), "{stopped}");
    assert_eq!(
        raleph(&[
            "program",
            "call",
            &hash,
            "/env?name=COLOR",
            "--api",
            &node.url
        ]),
        "blue"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_node_limits_a_clear_503() {
    let wasm = guest_wasm(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("raleph.toml");
    // One program loaded at a time; a busy one cannot be unloaded for another.
    std::fs::write(
        &config,
        "[compute]\nmax_programs = 1\nqueue_wait_ms = 200\n",
    )
    .expect("config");
    let node = RunningNode::start_with(
        &dir.path().join("data"),
        &["--config", config.to_str().expect("path")],
    );
    let owner = Deployer {
        url: node.url.clone(),
        signer: EthSigner::new_random(),
        http: reqwest::Client::new(),
    };
    let code = owner.store(&wasm, None).await;
    let mut spec = program_spec(&code);
    spec.vcpus = 1;
    spec.seconds = 3;
    let first = owner.program(&spec).await;
    spec.variables.insert("GREETING".into(), "second".into());
    let second = owner.program(&spec).await;
    assert_eq!(owner.get(&format!("/vm/{second}/version")).await.0, 200);

    // The first program runs a loop (until its 3 s deadline): it is loaded and busy.
    let busy = {
        let http = owner.http.clone();
        let url = format!("{}/vm/{first}/loop", node.url);
        tokio::spawn(async move { http.get(url).send().await.map(|r| r.status().as_u16()) })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Its one vcpu is taken: another request to it waits, then 503.
    let (status, body) = owner.get(&format!("/vm/{first}/version")).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("busy"), "{body}");
    // The second program cannot be loaded while the only slot is busy.
    let (status, body) = owner.get(&format!("/vm/{second}/version")).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("insufficient capacity"), "{body}");
    assert_eq!(busy.await.expect("join").expect("loop"), 504);
    // Once the first is idle again, the second takes its place.
    assert_eq!(
        owner.get(&format!("/vm/{second}/version")).await,
        (200, "1".into())
    );
}
