//! A node as the binary wires it, in-process: a SQLite store, a file store, the pipeline over
//! both, and the API's router over the store's read side and the pipeline. Requests go
//! through the router (`tower::ServiceExt::oneshot`), not over a socket.

use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use raleph_api::{ApiConfig, AppState};
use raleph_crypto::EthSigner;
use raleph_db::FileRecord;
use raleph_message::{ItemType, MessageType};
use raleph_pipeline::{ContentSource, NoPayments, PipelineConfig, PipelineHandle};
use raleph_storage::{FileStore, StorageConfig};
use serde_json::{Value, json};
use tower::ServiceExt;

/// Content and files read from the node's own file store, as the binary's `LocalContent`
/// does (without asking peers for what is missing: there are none).
struct LocalFiles(FileStore);

impl ContentSource for LocalFiles {
    fn load(&self, _: ItemType, hash: &str) -> std::io::Result<Option<Vec<u8>>> {
        self.0.get(hash).map_err(std::io::Error::other)
    }

    fn file(&self, id: &str) -> std::io::Result<Option<FileRecord>> {
        let info = self.0.info(id).map_err(std::io::Error::other)?;
        Ok(info
            .as_ref()
            .map(raleph_api::files::store_adapter::file_record))
    }

    fn delete_file(&self, sha256: &str) -> std::io::Result<()> {
        self.0.delete(sha256).map_err(std::io::Error::other)
    }

    fn list_files(&self) -> std::io::Result<Vec<(String, SystemTime)>> {
        let mut files = Vec::new();
        for sha256 in self.0.list().map_err(std::io::Error::other)? {
            if let Some(at) = self.0.stored_at(&sha256).map_err(std::io::Error::other)? {
                files.push((sha256, at));
            }
        }
        Ok(files)
    }
}

/// One node: its router, and what must live as long as it.
pub struct Node {
    router: Router,
    state: AppState,
    pipeline: PipelineHandle,
    _dir: tempfile::TempDir,
}

/// An answer: the status, and the body parsed as JSON (a JSON string holding the text when
/// the body is not JSON, so that a test can still show it).
pub struct Answer {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub body: Value,
    pub bytes: Vec<u8>,
}

impl Node {
    /// A node with the default API configuration.
    pub fn start() -> Node {
        Node::start_with(ApiConfig::default())
    }

    pub fn start_with(config: ApiConfig) -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        let (writer, reader) = raleph_db::sqlite::open(
            &dir.path().join("index.sqlite"),
            raleph_db::sqlite::Durability::Normal,
        )
        .expect("open the index");
        let files = FileStore::open(dir.path().join("files")).expect("open the file store");
        let (pipeline, _writer_thread) = raleph_pipeline::spawn(
            Box::new(writer),
            Arc::new(LocalFiles(files.clone())),
            Arc::new(NoPayments),
            PipelineConfig::default(),
            &dir.path().join("intake"),
            Arc::new(raleph_pipeline::SystemClock),
        )
        .expect("start the pipeline");
        let state = AppState::new(
            Arc::new(reader),
            pipeline.clone(),
            files,
            config,
            StorageConfig::default(),
        );
        Node {
            router: raleph_api::router(state.clone()),
            state,
            pipeline,
            _dir: dir,
        }
    }

    /// What the routes share, as the binary's tasks (the status monitor) use it.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The router, to serve on a socket.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// The node's pipeline, as the binary's other tasks (the chain reader) use it.
    pub fn pipeline(&self) -> &PipelineHandle {
        &self.pipeline
    }

    pub async fn request(&self, request: Request<Body>) -> Answer {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router answers");
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("read the body")
            .to_vec();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Answer {
            status,
            content_type,
            body,
            bytes,
        }
    }

    pub async fn get(&self, uri: &str) -> Answer {
        let request = Request::get(uri).body(Body::empty()).expect("request");
        self.request(request).await
    }

    /// A GET that must succeed: its JSON body.
    pub async fn get_ok(&self, uri: &str) -> Value {
        let answer = self.get(uri).await;
        assert_eq!(answer.status, StatusCode::OK, "GET {uri}: {}", answer.body);
        answer.body
    }

    pub async fn post(&self, uri: &str, content_type: &str, body: impl Into<Body>) -> Answer {
        let request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::CONTENT_TYPE, content_type)
            .body(body.into())
            .expect("request");
        self.request(request).await
    }

    /// `POST /api/v0/messages` with `sync`, as the SDK submits.
    pub async fn submit(&self, message: &Value) -> Answer {
        let body = json!({"sync": true, "message": message}).to_string();
        self.post("/api/v0/messages", "application/json", body)
            .await
    }

    /// Submits a message that must be processed.
    pub async fn processed(&self, message: &Value) {
        let answer = self.submit(message).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert_eq!(
            answer.body["message_status"], "processed",
            "{}",
            answer.body
        );
    }
}

/// A signed inline message of `message_type`, its content `content` plus the `address`
/// and `time` the SDK adds.
pub fn signed(
    signer: &EthSigner,
    message_type: MessageType,
    content: Value,
    channel: &str,
    time: f64,
) -> Value {
    let Value::Object(content) = content else {
        panic!("content must be an object: {content}");
    };
    raleph_sdk::signed_message(signer, message_type, content, Some(channel), time)
}

/// A POST of `post_type` with the user payload `payload`.
pub fn post(
    signer: &EthSigner,
    post_type: &str,
    payload: Value,
    channel: &str,
    time: f64,
) -> Value {
    signed(
        signer,
        MessageType::Post,
        json!({"type": post_type, "content": payload}),
        channel,
        time,
    )
}

/// An AGGREGATE element: `key` of the signer's aggregate gets `payload`'s top-level keys.
pub fn aggregate(signer: &EthSigner, key: &str, payload: Value, time: f64) -> Value {
    signed(
        signer,
        MessageType::Aggregate,
        json!({"key": key, "content": payload}),
        "TEST",
        time,
    )
}

/// The item hash of a built message.
pub fn hash_of(message: &Value) -> String {
    message["item_hash"]
        .as_str()
        .expect("a message has an item hash")
        .to_owned()
}

/// The keys of a JSON object, sorted.
pub fn keys(value: &Value) -> Vec<&str> {
    let Some(object) = value.as_object() else {
        panic!("not an object: {value}");
    };
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

/// `names`, sorted, to compare with [`keys`].
pub fn sorted<'a>(names: &[&'a str]) -> Vec<&'a str> {
    let mut names = names.to_vec();
    names.sort_unstable();
    names
}

/// The array under `key`, which must be one.
pub fn array<'a>(body: &'a Value, key: &str) -> &'a Vec<Value> {
    body[key]
        .as_array()
        .unwrap_or_else(|| panic!("`{key}` is not an array: {body}"))
}

/// The item hashes of a list of messages (or posts: their `item_hash`).
pub fn hashes(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|m| m["item_hash"].as_str().expect("an item hash").to_owned())
        .collect()
}

/// A time that is an ISO-8601 UTC date as Python writes it (`...+00:00`).
pub fn assert_iso_time(value: &Value) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"));
    let parsed = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339);
    assert!(parsed.is_ok(), "not an ISO-8601 time: {text}");
    assert!(
        text.ends_with("+00:00"),
        "not UTC as Python writes it: {text}"
    );
}

/// A fixed base time, so that orders and date filters are known; a second apart per message.
pub const T0: f64 = 1_700_000_000.0;
