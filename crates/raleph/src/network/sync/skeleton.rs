//! Forgotten-message skeletons in sync: their JSON on the wire, and recording the ones the
//! pipeline's proof accepts (`raleph_pipeline::prove_skeleton`, with the other FORGET rules).

use raleph_db::ForgottenRecord;
use raleph_message::{Envelope, time_value};
use raleph_pipeline::Proof;
use serde_json::Value;

use crate::network::Shared;

/// What is kept of a forgotten message, as JSON: the signed fields (chain, sender, type,
/// item hash, time, signature) and the FORGETs that removed it.
pub(super) fn skeleton_json(f: &ForgottenRecord) -> String {
    serde_json::json!({
        "item_hash": f.item_hash,
        "type": f.message_type,
        "chain": f.chain,
        "sender": f.sender,
        "signature": f.signature,
        "item_type": f.item_type,
        "time": time_value(f.time),
        "channel": f.channel,
        "owner": f.owner,
        "payment_type": f.payment_type,
        "size": f.size,
        "forgotten_by": f.forgotten_by,
        "forgotten_at": f.forgotten_at,
    })
    .to_string()
}

/// A skeleton from its JSON, received at `received` (seconds since the epoch).
pub(super) fn parse_skeleton(json: &str, received: f64) -> Option<ForgottenRecord> {
    let v: Value = serde_json::from_str(json).ok()?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    Some(ForgottenRecord {
        item_hash: text("item_hash")?,
        message_type: text("type")?,
        chain: text("chain")?,
        sender: text("sender")?,
        signature: text("signature"),
        item_type: text("item_type")?,
        time: v.get("time")?.as_f64()?,
        channel: text("channel"),
        owner: text("owner")?,
        payment_type: text("payment_type"),
        size: v.get("size").and_then(Value::as_u64).unwrap_or(0),
        forgotten_by: v
            .get("forgotten_by")?
            .as_array()?
            .iter()
            .filter_map(|h| h.as_str().map(str::to_owned))
            .collect(),
        forgotten_at: v.get("forgotten_at").and_then(Value::as_f64).unwrap_or(0.0),
        reception_time: received,
    })
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
                tracing::debug!(item_hash = %skeleton.item_hash, "sync: a forgotten-message record failed its checks");
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
        let skeleton = ForgottenRecord {
            item_hash: "ab".repeat(32),
            message_type: "POST".into(),
            chain: "ETH".into(),
            sender: "0xsender".into(),
            signature: Some("0xsig".into()),
            item_type: "inline".into(),
            time: 1.0,
            channel: None,
            owner: "0xowner".into(),
            payment_type: None,
            size: 1,
            forgotten_by: vec!["cd".repeat(32)],
            forgotten_at: 2.0,
            reception_time: 2.0,
        };
        let back = parse_skeleton(&skeleton_json(&skeleton), 3.0).expect("parse");
        assert_eq!(back.item_hash, skeleton.item_hash);
        assert_eq!(back.sender, skeleton.sender);
        assert_eq!(back.owner, skeleton.owner);
        assert_eq!(back.forgotten_by, skeleton.forgotten_by);
        assert_eq!(back.reception_time, 3.0, "received when parsed");
        assert!(parse_skeleton("{}", 3.0).is_none());
    }
}
