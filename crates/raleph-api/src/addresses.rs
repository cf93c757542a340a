//! `GET /api/v0/addresses/{address}/post_types` and `.../channels`: what an address has
//! posted under, read from totals the store keeps per address (a few rows each).

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiResult;

pub async fn post_types(
    State(state): State<AppState>,
    Path(address): Path<String>,
) -> ApiResult<Json<Value>> {
    let owner = address.clone();
    let post_types = state.read(move |r| r.address_post_types(&owner)).await?;
    Ok(Json(
        json!({ "address": address, "post_types": post_types }),
    ))
}

pub async fn channels(
    State(state): State<AppState>,
    Path(address): Path<String>,
) -> ApiResult<Json<Value>> {
    let owner = address.clone();
    let channels = state.read(move |r| r.address_channels(&owner)).await?;
    Ok(Json(json!({ "address": address, "channels": channels })))
}
