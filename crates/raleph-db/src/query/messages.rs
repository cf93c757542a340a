//! Message lists and their totals, for both backends.
//!
//! A list is read from the index its filters choose: one tag's `(tag, time, item_hash)` range
//! when tags lead (no column filter narrower than a tag), a column's `(column, time)` index,
//! or the time index. Pages past the first skip their rows on the index alone where the
//! dialect has row ids (SQLite), with statuses checked against the few rows of
//! `messages_by_rare_status`. Totals are kept ones when the store keeps them (`kept.rs`),
//! otherwise counted on the filter's own index.

use super::{keyset, limit_offset, order_by};
use crate::kept;
use crate::shared::{counts_processed, distinct_tags, tags_lead};
use crate::sql::{Dialect, Filter, Param};
use crate::{MessageQuery, SortOrder};

/// The columns of a listed message, in the order the backends map them.
pub(crate) const MESSAGE_COLUMNS: &str =
    "m.item_hash, m.type, m.chain, m.sender, m.signature, m.item_type, m.item_content,
    m.content, m.channel, m.time, m.size, m.reception_time, m.status";

/// The filters of a message query on the columns of `messages m`: all but its tags, statuses
/// and dates, whose clauses depend on which index the list is read from.
pub(crate) fn column_filter<D: Dialect>(f: &mut Filter<D>, q: &MessageQuery) {
    f.any_of("m.item_hash", &q.hashes);
    f.any_of("m.sender", &q.addresses);
    owner_filter(f, &q.owners);
    f.any_of("m.content_ref", &q.refs);
    f.any_of("m.content_item_hash", &q.content_hashes);
    f.any_of("m.content_key", &q.content_keys);
    f.any_of("m.content_type", &q.content_types);
    f.any_of("m.chain", &q.chains);
    f.any_of("m.channel", &q.channels);
    f.any_of("m.payment_type", &q.payment_types);
    f.any_of("m.type", &q.message_types);
    // On the first confirmation's height: `startBlock` keeps unconfirmed messages, as the
    // reference's.
    if let Some(start) = q.start_block {
        let p = f.bind(Param::Int(i64::try_from(start).unwrap_or(i64::MAX)));
        f.push(format!(
            "(m.first_confirmed_height IS NULL OR m.first_confirmed_height >= {p})"
        ));
    }
    if let Some(end) = q.end_block {
        let p = f.bind(Param::Int(i64::try_from(end).unwrap_or(i64::MAX)));
        f.push(format!("m.first_confirmed_height < {p}"));
    }
}

/// The `tx-time` order (`MessageQuery::sort_by_tx_time`): first confirmation time, with
/// unconfirmed messages past every time (first when descending, last when ascending), then
/// time, ties by item hash. The key is `messages_by_tx_time`'s.
fn tx_time_order(order: SortOrder) -> String {
    let dir = match order {
        SortOrder::Descending => "DESC",
        SortOrder::Ascending => "ASC",
    };
    format!("ORDER BY {TX_TIME_KEY} {dir}, m.time {dir}, m.item_hash ASC")
}

/// The first confirmation's time, unconfirmed past every time.
const TX_TIME_KEY: &str = "coalesce(m.first_confirmed_at, 1e300)";

/// Whether a message query filters on a column of `messages` (besides statuses and dates).
pub(crate) fn has_column_filter(q: &MessageQuery) -> bool {
    [
        &q.hashes,
        &q.addresses,
        &q.owners,
        &q.refs,
        &q.content_hashes,
        &q.content_keys,
        &q.content_types,
        &q.chains,
        &q.channels,
        &q.payment_types,
        &q.message_types,
    ]
    .iter()
    .any(|values| !values.is_empty())
        || q.start_block.is_some()
        || q.end_block.is_some()
}

/// `m.owner` is one of `owners`. Where the dialect says so, read from two indexes: a message
/// whose owner is its sender (nearly all) is found on `messages_by_sender`, only the others
/// are in `messages_by_delegated_owner`.
fn owner_filter<D: Dialect>(f: &mut Filter<D>, owners: &[String]) {
    if owners.is_empty() {
        return;
    }
    if !D::OWNER_BY_SENDER_INDEX {
        f.any_of("m.owner", owners);
        return;
    }
    let delegated = f.detached(|f| f.any_of("m.owner", owners));
    let own = f.detached(|f| f.any_of("m.sender", owners));
    f.push(format!(
        "({delegated} AND m.owner <> m.sender OR {own} AND m.owner = m.sender)"
    ));
}

fn status_names(q: &MessageQuery) -> Vec<String> {
    q.statuses.iter().map(|s| s.as_str().to_owned()).collect()
}

/// `m.status` is one of the query's; without `processed`, also the condition of
/// `messages_by_rare_status`, so the few such rows are read from that index.
fn status_filter<D: Dialect>(f: &mut Filter<D>, q: &MessageQuery) {
    if q.statuses.is_empty() {
        return;
    }
    if !counts_processed(q) {
        f.push("m.status <> 'processed'");
    }
    f.any_of("m.status", &status_names(q));
}

/// The message (`time`, `item_hash`) has one of `tags`: a primary-key lookup per tag.
pub(crate) fn tag_probe<D: Dialect>(
    f: &mut Filter<D>,
    tags: &[String],
    time_col: &str,
    hash_col: &str,
) {
    let tag = f.detached(|f| f.any_of("t.tag", tags));
    f.push(format!(
        "EXISTS (SELECT 1 FROM message_tags t WHERE {tag} AND t.time = {time_col}
             AND t.item_hash = {hash_col})"
    ));
}

/// One tag's messages that pass the other filters, read from the tag's `(tag, time,
/// item_hash)` range (`message_tags t` joined to `messages m`).
fn tag_range<D: Dialect>(f: &mut Filter<D>, q: &MessageQuery, tag: &str) {
    let p = f.bind(Param::Text(tag.to_owned()));
    f.push(format!("t.tag = {p}"));
    column_filter(f, q);
    status_filter(f, q);
    f.date_range("t.time", q.start_date, q.end_date);
    keyset(f, "t.time", "t.item_hash", q.sort_order, &q.cursor);
}

/// The query's distinct tags.
fn tags_of(q: &MessageQuery) -> Vec<String> {
    distinct_tags(&q.tags)
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// Whether a page past the first skips its rows on the filter's index (the rows' statuses
/// checked against `messages_by_rare_status` rather than read): only with row ids.
pub(crate) fn deep_page<D: Dialect>(q: &MessageQuery) -> bool {
    D::ROW_ID.is_some() && q.limit > 0 && q.offset > 0 && counts_processed(q) && !q.sort_by_tx_time
}

/// Whether some message has a status the list leaves out (asked before a deep page, which
/// must then exclude those rows by row id; normally there is none, and the exclusion, a
/// lookup per row skipped, goes). `None` when the query has no statuses.
pub(crate) fn rare_rows_sql<D: Dialect>(q: &MessageQuery) -> Option<(String, Vec<Param>)> {
    if q.statuses.is_empty() {
        return None;
    }
    let mut f = Filter::<D>::default();
    f.push("status <> 'processed'");
    f.none_of("status", &status_names(q));
    let from = D::indexed_by("messages", "messages_by_rare_status");
    let sql = format!("SELECT EXISTS (SELECT 1 FROM {from} {})", f.sql());
    Some((sql, f.params))
}

/// The page of a message list, and its parameters. `exclude_rare` (for deep pages): some
/// message has a status the list leaves out (`rare_rows_sql`).
pub(crate) fn list_sql<D: Dialect>(q: &MessageQuery, exclude_rare: bool) -> (String, Vec<Param>) {
    let tags = tags_of(q);
    let page = limit_offset(q.limit, q.offset);
    let mut f = Filter::<D>::default();
    // In `tx-time` order, tags are probed: their ranges are in time order.
    if tags_lead(q) && !q.sort_by_tx_time {
        let order = order_by("t.time", "t.item_hash", q.sort_order);
        let join = D::TAG_JOIN;
        if let [tag] = tags.as_slice() {
            tag_range(&mut f, q, tag);
            let sql = format!(
                "SELECT {MESSAGE_COLUMNS} FROM {join} {} {order} {page}",
                f.sql()
            );
            return (sql, f.params);
        }
        // Several tags: the first `offset + limit` rows of each tag hold the page; a message
        // with several of the tags is listed once.
        let first = match q.limit {
            0 => String::new(),
            n => format!("LIMIT {}", n.saturating_add(q.offset)),
        };
        let mut parts = Vec::new();
        for (i, tag) in tags.iter().enumerate() {
            tag_range(&mut f, q, tag);
            parts.push(format!(
                "SELECT item_hash FROM (SELECT t.item_hash FROM {join} {} {order} {first}) AS t{i}",
                f.take_sql()
            ));
        }
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.item_hash IN ({}) {} {page}",
            parts.join(" UNION ALL "),
            order_by("m.time", "m.item_hash", q.sort_order),
        );
        return (sql, f.params);
    }
    // A page past the first, of a list that includes `processed`: the rows it skips are found
    // on the filter's index alone, then only the page's rows are read. The status is checked
    // against the few rows of `messages_by_rare_status` rather than on each skipped row.
    let deep = deep_page::<D>(q);
    column_filter(&mut f, q);
    if deep {
        if exclude_rare && let Some(row_id) = D::ROW_ID {
            let rare = f.detached(|f| {
                f.push("status <> 'processed'");
                f.none_of("status", &status_names(q));
            });
            let from = D::indexed_by("messages", "messages_by_rare_status");
            f.push(format!(
                "m.{row_id} NOT IN (SELECT {row_id} FROM {from} WHERE {rare})"
            ));
        }
    } else {
        status_filter(&mut f, q);
    }
    if !tags.is_empty() {
        tag_probe(&mut f, &tags, "m.time", "m.item_hash");
    }
    f.date_range("m.time", q.start_date, q.end_date);
    // A cursor is a place in time order: none in `tx-time` order (the API refuses both).
    if !q.sort_by_tx_time {
        keyset(&mut f, "m.time", "m.item_hash", q.sort_order, &q.cursor);
    }
    let order = match q.sort_by_tx_time {
        true => tx_time_order(q.sort_order),
        false => order_by("m.time", "m.item_hash", q.sort_order),
    };
    // Without a column filter the list is a range of the time index (or, in `tx-time`
    // order, of the first confirmations' index). Said explicitly: with approximate
    // statistics the planner may otherwise skip-scan a `(type|chain, time)` index over a time
    // range, then sort every row of the range.
    let from = if !has_column_filter(q) && tags.is_empty() && counts_processed(q) {
        match q.sort_by_tx_time {
            true => D::indexed_by("messages m", "messages_by_tx_time"),
            false => D::indexed_by("messages m", "messages_by_time"),
        }
    } else {
        "messages m".to_owned()
    };
    let Some(row_id) = D::ROW_ID.filter(|_| deep) else {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM {from} {} {order} {page}",
            f.sql()
        );
        return (sql, f.params);
    };
    let by_time_index = !has_column_filter(q) && tags.is_empty();
    let page_rows = if by_time_index && q.sort_order == SortOrder::Ascending {
        // The time index is `(time, item_hash)`: read forwards, it is the list's order, so
        // the rows skipped are index entries that nothing sorts.
        format!("SELECT m.{row_id} FROM {from} {} {order} {page}", f.sql())
    } else {
        deep_page_after_edge(&from, row_id, &f, q)
    };
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.{row_id} IN ({page_rows}) {order}"
    );
    (sql, f.params)
}

/// The row ids of a page past the first (`q.offset` rows skipped) of a list whose order
/// the index does not give: a column filter's `(column, time)` index holds no `item_hash`
/// for the tie-break, and the time index read backwards (newest first) has its ties in
/// descending hash order. Sorting every skipped row on `(time, item_hash)` to reach the page
/// made page 100 cost ~1 ms unfiltered and ~4 ms by channel (each skipped row read for its
/// hash). Only the rows around the page need that order, so the page is found on `time`,
/// which the index gives: `edge` is the time of the page's first row (the time at that
/// position is the same whatever order ties take); the page is the rows at or past `edge`,
/// in list order, after the ones at exactly `edge` that belong to earlier pages, as many as
/// the offset minus the rows strictly before `edge`. Past the end of the list `edge` is
/// NULL and no row compares with it. Reads the filter's index twice over the offset, no rows.
/// The filter's clauses appear three times; their numbered parameters are bound once.
fn deep_page_after_edge<D: Dialect>(
    from: &str,
    row_id: &str,
    f: &Filter<D>,
    q: &MessageQuery,
) -> String {
    let (direction, at_or_past, before) = match q.sort_order {
        SortOrder::Descending => ("DESC", "<=", ">"),
        SortOrder::Ascending => ("ASC", ">=", "<"),
    };
    let (limit, offset) = (q.limit, q.offset);
    format!(
        "WITH edge(time) AS MATERIALIZED (
             SELECT m.time FROM {from} {} ORDER BY m.time {direction} LIMIT 1 OFFSET {offset})
         SELECT m.{row_id} FROM {from} {} {}
         LIMIT {limit} OFFSET {offset} - (SELECT count(*) FROM {from} {})",
        f.sql(),
        f.sql_and(&format!("m.time {at_or_past} (SELECT time FROM edge)")),
        order_by("m.time", "m.item_hash", q.sort_order),
        f.sql_and(&format!("m.time {before} (SELECT time FROM edge)")),
    )
}

/// The total of a message list, and its parameters. The filter's rows are counted on its
/// own index whatever their status, then the few whose status is not `processed` (read from
/// `messages_by_rare_status`) are subtracted, or counted alone when `processed` is not asked
/// for: checking each row's status would read every row of a long list. The totals the
/// writer keeps are read from its rows (`kept.rs`); `count_any_type` counts the messages of
/// any type in a time range on an index (each backend knows its best index for it).
pub(crate) fn count_sql<D: Dialect>(
    q: &MessageQuery,
    count_any_type: impl Fn(&mut Filter<D>, Option<f64>, Option<f64>) -> String,
) -> (String, Vec<Param>) {
    let tags = tags_of(q);
    let rare = |f: &mut Filter<D>, wanted: bool| {
        column_filter(f, q);
        f.push("m.status <> 'processed'");
        if wanted {
            f.any_of("m.status", &status_names(q));
        } else {
            f.none_of("m.status", &status_names(q));
        }
        if !tags.is_empty() {
            tag_probe(f, &tags, "m.time", "m.item_hash");
        }
        f.date_range("m.time", q.start_date, q.end_date);
        let from = D::indexed_by("messages m", "messages_by_rare_status");
        format!("SELECT count(*) FROM {from} {}", f.take_sql())
    };
    let mut f = Filter::<D>::default();
    if !q.statuses.is_empty() && !counts_processed(q) {
        let sql = rare(&mut f, true);
        return (sql, f.params);
    }
    let all = if let Some(kept) = kept::message_total(q) {
        kept::message_total_sql(&mut f, &kept, count_any_type)
    } else if tags_lead(q) {
        let join = if has_column_filter(q) {
            D::TAG_JOIN
        } else {
            "message_tags t"
        };
        f.any_of("t.tag", &tags);
        column_filter(&mut f, q);
        f.date_range("t.time", q.start_date, q.end_date);
        if tags.len() == 1 {
            format!("SELECT count(*) FROM {join} {}", f.take_sql())
        } else {
            format!(
                "SELECT count(*) FROM (SELECT DISTINCT t.item_hash FROM {join} {}) AS tagged",
                f.take_sql()
            )
        }
    } else {
        column_filter(&mut f, q);
        if !tags.is_empty() {
            tag_probe(&mut f, &tags, "m.time", "m.item_hash");
        }
        f.date_range("m.time", q.start_date, q.end_date);
        format!("SELECT count(*) FROM messages m {}", f.take_sql())
    };
    if q.statuses.is_empty() {
        return (all, f.params);
    }
    let others = rare(&mut f, false);
    (format!("SELECT ({all}) - ({others})"), f.params)
}
