//! Aggregate reads and their totals, for both backends.

use super::{limit_offset, order_by};
use crate::AggregateQuery;
use crate::kept;
use crate::sql::{Dialect, Filter, Param};

/// The columns of an aggregate, in the order the backends map them.
pub(crate) const AGGREGATE_COLUMNS: &str =
    "owner, key, content, creation_time, last_update_time, original_item_hash, last_revision_hash";

fn filter<D: Dialect>(q: &AggregateQuery) -> Filter<D> {
    let mut f = Filter::<D>::default();
    f.any_of("key", &q.keys);
    f.any_of("owner", &q.addresses);
    f
}

/// An owner's aggregates (those of `keys`, or all), by key.
pub(crate) fn of_owner_sql<D: Dialect>(owner: &str, keys: &[String]) -> (String, Vec<Param>) {
    let f = filter::<D>(&AggregateQuery {
        keys: keys.to_vec(),
        addresses: vec![owner.to_owned()],
        ..Default::default()
    });
    let sql = format!(
        "SELECT {AGGREGATE_COLUMNS} FROM aggregates {} ORDER BY key",
        f.sql()
    );
    (sql, f.params)
}

/// A page of aggregates, by last update (or creation) time, then owner and key.
pub(crate) fn list_sql<D: Dialect>(q: &AggregateQuery) -> (String, Vec<Param>) {
    let f = filter::<D>(q);
    let column = if q.sort_by_creation {
        "creation_time"
    } else {
        "last_update_time"
    };
    let sql = format!(
        "SELECT {AGGREGATE_COLUMNS} FROM aggregates {} {}, key ASC {}",
        f.sql(),
        order_by(column, "owner", q.sort_order),
        limit_offset(q.limit, q.offset)
    );
    (sql, f.params)
}

/// An aggregate list's total: the writer's kept total when it keeps it, otherwise counted.
pub(crate) fn count_sql<D: Dialect>(q: &AggregateQuery) -> (String, Vec<Param>) {
    let mut kept = Filter::<D>::default();
    if let Some(sql) = kept::aggregate_total_sql(&mut kept, q) {
        return (sql, kept.params);
    }
    let f = filter::<D>(q);
    (
        format!("SELECT count(*) FROM aggregates {}", f.sql()),
        f.params,
    )
}
