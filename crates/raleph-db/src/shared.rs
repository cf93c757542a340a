//! Pure helpers every backend shares, so that they compute derived state the same way.

use serde_json::Value;

use crate::{Result, StoreError};

/// Parses JSON the store wrote itself; a failure means the stored data is corrupt.
pub(crate) fn parse_json(s: &str) -> Result<Value> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("stored JSON: {e}")))
}

/// The merged value of an aggregate, from its elements' contents in content-time order:
/// a shallow, top-level merge where later values replace earlier ones, nested objects are
/// replaced whole, null values are kept, and keys keep the position of their first
/// appearance. Elements that are not objects are skipped.
pub(crate) fn merge_aggregate<'a>(contents: impl IntoIterator<Item = &'a str>) -> Result<String> {
    // Only the top level is merged: nested values are kept as the raw text they were stored
    // as (which this node wrote, compact), never parsed. Parsing a large aggregate into values
    // took ~75 times its size in memory, on every merge of a new element.
    type Fields = indexmap::IndexMap<String, Box<serde_json::value::RawValue>>;
    let mut merged = Fields::new();
    for content in contents {
        let trimmed = content.trim_start();
        if !trimmed.starts_with('{') {
            // Not an object: contributes nothing, as before (it must still be valid JSON).
            parse_json(content)?;
            continue;
        }
        let fields: Fields = serde_json::from_str(content)
            .map_err(|e| StoreError::Corrupt(format!("aggregate content is not JSON: {e}")))?;
        merged.extend(fields);
    }
    serde_json::to_string(&merged)
        .map_err(|e| StoreError::Corrupt(format!("aggregate content: {e}")))
}

/// Whether an element comes after the aggregate's last one in merge order (content time,
/// then item hash, as `rebuild_aggregate` sorts them), so it can be merged into the value.
pub(crate) fn newest(
    element: &crate::NewAggregateElement,
    last_time: f64,
    last_hash: &str,
) -> bool {
    (element.creation_time, element.item_hash.as_str()) > (last_time, last_hash)
}

/// The message count and per-status counts from the `counters` table's `(name, n)` rows
/// (`messages`, `status:<status>`), in status order; zero counts are left out.
pub(crate) fn split_counters(rows: Vec<(String, i64)>) -> (u64, Vec<(crate::MessageStatus, u64)>) {
    let mut messages = 0;
    let mut by_status = Vec::new();
    for (name, n) in rows {
        let n = n.max(0) as u64;
        if name == "messages" {
            messages = n;
        } else if let Some(status) = name.strip_prefix("status:").and_then(|s| s.parse().ok())
            && n > 0
        {
            by_status.push((status, n));
        }
    }
    by_status.sort_by_key(|(status, _): &(crate::MessageStatus, u64)| status.as_str());
    (messages, by_status)
}

/// What the writer reads of a stored message before it moves or forgets it: the kept totals
/// it counts in by time and type, and its tags (`None` when its `tags` column is unreadable
/// and the tag rows must be found by item hash).
pub(crate) struct StoredTime {
    pub time: f64,
    pub message_type: String,
    pub tags: Option<Vec<String>>,
}

/// A message's tags without repeats, in first-seen order.
pub(crate) fn distinct_tags(tags: &[String]) -> Vec<&str> {
    let mut seen: Vec<&str> = Vec::with_capacity(tags.len());
    for tag in tags {
        if !seen.contains(&tag.as_str()) {
            seen.push(tag);
        }
    }
    seen
}

/// The `messages.tags` column: the message's distinct tags as a JSON array, `None` for none.
/// Forgetting a message or moving its time reaches its `message_tags` rows by key through it.
pub(crate) fn tags_column(tags: &[&str]) -> Option<String> {
    (!tags.is_empty()).then(|| Value::from(tags.to_vec()).to_string())
}

/// The tags of a `messages.tags` column; `None` when it does not hold a list of strings.
pub(crate) fn parse_tags_column(column: Option<&str>) -> Option<Vec<String>> {
    match column {
        None => Some(Vec::new()),
        Some(text) => serde_json::from_str(text).ok(),
    }
}

/// Whether a message list with tags reads the tags' `(tag, time, item_hash)` ranges first,
/// rather than the rows of another filter probed for their tags. A tag's range is in list
/// order, so a page reads about as many entries as it returns; a filter that usually selects
/// fewer rows than a tag (hashes, addresses, owners, refs, content hashes and keys, channels)
/// goes first instead, as do statuses other than `processed` (their own small index).
pub(crate) fn tags_lead(q: &crate::MessageQuery) -> bool {
    !q.tags.is_empty()
        && q.hashes.is_empty()
        && q.addresses.is_empty()
        && q.owners.is_empty()
        && q.refs.is_empty()
        && q.content_hashes.is_empty()
        && q.content_keys.is_empty()
        && q.channels.is_empty()
        && counts_processed(q)
}

/// Whether a message query's statuses include `processed` (no status filter includes all).
pub(crate) fn counts_processed(q: &crate::MessageQuery) -> bool {
    q.statuses.is_empty() || q.statuses.contains(&crate::MessageStatus::Processed)
}

/// One sync page: the first `limit` entries, by sequence number, of two logs that each
/// returned their own first `limit` entries after the same point.
/// The last sequence number a sync page reads its messages up to, from the messages' sizes in
/// sequence order: `None` when all of them fit in `max_bytes`; otherwise the last that fits
/// (the first one always does).
pub(crate) fn sync_page_end(sizes: &[(u64, u64)], max_bytes: usize) -> Option<u64> {
    let mut bytes = 0u64;
    for (i, (_, size)) in sizes.iter().enumerate() {
        bytes = bytes.saturating_add(*size);
        if i > 0 && bytes > max_bytes as u64 {
            return Some(sizes[i - 1].0);
        }
    }
    None
}

pub(crate) fn sync_page(
    epoch: String,
    mut messages: Vec<(u64, crate::MessageRecord)>,
    mut forgotten: Vec<(u64, crate::ForgottenRecord)>,
    limit: usize,
    cut_short: bool,
) -> crate::SyncPage {
    let mut seqs: Vec<u64> = messages
        .iter()
        .map(|(s, _)| *s)
        .chain(forgotten.iter().map(|(s, _)| *s))
        .collect();
    seqs.sort_unstable();
    if seqs.len() > limit {
        let last = seqs[limit.max(1) - 1];
        messages.retain(|(s, _)| *s <= last);
        forgotten.retain(|(s, _)| *s <= last);
    }
    crate::SyncPage {
        epoch,
        messages,
        forgotten,
        cut_short,
    }
}

/// The journal position kept in `node_meta` (absent before the first journaled message).
pub(crate) fn parse_position(value: Option<String>) -> Result<u64> {
    value.map_or(Ok(0), |v| {
        v.parse()
            .map_err(|_| StoreError::Corrupt(format!("journal position {v:?}")))
    })
}

/// Puts posts in list order: by last update (`order`), ties by original item hash, ascending,
/// as the SQL `ORDER BY last_updated {order}, item_hash ASC` sorts them (times compare as
/// numbers, -0.0 equal to 0.0; hashes bytewise, SQLite's `BINARY` and PostgreSQL's `"C"`).
pub(crate) fn sort_posts(posts: &mut [crate::PostRecord], order: crate::SortOrder) {
    posts.sort_by(|a, b| {
        let by_time = a
            .last_updated
            .partial_cmp(&b.last_updated)
            .unwrap_or(std::cmp::Ordering::Equal);
        let by_time = match order {
            crate::SortOrder::Ascending => by_time,
            crate::SortOrder::Descending => by_time.reverse(),
        };
        by_time.then_with(|| a.original_item_hash.cmp(&b.original_item_hash))
    });
}

/// Counts the bytes of message rows read against a bound (`MessageQuery::max_bytes`, 0 for
/// none), so that a read stops before it holds more.
pub(crate) struct ByteBudget {
    limit: usize,
    used: usize,
    pub exceeded: bool,
}

impl ByteBudget {
    pub(crate) fn new(limit: usize) -> Self {
        ByteBudget {
            limit,
            used: 0,
            exceeded: false,
        }
    }

    /// Counts a row of `bytes`; false once the rows read so far pass the bound.
    pub(crate) fn fits(&mut self, bytes: usize) -> bool {
        self.used = self.used.saturating_add(bytes);
        self.exceeded = self.limit > 0 && self.used > self.limit;
        !self.exceeded
    }

    pub(crate) fn error(&self) -> crate::StoreError {
        crate::StoreError::TooLarge { limit: self.limit }
    }
}

/// The bytes of a message row that count against a list's bound: its raw and parsed content.
pub(crate) fn message_bytes(message: &crate::MessageRecord) -> usize {
    message
        .envelope
        .item_content
        .as_ref()
        .map_or(0, String::len)
        + message.content.len()
}

/// An item hash the store wrote in a text column, read back: one that does not parse is
/// corruption.
pub(crate) fn stored_hash(text: &str) -> Result<crate::ItemHash> {
    crate::ItemHash::parse(text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The `forgotten_by` column: the FORGET messages' hashes as a JSON array.
pub(crate) fn forgotten_by_column(hashes: &[crate::ItemHash]) -> String {
    Value::from(hashes.iter().map(|h| h.as_str()).collect::<Vec<_>>()).to_string()
}

/// The bytes of an aggregate row that count against a list's bound: its value.
pub(crate) fn aggregate_bytes(aggregate: &crate::AggregateRecord) -> usize {
    aggregate.content.len()
}

/// The same for a post row: its latest content and its latest version's raw content.
pub(crate) fn post_bytes(post: &crate::PostRecord) -> usize {
    post.latest_content.as_ref().map_or(0, String::len)
        + post
            .latest
            .as_ref()
            .and_then(|l| l.item_content.as_ref())
            .map_or(0, String::len)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merge_is_shallow_ordered_and_keeps_null() {
        let a = json!({"a": {"x": 1}, "b": 1, "c": 1}).to_string();
        let b = json!({"a": {"y": 2}, "b": null}).to_string();
        let merged = merge_aggregate([a.as_str(), b.as_str(), "[1]"]).expect("merge");
        assert_eq!(merged, r#"{"a":{"y":2},"b":null,"c":1}"#);
        assert!(merge_aggregate(["{"]).is_err());
    }
}
