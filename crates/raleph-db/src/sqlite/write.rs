//! The write connection and the domain operations of [`WriteStore`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::{Connection, OptionalExtension, params};

use super::backend;
use super::conn::Sql;
use crate::totals::{CountedRow, Totals};
use crate::write::{self, Session};
use crate::*;

pub struct SqliteWriter {
    conn: Connection,
    /// When the planner's statistics were last refreshed (`None`: not since open).
    last_optimize: Option<std::time::Instant>,
    /// Message rows added since then.
    added_since_optimize: i64,
    /// Copies WAL pages into the database off this thread; stops when the writer is dropped.
    checkpointer: super::checkpoint::Checkpointer,
    /// Bumped after each refresh of the planner's statistics, so that read connections
    /// opened before it are replaced (they read the statistics only when they open).
    statistics: Arc<AtomicU64>,
    /// The open transaction's changes to the `counters` rows, written once at commit.
    tally: Tally,
}

/// Counters a transaction changes on nearly every message, kept here and written to
/// `counters`, `list_totals` and `time_counts` when it commits: a trigger on `messages` would
/// make each insert keep a statement journal (a copy of every page it touches), and one
/// `UPDATE` per message costs a statement.
#[derive(Debug, Default)]
struct Tally {
    /// The last sync log number given, once read from `counters`.
    seq: Option<i64>,
    /// Rows added to `messages`, less rows removed.
    messages: i64,
    /// `messages` when the open savepoint was taken.
    saved_messages: i64,
    totals: Totals,
}

impl Tally {
    /// No change: a transaction begins, or one rolled back.
    fn reset(&mut self) {
        self.seq = None;
        self.messages = 0;
        self.totals.clear();
    }

    fn take_savepoint(&mut self) {
        self.saved_messages = self.messages;
        self.totals.take_savepoint();
    }

    /// Undoes the changes made since the savepoint. Sequence numbers given out stay given:
    /// a number is never reused.
    fn rollback_savepoint(&mut self) {
        self.messages = self.saved_messages;
        self.totals.rollback_savepoint();
    }
}

impl crate::conn::Connection for SqliteWriter {
    fn each_row(
        &mut self,
        sql: &str,
        params: &[write::Value<'_>],
        each: &mut dyn FnMut(write::Row<'_>) -> Result<()>,
    ) -> Result<()> {
        Sql(&self.conn).each_row(sql, params, each)
    }
}

impl Session for SqliteWriter {
    fn execute(&mut self, sql: &str, params: &[write::Value<'_>]) -> Result<u64> {
        Sql(&self.conn).execute(sql, params)
    }

    fn totals(&mut self) -> &mut Totals {
        &mut self.tally.totals
    }

    fn settle_if_autocommit(&mut self) -> Result<()> {
        SqliteWriter::settle_if_autocommit(self)
    }

    fn contains(&self, haystack: &str, needle: &str) -> String {
        format!("instr({haystack}, {needle}) > 0")
    }

    /// Never given twice, even after the row that had it is gone.
    fn next_seq(&mut self) -> Result<i64> {
        let last = match self.tally.seq {
            Some(last) => last,
            None => {
                self.one("SELECT n FROM counters WHERE name = 'seq'", [], |r| {
                    r.get(0)
                })?
                .ok_or_else(|| StoreError::Corrupt("the sync sequence counter is missing".into()))?
            }
        };
        self.tally.seq = Some(last + 1);
        Ok(last + 1)
    }

    fn count_messages(&mut self, delta: i64) {
        self.tally.messages += delta;
    }
}

/// How often the writer refreshes the planner's statistics.
const OPTIMIZE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
/// ... or sooner, once this many messages were added since: a young store's first rows must
/// not wait a minute for statistics, as every list would be planned without them (an address
/// and type filter read the whole type's range instead of the address's few rows).
const OPTIMIZE_AFTER_MESSAGES: i64 = 10_000;

impl SqliteWriter {
    pub(crate) fn new(
        conn: Connection,
        checkpointer: super::checkpoint::Checkpointer,
        statistics: Arc<AtomicU64>,
    ) -> Self {
        SqliteWriter {
            conn,
            last_optimize: None,
            added_since_optimize: 0,
            checkpointer,
            statistics,
            tally: Tally::default(),
        }
    }

    fn exec(&self, sql: &str, params: impl rusqlite::Params) -> Result<usize> {
        self.conn
            .prepare_cached(sql)
            .and_then(|mut s| s.execute(params))
            .map_err(backend)
    }

    fn one<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>> {
        self.conn
            .prepare_cached(sql)
            .and_then(|mut s| s.query_row(params, f).optional())
            .map_err(backend)
    }

    /// Keeps the planner's statistics current as the index grows: at the first commit, then
    /// every `OPTIMIZE_EVERY` or `OPTIMIZE_AFTER_MESSAGES`. `optimize` with 0x10000 looks at
    /// every table, not only those this connection queried (the writer never runs the list
    /// queries that need the statistics), and analyzes those never analyzed or grown a lot
    /// since; otherwise it costs a few reads.
    fn refresh_statistics_when_due(&mut self) -> Result<()> {
        let due = match self.last_optimize {
            None => true,
            Some(last) => {
                last.elapsed() >= OPTIMIZE_EVERY
                    || self.added_since_optimize >= OPTIMIZE_AFTER_MESSAGES
            }
        };
        if due {
            let started = std::time::Instant::now();
            self.last_optimize = Some(started);
            self.added_since_optimize = 0;
            self.conn
                .execute_batch("PRAGMA optimize=0x10002")
                .map_err(backend)?;
            // Analyzing grown tables holds the writer; worth telling when it was long.
            let took = started.elapsed();
            if took >= std::time::Duration::from_millis(20) {
                tracing::info!(ms = took.as_millis() as u64, "planner statistics refreshed");
            }
            self.statistics.fetch_add(1, Ordering::Release);
        }
        Ok(())
    }

    /// Outside a transaction each statement commits alone: so does the tally.
    fn settle_if_autocommit(&mut self) -> Result<()> {
        if self.conn.is_autocommit() {
            self.write_tally()?;
        }
        Ok(())
    }

    /// Writes the transaction's tally to `counters`.
    fn write_tally(&mut self) -> Result<()> {
        if let Some(seq) = self.tally.seq.take() {
            self.exec("UPDATE counters SET n = ?1 WHERE name = 'seq'", [seq])?;
        }
        let messages = std::mem::take(&mut self.tally.messages);
        if messages != 0 {
            self.exec(
                "INSERT INTO counters (name, n) VALUES ('messages', ?1)
                 ON CONFLICT (name) DO UPDATE SET n = n + excluded.n",
                [messages],
            )?;
        }
        let taken = self.tally.totals.take();
        for (list, value, change) in taken.lists {
            self.exec(
                "INSERT INTO list_totals (list, value, n) VALUES (?1, ?2, ?3)
                 ON CONFLICT (list, value) DO UPDATE SET n = n + excluded.n",
                params![list, value, change],
            )?;
        }
        for (level, bucket, change) in taken.times {
            self.exec(
                "INSERT INTO time_counts (level, bucket, n) VALUES (?1, ?2, ?3)
                 ON CONFLICT (level, bucket) DO UPDATE SET n = n + excluded.n",
                params![level, bucket, change],
            )?;
        }
        for (message_type, level, bucket, change) in taken.type_times {
            self.exec(
                "INSERT INTO type_time_counts (type, level, bucket, n) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (type, level, bucket) DO UPDATE SET n = n + excluded.n",
                params![message_type, level, bucket, change],
            )?;
        }
        Ok(())
    }
}

use crate::shared::{distinct_tags, tags_column};

impl WriteStore for SqliteWriter {
    write::shared_write_operations!();

    fn begin(&mut self) -> Result<()> {
        self.checkpointer.yield_to_restart();
        self.tally.reset();
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(backend)
    }

    fn commit(&mut self) -> Result<()> {
        let added = self.tally.messages;
        self.write_tally()?;
        self.conn.execute_batch("COMMIT").map_err(backend)?;
        self.added_since_optimize += added;
        self.refresh_statistics_when_due()
    }

    fn rollback(&mut self) -> Result<()> {
        self.tally.reset();
        if self.conn.is_autocommit() {
            return Ok(());
        }
        self.conn.execute_batch("ROLLBACK").map_err(backend)
    }

    fn savepoint(&mut self) -> Result<()> {
        self.tally.take_savepoint();
        self.conn
            .execute_batch("SAVEPOINT message")
            .map_err(backend)
    }

    fn release_savepoint(&mut self) -> Result<()> {
        self.tally.totals.release_savepoint();
        self.conn.execute_batch("RELEASE message").map_err(backend)
    }

    fn rollback_savepoint(&mut self) -> Result<()> {
        self.tally.rollback_savepoint();
        self.conn
            .execute_batch("ROLLBACK TO message; RELEASE message")
            .map_err(backend)
    }

    fn status(&mut self, item_hash: &ItemHash) -> Result<Option<MessageStatus>> {
        let item_hash = item_hash.as_str();
        // `message_status` holds every status but `processed`, which is the message's row.
        let status = self.one(
            "SELECT status FROM message_status WHERE item_hash = ?1
             UNION ALL SELECT 'processed' FROM messages WHERE item_hash = ?1
             LIMIT 1",
            [item_hash],
            |r| r.get::<_, String>(0),
        )?;
        status
            .map(|s| s.parse().map_err(StoreError::Corrupt))
            .transpose()
    }

    fn set_status(
        &mut self,
        item_hash: &ItemHash,
        status: MessageStatus,
        reception_time: f64,
    ) -> Result<()> {
        let item_hash = item_hash.as_str();
        if status == MessageStatus::Processed {
            // Processed is the status a message has without a `message_status` row. A new
            // message's row says `processed` already; only one that had another status (a
            // message no longer being removed) needs its row changed.
            let had_other = self.exec(
                "DELETE FROM message_status WHERE item_hash = ?1",
                [item_hash],
            )? > 0;
            if !had_other {
                return Ok(());
            }
        } else {
            self.exec(
                "INSERT INTO message_status (item_hash, status, reception_time) VALUES (?1, ?2, ?3)
                 ON CONFLICT (item_hash) DO UPDATE SET status = excluded.status",
                params![item_hash, status.as_str(), reception_time],
            )?;
        }
        self.exec(
            "UPDATE messages SET status = ?2 WHERE item_hash = ?1 AND status <> ?2",
            params![item_hash, status.as_str()],
        )
        .map(drop)
    }

    fn insert_message(&mut self, m: &NewMessage) -> Result<()> {
        let e = &m.record.envelope;
        let seq = self.next_seq()?;
        let tags = distinct_tags(&m.tags);
        // An anchor may have listed it before it came (read from a chain first).
        let first: Option<(f64, i64)> = self.one(
            &format!(
                "SELECT a.time, a.height {}",
                write::anchors::FIRST_CONFIRMATION
            ),
            [e.item_hash.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        self.exec(
            "INSERT INTO messages (item_hash, type, chain, sender, signature, item_type, item_content, content,
                 channel, time, size, owner, content_type, content_ref, content_key, content_item_hash,
                 payment_type, reception_time, seq, tags, first_confirmed_at, first_confirmed_height)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20,
                 ?21, ?22)",
            params![
                e.item_hash.as_str(),
                e.message_type.as_str(),
                e.chain.as_str(),
                e.sender,
                e.signature,
                e.item_type.as_str(),
                e.item_content,
                m.record.content,
                e.channel,
                e.time,
                m.record.size as i64,
                m.owner,
                m.content_type,
                m.content_ref,
                m.content_key,
                m.content_item_hash,
                m.payment_type,
                m.record.reception_time,
                seq,
                tags_column(&tags),
                first.map(|(time, _)| time),
                first.map(|(_, height)| height),
            ],
        )?;
        self.tally.messages += 1;
        self.tally.totals.count_message(CountedRow::of_new(m), 1);
        for tag in &tags {
            self.tally.totals.count("tag", tag, 1);
        }
        self.settle_if_autocommit()?;
        for tag in tags {
            self.exec(
                "INSERT INTO message_tags (tag, time, item_hash) VALUES (?1, ?2, ?3)",
                params![tag, e.time, e.item_hash.as_str()],
            )?;
        }
        if e.signature.is_some() && first.is_none() {
            // Left for a packer to anchor (see `write/anchors.rs`).
            self.exec(
                "INSERT INTO unanchored (reception_time, item_hash) VALUES (?1, ?2)",
                params![m.record.reception_time, e.item_hash.as_str()],
            )?;
        }
        if e.item_type != ItemType::Inline {
            // Its content file is now held by the message itself.
            write::files::claim(self, e.item_hash.as_str())?;
        }
        self.exec(
            "DELETE FROM rejected_messages WHERE item_hash = ?1",
            [e.item_hash.as_str()],
        )
        .map(drop)
    }
}
