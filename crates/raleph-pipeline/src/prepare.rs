//! A message's content, parsed by a signature checker before the message reaches the writer,
//! so that the writer, which applies every message one after the other, parses nothing itself
//! in the usual case (a large content takes up to ~0.1 s per MiB).
//!
//! An inline content is parsed anyway, as it is validated at submission; that parse is kept.
//! A non-inline content is prepared when the node already holds it (the usual case: a client
//! uploads it just before the message). Parsed contents waiting for the writer are bounded in
//! total (`pipeline.max_prepared_content_bytes` of raw content; a parsed content can take ~75
//! times its size): past it, or when the content is missing, the writer parses it itself, as
//! for a message retried from the pending queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use raleph_db::FileRecord;
use raleph_message::{Content, Envelope};

use crate::ContentSource;

/// A message's content, parsed.
pub(crate) struct Prepared {
    /// The content, or why it is not valid.
    pub content: Result<Content, String>,
    /// A non-inline message's content file, which the message pins once processed.
    pub file: Option<FileRecord>,
    _budget: Budgeted,
}

/// Raw bytes counted against the budget while their parsed form is held.
struct Budgeted {
    budget: Arc<AtomicU64>,
    bytes: u64,
}

impl Drop for Budgeted {
    fn drop(&mut self) {
        self.budget.fetch_add(self.bytes, Ordering::AcqRel);
    }
}

/// What the checkers share to prepare contents.
pub(crate) struct Preparer {
    source: Arc<dyn ContentSource>,
    /// Largest content prepared (`pipeline.max_content_bytes`: larger ones are rejected).
    max_content_bytes: u64,
    /// Raw bytes that may still be prepared before the writer consumes those it holds.
    budget: Arc<AtomicU64>,
}

impl Preparer {
    pub(crate) fn new(
        source: Arc<dyn ContentSource>,
        max_content_bytes: u64,
        budget_bytes: u64,
    ) -> Preparer {
        Preparer {
            source,
            max_content_bytes,
            budget: Arc::new(AtomicU64::new(budget_bytes)),
        }
    }

    /// The parsed content of a non-inline message, if the node holds it, it is within the
    /// content limit, and the budget has room; `None` leaves the work to the writer.
    pub(crate) fn prepare(&self, envelope: &Envelope) -> Option<Prepared> {
        if envelope.item_content.is_some() {
            return None;
        }
        let hash = envelope.item_hash.as_str();
        let file = self.source.file(hash).ok()??;
        if file.size > self.max_content_bytes {
            return None;
        }
        let budget = self.take(file.size)?;
        let raw = self.source.load(envelope.item_type, hash).ok()??;
        if raw.len() as u64 != file.size {
            return None;
        }
        let content = Content::of_message(envelope, &raw).map_err(|e| e.to_string());
        Some(Prepared {
            content,
            file: Some(file),
            _budget: budget,
        })
    }

    /// Keeps the parse of an inline content (made when it was checked) for the writer, if the
    /// budget has room.
    pub(crate) fn keep_inline(&self, envelope: &Envelope, content: Content) -> Option<Prepared> {
        let bytes = envelope.item_content.as_ref()?.len() as u64;
        let budget = self.take(bytes)?;
        Some(Prepared {
            content: Ok(content),
            file: None,
            _budget: budget,
        })
    }

    fn take(&self, bytes: u64) -> Option<Budgeted> {
        self.budget
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                left.checked_sub(bytes)
            })
            .ok()?;
        Some(Budgeted {
            budget: self.budget.clone(),
            bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_given_back_when_a_prepared_content_goes() {
        struct Nothing;
        impl ContentSource for Nothing {
            fn load(
                &self,
                _: raleph_message::ItemType,
                _: &str,
            ) -> std::io::Result<Option<Vec<u8>>> {
                Ok(None)
            }
            fn file(&self, _: &str) -> std::io::Result<Option<FileRecord>> {
                Ok(None)
            }
            fn delete_file(&self, _: &str) -> std::io::Result<()> {
                Ok(())
            }
            fn list_files(&self) -> std::io::Result<Vec<(String, std::time::SystemTime)>> {
                Ok(Vec::new())
            }
        }
        let preparer = Preparer::new(Arc::new(Nothing), 100, 150);
        let first = preparer.take(100).expect("room");
        assert!(preparer.take(100).is_none(), "over the budget");
        let second = preparer.take(50).expect("what is left");
        drop(first);
        assert!(preparer.take(100).is_some());
        drop(second);
        assert_eq!(preparer.budget.load(Ordering::Acquire), 150);
    }
}
