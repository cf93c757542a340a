//! The query layer: the SQL of every list read, written once for both backends over the small
//! [`Dialect`](crate::sql::Dialect) interface. Each backend only runs the statements and maps
//! their rows.
//!
//! - [`messages`]: message lists and their totals (index choice, tag lead or probe, keyset
//!   cursors, pages past the first, kept totals);
//! - [`posts`]: post lists (originals folded with their latest version, tags led or probed)
//!   and their totals;
//! - [`forgotten`]: skeletons of forgotten messages; [`aggregates`]: aggregate reads;
//!   [`addresses`]: per-address counts; [`hashes`]: item hashes of every status by
//!   reception time; [`grants`]: who granted an address something, an address's channels
//!   and post types;
//! - [`single`]: the reads of one thing (a message, a skeleton, a rejection, a file), run on
//!   either backend's connection ([`crate::conn::Connection`]);
//! - [`rows`]: rows to records, over each driver's row type.

pub(crate) mod addresses;
pub(crate) mod aggregates;
pub(crate) mod anchors;
pub(crate) mod forgotten;
pub(crate) mod grants;
pub(crate) mod hashes;
pub(crate) mod messages;
pub(crate) mod posts;
pub(crate) mod rows;
pub(crate) mod single;

use crate::sql::{Dialect, Filter, Param};
use crate::{Cursor, SortOrder};

/// The keyset condition of a cursor: rows strictly after `(time, item_hash)` in list order.
pub(crate) fn keyset<D: Dialect>(
    f: &mut Filter<D>,
    time_col: &str,
    hash_col: &str,
    order: SortOrder,
    cursor: &Option<Cursor>,
) {
    if let Some(c) = cursor {
        let (cmp, bound) = match order {
            SortOrder::Descending => ("<", "<="),
            SortOrder::Ascending => (">", ">="),
        };
        let t = f.bind(Param::Real(c.time));
        let h = f.bind(Param::Text(c.item_hash.clone()));
        // The plain bound on time lets the index seek to the cursor; the OR alone would not.
        f.push(format!(
            "{time_col} {bound} {t} AND ({time_col} {cmp} {t} OR ({time_col} = {t} AND {hash_col} > {h}))"
        ));
    }
}

/// List order: time in the list's direction, ties by item hash.
pub(crate) fn order_by(time_col: &str, hash_col: &str, order: SortOrder) -> String {
    let dir = match order {
        SortOrder::Descending => "DESC",
        SortOrder::Ascending => "ASC",
    };
    format!("ORDER BY {time_col} {dir}, {hash_col} ASC")
}

/// `LIMIT … OFFSET …`, nothing for no limit (0).
pub(crate) fn limit_offset(limit: u64, offset: u64) -> String {
    match limit {
        0 => String::new(),
        n => format!("LIMIT {n} OFFSET {offset}"),
    }
}
