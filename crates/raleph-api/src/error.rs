//! One error type for every route: a status code and a JSON body that names the problem.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn unprocessable(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// A failure of the node itself: logged here, never detailed to the client.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!("request failed: {error}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }
}

impl From<raleph_db::StoreError> for ApiError {
    fn from(e: raleph_db::StoreError) -> Self {
        if let raleph_db::StoreError::TooLarge { limit } = e {
            return ApiError::unprocessable(format!(
                "this page holds more than {limit} bytes of messages (api.max_response_bytes): \
                 ask for fewer per page"
            ));
        }
        if e.is_unavailable() {
            // The database is down or the disk full: the request may succeed later. Every
            // read finds it so: said once every 10 s at most.
            static LAST_LOGGED: std::sync::Mutex<Option<std::time::Instant>> =
                std::sync::Mutex::new(None);
            let mut last = LAST_LOGGED.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_none_or(|at| at.elapsed() >= std::time::Duration::from_secs(10)) {
                tracing::warn!("requests find the store unavailable: {e}");
                *last = Some(std::time::Instant::now());
            }
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the database is unavailable, retry later",
            );
        }
        ApiError::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
