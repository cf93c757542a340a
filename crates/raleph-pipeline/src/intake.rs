//! The handle through which the API (and later peers and chains) submit messages.

use std::sync::mpsc::{SyncSender, TrySendError};

use raleph_db::{ErrorCode, Failure, MessageStatus};
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
    pub(crate) submissions: SyncSender<Submission>,
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
            let verdict = verify_envelope(&envelope);
            (envelope, verdict)
        })
        .await
        .map_err(|_| SubmitError::Stopped)?;
        let (reply, outcome) = oneshot::channel();
        self.submissions
            .try_send(Submission {
                envelope,
                origin,
                verdict,
                reply,
            })
            .map_err(|e| match e {
                TrySendError::Full(_) => SubmitError::Busy,
                TrySendError::Disconnected(_) => SubmitError::Stopped,
            })?;
        outcome.await.map_err(|_| SubmitError::Stopped)?
    }

    /// Processing events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }
}

/// Checks the signature of an envelope against its chain's scheme.
pub(crate) fn verify_envelope(envelope: &Envelope) -> Result<(), Failure> {
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
