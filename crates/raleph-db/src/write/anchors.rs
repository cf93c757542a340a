//! Blockchain anchoring, written once: anchors and their confirmations, a chain reader's
//! position, a packer's batches, and the small `unanchored` table that keeps what a packer
//! has left to anchor.
//!
//! `unanchored` holds, keyed `(reception_time, item_hash)` so that ingest appends to its end
//! instead of writing a random page, every message row that is signed, confirmed by no
//! anchor and held by no open batch. Whatever changes one of those facts for an item brings
//! its row up to date ([`reconsider`]); a new message gets its row as it is inserted (each
//! backend's `insert_message`, which checks for confirmations that came first). So the
//! packer's read is a range at the start of this table, however many messages are
//! confirmed.
//!
//! Each message row also keeps its first confirmation (`first_confirmed_at`,
//! `first_confirmed_height`: the earliest anchor, then the lowest), for the list's block
//! filters and `tx-time` order: set by `record_anchor` and an insert, refreshed by a reorg.

use std::collections::HashSet;

use super::{Session, Value, first, hashes};
use crate::{Anchor, Chain, ItemHash, Result, StoreError};

/// A count or a height as the stored integer.
pub(crate) fn stored_int(n: u64) -> Result<i64> {
    i64::try_from(n).map_err(|_| StoreError::Backend(format!("{n} is too large to store").into()))
}

pub(crate) fn record_anchor(s: &mut dyn Session, a: &Anchor, items: &[ItemHash]) -> Result<bool> {
    let id = first(
        s,
        "INSERT INTO anchors (chain, tx_hash, log_index, height, block_hash, time, publisher,
             protocol, archive, merkle_root)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (chain, tx_hash, log_index) DO NOTHING
         RETURNING id",
        &[
            Value::Text(a.chain.as_str()),
            Value::Text(&a.tx_hash),
            Value::Int(stored_int(a.log_index)?),
            Value::Int(stored_int(a.height)?),
            Value::Text(&a.block_hash),
            Value::Real(a.time),
            Value::Text(&a.publisher),
            Value::Text(&a.protocol),
            Value::from(&a.archive),
            Value::from(&a.merkle_root),
        ],
        |r| r.integer(0),
    )?;
    let Some(id) = id else {
        return Ok(false);
    };
    confirm_items(s, id, a.time, a.height, items)?;
    if let Some(archive) = &a.archive {
        // The packer's batch of this archive is confirmed: no longer open. Its items that
        // this anchor does not list (there should be none) are unanchored again.
        let closed = hashes(
            s,
            "SELECT i.item_hash FROM batch_items i JOIN batches b ON b.id = i.batch_id
             WHERE b.chain = $1 AND b.archive = $2 AND b.anchor_id IS NULL",
            &[Value::Text(a.chain.as_str()), Value::Text(archive)],
        )?;
        s.execute(
            "UPDATE batches SET anchor_id = $1
             WHERE chain = $2 AND archive = $3 AND anchor_id IS NULL",
            &[
                Value::Int(id),
                Value::Text(a.chain.as_str()),
                Value::Text(archive),
            ],
        )?;
        let listed: HashSet<&ItemHash> = items.iter().collect();
        for item in closed.iter().filter(|item| !listed.contains(item)) {
            reconsider(s, item)?;
        }
    }
    Ok(true)
}

/// One confirmation per item of the anchor `id`, mined at `time` and `height` (an item's
/// position is its index in `items`).
fn confirm_items(
    s: &mut dyn Session,
    id: i64,
    time: f64,
    height: u64,
    items: &[ItemHash],
) -> Result<()> {
    for (position, item) in items.iter().enumerate() {
        // An item listed twice keeps its first position.
        s.execute(
            "INSERT INTO confirmations (item_hash, anchor_id, position) VALUES ($1, $2, $3)
             ON CONFLICT (item_hash, anchor_id) DO NOTHING",
            &[
                Value::from(item),
                Value::Int(id),
                Value::Int(position as i64),
            ],
        )?;
        drop_unanchored(s, item.as_str())?;
        // The message's first confirmation, if this one is earlier (by time, then height).
        s.execute(
            "UPDATE messages SET first_confirmed_at = $1, first_confirmed_height = $2
             WHERE item_hash = $3 AND (first_confirmed_at IS NULL OR first_confirmed_at > $1
                 OR (first_confirmed_at = $1 AND first_confirmed_height > $2))",
            &[
                Value::Real(time),
                Value::Int(stored_int(height)?),
                Value::from(item),
            ],
        )?;
    }
    Ok(())
}

pub(crate) fn record_anchor_missing_archive(
    s: &mut dyn Session,
    a: &Anchor,
    claimed_root: Option<&str>,
) -> Result<bool> {
    if !record_anchor(s, a, &[])? {
        return Ok(false);
    }
    s.execute(
        "INSERT INTO missing_archives (anchor_id, claimed_root)
         SELECT id, $1 FROM anchors WHERE chain = $2 AND tx_hash = $3 AND log_index = $4",
        &[
            Value::from(&claimed_root.map(str::to_owned)),
            Value::Text(a.chain.as_str()),
            Value::Text(&a.tx_hash),
            Value::Int(stored_int(a.log_index)?),
        ],
    )?;
    Ok(true)
}

pub(crate) fn complete_anchor(
    s: &mut dyn Session,
    a: &Anchor,
    items: &[ItemHash],
    merkle_root: Option<&str>,
) -> Result<bool> {
    let id = first(
        s,
        "DELETE FROM missing_archives WHERE anchor_id =
             (SELECT id FROM anchors WHERE chain = $1 AND tx_hash = $2 AND log_index = $3)
         RETURNING anchor_id",
        &[
            Value::Text(a.chain.as_str()),
            Value::Text(&a.tx_hash),
            Value::Int(stored_int(a.log_index)?),
        ],
        |r| r.integer(0),
    )?;
    let Some(id) = id else {
        return Ok(false);
    };
    // The stored anchor's block, not the caller's copy: a reorg may have dropped the anchor
    // the caller read and the same transaction been mined again since.
    let Some((time, height)) = first(
        s,
        "UPDATE anchors SET merkle_root = $1 WHERE id = $2 RETURNING time, height",
        &[Value::from(&merkle_root.map(str::to_owned)), Value::Int(id)],
        |r| Ok((r.real(0)?, r.integer(1)?.max(0) as u64)),
    )?
    else {
        return Ok(false);
    };
    confirm_items(s, id, time, height, items)?;
    Ok(true)
}

pub(crate) fn drop_anchors_from(s: &mut dyn Session, chain: Chain, height: u64) -> Result<u64> {
    let chain = Value::Text(chain.as_str());
    let height = Value::Int(stored_int(height)?);
    let mut touched = hashes(
        s,
        "SELECT c.item_hash FROM anchors a JOIN confirmations c ON c.anchor_id = a.id
         WHERE a.chain = $1 AND a.height >= $2",
        &[chain, height],
    )?;
    // Batches these anchors confirmed are open again: their transaction may be mined again,
    // or must be sent again.
    touched.extend(hashes(
        s,
        "SELECT i.item_hash FROM batch_items i JOIN batches b ON b.id = i.batch_id
         WHERE b.anchor_id IN (SELECT id FROM anchors WHERE chain = $1 AND height >= $2)",
        &[chain, height],
    )?);
    s.execute(
        "UPDATE batches SET anchor_id = NULL
         WHERE anchor_id IN (SELECT id FROM anchors WHERE chain = $1 AND height >= $2)",
        &[chain, height],
    )?;
    s.execute(
        "DELETE FROM confirmations
         WHERE anchor_id IN (SELECT id FROM anchors WHERE chain = $1 AND height >= $2)",
        &[chain, height],
    )?;
    s.execute(
        "DELETE FROM missing_archives
         WHERE anchor_id IN (SELECT id FROM anchors WHERE chain = $1 AND height >= $2)",
        &[chain, height],
    )?;
    let dropped = s.execute(
        "DELETE FROM anchors WHERE chain = $1 AND height >= $2",
        &[chain, height],
    )?;
    touched.sort();
    touched.dedup();
    for item in &touched {
        reconsider(s, item)?;
        refresh_first_confirmed(s, item)?;
    }
    Ok(dropped)
}

/// Sets a message's first confirmation from the confirmations left.
fn refresh_first_confirmed(s: &mut dyn Session, item: &ItemHash) -> Result<()> {
    s.execute(
        &format!(
            "UPDATE messages SET first_confirmed_at = (SELECT a.time {FIRST_CONFIRMATION}),
                 first_confirmed_height = (SELECT a.height {FIRST_CONFIRMATION})
             WHERE item_hash = $1"
        ),
        &[Value::from(item)],
    )
    .map(drop)
}

/// The anchor `a` of the first confirmation of item `$1` (the earliest, then the lowest), to
/// select its columns from.
pub(crate) const FIRST_CONFIRMATION: &str =
    "FROM confirmations c JOIN anchors a ON a.id = c.anchor_id
    WHERE c.item_hash = $1 ORDER BY a.time, a.height LIMIT 1";

pub(crate) fn set_chain_position(s: &mut dyn Session, chain: Chain, position: &str) -> Result<()> {
    s.execute(
        "INSERT INTO chain_positions (chain, position) VALUES ($1, $2)
         ON CONFLICT (chain) DO UPDATE SET position = excluded.position",
        &[Value::Text(chain.as_str()), Value::Text(position)],
    )
    .map(drop)
}

pub(crate) fn create_batch(
    s: &mut dyn Session,
    chain: Chain,
    archive: &str,
    merkle_root: &str,
    items: &[ItemHash],
    now: f64,
) -> Result<i64> {
    let id = first(
        s,
        "INSERT INTO batches (chain, archive, merkle_root, created) VALUES ($1, $2, $3, $4)
         RETURNING id",
        &[
            Value::Text(chain.as_str()),
            Value::Text(archive),
            Value::Text(merkle_root),
            Value::Real(now),
        ],
        |r| r.integer(0),
    )?
    .ok_or_else(|| StoreError::Backend("a new batch got no id".into()))?;
    for (position, item) in items.iter().enumerate() {
        s.execute(
            "INSERT INTO batch_items (batch_id, position, item_hash) VALUES ($1, $2, $3)",
            &[
                Value::Int(id),
                Value::Int(position as i64),
                Value::from(item),
            ],
        )?;
        drop_unanchored(s, item.as_str())?;
    }
    Ok(id)
}

pub(crate) fn batch_submitted(
    s: &mut dyn Session,
    id: i64,
    tx_hash: &str,
    nonce: u64,
    now: f64,
) -> Result<()> {
    s.execute(
        "UPDATE batches SET tx_hash = $1, nonce = $2, submitted_at = $3 WHERE id = $4",
        &[
            Value::Text(tx_hash),
            Value::Int(stored_int(nonce)?),
            Value::Real(now),
            Value::Int(id),
        ],
    )
    .map(drop)
}

pub(crate) fn abandon_batch(s: &mut dyn Session, id: i64) -> Result<()> {
    let items = hashes(
        s,
        "SELECT item_hash FROM batch_items WHERE batch_id = $1",
        &[Value::Int(id)],
    )?;
    s.execute(
        "DELETE FROM batch_items WHERE batch_id = $1",
        &[Value::Int(id)],
    )?;
    s.execute("DELETE FROM batches WHERE id = $1", &[Value::Int(id)])?;
    for item in &items {
        reconsider(s, item)?;
    }
    Ok(())
}

/// Takes a message out of `unanchored` (its row is found by the message's reception time,
/// so the table needs no index on item hashes). Called before the message row goes.
pub(crate) fn drop_unanchored(s: &mut dyn Session, item: &str) -> Result<()> {
    s.execute(
        "DELETE FROM unanchored WHERE item_hash = $1
         AND reception_time IN (SELECT reception_time FROM messages WHERE item_hash = $1)",
        &[Value::Text(item)],
    )
    .map(drop)
}

/// Brings an item's `unanchored` row up to date after its confirmations or batches changed.
fn reconsider(s: &mut dyn Session, item: &ItemHash) -> Result<()> {
    drop_unanchored(s, item.as_str())?;
    s.execute(
        "INSERT INTO unanchored (reception_time, item_hash)
         SELECT m.reception_time, m.item_hash FROM messages m
         WHERE m.item_hash = $1 AND m.signature IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM confirmations c WHERE c.item_hash = $1)
           AND NOT EXISTS (SELECT 1 FROM batch_items i JOIN batches b ON b.id = i.batch_id
                           WHERE i.item_hash = $1 AND b.anchor_id IS NULL)",
        &[Value::from(item)],
    )
    .map(drop)
}
