//! Forgetting, written once: a message forgotten here (its skeleton kept, what it derived
//! undone, the files it held released), and a skeleton a peer synced.

use super::{Session, Value, first, strings};
use crate::shared::{forgotten_by_column, stored_hash};
use crate::totals::CountedRow;
use crate::{ForgottenRecord, MessageType, Result};

/// Deletes the message `item_hash` and what it derived, keeps its skeleton (forgotten by
/// `forgotten_by` at `now`), and sets its status forgotten. Files it held that no pin holds
/// any more get a grace pin until `grace_until`.
pub(crate) fn forget(
    s: &mut dyn Session,
    item_hash: &str,
    forgotten_by: &str,
    now: f64,
    grace_until: f64,
) -> Result<()> {
    let by = serde_json::Value::from(vec![forgotten_by]).to_string();
    let seq = s.next_seq()?;
    s.execute(
        "INSERT INTO forgotten_messages (item_hash, type, chain, sender, signature, item_type, time, channel,
             owner, payment_type, size, forgotten_by, forgotten_at, reception_time, seq)
         SELECT item_hash, type, chain, sender, signature, item_type, time, channel, owner, payment_type,
             size, $1, $2, reception_time, $3 FROM messages WHERE item_hash = $4",
        &[
            Value::Text(&by),
            Value::Real(now),
            Value::Int(seq),
            Value::Text(item_hash),
        ],
    )?;
    let facts = super::records::message_facts(s, item_hash)?;
    // Files this message kept alive: its own content when not inline, its STORE file.
    let mut released = strings(
        s,
        "SELECT item_hash FROM messages WHERE item_hash = $1 AND item_type != 'inline'",
        &[Value::Text(item_hash)],
    )?;
    released.extend(super::files::pin(s, item_hash)?.map(|p| p.file_hash));
    let stored_time = remove_tags(s, item_hash)?;
    // Its confirmations stay (kept by item hash, whatever the status); it is no longer for a
    // packer to anchor.
    super::anchors::drop_unanchored(s, item_hash)?;
    let removed = s.execute(
        "DELETE FROM messages WHERE item_hash = $1",
        &[Value::Text(item_hash)],
    )?;
    s.count_messages(-(removed as i64));
    if removed > 0
        && let (Some(time), Some(f)) = (stored_time, &facts)
    {
        s.totals().count_message(CountedRow::of_stored(f, time), -1);
    }
    s.settle_if_autocommit()?;
    match facts.as_ref().map(|f| f.envelope.message_type) {
        Some(MessageType::Post) => forget_post(s, item_hash)?,
        Some(MessageType::Aggregate) => forget_element(s, item_hash)?,
        Some(MessageType::Store) => {
            let pin = super::files::pin(s, item_hash)?;
            s.execute(
                "DELETE FROM file_pins WHERE message_hash = $1",
                &[Value::Text(item_hash)],
            )?;
            if let Some(pin) = pin {
                super::files::refresh_tag(s, &pin.tag)?;
            }
        }
        Some(MessageType::Program | MessageType::Instance) => {
            s.execute(
                "DELETE FROM vms WHERE item_hash = $1",
                &[Value::Text(item_hash)],
            )?;
            s.execute(
                "DELETE FROM vm_volumes WHERE vm_hash = $1",
                &[Value::Text(item_hash)],
            )?;
        }
        Some(MessageType::Forget) | None => {}
    }
    for file in released {
        super::files::release(s, &file, grace_until)?;
    }
    // A processed message may have had no status row (SQLite keeps `processed` as the
    // message's row): it gets one now.
    s.execute(
        "INSERT INTO message_status (item_hash, status, reception_time)
         SELECT item_hash, 'forgotten', reception_time FROM forgotten_messages WHERE item_hash = $1
         ON CONFLICT (item_hash) DO UPDATE SET status = 'forgotten'",
        &[Value::Text(item_hash)],
    )
    .map(drop)
}

/// Deletes a message's tag rows, by key (read from the row that lists them, before it goes),
/// and counts them out of the kept totals. Returns the message's stored time.
fn remove_tags(s: &mut dyn Session, item_hash: &str) -> Result<Option<f64>> {
    let stored = super::messages::time_and_tags(s, item_hash)?;
    let stored_time = stored.as_ref().map(|stored| stored.time);
    let removed_tags = match stored.map(|stored| (stored.time, stored.tags)) {
        Some((time, Some(tags))) => {
            let mut removed = Vec::new();
            for tag in tags {
                let gone = s.execute(
                    "DELETE FROM message_tags WHERE tag = $1 AND time = $2 AND item_hash = $3",
                    &[Value::Text(&tag), Value::Real(time), Value::Text(item_hash)],
                )?;
                if gone > 0 {
                    removed.push(tag);
                }
            }
            removed
        }
        // A row from before tags were listed on it: its tag rows, found by hash.
        Some((_, None)) => strings(
            s,
            "DELETE FROM message_tags WHERE item_hash = $1 RETURNING tag",
            &[Value::Text(item_hash)],
        )?,
        None => Vec::new(),
    };
    for tag in &removed_tags {
        s.totals().count("tag", tag, -1);
    }
    Ok(stored_time)
}

/// A forgotten post: an amend points its original at the amend now latest; an original
/// leaves the kept post totals.
fn forget_post(s: &mut dyn Session, item_hash: &str) -> Result<()> {
    let removed = first(
        s,
        "DELETE FROM posts WHERE item_hash = $1 RETURNING type, amends, channel",
        &[Value::Text(item_hash)],
        |r| Ok((r.text(0)?, r.opt_text(1)?, r.opt_text(2)?)),
    )?;
    match removed {
        Some((_, Some(original), _)) => {
            super::posts::refresh_latest_amend(s, stored_hash(&original)?.as_str())
        }
        Some((post_type, None, channel)) => {
            s.totals().count("post_type", &post_type, -1);
            if let Some(channel) = channel {
                s.totals().count("post_channel", &channel, -1);
            }
            s.settle_if_autocommit()
        }
        None => Ok(()),
    }
}

/// A forgotten aggregate element: its aggregate is rebuilt from the elements left.
fn forget_element(s: &mut dyn Session, item_hash: &str) -> Result<()> {
    let element = first(
        s,
        "SELECT owner, key FROM aggregate_elements WHERE item_hash = $1",
        &[Value::Text(item_hash)],
        |r| Ok((r.text(0)?, r.text(1)?)),
    )?;
    s.execute(
        "DELETE FROM aggregate_elements WHERE item_hash = $1",
        &[Value::Text(item_hash)],
    )?;
    match element {
        Some((owner, key)) => super::aggregates::rebuild(s, &owner, &key),
        None => Ok(()),
    }
}

/// Records the skeleton of a message this store does not hold (the caller checked that), as
/// forgotten: the item hash becomes `forgotten`, so the message is refused if it ever comes.
/// The status row is the caller's (`set_status` differs per backend).
pub(crate) fn insert_skeleton(s: &mut dyn Session, k: &ForgottenRecord) -> Result<()> {
    let e = &k.envelope;
    let seq = s.next_seq()?;
    let by = forgotten_by_column(&k.forgotten_by);
    s.execute(
        "INSERT INTO forgotten_messages (item_hash, type, chain, sender, signature, item_type, time, channel,
             owner, payment_type, size, forgotten_by, forgotten_at, reception_time, seq)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
         ON CONFLICT (item_hash) DO NOTHING",
        &[
            Value::Text(e.item_hash.as_str()),
            Value::Text(e.message_type.as_str()),
            Value::Text(e.chain.as_str()),
            Value::Text(&e.sender),
            Value::from(&e.signature),
            Value::Text(e.item_type.as_str()),
            Value::Real(e.time),
            Value::from(&e.channel),
            Value::Text(&k.owner),
            Value::from(&k.payment_type),
            Value::Int(k.size as i64),
            Value::Text(&by),
            Value::Real(k.forgotten_at),
            Value::Real(k.reception_time),
            Value::Int(seq),
        ],
    )
    .map(drop)
}
