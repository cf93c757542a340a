//! [`Client`]: one node's HTTP API: submit, upload, download, and the reads (messages with
//! filters, a message and its status, posts, aggregates, the node's own state).

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::filter::{MessageFilter, PostFilter, encode, encode_query};
use crate::json::python_compact;
use crate::message::{Draft, SignedMessage, envelope};
use crate::signer::Sign;

/// The longest `item_content` the Python SDK sends inline (its `MAX_INLINE_SIZE`, in
/// characters); longer content is stored on the node and named by its hash.
pub const MAX_INLINE_CHARS: usize = 50_000;

/// Why a request gave no answer the caller can use.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Nothing answered at the node's URL (refused, unresolvable, timed out).
    #[error("no node answers at {url}: {source}")]
    Unreachable {
        /// The node's base URL.
        url: String,
        /// What the connection attempt said.
        source: reqwest::Error,
    },
    /// The request failed on the way (after connecting).
    #[error("request to the node failed: {0}")]
    Http(#[from] reqwest::Error),
    /// The node answered with an error status; `body` is what it said.
    #[error("the node answered {status}: {body}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The node's answer (its error message, usually JSON).
        body: String,
    },
    /// The node processed the message and rejected it (HTTP 422 to a submission).
    #[error("the node rejected message {item_hash}: {body}")]
    Rejected {
        /// The message's item hash; `message_status` reads why.
        item_hash: String,
        /// The node's answer.
        body: String,
    },
    /// The answer is not the JSON expected.
    #[error("unexpected answer from the node: {0}")]
    Decode(String),
    /// Content given to a builder that must be a JSON object is not.
    #[error("content must be a JSON object")]
    NotAnObject,
    /// Reading or writing a local file.
    #[error("file I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The messages websocket failed.
    #[error("websocket: {0}")]
    WebSocket(String),
}

/// What the node said of a submitted message.
#[derive(Debug, Clone, PartialEq)]
pub struct Publication {
    /// The message's item hash.
    pub item_hash: String,
    /// `processed` or `pending` (`rejected` is an error, [`ClientError::Rejected`]).
    pub status: String,
    /// The HTTP status (200 processed, 202 pending).
    pub http_status: u16,
}

/// One page of a message list (`GET /api/v0/messages.json`).
#[derive(Debug, Clone, Deserialize)]
pub struct MessagePage {
    /// The messages, in the node's list shape.
    pub messages: Vec<Value>,
    /// This page's number.
    #[serde(default)]
    pub pagination_page: u64,
    /// The page size.
    #[serde(default)]
    pub pagination_per_page: u64,
    /// How many messages match in all.
    #[serde(default)]
    pub pagination_total: u64,
}

/// One page of posts (`GET /api/v1/posts.json`).
#[derive(Debug, Clone, Deserialize)]
pub struct PostPage {
    /// The posts: `item_hash`, `content` (the latest amend's), `original_item_hash`,
    /// `original_type`, `address`, `ref`, `channel`, `created`, `last_updated`.
    pub posts: Vec<Value>,
    /// This page's number.
    #[serde(default)]
    pub pagination_page: u64,
    /// The page size.
    #[serde(default)]
    pub pagination_per_page: u64,
    /// How many posts match in all.
    #[serde(default)]
    pub pagination_total: u64,
}

/// A message and its status (`GET /api/v0/messages/{hash}`).
#[derive(Debug, Clone, Deserialize)]
pub struct MessageStatus {
    /// `pending`, `processed`, `removing`, `rejected`, `forgotten` or `removed`.
    pub status: String,
    /// The item hash.
    pub item_hash: String,
    /// When the node first received it (ISO 8601).
    #[serde(default)]
    pub reception_time: Option<String>,
    /// The message (processed, removing, rejected: as received; forgotten: its skeleton).
    #[serde(default)]
    pub message: Option<Value>,
    /// A pending message's copies.
    #[serde(default)]
    pub messages: Option<Vec<Value>>,
    /// Why it was rejected (the reference's error code).
    #[serde(default)]
    pub error_code: Option<i64>,
    /// Details of a rejection.
    #[serde(default)]
    pub details: Option<Value>,
    /// The FORGETs that forgot it.
    #[serde(default)]
    pub forgotten_by: Option<Vec<String>>,
}

/// An HTTP client bound to one node.
///
/// ```no_run
/// use raleph_sdk::{Chain, Client, Draft, MessageFilter, Signer};
/// use serde_json::json;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = Client::new("http://127.0.0.1:4024");
/// let signer = Signer::generate(Chain::Eth)?;
/// let post = Draft::post("note", json!({"hello": "world"})).channel("TEST").sign(&signer);
/// let publication = client.publish(&post, true).await?;
/// println!("{} {}", publication.item_hash, publication.status);
/// let page = client
///     .list_messages(&MessageFilter { channels: vec!["TEST".into()], ..Default::default() })
///     .await?;
/// println!("{} messages on TEST", page.pagination_total);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    /// A client of the node at `base` (scheme, host and port, e.g. `http://127.0.0.1:4024`).
    pub fn new(base: &str) -> Self {
        Client {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// The node's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a request; a connection that fails is [`ClientError::Unreachable`].
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        request.send().await.map_err(|source| {
            if source.is_connect() || source.is_timeout() {
                ClientError::Unreachable {
                    url: self.base.clone(),
                    source,
                }
            } else {
                ClientError::Http(source)
            }
        })
    }

    async fn json(response: reqwest::Response) -> Result<(u16, Value), ClientError> {
        let status = response.status().as_u16();
        let text = response.text().await?;
        match serde_json::from_str(&text) {
            Ok(value) => Ok((status, value)),
            Err(_) => Err(ClientError::Status { status, body: text }),
        }
    }

    /// Submits a message (any JSON envelope); returns the HTTP status and the publication
    /// body, whatever they are. See [`Client::publish`] for the checked form.
    pub async fn submit(&self, message: &Value, sync: bool) -> Result<(u16, Value), ClientError> {
        let request = self
            .http
            .post(format!("{}/api/v0/messages", self.base))
            .json(&json!({ "sync": sync, "message": message }));
        Self::json(self.send(request).await?).await
    }

    /// Submits a signed message; with `sync`, waits (up to the node's limit) until it is
    /// processed. A rejection is [`ClientError::Rejected`], any other error status
    /// [`ClientError::Status`].
    pub async fn publish(
        &self,
        message: &SignedMessage,
        sync: bool,
    ) -> Result<Publication, ClientError> {
        let (status, body) = self.submit(message.json(), sync).await?;
        let item_hash = message.item_hash().to_owned();
        match status {
            200 | 202 => Ok(Publication {
                item_hash,
                status: body["message_status"]
                    .as_str()
                    .unwrap_or(if status == 200 {
                        "processed"
                    } else {
                        "pending"
                    })
                    .to_owned(),
                http_status: status,
            }),
            422 => Err(ClientError::Rejected {
                item_hash,
                body: body.to_string(),
            }),
            _ => Err(ClientError::Status {
                status,
                body: body.to_string(),
            }),
        }
    }

    /// Signs `draft` and submits it, as the Python SDK's `create_*` calls do: content whose
    /// `item_content` would reach [`MAX_INLINE_CHARS`] goes to the node's storage first
    /// (`/api/v0/storage/add_json`) and the message names it (`item_type` `storage`).
    pub async fn sign_and_publish(
        &self,
        draft: Draft,
        signer: &impl Sign,
        sync: bool,
    ) -> Result<(SignedMessage, Publication), ClientError> {
        let sender = signer.address();
        let (content, parts) = draft.complete(&sender);
        let content = Value::Object(content);
        let item_content = python_compact(&content);
        let message = if item_content.chars().count() < MAX_INLINE_CHARS {
            let item_hash = raleph_message::sha256_hex(item_content.as_bytes());
            envelope(signer, &sender, &parts, &item_hash, Some(item_content))
        } else {
            let request = self
                .http
                .post(format!("{}/api/v0/storage/add_json", self.base))
                .json(&content);
            let stored = match Self::json(self.send(request).await?).await? {
                (200, value) => value,
                (status, value) => {
                    return Err(ClientError::Status {
                        status,
                        body: value.to_string(),
                    });
                }
            };
            let item_hash = stored["hash"]
                .as_str()
                .ok_or_else(|| ClientError::Decode("no `hash` from add_json".into()))?;
            envelope(signer, &sender, &parts, item_hash, None)
        };
        let publication = self.publish(&message, sync).await?;
        Ok((message, publication))
    }

    /// Uploads a file to `/api/v0/storage/add_file`, streamed from disk, with an optional
    /// signed STORE message (`metadata`). Reports bytes sent.
    pub async fn upload_file(
        &self,
        path: &std::path::Path,
        store: Option<&Value>,
        progress: impl Fn(u64) + Send + Sync + 'static,
    ) -> Result<(u16, Value), ClientError> {
        use futures::StreamExt;
        let file = tokio::fs::File::open(path).await?;
        let size = file.metadata().await?.len();
        let stream =
            tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024).inspect(move |chunk| {
                if let Ok(bytes) = chunk {
                    progress(bytes.len() as u64);
                }
            });
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("file")
            .to_owned();
        let part =
            reqwest::multipart::Part::stream_with_length(reqwest::Body::wrap_stream(stream), size)
                .file_name(name)
                .mime_str("application/octet-stream")?;
        let mut form = reqwest::multipart::Form::new();
        if let Some(message) = store {
            form = form.text(
                "metadata",
                json!({ "message": message, "sync": true }).to_string(),
            );
        }
        let form = form.part("file", part);
        let request = self
            .http
            .post(format!("{}/api/v0/storage/add_file", self.base))
            .multipart(form);
        Self::json(self.send(request).await?).await
    }

    /// Downloads a file to `path`, streamed. Reports the total size once known, then bytes.
    pub async fn download_file(
        &self,
        hash: &str,
        path: &std::path::Path,
        total: impl FnOnce(Option<u64>),
        progress: impl Fn(u64),
    ) -> Result<u64, ClientError> {
        use futures::StreamExt;
        use tokio::io::AsyncWriteExt;
        let request = self
            .http
            .get(format!("{}/api/v0/storage/raw/{}", self.base, encode(hash)));
        let response = self.send(request).await?;
        let status = response.status().as_u16();
        if status != 200 {
            let body = response.text().await.unwrap_or_default();
            return Err(ClientError::Status { status, body });
        }
        total(response.content_length());
        let mut out = tokio::fs::File::create(path).await?;
        let mut stream = response.bytes_stream();
        let mut written = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            out.write_all(&chunk).await?;
            written += chunk.len() as u64;
            progress(chunk.len() as u64);
        }
        out.sync_all().await?;
        Ok(written)
    }

    /// `GET` a path of the API (with its query) as JSON; any status but 200 is an error.
    pub async fn get(&self, path_and_query: &str) -> Result<Value, ClientError> {
        let request = self.http.get(format!("{}{path_and_query}", self.base));
        match Self::json(self.send(request).await?).await? {
            (200, value) => Ok(value),
            (status, value) => Err(ClientError::Status {
                status,
                body: value.to_string(),
            }),
        }
    }

    /// `GET` a path as text (e.g. `/metrics`); any status but 200 is an error.
    pub async fn get_text(&self, path: &str) -> Result<String, ClientError> {
        let request = self.http.get(format!("{}{path}", self.base));
        let response = self.send(request).await?;
        let status = response.status().as_u16();
        let body = response.text().await?;
        if status == 200 {
            Ok(body)
        } else {
            Err(ClientError::Status { status, body })
        }
    }

    fn decode<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, ClientError> {
        serde_json::from_value(value).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// A message and its status, as raw JSON.
    pub async fn message(&self, item_hash: &str) -> Result<Value, ClientError> {
        self.get(&format!("/api/v0/messages/{}", encode(item_hash)))
            .await
    }

    /// A message and its status.
    pub async fn message_status(&self, item_hash: &str) -> Result<MessageStatus, ClientError> {
        Self::decode(self.message(item_hash).await?)
    }

    /// `query` is a ready query string, e.g. `addresses=0x…&pagination=10`.
    pub async fn messages(&self, query: &str) -> Result<Value, ClientError> {
        self.get(&format!("/api/v0/messages.json?{query}")).await
    }

    /// One page of the messages that match `filter`.
    pub async fn list_messages(&self, filter: &MessageFilter) -> Result<MessagePage, ClientError> {
        Self::decode(self.messages(&filter.query_string()).await?)
    }

    /// One page of the posts that match `filter` (the v1 shape).
    pub async fn posts(&self, filter: &PostFilter) -> Result<PostPage, ClientError> {
        Self::decode(
            self.get(&format!("/api/v1/posts.json?{}", filter.query_string()))
                .await?,
        )
    }

    /// The aggregates of `address` (only `keys` if any are given): key → merged value.
    /// `None` when the address has none (the node's 404).
    pub async fn aggregates(
        &self,
        address: &str,
        keys: &[&str],
    ) -> Result<Option<Map<String, Value>>, ClientError> {
        let mut query = Vec::new();
        if !keys.is_empty() {
            query.push(("keys", keys.join(",")));
        }
        let path = format!(
            "/api/v0/aggregates/{}.json?{}",
            encode(address),
            encode_query(&query)
        );
        match self.get(&path).await {
            Ok(mut value) => match value["data"].take() {
                Value::Object(data) => Ok(Some(data)),
                _ => Err(ClientError::Decode(
                    "no `data` object in the aggregates".into(),
                )),
            },
            Err(ClientError::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One aggregate of `address`, or `None`.
    pub async fn aggregate(&self, address: &str, key: &str) -> Result<Option<Value>, ClientError> {
        Ok(self
            .aggregates(address, &[key])
            .await?
            .and_then(|mut data| data.remove(key)))
    }

    /// The node's version (`/api/v0/version`).
    pub async fn version(&self) -> Result<String, ClientError> {
        let value = self.get("/api/v0/version").await?;
        value["version"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| ClientError::Decode("no `version` in /api/v0/version".into()))
    }

    /// The peers the node is connected to (`/api/v0/p2p/peers`), as it lists them.
    pub async fn peers(&self) -> Result<Value, ClientError> {
        self.get("/api/v0/p2p/peers").await
    }

    /// The node's own p2p addresses (`/api/v0/info/public.json`).
    pub async fn public_addresses(&self) -> Result<Vec<String>, ClientError> {
        let value = self.get("/api/v0/info/public.json").await?;
        Ok(value["node_multi_addresses"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|a| a.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The node's Prometheus metrics (`/metrics`), as name (with labels) → value.
    pub async fn metrics(&self) -> Result<Vec<(String, f64)>, ClientError> {
        Ok(parse_metrics(&self.get_text("/metrics").await?))
    }
}

/// The samples of a Prometheus text exposition: `name{labels} value`, comments skipped.
pub fn parse_metrics(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (name, rest) = match line.rfind('}') {
                Some(end) => (&line[..=end], &line[end + 1..]),
                None => line.split_once(' ')?,
            };
            // A sample may end with a timestamp: `name value timestamp`.
            let value = rest.split_whitespace().next()?.parse().ok()?;
            Some((name.trim().to_owned(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_text() {
        let samples = parse_metrics(
            "# HELP a x\n# TYPE a gauge\na 3\nb{x=\"1 2\"} 4.5\nc 7 1700000000\n\nbad\n",
        );
        assert_eq!(
            samples,
            vec![
                ("a".into(), 3.0),
                ("b{x=\"1 2\"}".into(), 4.5),
                ("c".into(), 7.0)
            ]
        );
    }
}
