//! Uploads and downloads through the real binary: bad input gets a clear 4xx and no stored
//! file is touched.

mod support;

use raleph_crypto::EthSigner;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use sha2::Digest;
use std::time::{Duration, Instant};
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

/// Sends a request head and the first `sent` bytes of `body`, then stalls (the rest of the
/// body never comes); the status the node answers with, and how long it took.
async fn stalled_upload(url: &str, body: &[u8], sent: usize) -> (Option<u16>, Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /api/v0/storage/add_file HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: multipart/form-data; boundary=XYZ\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let started = Instant::now();
    stream.write_all(head.as_bytes()).await.expect("head");
    // The node may answer and close before all of it is written.
    let _ = stream.write_all(&body[..sent]).await;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let status = read.ok().and_then(|()| {
        let line = String::from_utf8_lossy(&answer);
        line.split(' ').nth(1).and_then(|s| s.parse().ok())
    });
    (status, started.elapsed())
}

/// Issue 13: bytes before the first boundary and part headers are not buffered without limit.
/// A body with a 1 MB preamble, and one with a 1 MB part header, get a 413 as soon as the
/// limit (8 KiB) is passed, long before the body ends; a normal upload still works after.
#[tokio::test]
async fn multipart_preamble_and_headers_are_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = RunningNode::start(dir.path());
    let mb = 1024 * 1024;
    let part = b"--XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n";
    let mut preamble = vec![b'p'; mb];
    preamble.extend_from_slice(b"\r\n");
    preamble.extend_from_slice(part);
    preamble.extend_from_slice(b"\r\nbytes\r\n--XYZ--\r\n");
    let mut header = part.to_vec();
    header.extend_from_slice(b"X-Big: ");
    header.extend(std::iter::repeat_n(b'h', mb));
    header.extend_from_slice(b"\r\n\r\nbytes\r\n--XYZ--\r\n");
    for (what, body) in [("preamble", &preamble), ("header", &header)] {
        // 64 KiB of the 1 MB, then nothing: the answer cannot wait for the end of the body.
        let (status, took) = stalled_upload(&node.url, body, 64 * 1024).await;
        assert_eq!(status, Some(413), "1 MB {what}");
        assert!(
            took < Duration::from_secs(5),
            "1 MB {what}: answered after {took:?}"
        );
    }

    let signer = EthSigner::new_random();
    let bytes = b"a normal upload, after the refused ones".to_vec();
    let hash = sha256(&bytes);
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
}
