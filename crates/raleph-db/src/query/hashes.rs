//! Item hashes of every status by reception time (the reference's `messages/hashes`), for
//! both backends. Where a status lives differs: PostgreSQL keeps a `message_status` row for
//! every message, SQLite only for the ones not processed (a processed message's status is its
//! `messages` row, migration 8), so the SQLite statement reads both tables. Either way each
//! part is a range of a `(status?, reception_time, item_hash)` index in list order: a page
//! reads about as many entries as it returns (plus the ones it skips).

use super::limit_offset;
use super::rows::parsed;
use crate::conn::{Connection, Value, first, rows};
use crate::{HashQuery, MessageStatus, Result, SortOrder, StatusRecord};

/// How a backend keeps statuses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum StatusRows {
    /// One `message_status` row per item hash (PostgreSQL).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Every,
    /// `message_status` rows for the item hashes not processed; processed ones are
    /// `messages` rows whose `status` is `processed` (SQLite).
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    NotProcessed,
}

/// The statement's parts, one per table read, with their parameters, numbered in the order
/// they appear (SQLite's session checks it).
fn parts(q: &HashQuery, layout: StatusRows) -> (Vec<String>, Vec<Value<'static>>) {
    let mut params = Vec::new();
    // Only a part of `message_status` filters on the status (processed ones have their own).
    let status_filter = match (layout, q.status) {
        (_, None) | (StatusRows::NotProcessed, Some(MessageStatus::Processed)) => None,
        (_, Some(status)) => {
            params.push(Value::Text(status.as_str()));
            Some(format!("status = ${}", params.len()))
        }
    };
    let mut range = String::new();
    if let Some(start) = q.start {
        params.push(Value::Real(start));
        range.push_str(&format!(" AND reception_time >= ${}", params.len()));
    }
    if let Some(end) = q.end {
        params.push(Value::Real(end));
        range.push_str(&format!(" AND reception_time < ${}", params.len()));
    }
    let statuses = format!(
        "SELECT item_hash, status, reception_time FROM message_status WHERE {}{range}",
        status_filter.as_deref().unwrap_or("TRUE")
    );
    let processed = format!(
        "SELECT item_hash, status, reception_time FROM messages WHERE status = 'processed'{range}"
    );
    let parts = match (layout, q.status) {
        (StatusRows::Every, _) => vec![statuses],
        (StatusRows::NotProcessed, Some(MessageStatus::Processed)) => vec![processed],
        (StatusRows::NotProcessed, Some(_)) => vec![statuses],
        (StatusRows::NotProcessed, None) => vec![processed, statuses],
    };
    (parts, params)
}

/// A page of `q`, by reception time then item hash ascending (the reference's order both ways).
pub(crate) fn page(
    c: &mut dyn Connection,
    q: &HashQuery,
    layout: StatusRows,
) -> Result<Vec<StatusRecord>> {
    let (parts, params) = parts(q, layout);
    let dir = match q.order {
        SortOrder::Descending => "DESC",
        SortOrder::Ascending => "ASC",
    };
    // A compound's ORDER BY applies to the whole: SQLite merges the parts, each read in
    // order from its index.
    let sql = format!(
        "{} ORDER BY reception_time {dir}, item_hash ASC {}",
        parts.join(" UNION ALL "),
        limit_offset(q.limit, q.offset)
    );
    rows(c, &sql, &params, |r| {
        Ok(StatusRecord {
            item_hash: parsed(r, 0)?,
            status: parsed(r, 1)?,
            reception_time: r.real(2)?,
        })
    })
}

/// How many item hashes `q` names, its page aside.
pub(crate) fn count(c: &mut dyn Connection, q: &HashQuery, layout: StatusRows) -> Result<u64> {
    let (parts, params) = parts(q, layout);
    let sum = parts
        .iter()
        .map(|part| format!("(SELECT count(*) FROM ({part}) AS p)"))
        .collect::<Vec<_>>()
        .join(" + ");
    Ok(first(c, &format!("SELECT {sum}"), &params, |r| r.count(0))?.unwrap_or(0))
}
