//! Which list totals the store keeps, and the SQL that reads them, for both backends.
//!
//! The writer keeps counts in the transaction that changes the rows they count (`counters`,
//! `list_totals`, `time_counts`, `type_time_counts`; see `totals.rs`), so a kept total is
//! exact at the moment it is read and costs a few rows whatever the list's length: the API
//! serves it without a cache. Every other total is counted on an index, and the API caches it
//! for a while (`count_cache`).
//!
//! Kept, for a message list whatever the statuses asked for (the few messages whose status is
//! not `processed` are then subtracted, counted on their own small index):
//! - no filter; one message type, sender, content type, channel or content key filter alone
//!   (any number of values); one tag alone;
//! - a time range alone, or with a message type filter alone.
//!
//! For a post list: no filter, post types alone, or channels alone. For an aggregate list: no
//! filter, or keys alone.

use crate::shared::{counts_processed, distinct_tags};
use crate::sql::{Dialect, Filter, Param};
use crate::time_counts;
use crate::{AggregateQuery, MessageQuery, PostQuery};

/// The sum of the rows' `n`, as an integer on both backends (PostgreSQL sums `BIGINT`s into
/// a `NUMERIC`).
const SUM_N: &str = "CAST(coalesce(sum(n), 0) AS BIGINT)";

/// Where a message list's total (whatever the messages' statuses) is kept.
#[derive(Debug, PartialEq)]
pub(crate) enum KeptMessages<'q> {
    /// `counters.messages`.
    All,
    /// The sum of `list_totals` rows of one list.
    List(&'static str, Vec<String>),
    /// Messages in `[start, end)`, of these types (any type when empty): whole seconds from
    /// the time buckets, the fractions at the ends counted on an index.
    TimeRange {
        types: &'q [String],
        start: Option<f64>,
        end: Option<f64>,
    },
}

/// Where the total of a message list is kept, when it is: the query's statuses aside (a
/// total of statuses without `processed` is never kept, those are counted on their own).
pub(crate) fn message_total(q: &MessageQuery) -> Option<KeptMessages<'_>> {
    // Nothing is kept per first confirmation height.
    if !counts_processed(q) || q.start_block.is_some() || q.end_block.is_some() {
        return None;
    }
    // Each column filter, with the list that keeps its values' totals (`None`: not kept).
    let columns = [
        (None, &q.hashes),
        (Some("sender"), &q.addresses),
        (None, &q.owners),
        (None, &q.refs),
        (None, &q.content_hashes),
        (Some("content_key"), &q.content_keys),
        (Some("content_type"), &q.content_types),
        (None, &q.chains),
        (Some("channel"), &q.channels),
        (None, &q.payment_types),
        (Some("type"), &q.message_types),
    ];
    let mut used = columns.iter().filter(|(_, values)| !values.is_empty());
    let column = used.next();
    if used.next().is_some() {
        return None;
    }
    let tags = distinct_tags(&q.tags);
    let dated = q.start_date.is_some() || q.end_date.is_some();
    match (column, tags.as_slice(), dated) {
        (None, [], false) => Some(KeptMessages::All),
        (None, [tag], false) => Some(KeptMessages::List("tag", vec![(*tag).to_owned()])),
        (Some((Some(list), values)), [], false) => Some(KeptMessages::List(list, values.to_vec())),
        (None, [], true) => Some(KeptMessages::TimeRange {
            types: &[],
            start: q.start_date,
            end: q.end_date,
        }),
        (Some((Some("type"), types)), [], true) => Some(KeptMessages::TimeRange {
            types,
            start: q.start_date,
            end: q.end_date,
        }),
        _ => None,
    }
}

/// The SQL of a kept message total, its parameters bound in `f` (which holds no clause).
/// `count_any_type` counts the messages of any type in a range on an index (each backend
/// knows its best index for it).
pub(crate) fn message_total_sql<D: Dialect>(
    f: &mut Filter<D>,
    kept: &KeptMessages<'_>,
    count_any_type: impl Fn(&mut Filter<D>, Option<f64>, Option<f64>) -> String,
) -> String {
    match kept {
        KeptMessages::All => {
            "SELECT coalesce((SELECT n FROM counters WHERE name = 'messages'), 0)".to_owned()
        }
        KeptMessages::List(list, values) => list_total_sql(f, list, values),
        KeptMessages::TimeRange { types, start, end } => {
            let count_on_index = |f: &mut Filter<D>, start, end| {
                if types.is_empty() {
                    count_any_type(f, start, end)
                } else {
                    f.any_of("m.type", types);
                    f.date_range("m.time", start, end);
                    format!("SELECT count(*) FROM messages m {}", f.take_sql())
                }
            };
            let Some(cover) = time_counts::cover(*start, *end) else {
                return format!("SELECT ({})", count_on_index(f, *start, *end));
            };
            let mut parts = Vec::new();
            for (level, lo, hi) in cover.runs {
                let (level, lo, hi) = (
                    f.bind(Param::Int(level)),
                    f.bind(Param::Int(lo)),
                    f.bind(Param::Int(hi)),
                );
                let range = format!("level = {level} AND bucket >= {lo} AND bucket < {hi}");
                let sql = if types.is_empty() {
                    format!("SELECT {SUM_N} FROM time_counts WHERE {range}")
                } else {
                    f.any_of("type", types);
                    format!(
                        "SELECT {SUM_N} FROM type_time_counts WHERE {} AND {range}",
                        f.take_sql().trim_start_matches("WHERE ")
                    )
                };
                parts.push(format!("({sql})"));
            }
            if let Some((start, end)) = cover.before {
                parts.push(format!("({})", count_on_index(f, start, Some(end))));
            }
            if let Some((start, end)) = cover.after {
                parts.push(format!("({})", count_on_index(f, Some(start), end)));
            }
            format!("SELECT {}", parts.join(" + "))
        }
    }
}

/// The sum of some values' rows of a `list_totals` list (all its rows when `values` is empty).
fn list_total_sql<D: Dialect>(f: &mut Filter<D>, list: &str, values: &[String]) -> String {
    let name = f.bind(Param::Text(list.to_owned()));
    f.push(format!("list = {name}"));
    f.any_of("value", values);
    format!("SELECT {SUM_N} FROM list_totals {}", f.take_sql())
}

/// The `list_totals` list and values whose sum is a post list's total, when it is kept (no
/// filter: every original post has one type, so all of them are the sum of every type's).
fn post_list(q: &PostQuery) -> Option<(&'static str, &[String])> {
    let others_empty = q.addresses.is_empty()
        && q.hashes.is_empty()
        && q.refs.is_empty()
        && q.tags.is_empty()
        && q.chains.is_empty()
        && q.start_date.is_none()
        && q.end_date.is_none();
    let list = match (q.types.is_empty(), q.channels.is_empty()) {
        (_, true) => ("post_type", q.types.as_slice()),
        (true, false) => ("post_channel", q.channels.as_slice()),
        (false, false) => return None,
    };
    others_empty.then_some(list)
}

/// The same for an aggregate list: keys alone, or no filter (every aggregate has one key).
fn aggregate_list(q: &AggregateQuery) -> Option<(&'static str, &[String])> {
    q.addresses
        .is_empty()
        .then_some(("aggregate_key", q.keys.as_slice()))
}

/// Whether a post list's total is kept.
pub(crate) fn post_is_kept(q: &PostQuery) -> bool {
    post_list(q).is_some()
}

/// Whether an aggregate list's total is kept.
pub(crate) fn aggregate_is_kept(q: &AggregateQuery) -> bool {
    aggregate_list(q).is_some()
}

/// The SQL of a post list's total when it is kept.
pub(crate) fn post_total_sql<D: Dialect>(f: &mut Filter<D>, q: &PostQuery) -> Option<String> {
    post_list(q).map(|(list, values)| list_total_sql(f, list, values))
}

/// The SQL of an aggregate list's total when it is kept.
pub(crate) fn aggregate_total_sql<D: Dialect>(
    f: &mut Filter<D>,
    q: &AggregateQuery,
) -> Option<String> {
    aggregate_list(q).map(|(list, values)| list_total_sql(f, list, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    #[test]
    fn kept_message_totals_are_the_single_filters_the_writer_counts() {
        let q = |f: &dyn Fn(&mut MessageQuery)| {
            let mut q = MessageQuery::default();
            f(&mut q);
            q
        };
        let kept = |q: &MessageQuery| message_total(q).map(|k| format!("{k:?}"));
        assert_eq!(kept(&q(&|_| {})), Some("All".into()));
        assert_eq!(
            kept(&q(&|q| q.message_types = strings(&["POST"]))),
            Some(r#"List("type", ["POST"])"#.into())
        );
        assert_eq!(
            kept(&q(&|q| q.addresses = strings(&["0xa", "0xb"]))),
            Some(r#"List("sender", ["0xa", "0xb"])"#.into())
        );
        assert_eq!(
            kept(&q(&|q| q.tags = strings(&["t", "t"]))),
            Some(r#"List("tag", ["t"])"#.into())
        );
        let typed_range = q(&|q| {
            q.message_types = strings(&["POST"]);
            q.start_date = Some(1.0);
        });
        assert!(matches!(
            message_total(&typed_range),
            Some(KeptMessages::TimeRange {
                types: [_],
                start: Some(_),
                end: None
            })
        ));
        // Not kept: two filters, two tags, a filter the writer does not count, a channel with
        // a range, statuses without `processed`.
        for not_kept in [
            q(&|q| {
                q.addresses = strings(&["0xa"]);
                q.message_types = strings(&["POST"]);
            }),
            q(&|q| q.tags = strings(&["a", "b"])),
            q(&|q| q.refs = strings(&["r"])),
            q(&|q| {
                q.channels = strings(&["c"]);
                q.end_date = Some(5.0);
            }),
            q(&|q| q.statuses = vec![crate::MessageStatus::Rejected]),
        ] {
            assert_eq!(kept(&not_kept), None, "{not_kept:?}");
        }
        // Statuses that include `processed` keep the total (the others are subtracted).
        let processed = q(&|q| q.statuses = vec![crate::MessageStatus::Processed]);
        assert_eq!(kept(&processed), Some("All".into()));
    }
}
