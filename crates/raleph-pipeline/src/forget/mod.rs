//! The rules of FORGET, in one place: its content read once into a typed value ([`Forget`]),
//! what it targets, who may forget what (ARCHITECTURE.md, "Who may forget what"), and the three
//! places those rules are applied:
//! - `handler`: a FORGET processed here;
//! - `settle`: the writer settling a peer's word that an aggregate element was forgotten;
//! - `proof`: what sync asks of a forgotten-message skeleton before recording it.

mod handler;
mod proof;
mod settle;

use raleph_message::content::ForgetContent;
use raleph_message::{Content, Envelope, ItemHash, MessageType, TypedContent};
use serde_json::Value;

pub(crate) use handler::apply_forget;
pub use proof::{Proof, prove_skeleton};
pub(crate) use settle::{forget_held_element, forgotten_rightly};

/// Whether a FORGET sent by `forget_sender` may forget a live message sent by `target_sender`:
/// only its own sender may, whoever the owner or its delegates are (the reference's rule,
/// an exact comparison as there). A delegate forgets what it sent, never the owner's
/// messages; an owner cannot forget what a delegate sent for it.
pub fn may_forget(forget_sender: &str, target_sender: &str) -> bool {
    forget_sender == target_sender
}

/// A FORGET's content as its rules read it: the address it acts for (`content.address`) and
/// what it names.
pub(crate) struct Forget<'a> {
    pub address: &'a str,
    pub content: &'a ForgetContent,
}

/// An aggregate element: its owner and key.
pub(crate) struct Element<'a> {
    pub owner: &'a str,
    pub key: &'a str,
}

impl<'a> Forget<'a> {
    pub(crate) fn new(address: &'a str, content: &'a ForgetContent) -> Forget<'a> {
        Forget { address, content }
    }

    /// The FORGET view of a parsed content; `None` for a content of another type.
    pub(crate) fn of(content: &'a Content) -> Option<Forget<'a>> {
        match &content.typed {
            TypedContent::Forget(forget) => Some(Forget::new(&content.address, forget)),
            _ => None,
        }
    }

    /// Whether it names `item_hash` among its `hashes`.
    pub(crate) fn names(&self, item_hash: &ItemHash) -> bool {
        self.content.hashes.contains(item_hash)
    }

    /// Whether it forgets aggregate elements of `owner` by key (any key).
    pub(crate) fn forgets_aggregates_of(&self, owner: &str) -> bool {
        !self.content.aggregates.is_empty() && self.address.eq_ignore_ascii_case(owner)
    }

    /// Whether it targets a message: by its hash, or, for an aggregate element, by the
    /// element's key among its owner's `aggregates`.
    pub(crate) fn targets(&self, item_hash: &ItemHash, element: Option<&Element<'_>>) -> bool {
        self.names(item_hash)
            || element.is_some_and(|e| {
                self.address.eq_ignore_ascii_case(e.owner)
                    && self.content.aggregates.iter().any(|k| k == e.key)
            })
    }
}

/// The content of an inline FORGET message, parsed and validated as at submission; `None`
/// for another type, a non-inline message or an invalid content.
pub(crate) fn parse_inline(envelope: &Envelope) -> Option<Content> {
    if envelope.message_type != MessageType::Forget {
        return None;
    }
    let inline = envelope.item_content.as_deref()?;
    Content::of_message(envelope, inline.as_bytes()).ok()
}

/// The stored content of a processed message read as a FORGET's; `None` if it is not one.
/// A stored content carries its coerced `address` and `time`.
pub(crate) fn parse_stored(content: Value) -> Option<Content> {
    let Value::Object(map) = content else {
        return None;
    };
    Content::from_map(MessageType::Forget, map, "", 0.0).ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_forget_targets_by_hash_or_by_the_owners_key() {
        let (h1, h2, k1, k2) = (
            "a1".repeat(32),
            "a2".repeat(32),
            "b1".repeat(32),
            "b2".repeat(32),
        );
        let hash = |h: &str| ItemHash::parse(h).expect("an item hash");
        let stored = json!({"address": "0xAbC", "time": 1.0, "hashes": [h1], "aggregates": [k1]});
        let content = parse_stored(stored).expect("a FORGET's content");
        let forget = Forget::of(&content).expect("FORGET");
        let element = |owner, key| Element { owner, key };
        assert!(forget.targets(&hash(&h1), None));
        assert!(forget.targets(&hash(&h2), Some(&element("0xabc", &k1))));
        assert!(!forget.targets(&hash(&h2), Some(&element("0xabc", &k2))));
        assert!(!forget.targets(&hash(&h2), Some(&element("0xdef", &k1))));
        assert!(!forget.targets(&hash(&h2), None));
        let none = parse_stored(json!({"address": "0xAbC", "time": 1.0, "hashes": []}))
            .expect("a FORGET's content");
        let none = Forget::of(&none).expect("FORGET");
        assert!(!none.targets(&hash(&h1), Some(&element("0xabc", &k1))));
        // Content of another type is no FORGET.
        assert!(parse_stored(json!({"address": "0xAbC", "time": 1.0, "key": "k"})).is_none());
    }
}
