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

/// The statement's `FROM ... WHERE` parts, one per table read, with their parameters.
fn parts(q: &HashQuery, layout: StatusRows) -> (Vec<String>, Vec<Value<'static>>) {
    let mut params = Vec::new();
    let mut range = String::new();
    if let Some(start) = q.start {
        params.push(Value::Real(start));
        range.push_str(&format!(" AND reception_time >= ${}", params.len()));
    }
    if let Some(end) = q.end {
        params.push(Value::Real(end));
        range.push_str(&format!(" AND reception_time < ${}", params.len()));
    }
    let status_table = |params: &mut Vec<Value<'static>>| match q.status {
        Some(status) => {
            params.push(Value::Text(status.as_str()));
            format!(
                "SELECT item_hash, status, reception_time FROM message_status WHERE status = ${}{range}",
                params.len()
            )
        }
        None => format!(
            "SELECT item_hash, status, reception_time FROM message_status WHERE TRUE{range}"
        ),
    };
    let processed = format!(
        "SELECT item_hash, status, reception_time FROM messages WHERE status = 'processed'{range}"
    );
    let parts = match (layout, q.status) {
        (StatusRows::Every, _) => vec![status_table(&mut params)],
        (StatusRows::NotProcessed, Some(MessageStatus::Processed)) => vec![processed],
        (StatusRows::NotProcessed, Some(_)) => vec![status_table(&mut params)],
        (StatusRows::NotProcessed, None) => vec![processed, status_table(&mut params)],
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
