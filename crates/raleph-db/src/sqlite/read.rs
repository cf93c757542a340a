//! The read side: queries over messages, posts and aggregates.

use std::sync::Arc;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row, params_from_iter};
use serde_json::Value;

use super::{ReadPool, backend};
use crate::query::forgotten::{self, FORGOTTEN_COLUMNS};
use crate::query::messages::{self, MESSAGE_COLUMNS};
use crate::query::posts::{self, PostTags};
use crate::query::rows::{self, Columns};
use crate::query::{addresses, aggregates};
use crate::query::{limit_offset, order_by};
use crate::shared::sort_posts;
use crate::sql::{self, Param, Sqlite};
use crate::*;

impl Columns for Row<'_> {
    type Error = rusqlite::Error;
    fn text(&self, i: usize) -> rusqlite::Result<String> {
        self.get(i)
    }
    fn opt_text(&self, i: usize) -> rusqlite::Result<Option<String>> {
        self.get(i)
    }
    fn real(&self, i: usize) -> rusqlite::Result<f64> {
        self.get(i)
    }
    fn opt_real(&self, i: usize) -> rusqlite::Result<Option<f64>> {
        self.get(i)
    }
    fn integer(&self, i: usize) -> rusqlite::Result<i64> {
        self.get(i)
    }
    fn boolean(&self, i: usize) -> rusqlite::Result<bool> {
        self.get(i)
    }
    fn corrupt(&self, i: usize, reason: String) -> rusqlite::Error {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, reason.into())
    }
}

/// A neutral statement builder's parameters as SQLite values (the SQLite dialect binds a
/// list as one parameter per value, so a `Texts` never reaches here; it would bind as the
/// JSON array of its values).
fn sqlite_values(params: Vec<Param>) -> Vec<SqlValue> {
    params
        .into_iter()
        .map(|p| match p {
            Param::Text(s) => SqlValue::Text(s),
            Param::Texts(v) => SqlValue::Text(Value::from(v).to_string()),
            Param::Real(f) => SqlValue::Real(f),
            Param::Int(i) => SqlValue::Integer(i),
        })
        .collect()
}

/// Shared handle to the read pool.
#[derive(Clone)]
pub struct SqliteReader {
    pub(super) pool: Arc<ReadPool>,
}

impl SqliteReader {
    pub(crate) fn new(pool: Arc<ReadPool>) -> Self {
        SqliteReader { pool }
    }
}

/// The number of messages in a time range, whatever their status, counted on
/// `messages_by_type` one type at a time (the types present are read off that index too, so
/// any type counts). Its `(type, time)` entries are about a quarter the size of the time
/// index's, which carry the item hash: a range of 10 000 messages is 81 pages instead of
/// 238, and a range nobody read for a while comes from disk.
fn count_any_type_sql(
    f: &mut sql::Filter<sql::Sqlite>,
    start: Option<f64>,
    end: Option<f64>,
) -> String {
    f.push("m.type = present.type");
    f.date_range("m.time", start, end);
    format!(
        "WITH RECURSIVE present(type) AS (
             SELECT min(type) FROM messages
             UNION ALL
             SELECT (SELECT min(type) FROM messages WHERE type > present.type)
             FROM present WHERE present.type IS NOT NULL)
         SELECT coalesce(sum(
             (SELECT count(*) FROM messages m INDEXED BY messages_by_type {})), 0)
         FROM present WHERE present.type IS NOT NULL",
        f.take_sql()
    )
}

fn collect<T>(
    conn: &Connection,
    sql: &str,
    params: &[SqlValue],
    f: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(backend)?;
    let rows = stmt
        .query_map(params_from_iter(params.iter()), f)
        .map_err(backend)?;
    rows.collect::<rusqlite::Result<_>>().map_err(backend)
}

/// Message rows, read one at a time and no further than `max_bytes` of them (0: no bound).
fn collect_messages(
    conn: &Connection,
    sql: &str,
    params: &[SqlValue],
    max_bytes: usize,
) -> Result<Vec<MessageRecord>> {
    collect_bounded(
        conn,
        sql,
        params,
        max_bytes,
        |r| rows::message(r, 0),
        crate::shared::message_bytes,
    )
}

/// Rows read one at a time, no further than `max_bytes` of them as `bytes` counts them (0:
/// no bound): past it, [`StoreError::TooLarge`].
fn collect_bounded<T>(
    conn: &Connection,
    sql: &str,
    params: &[SqlValue],
    max_bytes: usize,
    mut f: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    bytes: impl Fn(&T) -> usize,
) -> Result<Vec<T>> {
    let mut budget = crate::shared::ByteBudget::new(max_bytes);
    let rows = collect(conn, sql, params, |r| {
        let row = f(r)?;
        match budget.fits(bytes(&row)) {
            true => Ok(row),
            // Any error ends the read; the budget says which it was.
            false => Err(rusqlite::Error::QueryReturnedNoRows),
        }
    });
    if budget.exceeded {
        return Err(budget.error());
    }
    rows
}

fn count(conn: &Connection, sql: &str, params: &[SqlValue]) -> Result<u64> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.query_row(params_from_iter(params.iter()), |r| r.get::<_, i64>(0)))
        .map(|n| n.max(0) as u64)
        .map_err(backend)
}

impl SqliteReader {
    fn pinned_file(&self, condition: &str, key: &str) -> Result<Option<PinnedFile>> {
        let sql = format!(
            "SELECT p.message_hash, p.file_hash, p.owner, p.tag, f.size FROM file_pins p
             LEFT JOIN files f ON p.file_hash IN (f.hash, f.cid_v0, f.cid_v1) {condition} LIMIT 1"
        );
        self.pool.with(|conn| {
            conn.prepare_cached(&sql)
                .and_then(|mut s| {
                    s.query_row([key], |r| {
                        Ok(PinnedFile {
                            message_hash: rows::parsed(r, 0)?,
                            file_hash: r.get(1)?,
                            owner: r.get(2)?,
                            tag: r.get(3)?,
                            size: r.get::<_, Option<i64>>(4)?.map(|s| s.max(0) as u64),
                        })
                    })
                    .optional()
                })
                .map_err(backend)
        })
    }
}

impl ReadStore for SqliteReader {
    fn message(&self, item_hash: &ItemHash) -> Result<Option<MessageRecord>> {
        let item_hash = item_hash.as_str();
        self.pool.with(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.item_hash = ?1"
            ))
            .and_then(|mut s| s.query_row([item_hash], |r| rows::message(r, 0)).optional())
            .map_err(backend)
        })
    }

    fn status(&self, hash: &ItemHash) -> Result<Option<StatusRecord>> {
        let item_hash = hash.as_str();
        self.pool.with(|conn| {
            let row = conn
                // `message_status` holds every status but `processed` (migration 8).
                .prepare_cached(
                    "SELECT status, reception_time FROM message_status WHERE item_hash = ?1
                     UNION ALL SELECT 'processed', reception_time FROM messages WHERE item_hash = ?1
                     LIMIT 1",
                )
                .and_then(|mut s| {
                    s.query_row([item_hash], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?))
                    })
                    .optional()
                })
                .map_err(backend)?;
            row.map(|(status, reception_time)| {
                Ok(StatusRecord {
                    item_hash: hash.clone(),
                    status: status.parse().map_err(StoreError::Corrupt)?,
                    reception_time,
                })
            })
            .transpose()
        })
    }

    fn pending_copies(&self, item_hash: &ItemHash) -> Result<Vec<PendingCopy>> {
        let item_hash = item_hash.as_str();
        self.pool.with(|conn| {
            let rows = collect(
                conn,
                "SELECT message, reception_time FROM pending_messages WHERE item_hash = ? ORDER BY id",
                &[SqlValue::Text(item_hash.to_owned())],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?)),
            )?;
            Ok(rows
                .into_iter()
                .filter_map(|(m, t)| Some(PendingCopy { message: serde_json::from_str(&m).ok()?, reception_time: t }))
                .collect())
        })
    }

    fn rejection(&self, item_hash: &ItemHash) -> Result<Option<Rejection>> {
        let item_hash = item_hash.as_str();
        self.pool.with(|conn| {
            let row = conn
                .prepare_cached("SELECT message, error_code, details FROM rejected_messages WHERE item_hash = ?1")
                .and_then(|mut s| {
                    s.query_row([item_hash], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, i32>(1)?, r.get::<_, String>(2)?))
                    })
                    .optional()
                })
                .map_err(backend)?;
            Ok(row.map(|(message, error_code, details)| Rejection {
                message: serde_json::from_str(&message).unwrap_or(Value::Null),
                error_code,
                details: serde_json::from_str(&details).unwrap_or(Value::Null),
            }))
        })
    }

    fn forgotten(&self, item_hash: &ItemHash) -> Result<Option<ForgottenRecord>> {
        let item_hash = item_hash.as_str();
        self.pool.with(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {FORGOTTEN_COLUMNS} FROM forgotten_messages m WHERE m.item_hash = ?1"
            ))
            .and_then(|mut s| s.query_row([item_hash], |r| rows::forgotten(r)).optional())
            .map_err(backend)
        })
    }

    fn messages(&self, q: &MessageQuery) -> Result<Vec<MessageRecord>> {
        self.pool.with(|conn| {
            if !messages::deep_page::<Sqlite>(q) {
                let (sql, params) = messages::list_sql::<Sqlite>(q, false);
                return collect_messages(conn, &sql, &sqlite_values(params), q.max_bytes);
            }
            // One read transaction, so the page sees the statuses it was planned for.
            let read = conn.unchecked_transaction().map_err(backend)?;
            let exclude_rare = match messages::rare_rows_sql::<Sqlite>(q) {
                Some((sql, params)) => count(conn, &sql, &sqlite_values(params))? > 0,
                None => false,
            };
            let (sql, params) = messages::list_sql::<Sqlite>(q, exclude_rare);
            let rows = collect_messages(conn, &sql, &sqlite_values(params), q.max_bytes)?;
            read.commit().map_err(backend)?;
            Ok(rows)
        })
    }

    fn count_messages(&self, q: &MessageQuery) -> Result<u64> {
        let (sql, params) = messages::count_sql::<Sqlite>(q, count_any_type_sql);
        self.pool
            .with(|conn| count(conn, &sql, &sqlite_values(params)))
    }

    fn forgotten_messages(&self, q: &MessageQuery) -> Result<Vec<ForgottenRecord>> {
        let (sql, params) = forgotten::list_sql::<Sqlite>(q);
        self.pool
            .with(|conn| collect(conn, &sql, &sqlite_values(params), |r| rows::forgotten(r)))
    }

    fn count_forgotten_messages(&self, q: &MessageQuery) -> Result<u64> {
        let (sql, params) = forgotten::count_sql::<Sqlite>(q);
        self.pool
            .with(|conn| count(conn, &sql, &sqlite_values(params)))
    }

    fn posts(&self, q: &PostQuery) -> Result<Vec<PostRecord>> {
        self.pool.with(|conn| {
            let tags = match posts::tag_rows_sql::<Sqlite>(q) {
                Some((sql, params)) => posts::post_tags(count(conn, &sql, &sqlite_values(params))?),
                None => PostTags::Probe,
            };
            let (sql, params) = posts::page_sql::<Sqlite>(q, tags);
            let mut rows = collect_bounded(
                conn,
                &sql,
                &sqlite_values(params),
                q.max_bytes,
                |r| rows::post(r),
                crate::shared::post_bytes,
            )?;
            sort_posts(&mut rows, q.sort_order);
            Ok(rows)
        })
    }

    fn count_posts(&self, q: &PostQuery) -> Result<u64> {
        let (sql, params) = posts::count_sql::<Sqlite>(q);
        self.pool
            .with(|conn| count(conn, &sql, &sqlite_values(params)))
    }

    fn aggregates_of_bounded(
        &self,
        owner: &str,
        keys: &[String],
        max_bytes: usize,
    ) -> Result<Vec<AggregateRecord>> {
        let (sql, params) = aggregates::of_owner_sql::<Sqlite>(owner, keys);
        self.pool.with(|conn| {
            collect_bounded(
                conn,
                &sql,
                &sqlite_values(params),
                max_bytes,
                |r| rows::aggregate(r),
                crate::shared::aggregate_bytes,
            )
        })
    }

    fn aggregates(&self, q: &AggregateQuery) -> Result<Vec<AggregateRecord>> {
        let (sql, params) = aggregates::list_sql::<Sqlite>(q);
        self.pool.with(|conn| {
            collect_bounded(
                conn,
                &sql,
                &sqlite_values(params),
                q.max_bytes,
                |r| rows::aggregate(r),
                crate::shared::aggregate_bytes,
            )
        })
    }

    fn count_aggregates(&self, q: &AggregateQuery) -> Result<u64> {
        let (sql, params) = aggregates::count_sql::<Sqlite>(q);
        self.pool
            .with(|conn| count(conn, &sql, &sqlite_values(params)))
    }

    fn channels(&self) -> Result<Vec<String>> {
        self.pool.with(|conn| {
            collect(
                conn,
                "SELECT DISTINCT channel FROM messages WHERE channel IS NOT NULL ORDER BY channel",
                &[],
                |r| r.get(0),
            )
        })
    }

    fn file(&self, id: &str) -> Result<Option<FileRecord>> {
        self.pool.with(|conn| {
            conn.prepare_cached(
                "SELECT hash, size, cid_v0, cid_v1, created FROM files
                 WHERE hash = ?1 OR cid_v0 = ?1 OR cid_v1 = ?1 LIMIT 1",
            )
            .and_then(|mut s| {
                s.query_row([id], |r| {
                    Ok(FileRecord {
                        sha256: r.get(0)?,
                        size: r.get::<_, i64>(1)?.max(0) as u64,
                        cid_v0: r.get(2)?,
                        cid_v1: r.get(3)?,
                        created: r.get(4)?,
                    })
                })
                .optional()
            })
            .map_err(backend)
        })
    }

    fn file_pin_count(&self, file: &FileRecord, now: f64) -> Result<u64> {
        let ids = [
            SqlValue::Text(file.sha256.clone()),
            SqlValue::Text(file.cid_v0.clone()),
            SqlValue::Text(file.cid_v1.clone().unwrap_or_default()),
        ];
        let mut params: Vec<SqlValue> = ids.iter().chain(ids.iter()).cloned().collect();
        params.extend([SqlValue::Text(file.sha256.clone()), SqlValue::Real(now)]);
        // Every kind of pin: STORE messages, message contents, and an unexpired grace pin.
        self.pool.with(|conn| {
            count(
                conn,
                "SELECT (SELECT count(*) FROM file_pins WHERE file_hash IN (?, ?, ?))
                      + (SELECT count(*) FROM messages WHERE item_hash IN (?, ?, ?) AND item_type != 'inline')
                      + (SELECT count(*) FROM grace_pins WHERE file_hash = ? AND until > ?)",
                &params,
            )
        })
    }

    fn address_files(
        &self,
        address: &str,
        limit: u64,
        offset: u64,
        order: SortOrder,
    ) -> Result<(Vec<AddressFile>, u64, u64)> {
        let address = SqlValue::Text(address.to_owned());
        let sql = format!(
            "SELECT p.file_hash, coalesce(f.size, 0), p.created, p.message_hash FROM file_pins p
             LEFT JOIN files f ON p.file_hash IN (f.hash, f.cid_v0, f.cid_v1)
             WHERE p.owner = ? {} {}",
            order_by("p.created", "p.message_hash", order),
            limit_offset(limit, offset)
        );
        self.pool.with(|conn| {
            let files = collect(conn, &sql, std::slice::from_ref(&address), |r| {
                Ok(AddressFile {
                    file_hash: r.get(0)?,
                    size: r.get::<_, i64>(1)?.max(0) as u64,
                    created: r.get(2)?,
                    item_hash: rows::parsed(r, 3)?,
                })
            })?;
            let total = count(
                conn,
                "SELECT count(*) FROM file_pins WHERE owner = ?",
                std::slice::from_ref(&address),
            )?;
            let total_size = count(
                conn,
                "SELECT coalesce(sum(f.size), 0) FROM file_pins p
                 JOIN files f ON p.file_hash IN (f.hash, f.cid_v0, f.cid_v1) WHERE p.owner = ?",
                &[address],
            )?;
            Ok((files, total, total_size))
        })
    }

    fn file_of_message(&self, message_hash: &ItemHash) -> Result<Option<PinnedFile>> {
        let message_hash = message_hash.as_str();
        self.pinned_file("WHERE p.message_hash = ?1", message_hash)
    }

    fn file_of_tag(&self, tag: &str) -> Result<Option<PinnedFile>> {
        self.pinned_file(
            "WHERE p.message_hash = (SELECT message_hash FROM file_tags WHERE tag = ?1)",
            tag,
        )
    }

    fn address_stats(&self, addresses: &[String]) -> Result<Vec<AddressStats>> {
        let (sql, params) = addresses::stats_sql::<Sqlite>(addresses);
        let rows = self.pool.with(|conn| {
            collect(conn, &sql, &sqlite_values(params), |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?.max(0) as u64,
                ))
            })
        })?;
        Ok(addresses::fold_stats(rows))
    }

    fn sync_log(&self, after: u64, limit: usize, max_bytes: usize) -> Result<SyncPage> {
        self.pool.with(|conn| {
            // One read transaction, so the epoch and the page come from the same snapshot.
            conn.execute_batch("BEGIN").map_err(backend)?;
            let page = (|| {
                let epoch = conn
                    .query_row("SELECT value FROM node_meta WHERE key = 'epoch'", [], |r| {
                        r.get(0)
                    })
                    .map_err(backend)?;
                let after = i64::try_from(after).unwrap_or(i64::MAX);
                let limit = i64::try_from(limit).unwrap_or(i64::MAX);
                // Sizes first, from the rows' headers, so that no more content than the
                // page can carry is read.
                let sizes = collect(
                    conn,
                    "SELECT seq, coalesce(length(CAST(item_content AS BLOB)), 0)
                            + length(CAST(content AS BLOB))
                     FROM messages WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                    &[SqlValue::Integer(after), SqlValue::Integer(limit)],
                    |r| {
                        Ok((
                            r.get::<_, i64>(0)?.max(0) as u64,
                            r.get::<_, i64>(1)?.max(0) as u64,
                        ))
                    },
                )?;
                let end = crate::shared::sync_page_end(&sizes, max_bytes);
                let cut_short = end.is_some();
                let end = end.map_or(i64::MAX, |seq| i64::try_from(seq).unwrap_or(i64::MAX));
                let bounds = [
                    SqlValue::Integer(after),
                    SqlValue::Integer(limit),
                    SqlValue::Integer(end),
                ];
                let sql = format!(
                    "SELECT m.seq, {MESSAGE_COLUMNS} FROM messages m
                     WHERE m.seq > ?1 AND m.seq <= ?3 ORDER BY m.seq LIMIT ?2"
                );
                let messages = collect(conn, &sql, &bounds, |r| {
                    Ok((r.get::<_, i64>(0)?.max(0) as u64, rows::message(r, 1)?))
                })?;
                let sql = format!(
                    "SELECT {FORGOTTEN_COLUMNS}, m.seq FROM forgotten_messages m
                     WHERE m.seq > ?1 AND m.seq <= ?3 ORDER BY m.seq LIMIT ?2"
                );
                let forgotten = collect(conn, &sql, &bounds, |r| {
                    Ok((r.get::<_, i64>(14)?.max(0) as u64, rows::forgotten(r)?))
                })?;
                Ok(crate::shared::sync_page(
                    epoch,
                    messages,
                    forgotten,
                    limit as usize,
                    cut_short,
                ))
            })();
            let _ = conn.execute_batch("COMMIT");
            page
        })
    }

    fn counts(&self) -> Result<Counts> {
        self.pool.with(|conn| {
            let pending = count(conn, "SELECT count(*) FROM pending_messages", &[])?;
            // Kept by triggers (migration 4): counting a million rows would take a scan.
            let counters = collect(conn, "SELECT name, n FROM counters", &[], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })?;
            let (messages, mut by_status) = crate::shared::split_counters(counters);
            // Processed messages have no status row (migration 8): they are the messages
            // that are not among the few of `messages_by_rare_status`.
            let other = count(
                conn,
                "SELECT count(*) FROM messages INDEXED BY messages_by_rare_status
                 WHERE status <> 'processed'",
                &[],
            )?;
            add_status_count(
                &mut by_status,
                MessageStatus::Processed,
                messages.saturating_sub(other),
            );
            Ok(Counts {
                messages,
                pending,
                by_status,
            })
        })
    }
}

/// Adds `n` messages of `status` to counts by status (kept sorted by name, no zeros).
fn add_status_count(by_status: &mut Vec<(MessageStatus, u64)>, status: MessageStatus, n: u64) {
    if n == 0 {
        return;
    }
    match by_status.iter_mut().find(|(s, _)| *s == status) {
        Some((_, count)) => *count += n,
        None => by_status.push((status, n)),
    }
    by_status.sort_by_key(|(status, _)| status.as_str());
}
