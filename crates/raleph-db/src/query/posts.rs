//! Post lists and their totals, for both backends.
//!
//! A post is listed as its original (`posts p`, `amends IS NULL`) folded with its latest
//! version. Tags are met one of two ways: the versions holding them lead when they are few
//! (bounded by the tags' size), otherwise each original's latest version is probed for them
//! (quick when the tags are common).

use super::messages::tag_probe;
use super::{keyset, limit_offset, order_by};
use crate::PostQuery;
use crate::kept;
use crate::shared::distinct_tags;
use crate::sql::{Dialect, Filter, Param};

/// How a post list meets its tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PostTags {
    /// Originals in list order, each latest version probed for the tags: quick when the tags
    /// are common (a page is found early), a scan of every post when they are rare.
    Probe,
    /// The versions holding the tags, each joined to its original, then sorted: bounded by
    /// the tags' size.
    Lead,
}

/// Tag rows up to which a post page starts from the tags; past this, a page of originals in
/// list order is expected to meet enough tagged ones sooner.
pub(crate) const POST_TAG_LEAD_MAX: u64 = 2048;

/// How many tag rows the query's tags have, counted no further than `POST_TAG_LEAD_MAX + 1`
/// (to choose [`PostTags`]); `None` when the query has no tags (they are then probed).
pub(crate) fn tag_rows_sql<D: Dialect>(q: &PostQuery) -> Option<(String, Vec<Param>)> {
    if q.tags.is_empty() {
        return None;
    }
    let tags: Vec<String> = distinct_tags(&q.tags)
        .into_iter()
        .map(str::to_owned)
        .collect();
    let mut f = Filter::<D>::default();
    f.any_of("tag", &tags);
    let sql = format!(
        "SELECT count(*) FROM (SELECT 1 FROM message_tags {} LIMIT {}) AS t",
        f.sql(),
        POST_TAG_LEAD_MAX + 1
    );
    Some((sql, f.params))
}

/// The tag strategy for this many tag rows.
pub(crate) fn post_tags(tag_rows: u64) -> PostTags {
    if tag_rows <= POST_TAG_LEAD_MAX {
        PostTags::Lead
    } else {
        PostTags::Probe
    }
}

fn post_filter<D: Dialect>(q: &PostQuery, tags: PostTags) -> Filter<D> {
    let mut f = Filter::<D>::default();
    f.push("p.amends IS NULL");
    f.any_of("p.owner", &q.addresses);
    f.any_of("p.item_hash", &q.hashes);
    f.any_of("p.ref", &q.refs);
    f.any_of("p.type", &q.types);
    f.any_of("p.channel", &q.channels);
    f.any_of("om.chain", &q.chains);
    if !q.tags.is_empty() {
        let list: Vec<String> = distinct_tags(&q.tags)
            .into_iter()
            .map(str::to_owned)
            .collect();
        match tags {
            PostTags::Probe => tag_probe(&mut f, &list, "lm.time", "lm.item_hash"),
            PostTags::Lead => {
                let tag = f.detached(|f| f.any_of("tag", &list));
                f.push(format!(
                    "lp.item_hash IN (SELECT item_hash FROM message_tags WHERE {tag})"
                ));
            }
        }
    }
    f.date_range("p.last_updated", q.start_date, q.end_date);
    f
}

/// The tables a post filter reads, from `posts p`: the original's message `om` for chains,
/// the latest version's message `lm` to probe its tags, or, when the tags lead, the versions
/// holding them (`lp`) joined to their originals. Every original has its message and a
/// latest version, so these joins never drop a row: they are made only when a filter reads
/// them.
fn post_filter_from<D: Dialect>(q: &PostQuery, tags: PostTags) -> String {
    let cross = D::CROSS_JOIN;
    let mut from = match tags {
        // A version is its own original or an amend of it, and is the latest one when the
        // original says so.
        PostTags::Lead => format!(
            "FROM posts lp
            {cross} posts p ON p.item_hash = coalesce(lp.amends, lp.item_hash)
                AND lp.item_hash = coalesce(p.latest_amend, p.item_hash)"
        ),
        PostTags::Probe => "FROM posts p".to_owned(),
    };
    if !q.chains.is_empty() {
        from.push_str(" JOIN messages om ON om.item_hash = p.item_hash");
    }
    if tags == PostTags::Probe && !q.tags.is_empty() {
        from.push_str(" JOIN messages lm ON lm.item_hash = coalesce(p.latest_amend, p.item_hash)");
    }
    from
}

/// A post total, and its parameters: the writer's kept total when it keeps it, otherwise
/// the originals that pass the filter, on the posts index alone unless a filter reads a
/// message (chains) or the tags (which then lead: counting starts from the versions holding
/// them).
pub(crate) fn count_sql<D: Dialect>(q: &PostQuery) -> (String, Vec<Param>) {
    let mut kept = Filter::<D>::default();
    if let Some(sql) = kept::post_total_sql(&mut kept, q) {
        return (sql, kept.params);
    }
    let tags = if q.tags.is_empty() {
        PostTags::Probe
    } else {
        PostTags::Lead
    };
    let f = post_filter::<D>(q, tags);
    (
        format!(
            "SELECT count(*) {} {}",
            post_filter_from::<D>(q, tags),
            f.sql()
        ),
        f.params,
    )
}

/// The columns of a listed post, from its original `p` and its latest version's message
/// `lm`, in the order the backends map them. An original that was never amended (most) is
/// its own latest version: its content is on `p` and its signature on `lm`; only an amended
/// one reads its latest amend's post row and its original's message.
const POST_COLUMNS: &str = "p.item_hash, p.type, p.owner, p.ref, p.channel, p.creation_time,
    p.last_updated, p.latest_amend IS NOT NULL,
    CASE WHEN p.latest_amend IS NULL THEN p.content
        ELSE (SELECT a.content FROM posts a WHERE a.item_hash = p.latest_amend) END,
    CASE WHEN p.latest_amend IS NULL THEN lm.signature
        ELSE (SELECT o.signature FROM messages o WHERE o.item_hash = p.item_hash) END,
    lm.item_hash, lm.chain, lm.signature, lm.item_type, lm.item_content, lm.time, lm.size";

/// `POST_COLUMNS` for a caller that shows only the latest version's item hash
/// (`PostQuery::latest_hash_only`): the post rows alone, no message read. A NULL chain marks
/// the version's message as unread (`rows::post`); the constants are cast so that both
/// backends give them the columns' types.
const POST_SUMMARY_COLUMNS: &str = "p.item_hash, p.type, p.owner, p.ref, p.channel,
    p.creation_time, p.last_updated, p.latest_amend IS NOT NULL,
    CASE WHEN p.latest_amend IS NULL THEN p.content
        ELSE (SELECT a.content FROM posts a WHERE a.item_hash = p.latest_amend) END,
    CAST(NULL AS TEXT), coalesce(p.latest_amend, p.item_hash), CAST(NULL AS TEXT),
    CAST(NULL AS TEXT), CAST(NULL AS TEXT), CAST(NULL AS TEXT), CAST(0.0 AS DOUBLE PRECISION),
    CAST(0 AS BIGINT)";

/// A page of posts, the tags met as `tags` says. The page is chosen first, carrying only
/// each original's row id (or item hash) through the sort (the `(…, last_updated)` indexes
/// leave the `item_hash` tie-break to a sorter, which would otherwise hold whole joined rows,
/// content and item content included, each spilling to overflow pages); then only the page's
/// rows are joined to their latest versions. The join does not keep the page's order: the
/// caller puts the rows back in it (`shared::sort_posts`).
pub(crate) fn page_sql<D: Dialect>(q: &PostQuery, tags: PostTags) -> (String, Vec<Param>) {
    let mut f = post_filter::<D>(q, tags);
    keyset(
        &mut f,
        "p.last_updated",
        "p.item_hash",
        q.sort_order,
        &q.cursor,
    );
    let cross = D::CROSS_JOIN;
    let (columns, latest_message) = if q.latest_hash_only {
        (POST_SUMMARY_COLUMNS, String::new())
    } else {
        (
            POST_COLUMNS,
            format!("{cross} messages lm ON lm.item_hash = coalesce(p.latest_amend, p.item_hash)"),
        )
    };
    let id = D::ROW_ID.unwrap_or("item_hash");
    let sql = format!(
        "SELECT {columns}
         FROM (SELECT p.{id} AS id {} {} {} {}) page
         {cross} posts p ON p.{id} = page.id
         {latest_message}",
        post_filter_from::<D>(q, tags),
        f.sql(),
        order_by("p.last_updated", "p.item_hash", q.sort_order),
        limit_offset(q.limit, q.offset)
    );
    (sql, f.params)
}
