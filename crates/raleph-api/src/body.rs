//! A request body read whole, within `api.max_body_bytes` (the router's `DefaultBodyLimit`).
//!
//! axum's own `Bytes` extractor refuses a body past the limit with a `text/plain` 413; every
//! error of this API is a JSON body naming the problem (ARCHITECTURE.md, invariant 3), so the
//! routes that read a whole body take [`LimitedBody`], whose refusals are [`ApiError`]s.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;

use crate::AppState;
use crate::error::ApiError;

/// The whole body of a request, at most `api.max_body_bytes`.
pub struct LimitedBody(pub Bytes);

impl FromRequest<AppState> for LimitedBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        Bytes::from_request(request, state)
            .await
            .map(LimitedBody)
            .map_err(|rejection| refusal(&rejection, state.config.max_body_bytes))
    }
}

/// The API's error for a body axum could not read: past the limit (413, naming the limit and
/// its setting), or cut short or unreadable (axum's status, with its reason).
fn refusal(rejection: &BytesRejection, limit: usize) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {limit} bytes (api.max_body_bytes)"),
        );
    }
    ApiError::new(rejection.status(), rejection.body_text())
}
