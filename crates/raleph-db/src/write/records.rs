//! Small reads and writes of one row each: a message's facts and content, what a forgotten
//! message was forgotten by, rejections, and the intake journal's position.

use serde_json::Value as Json;

use super::{Session, Value, first, strings};
use crate::query::rows::{ENVELOPE_HEAD_COLUMNS, envelope_head};
use crate::shared::parse_position;
use crate::{Failure, ItemHash, MessageFacts, Result, StoreError};

pub(crate) fn message_facts(s: &mut dyn Session, item_hash: &str) -> Result<Option<MessageFacts>> {
    first(
        s,
        &format!(
            "SELECT {ENVELOPE_HEAD_COLUMNS}, owner, content_type, content_key, content_ref
             FROM messages WHERE item_hash = $1"
        ),
        &[Value::Text(item_hash)],
        |r| {
            Ok(MessageFacts {
                envelope: envelope_head(r)?,
                owner: r.text(8)?,
                content_type: r.opt_text(9)?,
                content_key: r.opt_text(10)?,
                content_ref: r.opt_text(11)?,
            })
        },
    )
}

/// The parsed content of a message the store holds.
pub(crate) fn message_content(s: &mut dyn Session, item_hash: &str) -> Result<Option<Json>> {
    let content = first(
        s,
        "SELECT content FROM messages WHERE item_hash = $1",
        &[Value::Text(item_hash)],
        |r| r.text(0),
    )?;
    Ok(content.and_then(|c| serde_json::from_str(&c).ok()))
}

/// The FORGET messages a forgotten message was forgotten by (empty when it is not).
pub(crate) fn forgotten_by(s: &mut dyn Session, item_hash: &str) -> Result<Vec<ItemHash>> {
    let list = first(
        s,
        "SELECT forgotten_by FROM forgotten_messages WHERE item_hash = $1",
        &[Value::Text(item_hash)],
        |r| r.text(0),
    )?;
    match list {
        None => Ok(Vec::new()),
        Some(list) => serde_json::from_str(&list)
            .map_err(|e| StoreError::Corrupt(format!("forgotten_by {list:?}: {e}"))),
    }
}

/// Whether some AGGREGATE message of `owner` is recorded as forgotten by `forget_hash`.
pub(crate) fn forgot_aggregates_of(
    s: &mut dyn Session,
    owner: &str,
    forget_hash: &str,
) -> Result<bool> {
    // A scan of the owner's forgotten messages: only a key FORGET that finds no element
    // asks, and `forgotten_by` is a short JSON list of hashes.
    let sql = format!(
        "SELECT 1 FROM forgotten_messages
         WHERE owner = $1 AND type = 'AGGREGATE' AND {} LIMIT 1",
        s.contains("forgotten_by", "$2")
    );
    let quoted = format!("\"{forget_hash}\"");
    Ok(first(s, &sql, &[Value::Text(owner), (&quoted).into()], |_| Ok(()))?.is_some())
}

/// Adds a FORGET to those a forgotten message was forgotten by.
pub(crate) fn append_forgotten_by(
    s: &mut dyn Session,
    item_hash: &str,
    forgotten_by: &str,
) -> Result<()> {
    let Some(mut list) = first(
        s,
        "SELECT forgotten_by FROM forgotten_messages WHERE item_hash = $1",
        &[Value::Text(item_hash)],
        |r| Ok(serde_json::from_str::<Vec<String>>(&r.text(0)?).unwrap_or_default()),
    )?
    else {
        return Ok(());
    };
    if !list.iter().any(|h| h == forgotten_by) {
        list.push(forgotten_by.to_owned());
    }
    let list = Json::from(list).to_string();
    s.execute(
        "UPDATE forgotten_messages SET forgotten_by = $1 WHERE item_hash = $2",
        &[(&list).into(), Value::Text(item_hash)],
    )
    .map(drop)
}

pub(crate) fn record_rejection(
    s: &mut dyn Session,
    item_hash: &str,
    message: &Json,
    error: &Failure,
) -> Result<()> {
    let (message, details) = (message.to_string(), error.details.to_string());
    s.execute(
        "INSERT INTO rejected_messages (item_hash, message, error_code, details) VALUES ($1, $2, $3, $4)
         ON CONFLICT (item_hash) DO UPDATE SET message = excluded.message,
             error_code = excluded.error_code, details = excluded.details",
        &[
            Value::Text(item_hash),
            (&message).into(),
            Value::Int32(error.code.code()),
            (&details).into(),
        ],
    )
    .map(drop)
}

/// Forgets rejected messages (their record and status) first received before `before`,
/// then the oldest past the newest `keep`, at most `batch` in all; returns how many.
pub(crate) fn expire_rejections(
    s: &mut dyn Session,
    before: f64,
    keep: u64,
    batch: usize,
) -> Result<usize> {
    let batch = i64::try_from(batch).unwrap_or(i64::MAX);
    let mut expired = strings(
        s,
        "SELECT item_hash FROM message_status
         WHERE status = 'rejected' AND reception_time < $1 LIMIT $2",
        &[before.into(), batch.into()],
    )?;
    let rejected = first(
        s,
        "SELECT count(*) FROM message_status WHERE status = 'rejected'",
        &[],
        |r| r.count(0),
    )?
    .unwrap_or(0);
    let excess = rejected
        .saturating_sub(expired.len() as u64)
        .saturating_sub(keep);
    let room = (batch as u64).saturating_sub(expired.len() as u64);
    if excess > 0 && room > 0 {
        let take = i64::try_from(excess.min(room)).unwrap_or(i64::MAX);
        let oldest = strings(
            s,
            "SELECT item_hash FROM message_status
             WHERE status = 'rejected' AND reception_time >= $1
             ORDER BY reception_time, item_hash LIMIT $2",
            &[before.into(), take.into()],
        )?;
        expired.extend(oldest);
    }
    for hash in &expired {
        s.execute(
            "DELETE FROM rejected_messages WHERE item_hash = $1",
            &[hash.into()],
        )?;
        s.execute(
            "DELETE FROM message_status WHERE item_hash = $1 AND status = 'rejected'",
            &[hash.into()],
        )?;
    }
    Ok(expired.len())
}

/// The number of the last intake-journal record whose effects the store holds (0: none).
pub(crate) fn journal_position(s: &mut dyn Session) -> Result<u64> {
    let value = first(
        s,
        "SELECT value FROM node_meta WHERE key = 'journal_position'",
        &[],
        |r| r.text(0),
    )?;
    parse_position(value)
}

pub(crate) fn set_journal_position(s: &mut dyn Session, position: u64) -> Result<()> {
    let position = position.to_string();
    s.execute(
        "INSERT INTO node_meta (key, value) VALUES ('journal_position', $1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[(&position).into()],
    )
    .map(drop)
}
