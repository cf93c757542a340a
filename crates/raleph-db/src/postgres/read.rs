//! The read side: queries over messages, posts and aggregates, as the SQLite backend runs
//! them. Filters on lists are `column = ANY($n)` with one array parameter, so a query's text
//! does not depend on how many values a filter has; queries go out as unnamed statements
//! (one round trip, planned with their actual values).

use std::sync::Arc;

use ::postgres::Row;
use ::postgres::fallible_iterator::FallibleIterator;
use ::postgres::types::{ToSql, Type};

use super::{Conn, ReadPool, backend, driver_params};
use crate::query::forgotten::{self, FORGOTTEN_COLUMNS};
use crate::query::hashes::StatusRows;
use crate::query::messages::{self, MESSAGE_COLUMNS};
use crate::query::posts::{self, PostTags};
use crate::query::rows::{self, Columns};
use crate::query::single;
use crate::query::{addresses, aggregates, anchors, grants, hashes};
use crate::shared::sort_posts;
use crate::sql::{Param, Postgres};
use crate::*;

/// Shared handle to the read pool.
#[derive(Clone)]
pub struct PgReader {
    pool: Arc<ReadPool>,
}

impl PgReader {
    pub(crate) fn new(pool: Arc<ReadPool>) -> Self {
        PgReader { pool }
    }
}

impl Columns for Row {
    type Error = StoreError;
    fn text(&self, i: usize) -> Result<String> {
        get(self, i)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        get(self, i)
    }
    fn real(&self, i: usize) -> Result<f64> {
        get(self, i)
    }
    fn opt_real(&self, i: usize) -> Result<Option<f64>> {
        get(self, i)
    }
    fn integer(&self, i: usize) -> Result<i64> {
        self.opt_integer(i)?
            .ok_or_else(|| StoreError::Corrupt(format!("column {i}: NULL where a number is kept")))
    }
    /// An INTEGER or a BIGINT column (the driver reads each only as its own width).
    fn opt_integer(&self, i: usize) -> Result<Option<i64>> {
        if self
            .columns()
            .get(i)
            .is_some_and(|c| *c.type_() == Type::INT4)
        {
            return Ok(get::<Option<i32>>(self, i)?.map(i64::from));
        }
        get(self, i)
    }
    fn boolean(&self, i: usize) -> Result<bool> {
        get(self, i)
    }
    fn corrupt(&self, i: usize, reason: String) -> StoreError {
        StoreError::Corrupt(format!("column {i}: {reason}"))
    }
}

/// The reads of one thing (`query::single`) run as prepared statements, cached on the
/// connection: the same few statements over and over.
impl crate::conn::Connection for Conn {
    fn each_row(
        &mut self,
        sql: &str,
        params: &[crate::conn::Value<'_>],
        each: &mut dyn FnMut(crate::conn::Row<'_>) -> Result<()>,
    ) -> Result<()> {
        let statement = self.prepared(sql).map_err(backend)?;
        // Rows are handed over as they arrive rather than gathered first, so a read that
        // visits many rows (the grants of one address) holds one at a time.
        let mut rows = self
            .client()
            .query_raw(&statement, driver_params(params))
            .map_err(backend)?;
        while let Some(row) = rows.next().map_err(backend)? {
            each(&row)?;
        }
        Ok(())
    }
}

impl Param {
    /// The parameter and its PostgreSQL type.
    fn typed(&self) -> (&(dyn ToSql + Sync), Type) {
        match self {
            Param::Text(s) => (s, Type::TEXT),
            Param::Texts(v) => (v, Type::TEXT_ARRAY),
            Param::Real(f) => (f, Type::FLOAT8),
            Param::Int(i) => (i, Type::INT8),
        }
    }
}

fn get<'a, T: ::postgres::types::FromSql<'a>>(r: &'a Row, at: usize) -> Result<T> {
    r.try_get(at).map_err(backend)
}

fn non_negative(n: i64) -> u64 {
    n.max(0) as u64
}

fn query(conn: &mut Conn, sql: &str, params: &[Param]) -> Result<Vec<Row>> {
    let typed: Vec<_> = params.iter().map(Param::typed).collect();
    conn.client().query_typed(sql, &typed).map_err(backend)
}

fn collect<T>(
    conn: &mut Conn,
    sql: &str,
    params: &[Param],
    f: impl FnMut(&Row) -> Result<T>,
) -> Result<Vec<T>> {
    query(conn, sql, params)?.iter().map(f).collect()
}

/// Message rows, streamed and read no further than `max_bytes` of them (0: no bound).
fn collect_messages(
    conn: &mut Conn,
    sql: &str,
    params: &[Param],
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

/// Rows streamed from the server one at a time (the client library would otherwise hold the
/// whole result in memory first), no further than `max_bytes` of them as `bytes` counts them
/// (0: no bound): past it, [`StoreError::TooLarge`].
fn collect_bounded<T>(
    conn: &mut Conn,
    sql: &str,
    params: &[Param],
    max_bytes: usize,
    f: impl Fn(&Row) -> Result<T>,
    bytes: impl Fn(&T) -> usize,
) -> Result<Vec<T>> {
    use ::postgres::fallible_iterator::FallibleIterator;
    let typed: Vec<_> = params.iter().map(Param::typed).collect();
    let mut rows = conn.client().query_typed_raw(sql, typed).map_err(backend)?;
    let mut budget = crate::shared::ByteBudget::new(max_bytes);
    let mut collected = Vec::new();
    while let Some(row) = rows.next().map_err(backend)? {
        let item = f(&row)?;
        if !budget.fits(bytes(&item)) {
            return Err(budget.error());
        }
        collected.push(item);
    }
    Ok(collected)
}

fn query_opt(conn: &mut Conn, sql: &str, params: &[Param]) -> Result<Option<Row>> {
    let typed: Vec<_> = params.iter().map(Param::typed).collect();
    conn.client().query_typed_opt(sql, &typed).map_err(backend)
}

fn count(conn: &mut Conn, sql: &str, params: &[Param]) -> Result<u64> {
    let typed: Vec<_> = params.iter().map(Param::typed).collect();
    let row = conn
        .client()
        .query_typed_one(sql, &typed)
        .map_err(backend)?;
    Ok(non_negative(get(&row, 0)?))
}

/// Runs several reads on one snapshot, as one consistent read.
fn snapshot<T>(conn: &mut Conn, f: impl FnOnce(&mut Conn) -> Result<T>) -> Result<T> {
    conn.client()
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .map_err(backend)?;
    let result = f(conn);
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    if let Err(e) = conn.client().batch_execute(end) {
        // The connection's state is unknown: never reuse it.
        conn.mark_broken();
        result?;
        return Err(backend(e));
    }
    result
}

impl ReadStore for PgReader {
    fn chain_position(&self, chain: Chain) -> Result<Option<String>> {
        self.pool.with(|conn| anchors::chain_position(conn, chain))
    }

    fn chain_positions(&self) -> Result<Vec<(Chain, String)>> {
        self.pool.with(|conn| anchors::chain_positions(conn))
    }

    fn confirmations(&self, hashes: &[ItemHash]) -> Result<Vec<(ItemHash, Confirmation)>> {
        if hashes.is_empty() {
            return Ok(Vec::new());
        }
        let (sql, params) = anchors::confirmations_sql::<Postgres>(hashes);
        self.pool
            .with(|conn| collect(conn, &sql, &params, anchors::confirmation))
    }

    fn anchored_at(&self, hash: &ItemHash) -> Result<Vec<AnchoredAt>> {
        self.pool.with(|conn| anchors::anchored_at(conn, hash))
    }

    fn missing_archives(
        &self,
        chain: Chain,
        after: i64,
        limit: u64,
    ) -> Result<Vec<MissingArchive>> {
        self.pool
            .with(|conn| anchors::missing_archives(conn, chain, after, limit))
    }

    fn count_missing_archives(&self) -> Result<u64> {
        self.pool.with(|conn| anchors::count_missing_archives(conn))
    }

    fn anchor_items(&self, chain: Chain, tx_hash: &str, log_index: u64) -> Result<Vec<ItemHash>> {
        self.pool
            .with(|conn| anchors::anchor_items(conn, chain, tx_hash, log_index))
    }

    fn unanchored(&self, limit: usize) -> Result<Vec<MessageRecord>> {
        self.pool.with(|conn| anchors::unanchored(conn, limit))
    }

    fn open_batches(&self, chain: Chain) -> Result<Vec<Batch>> {
        self.pool.with(|conn| anchors::open_batches(conn, chain))
    }

    fn message(&self, item_hash: &ItemHash) -> Result<Option<MessageRecord>> {
        self.pool.with(|conn| single::message(conn, item_hash))
    }

    fn status(&self, hash: &ItemHash) -> Result<Option<StatusRecord>> {
        let item_hash = hash.as_str();
        self.pool.with(|conn| {
            let Some(r) = query_opt(
                conn,
                "SELECT status, reception_time FROM message_status WHERE item_hash = $1",
                &[Param::Text(item_hash.to_owned())],
            )?
            else {
                return Ok(None);
            };
            let status: String = get(&r, 0)?;
            Ok(Some(StatusRecord {
                item_hash: hash.clone(),
                status: status.parse().map_err(StoreError::Corrupt)?,
                reception_time: get(&r, 1)?,
            }))
        })
    }

    fn pending_copies(&self, item_hash: &ItemHash) -> Result<Vec<PendingCopy>> {
        self.pool
            .with(|conn| single::pending_copies(conn, item_hash))
    }

    fn rejection(&self, item_hash: &ItemHash) -> Result<Option<Rejection>> {
        self.pool.with(|conn| single::rejection(conn, item_hash))
    }

    fn forgotten(&self, item_hash: &ItemHash) -> Result<Option<ForgottenRecord>> {
        self.pool.with(|conn| single::forgotten(conn, item_hash))
    }

    fn messages(&self, q: &MessageQuery) -> Result<Vec<MessageRecord>> {
        let (sql, params) = messages::list_sql::<Postgres>(q, false);
        self.pool
            .with(|conn| collect_messages(conn, &sql, &params, q.max_bytes))
    }

    fn count_messages(&self, q: &MessageQuery) -> Result<u64> {
        let (sql, params) = messages::count_sql::<Postgres>(q, |f, start, end| {
            f.date_range("m.time", start, end);
            format!("SELECT count(*) FROM messages m {}", f.take_sql())
        });
        self.pool.with(|conn| count(conn, &sql, &params))
    }

    fn forgotten_messages(&self, q: &MessageQuery) -> Result<Vec<ForgottenRecord>> {
        let (sql, params) = forgotten::list_sql::<Postgres>(q);
        self.pool
            .with(|conn| collect(conn, &sql, &params, rows::forgotten))
    }

    fn count_forgotten_messages(&self, q: &MessageQuery) -> Result<u64> {
        let (sql, params) = forgotten::count_sql::<Postgres>(q);
        self.pool.with(|conn| count(conn, &sql, &params))
    }

    fn posts(&self, q: &PostQuery) -> Result<Vec<PostRecord>> {
        self.pool.with(|conn| {
            let tags = match posts::tag_rows_sql::<Postgres>(q) {
                Some((sql, params)) => posts::post_tags(count(conn, &sql, &params)?),
                None => PostTags::Probe,
            };
            let (sql, params) = posts::page_sql::<Postgres>(q, tags);
            let mut rows = collect_bounded(
                conn,
                &sql,
                &params,
                q.max_bytes,
                rows::post,
                crate::shared::post_bytes,
            )?;
            sort_posts(&mut rows, q.sort_order);
            Ok(rows)
        })
    }

    fn count_posts(&self, q: &PostQuery) -> Result<u64> {
        let (sql, params) = posts::count_sql::<Postgres>(q);
        self.pool.with(|conn| count(conn, &sql, &params))
    }

    fn aggregates_of_bounded(
        &self,
        owner: &str,
        keys: &[String],
        max_bytes: usize,
    ) -> Result<Vec<AggregateRecord>> {
        let (sql, params) = aggregates::of_owner_sql::<Postgres>(owner, keys);
        self.pool.with(|conn| {
            collect_bounded(
                conn,
                &sql,
                &params,
                max_bytes,
                rows::aggregate,
                crate::shared::aggregate_bytes,
            )
        })
    }

    fn aggregates(&self, q: &AggregateQuery) -> Result<Vec<AggregateRecord>> {
        let (sql, params) = aggregates::list_sql::<Postgres>(q);
        self.pool.with(|conn| {
            collect_bounded(
                conn,
                &sql,
                &params,
                q.max_bytes,
                rows::aggregate,
                crate::shared::aggregate_bytes,
            )
        })
    }

    fn count_aggregates(&self, q: &AggregateQuery) -> Result<u64> {
        let (sql, params) = aggregates::count_sql::<Postgres>(q);
        self.pool.with(|conn| count(conn, &sql, &params))
    }

    fn channels(&self) -> Result<Vec<String>> {
        self.pool.with(|conn| single::channels(conn))
    }

    fn message_hashes(&self, q: &HashQuery) -> Result<Vec<StatusRecord>> {
        self.pool
            .with(|conn| hashes::page(conn, q, StatusRows::Every))
    }

    fn count_message_hashes(&self, q: &HashQuery) -> Result<u64> {
        self.pool
            .with(|conn| hashes::count(conn, q, StatusRows::Every))
    }

    fn address_post_types(&self, address: &str) -> Result<Vec<String>> {
        self.pool
            .with(|conn| grants::facets(conn, crate::totals::SENDER_POST_TYPE, address))
    }

    fn address_channels(&self, address: &str) -> Result<Vec<String>> {
        self.pool
            .with(|conn| grants::facets(conn, crate::totals::SENDER_CHANNEL, address))
    }

    fn each_grant_to(
        &self,
        grantee: &str,
        visit: &mut dyn FnMut(Grant) -> Result<()>,
    ) -> Result<()> {
        self.pool
            .with(|conn| grants::each_grant_to(conn, grantee, visit))
    }

    fn stored_file_bytes(&self) -> Result<u64> {
        self.pool.with(|conn| single::stored_file_bytes(conn))
    }

    fn file(&self, id: &str) -> Result<Option<FileRecord>> {
        self.pool.with(|conn| single::file(conn, id))
    }

    fn file_pin_count(&self, file: &FileRecord, now: f64) -> Result<u64> {
        self.pool
            .with(|conn| single::file_pin_count(conn, file, now))
    }

    fn address_files(
        &self,
        address: &str,
        limit: u64,
        offset: u64,
        order: SortOrder,
    ) -> Result<(Vec<AddressFile>, u64, u64)> {
        // One snapshot for the page and its totals.
        self.pool.with(|conn| {
            snapshot(conn, |conn| {
                single::address_files(conn, address, limit, offset, order)
            })
        })
    }

    fn file_of_message(&self, message_hash: &ItemHash) -> Result<Option<PinnedFile>> {
        self.pool
            .with(|conn| single::file_of_message(conn, message_hash))
    }

    fn file_of_tag(&self, tag: &str) -> Result<Option<PinnedFile>> {
        self.pool.with(|conn| single::file_of_tag(conn, tag))
    }

    fn address_stats(&self, addresses: &[String]) -> Result<Vec<AddressStats>> {
        let (sql, params) = addresses::stats_sql::<Postgres>(addresses);
        let rows = self.pool.with(|conn| {
            collect(conn, &sql, &params, |r| {
                Ok((
                    get::<String>(r, 0)?,
                    get::<String>(r, 1)?,
                    non_negative(get(r, 2)?),
                ))
            })
        })?;
        Ok(addresses::fold_stats(rows))
    }

    fn sync_log(&self, after: u64, limit: usize, max_bytes: usize) -> Result<SyncPage> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.pool.with(|conn| {
            snapshot(conn, |conn| {
                let epoch =
                    query_opt(conn, "SELECT value FROM node_meta WHERE key = 'epoch'", &[])?
                        .map(|r| get::<String>(&r, 0))
                        .transpose()?
                        .ok_or_else(|| StoreError::Corrupt("the sync epoch is missing".into()))?;
                // Sizes first, so that no more content than the page can carry is read (the
                // client library holds a whole result in memory).
                let sizes = collect(
                    conn,
                    "SELECT seq, (coalesce(octet_length(item_content), 0) + octet_length(content))::bigint
                     FROM messages WHERE seq > $1 ORDER BY seq LIMIT $2",
                    &[Param::Int(after), Param::Int(limit)],
                    |r| Ok((non_negative(get(r, 0)?), non_negative(get(r, 1)?))),
                )?;
                let end = crate::shared::sync_page_end(&sizes, max_bytes);
                let cut_short = end.is_some();
                let end = end.map_or(i64::MAX, |seq| i64::try_from(seq).unwrap_or(i64::MAX));
                let bounds = [Param::Int(after), Param::Int(limit), Param::Int(end)];
                let messages = collect(
                    conn,
                    &format!(
                        "SELECT m.seq, {MESSAGE_COLUMNS} FROM messages m
                         WHERE m.seq > $1 AND m.seq <= $3 ORDER BY m.seq LIMIT $2"
                    ),
                    &bounds,
                    |r| Ok((non_negative(get(r, 0)?), rows::message(r, 1)?)),
                )?;
                let forgotten = collect(
                    conn,
                    &format!(
                        "SELECT {FORGOTTEN_COLUMNS}, m.seq FROM forgotten_messages m
                         WHERE m.seq > $1 AND m.seq <= $3 ORDER BY m.seq LIMIT $2"
                    ),
                    &bounds,
                    |r| Ok((non_negative(get(r, 14)?), rows::forgotten(r)?)),
                )?;
                Ok(crate::shared::sync_page(
                    epoch,
                    messages,
                    forgotten,
                    limit as usize,
                    cut_short,
                ))
            })
        })
    }

    fn counts(&self) -> Result<Counts> {
        self.pool.with(|conn| {
            snapshot(conn, |conn| {
                let pending = count(conn, "SELECT count(*) FROM pending_messages", &[])?;
                // Kept by triggers (migration 4).
                let counters = collect(conn, "SELECT name, n FROM counters", &[], |r| {
                    Ok((get::<String>(r, 0)?, get::<i64>(r, 1)?))
                })?;
                let (messages, by_status) = crate::shared::split_counters(counters);
                Ok(Counts {
                    messages,
                    pending,
                    by_status,
                })
            })
        })
    }
}
