//! Forgotten-message skeletons in sync: their JSON on the wire, and the proof a node asks of
//! one before recording it (signed by its sender, and named by a FORGET its sender may make).

use raleph_db::ForgottenRecord;
use raleph_message::{Envelope, time_value};
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

pub(super) fn parse_skeleton(json: &str) -> Option<ForgottenRecord> {
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
        reception_time: unix_now(),
    })
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Most skeletons kept waiting for their FORGET across pages.
const MAX_CARRIED: usize = 10_000;

/// Records the skeletons that are proven: signed by their sender, and named by a FORGET from
/// that sender or a delegate it allowed, signed too, found in this page or already on this
/// node. A peer cannot make a node drop someone else's message this way; an aggregate element
/// forgotten by key rests on the peer's word until the element is seen (see `names`).
/// Returns the skeletons still unproven.
pub(super) async fn apply_forgotten(
    shared: &Shared,
    skeletons: Vec<ForgottenRecord>,
    page: &[Envelope],
) -> anyhow::Result<Vec<ForgottenRecord>> {
    let mut unproven = Vec::new();
    for skeleton in skeletons {
        match proven(shared, &skeleton, page).await {
            Some(true) => {
                shared.pipeline.record_forgotten(skeleton).await?;
            }
            Some(false) => {
                tracing::debug!(item_hash = %skeleton.item_hash, "sync: a forgotten-message record failed its checks");
            }
            None if unproven.len() < MAX_CARRIED => unproven.push(skeleton),
            None => {}
        }
    }
    Ok(unproven)
}

/// `Some(true)` proven, `Some(false)` disproven, `None` if its FORGET is not known yet.
async fn proven(shared: &Shared, skeleton: &ForgottenRecord, page: &[Envelope]) -> Option<bool> {
    let Ok(chain) = skeleton.chain.parse::<raleph_message::Chain>() else {
        return Some(false);
    };
    let Some(signature) = skeleton.signature.as_deref() else {
        return Some(false);
    };
    let fields = raleph_crypto::SignedFields {
        chain,
        sender: &skeleton.sender,
        message_type: &skeleton.message_type,
        item_hash: &skeleton.item_hash,
        time: skeleton.time,
    };
    if raleph_crypto::verify(&fields, signature).is_err() {
        return Some(false);
    }
    for forget_hash in &skeleton.forgotten_by {
        let forget = match page.iter().find(|e| e.item_hash.as_str() == forget_hash) {
            Some(envelope) => Some(envelope.clone()),
            None => held_forget(shared, forget_hash).await,
        };
        let Some(forget) = forget else { continue };
        if !names(&forget, skeleton)
            || !raleph_pipeline::may_forget(&forget.sender, &skeleton.sender)
            || raleph_pipeline::verify_signature(&forget).is_err()
        {
            continue;
        }
        let security = match forget_address(&forget) {
            Some(address) if !address.eq_ignore_ascii_case(&forget.sender) => {
                security_of(shared, &address).await
            }
            _ => None,
        };
        if sent_for_its_address(&forget, security.as_ref()) {
            return Some(true);
        }
    }
    None
}

/// Whether `forget` is a FORGET that names the skeleton's message, or, for an aggregate
/// element, forgets aggregates of the skeleton's owner by key.
///
/// The second is the serving peer's word: the element's key went with its forgotten content.
/// It is taken, or nodes that synced after the FORGET would never converge, and settled by
/// the writer where the element itself is seen: forgotten if held here and its key is
/// targeted, and restored if a copy arrives whose key is not (`raleph_pipeline`'s
/// `forgotten`).
fn names(forget: &Envelope, skeleton: &ForgottenRecord) -> bool {
    let lists = |content: &Value, field: &str, value: &str| {
        content[field]
            .as_array()
            .is_some_and(|list| list.iter().any(|v| v == value))
    };
    forget.message_type == raleph_message::MessageType::Forget
        && forget.item_content.as_deref().is_some_and(|content| {
            serde_json::from_str::<Value>(content).is_ok_and(|v| {
                lists(&v, "hashes", &skeleton.item_hash)
                    || (skeleton.message_type == "AGGREGATE"
                        && v["aggregates"].as_array().is_some_and(|a| !a.is_empty())
                        && v["address"]
                            .as_str()
                            .is_some_and(|a| a.eq_ignore_ascii_case(&skeleton.owner)))
            })
        })
}

/// Whether `forget` passes the check every message passes, as the FORGET handler makes it:
/// its sender is its `content.address`, or a delegate that address's `security` aggregate
/// (`security`, as held here) allows to send FORGETs. With [`raleph_pipeline::may_forget`] on
/// the skeleton's signed sender, this is the handler's whole rule, and it rests on signed
/// fields only.
fn sent_for_its_address(forget: &Envelope, security: Option<&Value>) -> bool {
    let Some(address) = forget_address(forget) else {
        return false;
    };
    if address.eq_ignore_ascii_case(&forget.sender) {
        return true;
    }
    let action = raleph_pipeline::Action {
        sender: &forget.sender,
        owner: &address,
        chain: forget.chain.as_str(),
        message_type: forget.message_type.as_str(),
        channel: forget.channel.as_deref(),
        post_type: None,
        aggregate_key: None,
    };
    security.is_some_and(|security| raleph_pipeline::delegation_allows(security, &action))
}

/// The `content.address` of an inline FORGET (its sender when absent, as content parsing
/// coerces it).
fn forget_address(forget: &Envelope) -> Option<String> {
    let content: Value = serde_json::from_str(forget.item_content.as_deref()?).ok()?;
    match content.get("address") {
        None | Some(Value::Null) => Some(forget.sender.clone()),
        Some(address) => address.as_str().map(str::to_owned),
    }
}

/// The `security` aggregate of `owner`, as this node holds it.
async fn security_of(shared: &Shared, owner: &str) -> Option<Value> {
    let reader = shared.reader.clone();
    let owner = owner.to_owned();
    let records =
        tokio::task::spawn_blocking(move || reader.aggregates_of(&owner, &["security".to_owned()]))
            .await
            .ok()?
            .ok()?;
    let record = records.into_iter().find(|r| r.key == "security")?;
    serde_json::from_str(&record.content).ok()
}

/// A FORGET this node holds but could not process: waiting in its pending queue, or rejected.
async fn held_forget(shared: &Shared, item_hash: &str) -> Option<Envelope> {
    let reader = shared.reader.clone();
    let hash = item_hash.to_owned();
    let found = tokio::task::spawn_blocking(move || -> Option<Value> {
        if let Ok(copies) = reader.pending_copies(&hash)
            && let Some(copy) = copies.into_iter().next()
        {
            return Some(copy.message);
        }
        reader.rejection(&hash).ok().flatten().map(|r| r.message)
    })
    .await
    .ok()??;
    Envelope::from_json(&found).ok()
}

#[cfg(test)]
mod tests {
    use serde_json::Map;

    use super::*;

    fn forget_by(signer: &raleph_crypto::EthSigner, hashes: &[&str]) -> Envelope {
        forget_with(signer, "hashes", hashes)
    }

    /// A FORGET signed by `signer` whose content lists `targets` under `field`.
    fn forget_with(signer: &raleph_crypto::EthSigner, field: &str, targets: &[&str]) -> Envelope {
        let mut content = Map::new();
        content.insert(field.into(), serde_json::json!(targets));
        let json = raleph_sdk::signed_message(
            signer,
            raleph_message::MessageType::Forget,
            content,
            Some("T"),
            1.0,
        );
        Envelope::from_json(&json).expect("envelope")
    }

    #[test]
    fn a_key_forget_names_its_owners_aggregate_elements_only() {
        let owner = raleph_crypto::EthSigner::new_random();
        let mut element = skeleton_of(&owner);
        element.message_type = "AGGREGATE".into();
        let by_key = forget_with(&owner, "aggregates", &["profile"]);
        assert!(names(&by_key, &element));
        // Not a message of another kind, nor an element of another owner.
        assert!(!names(&by_key, &skeleton_of(&owner)));
        let mut others = element.clone();
        others.owner = raleph_crypto::EthSigner::new_random().address();
        assert!(!names(&by_key, &others));
        // Nor a FORGET by hash of something else, or one that lists no key.
        assert!(!names(
            &forget_by(&owner, &["cd".repeat(32).as_str()]),
            &element
        ));
        assert!(!names(&forget_with(&owner, "aggregates", &[]), &element));
        // The sender rule is the same as for a FORGET by hash.
        let stranger = raleph_crypto::EthSigner::new_random();
        let theirs = forget_with(&stranger, "aggregates", &["profile"]);
        assert!(!proves(&theirs, &element, None));
        assert!(proves(&by_key, &element, None));
    }

    /// The checks `proven` makes on a FORGET found for a skeleton, but the signatures.
    fn proves(forget: &Envelope, skeleton: &ForgottenRecord, security: Option<&Value>) -> bool {
        names(forget, skeleton)
            && raleph_pipeline::may_forget(&forget.sender, &skeleton.sender)
            && sent_for_its_address(forget, security)
    }

    /// A FORGET signed by `signer` for `address`, naming `target`.
    fn forget_for(signer: &raleph_crypto::EthSigner, address: &str, target: &str) -> Envelope {
        let mut content = Map::new();
        content.insert("hashes".into(), serde_json::json!([target]));
        content.insert("address".into(), address.into());
        let json = raleph_sdk::signed_message(
            signer,
            raleph_message::MessageType::Forget,
            content,
            Some("T"),
            1.0,
        );
        Envelope::from_json(&json).expect("envelope")
    }

    /// A POST of `owner`'s, forgotten.
    fn skeleton_of(owner: &raleph_crypto::EthSigner) -> ForgottenRecord {
        ForgottenRecord {
            item_hash: "ab".repeat(32),
            message_type: "POST".into(),
            chain: "ETH".into(),
            sender: owner.address(),
            signature: None,
            item_type: "inline".into(),
            time: 1.0,
            channel: None,
            owner: owner.address(),
            payment_type: None,
            size: 1,
            forgotten_by: vec![],
            forgotten_at: 2.0,
            reception_time: 2.0,
        }
    }

    #[test]
    fn only_a_forget_from_the_messages_own_sender_proves_a_skeleton() {
        let owner = raleph_crypto::EthSigner::new_random();
        let delegate = raleph_crypto::EthSigner::new_random();
        let skeleton = skeleton_of(&owner);
        let target = skeleton.item_hash.as_str();
        let grant = |grant: Value| serde_json::json!({"authorizations": [grant]});
        let everything = grant(serde_json::json!({"address": delegate.address()}));
        assert!(proves(&forget_by(&owner, &[target]), &skeleton, None));
        assert!(!proves(
            &forget_by(&owner, &["cd".repeat(32).as_str()]),
            &skeleton,
            None
        ));
        // A delegate never forgets the owner's message, whatever its grant.
        assert!(!proves(
            &forget_by(&delegate, &[target]),
            &skeleton,
            Some(&everything)
        ));
        assert!(!proves(
            &forget_for(&delegate, &owner.address(), target),
            &skeleton,
            Some(&everything)
        ));
        // A message a delegate sent for the owner: the delegate forgets it, sending the FORGET
        // for itself or, with a grant of FORGET, for the owner; the owner cannot.
        let mut delegated = skeleton_of(&delegate);
        delegated.owner = owner.address();
        let mine = delegated.item_hash.clone();
        assert!(proves(&forget_by(&delegate, &[&mine]), &delegated, None));
        assert!(!proves(&forget_by(&owner, &[&mine]), &delegated, None));
        let on_behalf = forget_for(&delegate, &owner.address(), &mine);
        assert!(proves(&on_behalf, &delegated, Some(&everything)));
        let forgets =
            grant(serde_json::json!({"address": delegate.address(), "types": ["FORGET"]}));
        assert!(proves(&on_behalf, &delegated, Some(&forgets)));
        // A FORGET naming an address that gave its sender no grant of FORGET proves nothing.
        let posts_only =
            grant(serde_json::json!({"address": delegate.address(), "types": ["POST"]}));
        assert!(!proves(&on_behalf, &delegated, Some(&posts_only)));
        assert!(!proves(&on_behalf, &delegated, None));
        let stranger = raleph_crypto::EthSigner::new_random();
        assert!(!proves(
            &forget_for(&delegate, &stranger.address(), &mine),
            &delegated,
            None
        ));
        // A skeleton survives a round trip through its JSON.
        let back = parse_skeleton(&skeleton_json(&skeleton)).expect("parse");
        assert_eq!(back.item_hash, skeleton.item_hash);
        assert_eq!(back.sender, skeleton.sender);
        assert!(parse_skeleton("{}").is_none());
    }
}
