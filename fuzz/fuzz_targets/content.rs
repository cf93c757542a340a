//! Message content of the six types: `Content::parse`, the first byte choosing the type.
//! Content that parses keeps what it needs in its stored value: that value, serialized and
//! parsed again (with another sender and envelope time), gives the same content.

#![no_main]

use libfuzzer_sys::fuzz_target;
use raleph_message::{Content, MessageType};

const TYPES: [MessageType; 6] = [
    MessageType::Post,
    MessageType::Aggregate,
    MessageType::Store,
    MessageType::Program,
    MessageType::Instance,
    MessageType::Forget,
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, raw)) = data.split_first() else {
        return;
    };
    let message_type = TYPES[usize::from(selector) % TYPES.len()];
    let sender = "0x101d8D16372dBf5f1614adaE95Ee5CCE61998Fc9";
    let Ok(content) = Content::parse(message_type, raw, sender, 1_700_000_000.25) else {
        return;
    };
    // What indexing reads from every message.
    let _ = content.tags();
    let _ = content.payment_type();
    let _ = content.content_type();
    let _ = content.content_ref();
    let _ = content.content_key();
    let _ = content.content_item_hash();
    let stored = serde_json::to_vec(&content.value).expect("content value serializes");
    let again = Content::parse(message_type, &stored, "another sender", 0.5);
    assert_eq!(
        again.as_ref(),
        Ok(&content),
        "the stored value does not parse back"
    );
});
