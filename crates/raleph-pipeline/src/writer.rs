//! The writer thread: the only owner of the store's write side.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, sync_channel};
use std::time::Duration;

use raleph_db::{
    EnqueueOutcome, ErrorCode, Failure, MessageStatus, NewPending, PendingRow, WriteStore,
};
use raleph_message::{Envelope, ItemHash};
use rand::Rng;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::context::Context;
use crate::decide::{Candidate, Decision, Signature, decide};
use crate::forget::forget_held_element;
use crate::intake::{AcceptorLimits, run_acceptor};
use crate::journal::{Journal, Record, static_origin};
use crate::submission::{Command, PendingUpload, Submission, SubmitError, SubmitOutcome};
use crate::vital::Vital;
use crate::{Clock, ContentSource, Event, PaymentPolicy, PipelineConfig, PipelineHandle};

/// Longest the writer sleeps when nothing is due, so it notices a stopped node.
const IDLE_WAIT: Duration = Duration::from_millis(500);

/// Batches of at least this many submissions are applied without waiting for more.
const GATHER_BELOW: usize = 64;
/// The longest `pipeline.gather_ms` is taken to be.
const MAX_GATHER: Duration = Duration::from_secs(1);

/// `pipeline.gather_ms` as a duration: 0 when not a positive number, at most [`MAX_GATHER`].
fn gather_duration(ms: f64) -> Duration {
    if ms > 0.0 {
        Duration::from_secs_f64((ms / 1000.0).min(MAX_GATHER.as_secs_f64()))
    } else {
        Duration::ZERO
    }
}

/// Commands waiting for the writer. Journaled groups are bounded by messages instead (see
/// `PipelineConfig::max_unapplied`), so this only caps the number of small groups.
const WRITER_QUEUE: usize = 4096;

/// The longest pause between two tries of a store that is unavailable.
const MAX_PARK_PAUSE: Duration = Duration::from_secs(2);

/// Starts the pipeline: the acceptor thread, which journals submissions in `journal_dir`, and
/// the writer thread, which first applies what the journal holds beyond the store's position
/// (submissions a stop interrupted). Both stop when every handle is dropped. Every time the
/// pipeline decides by (reception, retries, grace pins, expiry) is read from `clock`.
pub fn spawn(
    mut store: Box<dyn WriteStore>,
    content: Arc<dyn ContentSource>,
    payments: Arc<dyn PaymentPolicy>,
    config: PipelineConfig,
    journal_dir: &Path,
    clock: Arc<dyn Clock>,
) -> std::io::Result<(PipelineHandle, std::thread::JoinHandle<()>)> {
    let position = store
        .journal_position()
        .map_err(|e| std::io::Error::other(format!("reading the journal position: {e}")))?;
    let (journal, unapplied) = Journal::open(journal_dir, position, config.durable)?;
    if !unapplied.is_empty() {
        tracing::info!(
            count = unapplied.len(),
            "replaying journaled submissions the last stop left unapplied"
        );
    }
    let applied = Arc::new(AtomicU64::new(position));
    let journaled = Arc::new(AtomicU64::new(journal.last_number().max(position)));
    let (checks, unchecked) = sync_channel(config.intake_queue.max(1));
    let (intake, accepted) = sync_channel(config.intake_queue.max(1));
    let (commands, inbox) = sync_channel(WRITER_QUEUE);
    let (events, _) = broadcast::channel(4096);
    let (deaths, deaths_seen) = crate::vital::deaths();
    let preparer = crate::prepare::Preparer::new(
        content.clone(),
        config.max_content_bytes,
        config.max_prepared_content_bytes,
    );
    crate::check::spawn(
        config.signature_threads(),
        unchecked,
        intake,
        commands.clone(),
        Arc::new(preparer),
        clock.clone(),
        &deaths,
    )?;
    let store_down = Arc::new(AtomicBool::new(false));
    let handle = PipelineHandle {
        checks,
        commands: commands.clone(),
        events: events.clone(),
        journaled: journaled.clone(),
        applied: applied.clone(),
        store_down: store_down.clone(),
        deaths: deaths_seen,
    };
    let limits = AcceptorLimits {
        group: config.intake_batch.max(1),
        unapplied: config.max_unapplied.max(1) as u64,
        store_down: store_down.clone(),
    };
    let acceptor_applied = applied.clone();
    let acceptor_deaths = deaths.clone();
    let acceptor_clock = clock.clone();
    std::thread::Builder::new()
        .name("raleph-acceptor".into())
        .spawn(move || {
            let _vital = Vital::new("acceptor", &acceptor_deaths);
            run_acceptor(
                journal,
                accepted,
                commands,
                journaled,
                acceptor_applied,
                limits,
                acceptor_clock.as_ref(),
            )
        })?;
    let mut writer = Writer {
        store,
        rules: Rules {
            content,
            payments,
            config,
            clock,
        },
        events,
        rejections_since_expiry: 0,
        applied,
        store_down,
        inbox,
        held: VecDeque::new(),
    };
    let thread = std::thread::Builder::new()
        .name("raleph-writer".into())
        .spawn(move || {
            let _vital = Vital::new("writer", &deaths);
            writer.replay(unapplied);
            writer.run()
        })?;
    Ok((handle, thread))
}

/// What the writer lends the message rules, beside the store (see [`Context`]).
struct Rules {
    content: Arc<dyn ContentSource>,
    payments: Arc<dyn PaymentPolicy>,
    config: PipelineConfig,
    clock: Arc<dyn Clock>,
}

impl Rules {
    /// Seconds since the epoch, by the pipeline's clock.
    fn now(&self) -> f64 {
        self.clock.now()
    }

    /// The rules' view, now.
    fn context(&self) -> Context<'_> {
        Context {
            content: self.content.as_ref(),
            payments: self.payments.as_ref(),
            config: &self.config,
            now: self.now(),
        }
    }
}

pub(crate) struct Writer {
    store: Box<dyn WriteStore>,
    rules: Rules,
    events: broadcast::Sender<Event>,
    /// Rejections recorded since rejections were last expired.
    rejections_since_expiry: u64,
    /// The last journal record applied and committed (read by the acceptor to delete
    /// applied journal segments).
    applied: Arc<AtomicU64>,
    /// Set while the store is unavailable (see [`Writer::park`]); intake refuses meanwhile.
    store_down: Arc<AtomicBool>,
    inbox: Receiver<Command>,
    /// Commands taken from the inbox while the store was down, to run first, in order.
    held: VecDeque<Command>,
}

impl Writer {
    /// The next command: a held one first, else from the inbox within `wait`.
    fn next_command(&mut self, wait: Duration) -> Result<Command, RecvTimeoutError> {
        match self.held.pop_front() {
            Some(command) => Ok(command),
            None => self.inbox.recv_timeout(wait),
        }
    }

    /// While parked: takes what reached the inbox, to run once the store is back, and answers
    /// the callers waiting for journaled submissions among it (they need not wait for the
    /// store: see `commit_intake`).
    /// Other commands are refused as the intake refuses new submissions meanwhile.
    fn hold_inbox(&mut self) {
        let down = || SubmitError::Unavailable("the database is unavailable".into());
        while let Ok(command) = self.inbox.try_recv() {
            match command {
                Command::Journaled(mut group) => {
                    answer_queued(&mut group);
                    self.held.push_back(Command::Journaled(group));
                }
                Command::StoreFile { reply, .. } => {
                    let _ = reply.send(Err(down()));
                }
                Command::CollectGarbage { reply } => {
                    let _ = reply.send(Err(down()));
                }
                Command::RecordForgotten { reply, .. } => {
                    let _ = reply.send(Err(down()));
                }
                Command::Anchoring { reply, .. } => {
                    let _ = reply.send(Err(down()));
                }
            }
        }
    }

    fn run(&mut self) {
        loop {
            let wait = self.time_until_due();
            let first = match self.next_command(wait) {
                Ok(command) => Some(command),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            if let Some(first) = first {
                // Whatever has gathered goes into one transaction, up to `index_batch`.
                let mut submissions = Vec::new();
                let mut others = Vec::new();
                let mut next = Some(first);
                // A small batch waits up to `gather_ms` for more, so that messages trickling
                // in (relayed gossip) share a commit and its sync instead of paying one each.
                let gather_until =
                    std::time::Instant::now() + gather_duration(self.rules.config.gather_ms);
                while let Some(command) = next.take() {
                    match command {
                        Command::Journaled(group) => submissions.extend(group),
                        other => others.push(other),
                    }
                    let count = submissions.len() + others.len();
                    if count >= self.rules.config.index_batch {
                        break;
                    }
                    next = self.next_command(Duration::ZERO).ok();
                    if next.is_none() && others.is_empty() && count < GATHER_BELOW {
                        let left =
                            gather_until.saturating_duration_since(std::time::Instant::now());
                        if !left.is_zero() {
                            next = self.next_command(left).ok();
                        }
                    }
                }
                if !submissions.is_empty() {
                    self.commit_intake(submissions);
                }
                for command in others {
                    self.run_command(command);
                }
            }
            // One processing batch per turn, so intake is never starved by a long backlog.
            self.process_due();
            self.expire_rejections_if_due();
        }
        tracing::info!("pipeline writer stopped");
    }

    /// Applies journaled submissions that a stop left unapplied, in journal order.
    fn replay(&mut self, records: Vec<Record>) {
        let mut batch = Vec::new();
        for record in records {
            let envelope = serde_json::from_slice(&record.envelope_json)
                .map_err(|e| e.to_string())
                .and_then(|json| Envelope::from_json(&json).map_err(|e| e.to_string()));
            match envelope {
                Ok(envelope) => batch.push(Submission {
                    envelope,
                    origin: static_origin(&record.origin),
                    // Only submissions whose signature held were journaled.
                    verdict: Ok(()),
                    reply: None,
                    answer_when_durable: true,
                    received: record.received,
                    journal_number: Some(record.number),
                    prepared: None,
                    signature_by_chain: false,
                }),
                Err(e) => tracing::error!(
                    number = record.number,
                    "intake journal: an unreadable envelope is skipped: {e}"
                ),
            }
            if batch.len() >= self.rules.config.index_batch.max(1) {
                self.commit_intake(std::mem::take(&mut batch));
            }
        }
        if !batch.is_empty() {
            self.commit_intake(batch);
        }
    }

    fn time_until_due(&mut self) -> Duration {
        match self.store.next_due() {
            Ok(Some(due)) => Duration::from_secs_f64(
                (due - self.rules.now()).clamp(0.0, IDLE_WAIT.as_secs_f64()),
            ),
            Ok(None) => IDLE_WAIT,
            Err(e) => {
                tracing::error!("failed to read the pending queue: {e}");
                IDLE_WAIT
            }
        }
    }

    fn run_command(&mut self, command: Command) {
        match command {
            Command::Journaled(group) => self.commit_intake(group),
            Command::StoreFile {
                upload,
                grace,
                reply,
            } => {
                let _ = reply.send(self.store_file(upload, grace));
            }
            Command::CollectGarbage { reply } => {
                let _ = reply.send(self.collect_garbage());
            }
            Command::RecordForgotten { skeleton, reply } => {
                let ctx = self.rules.context();
                let (now, grace_until) = (ctx.now, ctx.grace_until());
                let recorded = self.store.begin().and_then(|()| {
                    let recorded = self.store.record_forgotten(&skeleton)?
                        || forget_held_element(self.store.as_mut(), &skeleton, now, grace_until)?;
                    self.store.commit()?;
                    Ok(recorded)
                });
                if recorded.is_err() {
                    let _ = self.store.rollback();
                }
                let _ = reply.send(recorded.map_err(|e| SubmitError::Store(e.to_string())));
            }
            Command::Anchoring { op, reply } => {
                let now = self.rules.now();
                let done = self.store.begin().and_then(|()| {
                    let done = crate::anchoring::apply(self.store.as_mut(), op, now)?;
                    self.store.commit()?;
                    Ok(done)
                });
                if done.is_err() {
                    let _ = self.store.rollback();
                }
                let _ = reply.send(done.map_err(|e| SubmitError::Store(e.to_string())));
            }
        }
    }

    fn store_file(
        &mut self,
        upload: Box<dyn PendingUpload>,
        grace: bool,
    ) -> Result<raleph_db::FileRecord, SubmitError> {
        let file = upload
            .commit()
            .map_err(|e| SubmitError::Store(format!("storing the file failed: {e}")))?;
        let grace_until = grace.then(|| self.rules.context().grace_until());
        let recorded = self.store.begin().and_then(|()| {
            self.store.record_file(&file, grace_until)?;
            self.store.commit()
        });
        if let Err(e) = recorded {
            let _ = self.store.rollback();
            // The bytes stay on disk unrecorded; the sweep deletes them after the grace period.
            return Err(SubmitError::Store(e.to_string()));
        }
        Ok(file)
    }

    /// Deletes the records, then the bytes, of files no pin holds; then sweeps files on disk
    /// that were never recorded (a crash between writing and recording) once they are older
    /// than the grace period. Runs on the writer thread, so no pin can appear meanwhile.
    fn collect_garbage(&mut self) -> Result<usize, SubmitError> {
        let store_error = |e: raleph_db::StoreError| SubmitError::Store(e.to_string());
        let unpinned = self
            .store
            .begin()
            .and_then(|()| {
                let unpinned = self.store.collect_unpinned_files(self.rules.now())?;
                self.store.commit()?;
                Ok(unpinned)
            })
            .map_err(|e| {
                let _ = self.store.rollback();
                store_error(e)
            })?;
        let mut deleted = 0;
        for sha256 in &unpinned {
            match self.rules.content.delete_file(sha256) {
                Ok(()) => deleted += 1,
                Err(e) => tracing::warn!(%sha256, "failed to delete an unpinned file: {e}"),
            }
        }
        let grace = self.rules.config.file_grace_period_secs.max(0.0);
        let now = self.rules.now();
        let files = self
            .rules
            .content
            .list_files()
            .map_err(|e| SubmitError::Store(e.to_string()))?;
        for (sha256, stored_at) in files {
            // A time before the epoch counts as long ago; one after `now` as just written.
            let stored_secs = stored_at
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            let old_enough = now - stored_secs >= grace;
            if old_enough && !self.store.file_known(&sha256).map_err(store_error)? {
                match self.rules.content.delete_file(&sha256) {
                    Ok(()) => deleted += 1,
                    Err(e) => tracing::warn!(%sha256, "failed to delete an unrecorded file: {e}"),
                }
            }
        }
        if deleted > 0 {
            tracing::info!(deleted, "garbage collector deleted unpinned files");
        }
        match self.expire_rejections() {
            Ok(0) => {}
            Ok(expired) => tracing::info!(expired, "forgot rejected messages past their time"),
            Err(e) => return Err(store_error(e)),
        }
        Ok(deleted)
    }

    /// Applies a batch of submissions in one transaction, with the journal position they
    /// reach, then answers whoever waits. A new message is processed right there: the common
    /// case never touches the pending queue. Only a message that has to wait (a retryable
    /// failure) is queued.
    fn commit_intake(&mut self, mut batch: Vec<Submission>) {
        let started = std::time::Instant::now();
        let mut events = Vec::new();
        let mut result = self.try_commit_intake(&batch, &mut events);
        tracing::trace!(
            messages = batch.len(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "applied a batch"
        );
        if matches!(&result, Err(e) if e.is_unavailable()) {
            // The store, not these messages, failed: they are journaled and acknowledged, so
            // they wait here, in order, until the store is back. Callers waiting for them to be
            // processed (`submit`) are told now that they are queued, as for any message
            // that must wait, rather than held for the whole outage.
            // Down before the callers hear "queued", so they do not wait for processing.
            self.store_down.store(true, Ordering::Release);
            answer_queued(&mut batch);
            result = self.park(|w| {
                events.clear();
                w.try_commit_intake(&batch, &mut events)
            });
        }
        match result {
            Ok(outcomes) => {
                let position = batch.iter().filter_map(|s| s.journal_number).max();
                if let Some(position) = position {
                    self.applied.fetch_max(position, Ordering::AcqRel);
                }
                for event in events {
                    let _ = self.events.send(event);
                }
                for (submission, outcome) in batch.into_iter().zip(outcomes) {
                    if let Some(reply) = submission.reply {
                        let _ = reply.send(Ok(outcome));
                    }
                }
            }
            Err(e) if batch.len() > 1 => {
                // Apply them one by one, so one message that trips the store does not hold
                // back the others (they are journaled and acknowledged already).
                tracing::warn!("applying a batch failed, retrying its messages one by one: {e}");
                for submission in batch {
                    self.commit_intake(vec![submission]);
                }
            }
            Err(e) => {
                for submission in batch {
                    self.queue_after_store_error(submission, &e);
                }
            }
        }
    }

    /// One transaction applying `batch` with the journal position it reaches; rolled back
    /// if it fails.
    fn try_commit_intake(
        &mut self,
        batch: &[Submission],
        events: &mut Vec<Event>,
    ) -> raleph_db::Result<Vec<SubmitOutcome>> {
        let position = batch.iter().filter_map(|s| s.journal_number).max();
        let result = self.store.begin().and_then(|()| {
            let outcomes = batch
                .iter()
                .map(|s| self.record_submission(s, events))
                .collect::<raleph_db::Result<Vec<_>>>()?;
            if let Some(position) = position {
                self.store.set_journal_position(position)?;
            }
            self.store.commit()?;
            Ok(outcomes)
        });
        if result.is_err() {
            let _ = self.store.rollback();
        }
        result
    }

    /// Runs `attempt` again and again, with a growing pause between tries (up to
    /// `MAX_PARK_PAUSE`), while it fails because the store is unavailable (a database server
    /// that is down, a full disk); returns its first other outcome. Meanwhile the handle
    /// reports the store down, so new submissions are refused (HTTP 503) instead of piling up,
    /// and nothing waiting here spends a retry: a store fault is not the message's fault.
    fn park<T>(
        &mut self,
        mut attempt: impl FnMut(&mut Self) -> raleph_db::Result<T>,
    ) -> raleph_db::Result<T> {
        let since = std::time::Instant::now();
        let mut pause = Duration::from_millis(50);
        let mut last_log: Option<std::time::Instant> = None;
        self.store_down.store(true, Ordering::Release);
        let result = loop {
            std::thread::sleep(pause);
            pause = (pause * 2).min(MAX_PARK_PAUSE);
            self.hold_inbox();
            match attempt(self) {
                Err(e) if e.is_unavailable() => {
                    if last_log.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
                        tracing::error!(
                            down_for_secs = since.elapsed().as_secs(),
                            "the store is unavailable; accepted messages wait, new ones are refused: {e}"
                        );
                        last_log = Some(std::time::Instant::now());
                    }
                }
                other => break other,
            }
        };
        self.store_down.store(false, Ordering::Release);
        tracing::warn!(
            down_for_secs = since.elapsed().as_secs_f64(),
            "the store is back"
        );
        result
    }

    /// A submission whose processing failed on a store error: put it in the pending queue to
    /// be tried again later, or, if even that fails, give up on it loudly.
    fn queue_after_store_error(&mut self, mut submission: Submission, e: &raleph_db::StoreError) {
        let mut reply = submission.reply.take();
        let item_hash = submission.envelope.item_hash.to_string();
        tracing::warn!(%item_hash, "processing failed on a store error, queued: {e}");
        let now = submission.received;
        let queue = |w: &mut Self| {
            let queued = w.store.begin().and_then(|()| {
                let outcome = w.enqueue(&submission, now, now)?;
                if let Some(position) = submission.journal_number {
                    w.store.set_journal_position(position)?;
                }
                w.store.commit()?;
                Ok(outcome)
            });
            if queued.is_err() {
                let _ = w.store.rollback();
            }
            queued
        };
        let mut queued = queue(self);
        if matches!(&queued, Err(e) if e.is_unavailable()) {
            // Journaled: its caller need not wait for the store (see `commit_intake`).
            self.store_down.store(true, Ordering::Release);
            if submission.journal_number.is_some()
                && let Some(reply) = reply.take()
            {
                let _ = reply.send(Ok(SubmitOutcome::Queued));
            }
            queued = self.park(queue);
        }
        let answer = match queued {
            Ok(outcome) => {
                if let Some(position) = submission.journal_number {
                    self.applied.fetch_max(position, Ordering::AcqRel);
                }
                Ok(outcome)
            }
            Err(e) => {
                tracing::error!(
                    %item_hash,
                    journal = ?submission.journal_number,
                    "failed to apply or queue a submission: {e}"
                );
                Err(SubmitError::Store(e.to_string()))
            }
        };
        if let Some(reply) = reply {
            let _ = reply.send(answer);
        }
    }

    /// Decides a new submission and carries out the decision: processed, queued (to wait
    /// for a retry, or behind another copy), known already, or rejected.
    fn record_submission(
        &mut self,
        s: &Submission,
        events: &mut Vec<Event>,
    ) -> raleph_db::Result<SubmitOutcome> {
        let envelope = &s.envelope;
        let item_hash = &envelope.item_hash;
        let now = s.received;
        let candidate = Candidate {
            envelope,
            signature: match &s.verdict {
                Ok(()) => Signature::Verified,
                Err(failure) => Signature::Invalid(failure),
            },
            received: now,
            prepared: s.prepared.as_ref(),
            queued: false,
        };
        // No savepoint: a failing message writes nothing (see `handlers`), and a store error
        // fails the batch, which is then applied one message at a time.
        let ctx = self.rules.context();
        match decide(self.store.as_mut(), &ctx, &candidate)? {
            Decision::BadSignature { failure, prior } => {
                // A bad copy never overrides a message the node already holds or is processing.
                if prior.is_none_or(|st| st == MessageStatus::Rejected) {
                    self.record_rejection(item_hash, &envelope.to_json(), &failure)?;
                    self.store
                        .set_status(item_hash, MessageStatus::Rejected, now)?;
                }
                Ok(SubmitOutcome::Rejected(failure))
            }
            Decision::Copy(status) => {
                self.store.keep_earliest_time(item_hash, envelope.time)?;
                Ok(SubmitOutcome::Known(status))
            }
            Decision::Gone(status) => Ok(SubmitOutcome::Known(status)),
            Decision::JoinQueue => self.enqueue(s, now, now),
            Decision::Processed(message) => {
                events.push(Event::Processed(Arc::new(message)));
                Ok(SubmitOutcome::Known(MessageStatus::Processed))
            }
            Decision::Retry(failure) => {
                let outcome = self.enqueue(s, now, now + self.backoff(0))?;
                events.push(Event::Retrying {
                    item_hash: item_hash.clone(),
                    failure,
                });
                Ok(outcome)
            }
            Decision::Reject(failure) => {
                self.record_rejection(item_hash, &envelope.to_json(), &failure)?;
                self.store
                    .set_status(item_hash, MessageStatus::Rejected, now)?;
                events.push(Event::Rejected {
                    item_hash: item_hash.clone(),
                    failure: failure.clone(),
                });
                Ok(SubmitOutcome::Rejected(failure))
            }
        }
    }

    /// Puts a verified submission in the pending queue, first tried at `first_attempt`.
    fn enqueue(
        &mut self,
        s: &Submission,
        now: f64,
        first_attempt: f64,
    ) -> raleph_db::Result<SubmitOutcome> {
        let envelope = &s.envelope;
        let pending = NewPending {
            item_hash: envelope.item_hash.clone(),
            sender: envelope.sender.clone(),
            signature: envelope.signature.clone(),
            message: envelope.to_json(),
            reception_time: now,
            origin: s.origin,
            signature_verified: true,
            first_attempt,
        };
        Ok(match self.store.enqueue_pending(&pending)? {
            EnqueueOutcome::Queued => SubmitOutcome::Queued,
            EnqueueOutcome::Known(status) => SubmitOutcome::Known(status),
        })
    }

    /// A random delay before retry number `retries + 1`: exponential, capped, jittered.
    fn backoff(&self, retries: u32) -> f64 {
        let ceiling = 2f64
            .powi(retries as i32)
            .min(self.rules.config.max_backoff_secs)
            .max(0.001);
        rand::thread_rng().gen_range(ceiling / 2.0..=ceiling)
    }

    /// Processes one batch of due pending messages in one transaction.
    fn process_due(&mut self) {
        let rows = match self
            .store
            .due_pending(self.rules.now(), self.rules.config.process_batch)
        {
            Ok(rows) if rows.is_empty() => return,
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!("failed to read the pending queue: {e}");
                return;
            }
        };
        let mut events = Vec::with_capacity(rows.len());
        let mut result = self.try_process(&rows, &mut events);
        if matches!(&result, Err(e) if e.is_unavailable()) {
            result = self.park(|w| {
                events.clear();
                w.try_process(&rows, &mut events)
            });
        }
        match result {
            Ok(()) => {
                for event in events {
                    let _ = self.events.send(event);
                }
            }
            Err(e) => {
                tracing::error!("failed to commit a processing batch: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// One transaction deciding `rows`, rolled back if it fails. A message on which the store
    /// fails is tried again later, unless the store is unavailable: then the whole batch fails,
    /// and no message spends a retry on it.
    fn try_process(
        &mut self,
        rows: &[PendingRow],
        events: &mut Vec<Event>,
    ) -> raleph_db::Result<()> {
        let result = self.store.begin().and_then(|()| {
            for row in rows {
                self.store.savepoint()?;
                match self.process_row(row) {
                    Ok(event) => {
                        self.store.release_savepoint()?;
                        events.push(event);
                    }
                    Err(e) if e.is_unavailable() => return Err(e),
                    Err(e) => {
                        // The store failed on this message: undo its changes, retry it later.
                        self.store.rollback_savepoint()?;
                        tracing::warn!(item_hash = %row.item_hash, "processing failed on a store error: {e}");
                        let failure = Failure::new(ErrorCode::InternalError, e.to_string());
                        events.push(self.retry_or_reject(row, failure)?);
                    }
                }
            }
            self.store.commit()
        });
        if result.is_err() {
            let _ = self.store.rollback();
        }
        result
    }

    /// Decides one pending message and carries out the decision. Store errors propagate;
    /// message failures become events.
    fn process_row(&mut self, row: &PendingRow) -> raleph_db::Result<Event> {
        let envelope = match Envelope::from_json(&row.message) {
            Ok(envelope) => envelope,
            Err(e) => {
                return self.reject(row, Failure::new(ErrorCode::InvalidFormat, e.to_string()));
            }
        };
        let candidate = Candidate {
            envelope: &envelope,
            signature: if row.signature_verified {
                Signature::Verified
            } else {
                Signature::Unchecked
            },
            received: row.reception_time,
            prepared: None,
            queued: true,
        };
        let ctx = self.rules.context();
        match decide(self.store.as_mut(), &ctx, &candidate)? {
            Decision::Copy(_) => self.duplicate(row, &envelope),
            Decision::Gone(_) => {
                self.store.delete_pending(row.id)?;
                Ok(Event::Forgotten {
                    item_hash: envelope.item_hash.clone(),
                })
            }
            Decision::Processed(message) => {
                self.store.delete_pending(row.id)?;
                Ok(Event::Processed(Arc::new(message)))
            }
            Decision::Retry(failure) => self.retry_or_reject(row, failure),
            // A queued copy's unchecked signature is checked in `decide` (a `Reject`).
            Decision::BadSignature { failure, .. } | Decision::Reject(failure) => {
                self.reject(row, failure)
            }
            // `decide` never asks a queued copy to join its own queue; should it, the copy
            // stays queued for a later try rather than lose its message.
            Decision::JoinQueue => self.retry_or_reject(
                row,
                Failure::new(
                    ErrorCode::InternalError,
                    "a queued copy was asked to join its queue",
                ),
            ),
        }
    }

    /// A copy of a message already processed: a confirmation if the signature matches.
    fn duplicate(&mut self, row: &PendingRow, envelope: &Envelope) -> raleph_db::Result<Event> {
        let item_hash = &envelope.item_hash;
        self.store.delete_pending(row.id)?;
        let stored = self.store.message_facts(item_hash)?;
        if stored.is_some_and(|m| m.envelope.signature != envelope.signature) {
            let failure = Failure::new(
                ErrorCode::InvalidSignature,
                "signature differs from the stored message's",
            );
            return Ok(Event::Rejected {
                item_hash: item_hash.clone(),
                failure,
            });
        }
        self.store.keep_earliest_time(item_hash, envelope.time)?;
        Ok(Event::Confirmed {
            item_hash: item_hash.clone(),
        })
    }

    /// Records why a message was rejected, keeping only a bounded copy of it (see
    /// [`kept_of_rejected`]), and expires old rejections once enough new ones came.
    fn record_rejection(
        &mut self,
        item_hash: &ItemHash,
        message: &Value,
        failure: &Failure,
    ) -> raleph_db::Result<()> {
        let head = self.rules.config.rejected_head_bytes;
        let kept = kept_of_rejected(message, head);
        // Error details may quote what was refused (a 190 KB "item hash", a field's name).
        let failure = Failure {
            code: failure.code,
            details: bounded(&failure.details, head, 4),
        };
        self.store.record_rejection(item_hash, &kept, &failure)?;
        self.rejections_since_expiry += 1;
        Ok(())
    }

    /// Forgets rejections past their retention time, and the oldest past
    /// `max_rejected_kept`, in transactions of their own. Run by the garbage collector, and
    /// after every tenth of `max_rejected_kept` new rejections, so that their number stays
    /// bounded however fast invalid messages come.
    fn expire_rejections(&mut self) -> raleph_db::Result<usize> {
        const BATCH: usize = 10_000;
        self.rejections_since_expiry = 0;
        let before = self.rules.now() - self.rules.config.rejected_retention_secs.max(0.0);
        let keep = self.rules.config.max_rejected_kept;
        let mut expired = 0;
        loop {
            self.store.begin()?;
            let done = match self.store.expire_rejections(before, keep, BATCH) {
                Ok(n) => n,
                Err(e) => {
                    let _ = self.store.rollback();
                    return Err(e);
                }
            };
            self.store.commit()?;
            expired += done;
            if done < BATCH {
                return Ok(expired);
            }
        }
    }

    /// Expires rejections when enough new ones came since the last time.
    fn expire_rejections_if_due(&mut self) {
        let every = (self.rules.config.max_rejected_kept / 10).max(1);
        if self.rejections_since_expiry < every {
            return;
        }
        match self.expire_rejections() {
            Ok(0) => {}
            Ok(expired) => tracing::info!(expired, "forgot the oldest rejected messages"),
            Err(e) => tracing::warn!("expiring rejected messages failed: {e}"),
        }
    }

    fn reject(&mut self, row: &PendingRow, failure: Failure) -> raleph_db::Result<Event> {
        self.store.delete_pending(row.id)?;
        let status = self.store.status(&row.item_hash)?;
        let others = self.store.other_pending(&row.item_hash, row.id)?;
        // Another copy may still succeed, and a processed message stays processed.
        if others == 0
            && status.is_none_or(|s| matches!(s, MessageStatus::Pending | MessageStatus::Rejected))
        {
            self.record_rejection(&row.item_hash, &row.message, &failure)?;
            self.store
                .set_status(&row.item_hash, MessageStatus::Rejected, row.reception_time)?;
        }
        tracing::debug!(item_hash = %row.item_hash, code = failure.code.code(), "message rejected");
        Ok(Event::Rejected {
            item_hash: row.item_hash.clone(),
            failure,
        })
    }

    fn retry_or_reject(&mut self, row: &PendingRow, failure: Failure) -> raleph_db::Result<Event> {
        let retries = row.retries + 1;
        if retries > self.rules.config.max_retries {
            return self.reject(row, failure);
        }
        let delay = self.backoff(row.retries);
        self.store
            .reschedule_pending(row.id, retries, self.rules.now() + delay, &failure)?;
        Ok(Event::Retrying {
            item_hash: row.item_hash.clone(),
            failure,
        })
    }
}

/// Answers the callers waiting for journaled submissions of `group` to be processed: they
/// are queued (durable, and applied once the store is back).
fn answer_queued(group: &mut [Submission]) {
    for submission in group {
        if submission.journal_number.is_some()
            && let Some(reply) = submission.reply.take()
        {
            let _ = reply.send(Ok(SubmitOutcome::Queued));
        }
    }
}

/// What is kept of a rejected message: its fields, each string cut to `head` bytes (at a
/// character boundary). Enough to see whose it was and why it failed, and no more: a client
/// with no key can send invalid messages as fast as the node takes them, and their full
/// bodies (up to 200 000 characters of content each) would be free storage.
pub(crate) fn kept_of_rejected(message: &Value, head: usize) -> Value {
    // Its top-level fields only: an envelope's fields are strings, numbers and null.
    bounded(message, head, 1)
}

/// `value` with each string cut to `head` bytes (at a character boundary), at most 16 items
/// per list or object, and nothing deeper than `depth` levels.
pub(crate) fn bounded(value: &Value, head: usize, depth: usize) -> Value {
    match value {
        Value::String(text) => Value::String(cut(text, head)),
        Value::Array(_) | Value::Object(_) if depth == 0 => Value::Null,
        Value::Array(items) => Value::Array(
            items
                .iter()
                .take(16)
                .map(|item| bounded(item, head, depth - 1))
                .collect(),
        ),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .take(16)
                .map(|(name, item)| (cut(name, head), bounded(item, head, depth - 1)))
                .collect(),
        ),
        scalar => scalar.clone(),
    }
}

fn cut(text: &str, head: usize) -> String {
    let mut end = text.len().min(head);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_times_out_of_range_are_bounded() {
        assert_eq!(gather_duration(2.5), Duration::from_micros(2_500));
        assert_eq!(gather_duration(0.0), Duration::ZERO);
        assert_eq!(gather_duration(-3.0), Duration::ZERO);
        assert_eq!(gather_duration(f64::NAN), Duration::ZERO);
        assert_eq!(gather_duration(1e300), MAX_GATHER);
        assert_eq!(gather_duration(f64::INFINITY), MAX_GATHER);
    }
}
