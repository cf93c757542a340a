//! The records of blockchain anchoring (issue 16): the anchoring transactions chain readers
//! saw, the confirmations they give messages, and the batches a packing node builds.

use crate::{Chain, ItemHash};

/// An anchoring transaction a chain reader saw: a sync event of an authorized emitter.
#[derive(Debug, Clone, PartialEq)]
pub struct Anchor {
    pub chain: Chain,
    /// `0x` and 64 lowercase hex digits.
    pub tx_hash: String,
    pub log_index: u64,
    pub height: u64,
    /// `0x` and 64 lowercase hex digits.
    pub block_hash: String,
    /// The block's timestamp, seconds since the epoch.
    pub time: f64,
    /// The emitter, `0x` and 40 lowercase hex digits.
    pub publisher: String,
    /// `aleph`, `aleph-offchain` or `smart-contract`.
    pub protocol: String,
    /// The archive's CID, for `aleph-offchain`.
    pub archive: Option<String>,
    /// raleph's Merkle root over the batch's item hashes (`0x` and 64 hex digits), when the
    /// payload had one.
    pub merkle_root: Option<String>,
}

/// One confirmation of a message, as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Confirmation {
    pub chain: Chain,
    pub height: u64,
    pub tx_hash: String,
    pub time: f64,
    pub publisher: String,
}

/// Where a message was anchored, for its inclusion proof: the anchor and the message's
/// position among the anchor's items.
#[derive(Debug, Clone, PartialEq)]
pub struct AnchoredAt {
    pub anchor: Anchor,
    pub position: u32,
}

/// An anchor whose archive was found nowhere when its event was read, and the Merkle root
/// its payload claimed: looked for again until found.
#[derive(Debug, Clone, PartialEq)]
pub struct MissingArchive {
    /// The anchor's row id: where the next [`crate::ReadStore::missing_archives`] page starts.
    pub id: i64,
    pub anchor: Anchor,
    pub claimed_root: Option<String>,
}

/// A batch a packing node built and is anchoring.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub id: i64,
    pub chain: Chain,
    pub archive: String,
    pub merkle_root: String,
    pub items: Vec<ItemHash>,
    pub created: f64,
    pub submitted: Option<SubmittedTx>,
}

/// The transaction a batch was last sent in.
#[derive(Debug, Clone, PartialEq)]
pub struct SubmittedTx {
    pub tx_hash: String,
    pub nonce: u64,
    pub submitted_at: f64,
}
