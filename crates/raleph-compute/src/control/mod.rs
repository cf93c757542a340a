//! The compute node API the published CLI uses for programs: executions, allocation notices,
//! and owner-signed control of a program (logs, stop, reboot), with the reference compute
//! node's (aleph-vm) paths and shapes.
//!
//! - `GET /about/executions/list`, `GET /v2/about/executions/list`: the programs running.
//! - `POST /control/allocation/notify` `{"instance": hash}`: start a program now.
//! - `GET /control/machine/{ref}/logs`, `GET .../stream_logs` (WebSocket),
//!   `POST .../stop`, `POST .../reboot`: for the program's owner only, who signs each request
//!   with an ephemeral key their wallet authorized ([`auth`]; the client side is [`client`]).
//!
//! Map: `auth` checks the two headers, `wallet` the ETH and SOL wallet signatures, `time`
//! reads and writes the dates, `routes` and `stream` are the handlers.

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::Compute;

pub mod auth;
pub mod client;
mod routes;
mod stream;
pub mod time;
mod wallet;

/// The domains a signed operation may name: the configured one, or the request's host.
fn allowed_domains(
    compute: &Compute,
    headers: &axum::http::HeaderMap,
    uri: &axum::http::Uri,
) -> Vec<String> {
    let configured = compute.config().domain.trim();
    if configured.is_empty() {
        auth::request_domains(headers, uri.host())
    } else {
        vec![configured.to_ascii_lowercase()]
    }
}

/// Routes under `/about` and `/control`.
pub fn router(compute: Compute) -> Router {
    let max_body_bytes = compute.config().max_control_body_bytes;
    Router::new()
        .route(
            "/about/executions/list",
            get(routes::executions_v1).fallback(routes::method_not_allowed),
        )
        .route(
            "/v2/about/executions/list",
            get(routes::executions_v2).fallback(routes::method_not_allowed),
        )
        .route(
            "/control/allocation/notify",
            post(routes::notify).fallback(routes::method_not_allowed),
        )
        .route(
            "/control/machine/{reference}/logs",
            get(routes::logs).fallback(routes::method_not_allowed),
        )
        .route(
            "/control/machine/{reference}/stream_logs",
            get(stream::stream_logs).fallback(routes::method_not_allowed),
        )
        .route(
            "/control/machine/{reference}/stop",
            post(routes::stop).fallback(routes::method_not_allowed),
        )
        .route(
            "/control/machine/{reference}/reboot",
            post(routes::reboot).fallback(routes::method_not_allowed),
        )
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn(cors))
        .with_state(compute)
}

/// CORS as the reference allows it on these routes (the web console calls them from its own
/// origin, with credentials and the two custom headers): any origin, echoed back.
async fn cors(request: Request, next: Next) -> Response {
    let origin = request.headers().get(header::ORIGIN).cloned();
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = if preflight {
        let mut response = StatusCode::OK.into_response();
        let asked = request.headers();
        let headers = response.headers_mut();
        if let Some(method) = asked.get(header::ACCESS_CONTROL_REQUEST_METHOD) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, method.clone());
        }
        if let Some(wanted) = asked.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, wanted.clone());
        }
        response
    } else {
        next.run(request).await
    };
    if let Some(origin) = origin {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("*"),
        );
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}
