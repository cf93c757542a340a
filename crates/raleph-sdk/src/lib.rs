//! A Rust client for Aleph nodes (raleph or the reference, pyaleph): make keys, build and
//! sign messages of every type as the Python SDK does, submit them, upload and download
//! files, and read back messages, posts and aggregates, or follow them live.
//!
//! It depends on no server-side crate: only the message model (`raleph-message`) and the
//! signatures (`raleph-crypto`).
//!
//! # Overview
//!
//! - [`Signer`]: an ETH or SOL key, fresh, from hex or bytes, or from a BIP-39 mnemonic
//!   (ETH at `m/44'/60'/0'/0/0` as `eth_account`, SOL at `m/44'/501'/0'/0'` as Phantom).
//! - [`Draft`]: a message before signing: [`Draft::post`], [`Draft::amend`],
//!   [`Draft::aggregate`], [`Draft::store`], [`Draft::program`], [`Draft::instance`],
//!   [`Draft::forget`]; [`Draft::on_behalf_of`] for delegated writes. Signing gives a
//!   [`SignedMessage`] whose inline `item_content` is the SDK's bytes and whose `item_hash`
//!   is their sha256.
//! - [`Client`]: one node: [`Client::publish`], [`Client::sign_and_publish`] (large content
//!   stored apart, as the Python SDK does), [`Client::upload_file`],
//!   [`Client::download_file`], [`Client::list_messages`] with a [`MessageFilter`],
//!   [`Client::message_status`], [`Client::posts`] with a [`PostFilter`],
//!   [`Client::aggregates`], and [`Client::watch`], a `Stream` of messages over the
//!   websocket.
//!
//! # Example
//!
//! ```no_run
//! use raleph_sdk::{Chain, Client, Draft, Signer};
//! use serde_json::json;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let signer = Signer::from_mnemonic(
//!     Chain::Eth,
//!     "test test test test test test test test test test test junk",
//!     "",
//! )?;
//! let client = Client::new("http://127.0.0.1:4024");
//!
//! let mut profile = serde_json::Map::new();
//! profile.insert("name".into(), json!("Alice"));
//! let set = Draft::aggregate("profile", profile).channel("TEST").sign(&signer);
//! client.publish(&set, true).await?;
//!
//! let value = client.aggregate(&signer.address(), "profile").await?;
//! assert_eq!(value, Some(json!({"name": "Alice"})));
//! # Ok(())
//! # }
//! ```
//!
//! More in `examples/`: `post` (publish, amend, read back) and `watch` (follow a channel):
//! `cargo run -p raleph-sdk --example post -- http://127.0.0.1:4024`.

#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod client;
mod filter;
pub mod json;
mod message;
pub mod signer;
mod ws;

pub use client::{
    Client, ClientError, MAX_INLINE_CHARS, MessagePage, MessageStatus, PostPage, Publication,
    parse_metrics,
};
pub use filter::{MessageFilter, PostFilter, SortBy, SortOrder};
pub use message::{Draft, InstanceSpec, ProgramSpec, SignedMessage, now};
pub use raleph_crypto::{EthSigner, SolSigner};
pub use raleph_message::{Chain, MessageType};
pub use signer::{KeyError, Sign, Signer};

use raleph_crypto::SignedFields;
use raleph_message::sha256_hex;
use serde_json::{Map, Value, json};

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

/// A signed STORE message pinning the file with this sha256, as [`signed_message`] makes it.
/// New code: [`Draft::store`].
pub fn store_message(
    signer: &impl Sign,
    file_hash: &str,
    channel: Option<&str>,
    time: f64,
) -> Value {
    let mut content = Map::new();
    content.insert("item_type".into(), "storage".into());
    content.insert("item_hash".into(), file_hash.into());
    signed_message(signer, MessageType::Store, content, channel, time)
}

/// A signed inline message from a content map kept in its order, with `address` and `time`
/// appended when missing, serialized by `serde_json` (non-ASCII unescaped). The node's own
/// tests and the benchmarks' corpora rely on these exact bytes; new code uses [`Draft`],
/// which writes the Python SDK's bytes.
pub fn signed_message(
    signer: &impl Sign,
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
    let chain = signer.chain();
    let fields = SignedFields {
        chain,
        sender: &sender,
        message_type: message_type.as_str(),
        item_hash: &item_hash,
        time,
    };
    json!({
        "sender": sender,
        "chain": chain.as_str(),
        "signature": signer.sign_fields(&fields),
        "type": message_type.as_str(),
        "item_type": "inline",
        "item_content": item_content,
        "item_hash": item_hash,
        "time": time,
        "channel": channel,
    })
}
