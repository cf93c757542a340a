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
use raleph_message::{Envelope, MessageType};

use super::{Element, Forget, may_forget, parse_stored};
use crate::content::content_of;
use crate::context::Context;

/// For a skeleton of an aggregate element this node holds: forgets the element when one of
/// the skeleton's FORGETs, processed here, targets its key and was sent by the element's sender. Returns whether
/// it did.
pub(crate) fn forget_held_element(
    store: &mut dyn WriteStore,
    skeleton: &ForgottenRecord,
    now: f64,
    grace_until: f64,
) -> raleph_db::Result<bool> {
    let hash = &skeleton.envelope.item_hash;
    if skeleton.envelope.message_type != MessageType::Aggregate
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
        if forget.envelope.message_type != MessageType::Forget {
            continue;
        }
        let Some(content) = store.message_content(forget_hash)?.and_then(parse_stored) else {
            continue;
        };
        if !Forget::of(&content).is_some_and(|f| f.targets(hash, Some(&element))) {
            continue;
        }
        // The FORGET handler's rule: a FORGET processed here passed the check on its own
        // `content.address`, and forgets only what its own sender sent.
        if may_forget(&forget.envelope.sender, &held.envelope.sender) {
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
pub(crate) fn forgotten_rightly(
    store: &mut dyn WriteStore,
    ctx: &Context<'_>,
    envelope: &Envelope,
) -> raleph_db::Result<bool> {
    if envelope.message_type != MessageType::Aggregate {
        // Skeletons of other messages are only recorded on a FORGET naming their hash.
        return Ok(true);
    }
    let Some(content) = content_of(ctx, envelope) else {
        return Ok(true);
    };
    let Some(key) = content.content_key() else {
        return Ok(true);
    };
    let element = Element {
        owner: &content.address,
        key,
    };
    let hash = &envelope.item_hash;
    let forgotten_by = store.forgotten_by(hash)?;
    if forgotten_by.is_empty() {
        return Ok(true);
    }
    for forget_hash in forgotten_by {
        // Content that is not a FORGET's targets nothing.
        let Some(stored) = store.message_content(&forget_hash)? else {
            return Ok(true);
        };
        let forget = parse_stored(stored);
        if forget
            .as_ref()
            .and_then(Forget::of)
            .is_some_and(|f| f.targets(hash, Some(&element)))
        {
            return Ok(true);
        }
    }
    Ok(false)
}
