//! The kept totals a write transaction changes (`list_totals`, `time_counts` and
//! `type_time_counts`), added up in memory and written once when it commits, on either
//! backend: one statement per message and total would cost more than the message itself.
//! Written in the transaction that changes the rows they count, they are exact whenever a
//! reader sees them (see `kept.rs` for the lists whose totals they answer).

use std::collections::BTreeMap;

use crate::time_counts;

/// `list_totals` list of an address's messages per channel; values are [`facet`]s.
pub(crate) const SENDER_CHANNEL: &str = "sender_channel";
/// `list_totals` list of an address's POST messages per post type.
pub(crate) const SENDER_POST_TYPE: &str = "sender_post_type";
/// Between the address and the value in a facet: a character no address holds, and the
/// lowest but NUL (which PostgreSQL text refuses), so that an address's facets are the
/// range [`facet_range`] and sort by value.
const FACET_SEPARATOR: char = '\u{1}';

/// The `list_totals` value of `address`'s messages with `value` (a channel, a post type).
pub(crate) fn facet(address: &str, value: &str) -> String {
    format!("{address}{FACET_SEPARATOR}{value}")
}

/// The range `[from, to)` of every facet value of `address`.
pub(crate) fn facet_range(address: &str) -> (String, String) {
    (format!("{address}\u{1}"), format!("{address}\u{2}"))
}

/// The value of `address`'s facet, if `stored` is one.
pub(crate) fn split_facet<'a>(stored: &'a str, address: &str) -> Option<&'a str> {
    stored.strip_prefix(address)?.strip_prefix(FACET_SEPARATOR)
}

/// Changes to the kept totals since the transaction began.
#[derive(Debug, Default)]
pub(crate) struct Totals {
    /// `list_totals`: messages per type, sender, content type, channel and content key, tag
    /// rows per tag, original posts per post type and per channel, aggregates per key.
    pub lists: BTreeMap<(&'static str, String), i64>,
    /// `time_counts`, by `(level, bucket)`.
    pub times: BTreeMap<(i64, i64), i64>,
    /// `type_time_counts`: the same buckets for each message type, by `(type, level, bucket)`.
    pub type_times: BTreeMap<(String, i64, i64), i64>,
    /// While a savepoint is open: the changes made since it (undone if it is rolled back).
    savepoint: Option<Vec<Change>>,
    /// The last savepoint's change list, emptied, for the next one to fill.
    spare: Vec<Change>,
}

/// A change to one `list_totals` row: `(list, value, change)`.
pub(crate) type ListChange = (&'static str, String, i64);
/// A change to one `time_counts` row: `(level, bucket, change)`.
pub(crate) type TimeChange = (i64, i64, i64);
/// A change to one `type_time_counts` row: `(type, level, bucket, change)`.
pub(crate) type TypeTimeChange = (String, i64, i64, i64);

/// Everything the writer takes out at commit.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Taken {
    pub lists: Vec<ListChange>,
    pub times: Vec<TimeChange>,
    pub type_times: Vec<TypeTimeChange>,
}

#[derive(Debug)]
enum Change {
    List(&'static str, String, i64),
    Time((i64, i64), i64),
    TypeTime((String, i64, i64), i64),
}

/// The columns of a `messages` row that kept totals count it by.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CountedRow<'a> {
    pub time: f64,
    pub message_type: &'a str,
    pub sender: &'a str,
    pub content_type: Option<&'a str>,
    pub channel: Option<&'a str>,
    pub content_key: Option<&'a str>,
}

impl<'a> CountedRow<'a> {
    /// A message being inserted.
    pub fn of_new(m: &'a crate::NewMessage) -> Self {
        let e = &m.record.envelope;
        CountedRow {
            time: e.time,
            message_type: e.message_type.as_str(),
            sender: &e.sender,
            content_type: m.content_type.as_deref(),
            channel: e.channel.as_deref(),
            content_key: m.content_key.as_deref(),
        }
    }

    /// A stored message, from its facts and its stored time.
    pub fn of_stored(facts: &'a crate::MessageFacts, time: f64) -> Self {
        CountedRow {
            time,
            message_type: facts.envelope.message_type.as_str(),
            sender: &facts.envelope.sender,
            content_type: facts.content_type.as_deref(),
            channel: facts.envelope.channel.as_deref(),
            content_key: facts.content_key.as_deref(),
        }
    }

    /// The `list_totals` lists the row counts in, with its value in each (tags are counted
    /// from their own rows).
    fn lists(&self) -> impl Iterator<Item = (&'static str, &'a str)> {
        [
            ("type", Some(self.message_type)),
            ("sender", Some(self.sender)),
            ("content_type", self.content_type),
            ("channel", self.channel),
            ("content_key", self.content_key),
        ]
        .into_iter()
        .filter_map(|(list, value)| value.map(|v| (list, v)))
    }
}

impl Totals {
    pub fn count(&mut self, list: &'static str, value: &str, change: i64) {
        *self.lists.entry((list, value.to_owned())).or_default() += change;
        if let Some(changes) = &mut self.savepoint {
            changes.push(Change::List(list, value.to_owned(), change));
        }
    }

    /// A message row of this type and time added (`change` 1) or removed (-1): its buckets
    /// among all messages and among its type's.
    pub fn count_time(&mut self, time: f64, message_type: &str, change: i64) {
        for bucket in time_counts::buckets(time) {
            *self.times.entry(bucket).or_default() += change;
            let (level, index) = bucket;
            let typed = (message_type.to_owned(), level, index);
            *self.type_times.entry(typed.clone()).or_default() += change;
            if let Some(changes) = &mut self.savepoint {
                changes.push(Change::Time(bucket, change));
                changes.push(Change::TypeTime(typed, change));
            }
        }
    }

    /// A message row added (1) or removed (-1): its time and the lists its columns put it in.
    pub fn count_message(&mut self, row: CountedRow<'_>, change: i64) {
        self.count_time(row.time, row.message_type, change);
        for (list, value) in row.lists() {
            self.count(list, value, change);
        }
        // Per address: its channels and post types, each a range of rows to read
        // (`query/grants.rs`) instead of a walk over the address's messages.
        if let Some(channel) = row.channel {
            self.count(SENDER_CHANNEL, &facet(row.sender, channel), change);
        }
        if let (Some(post_type), "POST") = (row.content_type, row.message_type) {
            self.count(SENDER_POST_TYPE, &facet(row.sender, post_type), change);
        }
    }

    #[cfg(any(feature = "postgres", test))]
    pub fn is_empty(&self) -> bool {
        self.lists.is_empty() && self.times.is_empty() && self.type_times.is_empty()
    }

    /// The changes to write, leaving none: the non-zero ones.
    pub fn take(&mut self) -> Taken {
        fn non_zero<K, T>(map: &mut BTreeMap<K, i64>, row: impl Fn(K, i64) -> T) -> Vec<T> {
            std::mem::take(map)
                .into_iter()
                .filter(|(_, n)| *n != 0)
                .map(|(key, n)| row(key, n))
                .collect()
        }
        Taken {
            lists: non_zero(&mut self.lists, |(list, value), n| (list, value, n)),
            times: non_zero(&mut self.times, |(level, bucket), n| (level, bucket, n)),
            type_times: non_zero(&mut self.type_times, |(t, level, bucket), n| {
                (t, level, bucket, n)
            }),
        }
    }

    /// Forgets every change (the transaction rolled back).
    pub fn clear(&mut self) {
        self.lists.clear();
        self.times.clear();
        self.type_times.clear();
        self.savepoint = None;
    }

    pub fn take_savepoint(&mut self) {
        let mut changes = std::mem::take(&mut self.spare);
        changes.clear();
        self.savepoint = Some(changes);
    }

    pub fn release_savepoint(&mut self) {
        if let Some(changes) = self.savepoint.take() {
            self.spare = changes;
        }
    }

    /// Undoes the changes made since the savepoint.
    pub fn rollback_savepoint(&mut self) {
        let Some(mut changes) = self.savepoint.take() else {
            return;
        };
        for change in changes.drain(..).rev() {
            match change {
                Change::List(list, value, n) => {
                    *self.lists.entry((list, value)).or_default() -= n;
                }
                Change::Time(bucket, n) => *self.times.entry(bucket).or_default() -= n,
                Change::TypeTime(bucket, n) => *self.type_times.entry(bucket).or_default() -= n,
            }
        }
        self.spare = changes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rolled_back_savepoint_undoes_only_its_own_changes() {
        let mut t = Totals::default();
        let row = |time| CountedRow {
            time,
            message_type: "POST",
            sender: "0xa",
            content_type: None,
            channel: Some("c"),
            content_key: None,
        };
        t.count_message(row(5.0), 1);
        t.take_savepoint();
        t.count_message(row(70.0), 1);
        t.count("tag", "x", 1);
        t.rollback_savepoint();
        t.take_savepoint();
        t.count("tag", "y", 1);
        t.release_savepoint();
        // Past the release, nothing is recorded to undo.
        t.count("tag", "z", 1);
        t.rollback_savepoint();
        let taken = t.take();
        assert_eq!(
            taken.lists,
            vec![
                ("channel", "c".to_owned(), 1),
                ("sender", "0xa".to_owned(), 1),
                (SENDER_CHANNEL, facet("0xa", "c"), 1),
                ("tag", "y".to_owned(), 1),
                ("tag", "z".to_owned(), 1),
                ("type", "POST".to_owned(), 1),
            ]
        );
        let buckets = [(0, 5), (1, 0), (2, 0), (3, 0), (4, 0)];
        assert_eq!(taken.times, buckets.map(|(l, b)| (l, b, 1)).to_vec());
        assert_eq!(
            taken.type_times,
            buckets.map(|(l, b)| ("POST".to_owned(), l, b, 1)).to_vec()
        );
        assert!(t.is_empty());
    }
}
