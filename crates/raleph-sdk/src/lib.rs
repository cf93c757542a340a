//! A small client for the node API: builds and signs inline messages as the Python SDK does,
//! submits them, and reads messages back. Never depends on a server-side crate.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use raleph_crypto::{EthSigner, SignedFields};
use raleph_message::{Chain, MessageType, sha256_hex};
use serde_json::{Map, Value, json};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("request to the node failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("the node answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("content must be a JSON object")]
    NotAnObject,
    #[error("file I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Hashes a file as a STORE message names it (sha256 hex), reporting bytes read.
pub async fn sha256_file(
    path: &std::path::Path,
    progress: impl Fn(u64),
) -> Result<String, ClientError> {
    use sha2::Digest;
    use tokio::io::AsyncReadExt;
    let mut file = tokio::fs::File::open(path).await?;
    let mut hasher = sha2::Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        progress(n as u64);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// A signed STORE message pinning the file with this sha256.
pub fn store_message(
    signer: &EthSigner,
    file_hash: &str,
    channel: Option<&str>,
    time: f64,
) -> Value {
    let mut content = Map::new();
    content.insert("item_type".into(), "storage".into());
    content.insert("item_hash".into(), file_hash.into());
    signed_message(signer, MessageType::Store, content, channel, time)
}

/// What a PROGRAM runs and how: the fields `raleph program deploy` sets.
#[derive(Debug, Clone)]
pub struct ProgramSpec {
    /// The STORE message of the code.
    pub code_ref: String,
    /// `plain` (a component) or `zip` (a bundle).
    pub encoding: String,
    pub entrypoint: String,
    /// Follow new versions of the code (a STORE whose `ref` is `code_ref`).
    pub use_latest: bool,
    pub runtime_ref: String,
    pub runtime_comment: String,
    pub memory_mib: u32,
    pub vcpus: u32,
    pub seconds: u32,
    pub internet: bool,
    pub variables: Map<String, Value>,
    /// `on.message` subscriptions.
    pub on_message: Vec<Value>,
    /// Extra volumes, as the message carries them.
    pub volumes: Vec<Value>,
    pub allow_amend: bool,
    /// The original this is a new version of.
    pub replaces: Option<String>,
}

impl ProgramSpec {
    /// The PROGRAM content, in the shape the Python SDK builds.
    pub fn content(&self) -> Map<String, Value> {
        let mut on = json!({"http": true, "persistent": false});
        if !self.on_message.is_empty() {
            on["message"] = Value::Array(self.on_message.clone());
        }
        let mut content = json!({
            "type": "vm-function",
            "allow_amend": self.allow_amend,
            "code": {
                "encoding": self.encoding,
                "entrypoint": self.entrypoint,
                "ref": self.code_ref,
                "use_latest": self.use_latest,
            },
            "on": on,
            "environment": {
                "reproducible": false,
                "internet": self.internet,
                "aleph_api": true,
                "shared_cache": false,
            },
            "resources": {"vcpus": self.vcpus, "memory": self.memory_mib, "seconds": self.seconds},
            "runtime": {"ref": self.runtime_ref, "use_latest": true, "comment": self.runtime_comment},
            "volumes": self.volumes,
            "variables": self.variables,
        });
        if let Some(original) = &self.replaces {
            content["replaces"] = json!(original);
        }
        match content {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }
}

/// Builds a signed inline message. `content` gets `address` and `time` added, then is
/// serialized compactly (the item content) and hashed.
pub fn signed_message(
    signer: &EthSigner,
    message_type: MessageType,
    mut content: Map<String, Value>,
    channel: Option<&str>,
    time: f64,
) -> Value {
    let sender = signer.address();
    content
        .entry("address")
        .or_insert_with(|| sender.clone().into());
    content.entry("time").or_insert_with(|| json!(time));
    let item_content = Value::Object(content).to_string();
    let item_hash = sha256_hex(item_content.as_bytes());
    let fields = SignedFields {
        chain: Chain::Eth,
        sender: &sender,
        message_type: message_type.as_str(),
        item_hash: &item_hash,
        time,
    };
    json!({
        "sender": sender,
        "chain": "ETH",
        "signature": signer.sign_message(&fields),
        "type": message_type.as_str(),
        "item_type": "inline",
        "item_content": item_content,
        "item_hash": item_hash,
        "time": time,
        "channel": channel,
    })
}

/// An HTTP client bound to one node.
pub struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    pub fn new(base: &str) -> Self {
        Client {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
        }
    }

    async fn json(response: reqwest::Response) -> Result<(u16, Value), ClientError> {
        let status = response.status().as_u16();
        let text = response.text().await?;
        match serde_json::from_str(&text) {
            Ok(value) => Ok((status, value)),
            Err(_) => Err(ClientError::Status { status, body: text }),
        }
    }

    /// Submits a message; returns the HTTP status and the publication body.
    pub async fn submit(&self, message: &Value, sync: bool) -> Result<(u16, Value), ClientError> {
        let response = self
            .http
            .post(format!("{}/api/v0/messages", self.base))
            .json(&json!({ "sync": sync, "message": message }))
            .send()
            .await?;
        Self::json(response).await
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
        let response = self
            .http
            .post(format!("{}/api/v0/storage/add_file", self.base))
            .multipart(form)
            .send()
            .await?;
        Self::json(response).await
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
        let response = self
            .http
            .get(format!("{}/api/v0/storage/raw/{hash}", self.base))
            .send()
            .await?;
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

    pub async fn get(&self, path_and_query: &str) -> Result<Value, ClientError> {
        let response = self
            .http
            .get(format!("{}{path_and_query}", self.base))
            .send()
            .await?;
        match Self::json(response).await? {
            (200, value) => Ok(value),
            (status, value) => Err(ClientError::Status {
                status,
                body: value.to_string(),
            }),
        }
    }

    pub async fn message(&self, item_hash: &str) -> Result<Value, ClientError> {
        self.get(&format!("/api/v0/messages/{item_hash}")).await
    }

    /// `query` is a ready query string, e.g. `addresses=0x…&pagination=10`.
    pub async fn messages(&self, query: &str) -> Result<Value, ClientError> {
        self.get(&format!("/api/v0/messages.json?{query}")).await
    }
}
