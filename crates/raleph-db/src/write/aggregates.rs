//! AGGREGATE: elements, the merged value of each `(owner, key)`, the kept total of
//! aggregates per key, and the grants of `security` aggregates (`grants.rs`).

use super::{Session, Value, first, hashes, rows};
use crate::shared::{merge_aggregate, newest, parse_json};
use crate::{ItemHash, NewAggregateElement, Result};

/// Inserts an element and brings its aggregate up to date (see `WriteStore`).
pub(crate) fn add_element(s: &mut dyn Session, e: &NewAggregateElement) -> Result<()> {
    s.execute(
        "INSERT INTO aggregate_elements (item_hash, owner, key, content, creation_time)
         VALUES ($1, $2, $3, $4, $5)",
        &[
            (&e.item_hash).into(),
            (&e.owner).into(),
            (&e.key).into(),
            (&e.content).into(),
            e.creation_time.into(),
        ],
    )?;
    let current = first(
        s,
        "SELECT content, last_update_time, last_revision_hash FROM aggregates
         WHERE owner = $1 AND key = $2",
        &[(&e.owner).into(), (&e.key).into()],
        |r| Ok((r.text(0)?, r.real(1)?, r.text(2)?)),
    )?;
    match current {
        Some((value, time, hash)) if newest(e, time, &hash) => {
            let merged = merge_aggregate([value.as_str(), e.content.as_str()])?;
            s.execute(
                "UPDATE aggregates SET content = $1, last_update_time = $2, last_revision_hash = $3
                 WHERE owner = $4 AND key = $5",
                &[
                    (&merged).into(),
                    e.creation_time.into(),
                    (&e.item_hash).into(),
                    (&e.owner).into(),
                    (&e.key).into(),
                ],
            )?;
            changed(s, &e.owner, &e.key, Some(&merged))
        }
        // An aggregate row exists while it has elements: this is the first one.
        None => {
            s.execute(
                "INSERT INTO aggregates (owner, key, content, creation_time, last_update_time,
                     original_item_hash, last_revision_hash)
                 VALUES ($1, $2, $3, $4, $4, $5, $5)",
                &[
                    (&e.owner).into(),
                    (&e.key).into(),
                    (&e.content).into(),
                    e.creation_time.into(),
                    (&e.item_hash).into(),
                ],
            )?;
            s.totals().count("aggregate_key", &e.key, 1);
            s.settle_if_autocommit()?;
            changed(s, &e.owner, &e.key, Some(&e.content))
        }
        Some(_) => rebuild(s, &e.owner, &e.key),
    }
}

/// Recomputes the merged value of `(owner, key)` from its elements; deletes it if none remain.
pub(crate) fn rebuild(s: &mut dyn Session, owner: &str, key: &str) -> Result<()> {
    let owner_key = [Value::Text(owner), Value::Text(key)];
    let elements = rows(
        s,
        "SELECT item_hash, content, creation_time FROM aggregate_elements
         WHERE owner = $1 AND key = $2 ORDER BY creation_time, item_hash",
        &owner_key,
        |r| Ok((r.text(0)?, r.text(1)?, r.real(2)?)),
    )?;
    let (Some(first_element), Some(last)) = (elements.first(), elements.last()) else {
        let removed = s.execute(
            "DELETE FROM aggregates WHERE owner = $1 AND key = $2",
            &owner_key,
        )?;
        s.totals().count("aggregate_key", key, -(removed as i64));
        s.settle_if_autocommit()?;
        return changed(s, owner, key, None);
    };
    // A shallow, top-level merge in content-time order (shared with every backend).
    let merged = merge_aggregate(elements.iter().map(|e| e.1.as_str()))?;
    let held = first(
        s,
        "SELECT 1 FROM aggregates WHERE owner = $1 AND key = $2",
        &owner_key,
        |_| Ok(()),
    )?
    .is_some();
    if !held {
        s.totals().count("aggregate_key", key, 1);
        s.settle_if_autocommit()?;
    }
    s.execute(
        "INSERT INTO aggregates (owner, key, content, creation_time, last_update_time,
             original_item_hash, last_revision_hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (owner, key) DO UPDATE SET content = excluded.content,
             creation_time = excluded.creation_time, last_update_time = excluded.last_update_time,
             original_item_hash = excluded.original_item_hash,
             last_revision_hash = excluded.last_revision_hash",
        &[
            Value::Text(owner),
            Value::Text(key),
            (&merged).into(),
            first_element.2.into(),
            last.2.into(),
            (&first_element.0).into(),
            (&last.0).into(),
        ],
    )?;
    changed(s, owner, key, Some(&merged))
}

/// The value of `(owner, key)` is now `value` (`None`: gone): what is kept of it elsewhere
/// follows.
fn changed(s: &mut dyn Session, owner: &str, key: &str, value: Option<&str>) -> Result<()> {
    match key {
        super::grants::SECURITY => super::grants::refresh(s, owner, value),
        _ => Ok(()),
    }
}

/// The merged value of `(owner, key)`, parsed.
pub(crate) fn value(
    s: &mut dyn Session,
    owner: &str,
    key: &str,
) -> Result<Option<serde_json::Value>> {
    first(
        s,
        "SELECT content FROM aggregates WHERE owner = $1 AND key = $2",
        &[Value::Text(owner), Value::Text(key)],
        |r| r.text(0),
    )?
    .map(|content| parse_json(&content))
    .transpose()
}

/// The size in bytes of the merged value (0 without one), without reading it.
pub(crate) fn size(s: &mut dyn Session, owner: &str, key: &str) -> Result<u64> {
    // `octet_length` counts the stored UTF-8 bytes on both backends (SQLite has it since
    // 3.43); PostgreSQL gives it as a 32-bit integer, hence the cast.
    let size = first(
        s,
        "SELECT CAST(octet_length(content) AS BIGINT) FROM aggregates WHERE owner = $1 AND key = $2",
        &[Value::Text(owner), Value::Text(key)],
        |r| r.count(0),
    )?;
    Ok(size.unwrap_or(0))
}

/// The item hashes of an aggregate's elements, in merge order.
pub(crate) fn element_hashes(s: &mut dyn Session, owner: &str, key: &str) -> Result<Vec<ItemHash>> {
    hashes(
        s,
        "SELECT item_hash FROM aggregate_elements WHERE owner = $1 AND key = $2
         ORDER BY creation_time, item_hash",
        &[Value::Text(owner), Value::Text(key)],
    )
}
