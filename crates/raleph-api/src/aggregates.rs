//! Aggregates: the merged key-value state of each address.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use raleph_db::AggregateQuery;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::shapes::iso_time;

/// `GET /api/v0/aggregates/{address}.json`.
pub async fn of_address(
    State(state): State<AppState>,
    Path(address): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let address = address.strip_suffix(".json").unwrap_or(&address).to_owned();
    let params = Params::parse(query.as_deref());
    let keys = params.list(&["keys"]);
    let with_info = params.bool(&["with_info", "withInfo"])?;
    let value_only = params.bool(&["value_only", "valueOnly"])?;
    let owner = address.clone();
    let requested = keys.clone();
    let records = state
        .read(move |r| r.aggregates_of(&owner, &requested))
        .await?;
    if records.is_empty() {
        return Err(ApiError::not_found("No aggregate found for this address"));
    }
    let mut data = Map::new();
    let mut info = Map::new();
    for record in &records {
        let content: Value = serde_json::from_str(&record.content).map_err(ApiError::internal)?;
        data.insert(record.key.clone(), content);
        if with_info {
            info.insert(
                record.key.clone(),
                json!({
                    "created": iso_time(record.created),
                    "last_updated": iso_time(record.last_updated),
                    "original_item_hash": record.original_item_hash,
                    "last_update_item_hash": record.last_update_item_hash,
                }),
            );
        }
    }
    if value_only && keys.len() == 1 {
        return Ok(Json(
            data.into_iter()
                .next()
                .map(|(_, v)| v)
                .unwrap_or(Value::Null),
        ));
    }
    Ok(Json(
        json!({ "address": address, "data": data, "info": info }),
    ))
}

/// `GET /api/v0/aggregates`: every aggregate, filtered by keys and addresses.
pub async fn list(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let params = Params::parse(query.as_deref());
    let sort_by_creation = match params.get(&["sortBy", "sort_by"]) {
        None | Some("") | Some("last_modified") => false,
        Some("creation_time") => true,
        Some(other) => return Err(ApiError::unprocessable(format!("unknown sortBy {other:?}"))),
    };
    let (page, per_page) = params.page(None, 20)?;
    if !(1..=500).contains(&per_page) {
        return Err(ApiError::unprocessable(
            "pagination must be between 1 and 500",
        ));
    }
    let query = AggregateQuery {
        keys: params.list(&["keys"]),
        addresses: params.list(&["addresses"]),
        sort_by_creation,
        sort_order: params.sort_order()?,
        limit: per_page,
        offset: (page - 1).saturating_mul(per_page),
    };
    let counts = state.counts.clone();
    let count_key = format!(
        "{:?}",
        AggregateQuery {
            limit: 0,
            offset: 0,
            ..query.clone()
        }
    );
    let (records, total) = state
        .read(move |r| {
            let rows = r.aggregates(&query)?;
            // A short page knows its total; a long list's total is counted once and cached.
            let short = (rows.len() as u64) < query.limit;
            let total = if short && (!rows.is_empty() || query.offset == 0) {
                query.offset + rows.len() as u64
            } else {
                counts.get_or(count_key, || r.count_aggregates(&query))?
            };
            Ok((rows, total))
        })
        .await?;
    let items = records
        .iter()
        .map(|a| {
            Ok(json!({
                "address": a.owner,
                "key": a.key,
                "content": serde_json::from_str::<Value>(&a.content).map_err(ApiError::internal)?,
                "created": iso_time(a.created),
                "last_updated": iso_time(a.last_updated),
            }))
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(json!({
        "aggregates": items,
        "pagination_item": "aggregates",
        "pagination_page": page,
        "pagination_per_page": per_page,
        "pagination_total": total,
    })))
}
