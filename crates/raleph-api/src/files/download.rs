//! Downloads: a file's bytes streamed, with single byte ranges, or base64-encoded in JSON as
//! peers fetch them.

use std::io::SeekFrom;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use raleph_storage::FileInfo;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{Engine, checked_id, storage_error};
use crate::AppState;
use crate::error::{ApiError, ApiResult};

async fn locate(state: &AppState, id: &str) -> ApiResult<(std::path::PathBuf, FileInfo)> {
    checked_id(id)?;
    let files = state.files.clone();
    let lookup = id.to_owned();
    tokio::task::spawn_blocking(move || files.path_of(&lookup))
        .await
        .map_err(ApiError::internal)?
        .map_err(storage_error)?
        .ok_or_else(|| ApiError::not_found(format!("file {id} not found")))
}

/// One `bytes=` range of a `Range` header, resolved against the file size.
fn byte_range(headers: &HeaderMap, size: u64) -> Result<Option<(u64, u64)>, ApiError> {
    let Some(value) = headers.get(header::RANGE) else {
        return Ok(None);
    };
    let unsatisfiable = || {
        ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "invalid or unsatisfiable range",
        )
    };
    let spec = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("bytes="))
        .ok_or_else(unsatisfiable)?;
    if spec.contains(',') {
        // Several ranges: answer the whole file, as servers may.
        return Ok(None);
    }
    let (start, end) = spec.split_once('-').ok_or_else(unsatisfiable)?;
    let (start, end) = match (start.trim(), end.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().map_err(|_| unsatisfiable())?;
            if n == 0 || size == 0 {
                return Err(unsatisfiable());
            }
            (size.saturating_sub(n), size - 1)
        }
        (start, "") => (
            start.parse().map_err(|_| unsatisfiable())?,
            size.saturating_sub(1),
        ),
        (start, end) => {
            let end: u64 = end.parse().map_err(|_| unsatisfiable())?;
            (
                start.parse().map_err(|_| unsatisfiable())?,
                end.min(size.saturating_sub(1)),
            )
        }
    };
    if start > end || start >= size {
        return Err(unsatisfiable());
    }
    Ok(Some((start, end)))
}

/// `GET`/`HEAD /api/v0/storage/raw/{hash}` and `/ipfs/{cid}`: the bytes, streamed.
pub async fn raw(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (path, info) = locate(&state, &id).await?;
    let range = match byte_range(&headers, info.size) {
        Ok(range) => range,
        Err(e) => {
            let mut response = e.into_response();
            let unsatisfied = format!("bytes */{}", info.size);
            if let Ok(value) = HeaderValue::from_str(&unsatisfied) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            return Ok(response);
        }
    };
    let mut file = tokio::fs::File::open(&path)
        .await
        .map_err(ApiError::internal)?;
    let (status, start, length) = match range {
        Some((start, end)) => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        None => (StatusCode::OK, 0, info.size),
    };
    if start > 0 {
        file.seek(SeekFrom::Start(start))
            .await
            .map_err(ApiError::internal)?;
    }
    let stream = tokio_util::io::ReaderStream::with_capacity(file.take(length), 256 * 1024);
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if status == StatusCode::PARTIAL_CONTENT {
        let range = format!("bytes {start}-{}/{}", start + length - 1, info.size);
        headers.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&range).map_err(ApiError::internal)?,
        );
    }
    Ok(response)
}

/// `GET /api/v0/storage/{hash}`: the file base64-encoded, as peers fetch it.
pub async fn base64_file(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (path, info) = locate(&state, &id).await?;
    if info.size > state.storage.max_base64_file_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the file is too large to be sent base64-encoded",
        ));
    }
    let bytes = tokio::fs::read(&path).await.map_err(ApiError::internal)?;
    let engine = if id == info.sha256 {
        Engine::Storage
    } else {
        Engine::Ipfs
    };
    Ok(Json(json!({
        "status": "success",
        "hash": id,
        "engine": engine.name(),
        "content": base64::engine::general_purpose::STANDARD.encode(bytes),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(value: &str, size: u64) -> Result<Option<(u64, u64)>, u16> {
        let mut headers = HeaderMap::new();
        headers.insert(header::RANGE, HeaderValue::from_str(value).expect("header"));
        byte_range(&headers, size).map_err(|_| 416)
    }

    #[test]
    fn ranges() {
        assert_eq!(range("bytes=0-9", 100), Ok(Some((0, 9))));
        assert_eq!(range("bytes=90-", 100), Ok(Some((90, 99))));
        assert_eq!(range("bytes=-10", 100), Ok(Some((90, 99))));
        assert_eq!(range("bytes=50-1000", 100), Ok(Some((50, 99))));
        assert_eq!(range("bytes=0-1,5-6", 100), Ok(None));
        for bad in [
            "bytes=100-",
            "bytes=9-1",
            "items=0-1",
            "bytes=x-1",
            "bytes=-0",
        ] {
            assert_eq!(range(bad, 100), Err(416), "{bad}");
        }
    }
}
