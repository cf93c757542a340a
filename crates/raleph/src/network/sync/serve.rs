//! Serving the sync log: answering a peer's `SyncMessages` with a page of messages and
//! forgotten-message skeletons, or of their item hashes only, bounded in count and bytes.

use std::sync::Arc;

use raleph_db::MessageRecord;
use raleph_message::time_value;
use raleph_p2p::{PeerId, RalephRequest, RalephResponse, SyncResponse};
use serde_json::{Map, Value};

use super::MAX_BATCH;
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
            let limit = limit.clamp(1, MAX_BATCH) as usize;
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

/// A stored message as the envelope its sender signed: compact JSON with sorted keys.
fn envelope_json(m: &MessageRecord) -> String {
    let mut fields = Map::new();
    fields.insert("chain".into(), m.chain.clone().into());
    fields.insert("channel".into(), m.channel.clone().into());
    fields.insert("item_content".into(), m.item_content.clone().into());
    fields.insert("item_hash".into(), m.item_hash.clone().into());
    fields.insert("item_type".into(), m.item_type.clone().into());
    fields.insert("sender".into(), m.sender.clone().into());
    fields.insert("signature".into(), m.signature.clone().into());
    fields.insert("time".into(), time_value(m.time));
    fields.insert("type".into(), m.message_type.clone().into());
    Value::Object(fields).to_string()
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

    #[test]
    fn envelope_json_is_sorted_and_complete() {
        assert_eq!(
            envelope_json(&record("h")),
            r#"{"chain":"ETH","channel":"TEST","item_content":"{\"a\":1}","item_hash":"h","item_type":"inline","sender":"0xA","signature":"0xsig","time":1.5,"type":"POST"}"#
        );
    }

    #[test]
    fn answers_are_bounded_in_bytes_but_never_empty() {
        let page = |n: u64| raleph_db::SyncPage {
            epoch: "e".into(),
            messages: (1..=n)
                .map(|i| (i * 10, record(&format!("h{i}"))))
                .collect(),
            forgotten: Vec::new(),
            cut_short: false,
        };
        let one = envelope_json(&record("h1")).len();
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
