//! Fixtures shared by the store's integration tests.

use raleph_db::NewMessage;

/// A processed inline message of `message_type` by `sender` (its own owner) at `time`, in
/// channel `TEST`.
pub fn message(hash: &str, message_type: &str, sender: &str, time: f64) -> NewMessage {
    let content = format!(r#"{{"type":"{message_type}","address":"{sender}","time":{time}}}"#);
    NewMessage {
        item_hash: hash.into(),
        message_type: message_type.into(),
        chain: "ETH".into(),
        sender: sender.into(),
        signature: Some(format!("sig-{hash}")),
        item_type: "inline".into(),
        item_content: Some(content.clone()),
        content,
        channel: Some("TEST".into()),
        time,
        size: 100,
        owner: sender.into(),
        content_type: None,
        content_ref: None,
        content_key: None,
        content_item_hash: None,
        payment_type: None,
        tags: Vec::new(),
        reception_time: time + 0.25,
    }
}
