//! Uploads and downloads: `storage/add_file` (raw and with a signed STORE), `storage/add_json`,
//! `storage/raw/{hash}`, `storage/{hash}`, and what the index tells of a file (protocol.md
//! §6.1, §6.7).

use axum::http::StatusCode;
use base64::Engine as _;
use raleph_crypto::EthSigner;
use raleph_message::sha256_hex;
use serde_json::{Value, json};

use crate::support::*;

const BOUNDARY: &str = "raleph-test-boundary";

/// A multipart/form-data body: `metadata` (if any), then `file` with its name.
fn multipart(metadata: Option<&Value>, name: &str, bytes: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    if let Some(metadata) = metadata {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\
                 Content-Type: application/json\r\n\r\n{metadata}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

fn multipart_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

#[tokio::test]
async fn a_raw_upload_is_served_back_byte_for_byte() {
    let node = Node::start();
    let bytes = b"hello, raleph\n\x00\xff binary too".to_vec();
    let sha256 = sha256_hex(&bytes);
    let answer = node
        .post(
            "/api/v0/storage/add_file",
            "application/octet-stream",
            bytes.clone(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body, json!({"status": "success", "hash": sha256}));

    let raw = node.get(&format!("/api/v0/storage/raw/{sha256}")).await;
    assert_eq!(raw.status, StatusCode::OK);
    assert_eq!(
        raw.content_type.as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(raw.bytes, bytes);

    let encoded = node.get_ok(&format!("/api/v0/storage/{sha256}")).await;
    assert_eq!(
        keys(&encoded),
        sorted(&["content", "engine", "hash", "status"])
    );
    assert_eq!(encoded["status"], "success");
    assert_eq!(encoded["hash"], sha256.as_str());
    assert_eq!(encoded["engine"], "storage");
    let content = base64::engine::general_purpose::STANDARD
        .decode(encoded["content"].as_str().expect("base64 text"))
        .expect("base64");
    assert_eq!(content, bytes);
}

#[tokio::test]
async fn unknown_files_are_404_and_bad_hashes_400() {
    let node = Node::start();
    let unknown = sha256_hex(b"never uploaded");
    for path in [
        format!("/api/v0/storage/raw/{unknown}"),
        format!("/api/v0/storage/{unknown}"),
        format!("/api/v0/storage/metadata/{unknown}"),
    ] {
        let answer = node.get(&path).await;
        assert_eq!(
            answer.status,
            StatusCode::NOT_FOUND,
            "{path}: {}",
            answer.body
        );
    }
    for path in [
        "/api/v0/storage/raw/not-a-hash",
        "/api/v0/storage/not-a-hash",
    ] {
        let answer = node.get(path).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            answer.body
        );
    }
}

#[tokio::test]
async fn an_upload_with_its_store_message_is_pinned_and_indexed() {
    let node = Node::start();
    let signer = EthSigner::new_random();
    let bytes = b"a file its owner stores".to_vec();
    let sha256 = sha256_hex(&bytes);
    let store = raleph_sdk::store_message(&signer, &sha256, Some("TEST"), T0);
    let metadata = json!({"message": store, "sync": true});
    let answer = node
        .post(
            "/api/v0/storage/add_file",
            &multipart_type(),
            multipart(Some(&metadata), "file.txt", &bytes),
        )
        .await;
    // Processed with `sync`: 200, and the file's sha256.
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body, json!({"status": "success", "hash": sha256}));

    let store_hash = hash_of(&store);
    let message = node.get_ok(&format!("/api/v0/messages/{store_hash}")).await;
    assert_eq!(message["status"], "processed");
    assert_eq!(message["message"]["type"], "STORE");
    assert_eq!(message["message"]["content"]["item_hash"], sha256.as_str());

    let by_message = node
        .get_ok(&format!("/api/v0/storage/by-message-hash/{store_hash}"))
        .await;
    assert_eq!(
        keys(&by_message),
        sorted(&["download_url", "file_hash", "owner", "ref", "size"])
    );
    assert_eq!(by_message["file_hash"], sha256.as_str());
    assert_eq!(by_message["owner"], signer.address().as_str());
    assert_eq!(by_message["size"], bytes.len());

    let metadata = node
        .get_ok(&format!("/api/v0/storage/metadata/{sha256}"))
        .await;
    assert_eq!(
        keys(&metadata),
        sorted(&["download_url", "file_hash", "size", "type"])
    );
    assert_eq!(metadata["file_hash"], sha256.as_str());
    assert_eq!(metadata["type"], "file");
    assert_eq!(metadata["size"], bytes.len());

    // The STORE pins it: a bare integer at least 1.
    let pins = node
        .get_ok(&format!("/api/v0/storage/count/{sha256}"))
        .await;
    assert!(pins.as_u64().is_some_and(|n| n >= 1), "pins: {pins}");

    let raw = node.get(&format!("/api/v0/storage/raw/{sha256}")).await;
    assert_eq!(raw.status, StatusCode::OK);
    assert_eq!(raw.bytes, bytes);
}

#[tokio::test]
async fn an_upload_whose_store_names_another_file_is_refused() {
    let node = Node::start();
    let signer = EthSigner::new_random();
    let store = raleph_sdk::store_message(&signer, &sha256_hex(b"another file"), Some("TEST"), T0);
    let metadata = json!({"message": store, "sync": true});
    let answer = node
        .post(
            "/api/v0/storage/add_file",
            &multipart_type(),
            multipart(Some(&metadata), "file.txt", b"this file"),
        )
        .await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        answer.body
    );
    // A STORE whose signature is not the sender's: 403.
    let mut forged = raleph_sdk::store_message(&signer, &sha256_hex(b"this file"), None, T0);
    forged["sender"] = json!(EthSigner::new_random().address());
    let metadata = json!({"message": forged});
    let answer = node
        .post(
            "/api/v0/storage/add_file",
            &multipart_type(),
            multipart(Some(&metadata), "file.txt", b"this file"),
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
}

#[tokio::test]
async fn add_json_stores_the_document() {
    let node = Node::start();
    let answer = node
        .post(
            "/api/v0/storage/add_json",
            "application/json",
            r#"{"b": 1, "a": [true, null]}"#,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(keys(&answer.body), sorted(&["hash", "status"]));
    assert_eq!(answer.body["status"], "success");
    let hash = answer.body["hash"].as_str().expect("a hash");
    let raw = node.get(&format!("/api/v0/storage/raw/{hash}")).await;
    assert_eq!(raw.status, StatusCode::OK);
    // Sorted keys, compact, as the reference's add_json writes it.
    assert_eq!(raw.bytes, br#"{"a":[true,null],"b":1}"#);
    assert_eq!(hash, sha256_hex(&raw.bytes));
}

#[tokio::test]
async fn an_ipfs_upload_answers_its_cid_name_and_size() {
    let node = Node::start();
    let bytes = b"some bytes for ipfs".to_vec();
    let answer = node
        .post(
            "/api/v0/ipfs/add_file",
            &multipart_type(),
            multipart(None, "notes.txt", &bytes),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        keys(&answer.body),
        sorted(&["hash", "name", "size", "status"])
    );
    assert_eq!(answer.body["status"], "success");
    assert_eq!(answer.body["name"], "notes.txt");
    assert_eq!(answer.body["size"], bytes.len());
    let cid = answer.body["hash"].as_str().expect("a CID");
    assert!(cid.starts_with("Qm"), "a CIDv0: {cid}");
    let raw = node.get(&format!("/ipfs/{cid}")).await;
    assert_eq!(raw.status, StatusCode::OK);
    assert_eq!(raw.bytes, bytes);
}
