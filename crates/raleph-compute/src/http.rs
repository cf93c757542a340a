//! The front door: `/vm/{item_hash}/...` and host-based routing (the first DNS label is the
//! base32 of the program's hash), plus the listings the reference serves about programs.

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde::Deserialize;
use serde_json::json;

use crate::{Compute, ExecError};

/// Routes served by compute, to merge into the node's router.
pub fn router(compute: Compute) -> Router {
    Router::new()
        .route("/vm/{*rest}", any(vm_by_path))
        .route("/vm/", any(missing_hash))
        .route("/api/v0/runtimes", get(runtimes))
        .route("/api/v0/programs/on/message", get(on_message))
        .with_state(compute.clone())
        .merge(crate::control::router(compute))
}

/// A middleware for the whole node: a request whose Host names a program (its first label
/// is the program hash in base32) goes to that program, whatever its path.
pub async fn route_by_host(
    State(compute): State<Compute>,
    request: Request,
    next: Next,
) -> Response {
    let program = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(program_of_host);
    match program {
        Some(item_hash) => {
            let prefix = String::new();
            call(&compute, &item_hash, prefix, request).await
        }
        None => next.run(request).await,
    }
}

async fn missing_hash() -> Response {
    error(StatusCode::BAD_REQUEST, "missing program item hash".into())
}

async fn vm_by_path(State(compute): State<Compute>, request: Request) -> Response {
    let path = request.uri().path();
    let after = path.strip_prefix("/vm/").unwrap_or_default();
    let hash = after.split('/').next().unwrap_or_default().to_owned();
    if raleph_message::ItemHash::parse(&hash).is_err() {
        return error(
            StatusCode::BAD_REQUEST,
            format!("invalid message reference: {hash:?}"),
        );
    }
    let prefix = format!("/vm/{hash}");
    call(&compute, &hash, prefix, request).await
}

/// Runs the program and turns the answer (or the failure) into a response.
async fn call(compute: &Compute, item_hash: &str, prefix: String, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path();
    let rest = path.strip_prefix(prefix.as_str()).unwrap_or(path);
    let rest = if rest.starts_with('/') {
        rest.to_owned()
    } else {
        format!("/{rest}")
    };
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_owned();
    let target = match parts.uri.query() {
        Some(query) => format!("http://{host}{rest}?{query}"),
        None => format!("http://{host}{rest}"),
    };
    parts.uri = match target.parse() {
        Ok(uri) => uri,
        Err(_) => return error(StatusCode::BAD_REQUEST, "invalid request target".into()),
    };
    if let Ok(value) = HeaderValue::from_str(&host) {
        parts.headers.insert("x-forwarded-host", value);
    }
    if !prefix.is_empty()
        && let Ok(value) = HeaderValue::from_str(&prefix)
    {
        parts.headers.insert("x-forwarded-prefix", value);
    }
    let request = http::Request::from_parts(parts, body);
    match compute.handle(item_hash, request).await {
        Ok((response, code_ref)) => {
            let (mut parts, body) = response.into_parts();
            if let Ok(value) = HeaderValue::from_str(item_hash) {
                parts.headers.insert("aleph-program-itemhash", value);
            }
            if let Ok(value) = HeaderValue::from_str(&code_ref) {
                parts.headers.insert("aleph-program-code-ref", value);
            }
            Response::from_parts(parts, Body::new(body))
        }
        Err(failure) => failed(item_hash, failure),
    }
}

fn failed(item_hash: &str, failure: ExecError) -> Response {
    let status = StatusCode::from_u16(failure.status()).unwrap_or(StatusCode::BAD_GATEWAY);
    match &failure {
        // What went wrong inside is the owner's to read (the program's log); the caller
        // gets an id to quote.
        ExecError::Crashed(detail) | ExecError::Internal(detail) => {
            let id = error_id(item_hash, detail);
            tracing::info!(program = item_hash, error_id = %id, "program failed: {detail}");
            let body = json!({"error": failure.to_string(), "error_id": id});
            (status, axum::Json(body)).into_response()
        }
        _ => error(status, failure.to_string()),
    }
}

fn error(status: StatusCode, message: String) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

fn error_id(item_hash: &str, detail: &str) -> String {
    let seed = format!("{item_hash}{detail}{}", crate::now());
    raleph_message::sha256_hex(seed.as_bytes())[..16].to_owned()
}

async fn runtimes(State(compute): State<Compute>) -> Response {
    axum::Json(compute.runtimes()).into_response()
}

#[derive(Deserialize)]
struct ListParams {
    sort_order: Option<i32>,
}

/// The reference's shape: `[{item_hash, content: {on: {message: [...]}}}]`.
async fn on_message(State(compute): State<Compute>, Query(params): Query<ListParams>) -> Response {
    let newest_first = params.sort_order.unwrap_or(-1) < 0;
    let list: Vec<_> = compute
        .listeners(newest_first)
        .into_iter()
        .map(|l| json!({"item_hash": l.item_hash, "content": {"on": {"message": l.subscriptions}}}))
        .collect();
    axum::Json(list).into_response()
}

/// The program a host name points to: its first label is the lowercase unpadded base32
/// (RFC 4648) of the 32-byte hash, 52 characters, as the reference's `VM_URL_HOST`.
pub fn program_of_host(host: &str) -> Option<String> {
    let label = host.split(['.', ':']).next()?;
    if label.len() != 52 {
        return None;
    }
    let bytes = base32_decode(label)?;
    (bytes.len() == 32).then(|| hex::encode(bytes))
}

/// Lowercase unpadded base32 of bytes (the inverse of [`program_of_host`]'s decoding).
pub fn base32_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer = 0u32;
    let mut bits = 0;
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let mut buffer = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let value = match c.to_ascii_lowercase() {
            c @ b'a'..=b'z' => c - b'a',
            c @ b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        buffer = (buffer << 5) | u32::from(value);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    // Leftover bits must be zero padding, or the text is not the encoding of any bytes.
    if buffer & ((1 << bits) - 1) != 0 {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::{prop_assert_eq, proptest};

    #[test]
    fn a_host_label_names_a_program() {
        let hash = "b8f3fa5bf4a9a8f42f6e8e9e8b2c8e2e1b8f3fa5bf4a9a8f42f6e8e9e8b2c8e2";
        let label = base32_encode(&hex::decode(hash).unwrap());
        assert_eq!(label.len(), 52);
        assert_eq!(
            program_of_host(&format!("{label}.aleph.sh")).as_deref(),
            Some(hash)
        );
        assert_eq!(
            program_of_host(&format!("{label}:4024")).as_deref(),
            Some(hash)
        );
        assert_eq!(program_of_host("localhost:4024"), None);
        assert_eq!(program_of_host("127.0.0.1"), None);
        assert_eq!(program_of_host(&format!("{}.x", "1".repeat(52))), None);
    }

    proptest! {
        #[test]
        fn base32_round_trips(bytes in proptest::collection::vec(proptest::num::u8::ANY, 32)) {
            let text = base32_encode(&bytes);
            prop_assert_eq!(base32_decode(&text), Some(bytes));
        }

        #[test]
        fn any_host_is_handled(host in "\\PC{0,80}") {
            let _ = program_of_host(&host);
        }
    }
}
