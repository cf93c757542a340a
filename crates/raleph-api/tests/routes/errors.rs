//! Error paths: malformed submissions, bad signatures, unknown hashes, bad query parameters,
//! oversized bodies. Every error is a 4xx with a JSON body naming the problem (ARCHITECTURE.md,
//! invariant 3), with the status the reference answers (protocol.md §6).

use axum::http::StatusCode;
use raleph_api::ApiConfig;
use raleph_crypto::EthSigner;
use raleph_message::sha256_hex;
use serde_json::json;

use crate::support::*;

/// An error answer: `status`, and a JSON body `{"error": <non-empty text>}`.
fn assert_error(answer: &Answer, status: StatusCode, what: &str) {
    assert_eq!(answer.status, status, "{what}: {}", answer.body);
    assert_eq!(keys(&answer.body), ["error"], "{what}: {}", answer.body);
    let text = answer.body["error"].as_str().expect("an error text");
    assert!(!text.is_empty(), "{what}: the error names the problem");
}

#[tokio::test]
async fn malformed_submissions_are_422() {
    let node = Node::start();
    let signer = EthSigner::new_random();
    let good = post(&signer, "note", json!({}), "TEST", T0);
    let mut wrong_hash = good.clone();
    wrong_hash["item_hash"] = json!(sha256_hex(b"something else"));
    let mut bad_type = good.clone();
    bad_type["type"] = json!("SHOUT");
    let mut no_sender = good.clone();
    no_sender
        .as_object_mut()
        .expect("an object")
        .remove("sender");
    let cases: Vec<(&str, String)> = vec![
        ("malformed JSON", r#"{"message": "#.to_owned()),
        ("not JSON at all", "hello".to_owned()),
        ("not an object", "[1, 2]".to_owned()),
        ("no message", "{}".to_owned()),
        (
            "sync not a boolean",
            json!({"sync": [], "message": good}).to_string(),
        ),
        ("hash mismatch", json!({"message": wrong_hash}).to_string()),
        ("unknown type", json!({"message": bad_type}).to_string()),
        ("no sender", json!({"message": no_sender}).to_string()),
    ];
    for (what, body) in cases {
        let answer = node
            .post("/api/v0/messages", "application/json", body)
            .await;
        assert_error(&answer, StatusCode::UNPROCESSABLE_ENTITY, what);
    }
    // Nothing of it was kept; the good message still goes through.
    let listed = node.get_ok("/api/v0/messages.json").await;
    assert_eq!(listed["pagination_total"], 0);
    node.processed(&good).await;
}

#[tokio::test]
async fn a_bad_signature_is_rejected() {
    let node = Node::start();
    let signer = EthSigner::new_random();
    // Signed by someone else than the sender it names.
    let mut forged = post(&signer, "note", json!({}), "TEST", T0);
    forged["sender"] = json!(EthSigner::new_random().address());
    let answer = node.submit(&forged).await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        answer.body
    );
    assert_eq!(answer.body["message_status"], "rejected");
    // Its status tells why (§5, §6.2): the message as received, INVALID_SIGNATURE (1) and
    // `{"errors": [...]}`.
    let hash = hash_of(&forged);
    let body = node.get_ok(&format!("/api/v0/messages/{hash}")).await;
    assert_eq!(
        keys(&body),
        sorted(&[
            "details",
            "error_code",
            "item_hash",
            "message",
            "reception_time",
            "status"
        ])
    );
    assert_eq!(body["status"], "rejected");
    assert_eq!(body["item_hash"], hash.as_str());
    assert_iso_time(&body["reception_time"]);
    assert_eq!(body["error_code"], 1);
    assert_eq!(body["message"]["item_hash"], hash.as_str());
    assert_eq!(body["message"]["sender"], forged["sender"]);
    assert_eq!(body["message"]["item_content"], forged["item_content"]);
    assert!(
        !array(&body["details"], "errors").is_empty(),
        "details name the errors: {}",
        body["details"]
    );
    let status = node
        .get_ok(&format!("/api/v0/messages/{hash}/status"))
        .await;
    assert_eq!(status["status"], "rejected");
    // A signature that is not one at all.
    let mut garbled = post(&signer, "note", json!({"n": 2}), "TEST", T0);
    garbled["signature"] = json!("0x1234");
    let answer = node.submit(&garbled).await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        answer.body
    );
    assert_eq!(answer.body["message_status"], "rejected");
    // Neither is listed.
    let listed = node
        .get_ok("/api/v0/messages.json?msgStatuses=processed,pending")
        .await;
    assert_eq!(array(&listed, "messages").len(), 0);
}

#[tokio::test]
async fn unknown_hashes_are_404_and_invalid_ones_400() {
    let node = Node::start();
    let unknown = sha256_hex(b"no such message");
    for path in [
        format!("/api/v0/messages/{unknown}"),
        format!("/api/v0/messages/{unknown}/status"),
        format!("/api/v0/messages/{unknown}/content"),
    ] {
        assert_error(&node.get(&path).await, StatusCode::NOT_FOUND, &path);
    }
    for path in [
        "/api/v0/messages/not-a-hash",
        "/api/v0/messages/not-a-hash/status",
    ] {
        assert_error(&node.get(path).await, StatusCode::BAD_REQUEST, path);
    }
    assert_error(
        &node.get("/api/v0/no/such/route").await,
        StatusCode::NOT_FOUND,
        "unknown route",
    );
}

#[tokio::test]
async fn bad_query_parameters_are_refused() {
    let node = Node::start();
    let cases: [(&str, StatusCode); 17] = [
        (
            "/api/v0/messages.json?msgTypes=FOO",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/api/v0/messages.json?msgType=post",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/api/v0/messages.json?chains=NOPE",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/api/v0/messages.json?pagination=abc",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/api/v0/messages.json?pagination=-1",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        // `page` < 1: 422; a page in the path that is not an integer: 400 (§6.2).
        (
            "/api/v0/messages.json?page=0",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("/api/v0/messages/page/x", StatusCode::BAD_REQUEST),
        (
            "/api/v0/messages.json?startDate=-1",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/api/v0/messages.json?startDate=20&endDate=10",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/api/v0/messages.json?sortOrder=2",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/api/v0/messages.json?hashes=abc",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/api/v0/messages.json?contentFormat=all",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        // `forgotten` or `removed` must be alone (§6.2): 400.
        (
            "/api/v0/messages.json?msgStatuses=forgotten,processed",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/v0/messages.json?cursor=%%%",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/api/v0/posts.json?hashes=abc",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/api/v0/aggregates.json?pagination=0",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/api/v1/addresses/stats.json?sortBy=size",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for (path, status) in cases {
        assert_error(&node.get(path).await, status, path);
    }
}

/// A 413 in the API's error shape: `application/json`, `{"error": ...}` naming `setting`.
fn assert_too_large(answer: &Answer, setting: &str, what: &str) {
    assert_error(answer, StatusCode::PAYLOAD_TOO_LARGE, what);
    assert_eq!(
        answer.content_type.as_deref(),
        Some("application/json"),
        "{what}"
    );
    let text = answer.body["error"].as_str().unwrap_or_default();
    assert!(text.contains(setting), "{what}: {text}");
}

/// Every route that reads a whole body under `api.max_body_bytes`.
const LIMITED_ROUTES: [&str; 6] = [
    "/api/v0/messages",
    "/api/v0/storage/add_json",
    "/api/v0/ipfs/add_json",
    "/api/v0/price/estimate",
    "/api/v0/p2p/pubsub/pub",
    "/api/v0/ipfs/pubsub/pub",
];

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    // The default limit, 1 MiB (§6: request bodies are capped at 1 MiB).
    let node = Node::start();
    let limit = ApiConfig::default().max_body_bytes;
    assert_eq!(limit, 1024 * 1024);
    let answer = node
        .post(
            "/api/v0/messages",
            "application/json",
            vec![b' '; limit + 1],
        )
        .await;
    assert_too_large(&answer, "api.max_body_bytes", "1 MiB + 1");
    let text = answer.body["error"].as_str().unwrap_or_default();
    assert!(
        text.contains(&limit.to_string()),
        "the limit is named: {text}"
    );

    // A smaller configured limit: one byte past it is refused on every route that has it,
    // the limit itself is read.
    let node = Node::start_with(ApiConfig {
        max_body_bytes: 4096,
        ..ApiConfig::default()
    });
    for route in LIMITED_ROUTES {
        let over = node.post(route, "application/json", vec![b' '; 4097]).await;
        assert_too_large(&over, "api.max_body_bytes", route);
        let at = node.post(route, "application/json", vec![b' '; 4096]).await;
        assert_ne!(
            at.status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{route}: {}",
            at.body
        );
    }
    let at = node
        .post("/api/v0/messages", "application/json", vec![b' '; 4096])
        .await;
    // Read, and refused as it is not a message.
    assert_error(&at, StatusCode::UNPROCESSABLE_ENTITY, "a body at the limit");
}

#[tokio::test]
async fn an_upload_over_its_limits_is_a_json_413() {
    const BOUNDARY: &str = "raleph-test-boundary";
    let node = Node::start_with(ApiConfig {
        max_upload_metadata_bytes: 1024,
        ..ApiConfig::default()
    });
    // The metadata part past `api.max_upload_metadata_bytes`.
    let metadata = format!("{{\"padding\": \"{}\"}}", "x".repeat(1024));
    let body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n{metadata}\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\n\
         bytes\r\n--{BOUNDARY}--\r\n"
    );
    let answer = node
        .post(
            "/api/v0/storage/add_file",
            &format!("multipart/form-data; boundary={BOUNDARY}"),
            body,
        )
        .await;
    assert_too_large(&answer, "api.max_upload_metadata_bytes", "metadata");
    // A raw upload past the storage limit for uploads without a message.
    let limit = raleph_storage::StorageConfig::default().max_unauthenticated_upload_bytes;
    let answer = node
        .post(
            "/api/v0/storage/add_file",
            "application/octet-stream",
            vec![7u8; limit as usize + 1],
        )
        .await;
    assert_too_large(&answer, &limit.to_string(), "a raw upload");
}

/// What axum answers itself (a method a route does not serve, a websocket route asked without
/// a handshake) is JSON like every other error; the `Allow` header stays.
#[tokio::test]
async fn a_wrong_method_and_a_missing_handshake_are_json_errors() {
    let node = Node::start();
    let request = axum::http::Request::delete("/api/v0/messages.json")
        .body(axum::body::Body::empty())
        .expect("request");
    let response = tower::ServiceExt::oneshot(node.router(), request)
        .await
        .expect("answer");
    assert_eq!(
        response
            .headers()
            .get(axum::http::header::ALLOW)
            .and_then(|v| v.to_str().ok()),
        Some("GET,HEAD")
    );
    let answer = node
        .request(
            axum::http::Request::delete("/api/v0/messages.json")
                .body(axum::body::Body::empty())
                .expect("request"),
        )
        .await;
    assert_error(&answer, StatusCode::METHOD_NOT_ALLOWED, "DELETE on a list");
    assert_eq!(answer.content_type.as_deref(), Some("application/json"));
    for route in ["/api/ws0/messages", "/api/ws0/status"] {
        let answer = node.get(route).await;
        assert!(
            answer.status.is_client_error(),
            "{route}: {}",
            answer.status
        );
        assert_error(&answer, answer.status, route);
        assert_eq!(answer.content_type.as_deref(), Some("application/json"));
    }
}
