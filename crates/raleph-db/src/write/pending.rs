//! The pending queue: messages that wait for a retry, due in `next_attempt` order.

use super::{Session, Value, first, rows};
use crate::query::rows::parsed;
use crate::{EnqueueOutcome, Failure, MessageStatus, NewPending, PendingRow, Result, StoreError};

/// Queues a copy of a message unless the node already knows it (any status but pending or
/// rejected: `status` is what the store holds for its item hash).
pub(crate) fn enqueue(
    s: &mut dyn Session,
    p: &NewPending,
    status: Option<MessageStatus>,
) -> Result<EnqueueOutcome> {
    if let Some(status) = status
        && status != MessageStatus::Pending
        && status != MessageStatus::Rejected
    {
        return Ok(EnqueueOutcome::Known(status));
    }
    let message = p.message.to_string();
    s.execute(
        "INSERT INTO pending_messages (item_hash, sender, signature, message, reception_time, origin,
             signature_verified, next_attempt)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (sender, item_hash, signature) DO NOTHING",
        &[
            (&p.item_hash).into(),
            (&p.sender).into(),
            Value::Text(p.signature.as_deref().unwrap_or("")),
            (&message).into(),
            p.reception_time.into(),
            Value::Text(p.origin),
            Value::Bool(p.signature_verified),
            p.first_attempt.into(),
        ],
    )?;
    // A rejected message may be submitted again and retried.
    s.execute(
        "INSERT INTO message_status (item_hash, status, reception_time) VALUES ($1, 'pending', $2)
         ON CONFLICT (item_hash) DO UPDATE SET status = 'pending'
         WHERE message_status.status = 'rejected'",
        &[(&p.item_hash).into(), p.reception_time.into()],
    )?;
    Ok(EnqueueOutcome::Queued)
}

/// Up to `limit` copies due at `now`, oldest due first.
pub(crate) fn due(s: &mut dyn Session, now: f64, limit: usize) -> Result<Vec<PendingRow>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    rows(
        s,
        "SELECT id, item_hash, message, reception_time, retries, signature_verified, origin
         FROM pending_messages WHERE next_attempt <= $1 ORDER BY next_attempt, id LIMIT $2",
        &[now.into(), limit.into()],
        |r| {
            let retries = r.integer(4)?;
            Ok(PendingRow {
                id: r.integer(0)?,
                item_hash: parsed(r, 1)?,
                message: crate::shared::parse_json(&r.text(2)?)?,
                reception_time: r.real(3)?,
                retries: u32::try_from(retries)
                    .map_err(|_| StoreError::Corrupt(format!("retries {retries}")))?,
                signature_verified: r.boolean(5)?,
                origin: r.text(6)?,
            })
        },
    )
}

/// When the next copy is due, if any is queued.
pub(crate) fn next_due(s: &mut dyn Session) -> Result<Option<f64>> {
    Ok(first(
        s,
        "SELECT min(next_attempt) FROM pending_messages",
        &[],
        |r| r.opt_real(0),
    )?
    .flatten())
}

pub(crate) fn delete(s: &mut dyn Session, id: i64) -> Result<()> {
    s.execute("DELETE FROM pending_messages WHERE id = $1", &[id.into()])
        .map(drop)
}

pub(crate) fn reschedule(
    s: &mut dyn Session,
    id: i64,
    retries: u32,
    next_attempt: f64,
    error: &Failure,
) -> Result<()> {
    let details = error.details.to_string();
    s.execute(
        "UPDATE pending_messages SET retries = $1, next_attempt = $2, last_error_code = $3,
             last_error = $4
         WHERE id = $5",
        &[
            i64::from(retries).into(),
            next_attempt.into(),
            Value::Int32(error.code.code()),
            (&details).into(),
            id.into(),
        ],
    )
    .map(drop)
}

/// How many other copies of the message wait in the queue.
pub(crate) fn others(s: &mut dyn Session, item_hash: &str, except_id: i64) -> Result<u64> {
    Ok(first(
        s,
        "SELECT count(*) FROM pending_messages WHERE item_hash = $1 AND id != $2",
        &[Value::Text(item_hash), except_id.into()],
        |r| r.count(0),
    )?
    .unwrap_or(0))
}
