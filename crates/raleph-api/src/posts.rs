//! Posts: originals folded with their latest amend, in the v0 and v1 shapes.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use raleph_db::{PostQuery, PostRecord};
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::{AppState, cursor, shapes};

type Shape = fn(&PostRecord) -> Value;

pub async fn list_v0(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    list(
        state,
        Params::parse(query.as_deref()),
        None,
        shapes::post_v0,
    )
    .await
}

pub async fn page_v0(
    State(state): State<AppState>,
    Path(page): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    list(
        state,
        Params::parse(query.as_deref()),
        Some(page),
        shapes::post_v0,
    )
    .await
}

pub async fn list_v1(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    list(
        state,
        Params::parse(query.as_deref()),
        None,
        shapes::post_v1,
    )
    .await
}

pub async fn page_v1(
    State(state): State<AppState>,
    Path(page): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    list(
        state,
        Params::parse(query.as_deref()),
        Some(page),
        shapes::post_v1,
    )
    .await
}

fn post_query(params: &Params) -> ApiResult<PostQuery> {
    let (start_date, end_date) = params.date_range()?;
    Ok(PostQuery {
        addresses: params.list(&["addresses"]),
        hashes: params.list(&["hashes"]),
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
    shape: Shape,
) -> ApiResult<Json<Value>> {
    let mut query = post_query(&params)?;
    if let Some(position) = params.cursor()? {
        let per_page = params.int(&["pagination"], 20)?;
        if per_page == 0 {
            return Err(ApiError::unprocessable(
                "pagination must be at least 1 with a cursor",
            ));
        }
        query.limit = per_page.min(200);
        query.cursor = position;
        let limit = query.limit;
        let rows = state.read(move |r| r.posts(&query)).await?;
        let next = (rows.len() as u64 == limit)
            .then(|| rows.last())
            .flatten()
            .map(|p| {
                cursor::encode(&raleph_db::Cursor {
                    time: p.last_updated,
                    item_hash: p.original_item_hash.clone(),
                })
            });
        return Ok(Json(json!({
            "posts": rows.iter().map(shape).collect::<Vec<_>>(),
            "next_cursor": next,
            "pagination_per_page": limit,
        })));
    }
    let (page, per_page) = params.page(path_page.as_deref(), 20)?;
    query.limit = per_page;
    query.offset = (page - 1).saturating_mul(per_page);
    let counts = state.counts.clone();
    let count_key = format!(
        "{:?}",
        PostQuery {
            limit: 0,
            offset: 0,
            ..query.clone()
        }
    );
    let (posts, total) = state
        .read(move |r| {
            let rows = r.posts(&query)?;
            let short = query.limit == 0 || (rows.len() as u64) < query.limit;
            let total = if short && (!rows.is_empty() || query.offset == 0) {
                query.offset + rows.len() as u64
            } else {
                counts.get_or(count_key, || r.count_posts(&query))?
            };
            Ok((rows.iter().map(shape).collect::<Vec<_>>(), total))
        })
        .await?;
    Ok(Json(json!({
        "pagination_item": "posts",
        "pagination_page": page,
        "pagination_per_page": per_page,
        "pagination_total": total,
        "posts": posts,
    })))
}
