//! The reads of one thing, written once: a message, a skeleton, a rejection, a file and its
//! pins, an address's files. Each backend runs them on a pooled connection.

use serde_json::Value as Json;

use super::forgotten::FORGOTTEN_COLUMNS;
use super::messages::MESSAGE_COLUMNS;
use super::rows::{self, parsed};
use super::{limit_offset, order_by};
use crate::conn::{Connection, Row, Value, first, rows as all_rows, strings};
use crate::{
    AddressFile, FileRecord, ForgottenRecord, ItemHash, MessageRecord, PendingCopy, PinnedFile,
    Rejection, Result, SortOrder,
};

pub(crate) fn message(c: &mut dyn Connection, hash: &ItemHash) -> Result<Option<MessageRecord>> {
    first(
        c,
        &format!("SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.item_hash = $1"),
        &[Value::from(hash)],
        |r| rows::message(r, 0),
    )
}

pub(crate) fn forgotten(
    c: &mut dyn Connection,
    hash: &ItemHash,
) -> Result<Option<ForgottenRecord>> {
    first(
        c,
        &format!("SELECT {FORGOTTEN_COLUMNS} FROM forgotten_messages m WHERE m.item_hash = $1"),
        &[Value::from(hash)],
        |r| rows::forgotten(r),
    )
}

/// The queued copies of a message, oldest first (a copy whose JSON no longer parses is
/// left out).
pub(crate) fn pending_copies(c: &mut dyn Connection, hash: &ItemHash) -> Result<Vec<PendingCopy>> {
    let copies = all_rows(
        c,
        "SELECT message, reception_time FROM pending_messages WHERE item_hash = $1 ORDER BY id",
        &[Value::from(hash)],
        |r| Ok((r.text(0)?, r.real(1)?)),
    )?;
    Ok(copies
        .into_iter()
        .filter_map(|(message, reception_time)| {
            Some(PendingCopy {
                message: serde_json::from_str(&message).ok()?,
                reception_time,
            })
        })
        .collect())
}

pub(crate) fn rejection(c: &mut dyn Connection, hash: &ItemHash) -> Result<Option<Rejection>> {
    first(
        c,
        "SELECT message, error_code, details FROM rejected_messages WHERE item_hash = $1",
        &[Value::from(hash)],
        |r| {
            Ok(Rejection {
                message: serde_json::from_str(&r.text(0)?).unwrap_or(Json::Null),
                error_code: i32::try_from(r.integer(1)?).unwrap_or(i32::MIN),
                details: serde_json::from_str(&r.text(2)?).unwrap_or(Json::Null),
            })
        },
    )
}

pub(crate) fn channels(c: &mut dyn Connection) -> Result<Vec<String>> {
    strings(
        c,
        "SELECT DISTINCT channel FROM messages WHERE channel IS NOT NULL ORDER BY channel",
        &[],
    )
}

/// The bytes of every file the node holds.
pub(crate) fn stored_file_bytes(c: &mut dyn Connection) -> Result<u64> {
    // A sum, not a count: PostgreSQL's is NUMERIC, cast back to the column's type.
    let total = first(
        c,
        "SELECT CAST(coalesce(sum(size), 0) AS BIGINT) FROM files",
        &[],
        |r| r.count(0),
    )?;
    Ok(total.unwrap_or(0))
}

/// A file the node holds, by any of its identifiers.
pub(crate) fn file(c: &mut dyn Connection, id: &str) -> Result<Option<FileRecord>> {
    first(
        c,
        "SELECT hash, size, cid_v0, cid_v1, created FROM files
         WHERE hash = $1 OR cid_v0 = $1 OR cid_v1 = $1 LIMIT 1",
        &[Value::Text(id)],
        |r| {
            Ok(FileRecord {
                sha256: r.text(0)?,
                size: r.count(1)?,
                cid_v0: r.text(2)?,
                cid_v1: r.opt_text(3)?,
                created: r.real(4)?,
            })
        },
    )
}

/// Every kind of pin on a file: STORE messages, message contents, and a grace pin still
/// running at `now`.
pub(crate) fn file_pin_count(c: &mut dyn Connection, file: &FileRecord, now: f64) -> Result<u64> {
    let count = first(
        c,
        "SELECT (SELECT count(*) FROM file_pins WHERE file_hash IN ($1, $2, $3))
              + (SELECT count(*) FROM messages WHERE item_hash IN ($1, $2, $3) AND item_type != 'inline')
              + (SELECT count(*) FROM grace_pins WHERE file_hash = $1 AND until > $4)",
        &[
            Value::Text(&file.sha256),
            Value::Text(&file.cid_v0),
            Value::Text(file.cid_v1.as_deref().unwrap_or_default()),
            Value::Real(now),
        ],
        |r| r.count(0),
    )?;
    Ok(count.unwrap_or(0))
}

/// A page of an address's files (what its STORE messages pin), their number and their total
/// size. A backend runs it in one snapshot when its connection can see writes between
/// statements.
pub(crate) fn address_files(
    c: &mut dyn Connection,
    address: &str,
    limit: u64,
    offset: u64,
    order: SortOrder,
) -> Result<(Vec<AddressFile>, u64, u64)> {
    let sql = format!(
        "SELECT p.file_hash, coalesce(f.size, 0), p.created, p.message_hash FROM file_pins p
         LEFT JOIN files f ON p.file_hash IN (f.hash, f.cid_v0, f.cid_v1)
         WHERE p.owner = $1 {} {}",
        order_by("p.created", "p.message_hash", order),
        limit_offset(limit, offset)
    );
    let owner = [Value::Text(address)];
    let files = all_rows(c, &sql, &owner, |r| {
        Ok(AddressFile {
            file_hash: r.text(0)?,
            size: r.count(1)?,
            created: r.real(2)?,
            item_hash: parsed(r, 3)?,
        })
    })?;
    let total = count(c, "SELECT count(*) FROM file_pins WHERE owner = $1", &owner)?;
    let total_size = count(
        c,
        "SELECT CAST(coalesce(sum(f.size), 0) AS BIGINT) FROM file_pins p
         JOIN files f ON p.file_hash IN (f.hash, f.cid_v0, f.cid_v1) WHERE p.owner = $1",
        &owner,
    )?;
    Ok((files, total, total_size))
}

/// The file a STORE message pins.
pub(crate) fn file_of_message(
    c: &mut dyn Connection,
    hash: &ItemHash,
) -> Result<Option<PinnedFile>> {
    pinned_file(c, "p.message_hash = $1", hash.as_str())
}

/// The file a tag points to now.
pub(crate) fn file_of_tag(c: &mut dyn Connection, tag: &str) -> Result<Option<PinnedFile>> {
    pinned_file(
        c,
        "p.message_hash = (SELECT message_hash FROM file_tags WHERE tag = $1)",
        tag,
    )
}

fn pinned_file(c: &mut dyn Connection, condition: &str, key: &str) -> Result<Option<PinnedFile>> {
    first(
        c,
        &format!(
            "SELECT p.message_hash, p.file_hash, p.owner, p.tag, f.size FROM file_pins p
             LEFT JOIN files f ON p.file_hash IN (f.hash, f.cid_v0, f.cid_v1)
             WHERE {condition} LIMIT 1"
        ),
        &[Value::Text(key)],
        |r: Row<'_>| {
            Ok(PinnedFile {
                message_hash: parsed(r, 0)?,
                file_hash: r.text(1)?,
                owner: r.text(2)?,
                tag: r.text(3)?,
                size: r.opt_integer(4)?.map(|n| n.max(0) as u64),
            })
        },
    )
}

fn count(c: &mut dyn Connection, sql: &str, params: &[Value<'_>]) -> Result<u64> {
    Ok(first(c, sql, params, |r| r.count(0))?.unwrap_or(0))
}
