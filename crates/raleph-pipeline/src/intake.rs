//! Intake: the handle through which the API, peers and sync submit messages, and the
//! acceptor thread that journals them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};

use raleph_db::{Anchor, FileRecord};
use raleph_message::{Chain, Envelope, ItemHash};
use tokio::sync::{broadcast, oneshot};

use crate::journal::Journal;
use crate::submission::{
    AnchorDone, AnchorOp, Command, Next, PendingUpload, Submission, SubmitError, SubmitOutcome,
    Unchecked,
};
use crate::{Clock, Event};

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

    /// For a message read from a chain whose emitter the chain reader authenticated (the
    /// smart-contract protocol: such messages carry no signature, the chain vouches for
    /// them): like [`submit`](Self::submit) with origin `onchain`, but no signature is
    /// verified. Only the chain reader may call it; every other path verifies signatures,
    /// and refuses a message that has none.
    pub async fn submit_from_chain(
        &self,
        envelope: Envelope,
    ) -> Result<SubmitOutcome, SubmitError> {
        let (reply, outcome) = oneshot::channel();
        let mut submission = unchecked(envelope, ONCHAIN, Some(reply), false);
        submission.signature_by_chain = true;
        self.check(submission, Next::Journal)?;
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

    /// Records an anchoring transaction a chain reader saw and a confirmation of each of its
    /// items (see `WriteStore::record_anchor`); false when it was known already.
    pub async fn record_anchor(
        &self,
        anchor: Anchor,
        items: Vec<ItemHash>,
    ) -> Result<bool, SubmitError> {
        let op = AnchorOp::Record {
            anchor: Box::new(anchor),
            items,
        };
        match self.anchoring(op).await? {
            AnchorDone::Recorded(new) => Ok(new),
            _ => Err(unexpected()),
        }
    }

    /// Records an anchor whose archive was found nowhere, to be completed when it is found
    /// (see `WriteStore::record_anchor_missing_archive`); false when it was known already.
    pub async fn record_anchor_missing_archive(
        &self,
        anchor: Anchor,
        claimed_root: Option<String>,
    ) -> Result<bool, SubmitError> {
        let op = AnchorOp::RecordMissing {
            anchor: Box::new(anchor),
            claimed_root,
        };
        match self.anchoring(op).await? {
            AnchorDone::Recorded(new) => Ok(new),
            _ => Err(unexpected()),
        }
    }

    /// An anchor's archive, found at last: its confirmations and Merkle root (see
    /// `WriteStore::complete_anchor`); false when it was no longer missing.
    pub async fn complete_anchor(
        &self,
        anchor: Anchor,
        items: Vec<ItemHash>,
        merkle_root: Option<String>,
    ) -> Result<bool, SubmitError> {
        let op = AnchorOp::Complete {
            anchor: Box::new(anchor),
            items,
            merkle_root,
        };
        match self.anchoring(op).await? {
            AnchorDone::Recorded(done) => Ok(done),
            _ => Err(unexpected()),
        }
    }

    /// A reorganisation: drops the chain's anchors from `height` up (see
    /// `WriteStore::drop_anchors_from`); returns how many.
    pub async fn drop_anchors_from(&self, chain: Chain, height: u64) -> Result<u64, SubmitError> {
        match self.anchoring(AnchorOp::DropFrom { chain, height }).await? {
            AnchorDone::Dropped(n) => Ok(n),
            _ => Err(unexpected()),
        }
    }

    /// Keeps the chain reader's position on `chain`.
    pub async fn set_chain_position(
        &self,
        chain: Chain,
        position: String,
    ) -> Result<(), SubmitError> {
        self.anchoring(AnchorOp::SetPosition { chain, position })
            .await
            .map(drop)
    }

    /// Records a batch a packing node built, created now (the pipeline's clock); returns its
    /// id.
    pub async fn create_batch(
        &self,
        chain: Chain,
        archive: String,
        merkle_root: String,
        items: Vec<ItemHash>,
    ) -> Result<i64, SubmitError> {
        let op = AnchorOp::CreateBatch {
            chain,
            archive,
            merkle_root,
            items,
        };
        match self.anchoring(op).await? {
            AnchorDone::Batch(id) => Ok(id),
            _ => Err(unexpected()),
        }
    }

    /// The batch was sent in transaction `tx_hash` with `nonce`, now.
    pub async fn batch_submitted(
        &self,
        id: i64,
        tx_hash: String,
        nonce: u64,
    ) -> Result<(), SubmitError> {
        self.anchoring(AnchorOp::Submitted { id, tx_hash, nonce })
            .await
            .map(drop)
    }

    /// Deletes a batch; its unconfirmed items are left to anchor again.
    pub async fn abandon_batch(&self, id: i64) -> Result<(), SubmitError> {
        self.anchoring(AnchorOp::Abandon { id }).await.map(drop)
    }

    /// Keeps `file` (an anchoring archive, which no message pins) for `secs` from now, so
    /// that other nodes can fetch it from this one.
    pub async fn keep_file_for(&self, file: FileRecord, secs: f64) -> Result<(), SubmitError> {
        let op = AnchorOp::KeepFile {
            file: Box::new(file),
            secs,
        };
        self.anchoring(op).await.map(drop)
    }

    async fn anchoring(&self, op: AnchorOp) -> Result<AnchorDone, SubmitError> {
        let (reply, outcome) = oneshot::channel();
        self.send(Command::Anchoring { op, reply })?;
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

/// The origin of messages read from a chain.
const ONCHAIN: &str = "onchain";

/// The writer answered an anchoring command with another's answer: a bug.
fn unexpected() -> SubmitError {
    SubmitError::Store("the writer gave an unexpected answer".into())
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
        signature_by_chain: false,
    }
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
    clock: &dyn Clock,
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
        let received = clock.now();
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
