//! The Aleph message model: the signed envelope, the six content types, item hashes and limits.
//!
//! Pure data and validation: no IO, no async runtime. Everything here is applied to untrusted
//! input, so every function returns an error instead of panicking.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod chain;
pub mod content;
mod envelope;
mod item_hash;
pub mod limits;
mod python_json;

pub use chain::{Chain, SignatureScheme, UnknownChain};
pub use content::{Content, ContentError, TypedContent};
pub use envelope::{Envelope, EnvelopeError, ItemType, MessageType, sha256_hex, time_value};
pub use item_hash::{ItemHash, ItemHashKind};
pub use python_json::push_python_json_string;
