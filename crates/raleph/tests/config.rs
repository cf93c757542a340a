//! `raleph node --print-config`: what the layers of the configuration (defaults < file <
//! environment < flags) produce, as the real binary reads them.

use std::process::{Command, Output};

fn raleph_node(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_raleph"));
    command
        .arg("node")
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("run raleph node")
}

fn printed(output: &Output) -> toml::Table {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .parse()
        .expect("the printed configuration is TOML")
}

#[test]
fn print_config_shows_what_every_layer_gave() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        "data_dir = \"/from/file\"\n\
         [api]\nmax_page_size = 10\nmax_query_values = 11\nmax_websockets = 12\n\
         [p2p]\nlisten = \"/ip4/0.0.0.0/tcp/4999\"\n",
    )
    .expect("write config");
    let output = raleph_node(
        &[
            "--config",
            config.to_str().expect("utf-8 path"),
            "--set",
            "api.max_websockets=32",
            "--peer",
            "/ip4/10.0.0.1/tcp/4025",
            "--print-config",
        ],
        &[
            ("RALEPH_API__MAX_QUERY_VALUES", "21"),
            ("RALEPH_API__MAX_WEBSOCKETS", "22"),
            ("RALEPH_DURABILITY", "normal"),
            // Not settings: left alone, whatever their values.
            ("RALEPH_LOG", "warn"),
            ("RALEPH_BIN", "/nowhere"),
            ("RALEPH_CACHE_DIR", "/nowhere"),
        ],
    );
    let config = printed(&output);
    let api = config["api"].as_table().expect("[api]");
    assert_eq!(api["max_page_size"].as_integer(), Some(10), "from the file");
    assert_eq!(
        api["max_query_values"].as_integer(),
        Some(21),
        "from the env"
    );
    assert_eq!(api["max_websockets"].as_integer(), Some(32), "from --set");
    assert_eq!(config["durability"].as_str(), Some("normal"));
    assert_eq!(config["data_dir"].as_str(), Some("/from/file"));
    // `[p2p] listen` is `p2p_addr`, and the flag's peers are the peers.
    assert_eq!(config["p2p_addr"].as_str(), Some("0.0.0.0:4999"));
    let p2p = config["p2p"].as_table().expect("[p2p]");
    assert_eq!(p2p["listen"].as_str(), Some("/ip4/0.0.0.0/tcp/4999"));
    assert_eq!(p2p["key"].as_str(), Some("/from/file/node-key"));
    let peers = config["peers"].as_array().expect("peers");
    assert_eq!(peers.len(), 1);
    assert_eq!(p2p["peers"].as_array(), Some(peers));
}

#[test]
fn a_bad_setting_stops_the_node_naming_the_key_and_its_source() {
    let output = raleph_node(
        &["--print-config"],
        &[("RALEPH_PIPELINE__MAX_RETRIEZ", "3")],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("pipeline.max_retriez"), "{stderr}");
    assert!(stderr.contains("RALEPH_PIPELINE__MAX_RETRIEZ"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let output = raleph_node(
        &["--set", "storage.max_upload_bytes=big", "--print-config"],
        &[],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("storage.max_upload_bytes"), "{stderr}");
    assert!(stderr.contains("--set"), "{stderr}");
}
