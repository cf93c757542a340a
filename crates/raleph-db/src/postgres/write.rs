//! The write connection and the domain operations of [`WriteStore`], in PostgreSQL's SQL.
//! Each operation runs the same statements, in the same order, as the SQLite backend's.

use std::sync::Arc;

use ::postgres::Row;
use ::postgres::types::{FromSqlOwned, ToSql};

use super::{Conn, Role, Session, backend, driver_params, other};
use crate::shared::{distinct_tags, tags_column};
use crate::totals::{CountedRow, Taken, Totals};
use crate::write::{self, Session as WriteSession};
use crate::*;

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

impl crate::conn::Connection for PgWriter {
    fn each_row(
        &mut self,
        sql: &str,
        params: &[write::Value<'_>],
        each: &mut dyn FnMut(write::Row<'_>) -> Result<()>,
    ) -> Result<()> {
        let params = driver_params(params);
        for row in self.rows(sql, &params)? {
            each(&row)?;
        }
        Ok(())
    }
}

impl WriteSession for PgWriter {
    fn execute(&mut self, sql: &str, params: &[write::Value<'_>]) -> Result<u64> {
        let params = driver_params(params);
        self.exec(sql, &params)
    }

    fn totals(&mut self) -> &mut Totals {
        &mut self.totals
    }

    fn settle_if_autocommit(&mut self) -> Result<()> {
        PgWriter::settle_if_autocommit(self)
    }

    fn contains(&self, haystack: &str, needle: &str) -> String {
        format!("strpos({haystack}, {needle}) > 0")
    }

    /// Never given twice, even after the row that had it is gone.
    fn next_seq(&mut self) -> Result<i64> {
        self.value(
            "UPDATE counters SET n = n + 1 WHERE name = 'seq' RETURNING n",
            &[],
        )?
        .ok_or_else(|| StoreError::Corrupt("the sync sequence counter is missing".into()))
    }
}

/// Advisory lock class of the single writer ("rlpw"), held by the write connection's session.
const WRITER_LOCK: i32 = 0x726c_7077;

pub struct PgWriter {
    session: Arc<Session>,
    durability: Durability,
    /// `None` once the connection was found lost; reopened outside a transaction.
    conn: Option<Conn>,
    in_transaction: bool,
    /// A statement failed in the open transaction (PostgreSQL then refuses every statement
    /// until a rollback): a commit must not report success.
    aborted: bool,
    /// The open transaction's changes to the kept totals, written when it commits.
    totals: Totals,
}

impl PgWriter {
    pub(crate) fn new(
        session: Arc<Session>,
        durability: Durability,
        mut conn: Conn,
    ) -> Result<Self> {
        lock_writer(&mut conn, &session)?;
        Ok(PgWriter {
            session,
            durability,
            conn: Some(conn),
            in_transaction: false,
            aborted: false,
            totals: Totals::default(),
        })
    }

    /// The connection, reopened if it was lost while no transaction was open.
    fn conn(&mut self) -> Result<&mut Conn> {
        if self.conn.as_ref().is_some_and(Conn::is_closed) {
            self.conn = None;
        }
        if self.conn.is_none() {
            if self.in_transaction {
                return Err(StoreError::Unavailable(
                    "the database connection was lost during a transaction".into(),
                ));
            }
            let mut conn = self.session.connect(Role::Writer(self.durability))?;
            lock_writer(&mut conn, &self.session)?;
            tracing::warn!("reconnected to the database");
            self.conn = Some(conn);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| other("no database connection"))
    }

    /// Runs `f` on the connection; a failure inside a transaction marks it aborted. Outside a
    /// transaction (reads, and `BEGIN`), a connection found lost is reopened and `f` runs once
    /// more.
    fn run<T>(
        &mut self,
        mut f: impl FnMut(&mut Conn) -> std::result::Result<T, ::postgres::Error>,
    ) -> Result<T> {
        let mut result = self.conn().and_then(|conn| f(conn).map_err(backend));
        if result.is_err()
            && !self.in_transaction
            && self.conn.as_ref().is_some_and(Conn::is_closed)
        {
            result = self.conn().and_then(|conn| f(conn).map_err(backend));
        }
        if result.is_err() && self.in_transaction {
            self.aborted = true;
        }
        result
    }

    fn batch(&mut self, sql: &str) -> Result<()> {
        self.run(|conn| conn.client().batch_execute(sql))
    }

    fn exec(&mut self, sql: &str, params: Params<'_>) -> Result<u64> {
        self.run(|conn| {
            let statement = conn.prepared(sql)?;
            conn.client().execute(&statement, params)
        })
    }

    fn rows(&mut self, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
        self.run(|conn| {
            let statement = conn.prepared(sql)?;
            conn.client().query(&statement, params)
        })
    }

    fn row(&mut self, sql: &str, params: Params<'_>) -> Result<Option<Row>> {
        self.run(|conn| {
            let statement = conn.prepared(sql)?;
            conn.client().query_opt(&statement, params)
        })
    }

    /// The first column of the first row, if there is a row.
    fn value<T: FromSqlOwned>(&mut self, sql: &str, params: Params<'_>) -> Result<Option<T>> {
        self.row(sql, params)?
            .map(|row| row.try_get(0).map_err(backend))
            .transpose()
    }

    /// Writes the kept totals' changes: at commit, or at once outside a transaction (where
    /// each statement commits alone). One statement per table, whatever the number of values.
    fn write_totals(&mut self) -> Result<()> {
        if self.totals.is_empty() {
            return Ok(());
        }
        let Taken {
            lists,
            times,
            type_times,
        } = self.totals.take();
        if !lists.is_empty() {
            let names: Vec<&str> = lists.iter().map(|(list, _, _)| *list).collect();
            let values: Vec<&str> = lists.iter().map(|(_, value, _)| value.as_str()).collect();
            let changes: Vec<i64> = lists.iter().map(|(_, _, n)| *n).collect();
            self.exec(
                "INSERT INTO list_totals (list, value, n)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::int8[])
                 ON CONFLICT (list, value) DO UPDATE SET n = list_totals.n + excluded.n",
                &[&names, &values, &changes],
            )?;
        }
        if !times.is_empty() {
            let levels: Vec<i64> = times.iter().map(|t| t.0).collect();
            let buckets: Vec<i64> = times.iter().map(|t| t.1).collect();
            let changes: Vec<i64> = times.iter().map(|t| t.2).collect();
            self.exec(
                "INSERT INTO time_counts (level, bucket, n)
                 SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[])
                 ON CONFLICT (level, bucket) DO UPDATE SET n = time_counts.n + excluded.n",
                &[&levels, &buckets, &changes],
            )?;
        }
        if !type_times.is_empty() {
            let types: Vec<&str> = type_times.iter().map(|t| t.0.as_str()).collect();
            let levels: Vec<i64> = type_times.iter().map(|t| t.1).collect();
            let buckets: Vec<i64> = type_times.iter().map(|t| t.2).collect();
            let changes: Vec<i64> = type_times.iter().map(|t| t.3).collect();
            self.exec(
                "INSERT INTO type_time_counts (type, level, bucket, n)
                 SELECT * FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int8[])
                 ON CONFLICT (type, level, bucket) DO UPDATE SET n = type_time_counts.n + excluded.n",
                &[&types, &levels, &buckets, &changes],
            )?;
        }
        Ok(())
    }

    fn settle_if_autocommit(&mut self) -> Result<()> {
        if self.in_transaction {
            Ok(())
        } else {
            self.write_totals()
        }
    }
}

/// How long opening waits for the single-writer lock: a writer that just closed (a restart,
/// a reopened store) releases it when the server notices its connection is gone.
const WRITER_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Takes the single-writer lock of the session's schema, or fails if another node keeps it.
fn lock_writer(conn: &mut Conn, session: &Session) -> Result<()> {
    let schema = session.schema.as_deref();
    let deadline = std::time::Instant::now() + WRITER_LOCK_WAIT;
    loop {
        let locked: bool = conn
            .client()
            .query_one(
                "SELECT pg_try_advisory_lock($1, hashtext(coalesce($2::text, current_schema()::text, '')))",
                &[&WRITER_LOCK, &schema],
            )
            .and_then(|row| row.try_get(0))
            .map_err(backend)?;
        if locked {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(other(
                "another raleph node is writing to this database (one writer per schema)",
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

impl Drop for PgWriter {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            super::close_off_thread(conn);
        }
    }
}

fn size(n: u64) -> i64 {
    n as i64
}

impl WriteStore for PgWriter {
    write::shared_write_operations!();

    fn begin(&mut self) -> Result<()> {
        if self.in_transaction {
            return Err(other("cannot start a transaction within a transaction"));
        }
        self.batch("BEGIN")?;
        self.totals.clear();
        self.in_transaction = true;
        self.aborted = false;
        Ok(())
    }

    fn commit(&mut self) -> Result<()> {
        if !self.in_transaction {
            return Err(other("cannot commit: no transaction is active"));
        }
        if self.aborted {
            // PostgreSQL would answer COMMIT with a silent ROLLBACK.
            self.rollback()?;
            return Err(other(
                "the transaction was aborted by an earlier error and rolled back",
            ));
        }
        if let Err(e) = self.write_totals() {
            // The transaction is aborted: end it, or the connection would stay inside it.
            self.rollback()?;
            return Err(e);
        }
        let result = self.batch("COMMIT");
        // Whatever the outcome, the transaction is over.
        self.in_transaction = false;
        self.aborted = false;
        result
    }

    fn rollback(&mut self) -> Result<()> {
        if !self.in_transaction {
            return Ok(());
        }
        self.in_transaction = false;
        self.aborted = false;
        self.totals.clear();
        match self.conn.as_mut() {
            Some(conn) if !conn.is_closed() => {
                conn.client().batch_execute("ROLLBACK").map_err(backend)
            }
            // A lost connection took its transaction with it.
            _ => Ok(()),
        }
    }

    fn savepoint(&mut self) -> Result<()> {
        self.totals.take_savepoint();
        self.batch("SAVEPOINT message")
    }

    fn release_savepoint(&mut self) -> Result<()> {
        self.totals.release_savepoint();
        self.batch("RELEASE SAVEPOINT message")
    }

    fn rollback_savepoint(&mut self) -> Result<()> {
        self.totals.rollback_savepoint();
        self.batch("ROLLBACK TO SAVEPOINT message; RELEASE SAVEPOINT message")?;
        self.aborted = false;
        Ok(())
    }

    fn status(&mut self, item_hash: &ItemHash) -> Result<Option<MessageStatus>> {
        let item_hash = item_hash.as_str();
        let status: Option<String> = self.value(
            "SELECT status FROM message_status WHERE item_hash = $1",
            &[&item_hash],
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
        // One round trip for both tables.
        self.exec(
            "WITH changed AS (UPDATE messages SET status = $2 WHERE item_hash = $1 AND status <> $2)
             INSERT INTO message_status (item_hash, status, reception_time) VALUES ($1, $2, $3)
             ON CONFLICT (item_hash) DO UPDATE SET status = excluded.status",
            &[&item_hash, &status.as_str(), &reception_time],
        )
        .map(drop)
    }

    fn insert_message(&mut self, m: &NewMessage) -> Result<()> {
        let e = &m.record.envelope;
        let tags = distinct_tags(&m.tags);
        // One round trip: the sync log number, the tag rows and the end of an earlier
        // rejection go with the row itself (the writer waits on every statement).
        let seq: Option<i64> = self.value(
            "WITH next AS (UPDATE counters SET n = n + 1 WHERE name = 'seq' RETURNING n),
                 tagged AS (INSERT INTO message_tags (tag, time, item_hash)
                            SELECT tag, $10::float8, $1::text FROM unnest($20::text[]) AS tag),
                 unrejected AS (DELETE FROM rejected_messages WHERE item_hash = $1::text),
                 -- Its first confirmation, if an anchor listed it before it came; else it is
                 -- left for a packer to anchor (see `write/anchors.rs`).
                 first AS (SELECT a.time, a.height FROM confirmations c
                           JOIN anchors a ON a.id = c.anchor_id
                           WHERE c.item_hash = $1::text ORDER BY a.time, a.height LIMIT 1),
                 unanchored AS (INSERT INTO unanchored (reception_time, item_hash)
                                SELECT $18::float8, $1::text WHERE $5::text IS NOT NULL
                                AND NOT EXISTS (SELECT 1 FROM first))
             INSERT INTO messages (item_hash, type, chain, sender, signature, item_type, item_content, content,
                 channel, time, size, owner, content_type, content_ref, content_key, content_item_hash,
                 payment_type, reception_time, seq, tags, first_confirmed_at, first_confirmed_height)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
                 (SELECT n FROM next), $19, (SELECT time FROM first), (SELECT height FROM first))
             RETURNING seq",
            &[
                &e.item_hash.as_str(),
                &e.message_type.as_str(),
                &e.chain.as_str(),
                &e.sender,
                &e.signature,
                &e.item_type.as_str(),
                &e.item_content,
                &m.record.content,
                &e.channel,
                &e.time,
                &size(m.record.size),
                &m.owner,
                &m.content_type,
                &m.content_ref,
                &m.content_key,
                &m.content_item_hash,
                &m.payment_type,
                &m.record.reception_time,
                &tags_column(&tags),
                &tags,
            ],
        )?;
        if seq.is_none() {
            return Err(StoreError::Corrupt(
                "the sync sequence counter is missing".into(),
            ));
        }
        self.totals.count_message(CountedRow::of_new(m), 1);
        for tag in &tags {
            self.totals.count("tag", tag, 1);
        }
        self.settle_if_autocommit()?;
        if e.item_type != ItemType::Inline {
            // Its content file is now held by the message itself.
            write::files::claim(self, e.item_hash.as_str())?;
        }
        Ok(())
    }
}
