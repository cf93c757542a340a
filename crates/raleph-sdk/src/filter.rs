//! Typed filters for message and post lists, written as the reference's query parameters
//! (`GET /api/v0/messages.json`, `/api/v1/posts.json`, the messages websocket). Lists are
//! comma-joined, as the reference reads them, so a value holding a comma cannot be asked for.

use raleph_message::{Chain, MessageType};

/// What a list is sorted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortBy {
    /// The message's own `time` (the default).
    #[default]
    Time,
    /// Its first confirmation on a chain (`tx-time`).
    TxTime,
}

/// Which end of the list comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortOrder {
    /// Newest first (the default).
    #[default]
    Descending,
    /// Oldest first.
    Ascending,
}

/// A message filter: every field left empty (or `None`) filters nothing; set fields combine
/// with AND, the values within one field with OR.
///
/// ```
/// use raleph_sdk::{MessageFilter, MessageType};
///
/// let filter = MessageFilter {
///     channels: vec!["TEST".into()],
///     types: vec![MessageType::Post, MessageType::Aggregate],
///     pagination: Some(5),
///     ..Default::default()
/// };
/// assert_eq!(filter.query_string(), "msgTypes=POST%2CAGGREGATE&channels=TEST&pagination=5");
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MessageFilter {
    /// Item hashes.
    pub hashes: Vec<String>,
    /// Senders.
    pub addresses: Vec<String>,
    /// Owners (`content.address`), which differ from the sender for delegated messages.
    pub owners: Vec<String>,
    /// Message types.
    pub types: Vec<MessageType>,
    /// Channels.
    pub channels: Vec<String>,
    /// Chains of the senders.
    pub chains: Vec<Chain>,
    /// Tags (of a POST's or AGGREGATE's `content.tags`, a STORE's `tags`, a VM's
    /// `metadata.tags`).
    pub tags: Vec<String>,
    /// `content.ref` values.
    pub refs: Vec<String>,
    /// STORE file hashes (`content.item_hash`).
    pub content_hashes: Vec<String>,
    /// AGGREGATE keys.
    pub content_keys: Vec<String>,
    /// POST types (`content.type`).
    pub post_types: Vec<String>,
    /// Statuses (`processed`, `pending`, `rejected`, `forgotten`, `removing`, `removed`);
    /// the node's default is processed and removing.
    pub statuses: Vec<String>,
    /// Messages at or after this time (seconds since the epoch).
    pub start_date: Option<f64>,
    /// Messages before this time.
    pub end_date: Option<f64>,
    /// What the list is sorted on.
    pub sort_by: Option<SortBy>,
    /// Which end comes first.
    pub sort_order: Option<SortOrder>,
    /// Page size (the node's default is 20; 0 for no limit).
    pub pagination: Option<u32>,
    /// Page number, from 1.
    pub page: Option<u32>,
}

impl MessageFilter {
    /// The query parameters, in a fixed order, values not yet percent-encoded.
    pub fn to_query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        list(&mut q, "hashes", &self.hashes);
        list(&mut q, "addresses", &self.addresses);
        list(&mut q, "owners", &self.owners);
        let types: Vec<&str> = self.types.iter().map(|t| t.as_str()).collect();
        list(&mut q, "msgTypes", &types);
        list(&mut q, "channels", &self.channels);
        let chains: Vec<&str> = self.chains.iter().map(|c| c.as_str()).collect();
        list(&mut q, "chains", &chains);
        list(&mut q, "tags", &self.tags);
        list(&mut q, "refs", &self.refs);
        list(&mut q, "contentHashes", &self.content_hashes);
        list(&mut q, "contentKeys", &self.content_keys);
        list(&mut q, "contentTypes", &self.post_types);
        list(&mut q, "msgStatuses", &self.statuses);
        dates(&mut q, self.start_date, self.end_date);
        sort(&mut q, self.sort_by, self.sort_order);
        pages(&mut q, self.pagination, self.page);
        q
    }

    /// The query string (`a=b&c=d`, percent-encoded).
    pub fn query_string(&self) -> String {
        encode_query(&self.to_query())
    }
}

/// A filter of posts (`/api/v1/posts.json`): only originals are listed, each with its latest
/// amend's content.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PostFilter {
    /// Original item hashes.
    pub hashes: Vec<String>,
    /// Owners.
    pub addresses: Vec<String>,
    /// POST types of the originals.
    pub types: Vec<String>,
    /// `ref` values.
    pub refs: Vec<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Channels.
    pub channels: Vec<String>,
    /// Last updated at or after this time.
    pub start_date: Option<f64>,
    /// Last updated before this time.
    pub end_date: Option<f64>,
    /// What the list is sorted on.
    pub sort_by: Option<SortBy>,
    /// Which end comes first.
    pub sort_order: Option<SortOrder>,
    /// Page size.
    pub pagination: Option<u32>,
    /// Page number, from 1.
    pub page: Option<u32>,
}

impl PostFilter {
    /// The query parameters, values not yet percent-encoded.
    pub fn to_query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        list(&mut q, "hashes", &self.hashes);
        list(&mut q, "addresses", &self.addresses);
        list(&mut q, "types", &self.types);
        list(&mut q, "refs", &self.refs);
        list(&mut q, "tags", &self.tags);
        list(&mut q, "channels", &self.channels);
        dates(&mut q, self.start_date, self.end_date);
        sort(&mut q, self.sort_by, self.sort_order);
        pages(&mut q, self.pagination, self.page);
        q
    }

    /// The query string, percent-encoded.
    pub fn query_string(&self) -> String {
        encode_query(&self.to_query())
    }
}

fn list<S: AsRef<str>>(q: &mut Vec<(&'static str, String)>, name: &'static str, values: &[S]) {
    if !values.is_empty() {
        let joined: Vec<&str> = values.iter().map(AsRef::as_ref).collect();
        q.push((name, joined.join(",")));
    }
}

fn dates(q: &mut Vec<(&'static str, String)>, start: Option<f64>, end: Option<f64>) {
    if let Some(start) = start {
        q.push(("startDate", start.to_string()));
    }
    if let Some(end) = end {
        q.push(("endDate", end.to_string()));
    }
}

fn sort(q: &mut Vec<(&'static str, String)>, by: Option<SortBy>, order: Option<SortOrder>) {
    if let Some(by) = by {
        let by = match by {
            SortBy::Time => "time",
            SortBy::TxTime => "tx-time",
        };
        q.push(("sortBy", by.into()));
    }
    if let Some(order) = order {
        let order = match order {
            SortOrder::Descending => "-1",
            SortOrder::Ascending => "1",
        };
        q.push(("sortOrder", order.into()));
    }
}

fn pages(q: &mut Vec<(&'static str, String)>, pagination: Option<u32>, page: Option<u32>) {
    if let Some(pagination) = pagination {
        q.push(("pagination", pagination.to_string()));
    }
    if let Some(page) = page {
        q.push(("page", page.to_string()));
    }
}

/// `name=value&…`, each value percent-encoded (everything but unreserved characters).
pub(crate) fn encode_query(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .map(|(name, value)| format!("{name}={}", encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes all but RFC 3986's unreserved characters.
pub(crate) fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// The inverse of `encode_query`, written independently: what a server reads.
    fn decode_query(query: &str) -> HashMap<String, String> {
        let mut out = HashMap::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap();
            let mut bytes = Vec::new();
            let raw = value.as_bytes();
            let mut i = 0;
            while i < raw.len() {
                if raw[i] == b'%' {
                    let hex = std::str::from_utf8(&raw[i + 1..i + 3]).unwrap();
                    bytes.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 3;
                } else {
                    bytes.push(raw[i]);
                    i += 1;
                }
            }
            let previous = out.insert(name.to_owned(), String::from_utf8(bytes).unwrap());
            assert!(previous.is_none(), "{name} twice");
        }
        out
    }

    fn split(map: &HashMap<String, String>, name: &str) -> Vec<String> {
        map.get(name)
            .map(|v| v.split(',').map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// Values a list can carry: no commas, not empty.
    fn values() -> impl Strategy<Value = Vec<String>> {
        prop::collection::vec("[^,]{1,12}", 0..4)
    }

    fn message_filter() -> impl Strategy<Value = MessageFilter> {
        (
            (values(), values(), values(), values(), values(), values()),
            (values(), values(), values(), values()),
            prop::collection::vec(prop::sample::select(MessageType::ALL.to_vec()), 0..3),
            prop::collection::vec(prop::sample::select(Chain::ALL.to_vec()), 0..3),
            (
                prop::option::of(0u32..1_000_000_000),
                prop::option::of(0u32..1_000_000_000),
                prop::option::of(prop::bool::ANY),
                prop::option::of(prop::bool::ANY),
                prop::option::of(0u32..500),
                prop::option::of(1u32..100),
            ),
        )
            .prop_map(
                |(
                    (hashes, addresses, owners, channels, tags, refs),
                    (content_hashes, content_keys, post_types, statuses),
                    types,
                    chains,
                    (start, end, by, order, pagination, page),
                )| MessageFilter {
                    hashes,
                    addresses,
                    owners,
                    types,
                    channels,
                    chains,
                    tags,
                    refs,
                    content_hashes,
                    content_keys,
                    post_types,
                    statuses,
                    start_date: start.map(|s| f64::from(s) / 4.0),
                    end_date: end.map(f64::from),
                    sort_by: by.map(|b| if b { SortBy::TxTime } else { SortBy::Time }),
                    sort_order: order.map(|o| {
                        if o {
                            SortOrder::Ascending
                        } else {
                            SortOrder::Descending
                        }
                    }),
                    pagination,
                    page,
                },
            )
    }

    proptest! {
        /// Whatever the filter, the server reads back exactly its values, under the
        /// reference's parameter names.
        #[test]
        fn filters_read_back(filter in message_filter()) {
            let q = decode_query(&filter.query_string());
            prop_assert_eq!(split(&q, "hashes"), filter.hashes.clone());
            prop_assert_eq!(split(&q, "addresses"), filter.addresses.clone());
            prop_assert_eq!(split(&q, "owners"), filter.owners.clone());
            prop_assert_eq!(split(&q, "channels"), filter.channels.clone());
            prop_assert_eq!(split(&q, "tags"), filter.tags.clone());
            prop_assert_eq!(split(&q, "refs"), filter.refs.clone());
            prop_assert_eq!(split(&q, "contentHashes"), filter.content_hashes.clone());
            prop_assert_eq!(split(&q, "contentKeys"), filter.content_keys.clone());
            prop_assert_eq!(split(&q, "contentTypes"), filter.post_types.clone());
            prop_assert_eq!(split(&q, "msgStatuses"), filter.statuses.clone());
            let types: Vec<MessageType> = split(&q, "msgTypes").iter().map(|t| t.parse().unwrap()).collect();
            prop_assert_eq!(types, filter.types.clone());
            let chains: Vec<Chain> = split(&q, "chains").iter().map(|c| c.parse().unwrap()).collect();
            prop_assert_eq!(chains, filter.chains.clone());
            let start = q.get("startDate").map(|s| s.parse::<f64>().unwrap());
            prop_assert_eq!(start, filter.start_date);
            let end = q.get("endDate").map(|s| s.parse::<f64>().unwrap());
            prop_assert_eq!(end, filter.end_date);
            let by = q.get("sortBy").map(|s| s.as_str());
            prop_assert_eq!(by, filter.sort_by.map(|b| if b == SortBy::TxTime { "tx-time" } else { "time" }));
            let order = q.get("sortOrder").map(|s| s.as_str());
            prop_assert_eq!(order, filter.sort_order.map(|o| if o == SortOrder::Ascending { "1" } else { "-1" }));
            prop_assert_eq!(q.get("pagination").map(|p| p.parse::<u32>().unwrap()), filter.pagination);
            prop_assert_eq!(q.get("page").map(|p| p.parse::<u32>().unwrap()), filter.page);
        }
    }

    #[test]
    fn empty_filters_ask_nothing() {
        assert_eq!(MessageFilter::default().query_string(), "");
        assert_eq!(PostFilter::default().query_string(), "");
        let posts = PostFilter {
            types: vec!["blog post".into()],
            ..Default::default()
        };
        assert_eq!(posts.query_string(), "types=blog%20post");
    }
}
