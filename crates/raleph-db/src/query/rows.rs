//! Rows to records, written once: each backend reads a row's columns through [`Columns`],
//! in the column orders the query layer's statements select them (`MESSAGE_COLUMNS`,
//! `FORGOTTEN_COLUMNS`, `POST_COLUMNS`, `AGGREGATE_COLUMNS`).

use std::fmt::Display;
use std::str::FromStr;

use crate::{
    AggregateRecord, Envelope, ForgottenRecord, ItemHash, MessageRecord, PostRecord, PostVersion,
};

/// A result row, as its driver reads it.
pub(crate) trait Columns {
    type Error;
    fn text(&self, i: usize) -> Result<String, Self::Error>;
    fn opt_text(&self, i: usize) -> Result<Option<String>, Self::Error>;
    fn real(&self, i: usize) -> Result<f64, Self::Error>;
    fn opt_real(&self, i: usize) -> Result<Option<f64>, Self::Error>;
    fn integer(&self, i: usize) -> Result<i64, Self::Error>;
    fn opt_integer(&self, i: usize) -> Result<Option<i64>, Self::Error>;
    fn boolean(&self, i: usize) -> Result<bool, Self::Error>;

    /// The error for a column whose stored value is not what the store writes there.
    fn corrupt(&self, i: usize, reason: String) -> Self::Error;

    /// A count or a size: never negative.
    fn count(&self, i: usize) -> Result<u64, Self::Error> {
        Ok(self.integer(i)?.max(0) as u64)
    }
}

/// A column of one of the message crate's types (an item hash, a chain, a type), checked as it
/// is read. The store writes only values that parse, so one that does not is corruption,
/// reported as such rather than served.
pub(crate) fn parsed<R, T>(r: &R, i: usize) -> Result<T, R::Error>
where
    R: Columns + ?Sized,
    T: FromStr,
    T::Err: Display,
{
    let text = r.text(i)?;
    text.parse()
        .map_err(|e: T::Err| r.corrupt(i, format!("{text:?}: {e}")))
}

/// [`parsed`], for a column that may be NULL.
pub(crate) fn opt_parsed<R, T>(r: &R, i: usize) -> Result<Option<T>, R::Error>
where
    R: Columns + ?Sized,
    T: FromStr,
    T::Err: Display,
{
    match r.opt_text(i)? {
        None => Ok(None),
        Some(text) => text
            .parse()
            .map(Some)
            .map_err(|e: T::Err| r.corrupt(i, format!("{text:?}: {e}"))),
    }
}

/// A message from `MESSAGE_COLUMNS`, starting at column `at`.
pub(crate) fn message<R: Columns + ?Sized>(r: &R, at: usize) -> Result<MessageRecord, R::Error> {
    Ok(MessageRecord {
        envelope: Envelope {
            item_hash: parsed(r, at)?,
            message_type: parsed(r, at + 1)?,
            chain: parsed(r, at + 2)?,
            sender: r.text(at + 3)?,
            signature: r.opt_text(at + 4)?,
            item_type: parsed(r, at + 5)?,
            item_content: r.opt_text(at + 6)?,
            channel: r.opt_text(at + 8)?,
            time: r.real(at + 9)?,
        },
        content: r.text(at + 7)?,
        size: r.count(at + 10)?,
        reception_time: r.real(at + 11)?,
        status: parsed(r, at + 12)?,
    })
}

/// The columns of an envelope without its content, in the order [`envelope_head`] reads
/// them (a table's own column names).
pub(crate) const ENVELOPE_HEAD_COLUMNS: &str =
    "item_hash, type, chain, sender, signature, item_type, time, channel";

/// An envelope without its content (`item_content` is `None`) from [`ENVELOPE_HEAD_COLUMNS`]
/// at columns 0 to 7: a skeleton's, or a stored message's facts.
pub(crate) fn envelope_head<R: Columns + ?Sized>(r: &R) -> Result<Envelope, R::Error> {
    Ok(Envelope {
        item_hash: parsed(r, 0)?,
        message_type: parsed(r, 1)?,
        chain: parsed(r, 2)?,
        sender: r.text(3)?,
        signature: r.opt_text(4)?,
        item_type: parsed(r, 5)?,
        item_content: None,
        time: r.real(6)?,
        channel: r.opt_text(7)?,
    })
}

/// A skeleton from `FORGOTTEN_COLUMNS`.
pub(crate) fn forgotten<R: Columns + ?Sized>(r: &R) -> Result<ForgottenRecord, R::Error> {
    let forgotten_by = r.text(11)?;
    Ok(ForgottenRecord {
        envelope: envelope_head(r)?,
        owner: r.text(8)?,
        payment_type: r.opt_text(9)?,
        size: r.count(10)?,
        forgotten_by: serde_json::from_str::<Vec<ItemHash>>(&forgotten_by)
            .map_err(|e| r.corrupt(11, format!("{forgotten_by:?}: {e}")))?,
        forgotten_at: r.real(12)?,
        reception_time: r.real(13)?,
    })
}

/// A post from `POST_COLUMNS` (or its summary columns).
pub(crate) fn post<R: Columns + ?Sized>(r: &R) -> Result<PostRecord, R::Error> {
    Ok(PostRecord {
        original_item_hash: parsed(r, 0)?,
        original_type: r.text(1)?,
        owner: r.text(2)?,
        reference: r.opt_text(3)?,
        channel: r.opt_text(4)?,
        created: r.real(5)?,
        last_updated: r.real(6)?,
        amended: r.boolean(7)?,
        latest_content: r.opt_text(8)?,
        original_signature: r.opt_text(9)?,
        latest_item_hash: parsed(r, 10)?,
        // A NULL chain: the query left the version's message unread (`latest_hash_only`).
        latest: match r.opt_text(11)? {
            None => None,
            Some(_) => Some(PostVersion {
                chain: parsed(r, 11)?,
                signature: r.opt_text(12)?,
                item_type: parsed(r, 13)?,
                item_content: r.opt_text(14)?,
                time: r.real(15)?,
                size: r.count(16)?,
            }),
        },
    })
}

/// An aggregate from `AGGREGATE_COLUMNS`.
pub(crate) fn aggregate<R: Columns + ?Sized>(r: &R) -> Result<AggregateRecord, R::Error> {
    Ok(AggregateRecord {
        owner: r.text(0)?,
        key: r.text(1)?,
        content: r.text(2)?,
        created: r.real(3)?,
        last_updated: r.real(4)?,
        original_item_hash: parsed(r, 5)?,
        last_update_item_hash: parsed(r, 6)?,
    })
}
