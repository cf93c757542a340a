//! Rows to records, written once: each backend reads a row's columns through [`Columns`],
//! in the column orders the query layer's statements select them (`MESSAGE_COLUMNS`,
//! `FORGOTTEN_COLUMNS`, `POST_COLUMNS`, `AGGREGATE_COLUMNS`).

use crate::{
    AggregateRecord, ForgottenRecord, MessageRecord, MessageStatus, PostRecord, PostVersion,
};

/// A result row, as its driver reads it.
pub(crate) trait Columns {
    type Error;
    fn text(&self, i: usize) -> Result<String, Self::Error>;
    fn opt_text(&self, i: usize) -> Result<Option<String>, Self::Error>;
    fn real(&self, i: usize) -> Result<f64, Self::Error>;
    fn opt_real(&self, i: usize) -> Result<Option<f64>, Self::Error>;
    fn integer(&self, i: usize) -> Result<i64, Self::Error>;
    fn boolean(&self, i: usize) -> Result<bool, Self::Error>;

    /// A count or a size: never negative.
    fn count(&self, i: usize) -> Result<u64, Self::Error> {
        Ok(self.integer(i)?.max(0) as u64)
    }
}

/// A message from `MESSAGE_COLUMNS`, starting at column `at`.
pub(crate) fn message<R: Columns>(r: &R, at: usize) -> Result<MessageRecord, R::Error> {
    Ok(MessageRecord {
        item_hash: r.text(at)?,
        message_type: r.text(at + 1)?,
        chain: r.text(at + 2)?,
        sender: r.text(at + 3)?,
        signature: r.opt_text(at + 4)?,
        item_type: r.text(at + 5)?,
        item_content: r.opt_text(at + 6)?,
        content: r.text(at + 7)?,
        channel: r.opt_text(at + 8)?,
        time: r.real(at + 9)?,
        size: r.count(at + 10)?,
        reception_time: r.real(at + 11)?,
        status: r.text(at + 12)?.parse().unwrap_or(MessageStatus::Processed),
    })
}

/// A skeleton from `FORGOTTEN_COLUMNS`.
pub(crate) fn forgotten<R: Columns>(r: &R) -> Result<ForgottenRecord, R::Error> {
    Ok(ForgottenRecord {
        item_hash: r.text(0)?,
        message_type: r.text(1)?,
        chain: r.text(2)?,
        sender: r.text(3)?,
        signature: r.opt_text(4)?,
        item_type: r.text(5)?,
        time: r.real(6)?,
        channel: r.opt_text(7)?,
        owner: r.text(8)?,
        payment_type: r.opt_text(9)?,
        size: r.count(10)?,
        forgotten_by: serde_json::from_str(&r.text(11)?).unwrap_or_default(),
        forgotten_at: r.real(12)?,
        reception_time: r.real(13)?,
    })
}

/// A post from `POST_COLUMNS` (or its summary columns).
pub(crate) fn post<R: Columns>(r: &R) -> Result<PostRecord, R::Error> {
    Ok(PostRecord {
        original_item_hash: r.text(0)?,
        original_type: r.text(1)?,
        owner: r.text(2)?,
        reference: r.opt_text(3)?,
        channel: r.opt_text(4)?,
        created: r.real(5)?,
        last_updated: r.real(6)?,
        amended: r.boolean(7)?,
        latest_content: r.opt_text(8)?,
        original_signature: r.opt_text(9)?,
        latest: PostVersion {
            item_hash: r.text(10)?,
            chain: r.text(11)?,
            signature: r.opt_text(12)?,
            item_type: r.text(13)?,
            item_content: r.opt_text(14)?,
            time: r.real(15)?,
            size: r.count(16)?,
        },
    })
}

/// An aggregate from `AGGREGATE_COLUMNS`.
pub(crate) fn aggregate<R: Columns>(r: &R) -> Result<AggregateRecord, R::Error> {
    Ok(AggregateRecord {
        owner: r.text(0)?,
        key: r.text(1)?,
        content: r.text(2)?,
        created: r.real(3)?,
        last_updated: r.real(4)?,
        original_item_hash: r.text(5)?,
        last_update_item_hash: r.text(6)?,
    })
}
