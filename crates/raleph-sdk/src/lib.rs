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
