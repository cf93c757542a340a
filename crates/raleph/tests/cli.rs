//! The `raleph` client verbs, run as the real binary against a real node: every verb, its
//! `--json` output checked against what the node serves, and its errors.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};
use support::RunningNode;

const TEST_PHRASE: &str = "test test test test test test test test test test test junk";
const TEST_ADDRESS: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";

/// The client, with a profile directory of its own and none of the caller's settings.
struct Raleph {
    config_home: PathBuf,
    /// Always passed (`--api`), unless empty.
    api: String,
    env: Vec<(String, String)>,
}

impl Raleph {
    fn new(dir: &Path, api: &str) -> Raleph {
        Raleph {
            config_home: dir.join("config"),
            api: api.to_owned(),
            env: Vec::new(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_raleph"));
        for name in [
            "RALEPH_API",
            "RALEPH_KEY",
            "RALEPH_CHAIN",
            "RALEPH_CHANNEL",
            "RALEPH_PROFILE",
            "RALEPH_CLIENT_CONFIG",
            "RUST_BACKTRACE",
        ] {
            command.env_remove(name);
        }
        command.env("XDG_CONFIG_HOME", &self.config_home);
        for (name, value) in &self.env {
            command.env(name, value);
        }
        if !self.api.is_empty() {
            command.args(["--api", &self.api]);
        }
        command.args(args);
        command
    }

    fn output(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run raleph");
        let mut input = child.stdin.take().expect("stdin");
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).expect("write stdin");
        }
        drop(input);
        child.wait_with_output().expect("wait for raleph")
    }

    /// Runs a verb that must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        self.ok_with_stdin(args, None)
    }

    fn ok_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> String {
        let output = self.output(args, stdin);
        assert!(
            output.status.success(),
            "raleph {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf-8")
    }

    /// Runs a verb with `--json`; its parsed output.
    fn json(&self, args: &[&str]) -> Value {
        let mut with_json = args.to_vec();
        with_json.push("--json");
        let out = self.ok(&with_json);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("raleph {args:?}: {e}: {out}"))
    }

    /// Runs a verb that must fail cleanly (exit 1, no panic); its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let output = self.output(args, None);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(1), "raleph {args:?}: {stderr}");
        assert!(
            !stderr.contains("panicked"),
            "raleph {args:?} panicked: {stderr}"
        );
        stderr
    }
}

async fn node_json(node: &RunningNode, path: &str) -> Value {
    reqwest::get(format!("{}{path}", node.url))
        .await
        .expect("ask the node")
        .json()
        .await
        .expect("json")
}

fn key_arg(path: &Path) -> String {
    path.to_str().expect("utf-8 path").to_owned()
}

#[test]
fn keys_are_made_imported_and_shown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let raleph = Raleph::new(dir.path(), "");
    let eth = key_arg(&dir.path().join("eth.hex"));

    let made = raleph.json(&["key", "new", "--key", &eth]);
    assert_eq!(made["chain"], "ETH");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&eth)
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let shown = raleph.json(&["key", "show", "--key", &eth]);
    assert_eq!(shown["address"], made["address"]);
    assert_eq!(shown["public_key"], made["public_key"]);
    let error = raleph.fails(&["key", "new", "--key", &eth]);
    assert!(error.contains("never overwritten"), "{error}");
    let again = raleph.json(&["key", "show", "--key", &eth]);
    assert_eq!(again["address"], made["address"], "the key is unchanged");

    // A mnemonic on stdin, never on the command line.
    let imported = key_arg(&dir.path().join("imported.hex"));
    let out = raleph.ok_with_stdin(
        &["key", "import", "--key", &imported, "--json"],
        Some(&format!("{TEST_PHRASE}\n")),
    );
    let out: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(out["address"], TEST_ADDRESS);
    assert_eq!(
        raleph.json(&["key", "show", "--key", &imported])["address"],
        TEST_ADDRESS
    );

    // SOL: a fresh key, and the wallets' account of a published phrase.
    let sol = key_arg(&dir.path().join("sol.json"));
    let made = raleph.json(&["key", "new", "--chain", "SOL", "--key", &sol]);
    assert_eq!(made["chain"], "SOL");
    assert_eq!(made["address"], made["public_key"]);
    // The file is SOL by itself (a solana-keygen keypair): no --chain needed to read it.
    assert_eq!(raleph.json(&["key", "show", "--key", &sol])["chain"], "SOL");
    let phrase_file = dir.path().join("phrase.txt");
    std::fs::write(
        &phrase_file,
        "have work cattle cream victory just garden pilot lonely fiscal rough winner",
    )
    .expect("write");
    let sol_imported = raleph.json(&[
        "key",
        "import",
        "--chain",
        "SOL",
        "--from-file",
        &key_arg(&phrase_file),
        "--key",
        &key_arg(&dir.path().join("sol2.json")),
    ]);
    assert_eq!(
        sol_imported["address"],
        "Bsw8DaAn7tb7n4AuP1WWVDS4BjEW3EVKnDwobqx8WYFC"
    );

    // Bad input: clear errors that say what to do.
    let missing = key_arg(&dir.path().join("missing.hex"));
    assert!(
        raleph
            .fails(&["key", "show", "--key", &missing])
            .contains("raleph key new")
    );
    assert!(
        raleph
            .fails(&["key", "new", "--chain", "DOT", "--key", &missing])
            .contains("ETH or SOL")
    );
    let bad = raleph.output(&["key", "import", "--key", &missing], Some("not a key\n"));
    assert_eq!(bad.status.code(), Some(1));
    assert!(!Path::new(&missing).exists());
}

#[test]
fn completions_are_printed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let raleph = Raleph::new(dir.path(), "");
    let bash = raleph.ok(&["completions", "bash"]);
    assert!(
        bash.contains("raleph") && bash.contains("aggregate"),
        "{bash}"
    );
    assert!(!raleph.ok(&["completions", "zsh"]).is_empty());
    assert!(!raleph.ok(&["completions", "fish"]).is_empty());
}

#[test]
fn profiles_apply_below_flags_and_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut raleph = Raleph::new(dir.path(), "");
    let shown = raleph.json(&["config", "show"]);
    assert_eq!(shown["settings"]["api"]["value"], "http://127.0.0.1:4024");
    assert_eq!(shown["settings"]["api"]["source"], "default");

    raleph.ok(&["config", "set", "api", "http://127.0.0.1:1111"]);
    raleph.ok(&["config", "set", "chain", "sol"]);
    raleph.ok(&[
        "--profile",
        "other",
        "config",
        "set",
        "channel",
        "ELSEWHERE",
    ]);
    let shown = raleph.json(&["config", "show"]);
    assert_eq!(shown["profile"], "default");
    assert_eq!(shown["settings"]["api"]["value"], "http://127.0.0.1:1111");
    assert_eq!(shown["settings"]["api"]["source"], "profile default");
    assert_eq!(shown["settings"]["chain"]["value"], "SOL");
    assert_eq!(shown["settings"]["channel"]["value"], "TEST");
    let file = dir.path().join("config/raleph/client.toml");
    assert_eq!(shown["file"], json!(file));

    // RALEPH_PROFILE picks another profile; the flag wins over it.
    raleph.env.push(("RALEPH_PROFILE".into(), "other".into()));
    let shown = raleph.json(&["config", "show"]);
    assert_eq!(shown["settings"]["channel"]["value"], "ELSEWHERE");
    assert_eq!(shown["settings"]["api"]["source"], "default");
    let shown = raleph.json(&["--profile", "default", "config", "show"]);
    assert_eq!(shown["settings"]["channel"]["value"], "TEST");
    raleph.env.clear();

    // The environment beats the profile, the flag beats the environment.
    raleph
        .env
        .push(("RALEPH_API".into(), "http://127.0.0.1:2222".into()));
    let shown = raleph.json(&["config", "show"]);
    assert_eq!(shown["settings"]["api"]["value"], "http://127.0.0.1:2222");
    assert_eq!(shown["settings"]["api"]["source"], "env RALEPH_API");
    let shown = raleph.json(&["--api", "http://127.0.0.1:3333/", "config", "show"]);
    assert_eq!(shown["settings"]["api"]["value"], "http://127.0.0.1:3333");
    assert_eq!(shown["settings"]["api"]["source"], "flag");
    raleph.env.clear();

    raleph.ok(&["config", "use", "other"]);
    assert_eq!(raleph.json(&["config", "show"])["profile"], "other");
    let error = raleph.fails(&["config", "use", "nope"]);
    assert!(error.contains("config set"), "{error}");
    let error = raleph.fails(&["--profile", "nope", "key", "show"]);
    assert!(error.contains("no profile \"nope\""), "{error}");
    let error = raleph.fails(&["config", "set", "api", "localhost:4024"]);
    assert!(error.contains("not an http"), "{error}");
    std::fs::write(&file, "[profiles.x]\nunknown = 1\n").expect("write");
    let error = raleph.fails(&["config", "show"]);
    assert!(error.contains("client.toml"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_aggregates_and_forgets_reach_the_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = RunningNode::start(&dir.path().join("node"));
    let raleph = Raleph::new(dir.path(), &node.url);
    let key = key_arg(&dir.path().join("key.hex"));
    raleph.ok_with_stdin(&["key", "import", "--key", &key], Some(TEST_PHRASE));

    // post create, then amend: the list shows the amended content.
    let created = raleph.json(&[
        "--key",
        &key,
        "--channel",
        "CLI",
        "post",
        "create",
        r#"{"title": "first"}"#,
        "--type",
        "blog",
    ]);
    assert_eq!(created["status"], "processed");
    assert_eq!(created["sender"], TEST_ADDRESS);
    assert_eq!(created["channel"], "CLI");
    let original = created["item_hash"].as_str().expect("hash").to_owned();
    let served = node_json(&node, &format!("/api/v0/messages/{original}")).await;
    assert_eq!(served["status"], "processed");
    assert_eq!(
        served["message"]["content"]["content"],
        json!({"title": "first"})
    );
    assert_eq!(served["message"]["content"]["type"], "blog");

    let amended = raleph.json(&[
        "--key",
        &key,
        "--channel",
        "CLI",
        "post",
        "amend",
        &original,
        r#"{"title": "second"}"#,
    ]);
    assert_eq!(amended["status"], "processed");
    let posts = raleph.json(&["post", "list", "--hashes", &original]);
    assert_eq!(posts["pagination_total"], 1);
    assert_eq!(posts["posts"][0]["content"], json!({"title": "second"}));
    assert_eq!(posts["posts"][0]["original_type"], "blog");

    // message list with filters, against the node's own list.
    let listed = raleph.json(&["message", "list", "--channels", "CLI", "--types", "post"]);
    let served = node_json(&node, "/api/v0/messages.json?channels=CLI&msgTypes=POST").await;
    assert_eq!(listed["pagination_total"], served["pagination_total"]);
    assert_eq!(listed["pagination_total"], 2);
    let hashes: Vec<&str> = listed["messages"]
        .as_array()
        .expect("list")
        .iter()
        .map(|m| m["item_hash"].as_str().expect("hash"))
        .collect();
    assert_eq!(
        hashes,
        [
            amended["item_hash"].as_str().expect("hash"),
            original.as_str()
        ]
    );
    let oldest = raleph.json(&[
        "message",
        "list",
        "--channels",
        "CLI",
        "--oldest-first",
        "--limit",
        "1",
    ]);
    assert_eq!(oldest["messages"][0]["item_hash"], original.as_str());
    let human = raleph.ok(&["message", "list", "--channels", "CLI"]);
    assert!(human.contains(&original), "{human}");
    let got = raleph.json(&["message", "get", &original]);
    assert_eq!(got["status"], "processed");

    // aggregate set, then get (one key and all).
    let set = raleph.json(&[
        "--key",
        &key,
        "aggregate",
        "set",
        "profile",
        r#"{"name": "Alice", "n": 1}"#,
    ]);
    assert_eq!(set["status"], "processed");
    raleph.ok(&["--key", &key, "aggregate", "set", "profile", r#"{"n": 2}"#]);
    let value = raleph.json(&["aggregate", "get", TEST_ADDRESS, "profile"]);
    assert_eq!(value["value"], json!({"name": "Alice", "n": 2}));
    let served = node_json(&node, &format!("/api/v0/aggregates/{TEST_ADDRESS}.json")).await;
    assert_eq!(
        raleph.json(&["aggregate", "get", TEST_ADDRESS])["data"],
        served["data"]
    );
    let error = raleph.fails(&["aggregate", "get", TEST_ADDRESS, "nothing"]);
    assert!(error.contains("no aggregate"), "{error}");
    let error = raleph.fails(&["--key", &key, "aggregate", "set", "profile", "[1, 2]"]);
    assert!(error.contains("JSON object"), "{error}");

    // forget, with a reason: the message is forgotten.
    let forget = raleph.json(&["--key", &key, "forget", &original, "--reason", "tidying"]);
    assert_eq!(forget["type"], "FORGET");
    assert_eq!(forget["status"], "processed");
    let served = node_json(&node, &format!("/api/v0/messages/{original}")).await;
    assert_eq!(served["status"], "forgotten");
    assert_eq!(served["forgotten_by"], json!([forget["item_hash"]]));
    let forget_message = node_json(
        &node,
        &format!(
            "/api/v0/messages/{}",
            forget["item_hash"].as_str().expect("hash")
        ),
    )
    .await;
    assert_eq!(forget_message["message"]["content"]["reason"], "tidying");

    // Errors: bad input, the node's own words, an unreachable node.
    let error = raleph.fails(&["--key", &key, "post", "create", "{not json"]);
    assert!(error.contains("not valid JSON"), "{error}");
    let error = raleph.fails(&["message", "get", "zz"]);
    assert!(error.contains("not an item hash"), "{error}");
    let error = raleph.fails(&["message", "get", &"0".repeat(64)]);
    assert!(error.contains("404"), "{error}");
    // A FORGET of someone else's message: the node's reason, in the error.
    let other = key_arg(&dir.path().join("other.hex"));
    raleph.ok(&["key", "new", "--key", &other]);
    let target = set["item_hash"].as_str().expect("hash");
    let error = raleph.fails(&["--key", &other, "forget", target]);
    assert!(
        error.contains("rejected") && error.contains("error code 2"),
        "{error}"
    );
    let error = raleph.fails(&["--key", &key, "forget", &"0".repeat(63)]);
    assert!(error.contains("not an item hash"), "{error}");
    let unreachable = Raleph::new(dir.path(), "http://127.0.0.1:9");
    let error = unreachable.fails(&["message", "list"]);
    assert!(
        error.contains("http://127.0.0.1:9") && error.contains("raleph config set api"),
        "{error}"
    );
    let error = raleph.fails(&[
        "--key",
        &key_arg(&dir.path().join("none.hex")),
        "post",
        "create",
        "{}",
    ]);
    assert!(error.contains("raleph key new"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sol_keys_publish_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = RunningNode::start(&dir.path().join("node"));
    let raleph = Raleph::new(dir.path(), &node.url);
    let key = key_arg(&dir.path().join("sol.json"));
    let made = raleph.json(&["key", "new", "--chain", "SOL", "--key", &key]);
    let post = raleph.json(&["--key", &key, "post", "create", r#"{"from": "sol"}"#]);
    assert_eq!(post["status"], "processed");
    assert_eq!(post["chain"], "SOL");
    assert_eq!(post["sender"], made["address"]);
    let served = node_json(
        &node,
        &format!(
            "/api/v0/messages/{}",
            post["item_hash"].as_str().expect("hash")
        ),
    )
    .await;
    assert_eq!(served["message"]["chain"], "SOL");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_follows_messages_live_and_ends_on_ctrl_c() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = RunningNode::start(&dir.path().join("node"));
    let raleph = Raleph::new(dir.path(), &node.url);
    let key = key_arg(&dir.path().join("key.hex"));
    raleph.ok(&["key", "new", "--key", &key]);
    let first = raleph.json(&[
        "--key",
        &key,
        "--channel",
        "LIVE",
        "post",
        "create",
        "{\"n\": 1}",
    ]);
    raleph.ok(&[
        "--key",
        &key,
        "--channel",
        "OTHER",
        "post",
        "create",
        "{\"n\": 0}",
    ]);

    // The node subscribes before it reads history: once the first message arrives as
    // history, the second can only come live.
    let mut watch = raleph
        .command(&[
            "message",
            "watch",
            "--channels",
            "LIVE",
            "--history",
            "1",
            "--count",
            "2",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start watch");
    let mut lines = BufReader::new(watch.stdout.take().expect("stdout")).lines();
    let seen: Value =
        serde_json::from_str(&lines.next().expect("a line").expect("read")).expect("json");
    assert_eq!(seen["item_hash"], first["item_hash"]);
    let second = raleph.json(&[
        "--key",
        &key,
        "--channel",
        "LIVE",
        "post",
        "create",
        "{\"n\": 2}",
    ]);
    let seen: Value =
        serde_json::from_str(&lines.next().expect("a line").expect("read")).expect("json");
    assert_eq!(seen["item_hash"], second["item_hash"]);
    assert_eq!(seen["content"]["content"], json!({"n": 2}));
    assert!(
        watch.wait().expect("wait").success(),
        "watch ends after --count"
    );

    // Without --count it runs until ctrl-c, which ends it cleanly.
    let mut watch = raleph
        .command(&["message", "watch", "--channels", "LIVE"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start watch");
    let mut errors = BufReader::new(watch.stderr.take().expect("stderr")).lines();
    let ready = errors.next().expect("a line").expect("read");
    assert!(ready.contains("ctrl-c"), "{ready}");
    let interrupted = Command::new("kill")
        .args(["-INT", &watch.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(interrupted.success());
    assert!(
        watch.wait().expect("wait").success(),
        "ctrl-c ends watch with success"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_and_node_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = RunningNode::start(&dir.path().join("node"));
    let raleph = Raleph::new(dir.path(), &node.url);
    let key = key_arg(&dir.path().join("key.hex"));
    raleph.ok(&["key", "new", "--key", &key]);

    let file = dir.path().join("data.bin");
    let bytes: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&file, &bytes).expect("write");
    let uploaded = raleph.json(&["--key", &key, "file", "upload", &key_arg(&file)]);
    assert_eq!(uploaded["size"], bytes.len());
    assert_eq!(uploaded["status"], "processed");
    let store = uploaded["item_hash"].as_str().expect("STORE hash");
    let served = node_json(&node, &format!("/api/v0/messages/{store}")).await;
    assert_eq!(
        served["message"]["content"]["item_hash"],
        uploaded["file_hash"]
    );
    let copy = dir.path().join("copy.bin");
    let downloaded = raleph.json(&[
        "file",
        "download",
        uploaded["file_hash"].as_str().expect("hash"),
        "-o",
        &key_arg(&copy),
    ]);
    assert_eq!(downloaded["bytes"], bytes.len());
    assert_eq!(std::fs::read(&copy).expect("read"), bytes);
    let error = raleph.fails(&[
        "file",
        "download",
        &"0".repeat(64),
        "-o",
        &key_arg(&dir.path().join("none")),
    ]);
    assert!(error.contains("404"), "{error}");
    let error = raleph.fails(&[
        "--key",
        &key,
        "file",
        "upload",
        &key_arg(&dir.path().join("absent")),
    ]);
    assert!(error.contains("absent"), "{error}");

    let status = raleph.json(&["node", "status"]);
    let version = node_json(&node, "/api/v0/version").await;
    assert_eq!(status["version"], version["version"]);
    assert_eq!(status["messages"], 1);
    assert_eq!(status["by_status"]["processed"], 1);
    assert_eq!(status["pending"], 0);
    assert_eq!(status["peers"], 0);
    assert_eq!(status["addresses"][0], node.p2p.as_str());
    assert!(raleph.ok(&["node", "status"]).contains("messages:  1"));
    let peers = raleph.json(&["node", "peers"]);
    assert_eq!(peers, node_json(&node, "/api/v0/p2p/peers").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn programs_take_the_profile_and_answer_json() {
    let wasm = support::guest_wasm(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let node = RunningNode::start(&dir.path().join("node"));
    // No --api and no --key below: the profile gives both.
    let raleph = Raleph::new(dir.path(), "");
    let key = key_arg(&dir.path().join("key.hex"));
    raleph.ok(&["config", "set", "api", &node.url]);
    raleph.ok(&["config", "set", "key", &key]);
    raleph.ok(&["key", "new"]);
    let component = dir.path().join("app.wasm");
    std::fs::write(&component, &wasm).expect("write");

    let deployed = raleph.json(&[
        "program",
        "deploy",
        &key_arg(&component),
        "--env",
        "COLOR=green",
    ]);
    assert_eq!(deployed["status"], "processed");
    let hash = deployed["item_hash"].as_str().expect("hash").to_owned();
    assert_eq!(deployed["url"], format!("{}/vm/{hash}", node.url));
    let served = node_json(&node, &format!("/api/v0/messages/{hash}")).await;
    assert_eq!(
        served["message"]["content"]["code"]["ref"],
        deployed["code_ref"]
    );

    let called = raleph.json(&["program", "call", &hash, "/env?name=COLOR"]);
    assert_eq!(called, json!({"status": 200, "body": "green"}));
    raleph.ok(&["program", "call", &hash, "/print?text=seen"]);
    let logs = raleph.json(&["program", "logs", &hash]);
    let lines: Vec<&str> = logs
        .as_array()
        .expect("log entries")
        .iter()
        .filter_map(|entry| entry["MESSAGE"].as_str())
        .collect();
    assert!(lines.iter().any(|line| line.contains("seen")), "{logs}");
    let stopped = raleph.json(&["program", "stop", &hash]);
    assert_eq!(stopped["item_hash"], hash.as_str());
}
