//! Node information, channels, address statistics, and the payment endpoints of a node that
//! does not enforce payments.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use raleph_db::AddressStats;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::body::LimitedBody;
use crate::error::{ApiError, ApiResult};
use crate::params::Params;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub async fn version() -> Json<Value> {
    Json(json!({ "version": format!("raleph-{VERSION}") }))
}

pub async fn public_info(State(state): State<AppState>) -> Json<Value> {
    let addresses = state
        .network
        .as_ref()
        .map(|n| n.addresses())
        .unwrap_or_default();
    Json(json!({ "node_multi_addresses": addresses }))
}

pub async fn channels(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let channels = state.read(|r| r.channels()).await?;
    Ok(Json(json!({ "channels": channels })))
}

fn stats_json(s: &AddressStats) -> Value {
    json!({
        "messages": s.total(),
        "post": s.post,
        "aggregate": s.aggregate,
        "store": s.store,
        "forget": s.forget,
        "program": s.program,
        "instance": s.instance,
    })
}

pub async fn address_stats_v0(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let params = Params::parse(query.as_deref(), &state.config)?;
    let addresses = params.list(&["addresses"]);
    let stats = state.read(move |r| r.address_stats(&addresses)).await?;
    let data: Map<String, Value> = stats
        .iter()
        .map(|s| (s.address.clone(), stats_json(s)))
        .collect();
    Ok(Json(json!({ "data": data })))
}

/// Longest `addressContains` (the reference's bound: 64 characters and a `0x`).
const MAX_ADDRESS_CONTAINS_CHARS: usize = 66;

/// What address statistics sort by.
const STATS_SORT_KEYS: [&str; 7] = [
    "aggregate",
    "forget",
    "instance",
    "post",
    "program",
    "store",
    "total",
];

/// A v1 address statistics request, checked.
#[derive(Debug)]
struct StatsRequest {
    addresses: Vec<String>,
    /// `addressContains`, lowercased.
    contains: Option<String>,
    /// One of [`STATS_SORT_KEYS`].
    key: &'static str,
    ascending: bool,
    page: u64,
    per_page: u64,
}

fn stats_request(params: &Params) -> ApiResult<StatsRequest> {
    let contains = params
        .get(&["addressContains", "address_contains"])
        .map(str::to_lowercase);
    if contains
        .as_ref()
        .is_some_and(|c| c.chars().count() > MAX_ADDRESS_CONTAINS_CHARS)
    {
        return Err(ApiError::unprocessable(format!(
            "addressContains has at most {MAX_ADDRESS_CONTAINS_CHARS} characters"
        )));
    }
    let asked = params.get(&["sortBy", "sort_by"]).unwrap_or("total");
    let key = STATS_SORT_KEYS
        .into_iter()
        .find(|k| *k == asked)
        .ok_or_else(|| {
            ApiError::unprocessable(format!(
                "sortBy must be one of {}",
                STATS_SORT_KEYS.join(", ")
            ))
        })?;
    let ascending = params.sort_order()? == raleph_db::SortOrder::Ascending;
    let (page, per_page) = params.page(None, 20)?;
    Ok(StatsRequest {
        addresses: params.list(&["addresses"]),
        contains,
        key,
        ascending,
        page,
        per_page,
    })
}

pub async fn address_stats_v1(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let params = Params::parse(query.as_deref(), &state.config)?;
    let StatsRequest {
        addresses,
        contains,
        key,
        ascending,
        page,
        per_page,
    } = stats_request(&params)?;
    let mut stats = state.read(move |r| r.address_stats(&addresses)).await?;
    if let Some(part) = contains {
        stats.retain(|s| s.address.to_lowercase().contains(&part));
    }
    let metric = |s: &AddressStats| match key {
        "post" => s.post,
        "aggregate" => s.aggregate,
        "store" => s.store,
        "forget" => s.forget,
        "program" => s.program,
        "instance" => s.instance,
        _ => s.total(),
    };
    stats.sort_by_key(|s| std::cmp::Reverse(metric(s)));
    if ascending {
        stats.reverse();
    }
    let total = stats.len();
    let skip = ((page - 1) * per_page) as usize;
    let take = if per_page == 0 {
        usize::MAX
    } else {
        per_page as usize
    };
    let data: Map<String, Value> = stats
        .iter()
        .skip(skip)
        .take(take)
        .map(|s| (s.address.clone(), stats_json(s)))
        .collect();
    Ok(Json(json!({
        "data": data,
        "pagination_item": "addresses",
        "pagination_page": page,
        "pagination_per_page": per_page,
        "pagination_total": total,
    })))
}

/// A node with no balance source reports empty balances: nothing is blocked by them.
pub async fn balance(Path(address): Path<String>) -> Json<Value> {
    Json(json!({
        "address": address,
        "balance": 0.0,
        "details": null,
        "locked_amount": 0.0,
        "credit_balance": 0,
        "credit_balance_details": null,
    }))
}

/// Payments are not enforced: every message costs nothing.
pub async fn price_estimate(LimitedBody(body): LimitedBody) -> ApiResult<Json<Value>> {
    let request: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::unprocessable(format!("request body is not valid JSON: {e}")))?;
    let message = request
        .get("message")
        .ok_or_else(|| ApiError::unprocessable("`message` is required"))?;
    let content = message.get("content").cloned().or_else(|| {
        message
            .get("item_content")
            .and_then(Value::as_str)
            .and_then(|c| serde_json::from_str(c).ok())
    });
    let payment_type = content
        .as_ref()
        .and_then(|c| c.get("payment"))
        .and_then(|p| p.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("hold")
        .to_owned();
    let charged = content
        .as_ref()
        .and_then(|c| c.get("address"))
        .or_else(|| message.get("sender"))
        .cloned()
        .unwrap_or(Value::Null);
    Ok(Json(json!({
        "required_tokens": 0.0,
        "payment_type": payment_type,
        "cost": "0.000000000000000000",
        "detail": [],
        "charged_address": charged,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::tests::{params, status};

    #[test]
    fn address_stats_requests() {
        let request = stats_request(&params(&format!(
            "addressContains={}&sortBy=post&sortOrder=1",
            "A".repeat(66)
        )))
        .expect("valid");
        assert_eq!(request.contains, Some("a".repeat(66)));
        assert_eq!(request.key, "post");
        assert!(request.ascending);
        assert_eq!(stats_request(&params("")).expect("valid").key, "total");
        for q in [
            format!("addressContains={}", "a".repeat(67)),
            "sortBy=size".to_owned(),
            "sortBy=".to_owned(),
            "sortOrder=0".to_owned(),
            "page=0".to_owned(),
        ] {
            assert_eq!(status(stats_request(&params(&q))), 422, "{q}");
        }
    }
}
