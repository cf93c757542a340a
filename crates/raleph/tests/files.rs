//! Uploads and downloads through the real binary: bad input gets a clear 4xx and no stored
//! file is touched.

mod support;

use raleph_crypto::EthSigner;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use sha2::Digest;
use support::{RunningNode, now};

fn sha256(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

async fn upload(url: &str, form: Form) -> (u16, Value) {
    // A fresh client: an early 4xx may close the connection mid-body.
    let response = reqwest::Client::new()
        .post(format!("{url}/api/v0/storage/add_file"))
        .multipart(form)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn file_part(bytes: &[u8]) -> Part {
    Part::bytes(bytes.to_vec()).file_name("data.bin")
}

fn metadata(message: &Value) -> String {
    json!({"message": message, "sync": true}).to_string()
}

#[tokio::test]
async fn uploads_downloads_and_bad_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = RunningNode::start(dir.path());
    let signer = EthSigner::new_random();
    let bytes: Vec<u8> = (0..600_000u32).map(|i| (i % 253) as u8).collect();
    let hash = sha256(&bytes);

    // Authenticated upload: processed, pinned once; the same message again is still fine.
    let store = raleph_sdk::store_message(&signer, &hash, Some("FILES"), now());
    let form = Form::new()
        .text("metadata", metadata(&store))
        .part("file", file_part(&bytes));
    let (status, body) = upload(&node.url, form).await;
    assert_eq!(
        (status, body["hash"].as_str()),
        (200, Some(hash.as_str())),
        "{body}"
    );
    let client = raleph_sdk::Client::new(&node.url);
    let (status, _) = client.submit(&store, true).await.expect("submit");
    assert_eq!(status, 200);
    let count: u64 = reqwest::get(format!("{}/api/v0/storage/count/{hash}", node.url))
        .await
        .expect("count")
        .json()
        .await
        .expect("json");
    assert_eq!(count, 1);

    // A STORE naming other bytes, a forged signature, a truncated body, an oversized body.
    let other = raleph_sdk::store_message(&signer, &sha256(b"other"), Some("FILES"), now());
    let form = Form::new()
        .text("metadata", metadata(&other))
        .part("file", file_part(b"not other"));
    assert_eq!(upload(&node.url, form).await.0, 422);
    let mut forged = raleph_sdk::store_message(&signer, &sha256(b"forged"), Some("FILES"), now());
    forged["sender"] = json!(EthSigner::new_random().address());
    let form = Form::new()
        .text("metadata", metadata(&forged))
        .part("file", file_part(b"forged"));
    assert_eq!(upload(&node.url, form).await.0, 403);
    let form = Form::new()
        .text("metadata", "{not json")
        .part("file", file_part(b"x"));
    assert_eq!(upload(&node.url, form).await.0, 422);
    let truncated = reqwest::Client::new()
        .post(format!("{}/api/v0/storage/add_file", node.url))
        .header("content-type", "multipart/form-data; boundary=XYZ")
        .body("--XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\npartial da")
        .send()
        .await
        .expect("request");
    assert_eq!(truncated.status().as_u16(), 400);
    let big = vec![0u8; 26 * 1024 * 1024];
    let form = Form::new().part("file", file_part(&big));
    assert_eq!(upload(&node.url, form).await.0, 413);

    // Downloads: the whole file, a range, names that are no hash, an unknown hash.
    let raw = reqwest::get(format!("{}/api/v0/storage/raw/{hash}", node.url))
        .await
        .expect("raw");
    assert_eq!(raw.content_length(), Some(bytes.len() as u64));
    assert_eq!(raw.bytes().await.expect("bytes").as_ref(), &bytes[..]);
    let part = reqwest::Client::new()
        .get(format!("{}/api/v0/storage/raw/{hash}", node.url))
        .header("range", "bytes=1000-1999")
        .send()
        .await
        .expect("range");
    assert_eq!(part.status().as_u16(), 206);
    assert_eq!(
        part.bytes().await.expect("bytes").as_ref(),
        &bytes[1000..2000]
    );
    for (path, expected) in [
        ("/api/v0/storage/raw/..%2F..%2Fetc%2Fpasswd".to_owned(), 400),
        // The client resolves `..` itself: the request reaches no route.
        ("/api/v0/storage/raw/..".to_owned(), 404),
        (format!("/api/v0/storage/raw/{}", "0".repeat(64)), 404),
        (format!("/api/v0/storage/{}", "0".repeat(64)), 404),
        (
            "/ipfs/QmNrEidQrAbxx3FzxNt9E6qjEDZrtvzxUVh47BXm55Zuen".to_owned(),
            404,
        ),
    ] {
        let status = reqwest::get(format!("{}{path}", node.url))
            .await
            .expect("get")
            .status()
            .as_u16();
        assert_eq!(status, expected, "{path}");
    }
    // Nothing above touched the stored file.
    let again = reqwest::get(format!("{}/api/v0/storage/raw/{hash}", node.url))
        .await
        .expect("raw");
    assert_eq!(sha256(&again.bytes().await.expect("bytes")), hash);
    let listing: Value = reqwest::get(format!(
        "{}/api/v0/addresses/{}/files",
        node.url,
        signer.address()
    ))
    .await
    .expect("files")
    .json()
    .await
    .expect("json");
    assert_eq!(listing["files"][0]["file_hash"], json!(hash));
    assert_eq!(listing["total_size"], json!(bytes.len()));
}
