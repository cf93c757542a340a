//! Fixtures shared by the store's integration tests.

use raleph_db::{Chain, Envelope, ItemType, MessageRecord, MessageStatus, NewMessage};

// Shared with the crate's unit tests; not every test binary uses every helper.
#[allow(dead_code, unused_imports)]
#[path = "../../src/test_names.rs"]
mod test_names;
#[allow(unused_imports)]
pub use test_names::{h, name};

/// A processed inline message `name` (see [`h`]) of `message_type` by `sender` (its own
/// owner) at `time`, in channel `TEST`.
pub fn message(name: &str, message_type: &str, sender: &str, time: f64) -> NewMessage {
    let content = format!(r#"{{"type":"{message_type}","address":"{sender}","time":{time}}}"#);
    NewMessage {
        record: MessageRecord {
            envelope: Envelope {
                item_hash: h(name),
                message_type: message_type.parse().expect("a message type"),
                chain: Chain::Eth,
                sender: sender.into(),
                signature: Some(format!("sig-{name}")),
                item_type: ItemType::Inline,
                item_content: Some(content.clone()),
                channel: Some("TEST".into()),
                time,
            },
            content,
            size: 100,
            reception_time: time + 0.25,
            status: MessageStatus::Processed,
        },
        owner: sender.into(),
        content_type: None,
        content_ref: None,
        content_key: None,
        content_item_hash: None,
        payment_type: None,
        tags: Vec::new(),
    }
}
