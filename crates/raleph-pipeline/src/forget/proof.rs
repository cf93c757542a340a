//! The proof a node asks of a forgotten-message skeleton that a peer syncs to it before it
//! records the message as forgotten: the skeleton is signed by its sender, and a FORGET that
//! names it, signed too and sent by that sender (for its own address, or for an address whose
//! `security` aggregate lets it send FORGETs), is in the same page or held here. A peer
//! cannot make a node drop someone else's message this way.

use raleph_db::{ForgottenRecord, ReadStore};
use raleph_message::{Envelope, ItemHash, MessageType};
use serde_json::Value;

use super::{Forget, may_forget, parse_inline};
use crate::authorize::{Action, delegation_allows};
use crate::check::verify_signature;

/// What is known of a skeleton.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// Signed by its sender and named by a FORGET its sender may make: record it.
    Proven,
    /// It can never be proven (its own signature fails).
    Disproven,
    /// None of its FORGETs is known here yet (or none proves it): ask again later.
    Unknown,
}

/// Checks a skeleton against its FORGETs, found in `page` (the sync page it came with) or
/// held here (pending or rejected, read from `reader`). Blocking: it reads the store.
///
/// A FORGET by aggregate key proves a skeleton of an element of its address on the serving
/// peer's word, as the element's key went with its forgotten content: taken, or nodes that
/// synced after the FORGET would never converge, and settled by the writer where the element
/// itself is seen (`settle`).
pub fn prove_skeleton(
    reader: &dyn ReadStore,
    skeleton: &ForgottenRecord,
    page: &[Envelope],
) -> Proof {
    // A skeleton is its message's envelope without the content: its signature checks as
    // the whole message's would.
    if verify_signature(&skeleton.envelope).is_err() {
        return Proof::Disproven;
    }
    for forget_hash in &skeleton.forgotten_by {
        let forget = match page.iter().find(|e| e.item_hash == *forget_hash) {
            Some(envelope) => Some(envelope.clone()),
            None => held_forget(reader, forget_hash),
        };
        let Some(forget) = forget else { continue };
        let Some(content) = parse_inline(&forget) else {
            continue;
        };
        let Some(view) = Forget::of(&content) else {
            continue;
        };
        if !names(&view, skeleton)
            || !may_forget(&forget.sender, &skeleton.envelope.sender)
            || verify_signature(&forget).is_err()
        {
            continue;
        }
        let security = if view.address.eq_ignore_ascii_case(&forget.sender) {
            None
        } else {
            security_of(reader, view.address)
        };
        if sent_for_its_address(&forget, &view, security.as_ref()) {
            return Proof::Proven;
        }
    }
    Proof::Unknown
}

/// Whether the FORGET names the skeleton's message, or, for an aggregate element, forgets
/// aggregates of the skeleton's owner by key.
fn names(forget: &Forget<'_>, skeleton: &ForgottenRecord) -> bool {
    forget.names(&skeleton.envelope.item_hash)
        || (skeleton.envelope.message_type == MessageType::Aggregate
            && forget.forgets_aggregates_of(&skeleton.owner))
}

/// Whether the FORGET passes the check every message passes, as the FORGET handler makes it:
/// its sender is its `content.address`, or a delegate that address's `security` aggregate
/// (`security`, as held here) allows to send FORGETs. With [`may_forget`] on the skeleton's
/// signed sender, this is the handler's whole rule, and it rests on signed fields only.
fn sent_for_its_address(
    envelope: &Envelope,
    forget: &Forget<'_>,
    security: Option<&Value>,
) -> bool {
    if forget.address.eq_ignore_ascii_case(&envelope.sender) {
        return true;
    }
    let action = Action::of(envelope, forget.address);
    security.is_some_and(|security| delegation_allows(security, &action))
}

/// The `security` aggregate of `owner`, as this node holds it.
fn security_of(reader: &dyn ReadStore, owner: &str) -> Option<Value> {
    let records = reader.aggregates_of(owner, &["security".to_owned()]).ok()?;
    let record = records.into_iter().find(|r| r.key == "security")?;
    serde_json::from_str(&record.content).ok()
}

/// A FORGET this node holds but could not process: waiting in its pending queue, or rejected.
fn held_forget(reader: &dyn ReadStore, item_hash: &ItemHash) -> Option<Envelope> {
    let found = match reader.pending_copies(item_hash) {
        Ok(copies) if !copies.is_empty() => copies.into_iter().next().map(|c| c.message),
        _ => reader
            .rejection(item_hash)
            .ok()
            .flatten()
            .map(|r| r.message),
    }?;
    Envelope::from_json(&found).ok()
}

#[cfg(test)]
mod tests {
    use raleph_crypto::{EthSigner, SignedFields};
    use raleph_message::sha256_hex;
    use raleph_message::{Chain, ItemType};
    use serde_json::json;

    use super::*;

    /// A FORGET signed by `signer`, for `address` (its own when `None`), listing `targets`
    /// under `field`.
    fn forget_with(
        signer: &EthSigner,
        address: Option<&str>,
        field: &str,
        targets: &[&str],
    ) -> Envelope {
        let sender = signer.address();
        let mut content = json!({"address": address.unwrap_or(&sender), "time": 1.0, "hashes": []});
        content[field] = json!(targets);
        let item_content = content.to_string();
        let item_hash = sha256_hex(item_content.as_bytes());
        let fields = SignedFields {
            chain: Chain::Eth,
            sender: &sender,
            message_type: "FORGET",
            item_hash: &item_hash,
            time: 1.0,
        };
        let signature = signer.sign_message(&fields);
        Envelope::from_json(&json!({
            "sender": sender, "chain": "ETH", "signature": signature, "type": "FORGET",
            "item_content": item_content, "item_hash": item_hash, "time": 1.0, "channel": "T",
        }))
        .expect("envelope")
    }

    fn forget_by(signer: &EthSigner, hashes: &[&str]) -> Envelope {
        forget_with(signer, None, "hashes", hashes)
    }

    fn forget_for(signer: &EthSigner, address: &str, target: &str) -> Envelope {
        forget_with(signer, Some(address), "hashes", &[target])
    }

    /// The checks `prove_skeleton` makes on a FORGET found for a skeleton, but the
    /// signatures.
    fn proves(forget: &Envelope, skeleton: &ForgottenRecord, security: Option<&Value>) -> bool {
        let content = parse_inline(forget).expect("a valid FORGET");
        let view = Forget::of(&content).expect("FORGET");
        names(&view, skeleton)
            && may_forget(&forget.sender, &skeleton.envelope.sender)
            && sent_for_its_address(forget, &view, security)
    }

    fn named(forget: &Envelope, skeleton: &ForgottenRecord) -> bool {
        let content = parse_inline(forget).expect("a valid FORGET");
        names(&Forget::of(&content).expect("FORGET"), skeleton)
    }

    /// A POST of `owner`'s, forgotten.
    fn skeleton_of(owner: &EthSigner) -> ForgottenRecord {
        ForgottenRecord {
            envelope: Envelope {
                item_hash: ItemHash::parse(&"ab".repeat(32)).expect("an item hash"),
                message_type: MessageType::Post,
                chain: Chain::Eth,
                sender: owner.address(),
                signature: None,
                item_type: ItemType::Inline,
                item_content: None,
                time: 1.0,
                channel: None,
            },
            owner: owner.address(),
            payment_type: None,
            size: 1,
            forgotten_by: vec![],
            forgotten_at: 2.0,
            reception_time: 2.0,
        }
    }

    #[test]
    fn a_key_forget_names_its_owners_aggregate_elements_only() {
        let owner = EthSigner::new_random();
        let mut element = skeleton_of(&owner);
        element.envelope.message_type = MessageType::Aggregate;
        let key = "ef".repeat(32);
        let by_key = forget_with(&owner, None, "aggregates", &[&key]);
        assert!(named(&by_key, &element));
        // Not a message of another kind, nor an element of another owner.
        assert!(!named(&by_key, &skeleton_of(&owner)));
        let mut others = element.clone();
        others.owner = EthSigner::new_random().address();
        assert!(!named(&by_key, &others));
        // Nor a FORGET by hash of something else, or one that lists no key.
        assert!(!named(
            &forget_by(&owner, &["cd".repeat(32).as_str()]),
            &element
        ));
        assert!(!named(
            &forget_with(&owner, None, "aggregates", &[]),
            &element
        ));
        // The sender rule is the same as for a FORGET by hash.
        let stranger = EthSigner::new_random();
        let theirs = forget_with(&stranger, None, "aggregates", &[&key]);
        assert!(!proves(&theirs, &element, None));
        assert!(proves(&by_key, &element, None));
    }

    #[test]
    fn only_a_forget_from_the_messages_own_sender_proves_a_skeleton() {
        let owner = EthSigner::new_random();
        let delegate = EthSigner::new_random();
        let skeleton = skeleton_of(&owner);
        let target = skeleton.envelope.item_hash.as_str();
        let grant = |grant: Value| json!({"authorizations": [grant]});
        let everything = grant(json!({"address": delegate.address()}));
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
        let mine = delegated.envelope.item_hash.to_string();
        assert!(proves(&forget_by(&delegate, &[&mine]), &delegated, None));
        assert!(!proves(&forget_by(&owner, &[&mine]), &delegated, None));
        let on_behalf = forget_for(&delegate, &owner.address(), &mine);
        assert!(proves(&on_behalf, &delegated, Some(&everything)));
        let forgets = grant(json!({"address": delegate.address(), "types": ["FORGET"]}));
        assert!(proves(&on_behalf, &delegated, Some(&forgets)));
        // A FORGET naming an address that gave its sender no grant of FORGET proves nothing.
        let posts_only = grant(json!({"address": delegate.address(), "types": ["POST"]}));
        assert!(!proves(&on_behalf, &delegated, Some(&posts_only)));
        assert!(!proves(&on_behalf, &delegated, None));
        let stranger = EthSigner::new_random();
        assert!(!proves(
            &forget_for(&delegate, &stranger.address(), &mine),
            &delegated,
            None
        ));
    }
}
