//! Answers the API gives where axum's own would not be JSON: a websocket route asked without
//! a websocket handshake, and a route asked with a method it does not serve. Clients read
//! `{"error": …}` from every answer of the node.

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// A websocket handshake, or the reason there is none as the API's JSON error (axum answers
/// with plain text).
pub struct Upgrade(pub WebSocketUpgrade);

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        WebSocketUpgrade::from_request_parts(parts, state)
            .await
            .map(Upgrade)
            .map_err(|rejection| {
                ApiError::new(
                    rejection.status(),
                    format!("this is a websocket: {}", rejection.body_text()),
                )
            })
    }
}

/// Gives a 405 (which axum sends empty) the API's JSON body; the headers are kept. The route's
/// `Allow` header is added after this layer has run, so the body points to it.
pub async fn method_not_allowed_as_json(response: Response) -> Response {
    if response.status() != StatusCode::METHOD_NOT_ALLOWED {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let json = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "this route does not serve that method (the Allow header lists those it does)",
    )
    .into_response();
    let (json_parts, body) = json.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    for (name, value) in &json_parts.headers {
        parts.headers.insert(name.clone(), value.clone());
    }
    Response::from_parts(parts, Body::new(body))
}
