//! The values that travel between the pipeline's threads: a submission on its way from a
//! caller through the signature checkers and the acceptor to the writer, the commands the
//! writer takes, and the answers callers get. Kept apart so that each thread's module depends
//! on these values and none on another thread's module.

use raleph_db::{Failure, FileRecord, MessageStatus};
use raleph_message::Envelope;
use tokio::sync::oneshot;

pub(crate) struct Submission {
    pub envelope: Envelope,
    pub origin: &'static str,
    /// The signature check, done by a checker before the submission reached the journal.
    pub verdict: Result<(), Failure>,
    /// Whoever still waits for an answer. `accept` callers are answered by the acceptor
    /// thread once the submission is durable; `submit` callers by the writer once processed.
    pub reply: Option<oneshot::Sender<Result<SubmitOutcome, SubmitError>>>,
    pub answer_when_durable: bool,
    /// When the node received it; journaled with it, so a replay keeps it.
    pub received: f64,
    /// Its intake-journal record number, once journaled (bad signatures are not journaled).
    pub journal_number: Option<u64>,
    /// A non-inline message's content, parsed by its checker (see `prepare`).
    pub prepared: Option<crate::prepare::Prepared>,
    /// Read from a chain, whose emitter the chain reader authenticated (the smart-contract
    /// protocol's messages carry no signature): its checker verifies no signature.
    pub signature_by_chain: bool,
}

/// What the writer thread is asked to do.
pub(crate) enum Command {
    /// Submissions to apply: from the acceptor in journal order (durable if they passed the
    /// signature check), or one relayed message `offer`ed without the journal.
    Journaled(Vec<Submission>),
    StoreFile {
        upload: Box<dyn PendingUpload>,
        /// Keep the file for the grace period even with no pin (an unclaimed upload).
        grace: bool,
        reply: oneshot::Sender<Result<FileRecord, SubmitError>>,
    },
    CollectGarbage {
        reply: oneshot::Sender<Result<usize, SubmitError>>,
    },
    RecordForgotten {
        skeleton: Box<raleph_db::ForgottenRecord>,
        reply: oneshot::Sender<Result<bool, SubmitError>>,
    },
    /// A change of blockchain anchoring's records (see `anchoring`), in a transaction of its
    /// own.
    Anchoring {
        op: AnchorOp,
        reply: oneshot::Sender<Result<AnchorDone, SubmitError>>,
    },
}

/// A change of blockchain anchoring's records, as `WriteStore` takes it.
pub(crate) enum AnchorOp {
    Record {
        anchor: Box<raleph_db::Anchor>,
        items: Vec<raleph_message::ItemHash>,
    },
    /// An anchor whose archive was found nowhere (`WriteStore::record_anchor_missing_archive`).
    RecordMissing {
        anchor: Box<raleph_db::Anchor>,
        claimed_root: Option<String>,
    },
    /// Its archive found at last (`WriteStore::complete_anchor`).
    Complete {
        anchor: Box<raleph_db::Anchor>,
        items: Vec<raleph_message::ItemHash>,
        merkle_root: Option<String>,
    },
    DropFrom {
        chain: raleph_message::Chain,
        height: u64,
    },
    SetPosition {
        chain: raleph_message::Chain,
        position: String,
    },
    CreateBatch {
        chain: raleph_message::Chain,
        archive: String,
        merkle_root: String,
        items: Vec<raleph_message::ItemHash>,
    },
    Submitted {
        id: i64,
        tx_hash: String,
        nonce: u64,
    },
    /// Keeps a file (an archive) pinned for `secs` from now (the pipeline's clock).
    KeepFile {
        file: Box<FileRecord>,
        secs: f64,
    },
    Abandon {
        id: i64,
    },
}

/// What an [`AnchorOp`] returned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum AnchorDone {
    /// `Record`, `RecordMissing`: whether the anchor was new; `Complete`: whether it was
    /// still missing its archive.
    Recorded(bool),
    /// `DropFrom`: how many anchors went.
    Dropped(u64),
    /// `CreateBatch`: the new batch's id.
    Batch(i64),
    Done,
}

/// An uploaded file, complete and checked, waiting to enter the file store. The writer
/// thread commits it, so a file never appears or disappears between the garbage collector's
/// decision and its deletion.
pub trait PendingUpload: Send + 'static {
    fn commit(self: Box<Self>) -> std::io::Result<FileRecord>;
}

/// What became of a submission once it was durably recorded.
#[derive(Debug, Clone, PartialEq)]
pub enum SubmitOutcome {
    /// Durably accepted, not processed yet: in the intake journal or the pending queue.
    Queued,
    /// The node already holds this item hash with a final status.
    Known(MessageStatus),
    /// Refused (bad signature); the rejection is recorded.
    Rejected(Failure),
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    #[error("the node is busy: its intake queue is full, retry later")]
    Busy,
    #[error("the pipeline has stopped")]
    Stopped,
    /// The database or the disk cannot be written right now; messages already accepted are
    /// kept and applied once it is back.
    #[error("the node cannot store messages right now ({0}), retry later")]
    Unavailable(String),
    #[error("the store failed: {0}")]
    Store(String),
}

/// A submission whose signature is not checked yet.
pub(crate) struct Unchecked {
    pub submission: Submission,
    pub next: Next,
}

/// Where a submission goes once checked.
pub(crate) enum Next {
    /// To the acceptor, which journals it and answers through the submission's `reply`.
    Journal,
    /// Straight to the writer (a relayed message); the caller learns the verdict here.
    Writer(oneshot::Sender<Result<SubmitOutcome, SubmitError>>),
}
