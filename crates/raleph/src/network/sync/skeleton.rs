//! Forgotten-message skeletons in sync: their JSON on the wire, and recording the ones the
//! pipeline's proof accepts (`raleph_pipeline::prove_skeleton`, with the other FORGET rules).

use raleph_db::ForgottenRecord;
use raleph_message::{Envelope, ItemHash, time_value};
use raleph_pipeline::Proof;
use serde_json::Value;

use crate::network::Shared;

/// What is kept of a forgotten message, as JSON: the signed fields (chain, sender, type,
/// item hash, time, signature) and the FORGETs that removed it.
pub(super) fn skeleton_json(f: &ForgottenRecord) -> String {
    serde_json::json!({
        "item_hash": f.envelope.item_hash,
        "type": f.envelope.message_type,
        "chain": f.envelope.chain,
        "sender": f.envelope.sender,
        "signature": f.envelope.signature,
        "item_type": f.envelope.item_type,
        "time": time_value(f.envelope.time),
        "channel": f.envelope.channel,
        "owner": f.owner,
        "payment_type": f.payment_type,
        "size": f.size,
        "forgotten_by": f.forgotten_by,
        "forgotten_at": f.forgotten_at,
    })
    .to_string()
}

/// A skeleton from its JSON, received at `received` (seconds since the epoch). `None` when a
/// field is missing or not of its type (an item hash, a chain, a message type); FORGET hashes
/// that are no item hash are left out.
pub(super) fn parse_skeleton(json: &str, received: f64) -> Option<ForgottenRecord> {
    let v: Value = serde_json::from_str(json).ok()?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    Some(ForgottenRecord {
        envelope: Envelope {
            item_hash: typed(&v, "item_hash")?,
            message_type: typed(&v, "type")?,
            chain: typed(&v, "chain")?,
            sender: text("sender")?,
            signature: text("signature"),
            item_type: typed(&v, "item_type")?,
            item_content: None,
            time: v.get("time")?.as_f64()?,
            channel: text("channel"),
        },
        owner: text("owner")?,
        payment_type: text("payment_type"),
        size: v.get("size").and_then(Value::as_u64).unwrap_or(0),
        forgotten_by: v
            .get("forgotten_by")?
            .as_array()?
            .iter()
            .filter_map(|h| ItemHash::parse(h.as_str()?).ok())
            .collect(),
        forgotten_at: v.get("forgotten_at").and_then(Value::as_f64).unwrap_or(0.0),
        reception_time: received,
    })
}

/// A field of one of the message crate's types, if present and well-formed.
fn typed<T: std::str::FromStr>(v: &Value, key: &str) -> Option<T> {
    v.get(key)?.as_str()?.parse().ok()
}

/// Records the skeletons that are proven (see [`raleph_pipeline::prove_skeleton`]: signed by
/// their sender, and named by a FORGET that sender may make, found in this page or already on
/// this node). Returns the skeletons still unproven, to try again with the next pages.
pub(super) async fn apply_forgotten(
    shared: &Shared,
    skeletons: Vec<ForgottenRecord>,
    page: &[Envelope],
) -> anyhow::Result<Vec<ForgottenRecord>> {
    if skeletons.is_empty() {
        return Ok(skeletons);
    }
    let reader = shared.reader.clone();
    let page = page.to_vec();
    // The proofs read the store: off the async threads, one task for the whole page.
    let judged = tokio::task::spawn_blocking(move || {
        skeletons
            .into_iter()
            .map(|skeleton| {
                let proof = raleph_pipeline::prove_skeleton(reader.as_ref(), &skeleton, &page);
                (skeleton, proof)
            })
            .collect::<Vec<_>>()
    })
    .await?;
    let mut unproven = Vec::new();
    for (skeleton, proof) in judged {
        match proof {
            Proof::Proven => {
                shared.pipeline.record_forgotten(skeleton).await?;
            }
            Proof::Disproven => {
                tracing::debug!(item_hash = %skeleton.envelope.item_hash, "sync: a forgotten-message record failed its checks");
            }
            Proof::Unknown if unproven.len() < shared.config.max_carried_skeletons => {
                unproven.push(skeleton)
            }
            Proof::Unknown => {}
        }
    }
    Ok(unproven)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skeleton_survives_a_round_trip_through_its_json() {
        let hash = |h: &str| ItemHash::parse(&h.repeat(32)).expect("an item hash");
        let skeleton = ForgottenRecord {
            envelope: Envelope {
                item_hash: hash("ab"),
                message_type: raleph_message::MessageType::Post,
                chain: raleph_message::Chain::Eth,
                sender: "0xsender".into(),
                signature: Some("0xsig".into()),
                item_type: raleph_message::ItemType::Inline,
                item_content: None,
                time: 1.0,
                channel: None,
            },
            owner: "0xowner".into(),
            payment_type: None,
            size: 1,
            forgotten_by: vec![hash("cd")],
            forgotten_at: 2.0,
            reception_time: 2.0,
        };
        let back = parse_skeleton(&skeleton_json(&skeleton), 3.0).expect("parse");
        assert_eq!(back.envelope.item_hash, skeleton.envelope.item_hash);
        assert_eq!(back.envelope.sender, skeleton.envelope.sender);
        assert_eq!(back.owner, skeleton.owner);
        assert_eq!(back.forgotten_by, skeleton.forgotten_by);
        assert_eq!(back.reception_time, 3.0, "received when parsed");
        assert!(parse_skeleton("{}", 3.0).is_none());
        // A field that is not of its type refuses the whole skeleton.
        let bad_chain = skeleton_json(&skeleton).replace("\"ETH\"", "\"NOT-A-CHAIN\"");
        assert!(parse_skeleton(&bad_chain, 3.0).is_none());
    }
}
