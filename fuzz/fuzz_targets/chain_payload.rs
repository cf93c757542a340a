//! What a chain and an archive gateway hand a node (anyone may write a contract event or
//! serve an archive): a sync event's payload string, an archive's bytes, a contract message's
//! type and content. Each parses under the default limits or fails with an error, never a
//! panic; a parsed payload keeps within the limits; an archive the writer builds from parsed
//! messages parses back to the same number of messages.

#![no_main]

use libfuzzer_sys::fuzz_target;
use raleph_chain::payload::{ContractMessage, Limits, SyncPayload, parse_archive};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if let Ok(messages) = parse_archive(data, &limits) {
        assert!(messages.len() <= limits.max_archive_messages);
        assert!(data.len() <= limits.max_archive_bytes);
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(SyncPayload::Aleph { messages }) = SyncPayload::parse(text, &limits) {
        assert!(messages.len() <= limits.max_archive_messages);
    }
    // A contract message: the first line is its type, the rest its content.
    let (msgtype, msgcontent) = text.split_once('\n').unwrap_or((text, ""));
    if let Ok(ContractMessage::Inline { message_type, .. }) =
        ContractMessage::parse(msgtype, msgcontent, &limits)
    {
        assert_eq!(message_type, msgtype);
    }
});
