//! The kept totals a write transaction changes (`list_totals` and `time_counts`), added up
//! in memory and written once when it commits, on either backend: one statement per message
//! and total would cost more than the message itself.

use std::collections::BTreeMap;

use crate::time_counts;

/// Changes to the kept totals since the transaction began.
#[derive(Debug, Default)]
pub(crate) struct Totals {
    /// `list_totals`: messages per content type, channel and content key, tag rows per tag,
    /// original posts per post type and per channel, aggregates per key.
    pub lists: BTreeMap<(&'static str, String), i64>,
    /// `time_counts`, by `(level, bucket)`.
    pub times: BTreeMap<(i64, i64), i64>,
    /// While a savepoint is open: the changes made since it (undone if it is rolled back).
    savepoint: Option<Vec<Change>>,
    /// The last savepoint's change list, emptied, for the next one to fill.
    spare: Vec<Change>,
}

/// A change to one `list_totals` row: `(list, value, change)`.
pub(crate) type ListChange = (&'static str, String, i64);
/// A change to one `time_counts` row: `(level, bucket, change)`.
pub(crate) type TimeChange = (i64, i64, i64);

#[derive(Debug)]
enum Change {
    List(&'static str, String, i64),
    Time((i64, i64), i64),
}

/// The `list_totals` lists a message row counts in, with its value in each (tags are
/// counted from their own rows).
pub(crate) fn message_lists<'a>(
    content_type: &'a Option<String>,
    channel: &'a Option<String>,
    content_key: &'a Option<String>,
) -> impl Iterator<Item = (&'static str, &'a str)> {
    [
        ("content_type", content_type),
        ("channel", channel),
        ("content_key", content_key),
    ]
    .into_iter()
    .filter_map(|(list, value)| value.as_deref().map(|v| (list, v)))
}

impl Totals {
    pub fn count(&mut self, list: &'static str, value: &str, change: i64) {
        *self.lists.entry((list, value.to_owned())).or_default() += change;
        if let Some(changes) = &mut self.savepoint {
            changes.push(Change::List(list, value.to_owned(), change));
        }
    }

    /// A message row of this time added (`change` 1) or removed (-1).
    pub fn count_time(&mut self, time: f64, change: i64) {
        for bucket in time_counts::buckets(time) {
            *self.times.entry(bucket).or_default() += change;
            if let Some(changes) = &mut self.savepoint {
                changes.push(Change::Time(bucket, change));
            }
        }
    }

    /// A message row added (1) or removed (-1): its time and the lists its columns put it in.
    pub fn count_message(
        &mut self,
        time: f64,
        content_type: &Option<String>,
        channel: &Option<String>,
        content_key: &Option<String>,
        change: i64,
    ) {
        self.count_time(time, change);
        for (list, value) in message_lists(content_type, channel, content_key) {
            self.count(list, value, change);
        }
    }

    #[cfg(any(feature = "postgres", test))]
    pub fn is_empty(&self) -> bool {
        self.lists.is_empty() && self.times.is_empty()
    }

    /// The changes to write, leaving none: the non-zero ones.
    pub fn take(&mut self) -> (Vec<ListChange>, Vec<TimeChange>) {
        let lists = std::mem::take(&mut self.lists)
            .into_iter()
            .filter(|(_, n)| *n != 0)
            .map(|((list, value), n)| (list, value, n))
            .collect();
        let times = std::mem::take(&mut self.times)
            .into_iter()
            .filter(|(_, n)| *n != 0)
            .map(|((level, bucket), n)| (level, bucket, n))
            .collect();
        (lists, times)
    }

    /// Forgets every change (the transaction rolled back).
    pub fn clear(&mut self) {
        self.lists.clear();
        self.times.clear();
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
        let channel = Some("c".to_owned());
        t.count_message(5.0, &None, &channel, &None, 1);
        t.take_savepoint();
        t.count_message(70.0, &None, &channel, &None, 1);
        t.count("tag", "x", 1);
        t.rollback_savepoint();
        t.take_savepoint();
        t.count("tag", "y", 1);
        t.release_savepoint();
        // Past the release, nothing is recorded to undo.
        t.count("tag", "z", 1);
        t.rollback_savepoint();
        let (lists, times) = t.take();
        assert_eq!(
            lists,
            vec![
                ("channel", "c".to_owned(), 1),
                ("tag", "y".to_owned(), 1),
                ("tag", "z".to_owned(), 1)
            ]
        );
        assert_eq!(
            times,
            vec![(0, 5, 1), (1, 0, 1), (2, 0, 1), (3, 0, 1), (4, 0, 1)]
        );
        assert!(t.is_empty());
    }
}
