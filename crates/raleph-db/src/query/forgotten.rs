//! Lists of forgotten messages (their skeletons) and their totals, for both backends.

use super::{limit_offset, order_by};
use crate::MessageQuery;
use crate::sql::{Dialect, Filter, Param};

/// The columns of a skeleton, in the order the backends map them.
/// `rows::ENVELOPE_HEAD_COLUMNS`, then the skeleton's own (the order `rows::forgotten` reads).
pub(crate) const FORGOTTEN_COLUMNS: &str =
    "m.item_hash, m.type, m.chain, m.sender, m.signature, m.item_type, m.time, m.channel,
    m.owner, m.payment_type, m.size, m.forgotten_by, m.forgotten_at, m.reception_time";

/// The filters a skeleton keeps the columns for; dates are on the time it was forgotten.
fn filter<D: Dialect>(q: &MessageQuery) -> Filter<D> {
    let mut f = Filter::<D>::default();
    f.any_of("m.item_hash", &q.hashes);
    f.any_of("m.sender", &q.addresses);
    f.any_of("m.owner", &q.owners);
    f.any_of("m.chain", &q.chains);
    f.any_of("m.channel", &q.channels);
    f.any_of("m.type", &q.message_types);
    f.date_range("m.forgotten_at", q.start_date, q.end_date);
    f
}

/// A page of skeletons, newest forgotten first (or oldest, as the query says).
pub(crate) fn list_sql<D: Dialect>(q: &MessageQuery) -> (String, Vec<Param>) {
    let f = filter::<D>(q);
    let sql = format!(
        "SELECT {FORGOTTEN_COLUMNS} FROM forgotten_messages m {} {} {}",
        f.sql(),
        order_by("m.forgotten_at", "m.item_hash", q.sort_order),
        limit_offset(q.limit, q.offset)
    );
    (sql, f.params)
}

/// The number of skeletons that pass the filter.
pub(crate) fn count_sql<D: Dialect>(q: &MessageQuery) -> (String, Vec<Param>) {
    let f = filter::<D>(q);
    let sql = format!("SELECT count(*) FROM forgotten_messages m {}", f.sql());
    (sql, f.params)
}
