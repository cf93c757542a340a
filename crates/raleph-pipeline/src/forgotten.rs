//! Forgotten aggregate elements that peers vouch for, and how a node settles their word.
//!
//! A peer syncs a message it forgot as a skeleton: the message's signed fields and the FORGETs
//! that forgot it. A FORGET that names the message's hash proves the skeleton outright. A
//! FORGET by aggregate key (`aggregates`) names keys instead, and the key of a forgotten
//! AGGREGATE message went with its content: only the serving peer's word ties the element to
//! the key. The network layer records such a skeleton anyway (the nodes would not converge
//! otherwise), and this module settles the word wherever the node sees the message itself:
//! - the element is held here: it is forgotten when a FORGET processed here targets its key
//!   ([`forget_held_element`]);
//! - a copy arrives after the skeleton: it stays forgotten only when no FORGET processed here
//!   disproves the skeleton; otherwise the skeleton is dropped and the copy processed
//!   ([`forgotten_rightly`]).

use raleph_db::{ForgottenRecord, MessageStatus, WriteStore};
use raleph_message::{Content, Envelope, MessageType};
use serde_json::Value;

use crate::writer::Writer;

/// An aggregate element: its owner and key.
struct Element<'a> {
    owner: &'a str,
    key: &'a str,
}

/// Whether a FORGET's content targets a message: by its hash, or, for an aggregate element,
/// by the element's key among the owner's `aggregates`.
fn targets(forget: &Value, item_hash: &str, element: Option<&Element<'_>>) -> bool {
    let lists = |field: &str, value: &str| {
        forget[field]
            .as_array()
            .is_some_and(|list| list.iter().any(|v| v == value))
    };
    if lists("hashes", item_hash) {
        return true;
    }
    element.is_some_and(|e| {
        forget["address"]
            .as_str()
            .is_some_and(|a| a.eq_ignore_ascii_case(e.owner))
            && lists("aggregates", e.key)
    })
}

/// For a skeleton of an aggregate element this node holds: forgets the element when one of
/// the skeleton's FORGETs, processed here, targets its key and was sent by the element's sender. Returns whether
/// it did.
pub(crate) fn forget_held_element(
    store: &mut dyn WriteStore,
    skeleton: &ForgottenRecord,
    now: f64,
    grace_until: f64,
) -> raleph_db::Result<bool> {
    let hash = skeleton.item_hash.as_str();
    if skeleton.message_type != MessageType::Aggregate.as_str()
        || !store.status(hash)?.is_some_and(MessageStatus::is_live)
    {
        return Ok(false);
    }
    let Some(held) = store.message_facts(hash)? else {
        return Ok(false);
    };
    let Some(key) = held.content_key.as_deref() else {
        return Ok(false);
    };
    let element = Element {
        owner: &held.owner,
        key,
    };
    for forget_hash in &skeleton.forgotten_by {
        let Some(forget) = store.message_facts(forget_hash)? else {
            continue;
        };
        let Some(content) = store.message_content(forget_hash)? else {
            continue;
        };
        if forget.message_type != MessageType::Forget.as_str()
            || !targets(&content, hash, Some(&element))
        {
            continue;
        }
        // The FORGET handler's rule: a FORGET processed here passed the check on its own
        // `content.address`, and forgets only what its own sender sent.
        if crate::authorize::may_forget(&forget.sender, &held.sender) {
            store.forget(hash, forget_hash, now, grace_until)?;
            return Ok(true);
        }
    }
    Ok(false)
}

/// For a copy of a message recorded here as forgotten: false when the record is disproved,
/// that is, the message is an aggregate element, and every FORGET it was recorded as
/// forgotten by (at least one) is processed here and targets neither its hash nor its key. A
/// FORGET not processed here, or content not at hand, disproves nothing.
pub(crate) fn forgotten_rightly(w: &mut Writer, envelope: &Envelope) -> raleph_db::Result<bool> {
    if envelope.message_type != MessageType::Aggregate {
        // Skeletons of other messages are only recorded on a FORGET naming their hash.
        return Ok(true);
    }
    let Some(content) = content_of(w, envelope) else {
        return Ok(true);
    };
    let Some(key) = content.content_key() else {
        return Ok(true);
    };
    let element = Element {
        owner: &content.address,
        key,
    };
    let hash = envelope.item_hash.as_str();
    let forgotten_by = w.store.forgotten_by(hash)?;
    if forgotten_by.is_empty() {
        return Ok(true);
    }
    for forget_hash in forgotten_by {
        match w.store.message_content(&forget_hash)? {
            Some(forget) if !targets(&forget, hash, Some(&element)) => {}
            _ => return Ok(true),
        }
    }
    Ok(false)
}

/// The parsed content of a message, when it is inline or already stored here (and within
/// `pipeline.max_content_bytes`).
fn content_of(w: &Writer, envelope: &Envelope) -> Option<Content> {
    let loaded;
    let raw = match &envelope.item_content {
        Some(inline) => inline.as_bytes(),
        None => {
            loaded = crate::handlers::stored_content(w, envelope).ok()?.0;
            &loaded
        }
    };
    Content::of_message(envelope, raw).ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_forget_targets_by_hash_or_by_the_owners_key() {
        let forget = json!({"address": "0xAbC", "hashes": ["h1"], "aggregates": ["k1"]});
        let element = |owner, key| Element { owner, key };
        assert!(targets(&forget, "h1", None));
        assert!(targets(&forget, "h2", Some(&element("0xabc", "k1"))));
        assert!(!targets(&forget, "h2", Some(&element("0xabc", "k2"))));
        assert!(!targets(&forget, "h2", Some(&element("0xdef", "k1"))));
        assert!(!targets(&forget, "h2", None));
        assert!(!targets(&json!({}), "h1", Some(&element("0xabc", "k1"))));
    }
}
