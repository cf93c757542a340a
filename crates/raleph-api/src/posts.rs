//! Posts: originals folded with their latest amend, in the v0 and v1 shapes.

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use raleph_db::{PostQuery, PostRecord, ReadStore};
use serde::Serialize;

use crate::confirmations::PageConfirmations;
use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::shapes::PostShape;
use crate::{AppState, cursor, shapes};

/// The two post list shapes.
#[derive(Clone, Copy)]
enum Version {
    V0,
    V1,
}

impl Version {
    fn shape<'a>(self, p: &'a PostRecord, confirmations: &'a PageConfirmations) -> PostShape<'a> {
        match self {
            Version::V0 => shapes::post_v0(p, confirmations.of(&p.latest_item_hash)),
            Version::V1 => shapes::post_v1(p),
        }
    }

    /// The confirmations of a page's posts (their latest versions), which only v0 shows.
    fn confirmations(
        self,
        store: &dyn ReadStore,
        rows: &[PostRecord],
    ) -> raleph_db::Result<PageConfirmations> {
        match self {
            Version::V0 => PageConfirmations::read(store, rows.iter().map(|p| &p.latest_item_hash)),
            Version::V1 => Ok(PageConfirmations::default()),
        }
    }

    /// v1 shows of the latest version's message only its item hash, so the store need not
    /// read that message.
    fn latest_hash_only(self) -> bool {
        matches!(self, Version::V1)
    }
}

fn post_hint(rows: &[PostRecord]) -> usize {
    let text = rows
        .iter()
        .map(|p| {
            p.latest_content.as_ref().map_or(0, String::len)
                + p.latest
                    .as_ref()
                    .and_then(|l| l.item_content.as_ref())
                    .map_or(0, String::len)
        })
        .sum();
    shapes::size_hint(rows.len(), text)
}

/// Keys in the order the reference emits them.
#[derive(Serialize)]
struct CursorPage<'a> {
    posts: Vec<PostShape<'a>>,
    next_cursor: Option<String>,
    pagination_per_page: u64,
}

#[derive(Serialize)]
struct Page<'a> {
    pagination_item: &'static str,
    pagination_page: u64,
    pagination_per_page: u64,
    pagination_total: u64,
    posts: Vec<PostShape<'a>>,
}

pub async fn list_v0(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let params = Params::parse(query.as_deref(), &state.config)?;
    list(state, params, None, Version::V0).await
}

pub async fn page_v0(
    State(state): State<AppState>,
    Path(page): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let params = Params::parse(query.as_deref(), &state.config)?;
    list(state, params, Some(page), Version::V0).await
}

pub async fn list_v1(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let params = Params::parse(query.as_deref(), &state.config)?;
    list(state, params, None, Version::V1).await
}

pub async fn page_v1(
    State(state): State<AppState>,
    Path(page): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let params = Params::parse(query.as_deref(), &state.config)?;
    list(state, params, Some(page), Version::V1).await
}

fn post_query(params: &Params) -> ApiResult<PostQuery> {
    // Each date is checked, but an end before the start is not refused: the reference's
    // check of their order reads field names clients do not send, so it never runs, and
    // such a range lists nothing.
    let (start_date, end_date) = params.dates()?;
    // `tx-time` is checked, then listed as `time` (see `Params::sort_by_tx_time`).
    params.sort_by_tx_time()?;
    Ok(PostQuery {
        addresses: params.list(&["addresses"]),
        hashes: params.hash_list(&["hashes"])?,
        refs: params.list(&["refs"]),
        types: params.list(&["types"]),
        tags: params.list(&["tags"]),
        channels: params.list(&["channels"]),
        chains: params.list(&["chains"]),
        start_date,
        end_date,
        sort_order: params.sort_order()?,
        ..Default::default()
    })
}

async fn list(
    state: AppState,
    params: Params,
    path_page: Option<String>,
    version: Version,
) -> ApiResult<Response> {
    let mut query = post_query(&params)?;
    query.latest_hash_only = version.latest_hash_only();
    query.max_bytes = state.config.max_response_bytes;
    if let Some(position) = params.cursor()? {
        params.page_number(path_page.as_deref())?;
        let per_page = params.int(&["pagination"], 20)?;
        if per_page == 0 {
            return Err(ApiError::unprocessable(
                "pagination must be at least 1 with a cursor",
            ));
        }
        query.limit = per_page.min(200);
        query.cursor = position;
        let body = state
            .read(move |r| {
                let limit = query.limit;
                let rows = r.posts(&query)?;
                let next_cursor = (rows.len() as u64 == limit)
                    .then(|| rows.last())
                    .flatten()
                    .map(|p| {
                        cursor::encode(&raleph_db::Cursor {
                            time: p.last_updated,
                            item_hash: p.original_item_hash.to_string(),
                        })
                    });
                let confirmations = version.confirmations(r, &rows)?;
                let hint = post_hint(&rows);
                Ok(shapes::to_json(
                    &CursorPage {
                        posts: rows
                            .iter()
                            .map(|p| version.shape(p, &confirmations))
                            .collect(),
                        next_cursor,
                        pagination_per_page: limit,
                    },
                    hint,
                ))
            })
            .await??;
        return Ok(shapes::json_response(body));
    }
    let (page, per_page) = params.page(path_page.as_deref(), 20)?;
    query.limit = per_page;
    query.offset = (page - 1).saturating_mul(per_page);
    let counts = state.counts.clone();
    // The total's query: read from the store's kept totals when it keeps it (exact now),
    // otherwise counted here or, when its cached total is stale, later on the count cache's
    // thread (hence its own reader handle).
    let count_query = PostQuery {
        limit: 0,
        offset: 0,
        // The same total for both shapes.
        latest_hash_only: false,
        ..query.clone()
    };
    let count_key = format!("{count_query:?}");
    let reader = state.reader.clone();
    // The body is written on the blocking thread, straight from the rows.
    let body = state
        .read(move |r| {
            let rows = r.posts(&query)?;
            let short = query.limit == 0 || (rows.len() as u64) < query.limit;
            let total = if short && (!rows.is_empty() || query.offset == 0) {
                query.offset + rows.len() as u64
            } else if let Some(kept) = r.kept_post_total(&count_query)? {
                kept
            } else {
                counts.get_or(&count_key, move || reader.count_posts(&count_query))?
            };
            let confirmations = version.confirmations(r, &rows)?;
            let hint = post_hint(&rows);
            Ok(shapes::to_json(
                &Page {
                    pagination_item: "posts",
                    pagination_page: page,
                    pagination_per_page: per_page,
                    pagination_total: total,
                    posts: rows
                        .iter()
                        .map(|p| version.shape(p, &confirmations))
                        .collect(),
                },
                hint,
            ))
        })
        .await??;
    Ok(shapes::json_response(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::tests::{params, status};

    #[test]
    fn post_filters() {
        let reversed = post_query(&params("startDate=10&endDate=5")).expect("not refused");
        assert_eq!(
            (reversed.start_date, reversed.end_date),
            (Some(10.0), Some(5.0))
        );
        for q in ["sortBy=time", "sortBy=tx-time", "sortBy=tx-time&cursor="] {
            assert_eq!(status(post_query(&params(q))), 200, "{q}");
        }
        for q in [
            "sortBy=size",
            "sortBy=tx-time&cursor=abc",
            "hashes=abc",
            "hashes=93A23971A914E5EACBF0A8D25154CDA309C3C1C72FBB9914D47C60F3CB681588",
            "startDate=inf",
            "endDate=253402300800",
        ] {
            assert_eq!(status(post_query(&params(q))), 422, "{q}");
        }
    }
}
