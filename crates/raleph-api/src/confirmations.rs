//! A page's confirmations, read once for all its messages (one statement, a probe of the
//! store's confirmation key per message) and handed to each message's shape.

use raleph_db::{Confirmation, ItemHash, ReadStore};

/// The confirmations of a page's messages, by item hash.
#[derive(Debug, Default)]
pub struct PageConfirmations {
    /// Sorted; `confirmations[i]` confirms `hashes[i]`.
    hashes: Vec<ItemHash>,
    confirmations: Vec<Confirmation>,
}

impl PageConfirmations {
    pub fn read<'h>(
        store: &dyn ReadStore,
        hashes: impl IntoIterator<Item = &'h ItemHash>,
    ) -> raleph_db::Result<Self> {
        let hashes: Vec<ItemHash> = hashes.into_iter().cloned().collect();
        if hashes.is_empty() {
            return Ok(PageConfirmations::default());
        }
        let mut rows = store.confirmations(&hashes)?;
        // By item hash as `of` looks them up, whatever the backend's collation; a stable
        // sort keeps each message's confirmations lowest height first.
        rows.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        let (hashes, confirmations) = rows.into_iter().unzip();
        Ok(PageConfirmations {
            hashes,
            confirmations,
        })
    }

    /// The confirmations of `hash`, lowest height first (none when it has none).
    pub fn of(&self, hash: &ItemHash) -> &[Confirmation] {
        let start = self.hashes.partition_point(|h| h.as_str() < hash.as_str());
        let len = self.hashes[start..].partition_point(|h| h == hash);
        &self.confirmations[start..start + len]
    }
}
