//! Gossip in and out.
//!
//! In: a message from a peer is parsed (plain JSON; percent-decoded only if that fails, as
//! reference nodes percent-decode every payload), submitted to the pipeline like an API
//! submission (the signature is verified there), and only then reported to gossipsub: valid
//! messages are forwarded, invalid ones are dropped and counted against their signed author
//! (the relaying peer only when it is the author, or the author is unknown: reference nodes
//! relay gossip unchecked).
//! Out: accepted API submissions, published as the reference does.

use std::sync::Arc;

use raleph_message::Envelope;
use raleph_p2p::{MessageId, PeerId, PublishError, Validation};
use raleph_pipeline::SubmitOutcome;
use serde_json::Value;
use tokio::sync::mpsc;

use super::Shared;

/// Checks and submits one received message, then tells gossipsub whether to forward it.
pub(super) async fn check_and_submit(
    shared: &Shared,
    id: MessageId,
    source: PeerId,
    author: Option<PeerId>,
    topic: &str,
    data: &[u8],
) {
    let verdict = if topic == shared.message_topic {
        verdict(shared, data).await
    } else {
        Validation::Ignore
    };
    if verdict == Validation::Reject {
        tracing::debug!(%source, author = ?author, "p2p: invalid message dropped");
    }
    let _ = shared
        .handle
        .report_validation(id, source, author, verdict)
        .await;
}

async fn verdict(shared: &Shared, data: &[u8]) -> Validation {
    let Some(envelope) = parse(data) else {
        return Validation::Reject;
    };
    // Forwarded once its envelope, hash and signature passed; the writer applies it next.
    // Not synced to disk first: a crash before it is applied is repaired by sync pulls.
    match shared.pipeline.offer(envelope, "p2p").await {
        Ok(SubmitOutcome::Rejected(_)) => Validation::Reject,
        Ok(SubmitOutcome::Known(raleph_db::MessageStatus::Rejected)) => Validation::Reject,
        Ok(_) => Validation::Accept,
        // Not the message's fault: do not forward it, do not blame the peer; it comes back
        // through sync.
        Err(_) => Validation::Ignore,
    }
}

/// A gossiped message envelope: plain JSON, or percent-encoded JSON as a fallback.
pub(super) fn parse(data: &[u8]) -> Option<Envelope> {
    let value: Value = match serde_json::from_slice(data) {
        Ok(value) => value,
        Err(_) => serde_json::from_slice(&percent_decode(data)?).ok()?,
    };
    Envelope::from_json(&value).ok()
}

/// `%xx` sequences decoded; `None` if one is malformed.
fn percent_decode(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        if data[i] == b'%' {
            let hex = data.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(data[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Publishes what the API accepted, one message at a time, in order.
pub(super) async fn publish_loop(shared: Arc<Shared>, mut outbound: mpsc::Receiver<Vec<u8>>) {
    while let Some(message) = outbound.recv().await {
        match shared.handle.publish(&shared.message_topic, message).await {
            Ok(_) => {}
            // Alone, or already seen: peers that connect later get it through sync.
            Err(PublishError::InsufficientPeers | PublishError::Duplicate) => {}
            Err(PublishError::Stopped(_)) => return,
            Err(e) => tracing::warn!("p2p: publishing a message failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode(b"a%20b%7B").as_deref(), Some(&b"a b{"[..]));
        assert_eq!(percent_decode(b"100%"), None);
        assert_eq!(percent_decode(b"%zz"), None);
    }

    #[test]
    fn junk_is_not_a_message() {
        assert!(parse(b"").is_none());
        assert!(parse(b"{}").is_none());
        assert!(parse(b"\xff\xfe%").is_none());
        assert!(parse(br#"{"type":"POST"}"#).is_none());
    }
}
