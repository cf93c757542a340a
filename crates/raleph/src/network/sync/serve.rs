//! Serving the sync log: answering a peer's `SyncMessages` with a page of messages and
//! forgotten-message skeletons, or of their item hashes only, bounded in count and bytes.

use std::sync::Arc;

use raleph_db::MessageRecord;
use raleph_message::{Envelope, ItemHash};
use raleph_p2p::{PeerId, RalephRequest, RalephResponse, SyncResponse};

use super::skeleton::skeleton_json;
use crate::network::Shared;

/// Answers a `/raleph/1` request from a peer.
pub(crate) async fn answer(
    shared: &Arc<Shared>,
    peer: PeerId,
    request: RalephRequest,
) -> RalephResponse {
    match request {
        RalephRequest::SyncMessages {
            after,
            limit,
            hashes_only,
        } => {
            // `max(1)` last: a config built in code may say 0 (the checked one cannot).
            let limit = limit.min(shared.config.max_served_batch).max(1) as usize;
            let max_bytes = shared.config.max_answer_bytes;
            let reader = shared.reader.clone();
            // Hashes only are small whatever the messages' size; full messages are read no further
            // than the answer can carry.
            let read_bytes = if hashes_only { usize::MAX } else { max_bytes };
            let page =
                tokio::task::spawn_blocking(move || reader.sync_log(after, limit, read_bytes))
                    .await;
            match page {
                Ok(Ok(page)) if hashes_only => RalephResponse::Sync(hashes_answer(page, limit)),
                Ok(Ok(page)) => RalephResponse::Sync(sync_answer(page, after, limit, max_bytes)),
                Ok(Err(e)) => error(format!("reading the sync log failed: {e}")),
                Err(e) => error(format!("reading the sync log failed: {e}")),
            }
        }
        RalephRequest::FetchFile { hash, offset, len } => {
            crate::network::fetch::answer(shared, &hash, offset, len).await
        }
        other => {
            tracing::debug!(%peer, ?other, "p2p: unexpected request");
            error("unsupported request".into())
        }
    }
}

fn error(message: String) -> RalephResponse {
    RalephResponse::Error { message }
}

fn sync_answer(
    page: raleph_db::SyncPage,
    after: u64,
    limit: usize,
    max_bytes: usize,
) -> SyncResponse {
    // The two logs share one numbering: merge them in sequence order.
    let mut entries: Vec<(u64, Entry)> = page
        .messages
        .into_iter()
        .map(|(seq, m)| match envelope_json(&m) {
            Some(json) => (seq, Entry::Message(json)),
            None => {
                tracing::warn!(item_hash = %m.item_hash, "sync: a stored message is no valid envelope; not served");
                (seq, Entry::Unreadable)
            }
        })
        .chain(
            page.forgotten
                .into_iter()
                .map(|(seq, f)| (seq, Entry::Forgotten(skeleton_json(&f)))),
        )
        .collect();
    entries.sort_by_key(|(seq, _)| *seq);
    let total = entries.len();
    let (mut messages, mut forgotten) = (Vec::new(), Vec::new());
    let (mut next, mut bytes, mut taken) = (after, 0, 0);
    for (seq, entry) in entries {
        let len = match &entry {
            Entry::Message(json) | Entry::Forgotten(json) => json.len(),
            Entry::Unreadable => 0,
        };
        // Always at least one entry, so a page can never stall on one large message.
        if taken > 0 && bytes + len > max_bytes {
            break;
        }
        bytes += len;
        taken += 1;
        match entry {
            Entry::Message(json) => messages.push(json),
            Entry::Forgotten(json) => forgotten.push(json),
            Entry::Unreadable => {}
        }
        next = seq;
    }
    let more = taken < total || total == limit || page.cut_short;
    SyncResponse {
        epoch: page.epoch,
        messages,
        forgotten,
        next,
        more,
        ..SyncResponse::default()
    }
}

enum Entry {
    Message(String),
    Forgotten(String),
    /// A stored message that is no valid envelope: passed over (no peer could read it), but
    /// counted, so the page still moves past it.
    Unreadable,
}

/// A page of item hashes only: small whatever the messages' size, so never cut short.
fn hashes_answer(page: raleph_db::SyncPage, limit: usize) -> SyncResponse {
    let seqs = page.messages.iter().map(|(seq, _)| *seq);
    let next = seqs
        .chain(page.forgotten.iter().map(|(seq, _)| *seq))
        .max()
        .unwrap_or_default();
    let total = page.messages.len() + page.forgotten.len();
    SyncResponse {
        epoch: page.epoch,
        message_hashes: page
            .messages
            .into_iter()
            .map(|(_, m)| m.item_hash)
            .collect(),
        forgotten_hashes: page
            .forgotten
            .into_iter()
            .map(|(_, f)| f.item_hash)
            .collect(),
        next,
        more: total == limit,
        ..SyncResponse::default()
    }
}

/// A stored message as the envelope its sender signed: compact JSON with sorted keys, written
/// by the message crate (`Envelope::to_gossip_json`). `None` for a record that is no valid
/// envelope.
fn envelope_json(m: &MessageRecord) -> Option<String> {
    envelope_of(m).map(|envelope| envelope.to_gossip_json())
}

/// The envelope a stored message was accepted as. The store's strings were written from a
/// checked envelope, so each parses back to the same value.
fn envelope_of(m: &MessageRecord) -> Option<Envelope> {
    Some(Envelope {
        sender: m.sender.clone(),
        chain: m.chain.parse().ok()?,
        signature: m.signature.clone(),
        message_type: m.message_type.parse().ok()?,
        item_type: m.item_type.parse().ok()?,
        item_content: m.item_content.clone(),
        item_hash: ItemHash::parse(&m.item_hash).ok()?,
        time: m.time,
        channel: m.channel.clone(),
    })
}

#[cfg(test)]
mod tests {
    use raleph_db::ForgottenRecord;

    use super::*;

    fn record(hash: &str) -> MessageRecord {
        MessageRecord {
            item_hash: hash.into(),
            message_type: "POST".into(),
            chain: "ETH".into(),
            sender: "0xA".into(),
            signature: Some("0xsig".into()),
            item_type: "inline".into(),
            item_content: Some(r#"{"a":1}"#.into()),
            content: r#"{"a":1}"#.into(),
            channel: Some("TEST".into()),
            time: 1.5,
            size: 7,
            reception_time: 2.0,
            status: raleph_db::MessageStatus::Processed,
        }
    }

    /// A well-formed item hash for test records.
    fn hash(i: u64) -> String {
        format!("{i:064x}")
    }

    #[test]
    fn envelope_json_is_sorted_and_complete() {
        assert_eq!(
            envelope_json(&record(&hash(0xab))).expect("an envelope"),
            r#"{"chain":"ETH","channel":"TEST","item_content":"{\"a\":1}","item_hash":"00000000000000000000000000000000000000000000000000000000000000ab","item_type":"inline","sender":"0xA","signature":"0xsig","time":1.5,"type":"POST"}"#
        );
    }

    /// The message JSON sync wrote by hand before it used the message crate's writer, kept
    /// to show that the bytes served did not change.
    fn hand_written_json(m: &MessageRecord) -> String {
        let mut fields = serde_json::Map::new();
        fields.insert("chain".into(), m.chain.clone().into());
        fields.insert("channel".into(), m.channel.clone().into());
        fields.insert("item_content".into(), m.item_content.clone().into());
        fields.insert("item_hash".into(), m.item_hash.clone().into());
        fields.insert("item_type".into(), m.item_type.clone().into());
        fields.insert("sender".into(), m.sender.clone().into());
        fields.insert("signature".into(), m.signature.clone().into());
        fields.insert("time".into(), raleph_message::time_value(m.time));
        fields.insert("type".into(), m.message_type.clone().into());
        serde_json::Value::Object(fields).to_string()
    }

    /// The record the store keeps of an accepted envelope (the pipeline writes each field's
    /// string form).
    fn stored(envelope: &Envelope) -> MessageRecord {
        MessageRecord {
            item_hash: envelope.item_hash.to_string(),
            message_type: envelope.message_type.to_string(),
            chain: envelope.chain.to_string(),
            sender: envelope.sender.clone(),
            signature: envelope.signature.clone(),
            item_type: envelope.item_type.to_string(),
            item_content: envelope.item_content.clone(),
            content: envelope.item_content.clone().unwrap_or_default(),
            channel: envelope.channel.clone(),
            time: envelope.time,
            size: 0,
            reception_time: 2.0,
            status: raleph_db::MessageStatus::Processed,
        }
    }

    #[test]
    fn served_json_of_a_signed_message_is_the_hand_written_bytes() {
        let signer = raleph_crypto::EthSigner::new_random();
        let mut content = serde_json::Map::new();
        content.insert("type".into(), "note".into());
        content.insert(
            "content".into(),
            serde_json::json!({"body": "héllo \"quoted\" </>"}),
        );
        let mut records = Vec::new();
        for (message_type, channel, time) in [
            (
                raleph_message::MessageType::Post,
                Some("TEST"),
                1_717_000_000.123,
            ),
            (raleph_message::MessageType::Post, None, 1_717_000_000.0),
            (raleph_message::MessageType::Aggregate, Some("ALEPH"), 1.5),
        ] {
            let json =
                raleph_sdk::signed_message(&signer, message_type, content.clone(), channel, time);
            let envelope = Envelope::from_json(&json).expect("a signed envelope");
            records.push(stored(&envelope));
        }
        // A message whose content is a stored file, and one without a signature.
        let mut file = records[0].clone();
        (file.item_type, file.item_content) = ("storage".into(), None);
        let mut unsigned = records[1].clone();
        unsigned.signature = None;
        records.extend([file, unsigned]);
        for record in &records {
            assert_eq!(
                envelope_json(record).expect("an envelope"),
                hand_written_json(record)
            );
        }
    }

    #[test]
    fn a_record_that_is_no_envelope_is_passed_over_but_counted() {
        let mut broken = record(&hash(2));
        broken.chain = "NOT-A-CHAIN".into();
        assert!(envelope_json(&broken).is_none());
        let page = raleph_db::SyncPage {
            epoch: "e".into(),
            messages: vec![
                (10, record(&hash(1))),
                (20, broken.clone()),
                (30, record(&hash(3))),
            ],
            forgotten: Vec::new(),
            cut_short: false,
        };
        let answer = sync_answer(page, 0, 5, usize::MAX);
        assert_eq!((answer.messages.len(), answer.next), (2, 30));
        let alone = raleph_db::SyncPage {
            epoch: "e".into(),
            messages: vec![(20, broken)],
            forgotten: Vec::new(),
            cut_short: false,
        };
        let answer = sync_answer(alone, 0, 5, usize::MAX);
        assert_eq!((answer.messages.len(), answer.next), (0, 20));
    }

    #[test]
    fn answers_are_bounded_in_bytes_but_never_empty() {
        let page = |n: u64| raleph_db::SyncPage {
            epoch: "e".into(),
            messages: (1..=n).map(|i| (i * 10, record(&hash(i)))).collect(),
            forgotten: Vec::new(),
            cut_short: false,
        };
        let one = envelope_json(&record(&hash(1))).expect("an envelope").len();
        let answer = sync_answer(page(5), 0, 5, one * 2);
        assert_eq!(
            (answer.messages.len(), answer.next, answer.more),
            (2, 20, true)
        );
        let answer = sync_answer(page(5), 0, 5, 1);
        assert_eq!((answer.messages.len(), answer.next), (1, 10));
        let answer = sync_answer(page(3), 7, 5, usize::MAX);
        assert_eq!(
            (answer.messages.len(), answer.next, answer.more),
            (3, 30, false)
        );
        // A page the store ended early by its byte budget is followed by more.
        let cut = raleph_db::SyncPage {
            cut_short: true,
            ..page(3)
        };
        assert!(sync_answer(cut, 7, 5, usize::MAX).more);
        let answer = sync_answer(page(0), 7, 5, usize::MAX);
        assert_eq!(
            (answer.messages.len(), answer.next, answer.more),
            (0, 7, false)
        );
    }

    #[test]
    fn hash_pages_list_both_logs_and_where_to_go_next() {
        let forgotten = ForgottenRecord {
            item_hash: "gone".into(),
            message_type: "POST".into(),
            chain: "ETH".into(),
            sender: "0xA".into(),
            signature: None,
            item_type: "inline".into(),
            time: 1.0,
            channel: None,
            owner: "0xA".into(),
            payment_type: None,
            size: 1,
            forgotten_by: vec![],
            forgotten_at: 2.0,
            reception_time: 2.0,
        };
        let page = raleph_db::SyncPage {
            epoch: "e".into(),
            messages: vec![(10, record("h1")), (30, record("h3"))],
            forgotten: vec![(20, forgotten)],
            cut_short: false,
        };
        let answer = hashes_answer(page, 3);
        assert_eq!(answer.message_hashes, ["h1", "h3"]);
        assert_eq!(answer.forgotten_hashes, ["gone"]);
        assert!(answer.messages.is_empty() && answer.forgotten.is_empty());
        assert_eq!((answer.next, answer.more), (30, true));
        let empty = raleph_db::SyncPage {
            epoch: "e".into(),
            messages: Vec::new(),
            forgotten: Vec::new(),
            cut_short: false,
        };
        let answer = hashes_answer(empty, 3);
        assert_eq!((answer.next, answer.more), (0, false));
    }
}
