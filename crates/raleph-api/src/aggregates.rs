//! Aggregates: the merged key-value state of each address.

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use raleph_db::AggregateQuery;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::shapes::{self, IsoTime, iso_time};

/// Stored aggregate content, passed through (see `shapes::stored_json`); an aggregate whose
/// stored text is not JSON fails the request, as it always has.
fn content(text: &str) -> ApiResult<&RawValue> {
    shapes::stored_json(text).ok_or_else(|| ApiError::internal("stored aggregate is not JSON"))
}

/// Keys and values, written as one JSON object in this order.
struct Entries<'a>(Vec<(&'a str, &'a RawValue)>);

impl Serialize for Entries<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().copied())
    }
}

#[derive(Serialize)]
struct OfAddress<'a> {
    address: &'a str,
    data: Entries<'a>,
    info: Map<String, Value>,
}

/// `keys`, `with_info` and `value_only` of an address's aggregates.
fn of_address_params(params: &Params) -> ApiResult<(Vec<String>, bool, bool)> {
    // Unused, as by the reference, which still wants an integer.
    params.signed_int(&["limit"])?;
    Ok((
        params.list(&["keys"]),
        params.bool(&["with_info", "withInfo"])?,
        params.bool(&["value_only", "valueOnly"])?,
    ))
}

/// `GET /api/v0/aggregates/{address}.json`.
pub async fn of_address(
    State(state): State<AppState>,
    Path(address): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let address = address.strip_suffix(".json").unwrap_or(&address).to_owned();
    let params = Params::parse(query.as_deref(), &state.config)?;
    let (keys, with_info, value_only) = of_address_params(&params)?;
    let owner = address.clone();
    let requested = keys.clone();
    let max_bytes = state.config.max_response_bytes;
    let records = state
        .read(move |r| r.aggregates_of_bounded(&owner, &requested, max_bytes))
        .await?;
    if records.is_empty() {
        return Err(ApiError::not_found("No aggregate found for this address"));
    }
    let text = records.iter().map(|r| r.content.len()).sum();
    let hint = shapes::size_hint(records.len(), text);
    let mut data = Vec::with_capacity(records.len());
    let mut info = Map::new();
    for record in &records {
        data.push((record.key.as_str(), content(&record.content)?));
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
    let body = if value_only && keys.len() == 1 {
        // Records is not empty, so there is a first value.
        shapes::to_json(&data.first().map(|(_, v)| *v), hint)?
    } else {
        shapes::to_json(
            &OfAddress {
                address: &address,
                data: Entries(data),
                info,
            },
            hint,
        )?
    };
    Ok(shapes::json_response(body))
}

/// An aggregate as listed, keys in the order the reference emits them.
#[derive(Serialize)]
struct Listed<'a> {
    address: &'a str,
    key: &'a str,
    content: &'a RawValue,
    created: IsoTime,
    last_updated: IsoTime,
}

#[derive(Serialize)]
struct Page<'a> {
    aggregates: Vec<Listed<'a>>,
    pagination_item: &'static str,
    pagination_page: u64,
    pagination_per_page: u64,
    pagination_total: u64,
}

/// The page of aggregates asked for: `(query, page, per_page)`.
fn list_query(params: &Params) -> ApiResult<(AggregateQuery, u64, u64)> {
    let sort_by_creation = match params.get(&["sortBy", "sort_by"]) {
        None | Some("") | Some("last_modified") => false,
        Some("creation_time") => true,
        Some(other) => return Err(ApiError::unprocessable(format!("unknown sortBy {other:?}"))),
    };
    // 1 to 500 as given: 0 is not the "no limit" it is elsewhere.
    if !(1..=500).contains(&params.int(&["pagination"], 20)?) {
        return Err(ApiError::unprocessable(
            "pagination must be between 1 and 500",
        ));
    }
    let (page, per_page) = params.page(None, 20)?;
    let query = AggregateQuery {
        keys: params.list(&["keys"]),
        addresses: params.list(&["addresses"]),
        sort_by_creation,
        sort_order: params.sort_order()?,
        limit: per_page,
        offset: (page - 1).saturating_mul(per_page),
        max_bytes: 0,
    };
    Ok((query, page, per_page))
}

/// `GET /api/v0/aggregates`: every aggregate, filtered by keys and addresses.
pub async fn list(State(state): State<AppState>, RawQuery(query): RawQuery) -> ApiResult<Response> {
    let params = Params::parse(query.as_deref(), &state.config)?;
    let (mut query, page, per_page) = list_query(&params)?;
    query.max_bytes = state.config.max_response_bytes;
    let counts = state.counts.clone();
    // The total's query: read from the store's kept totals when it keeps it (exact now),
    // otherwise counted here or, when its cached total is stale, later on the count cache's
    // thread (hence its own reader handle).
    let count_query = AggregateQuery {
        limit: 0,
        offset: 0,
        ..query.clone()
    };
    let count_key = format!("{count_query:?}");
    let reader = state.reader.clone();
    // The body is written on the blocking thread, straight from the rows.
    let body = state
        .read(move |r| {
            let rows = r.aggregates(&query)?;
            // A short page knows its total; a long list's total is kept by the store, or
            // counted once and cached.
            let short = (rows.len() as u64) < query.limit;
            let total = if short && (!rows.is_empty() || query.offset == 0) {
                query.offset + rows.len() as u64
            } else if let Some(kept) = r.kept_aggregate_total(&count_query)? {
                kept
            } else {
                counts.get_or(&count_key, move || reader.count_aggregates(&count_query))?
            };
            let text = rows.iter().map(|a| a.content.len()).sum();
            let hint = shapes::size_hint(rows.len(), text);
            let aggregates = rows
                .iter()
                .map(|a| {
                    Ok(Listed {
                        address: &a.owner,
                        key: &a.key,
                        content: content(&a.content)?,
                        created: IsoTime::new(a.created),
                        last_updated: IsoTime::new(a.last_updated),
                    })
                })
                .collect::<ApiResult<Vec<_>>>();
            Ok(aggregates.and_then(|aggregates| {
                shapes::to_json(
                    &Page {
                        aggregates,
                        pagination_item: "aggregates",
                        pagination_page: page,
                        pagination_per_page: per_page,
                        pagination_total: total,
                    },
                    hint,
                )
            }))
        })
        .await??;
    Ok(shapes::json_response(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::tests::{params, status};

    #[test]
    fn list_pagination_is_1_to_500_as_given() {
        for (q, per_page) in [("", 20), ("pagination=1", 1), ("pagination=500", 500)] {
            let (query, _, got) = list_query(&params(q)).expect("valid");
            assert_eq!((query.limit, got), (per_page, per_page), "{q}");
        }
        for q in ["pagination=0", "pagination=501", "pagination=-1", "page=0"] {
            assert_eq!(status(list_query(&params(q))), 422, "{q}");
        }
    }

    #[test]
    fn an_address_limit_is_an_integer() {
        for q in ["limit=5", "limit=-3", "limit=", "limit=%201_0%20"] {
            assert_eq!(status(of_address_params(&params(q))), 200, "{q}");
        }
        for q in ["limit=x", "limit=1.5", "with_info=maybe"] {
            assert_eq!(status(of_address_params(&params(q))), 422, "{q}");
        }
        let (_, with_info, value_only) =
            of_address_params(&params("with_info=t&value_only=yes")).expect("valid");
        assert!(with_info && value_only);
    }
}
