//! The processing pipeline: every message goes intake → intake journal → index (checks,
//! application) and ends in exactly one status.
//!
//! An acceptor thread appends verified submissions to the intake journal in groups (one write
//! and sync per group) and answers `accept` callers as soon as their message is durable. One
//! writer thread owns the store's write side: it applies journaled submissions in batches
//! (whatever gathered while the last batch committed, so busy periods make large
//! transactions), and processes due pending messages (one transaction per batch, one
//! savepoint per message). Processing results are announced on a broadcast channel, which the
//! API uses for `sync` submissions and the websocket.
//!
//! The pipeline reaches the outside only through [`ContentSource`] and [`PaymentPolicy`], and
//! the store traits of `raleph-db`; the binary chooses the implementations.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod anchoring;
mod authorize;
mod check;
mod clock;
mod content;
mod context;
mod decide;
mod forget;
mod handlers;
mod intake;
mod journal;
mod prepare;
mod rule;
mod submission;
mod vital;
mod writer;

use std::sync::Arc;

use raleph_db::{Failure, FileRecord, MessageRecord};
use raleph_message::{Content, Envelope, ItemHash, ItemType};

pub use authorize::{Action, delegation_allows};
pub use check::verify_signature;
pub use clock::{Clock, ManualClock, SystemClock};
pub use forget::{Proof, may_forget, prove_skeleton};
pub use intake::PipelineHandle;
pub use submission::{PendingUpload, SubmitError, SubmitOutcome};
pub use writer::spawn;

/// For the fuzz targets under `fuzz/` only; not part of the crate's API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::journal::{Record as JournalRecord, decode_segment as decode_journal_segment};
}

/// Where the content of non-inline messages and the files of STORE messages come from, and
/// where unpinned files are deleted.
pub trait ContentSource: Send + Sync + 'static {
    /// The bytes for an item hash, if available now.
    fn load(&self, item_type: ItemType, hash: &str) -> std::io::Result<Option<Vec<u8>>>;
    /// A file the node holds, by any of its identifiers (without reading it).
    fn file(&self, id: &str) -> std::io::Result<Option<FileRecord>>;
    /// Deletes a file's bytes.
    fn delete_file(&self, sha256: &str) -> std::io::Result<()>;
    /// Every file held, with when it was stored: for sweeping files nothing recorded.
    fn list_files(&self) -> std::io::Result<Vec<(String, std::time::SystemTime)>>;
}

/// The one place where payment is decided. The default, [`NoPayments`], charges nothing.
pub trait PaymentPolicy: Send + Sync + 'static {
    fn check(&self, envelope: &Envelope, content: &Content) -> Result<(), Failure>;
    /// Said once in the startup log.
    fn describe(&self) -> &'static str;
}

/// A node with no balance source: every valid message is processed whatever its sender holds.
pub struct NoPayments;

impl PaymentPolicy for NoPayments {
    fn check(&self, _: &Envelope, _: &Content) -> Result<(), Failure> {
        Ok(())
    }

    fn describe(&self) -> &'static str {
        "payments are not enforced: no balance source is configured, every valid message is processed free of charge"
    }
}

/// Limits and timings of the pipeline. Every field is a documented config value.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// Submissions waiting for a signature check, and checked ones waiting for the journal,
    /// before new ones are refused with "busy" (HTTP 503).
    pub intake_queue: usize,
    /// Threads that check signatures; 0: one per core.
    pub signature_threads: usize,
    /// Most submissions journaled with one append and sync.
    pub intake_batch: usize,
    /// Most journaled submissions applied to the index in one transaction.
    pub index_batch: usize,
    /// How long the writer waits for more submissions before applying a small batch, in
    /// milliseconds: messages that trickle in one by one (gossip) then share a commit and its
    /// sync. Adds up to this much to the time to processed; 0 applies at once. Taken as at
    /// most 1 000 (a node refuses to start with a negative or non-finite value; the
    /// pipeline alone takes one as 0).
    pub gather_ms: f64,
    /// Most journaled submissions waiting to be applied; past it, intake waits (and, once
    /// `intake_queue` is full too, refuses with "busy").
    pub max_unapplied: usize,
    /// Most pending messages processed in one transaction.
    pub process_batch: usize,
    /// Retries of a retryable failure before the message is rejected.
    pub max_retries: u32,
    /// Ceiling of the retry backoff, in seconds.
    pub max_backoff_secs: f64,
    /// Largest content of a non-inline (storage, ipfs) message, in bytes: a message whose
    /// content file is larger is rejected before the file is read. The default is the largest
    /// JSON body the node's own `storage/add_json` takes (`api.max_body_bytes`). Parsed, a
    /// content can take up to about 75 times its size in memory (a long array of small
    /// numbers: 1 MiB takes ~75 MiB and ~0.1 s while it is processed, SECURITY.md).
    pub max_content_bytes: u64,
    /// Raw bytes of contents (inline, or stored and held here) that the signature checkers may
    /// hold parsed for the writer at once, so that the writer need not parse them; past it the
    /// writer parses them itself. A parsed content takes up to ~75 times its size.
    pub max_prepared_content_bytes: u64,
    /// Largest merged value of one aggregate (owner and key), in bytes: an element that would
    /// take it past this is rejected. Every element is merged into it and it is served whole.
    pub max_aggregate_bytes: u64,
    /// Bytes kept of each string field of a rejected message (its `item_content`, sender,
    /// channel...): enough to see whose it was and why it failed.
    pub rejected_head_bytes: usize,
    /// How long a rejected message is remembered, in seconds; after that it is unknown.
    pub rejected_retention_secs: f64,
    /// Most rejected messages remembered; past it the oldest are forgotten first.
    pub max_rejected_kept: u64,
    /// How long a file with no pin left is kept before the garbage collector deletes it.
    /// Set from `storage.grace_period_secs`.
    #[serde(skip)]
    pub file_grace_period_secs: f64,
    /// Sync the intake journal before acknowledging (the store's durability setting).
    #[serde(skip)]
    pub durable: bool,
    /// Runtime refs the node provides itself (its compute runtimes): a PROGRAM naming one is
    /// not asked for a STORE message of it. Set from `[compute]`.
    #[serde(skip)]
    pub provided_runtimes: Vec<String>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            intake_queue: 10_000,
            signature_threads: 0,
            intake_batch: 1_000,
            index_batch: 5_000,
            gather_ms: 0.0,
            max_unapplied: 20_000,
            process_batch: 500,
            max_retries: 10,
            max_backoff_secs: 300.0,
            max_content_bytes: 1024 * 1024,
            max_prepared_content_bytes: 2 * 1024 * 1024,
            max_aggregate_bytes: 16 * 1024 * 1024,
            rejected_head_bytes: 1024,
            rejected_retention_secs: 7.0 * 24.0 * 3600.0,
            max_rejected_kept: 100_000,
            file_grace_period_secs: 24.0 * 3600.0,
            durable: true,
            provided_runtimes: Vec::new(),
        }
    }
}

impl PipelineConfig {
    /// How many signature checkers to start.
    pub(crate) fn signature_threads(&self) -> usize {
        match self.signature_threads {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        }
    }
}

/// What happened to a message, announced after the transaction that decided it committed.
#[derive(Debug, Clone)]
pub enum Event {
    /// Newly processed: the stored message.
    Processed(Arc<MessageRecord>),
    /// A copy of a message already processed (same signature).
    Confirmed { item_hash: ItemHash },
    Rejected {
        item_hash: ItemHash,
        failure: Failure,
    },
    /// Will be retried later.
    Retrying {
        item_hash: ItemHash,
        failure: Failure,
    },
    /// The item hash was forgotten: copies are dropped.
    Forgotten { item_hash: ItemHash },
}

impl Event {
    pub fn item_hash(&self) -> &ItemHash {
        match self {
            Event::Processed(m) => &m.envelope.item_hash,
            Event::Confirmed { item_hash }
            | Event::Rejected { item_hash, .. }
            | Event::Retrying { item_hash, .. }
            | Event::Forgotten { item_hash } => item_hash,
        }
    }
}

/// Seconds since the epoch, by the machine's clock (what [`SystemClock`] reads).
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests;
