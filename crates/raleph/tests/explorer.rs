//! The explorer, end to end in a real browser: a node holding real signed messages (among
//! them one whose content, channel, post type and tags carry script and HTML), and Debian's
//! Chromium driven by playwright-core (`web/tests/explorer.mjs`) through every page: it
//! follows links, submits searches, sees a new message arrive live, checks that nothing the
//! messages carry runs, and saves screenshots it checks are not blank.
//!
//! With `RALEPH_ANVIL` (as for the anchoring tests), the node anchors its messages on a local
//! chain, and the message page's confirmations and proof are checked too.
//!
//! Needs `RALEPH_PLAYWRIGHT_DIR` and `RALEPH_CHROMIUM`, as `scripts/browser-tools.sh`
//! prints them (`scripts/test.sh` does). Without them the test is skipped, unless
//! `RALEPH_REQUIRE_BROWSER=1`, which makes it fail.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use raleph_crypto::EthSigner;
use raleph_message::MessageType;
use raleph_sdk::{Client, signed_message};
use serde_json::{Map, Value, json};
use support::chain::Chain;
use support::{RunningNode, now};

/// What the browser script is given: the node, and the hashes of what it holds.
struct Fixture {
    values: Map<String, Value>,
}

impl Fixture {
    fn set(&mut self, name: &str, value: impl Into<Value>) {
        self.values.insert(name.to_owned(), value.into());
    }
}

fn browser_tools() -> Option<(PathBuf, PathBuf)> {
    let playwright = std::env::var_os("RALEPH_PLAYWRIGHT_DIR").map(PathBuf::from);
    let chromium = std::env::var_os("RALEPH_CHROMIUM").map(PathBuf::from);
    match (playwright, chromium) {
        (Some(p), Some(c)) if p.join("node_modules/playwright-core").is_dir() && c.exists() => {
            Some((p, c))
        }
        _ => {
            assert!(
                std::env::var_os("RALEPH_REQUIRE_BROWSER").is_none(),
                "RALEPH_REQUIRE_BROWSER is set but RALEPH_PLAYWRIGHT_DIR/RALEPH_CHROMIUM do not \
                 name an installed playwright-core and browser: run scripts/browser-tools.sh"
            );
            None
        }
    }
}

fn content(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => unreachable!("contents are objects"),
    }
}

async fn submit(client: &Client, message: &Value, expect: u16) -> String {
    let (status, body) = client.submit(message, true).await.expect("submit");
    assert_eq!(status, expect, "{body}");
    message["item_hash"].as_str().expect("hash").to_owned()
}

/// Markup and script a stranger could write anywhere a message lets them. Each payload sets
/// `window.__pwned` if it ever runs.
const SCRIPT: &str = "<script>window.__pwned = 'script'</script>";
const IMG: &str = "<img src=x onerror=\"window.__pwned = 'img'\">";
const SVG: &str = "<svg onload=\"window.__pwned = 'svg'\"></svg>";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_explorer_shows_every_page_in_a_real_browser_and_runs_nothing_it_shows() {
    let Some((playwright, chromium)) = browser_tools() else {
        eprintln!("skipped: no browser (run scripts/browser-tools.sh)");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    // With anvil, the node anchors its messages, so that pages show confirmations and proofs.
    let chain = Chain::start().await;
    let node = match &chain {
        Some(chain) => chain.node("explorer", true, ""),
        None => RunningNode::start(&dir.path().join("node")),
    };
    let client = Client::new(&node.url);
    let signer = EthSigner::new_random();
    let mut fixture = Fixture { values: Map::new() };
    fixture.set("url", node.url.clone());
    fixture.set("address", signer.address());
    fixture.set("script", SCRIPT);
    let t = now() - 60.0;

    let hostile = signed_message(
        &signer,
        MessageType::Post,
        content(json!({
            "type": format!("note{SVG}"),
            "content": {"title": IMG, "body": SCRIPT, "tags": [IMG, "explorer-tag"]},
        })),
        Some(&format!("chan{SCRIPT}")),
        t,
    );
    fixture.set("hostile", submit(&client, &hostile, 200).await);
    fixture.set("hostile_channel", format!("chan{SCRIPT}"));

    let note = signed_message(
        &signer,
        MessageType::Post,
        content(
            json!({"type": "note", "content": {"text": "first version", "tags": ["explorer-tag"]}}),
        ),
        Some("EXPLORER"),
        t + 1.0,
    );
    let note_hash = submit(&client, &note, 200).await;
    let amend = signed_message(
        &signer,
        MessageType::Post,
        content(json!({"type": "amend", "ref": note_hash, "content": {"text": "second version"}})),
        Some("EXPLORER"),
        t + 2.0,
    );
    fixture.set("amend", submit(&client, &amend, 200).await);
    if let Some(chain) = &chain {
        assert!(
            chain
                .until_confirmed(&[&node], std::slice::from_ref(&note_hash))
                .await,
            "the post was anchored"
        );
        fixture.set("anchored", note_hash.clone());
    }
    fixture.set("note", note_hash);

    let aggregate = signed_message(
        &signer,
        MessageType::Aggregate,
        content(json!({"key": "profile", "content": {"name": IMG, "level": 3}})),
        Some("EXPLORER"),
        t + 3.0,
    );
    fixture.set("aggregate", submit(&client, &aggregate, 200).await);

    // A file, pinned by a STORE message.
    let file = dir.path().join("hello.txt");
    let file_bytes = b"hello from the explorer test\n".repeat(100);
    std::fs::write(&file, &file_bytes).expect("write file");
    let file_hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&file_bytes));
    let store = raleph_sdk::store_message(&signer, &file_hash, Some("EXPLORER"), t + 4.0);
    let (status, body) = client
        .upload_file(&file, Some(&store), |_| {})
        .await
        .expect("upload");
    assert_eq!(status, 200, "{body}");
    fixture.set("store", store["item_hash"].as_str().expect("hash"));
    fixture.set("file_hash", file_hash.clone());
    fixture.set("file_size", file_bytes.len());

    // A program running that file (it is not a component: the page only links it).
    let program = signed_message(
        &signer,
        MessageType::Program,
        raleph_sdk::ProgramSpec {
            code_ref: store["item_hash"].as_str().expect("hash").to_owned(),
            encoding: "plain".into(),
            entrypoint: "wasi:http/proxy".into(),
            use_latest: false,
            runtime_ref: raleph_compute::runtimes::WASM_RUNTIME.clone(),
            runtime_comment: "wasi-http".into(),
            memory_mib: 64,
            vcpus: 1,
            seconds: 2,
            internet: false,
            variables: Map::new(),
            on_message: Vec::new(),
            volumes: Vec::new(),
            allow_amend: false,
            replaces: None,
        }
        .content(),
        Some("EXPLORER"),
        t + 5.0,
    );
    fixture.set("program", submit(&client, &program, 200).await);

    // A post, then the FORGET that deletes it.
    let doomed = signed_message(
        &signer,
        MessageType::Post,
        content(json!({"type": "note", "content": {"text": "soon gone"}})),
        Some("EXPLORER"),
        t + 6.0,
    );
    let doomed_hash = submit(&client, &doomed, 200).await;
    let forget = signed_message(
        &signer,
        MessageType::Forget,
        content(json!({"hashes": [doomed_hash], "reason": "explorer test"})),
        Some("EXPLORER"),
        t + 7.0,
    );
    fixture.set("forget", submit(&client, &forget, 200).await);
    fixture.set("forgotten", doomed_hash);

    // Content too long to show at once (the page cuts it, and shows all on request).
    let big = signed_message(
        &signer,
        MessageType::Post,
        content(json!({"type": "note", "content": {"text": "x".repeat(60_000)}})),
        Some("EXPLORER"),
        t + 8.0,
    );
    fixture.set("big", submit(&client, &big, 200).await);

    // An amend with nothing to amend: rejected for good (invalid format: an amend needs a ref).
    let rejected = signed_message(
        &signer,
        MessageType::Post,
        content(json!({"type": "amend", "content": {"text": "no target"}})),
        Some("EXPLORER"),
        t + 9.0,
    );
    fixture.set("rejected", submit(&client, &rejected, 422).await);

    // Signed now, sent by the browser script while the front page is open.
    let live = signed_message(
        &signer,
        MessageType::Post,
        content(json!({"type": "note", "content": {"text": "arrived live"}})),
        Some("EXPLORER"),
        now(),
    );
    fixture.set("live_hash", live["item_hash"].clone());
    fixture.set("live", live);

    let screenshots = dir.path().join("screenshots");
    std::fs::create_dir_all(&screenshots).expect("screenshots dir");
    fixture.set("screenshots", screenshots.to_string_lossy().into_owned());
    let fixture_path = dir.path().join("fixture.json");
    std::fs::write(&fixture_path, Value::Object(fixture.values).to_string()).expect("fixture");

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/tests/explorer.mjs");
    let log_path = dir.path().join("browser.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let mut child = std::process::Command::new("node")
        .arg(&script)
        .arg(&fixture_path)
        .env("RALEPH_PLAYWRIGHT_DIR", &playwright)
        .env("RALEPH_CHROMIUM", &chromium)
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("run node (Node.js)");
    // A deadline on the whole script: a browser that hangs fails the test, never stalls CI.
    let deadline = std::time::Instant::now() + Duration::from_secs(240);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("{}", std::fs::read_to_string(&log_path).unwrap_or_default());
    // RALEPH_KEEP_SCREENSHOTS=DIR keeps them, to look at.
    if let Some(keep) = std::env::var_os("RALEPH_KEEP_SCREENSHOTS") {
        let keep = PathBuf::from(keep);
        std::fs::create_dir_all(&keep).expect("keep dir");
        for entry in std::fs::read_dir(&screenshots).expect("screenshots") {
            let entry = entry.expect("entry");
            std::fs::copy(entry.path(), keep.join(entry.file_name())).expect("copy");
        }
    }
    let status = status.expect("the browser script finished within 4 minutes");
    assert!(status.success(), "the browser script failed");
    for page in [
        "home", "message", "address", "search", "node", "list", "docs",
    ] {
        let shot = screenshots.join(format!("{page}.png"));
        let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
        assert!(
            size > 1000,
            "no screenshot of the {page} page at {}",
            shot.display()
        );
    }
}
