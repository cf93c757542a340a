//! What the node knows of files, without their bytes: metadata, pin counts, upload limits,
//! the file a STORE message or a ref names, and the files of an address.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use raleph_message::ItemHash;
use serde_json::{Value, json};

use super::checked_id;
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::shapes::iso_time;

/// `GET /api/v0/storage/count/{hash}`: how many messages pin the file.
pub async fn pin_count(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<u64>> {
    checked_id(&id)?;
    let now = state.clock.now();
    let count = state
        .read(move |r| match r.file(&id)? {
            Some(file) => r.file_pin_count(&file, now),
            None => Ok(0),
        })
        .await?;
    Ok(Json(count))
}

/// `GET /api/v0/storage/limits.json`.
pub async fn limits(State(state): State<AppState>) -> Json<Value> {
    let s = &state.storage;
    Json(json!({
        "storage": {
            "max_file_size": s.max_upload_bytes,
            "max_unauthenticated_upload_file_size": s.max_unauthenticated_upload_bytes,
        },
        "ipfs": {
            "max_upload_file_size": s.max_ipfs_upload_bytes,
            "max_upload_car_size": s.max_ipfs_upload_bytes,
            "max_unauthenticated_upload_file_size": s.max_unauthenticated_upload_bytes,
        },
    }))
}

fn download_url(id: &str) -> String {
    format!("/api/v0/storage/raw/{id}")
}

/// `GET /api/v0/storage/metadata/{hash}`.
pub async fn metadata(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    checked_id(&id)?;
    let lookup = id.clone();
    let file = state
        .read(move |r| r.file(&lookup))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("file {id} not found")))?;
    Ok(Json(
        json!({"file_hash": id, "type": "file", "size": file.size, "download_url": download_url(&id)}),
    ))
}

fn pinned_json(pinned: raleph_db::PinnedFile) -> Value {
    // A free-text ref is tagged `<owner>/<ref>`; clients know it by the ref alone.
    let owner_prefix = format!("{}/", pinned.owner);
    let reference = pinned
        .tag
        .strip_prefix(&owner_prefix)
        .unwrap_or(&pinned.tag);
    json!({
        "ref": reference,
        "owner": pinned.owner,
        "file_hash": pinned.file_hash,
        "download_url": download_url(&pinned.file_hash),
        "size": pinned.size,
    })
}

/// `GET /api/v0/storage/by-message-hash/{hash}`: the file a STORE message pins.
pub async fn by_message(
    State(state): State<AppState>,
    Path(hash): Path<String>,
) -> ApiResult<Json<Value>> {
    checked_id(&hash)?;
    let not_found = || ApiError::not_found(format!("no file for message {hash}"));
    // A file id that is no item hash names no message.
    let lookup = ItemHash::parse(&hash).map_err(|_| not_found())?;
    let pinned = state
        .read(move |r| r.file_of_message(&lookup))
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(pinned_json(pinned)))
}

/// `GET /api/v0/storage/by-ref/{ref}`: the latest file of a tag.
pub async fn by_ref(
    State(state): State<AppState>,
    Path(tag): Path<String>,
) -> ApiResult<Json<Value>> {
    by_tag(state, tag).await
}

/// `GET /api/v0/storage/by-ref/{address}/{ref}`: the latest file of a free-named tag.
pub async fn by_owner_ref(
    State(state): State<AppState>,
    Path((address, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    by_tag(state, format!("{address}/{name}")).await
}

async fn by_tag(state: AppState, tag: String) -> ApiResult<Json<Value>> {
    let lookup = tag.clone();
    let pinned = state
        .read(move |r| r.file_of_tag(&lookup))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no file for ref {tag}")))?;
    Ok(Json(pinned_json(pinned)))
}

/// `GET /api/v0/addresses/{address}/files`.
pub async fn address_files(
    State(state): State<AppState>,
    Path(address): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let params = Params::parse(query.as_deref(), &state.config)?;
    let (page, per_page) = params.page(None, 100)?;
    let order = params.sort_order()?;
    let owner = address.clone();
    let offset = (page - 1).saturating_mul(per_page);
    let (files, total, total_size) = state
        .read(move |r| r.address_files(&owner, per_page, offset, order))
        .await?;
    let files: Vec<Value> = files
        .into_iter()
        .map(|f| {
            json!({
                "file_hash": f.file_hash,
                "size": f.size,
                "type": "file",
                "created": iso_time(f.created),
                "item_hash": f.item_hash,
            })
        })
        .collect();
    Ok(Json(json!({
        "address": address,
        "total_size": total_size,
        "files": files,
        "pagination_page": page,
        "pagination_total": total,
        "pagination_per_page": per_page,
    })))
}
