//! Per-address message counts (`addresses/stats.json`), for both backends.

use crate::AddressStats;
use crate::sql::{Dialect, Filter, Param};

/// Messages per `(sender, type)` of the given senders (all when empty), by sender.
pub(crate) fn stats_sql<D: Dialect>(addresses: &[String]) -> (String, Vec<Param>) {
    let mut f = Filter::<D>::default();
    f.any_of("sender", addresses);
    let sql = format!(
        "SELECT sender, type, count(*) FROM messages {} GROUP BY sender, type ORDER BY sender, type",
        f.sql()
    );
    (sql, f.params)
}

/// The stats of each address from `stats_sql`'s rows `(sender, type, count)`, in sender order.
pub(crate) fn fold_stats(rows: Vec<(String, String, u64)>) -> Vec<AddressStats> {
    let mut stats: Vec<AddressStats> = Vec::new();
    for (address, message_type, n) in rows {
        if stats.last().is_none_or(|s| s.address != address) {
            stats.push(AddressStats {
                address,
                ..Default::default()
            });
        }
        let Some(entry) = stats.last_mut() else {
            continue;
        };
        match message_type.as_str() {
            "POST" => entry.post = n,
            "AGGREGATE" => entry.aggregate = n,
            "STORE" => entry.store = n,
            "FORGET" => entry.forget = n,
            "PROGRAM" => entry.program = n,
            "INSTANCE" => entry.instance = n,
            _ => {}
        }
    }
    stats
}
