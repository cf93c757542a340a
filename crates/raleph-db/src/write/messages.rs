//! Message rows the writer moves or drops: a copy's earlier time, and a forgetting undone.

use super::{Session, Value, first};
use crate::Result;
use crate::shared::{StoredTime, parse_tags_column};

/// A stored message's time, type and tags (`None` for the tags when its `tags` column is not
/// readable, and its tag rows must be found by item hash).
pub(crate) fn time_and_tags(s: &mut dyn Session, item_hash: &str) -> Result<Option<StoredTime>> {
    first(
        s,
        "SELECT time, type, tags FROM messages WHERE item_hash = $1",
        &[Value::Text(item_hash)],
        |r| {
            let column = r.opt_text(2)?;
            let tags = parse_tags_column(column.as_deref());
            if tags.is_none() {
                tracing::warn!(%item_hash, "unreadable tags column, scanning message_tags");
            }
            Ok(StoredTime {
                time: r.real(0)?,
                message_type: r.text(1)?,
                tags,
            })
        },
    )
}

/// A second copy of a known message: keep the earliest declared time (the tag rows, keyed by
/// time, move with it, and so do the kept time totals).
pub(crate) fn keep_earliest_time(s: &mut dyn Session, item_hash: &str, time: f64) -> Result<()> {
    let Some(StoredTime {
        time: stored,
        message_type,
        tags,
    }) = time_and_tags(s, item_hash)?
    else {
        return Ok(());
    };
    if time.is_nan() || time >= stored {
        return Ok(());
    }
    s.execute(
        "UPDATE messages SET time = $1 WHERE item_hash = $2",
        &[time.into(), Value::Text(item_hash)],
    )?;
    s.totals().count_time(stored, &message_type, -1);
    s.totals().count_time(time, &message_type, 1);
    s.settle_if_autocommit()?;
    match tags {
        Some(tags) => {
            for tag in &tags {
                s.execute(
                    "UPDATE message_tags SET time = $1 WHERE tag = $2 AND time = $3 AND item_hash = $4",
                    &[time.into(), tag.into(), stored.into(), Value::Text(item_hash)],
                )?;
            }
        }
        None => {
            s.execute(
                "UPDATE message_tags SET time = $1 WHERE item_hash = $2",
                &[time.into(), Value::Text(item_hash)],
            )?;
        }
    }
    Ok(())
}

/// Drops what recording a peer's skeleton recorded (see `WriteStore::unforget`).
pub(crate) fn unforget(s: &mut dyn Session, item_hash: &str) -> Result<()> {
    s.execute(
        "DELETE FROM forgotten_messages WHERE item_hash = $1",
        &[Value::Text(item_hash)],
    )?;
    s.execute(
        "DELETE FROM message_status WHERE item_hash = $1",
        &[Value::Text(item_hash)],
    )
    .map(drop)
}
