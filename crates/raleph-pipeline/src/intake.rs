//! The handle through which the API (and later peers and chains) submit messages.

use std::sync::mpsc::{SyncSender, TrySendError};

use raleph_db::{ErrorCode, Failure, FileRecord, MessageStatus};
use raleph_message::Envelope;
use tokio::sync::{broadcast, oneshot};

use crate::Event;

pub(crate) struct Submission {
    pub envelope: Envelope,
    pub origin: &'static str,
    /// The signature check, done before the submission reached the writer.
    pub verdict: Result<(), Failure>,
    pub reply: oneshot::Sender<Result<SubmitOutcome, SubmitError>>,
}

/// What the writer thread is asked to do.
pub(crate) enum Command {
    Submit(Box<Submission>),
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
    /// In the pending queue: it will be processed.
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
    #[error("the store failed: {0}")]
    Store(String),
}

/// A cloneable handle to the running pipeline.
#[derive(Clone)]
pub struct PipelineHandle {
    pub(crate) commands: SyncSender<Command>,
    pub(crate) events: broadcast::Sender<Event>,
}

impl PipelineHandle {
    /// Verifies the signature (on a blocking thread) and records the message durably.
    /// Returns once the outcome is on disk. Cancel-safe: a dropped future may still have
    /// queued the message, which is then processed as usual.
    pub async fn submit(
        &self,
        envelope: Envelope,
        origin: &'static str,
    ) -> Result<SubmitOutcome, SubmitError> {
        let (envelope, verdict) = tokio::task::spawn_blocking(move || {
            let verdict = verify_signature(&envelope);
            (envelope, verdict)
        })
        .await
        .map_err(|_| SubmitError::Stopped)?;
        let (reply, outcome) = oneshot::channel();
        self.send(Command::Submit(Box::new(Submission {
            envelope,
            origin,
            verdict,
            reply,
        })))?;
        outcome.await.map_err(|_| SubmitError::Stopped)?
    }

    /// Records that a message this node never held was forgotten on a peer (a skeleton the
    /// caller checked: its signature, and a FORGET by the same sender naming it). True if
    /// recorded; false if the node holds the message or already knows it forgotten.
    pub async fn record_forgotten(
        &self,
        skeleton: raleph_db::ForgottenRecord,
    ) -> Result<bool, SubmitError> {
        let (reply, outcome) = oneshot::channel();
        self.send(Command::RecordForgotten {
            skeleton: Box::new(skeleton),
            reply,
        })?;
        outcome.await.map_err(|_| SubmitError::Stopped)?
    }

    /// Moves an upload into the file store and records it.
    pub async fn store_file(
        &self,
        upload: Box<dyn PendingUpload>,
        grace: bool,
    ) -> Result<FileRecord, SubmitError> {
        let (reply, outcome) = oneshot::channel();
        self.send(Command::StoreFile {
            upload,
            grace,
            reply,
        })?;
        outcome.await.map_err(|_| SubmitError::Stopped)?
    }

    /// Deletes files that no pin holds any more; returns how many.
    pub async fn collect_garbage(&self) -> Result<usize, SubmitError> {
        let (reply, outcome) = oneshot::channel();
        self.send(Command::CollectGarbage { reply })?;
        outcome.await.map_err(|_| SubmitError::Stopped)?
    }

    fn send(&self, command: Command) -> Result<(), SubmitError> {
        self.commands.try_send(command).map_err(|e| match e {
            TrySendError::Full(_) => SubmitError::Busy,
            TrySendError::Disconnected(_) => SubmitError::Stopped,
        })
    }

    /// Processing events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }
}

/// Checks the signature of an envelope against its chain's scheme.
pub fn verify_signature(envelope: &Envelope) -> Result<(), Failure> {
    let Some(signature) = envelope.signature.as_deref() else {
        return Err(Failure::new(
            ErrorCode::InvalidSignature,
            "the message has no signature",
        ));
    };
    let fields = raleph_crypto::SignedFields {
        chain: envelope.chain,
        sender: &envelope.sender,
        message_type: envelope.message_type.as_str(),
        item_hash: envelope.item_hash.as_str(),
        time: envelope.time,
    };
    raleph_crypto::verify(&fields, signature)
        .map_err(|e| Failure::new(ErrorCode::InvalidSignature, e.to_string()))
}
