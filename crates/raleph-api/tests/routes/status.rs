//! Metrics as JSON, the status websocket, the status history, and the API's own description
//! (`/api/openapi.json`, `/api/docs`).

use std::collections::BTreeSet;

use raleph_api::{ApiConfig, ConnectionLimits, StatusMonitor};
use raleph_crypto::EthSigner;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

#[tokio::test]
async fn metrics_as_json_with_the_reference_names() {
    let node = Node::start();
    let signer = EthSigner::new_random();
    node.processed(&post(&signer, "note", json!({}), "TEST", T0))
        .await;
    let body = node.get_ok("/metrics.json").await;
    for name in [
        "pyaleph_build_info",
        "pyaleph_status_peers_total",
        "pyaleph_status_sync_messages_total",
        "pyaleph_status_sync_pending_messages_total",
        "pyaleph_status_sync_pending_txs_total",
        "raleph_messages_by_status",
        "raleph_storage_bytes",
    ] {
        assert!(body.get(name).is_some(), "{name}: {body}");
    }
    assert_eq!(body["pyaleph_status_sync_messages_total"], 1);
    assert_eq!(body["pyaleph_status_sync_pending_messages_total"], 0);
    assert_eq!(body["raleph_messages_by_status"]["processed"], 1);
    assert!(
        body["pyaleph_build_info"]["version"]
            .as_str()
            .is_some_and(|v| v.starts_with("raleph-"))
    );
    let text = node.get("/metrics").await;
    let text = String::from_utf8(text.bytes).expect("text");
    for line in [
        "pyaleph_status_sync_messages_total 1\n",
        "pyaleph_status_peers_total 0\n",
        "pyaleph_status_sync_pending_txs_total 0\n",
        "raleph_messages_by_status{status=\"processed\"} 1\n",
    ] {
        assert!(text.contains(line), "{line}: {text}");
    }
}

#[tokio::test]
async fn status_history_samples_oldest_first() {
    let node = Node::start();
    assert_eq!(
        node.get_ok("/api/v0/status/history").await,
        json!({"interval_secs": 10, "samples": []})
    );
    StatusMonitor::sample(node.state()).await;
    let signer = EthSigner::new_random();
    node.processed(&post(&signer, "note", json!({}), "TEST", T0))
        .await;
    StatusMonitor::sample(node.state()).await;
    let body = node.get_ok("/api/v0/status/history").await;
    assert_eq!(keys(&body), ["interval_secs", "samples"]);
    let samples = array(&body, "samples");
    assert_eq!(samples.len(), 2);
    for sample in samples {
        assert_eq!(
            keys(sample),
            ["messages", "peers", "pending", "storage_bytes", "time"]
        );
        assert!(sample["time"].is_f64());
        assert_eq!(sample["peers"], 0);
        assert_eq!(sample["storage_bytes"], 0);
    }
    assert_eq!(
        (
            samples[0]["messages"].clone(),
            samples[1]["messages"].clone()
        ),
        (json!(0), json!(1))
    );
    assert!(samples[0]["time"].as_f64() <= samples[1]["time"].as_f64());
    // The metrics now show the stored bytes the monitor read.
    assert_eq!(
        node.get_ok("/metrics.json").await["raleph_storage_bytes"],
        0
    );
}

/// Opens `/api/ws0/status` on `authority`: the stream once upgraded.
async fn status_socket(authority: &str) -> TcpStream {
    let mut stream = TcpStream::connect(authority).await.expect("connect");
    let request = format!(
        "GET /api/ws0/status HTTP/1.1\r\nhost: {authority}\r\nconnection: Upgrade\r\n\
         upgrade: websocket\r\nsec-websocket-version: 13\r\n\
         sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert!(stream.read(&mut byte).await.expect("read") == 1 && head.len() < 8192);
        head.push(byte[0]);
    }
    assert!(String::from_utf8_lossy(&head).starts_with("HTTP/1.1 101"));
    stream
}

/// One server frame (unmasked): `(opcode, payload)`.
async fn frame(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).await.expect("a frame");
    let len = match head[1] & 0x7f {
        126 => {
            let mut n = [0u8; 2];
            stream.read_exact(&mut n).await.expect("length");
            u64::from(u16::from_be_bytes(n))
        }
        127 => {
            let mut n = [0u8; 8];
            stream.read_exact(&mut n).await.expect("length");
            u64::from_be_bytes(n)
        }
        n => u64::from(n),
    };
    let mut payload = vec![0u8; usize::try_from(len).expect("small")];
    stream.read_exact(&mut payload).await.expect("payload");
    (head[0] & 0x0f, payload)
}

async fn metrics_frame(stream: &mut TcpStream) -> Value {
    loop {
        let (opcode, payload) = frame(stream).await;
        if opcode == 0x1 {
            return serde_json::from_slice(&payload).expect("JSON metrics");
        }
    }
}

#[tokio::test]
async fn status_websocket_pushes_changes_within_its_limit() {
    let node = Node::start_with(ApiConfig {
        max_status_websockets: 1,
        ..ApiConfig::default()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let authority = listener.local_addr().expect("address").to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let limits = ConnectionLimits::from_config(&ApiConfig::default());
    let server = tokio::spawn(raleph_api::serve(listener, node.router(), limits, async {
        let _ = stopped.await;
    }));
    let mut first = status_socket(&authority).await;
    let metrics = metrics_frame(&mut first).await;
    assert_eq!(metrics["pyaleph_status_sync_messages_total"], 0);
    assert_eq!(metrics["raleph_status_websocket_connections"], 1);
    // Past the limit, a socket is closed with "try again later".
    let mut second = status_socket(&authority).await;
    let (opcode, payload) = frame(&mut second).await;
    assert_eq!(opcode, 0x8);
    assert_eq!(payload[..2], 1013u16.to_be_bytes());
    // A change reaches the open socket when the monitor reads the counters.
    let signer = EthSigner::new_random();
    node.processed(&post(&signer, "note", json!({}), "TEST", T0))
        .await;
    StatusMonitor::sample(node.state()).await;
    let metrics = metrics_frame(&mut first).await;
    assert_eq!(metrics["pyaleph_status_sync_messages_total"], 1);
    let _ = stop.send(());
    drop(first);
    server.await.expect("the server stops");
}

/// `/a/{x}.json/{y}` as `/a/{}/{}`: routes spell a `{x}.json` segment `{x}`, and name their
/// parameters as they like.
fn shape(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        out.push_str("{}");
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c + 1);
        rest = rest[close..]
            .strip_prefix(".json")
            .unwrap_or(&rest[close..]);
    }
    out.push_str(rest);
    out
}

/// The paths this crate's router serves, read from its source: the first string of every
/// `.route(` call.
fn routed_paths() -> BTreeSet<String> {
    let source = include_str!("../../src/lib.rs");
    source
        .split(".route(")
        .skip(1)
        .filter_map(|call| call.split('"').nth(1))
        .map(shape)
        .collect()
}

/// A documented path with each parameter filled in.
fn filled(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c + 1);
        let name = &rest[open + 1..close - 1];
        out.push_str(match name {
            "asset" => "docs.js",
            "page" => "1",
            "hash" | "item_hash" | "cid" | "reference" => {
                "93a23971a914e5eacbf0a8d25154cda309c3c1c72fbb9914d47c60f3cb681588"
            }
            _ => "0xabc",
        });
        rest = &rest[close..];
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn the_openapi_document_matches_the_router() {
    let node = Node::start();
    let doc = node.get_ok("/api/openapi.json").await;
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    let mut documented = BTreeSet::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("a path item") {
            let summary = op["summary"].as_str().unwrap_or_default();
            assert!(!summary.is_empty(), "{method} {path} has no summary");
            assert!(op["responses"]["200"].is_object(), "{method} {path}");
            if op["x-raleph-served-by"] == "node" {
                continue; // Routes the binary adds: crates/raleph/tests/api.rs.
            }
            documented.insert(shape(path));
            // Served: the router does not fall through to its fallback, nor refuse the method.
            let uri = filled(path);
            let answer = match method.as_str() {
                "get" => node.get(&uri).await,
                "post" => node.post(&uri, "application/json", "{}").await,
                other => panic!("{other} {path}: an unexpected method"),
            };
            assert_ne!(answer.status, 405, "{method} {path}: {}", answer.body);
            assert_ne!(
                answer.body,
                json!({"error": "no such route"}),
                "{method} {path} is documented but not routed"
            );
        }
    }
    // Every route is documented.
    let routed = routed_paths();
    assert!(routed.len() > 40, "{routed:?}");
    let undocumented: Vec<&String> = routed.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "routed, not documented: {undocumented:?}"
    );
    // The main operations say what they take and answer.
    for (path, param) in [
        ("/api/v0/messages.json", "addresses"),
        ("/api/v0/messages/hashes", "hash_only"),
        ("/api/v1/posts.json", "types"),
        ("/api/v0/aggregates.json", "keys"),
        ("/api/v0/authorizations/received/{address}.json", "granter"),
    ] {
        let params = paths[path]["get"]["parameters"]
            .as_array()
            .expect("parameters");
        assert!(params.iter().any(|p| p["name"] == param), "{path} {param}");
    }
    assert_eq!(
        paths["/api/v0/status/history"]["get"]["responses"]["200"]["content"]["application/json"]["schema"],
        json!({"$ref": "#/components/schemas/StatusHistory"})
    );
}

#[tokio::test]
async fn the_docs_page_is_self_contained() {
    let node = Node::start();
    for (path, content_type) in [
        ("/api/docs", "text/html"),
        ("/api/docs/docs.js", "text/javascript"),
        ("/api/docs/docs.css", "text/css"),
    ] {
        let request = axum::http::Request::get(path)
            .body(axum::body::Body::empty())
            .expect("request");
        let answer = node.request(request).await;
        assert_eq!(answer.status, 200, "{path}");
        assert!(
            answer
                .content_type
                .as_deref()
                .is_some_and(|t| t.starts_with(content_type)),
            "{path}: {:?}",
            answer.content_type
        );
    }
    let answer = node.get("/api/docs/other.js").await;
    assert_eq!(answer.status, 404);
}
