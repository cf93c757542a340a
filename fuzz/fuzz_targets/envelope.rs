//! The message envelope as the API, gossip, sync and the journal read it: JSON bytes, then
//! `Envelope::from_json`. A valid envelope re-serializes (`to_json`, `to_gossip_json`) to JSON
//! that parses to the same envelope, and its inline content parses without a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use raleph_message::{Content, Envelope};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Ok(envelope) = Envelope::from_json(&value) else {
        return;
    };
    let served = Envelope::from_json(&envelope.to_json());
    assert_eq!(
        served.as_ref(),
        Ok(&envelope),
        "to_json does not parse back"
    );
    let gossip: Value =
        serde_json::from_str(&envelope.to_gossip_json()).expect("gossip JSON is not JSON");
    let relayed = Envelope::from_json(&gossip);
    assert_eq!(
        relayed.as_ref(),
        Ok(&envelope),
        "to_gossip_json does not parse back"
    );
    let _ = envelope.inline_size();
    if let Some(raw) = &envelope.item_content {
        let _ = Content::parse(
            envelope.message_type,
            raw.as_bytes(),
            &envelope.sender,
            envelope.time,
        );
    }
});
