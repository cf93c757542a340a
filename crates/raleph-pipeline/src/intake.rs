//! The handle through which the API (and later peers and chains) submit messages.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};

use raleph_db::{ErrorCode, Failure, FileRecord, MessageStatus};
use raleph_message::{Content, Envelope};
use tokio::sync::{broadcast, oneshot};

use crate::Event;
use crate::check::{Next, Unchecked};
use crate::journal::Journal;

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

/// A cloneable handle to the running pipeline.
#[derive(Clone)]
pub struct PipelineHandle {
    /// To the signature checkers, which pass submissions on to the acceptor (or the writer).
    pub(crate) checks: SyncSender<Unchecked>,
    /// To the writer thread.
    pub(crate) commands: SyncSender<Command>,
    pub(crate) events: broadcast::Sender<Event>,
    /// The last journal record written, and the last one applied to the store.
    pub(crate) journaled: Arc<AtomicU64>,
    pub(crate) applied: Arc<AtomicU64>,
    /// Set by the writer while the store cannot be written (see `Writer::park`).
    pub(crate) store_down: Arc<AtomicBool>,
    /// The first death of a pipeline thread (see `vital`).
    pub(crate) deaths: tokio::sync::watch::Receiver<Option<String>>,
}

impl PipelineHandle {
    /// Waits until a thread of the pipeline dies (it panicked: a bug), and says which. Never
    /// returns while the pipeline is alive: a node waits on it to stop, with an error, rather
    /// than serve on without a writer.
    pub async fn failed(&self) -> String {
        let mut deaths = self.deaths.clone();
        loop {
            if let Some(death) = deaths.borrow_and_update().clone() {
                return death;
            }
            if deaths.changed().await.is_err() {
                // Every thread ended normally: the pipeline stopped.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Whether the store is down: submissions are refused until it is back.
    pub fn store_down(&self) -> bool {
        self.store_down.load(Ordering::Acquire)
    }

    /// Verifies the signature (on a checker thread), records the message durably and
    /// returns once it is processed (or queued for a retry, or refused). Cancel-safe: a
    /// dropped future may still have journaled the message, which is then processed as usual.
    pub async fn submit(
        &self,
        envelope: Envelope,
        origin: &'static str,
    ) -> Result<SubmitOutcome, SubmitError> {
        self.enter(envelope, origin, false).await
    }

    /// Like [`submit`](Self::submit), but returns as soon as the message is durable in the
    /// intake journal (`Queued`), or refused for its signature (`Rejected`): the writer
    /// applies it shortly after, in a larger transaction.
    pub async fn accept(
        &self,
        envelope: Envelope,
        origin: &'static str,
    ) -> Result<SubmitOutcome, SubmitError> {
        self.enter(envelope, origin, true).await
    }

    /// For messages a peer relayed: verifies the signature and hands the message straight to
    /// the writer, without the journal. Returns `Queued` (the writer will apply it; not yet
    /// durable) or `Rejected` for a bad signature. A message lost to a crash before it is
    /// applied comes back through sync from the peers that hold it, so relaying costs no sync
    /// to disk and no extra thread hop.
    pub async fn offer(
        &self,
        envelope: Envelope,
        origin: &'static str,
    ) -> Result<SubmitOutcome, SubmitError> {
        let (reply, outcome) = oneshot::channel();
        self.check(unchecked(envelope, origin, None, true), Next::Writer(reply))?;
        outcome.await.map_err(|_| SubmitError::Stopped)?
    }

    async fn enter(
        &self,
        envelope: Envelope,
        origin: &'static str,
        answer_when_durable: bool,
    ) -> Result<SubmitOutcome, SubmitError> {
        let (reply, outcome) = oneshot::channel();
        let submission = unchecked(envelope, origin, Some(reply), answer_when_durable);
        self.check(submission, Next::Journal)?;
        outcome.await.map_err(|_| SubmitError::Stopped)?
    }

    /// Queues a submission for its signature check; refused while the store is down.
    fn check(&self, submission: Submission, next: Next) -> Result<(), SubmitError> {
        if self.store_down.load(Ordering::Acquire) {
            return Err(SubmitError::Unavailable(
                "the database is unavailable".into(),
            ));
        }
        self.checks
            .try_send(Unchecked { submission, next })
            .map_err(|e| match e {
                TrySendError::Full(_) => SubmitError::Busy,
                TrySendError::Disconnected(_) => SubmitError::Stopped,
            })
    }

    /// Records that a message this node never held was forgotten on a peer (a skeleton the
    /// caller checked: its signature, and a FORGET from a sender allowed to forget it, naming
    /// it or, for an aggregate element, forgetting by key). An aggregate element this node
    /// holds is forgotten instead when a FORGET processed here targets its key (see
    /// `forgotten`). True if either happened; false otherwise.
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

    /// Journaled submissions the writer has not applied yet (they are durable, and count as
    /// pending).
    pub fn unapplied(&self) -> u64 {
        let applied = self.applied.load(Ordering::Acquire);
        self.journaled
            .load(Ordering::Acquire)
            .saturating_sub(applied)
    }

    /// Processing events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }
}

/// A submission on its way to the signature checkers.
fn unchecked(
    envelope: Envelope,
    origin: &'static str,
    reply: Option<oneshot::Sender<Result<SubmitOutcome, SubmitError>>>,
    answer_when_durable: bool,
) -> Submission {
    Submission {
        envelope,
        origin,
        verdict: Ok(()),
        reply,
        answer_when_durable,
        received: 0.0,
        journal_number: None,
        prepared: None,
    }
}

/// What is checked of a message before it is accepted: its signature, and the content of an
/// inline message, which the reference validates at submission (a 422 there and here); the
/// inline content's parse is returned, for the writer. A non-inline message's content is
/// checked when it is processed, once it is at hand.
pub fn check_submission(envelope: &Envelope) -> Result<Option<Content>, Failure> {
    verify_signature(envelope)?;
    let Some(inline) = &envelope.item_content else {
        return Ok(None);
    };
    Content::of_message(envelope, inline.as_bytes())
        .map(Some)
        .map_err(|e| Failure::new(ErrorCode::InvalidFormat, e.to_string()))
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

pub(crate) struct AcceptorLimits {
    /// Most submissions journaled with one append.
    pub group: usize,
    /// Most journaled submissions not yet applied before the acceptor waits for the writer.
    pub unapplied: u64,
    /// Set while the writer waits for the store (see `Writer::park`): submissions journaled
    /// meanwhile are answered at once, as queued, rather than when the store is back.
    pub store_down: Arc<AtomicBool>,
}

/// The acceptor thread: journals submissions in groups (one append and sync per group),
/// answers `accept` callers, and hands each group to the writer in journal order. The
/// writer's backlog is bounded: past `limits.unapplied` this thread waits, the intake queue
/// fills, and new submissions are refused as busy. A backlog lets the writer apply large
/// batches, which write far fewer pages per message.
pub(crate) fn run_acceptor(
    mut journal: Journal,
    inbox: Receiver<Submission>,
    writer: SyncSender<Command>,
    journaled: Arc<AtomicU64>,
    applied: Arc<AtomicU64>,
    limits: AcceptorLimits,
) {
    while let Ok(first) = inbox.recv() {
        let backlog = || {
            let done = applied.load(Ordering::Acquire);
            journaled.load(Ordering::Acquire).saturating_sub(done)
        };
        while backlog() >= limits.unapplied {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let mut group = vec![first];
        while group.len() < limits.group {
            match inbox.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let received = crate::now();
        for submission in &mut group {
            submission.received = received;
        }
        let verified = group.iter().filter(|s| s.verdict.is_ok());
        match journal.append(verified.map(|s| (&s.envelope, s.origin, s.received))) {
            Ok(mut number) => {
                for submission in group.iter_mut().filter(|s| s.verdict.is_ok()) {
                    submission.journal_number = Some(number);
                    journaled.store(number, Ordering::Release);
                    number += 1;
                }
            }
            Err(e) => {
                tracing::error!("writing the intake journal failed: {e}");
                for submission in group {
                    if let Some(reply) = submission.reply {
                        let _ = reply.send(Err(SubmitError::Unavailable(format!(
                            "writing the intake journal failed: {e}"
                        ))));
                    }
                }
                continue;
            }
        }
        let store_down = limits.store_down.load(Ordering::Acquire);
        for submission in group
            .iter_mut()
            .filter(|s| s.answer_when_durable || (store_down && s.verdict.is_ok()))
        {
            if let Some(reply) = submission.reply.take() {
                let outcome = match &submission.verdict {
                    Ok(()) => SubmitOutcome::Queued,
                    Err(failure) => SubmitOutcome::Rejected(failure.clone()),
                };
                let _ = reply.send(Ok(outcome));
            }
        }
        if writer.send(Command::Journaled(group)).is_err() {
            break;
        }
        if let Err(e) = journal.release(applied.load(Ordering::Acquire)) {
            tracing::warn!("deleting applied intake-journal segments failed: {e}");
        }
    }
    tracing::info!("pipeline acceptor stopped");
}
