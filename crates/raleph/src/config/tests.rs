use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::*;

/// The layers of a node given this file (if any), these environment variables and these
/// `--set` flags.
fn layers(file: Option<&Path>, env: &[(&str, &str)], sets: &[&str]) -> anyhow::Result<Layers> {
    let mut layers = Layers::new()?;
    if let Some(file) = file {
        layers.file(file)?;
    }
    layers.environment(
        env.iter()
            .map(|(name, value)| (OsString::from(name), OsString::from(value))),
    )?;
    for set in sets {
        layers.set_flag(set)?;
    }
    Ok(layers)
}

fn load(file: Option<&Path>, env: &[(&str, &str)], sets: &[&str]) -> anyhow::Result<NodeConfig> {
    layers(file, env, sets)?.resolve()
}

fn refused(file: Option<&Path>, env: &[(&str, &str)], sets: &[&str]) -> String {
    match load(file, env, sets) {
        Ok(_) => panic!("the configuration was accepted"),
        Err(e) => format!("{e:#}"),
    }
}

struct ConfigFile {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn file(text: &str) -> ConfigFile {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.toml");
    std::fs::write(&path, text).expect("write config");
    ConfigFile { _dir: dir, path }
}

#[test]
fn each_layer_overrides_the_one_before_for_a_top_level_field() {
    let default = load(None, &[], &[]).expect("defaults");
    assert_eq!(default.data_dir, PathBuf::from("raleph-data"));
    let from_file = file("data_dir = \"/from/file\"\n");
    let path = Some(from_file.path.as_path());
    assert_eq!(
        load(path, &[], &[]).expect("file").data_dir,
        PathBuf::from("/from/file")
    );
    let env = [("RALEPH_DATA_DIR", "/from/env")];
    assert_eq!(
        load(path, &env, &[]).expect("env").data_dir,
        PathBuf::from("/from/env")
    );
    let flags = load(path, &env, &["data_dir=/from/flag"]).expect("flag");
    assert_eq!(flags.data_dir, PathBuf::from("/from/flag"));
    // The environment over the defaults alone, and a flag over the defaults alone.
    assert_eq!(
        load(None, &env, &[]).expect("env").data_dir,
        PathBuf::from("/from/env")
    );
    assert_eq!(
        load(None, &[], &["data_dir=/f"]).expect("flag").data_dir,
        PathBuf::from("/f")
    );
}

#[test]
fn each_layer_overrides_the_one_before_for_a_nested_field() {
    let default = raleph_api::ApiConfig::default();
    let layered = |file_: Option<&Path>, env: &[(&str, &str)], sets: &[&str]| {
        let config = load(file_, env, sets).expect("config");
        (config.api.max_body_bytes, config.api.multipart.max_parts)
    };
    assert_eq!(
        layered(None, &[], &[]),
        (default.max_body_bytes, default.multipart.max_parts)
    );
    let from_file = file("[api]\nmax_body_bytes = 111\n[api.multipart]\nmax_parts = 11\n");
    let path = Some(from_file.path.as_path());
    assert_eq!(layered(path, &[], &[]), (111, 11));
    let env = [
        ("RALEPH_API__MAX_BODY_BYTES", "222"),
        ("RALEPH_API__MULTIPART__MAX_PARTS", "22"),
    ];
    assert_eq!(layered(path, &env, &[]), (222, 22));
    let sets = ["api.max_body_bytes=333", "api.multipart.max_parts = 33"];
    assert_eq!(layered(path, &env, &sets), (333, 33));
    // Fields of the same section the upper layers leave alone keep the file's value.
    let from_file = file("[api]\nmax_body_bytes = 111\nmax_page_size = 7\n");
    let config = load(Some(&from_file.path), &env, &sets).expect("config");
    assert_eq!(config.api.max_page_size, 7);
}

#[test]
fn precedence_is_the_rule_not_the_order_layers_are_read_in() {
    let from_file = file("data_dir = \"/from/file\"\n[api]\nmax_body_bytes = 111\n");
    let mut layers = Layers::new().expect("layers");
    layers.set_flag("api.max_body_bytes=333").expect("flag");
    layers
        .environment([
            (
                OsString::from("RALEPH_API__MAX_BODY_BYTES"),
                OsString::from("222"),
            ),
            (
                OsString::from("RALEPH_DATA_DIR"),
                OsString::from("/from/env"),
            ),
        ])
        .expect("env");
    layers.file(&from_file.path).expect("file");
    let config = layers.resolve().expect("config");
    assert_eq!(config.api.max_body_bytes, 333);
    assert_eq!(config.data_dir, PathBuf::from("/from/env"));
}

#[test]
fn the_named_flags_are_the_flag_layer() {
    let from_file = file("api_addr = \"127.0.0.1:1\"\npeers = [\"/ip4/10.0.0.1/tcp/1\"]\n");
    let mut layers = layers(
        Some(&from_file.path),
        &[("RALEPH_API_ADDR", "127.0.0.1:2")],
        &[],
    )
    .expect("layers");
    layers
        .flag("--api-addr", "api_addr", "127.0.0.1:3".into())
        .expect("flag");
    layers
        .flag(
            "--peer",
            "peers",
            toml::Value::Array(vec!["/ip4/10.0.0.2/tcp/2".into()]),
        )
        .expect("flag");
    let config = layers.resolve().expect("config");
    assert_eq!(config.api_addr.to_string(), "127.0.0.1:3");
    // A list is replaced whole by the upper layer.
    assert_eq!(config.peers, ["/ip4/10.0.0.2/tcp/2"]);
}

#[test]
fn a_flag_layer_giving_a_setting_two_values_is_refused() {
    let mut layers = Layers::new().expect("layers");
    layers
        .flag("--data-dir", "data_dir", "/a".into())
        .expect("flag");
    let error = layers
        .set_flag("data_dir=/b")
        .expect_err("two values")
        .to_string();
    assert!(error.contains("`data_dir`"), "{error}");
    assert!(error.contains("flag --data-dir"), "{error}");
    assert!(error.contains("flag --set data_dir"), "{error}");
    // The same value twice is no conflict.
    layers.set_flag("data_dir=/a").expect("same value");
}

#[test]
fn an_unknown_key_names_the_key_and_its_source() {
    let from_file = file("[api]\nmax_bodee_bytes = 1\n");
    let error = refused(Some(&from_file.path), &[], &[]);
    assert!(error.contains("api.max_bodee_bytes"), "{error}");
    assert!(
        error.contains(&format!("config file {}", from_file.path.display())),
        "{error}"
    );

    let error = error_of_env("RALEPH_PIPELINE__NOPE", "1");
    assert!(error.contains("pipeline.nope"), "{error}");
    assert!(
        error.contains("environment variable RALEPH_PIPELINE__NOPE"),
        "{error}"
    );

    let error = refused(None, &[], &["nosection.field=1"]);
    assert!(error.contains("nosection"), "{error}");
    assert!(error.contains("flag --set nosection.field"), "{error}");

    let error = refused(None, &[], &["top_level_typo=1"]);
    assert!(error.contains("top_level_typo"), "{error}");
}

fn error_of_env(name: &str, value: &str) -> String {
    refused(None, &[(name, value)], &[])
}

#[test]
fn a_bad_value_names_the_key_and_its_source() {
    let from_file = file("[storage]\ngc_interval_secs = \"hourly\"\n");
    let error = refused(Some(&from_file.path), &[], &[]);
    assert!(error.contains("storage.gc_interval_secs"), "{error}");
    assert!(error.contains("config file"), "{error}");

    let error = error_of_env("RALEPH_API__MAX_BODY_BYTES", "lots");
    assert!(error.contains("api.max_body_bytes"), "{error}");
    assert!(
        error.contains("environment variable RALEPH_API__MAX_BODY_BYTES"),
        "{error}"
    );

    let error = error_of_env("RALEPH_API__MAX_BODY_BYTES", "-5");
    assert!(error.contains("api.max_body_bytes"), "{error}");

    let error = error_of_env("RALEPH_API_ADDR", "localhost");
    assert!(error.contains("api_addr"), "{error}");
    assert!(error.contains("RALEPH_API_ADDR"), "{error}");

    let error = refused(None, &[], &["durability=\"eventually\""]);
    assert!(error.contains("durability"), "{error}");
    assert!(error.contains("flag --set"), "{error}");

    let error = refused(None, &[], &["compute.enabled=maybe"]);
    assert!(error.contains("compute.enabled"), "{error}");

    let error = refused(None, &[], &["api"]);
    assert!(error.contains("section.field=value"), "{error}");

    // A value where the tree has a section, and a section where it has a value.
    let error = refused(None, &[], &["api=3"]);
    assert!(error.contains("`api`"), "{error}");
    let error = refused(None, &[], &["data_dir.inner=3"]);
    assert!(error.contains("data_dir"), "{error}");
}

#[test]
fn an_error_never_echoes_a_database_url() {
    let mut layers = Layers::new().expect("layers");
    layers
        .set_flag("database=postgres://u:secret@db.example/a")
        .expect("flag");
    let error = layers
        .set_flag("database=postgres://u:secret@db.example/b")
        .expect_err("two values")
        .to_string();
    assert!(error.contains("`database`"), "{error}");
    assert!(!error.contains("secret"), "{error}");
}

#[test]
fn durations_must_be_finite_and_not_negative() {
    assert!(load(None, &[], &[]).is_ok());
    for (text, key) in [
        ("[api]\nsync_timeout_secs = -1.0", "api.sync_timeout_secs"),
        ("[api]\ncount_cache_secs = inf", "api.count_cache_secs"),
        (
            "[pipeline]\nmax_backoff_secs = nan",
            "pipeline.max_backoff_secs",
        ),
        (
            "[storage]\ngc_interval_secs = -inf",
            "storage.gc_interval_secs",
        ),
        ("[pipeline]\ngather_ms = -5.0", "pipeline.gather_ms"),
    ] {
        let from_file = file(text);
        let error = refused(Some(&from_file.path), &[], &[]);
        assert!(error.contains(key), "{error}");
        assert!(error.contains("config file"), "{error}");
    }
    let error = error_of_env("RALEPH_SYNC__INTERVAL_SECS", "-1");
    assert!(error.contains("sync.interval_secs"), "{error}");
    assert!(error.contains("RALEPH_SYNC__INTERVAL_SECS"), "{error}");
    assert!(load(None, &[], &["api.sync_timeout_secs=0.0"]).is_ok());
}

#[test]
fn variables_that_are_not_settings_are_left_alone() {
    let config = load(
        None,
        &[
            ("RALEPH_LOG", "debug,hyper=warn"),
            ("RALEPH_BIN", "/no/such/binary"),
            ("RALEPH_CACHE_DIR", "~/.cache/raleph"),
            ("RALEPH_PYTHON_RUNTIME_DIR", "/runtime"),
            ("RALEPH_CONFIG", "/not/read/here.toml"),
            ("RALEPH_API", "http://127.0.0.1:4024"),
            ("RALEPH_KEY", "0xabc"),
            ("RALEPH_PG_PORT", "not a port"),
            ("HOME", "/root"),
        ],
        &[],
    )
    .expect("no setting among them");
    assert_eq!(config.data_dir, NodeConfig::default().data_dir);
}

#[test]
fn an_empty_variable_sets_nothing() {
    let from_file = file("data_dir = \"/from/file\"\n[api]\nmax_page_size = 7\n");
    let config = load(
        Some(&from_file.path),
        &[("RALEPH_DATA_DIR", ""), ("RALEPH_API__MAX_PAGE_SIZE", "")],
        &[],
    )
    .expect("config");
    assert_eq!(config.data_dir, PathBuf::from("/from/file"));
    assert_eq!(config.api.max_page_size, 7);
}

#[test]
fn every_top_level_field_has_its_variable() {
    let names = top_level_settings();
    for field in [
        "data_dir",
        "api_addr",
        "p2p_addr",
        "peers",
        "node_key",
        "database",
        "database_read_connections",
        "database_resident",
        "durability",
    ] {
        assert!(names.iter().any(|n| n == field), "{field} in {names:?}");
    }
    assert!(!names.iter().any(|n| n == "api"), "a section is no setting");
    let config = load(
        None,
        &[
            ("RALEPH_NODE_KEY", "/keys/node"),
            ("RALEPH_DATABASE_RESIDENT", "1"),
            ("RALEPH_DURABILITY", "normal"),
            ("RALEPH_PEERS", r#"["/ip4/10.0.0.1/tcp/4025"]"#),
            ("RALEPH_DATABASE", "/db/index.sqlite"),
        ],
        &[],
    )
    .expect("config");
    assert_eq!(config.node_key, Some(PathBuf::from("/keys/node")));
    assert!(config.database_resident);
    assert_eq!(config.durability, Durability::Normal);
    assert_eq!(config.peers, ["/ip4/10.0.0.1/tcp/4025"]);
    assert_eq!(config.database, "/db/index.sqlite");
}

#[test]
fn p2p_listen_peers_and_key_are_the_top_level_settings() {
    let from_file = file(
        "[p2p]\nlisten = \"/ip4/0.0.0.0/tcp/4999\"\nkey = \"/keys/k\"\n\
         peers = [\"/ip4/10.0.0.1/tcp/4025\"]\n",
    );
    let config = load(Some(&from_file.path), &[], &[]).expect("config");
    assert_eq!(config.p2p_addr.to_string(), "0.0.0.0:4999");
    assert_eq!(config.node_key, Some(PathBuf::from("/keys/k")));
    assert_eq!(config.peers, ["/ip4/10.0.0.1/tcp/4025"]);
    // The section says the same.
    assert_eq!(config.p2p.listen.to_string(), "/ip4/0.0.0.0/tcp/4999");
    assert_eq!(config.p2p.key, PathBuf::from("/keys/k"));
    assert_eq!(config.p2p.peers.len(), 1);

    // One setting: a flag overrides the file's alias as any file value.
    let config = load(Some(&from_file.path), &[], &["p2p_addr=127.0.0.1:0"]).expect("flag");
    assert_eq!(config.p2p_addr.to_string(), "127.0.0.1:0");
    assert_eq!(config.p2p.listen.to_string(), "/ip4/127.0.0.1/tcp/0");

    // Without a key, the section names the default file.
    let config = load(None, &[], &["data_dir=/d"]).expect("config");
    assert_eq!(config.p2p.key, PathBuf::from("/d/node-key"));
}

#[test]
fn a_setting_and_its_alias_given_different_values_are_refused() {
    let both = file("p2p_addr = \"127.0.0.1:1\"\n[p2p]\nlisten = \"/ip4/127.0.0.1/tcp/2\"\n");
    let error = refused(Some(&both.path), &[], &[]);
    assert!(error.contains("`p2p_addr`"), "{error}");
    assert!(error.contains("given twice"), "{error}");
    assert!(error.contains("`p2p.listen`"), "{error}");

    let same = file("p2p_addr = \"127.0.0.1:1\"\n[p2p]\nlisten = \"/ip4/127.0.0.1/tcp/1\"\n");
    assert!(load(Some(&same.path), &[], &[]).is_ok());

    let error = refused(
        None,
        &[("RALEPH_NODE_KEY", "/a"), ("RALEPH_P2P__KEY", "/b")],
        &[],
    );
    assert!(error.contains("RALEPH_NODE_KEY"), "{error}");
    assert!(error.contains("RALEPH_P2P__KEY"), "{error}");

    let error = refused(None, &[], &["p2p.listen=/dns4/node.example/tcp/4025"]);
    assert!(error.contains("p2p.listen"), "{error}");
}

#[test]
fn a_peer_that_is_not_a_multiaddr_is_refused_with_its_source() {
    let error = refused(
        None,
        &[("RALEPH_PEERS", r#"["/ip4/10.0.0.1/tcp/1", "nope"]"#)],
        &[],
    );
    assert!(error.contains("peers[1]"), "{error}");
    assert!(error.contains("RALEPH_PEERS"), "{error}");
}

#[test]
fn the_printed_configuration_loads_back_the_same() {
    let from_file = file(
        "durability = \"normal\"\npeers = [\"/ip4/10.0.0.1/tcp/4025\"]\n\
         [pipeline]\nmax_retries = 3\n[compute]\nmax_vms = 5\n",
    );
    let config = load(
        Some(&from_file.path),
        &[("RALEPH_P2P_ADDR", "[::1]:4100")],
        &["api.max_page_size=50"],
    )
    .expect("config");
    let printed = config.to_printable_toml().expect("print");
    assert!(printed.contains("durability = \"normal\""), "{printed}");
    assert!(printed.contains("max_page_size = 50"), "{printed}");
    assert!(
        printed.contains("listen = \"/ip6/::1/tcp/4100\""),
        "{printed}"
    );
    assert!(
        printed.contains("node-key"),
        "the key file is shown: {printed}"
    );
    let again = file(&printed);
    let reloaded = load(Some(&again.path), &[], &[]).expect("printed config loads");
    assert_eq!(reloaded.to_printable_toml().expect("print"), printed);
}

#[test]
fn a_printed_postgres_url_has_no_password() {
    let config = load(
        None,
        &[(
            "RALEPH_DATABASE",
            "postgres://user:secret@db.example/raleph",
        )],
        &[],
    )
    .expect("config");
    let printed = config.to_printable_toml().expect("print");
    assert!(!printed.contains("secret"), "{printed}");
    assert!(printed.contains("db.example"), "{printed}");
}

#[test]
fn derived_settings_come_from_their_one_place() {
    let config = load(
        None,
        &[],
        &[
            "storage.grace_period_secs=60",
            "durability=normal",
            "pipeline.max_retries=4",
        ],
    )
    .expect("config");
    let pipeline = config.pipeline_config();
    assert_eq!(pipeline.file_grace_period_secs, 60.0);
    assert!(!pipeline.durable);
    assert_eq!(pipeline.max_retries, 4);
    assert!(
        load(None, &[], &[])
            .expect("config")
            .pipeline_config()
            .durable
    );

    let postgres = load(
        None,
        &[],
        &[
            "database=postgres://u@localhost/db",
            "database_read_connections=9",
        ],
    )
    .expect("config");
    assert_eq!(postgres.api_config().max_concurrent_reads, 9);
    let sqlite = load(None, &[], &["database_read_connections=9"]).expect("config");
    assert_eq!(sqlite.api_config().max_concurrent_reads, 0);
    let explicit = load(
        None,
        &[],
        &[
            "database=postgres://u@localhost/db",
            "api.max_concurrent_reads=3",
        ],
    )
    .expect("config");
    assert_eq!(explicit.api_config().max_concurrent_reads, 3);
}

#[test]
fn the_former_hard_coded_limits_default_to_their_former_values() {
    let config = load(None, &[], &[]).expect("defaults");
    let sync = &config.sync;
    assert_eq!(sync.max_served_batch, 2_000);
    assert_eq!(sync.max_served_chunk_bytes, 4 * 1024 * 1024);
    assert_eq!(sync.max_outbound_gossip, 4096);
    assert_eq!(sync.http_peer_max_failures, 3);
    assert_eq!(sync.http_peer_rest_secs, 600.0);
    assert_eq!(sync.http_peer_dropped_secs, 3600.0);
    assert_eq!(sync.bad_peer_penalty_secs, 3600.0);
    assert_eq!(sync.fetch_retry_after_secs, 2.0);
    assert_eq!(config.api.max_upload_metadata_bytes, 1024 * 1024);
    assert_eq!(config.api.upload_queue_chunks, 16);
    assert_eq!(config.compute.max_guest_api_request_bytes, 1024 * 1024);
    assert_eq!(sync.max_carried_skeletons, 10_000);
    assert_eq!(sync.max_queued_fetches, 1024);
    assert_eq!(sync.max_remembered_fetches, 10_000);
    assert_eq!(config.p2p.max_pending_inbound, 256);
    assert_eq!(config.p2p.max_pending_inbound_per_peer, 16);
    assert_eq!(config.compute.max_control_body_bytes, 16 * 1024);
    assert_eq!(config.compute.max_table_elements, 100_000);
}

#[test]
fn the_new_limits_reach_their_sections_from_every_layer() {
    let from_file = file("[sync]\nmax_served_batch = 10\n[api]\nupload_queue_chunks = 2\n");
    let env = [("RALEPH_COMPUTE__MAX_GUEST_API_REQUEST_BYTES", "512")];
    let sets = [
        "sync.max_outbound_gossip=8",
        "api.max_upload_metadata_bytes=4096",
    ];
    let config = load(Some(&from_file.path), &env, &sets).expect("config");
    assert_eq!(config.sync.max_served_batch, 10);
    assert_eq!(config.sync.max_outbound_gossip, 8);
    // What the API is started with (`api_config`), not only the section as read.
    let api = config.api_config();
    assert_eq!(api.upload_queue_chunks, 2);
    assert_eq!(api.max_upload_metadata_bytes, 4096);
    assert_eq!(config.compute.max_guest_api_request_bytes, 512);
}

#[test]
fn a_limit_that_would_break_the_node_is_refused_naming_it() {
    for (set, key, why) in [
        (
            "sync.max_served_batch=0",
            "sync.max_served_batch",
            "from 1 to 100000, not 0",
        ),
        (
            "sync.max_queued_fetches=0",
            "sync.max_queued_fetches",
            "from 1 to 1000000, not 0",
        ),
        (
            "p2p.max_pending_inbound_per_peer=300",
            "p2p.max_pending_inbound_per_peer",
            "from 1 to 256, not 300",
        ),
        (
            "compute.max_control_body_bytes=10",
            "compute.max_control_body_bytes",
            "from 1024 to 1048576, not 10",
        ),
        (
            "sync.max_outbound_gossip=0",
            "sync.max_outbound_gossip",
            "not 0",
        ),
        (
            "sync.http_peer_max_failures=0",
            "sync.http_peer_max_failures",
            "not 0",
        ),
        (
            "api.upload_queue_chunks=0",
            "api.upload_queue_chunks",
            "not 0",
        ),
        (
            "api.max_upload_metadata_bytes=0",
            "api.max_upload_metadata_bytes",
            "not 0",
        ),
        (
            "sync.max_served_batch=100000000",
            "sync.max_served_batch",
            "not 100000000",
        ),
        (
            "sync.http_peer_rest_secs=1e20",
            "sync.http_peer_rest_secs",
            "at most",
        ),
        (
            "sync.max_served_chunk_bytes=1024",
            "sync.max_served_chunk_bytes",
            "from 65536",
        ),
    ] {
        let error = refused(None, &[], &[set]);
        assert!(error.contains(key), "{set}: {error}");
        assert!(error.contains(why), "{set}: {error}");
        assert!(error.contains("--set"), "{set} names its source: {error}");
    }
    // A file chunk must fit in one peer-to-peer answer: bounded by `p2p.max_response_bytes`.
    let error = refused(
        None,
        &[],
        &[
            "p2p.max_response_bytes=1048576",
            "sync.max_served_chunk_bytes=1048576",
        ],
    );
    assert!(error.contains("sync.max_served_chunk_bytes"), "{error}");
    assert!(
        load(
            None,
            &[],
            &[
                "p2p.max_response_bytes=1048576",
                "sync.max_served_chunk_bytes=983040"
            ],
        )
        .is_ok()
    );
}

#[test]
fn anchoring_chains_come_from_the_file_and_the_environment_and_bad_ones_are_refused() {
    let chain = "[[anchoring.evm]]\nchain = \"ETH\"\nrpc_url = \"http://127.0.0.1:8545\"\n\
                 sync_contract = \"0x166fd4299364B21c7567e163d85D78d2fb2f8Ad5\"\n\
                 authorized_emitters = [\"0x23eC28598DCeB2f7082Cc3a9D670592DfEd6e0dC\"]\n";
    let one = file(chain);
    let config = load(Some(&one.path), &[], &[]).expect("one chain");
    assert_eq!(config.anchoring.evm.len(), 1);
    assert_eq!(
        config.anchoring.evm[0].confirmations, 12,
        "the default depth"
    );
    assert!(config.anchoring.evm[0].packing.is_none());
    // A section's field from the environment, over the file's.
    let config = load(
        Some(&one.path),
        &[("RALEPH_ANCHORING__ARCHIVE_FETCH_TIMEOUT_SECS", "5")],
        &[],
    )
    .expect("environment");
    assert_eq!(config.anchoring.archive_fetch_timeout_secs, 5);
    // The same chain twice, a gateway that is no URL, an unknown field: refused, named.
    let twice = file(&format!("{chain}{chain}"));
    let error = refused(Some(&twice.path), &[], &[]);
    assert!(error.contains("configured twice"), "{error}");
    let error = refused(
        Some(&one.path),
        &[("RALEPH_ANCHORING__ARCHIVE_GATEWAYS", "[\"ftp://x/\"]")],
        &[],
    );
    assert!(error.contains("archive_gateways"), "{error}");
    let typo = file(&format!("{chain}confirmation = 3\n"));
    let error = refused(Some(&typo.path), &[], &[]);
    assert!(error.contains("confirmation"), "{error}");
}
