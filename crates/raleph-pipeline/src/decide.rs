//! The one decision of what becomes of a message, for a new submission and for a copy retried
//! from the pending queue alike: status checks (a copy? forgotten?), the signature if not
//! checked yet, then the rules of its type. The writer turns the [`Decision`] into effects
//! on its queue (enqueue or reschedule, reject, answer), which differ by path.

use raleph_db::{Failure, MessageRecord, MessageStatus, WriteStore};
use raleph_message::Envelope;

use crate::check::verify_signature;
use crate::context::Context;
use crate::forget::forgotten_rightly;
use crate::handlers::{Applied, process_message};
use crate::prepare::Prepared;

/// What is known of a message's signature when it is decided.
pub(crate) enum Signature<'a> {
    /// Checked, and it holds.
    Verified,
    /// Checked, and it does not hold.
    Invalid(&'a Failure),
    /// Not checked yet (a queued copy recorded without the check): checked here.
    Unchecked,
}

/// A message to decide.
pub(crate) struct Candidate<'a> {
    pub envelope: &'a Envelope,
    pub signature: Signature<'a>,
    /// When the node received it: the time of its status.
    pub received: f64,
    /// Its content, parsed by a checker (see `prepare`).
    pub prepared: Option<&'a Prepared>,
    /// A copy from the pending queue, whose own status is `Pending`; a new submission
    /// otherwise.
    pub queued: bool,
}

/// What becomes of a message: exactly one of these.
pub(crate) enum Decision {
    /// A new submission whose signature does not hold; `prior` is the status the node holds
    /// for its item hash, which a bad copy never overrides (unless it is a rejection).
    BadSignature {
        failure: Failure,
        prior: Option<MessageStatus>,
    },
    /// The node holds the message processed (or being removed): this is a copy.
    Copy(MessageStatus),
    /// The message was forgotten or removed: the copy is dropped.
    Gone(MessageStatus),
    /// Another copy of a new submission waits in the pending queue: it joins the queue.
    JoinQueue,
    /// Processed now: its effects are written and its status set.
    Processed(MessageRecord),
    /// It failed in a way that may pass later (its content or a dependency is not here yet).
    Retry(Failure),
    /// It failed for good.
    Reject(Failure),
}

/// Decides `candidate`. Writes only what a `Processed` message or an undone forgetting
/// (a peer's word disproved, see `forget`) writes; a store error fails the transaction.
pub(crate) fn decide(
    store: &mut dyn WriteStore,
    ctx: &Context<'_>,
    candidate: &Candidate<'_>,
) -> raleph_db::Result<Decision> {
    let envelope = candidate.envelope;
    let item_hash = &envelope.item_hash;
    let status = store.status(item_hash)?;
    if let Signature::Invalid(failure) = candidate.signature {
        return Ok(Decision::BadSignature {
            failure: failure.clone(),
            prior: status,
        });
    }
    match status {
        Some(status) if status.is_live() => return Ok(Decision::Copy(status)),
        Some(MessageStatus::Forgotten) if !forgotten_rightly(store, ctx, envelope)? => {
            store.unforget(item_hash)?;
        }
        Some(status @ (MessageStatus::Forgotten | MessageStatus::Removed)) => {
            return Ok(Decision::Gone(status));
        }
        Some(MessageStatus::Pending) if !candidate.queued => return Ok(Decision::JoinQueue),
        _ => {}
    }
    if let Signature::Unchecked = candidate.signature
        && let Err(failure) = verify_signature(envelope)
    {
        return Ok(Decision::Reject(failure));
    }
    Ok(
        match process_message(store, ctx, envelope, candidate.received, candidate.prepared)? {
            Applied::Processed(message) => {
                store.set_status(item_hash, MessageStatus::Processed, candidate.received)?;
                Decision::Processed(message)
            }
            Applied::Failed(failure) if failure.code.is_retryable() => Decision::Retry(failure),
            Applied::Failed(failure) => Decision::Reject(failure),
        },
    )
}
