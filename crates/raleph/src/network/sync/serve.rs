//! Serving the sync log: answering a peer's `SyncMessages` with a page of messages and
//! forgotten-message skeletons, or of their item hashes only, bounded in count and bytes.

use std::sync::Arc;

use raleph_db::MessageRecord;
#[cfg(test)]
use raleph_message::{Chain, Envelope, ItemHash, ItemType, MessageType};
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
        .map(|(seq, m)| (seq, Entry::Message(envelope_json(&m))))
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
}

/// A stored message as the envelope its sender signed: compact JSON with sorted keys, written
/// by the message crate (`Envelope::to_gossip_json`).
fn envelope_json(m: &MessageRecord) -> String {
    m.envelope.to_gossip_json()
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
            .map(|(_, m)| m.envelope.item_hash.into())
            .collect(),
        forgotten_hashes: page
            .forgotten
            .into_iter()
            .map(|(_, f)| f.envelope.item_hash.into())
            .collect(),
        next,
        more: total == limit,
        ..SyncResponse::default()
    }
}

#[cfg(test)]
mod tests {
    use raleph_db::ForgottenRecord;

    use super::*;

    fn record(hash: &str) -> MessageRecord {
        MessageRecord {
            envelope: Envelope {
                item_hash: ItemHash::parse(hash).expect("an item hash"),
                message_type: MessageType::Post,
                chain: Chain::Eth,
                sender: "0xA".into(),
                signature: Some("0xsig".into()),
                item_type: ItemType::Inline,
                item_content: Some(r#"{"a":1}"#.into()),
                channel: Some("TEST".into()),
                time: 1.5,
            },
            content: r#"{"a":1}"#.into(),
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
            envelope_json(&record(&hash(0xab))),
            r#"{"chain":"ETH","channel":"TEST","item_content":"{\"a\":1}","item_hash":"00000000000000000000000000000000000000000000000000000000000000ab","item_type":"inline","sender":"0xA","signature":"0xsig","time":1.5,"type":"POST"}"#
        );
    }

    /// The message JSON sync wrote by hand before it used the message crate's writer, kept
    /// to show that the bytes served did not change.
    fn hand_written_json(m: &MessageRecord) -> String {
        let mut fields = serde_json::Map::new();
        fields.insert("chain".into(), m.envelope.chain.as_str().into());
        fields.insert("channel".into(), m.envelope.channel.clone().into());
        fields.insert(
            "item_content".into(),
            m.envelope.item_content.clone().into(),
        );
        fields.insert("item_hash".into(), m.envelope.item_hash.as_str().into());
        fields.insert("item_type".into(), m.envelope.item_type.as_str().into());
        fields.insert("sender".into(), m.envelope.sender.clone().into());
        fields.insert("signature".into(), m.envelope.signature.clone().into());
        fields.insert("time".into(), raleph_message::time_value(m.envelope.time));
        fields.insert("type".into(), m.envelope.message_type.as_str().into());
        serde_json::Value::Object(fields).to_string()
    }

    /// The record the store keeps of an accepted envelope.
    fn stored(envelope: &Envelope) -> MessageRecord {
        MessageRecord {
            envelope: envelope.clone(),
            content: envelope.item_content.clone().unwrap_or_default(),
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
        (file.envelope.item_type, file.envelope.item_content) = (ItemType::Storage, None);
        let mut unsigned = records[1].clone();
        unsigned.envelope.signature = None;
        records.extend([file, unsigned]);
        for record in &records {
            assert_eq!(envelope_json(record), hand_written_json(record));
        }
    }

    #[test]
    fn answers_are_bounded_in_bytes_but_never_empty() {
        let page = |n: u64| raleph_db::SyncPage {
            epoch: "e".into(),
            messages: (1..=n).map(|i| (i * 10, record(&hash(i)))).collect(),
            forgotten: Vec::new(),
            cut_short: false,
        };
        let one = envelope_json(&record(&hash(1))).len();
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
            envelope: Envelope {
                item_content: None,
                ..record(&hash(2)).envelope
            },
            owner: "0xA".into(),
            payment_type: None,
            size: 1,
            forgotten_by: vec![],
            forgotten_at: 2.0,
            reception_time: 2.0,
        };
        let page = raleph_db::SyncPage {
            epoch: "e".into(),
            messages: vec![(10, record(&hash(1))), (30, record(&hash(3)))],
            forgotten: vec![(20, forgotten)],
            cut_short: false,
        };
        let answer = hashes_answer(page, 3);
        assert_eq!(answer.message_hashes, [hash(1), hash(3)]);
        assert_eq!(answer.forgotten_hashes, [hash(2)]);
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
