//! The reads of blockchain anchoring: a page's confirmations (a list read, over
//! [`Dialect`]), and the reads of one thing (an anchor's items, a message's anchors, a
//! reader's position, a packer's open batches and what it has left to anchor), run on
//! either backend's connection.

use super::messages::MESSAGE_COLUMNS;
use super::rows::{self, parsed};
use crate::conn::{Connection, Row, Value, first, hashes, rows as all_rows};
use crate::sql::{Dialect, Filter, Param};
use crate::{
    Anchor, AnchoredAt, Batch, Chain, Confirmation, ItemHash, MessageRecord, MissingArchive,
    Result, SubmittedTx,
};

/// The statement of [`crate::ReadStore::confirmations`]: the page's item hashes bound as one
/// list parameter (an array in PostgreSQL, JSON text in SQLite), each probing the
/// confirmations' key in turn. One statement text whatever the page's size, so it is
/// prepared once per connection; an `IN (…)` of one placeholder per hash was a statement
/// per page size, and SQLite built a temporary index of the values on every run.
pub(crate) fn confirmations_sql<D: Dialect>(hashes: &[ItemHash]) -> (String, Vec<Param>) {
    let mut f = Filter::<D>::default();
    // Each hash once (a page lists a message once anyway).
    let mut texts: Vec<String> = hashes.iter().map(ItemHash::to_string).collect();
    texts.sort_unstable();
    texts.dedup();
    let list = f.bind(Param::Texts(texts));
    let page = match D::ARRAYS {
        true => format!("unnest(CAST({list} AS text[])) AS p(value)"),
        false => format!("json_each({list}) p"),
    };
    // CROSS JOIN: SQLite keeps the page's hashes as the outer loop, each a probe of the
    // confirmations' key; PostgreSQL plans it as any inner join.
    let sql = format!(
        "SELECT c.item_hash, a.chain, a.height, a.tx_hash, a.time, a.publisher
         FROM {page} CROSS JOIN confirmations c CROSS JOIN anchors a
         WHERE c.item_hash = p.value AND a.id = c.anchor_id
         ORDER BY c.item_hash, a.height, a.chain, a.tx_hash, a.log_index"
    );
    (sql, f.params)
}

/// A row of [`confirmations_sql`].
pub(crate) fn confirmation<R: rows::Columns + ?Sized>(
    r: &R,
) -> Result<(ItemHash, Confirmation), R::Error> {
    Ok((
        parsed(r, 0)?,
        Confirmation {
            chain: parsed(r, 1)?,
            height: r.integer(2)?.max(0) as u64,
            tx_hash: r.text(3)?,
            time: r.real(4)?,
            publisher: r.text(5)?,
        },
    ))
}

pub(crate) fn chain_position(c: &mut dyn Connection, chain: Chain) -> Result<Option<String>> {
    first(
        c,
        "SELECT position FROM chain_positions WHERE chain = $1",
        &[Value::Text(chain.as_str())],
        |r| r.text(0),
    )
}

pub(crate) fn chain_positions(c: &mut dyn Connection) -> Result<Vec<(Chain, String)>> {
    all_rows(
        c,
        "SELECT chain, position FROM chain_positions ORDER BY chain",
        &[],
        |r| Ok((parsed(r, 0)?, r.text(1)?)),
    )
}

const ANCHOR_COLUMNS: &str = "a.chain, a.tx_hash, a.log_index, a.height, a.block_hash, a.time,
    a.publisher, a.protocol, a.archive, a.merkle_root";

fn anchor(r: Row<'_>) -> Result<Anchor> {
    Ok(Anchor {
        chain: parsed(r, 0)?,
        tx_hash: r.text(1)?,
        log_index: r.integer(2)?.max(0) as u64,
        height: r.integer(3)?.max(0) as u64,
        block_hash: r.text(4)?,
        time: r.real(5)?,
        publisher: r.text(6)?,
        protocol: r.text(7)?,
        archive: r.opt_text(8)?,
        merkle_root: r.opt_text(9)?,
    })
}

pub(crate) fn anchored_at(c: &mut dyn Connection, hash: &ItemHash) -> Result<Vec<AnchoredAt>> {
    all_rows(
        c,
        &format!(
            "SELECT {ANCHOR_COLUMNS}, c.position FROM confirmations c
             JOIN anchors a ON a.id = c.anchor_id WHERE c.item_hash = $1
             ORDER BY a.height, a.chain, a.tx_hash, a.log_index"
        ),
        &[Value::from(hash)],
        |r| {
            Ok(AnchoredAt {
                anchor: anchor(r)?,
                position: u32::try_from(r.integer(10)?)
                    .map_err(|e| r.corrupt(10, e.to_string()))?,
            })
        },
    )
}

pub(crate) fn anchor_items(
    c: &mut dyn Connection,
    chain: Chain,
    tx_hash: &str,
    log_index: u64,
) -> Result<Vec<ItemHash>> {
    let Ok(log_index) = i64::try_from(log_index) else {
        return Ok(Vec::new());
    };
    hashes(
        c,
        "SELECT c.item_hash FROM anchors a JOIN confirmations c ON c.anchor_id = a.id
         WHERE a.chain = $1 AND a.tx_hash = $2 AND a.log_index = $3 ORDER BY c.position",
        &[
            Value::Text(chain.as_str()),
            Value::Text(tx_hash),
            Value::Int(log_index),
        ],
    )
}

/// What a packer has left to anchor: a range at the start of `unanchored` (see
/// `write/anchors.rs`), each row joined to its message (a `CROSS JOIN` keeps the range as
/// the outer loop on SQLite; PostgreSQL plans the same with the limit).
pub(crate) fn unanchored(c: &mut dyn Connection, limit: usize) -> Result<Vec<MessageRecord>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    all_rows(
        c,
        &format!(
            "SELECT {MESSAGE_COLUMNS} FROM unanchored u CROSS JOIN messages m
             WHERE m.item_hash = u.item_hash AND m.status IN ('processed', 'removing')
             ORDER BY u.reception_time, u.item_hash LIMIT $1"
        ),
        &[Value::Int(limit)],
        |r| rows::message(r, 0),
    )
}

pub(crate) fn open_batches(c: &mut dyn Connection, chain: Chain) -> Result<Vec<Batch>> {
    let mut batches = all_rows(
        c,
        "SELECT id, chain, archive, merkle_root, created, tx_hash, nonce, submitted_at
         FROM batches WHERE chain = $1 AND anchor_id IS NULL ORDER BY id",
        &[Value::Text(chain.as_str())],
        |r| {
            let submitted = match (r.opt_text(5)?, r.opt_integer(6)?, r.opt_real(7)?) {
                (Some(tx_hash), Some(nonce), Some(submitted_at)) => Some(SubmittedTx {
                    tx_hash,
                    nonce: nonce.max(0) as u64,
                    submitted_at,
                }),
                _ => None,
            };
            Ok(Batch {
                id: r.integer(0)?,
                chain: parsed(r, 1)?,
                archive: r.text(2)?,
                merkle_root: r.text(3)?,
                items: Vec::new(),
                created: r.real(4)?,
                submitted,
            })
        },
    )?;
    for batch in &mut batches {
        batch.items = hashes(
            c,
            "SELECT item_hash FROM batch_items WHERE batch_id = $1 ORDER BY position",
            &[Value::Int(batch.id)],
        )?;
    }
    Ok(batches)
}

pub(crate) fn missing_archives(
    c: &mut dyn Connection,
    chain: Chain,
    after: i64,
    limit: u64,
) -> Result<Vec<MissingArchive>> {
    all_rows(
        c,
        &format!(
            "SELECT {ANCHOR_COLUMNS}, m.claimed_root, m.anchor_id FROM missing_archives m
             JOIN anchors a ON a.id = m.anchor_id WHERE a.chain = $1 AND m.anchor_id > $2
             ORDER BY m.anchor_id LIMIT $3"
        ),
        &[
            Value::Text(chain.as_str()),
            Value::Int(after),
            Value::Int(i64::try_from(limit).unwrap_or(i64::MAX)),
        ],
        |r| {
            Ok(MissingArchive {
                id: r.integer(11)?,
                anchor: anchor(r)?,
                claimed_root: r.opt_text(10)?,
            })
        },
    )
}

pub(crate) fn count_missing_archives(c: &mut dyn Connection) -> Result<u64> {
    let n = first(c, "SELECT count(*) FROM missing_archives", &[], |r| {
        r.integer(0)
    })?;
    Ok(n.unwrap_or(0).max(0) as u64)
}
