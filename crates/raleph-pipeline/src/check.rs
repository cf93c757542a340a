//! The signature checkers: a few threads (one per core by default) that check the signatures
//! of incoming submissions, off the async threads, and pass each on to where it goes next.
//!
//! A blocking task per submission cost more than the check itself at thousands of messages per
//! second: a thread woken per message (and as many threads as messages in flight), then the
//! submitting task woken only to hand the message to the acceptor. Here a checker takes what
//! has queued up, checks each, and sends it on directly; while submissions keep coming no
//! thread sleeps or wakes between them.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use raleph_db::{ErrorCode, Failure};
use raleph_message::{Content, Envelope};

use crate::Clock;
use crate::prepare::Preparer;
use crate::submission::{Command, Next, Submission, SubmitError, SubmitOutcome, Unchecked};
use crate::vital::{Deaths, Vital};

/// Most submissions a checker takes from the queue at once: small, so that the other
/// checkers get a share of a burst.
const TAKE: usize = 16;

/// Starts `threads` checkers on `queue`. They stop once every sender of the queue is gone.
pub(crate) fn spawn(
    threads: usize,
    queue: Receiver<Unchecked>,
    acceptor: SyncSender<Submission>,
    writer: SyncSender<Command>,
    preparer: Arc<Preparer>,
    clock: Arc<dyn Clock>,
    deaths: &Deaths,
) -> std::io::Result<()> {
    let queue = Arc::new(Mutex::new(queue));
    for index in 0..threads.max(1) {
        let queue = queue.clone();
        let acceptor = acceptor.clone();
        let writer = writer.clone();
        let deaths = deaths.clone();
        let preparer = preparer.clone();
        let clock = clock.clone();
        std::thread::Builder::new()
            .name(format!("raleph-check-{index}"))
            .spawn(move || {
                let _vital = Vital::new("signature checker", &deaths);
                run(&queue, &acceptor, &writer, &preparer, clock.as_ref())
            })?;
    }
    Ok(())
}

fn run(
    queue: &Mutex<Receiver<Unchecked>>,
    acceptor: &SyncSender<Submission>,
    writer: &SyncSender<Command>,
    preparer: &Preparer,
    clock: &dyn Clock,
) {
    while let Some(taken) = take(queue) {
        for Unchecked {
            mut submission,
            next,
        } in taken
        {
            let envelope = &submission.envelope;
            let checked = match submission.signature_by_chain {
                // The chain reader authenticated its emitter (see `submit_from_chain`).
                true => check_content(envelope),
                false => check_submission(envelope),
            };
            match checked {
                Ok(Some(inline)) => submission.prepared = preparer.keep_inline(envelope, inline),
                Ok(None) => submission.prepared = preparer.prepare(envelope),
                Err(failure) => submission.verdict = Err(failure),
            }
            match next {
                Next::Journal => to_acceptor(acceptor, submission),
                Next::Writer(reply) => {
                    let _ = reply.send(to_writer(writer, submission, clock.now()));
                }
            }
        }
    }
}

/// Waits for a submission, then takes it with up to `TAKE - 1` more that are already queued.
/// `None` once the queue is closed.
fn take(queue: &Mutex<Receiver<Unchecked>>) -> Option<Vec<Unchecked>> {
    // A checker that panicked while holding the lock left the receiver intact.
    let queue = queue
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let first = queue.recv().ok()?;
    let mut taken = Vec::with_capacity(TAKE);
    taken.push(first);
    while taken.len() < TAKE {
        match queue.try_recv() {
            Ok(next) => taken.push(next),
            Err(_) => break,
        }
    }
    Some(taken)
}

fn to_acceptor(acceptor: &SyncSender<Submission>, submission: Submission) {
    if let Err(e) = acceptor.try_send(submission) {
        let (submission, error) = match e {
            TrySendError::Full(s) => (s, SubmitError::Busy),
            TrySendError::Disconnected(s) => (s, SubmitError::Stopped),
        };
        if let Some(reply) = submission.reply {
            let _ = reply.send(Err(error));
        }
    }
}

/// Hands a relayed submission to the writer; its outcome as far as known now.
fn to_writer(
    writer: &SyncSender<Command>,
    mut submission: Submission,
    received: f64,
) -> Result<SubmitOutcome, SubmitError> {
    let outcome = match &submission.verdict {
        Ok(()) => SubmitOutcome::Queued,
        Err(failure) => SubmitOutcome::Rejected(failure.clone()),
    };
    submission.received = received;
    writer
        .try_send(Command::Journaled(vec![submission]))
        .map_err(|e| match e {
            TrySendError::Full(_) => SubmitError::Busy,
            TrySendError::Disconnected(_) => SubmitError::Stopped,
        })?;
    Ok(outcome)
}

/// What is checked of a message before it is accepted: its signature, and the content of an
/// inline message, which the reference validates at submission (a 422 there and here); the
/// inline content's parse is returned, for the writer. A non-inline message's content is
/// checked when it is processed, once it is at hand.
pub fn check_submission(envelope: &Envelope) -> Result<Option<Content>, Failure> {
    verify_signature(envelope)?;
    check_content(envelope)
}

/// The content check of [`check_submission`], alone.
fn check_content(envelope: &Envelope) -> Result<Option<Content>, Failure> {
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
