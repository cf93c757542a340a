//! The read side: queries over messages, posts and aggregates.

use std::sync::Arc;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row, params_from_iter};
use serde_json::Value;

use super::conn::Sql;
use super::{ReadPool, backend};
use crate::query::forgotten::{self, FORGOTTEN_COLUMNS};
use crate::query::hashes::StatusRows;
use crate::query::messages::{self, MESSAGE_COLUMNS};
use crate::query::posts::{self, PostTags};
use crate::query::rows::{self, Columns};
use crate::query::single;
use crate::query::{addresses, aggregates, anchors, grants, hashes};
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
    fn opt_integer(&self, i: usize) -> rusqlite::Result<Option<i64>> {
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

impl ReadStore for SqliteReader {
    fn chain_position(&self, chain: Chain) -> Result<Option<String>> {
        self.pool
            .with(|conn| anchors::chain_position(&mut Sql(conn), chain))
    }

    fn chain_positions(&self) -> Result<Vec<(Chain, String)>> {
        self.pool
            .with(|conn| anchors::chain_positions(&mut Sql(conn)))
    }

    fn confirmations(&self, hashes: &[ItemHash]) -> Result<Vec<(ItemHash, Confirmation)>> {
        if hashes.is_empty() {
            return Ok(Vec::new());
        }
        let (sql, params) = anchors::confirmations_sql::<Sqlite>(hashes);
        self.pool.with(|conn| {
            collect(conn, &sql, &sqlite_values(params), |r| {
                anchors::confirmation(r)
            })
        })
    }

    fn anchored_at(&self, hash: &ItemHash) -> Result<Vec<AnchoredAt>> {
        self.pool
            .with(|conn| anchors::anchored_at(&mut Sql(conn), hash))
    }

    fn missing_archives(
        &self,
        chain: Chain,
        after: i64,
        limit: u64,
    ) -> Result<Vec<MissingArchive>> {
        self.pool
            .with(|conn| anchors::missing_archives(&mut Sql(conn), chain, after, limit))
    }

    fn count_missing_archives(&self) -> Result<u64> {
        self.pool
            .with(|conn| anchors::count_missing_archives(&mut Sql(conn)))
    }

    fn anchor_items(&self, chain: Chain, tx_hash: &str, log_index: u64) -> Result<Vec<ItemHash>> {
        self.pool
            .with(|conn| anchors::anchor_items(&mut Sql(conn), chain, tx_hash, log_index))
    }

    fn unanchored(&self, limit: usize) -> Result<Vec<MessageRecord>> {
        self.pool
            .with(|conn| anchors::unanchored(&mut Sql(conn), limit))
    }

    fn open_batches(&self, chain: Chain) -> Result<Vec<Batch>> {
        self.pool
            .with(|conn| anchors::open_batches(&mut Sql(conn), chain))
    }

    fn message(&self, item_hash: &ItemHash) -> Result<Option<MessageRecord>> {
        self.pool
            .with(|conn| single::message(&mut Sql(conn), item_hash))
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
        self.pool
            .with(|conn| single::pending_copies(&mut Sql(conn), item_hash))
    }

    fn rejection(&self, item_hash: &ItemHash) -> Result<Option<Rejection>> {
        self.pool
            .with(|conn| single::rejection(&mut Sql(conn), item_hash))
    }

    fn forgotten(&self, item_hash: &ItemHash) -> Result<Option<ForgottenRecord>> {
        self.pool
            .with(|conn| single::forgotten(&mut Sql(conn), item_hash))
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
        self.pool.with(|conn| single::channels(&mut Sql(conn)))
    }

    fn message_hashes(&self, q: &HashQuery) -> Result<Vec<StatusRecord>> {
        self.pool
            .with(|conn| hashes::page(&mut Sql(conn), q, StatusRows::NotProcessed))
    }

    fn count_message_hashes(&self, q: &HashQuery) -> Result<u64> {
        self.pool
            .with(|conn| hashes::count(&mut Sql(conn), q, StatusRows::NotProcessed))
    }

    fn address_post_types(&self, address: &str) -> Result<Vec<String>> {
        self.pool
            .with(|conn| grants::facets(&mut Sql(conn), crate::totals::SENDER_POST_TYPE, address))
    }

    fn address_channels(&self, address: &str) -> Result<Vec<String>> {
        self.pool
            .with(|conn| grants::facets(&mut Sql(conn), crate::totals::SENDER_CHANNEL, address))
    }

    fn each_grant_to(
        &self,
        grantee: &str,
        visit: &mut dyn FnMut(Grant) -> Result<()>,
    ) -> Result<()> {
        self.pool
            .with(|conn| grants::each_grant_to(&mut Sql(conn), grantee, visit))
    }

    fn stored_file_bytes(&self) -> Result<u64> {
        self.pool
            .with(|conn| single::stored_file_bytes(&mut Sql(conn)))
    }

    fn file(&self, id: &str) -> Result<Option<FileRecord>> {
        self.pool.with(|conn| single::file(&mut Sql(conn), id))
    }

    fn file_pin_count(&self, file: &FileRecord, now: f64) -> Result<u64> {
        self.pool
            .with(|conn| single::file_pin_count(&mut Sql(conn), file, now))
    }

    fn address_files(
        &self,
        address: &str,
        limit: u64,
        offset: u64,
        order: SortOrder,
    ) -> Result<(Vec<AddressFile>, u64, u64)> {
        // One connection, which sees no other write between the three statements (there is
        // one writer, and it commits whole transactions).
        self.pool
            .with(|conn| single::address_files(&mut Sql(conn), address, limit, offset, order))
    }

    fn file_of_message(&self, message_hash: &ItemHash) -> Result<Option<PinnedFile>> {
        self.pool
            .with(|conn| single::file_of_message(&mut Sql(conn), message_hash))
    }

    fn file_of_tag(&self, tag: &str) -> Result<Option<PinnedFile>> {
        self.pool
            .with(|conn| single::file_of_tag(&mut Sql(conn), tag))
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
