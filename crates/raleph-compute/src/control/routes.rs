//! The handlers: executions, allocation notices, and what an owner may do to a program.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::auth;
use super::time;
use crate::logs::{LogEntry, Stream};
use crate::spec::ProgramSpec;
use crate::{Compute, ExecError};

/// A body axum could not read, as every other failure here (axum's own answer is plain
/// text): past the routes' limit a 413 naming it, otherwise axum's status and reason.
fn body_refused(rejection: &BytesRejection, limit: usize) -> Response {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body is larger than {limit} bytes (compute.max_control_body_bytes)"
            ),
        );
    }
    error(rejection.status(), rejection.body_text())
}

/// Every failure: `{"error": message}`.
pub(super) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

pub(super) fn exec_error(e: &ExecError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    error(status, e.to_string())
}

fn text(message: String) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}

pub(super) async fn method_not_allowed(method: Method) -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method {method} is not allowed here"),
    )
}

/// The reference's `vm_type`: a PROGRAM is a `microvm`, or a `persistent_program`.
fn vm_type(spec: &ProgramSpec) -> &'static str {
    if spec.persistent {
        "persistent_program"
    } else {
        "microvm"
    }
}

/// Whether `hash` (or a program it is the original of) is loaded now.
pub(super) fn is_running(compute: &Compute, hash: &str) -> bool {
    compute.loaded().iter().any(|(loaded, spec)| {
        loaded == hash || spec.item_hash == hash || spec.replaces.as_deref() == Some(hash)
    })
}

/// `GET /about/executions/list`: the programs running now, by item hash. Programs have no
/// network of their own here: the addresses are empty strings (the shape the SDK validates).
pub(super) async fn executions_v1(State(compute): State<Compute>) -> Response {
    let list: Map<String, Value> = compute
        .loaded()
        .into_iter()
        .map(|(hash, spec)| {
            let entry = json!({
                "networking": {"ipv4": "", "ipv6": ""},
                "vm_type": vm_type(&spec),
                "awaiting_confidential_init": false,
            });
            (hash, entry)
        })
        .collect();
    Json(Value::Object(list)).into_response()
}

/// `GET /v2/about/executions/list`: the same with status times and `running`. The node keeps
/// no execution times: they are null.
pub(super) async fn executions_v2(State(compute): State<Compute>) -> Response {
    let list: Map<String, Value> = compute
        .loaded()
        .into_iter()
        .map(|(hash, spec)| {
            let entry = json!({
                "networking": {
                    "ipv4_network": "",
                    "host_ipv4": "",
                    "ipv6_network": "",
                    "ipv6_ip": "",
                    "ipv4_ip": "",
                    "mapped_ports": {},
                },
                "status": {
                    "defined_at": null,
                    "preparing_at": null,
                    "prepared_at": null,
                    "starting_at": null,
                    "started_at": null,
                    "stopping_at": null,
                    "stopped_at": null,
                },
                "running": true,
                "awaiting_confidential_init": false,
                "vm_type": vm_type(&spec),
            });
            (hash, entry)
        })
        .collect();
    Json(Value::Object(list)).into_response()
}

/// `POST /control/allocation/notify` `{"instance": hash}`: start it now. The reference takes
/// INSTANCE messages only (and answers 400 for a PROGRAM); this node runs PROGRAMs only, so a
/// PROGRAM is loaded, and anything else gets the reference's answer for an instance it
/// cannot host.
pub(super) async fn notify(
    State(compute): State<Compute>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            return body_refused(&rejection, compute.config().max_control_body_bytes);
        }
    };
    let Ok(value) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "Body is not valid JSON");
    };
    let Some(hash) = value.get("instance").and_then(Value::as_str) else {
        return error(StatusCode::BAD_REQUEST, "instance: field required");
    };
    if raleph_message::ItemHash::parse(hash).is_err() {
        return error(
            StatusCode::BAD_REQUEST,
            format!("instance: not an item hash: '{hash}'"),
        );
    }
    match compute.program(hash).await {
        Ok(_) => match compute.ensure_running(hash).await {
            Ok(()) => Json(json!({
                "success": true,
                "successful": true,
                "failing": [],
                "errors": {},
            }))
            .into_response(),
            Err(e) => (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({
                    "success": false,
                    "successful": false,
                    "failing": [hash],
                    "errors": {hash: e.to_string()},
                })),
            )
                .into_response(),
        },
        Err(ExecError::NotFound) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "This CRN cannot host the requested instance at this time.",
        ),
        Err(e) => exec_error(&e),
    }
}

/// A request the owner signed, for a program this node knows.
struct Owned {
    hash: String,
    address: String,
    spec: Arc<ProgramSpec>,
}

/// The reference's order: authentication (400/401), the reference (400), the program (404);
/// whether the signer owns it is left to the handler, which may answer 404 first.
async fn signed_request(
    compute: &Compute,
    reference: Result<Path<String>, PathRejection>,
    method: &Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    unknown: fn(&str) -> String,
) -> Result<Owned, Response> {
    let domains = super::allowed_domains(compute, headers, uri);
    let address = auth::authenticate(headers, method.as_str(), uri.path(), &domains, crate::now())
        .map_err(|e| error(e.status, e.message))?;
    let hash = match reference {
        Ok(Path(hash)) if raleph_message::ItemHash::parse(&hash).is_ok() => hash,
        Ok(Path(hash)) => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!("Invalid ref: '{hash}'"),
            ));
        }
        Err(rejection) => return Err(error(StatusCode::BAD_REQUEST, rejection.body_text())),
    };
    let spec = match compute.program(&hash).await {
        Ok(spec) => spec,
        Err(ExecError::NotFound) => return Err(error(StatusCode::NOT_FOUND, unknown(&hash))),
        Err(e) => return Err(exec_error(&e)),
    };
    Ok(Owned {
        hash,
        address,
        spec,
    })
}

fn unauthorized_sender() -> Response {
    error(StatusCode::FORBIDDEN, "Unauthorized sender")
}

/// `GET /control/machine/{ref}/logs`: what the program printed, as the reference lists its
/// journal: `[{"SYSLOG_IDENTIFIER", "MESSAGE", "file", "__REALTIME_TIMESTAMP"}, ...]`, one
/// entry a line.
pub(super) async fn logs(
    State(compute): State<Compute>,
    reference: Result<Path<String>, PathRejection>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    const NONE: &str = "No execution found for this VM";
    let unknown = |_: &str| NONE.to_owned();
    let owned = match signed_request(&compute, reference, &method, &uri, &headers, unknown).await {
        Ok(owned) => owned,
        Err(response) => return response,
    };
    let entries = compute.logs(&owned.hash);
    if entries.is_empty() && !is_running(&compute, &owned.hash) {
        return error(StatusCode::NOT_FOUND, NONE);
    }
    if !auth::is_owner(&owned.address, &owned.spec.owner) {
        return unauthorized_sender();
    }
    let mut body = String::from("[");
    for (i, (stream, time, line)) in lines(&entries).into_iter().enumerate() {
        if i > 0 {
            body.push_str(",\n");
        }
        let name = stream_name(stream);
        let entry = json!({
            "SYSLOG_IDENTIFIER": format!("vm-{}-{name}", owned.hash),
            "MESSAGE": line,
            "file": name,
            "__REALTIME_TIMESTAMP": time::format_journal(time),
        });
        body.push_str(&entry.to_string());
    }
    body.push(']');
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A signed request to act on a program, from its owner only (403 otherwise).
async fn signed_by_owner(
    compute: &Compute,
    reference: Result<Path<String>, PathRejection>,
    method: &Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
) -> Result<Owned, Response> {
    let owned = signed_request(compute, reference, method, uri, headers, no_vm).await?;
    if !auth::is_owner(&owned.address, &owned.spec.owner) {
        return Err(unauthorized_sender());
    }
    Ok(owned)
}

/// `POST /control/machine/{ref}/stop`.
pub(super) async fn stop(
    State(compute): State<Compute>,
    reference: Result<Path<String>, PathRejection>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let owned = match signed_by_owner(&compute, reference, &method, &uri, &headers).await {
        Ok(owned) => owned,
        Err(response) => return response,
    };
    if compute.stop(&owned.hash) {
        tracing::info!(program = %owned.hash, "stopped by its owner");
        text(format!("Stopped VM with ref {}", owned.hash))
    } else {
        text("Already stopped, nothing to do".to_owned())
    }
}

/// `POST /control/machine/{ref}/reboot`: stop, then start again (started even if it was not
/// running, where the reference only says it will be).
pub(super) async fn reboot(
    State(compute): State<Compute>,
    reference: Result<Path<String>, PathRejection>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let owned = match signed_by_owner(&compute, reference, &method, &uri, &headers).await {
        Ok(owned) => owned,
        Err(response) => return response,
    };
    let was_running = is_running(&compute, &owned.hash);
    if let Err(e) = compute.restart(&owned.hash).await {
        return exec_error(&e);
    }
    tracing::info!(program = %owned.hash, "rebooted by its owner");
    if was_running {
        text(format!("Rebooted VM with ref {}", owned.hash))
    } else {
        text(format!(
            "Starting VM (was not running) with ref {}",
            owned.hash
        ))
    }
}

/// The reference's 404 for stop and reboot.
fn no_vm(hash: &str) -> String {
    format!("No virtual machine with ref {hash}")
}

pub(super) fn stream_name(stream: Stream) -> &'static str {
    match stream {
        Stream::Stdout => "stdout",
        Stream::Stderr => "stderr",
    }
}

/// The log as lines, as journald records a process's output: consecutive writes to the same
/// stream are joined until a newline, then split at each one.
pub(super) fn lines(entries: &[LogEntry]) -> Vec<(Stream, f64, String)> {
    let mut out = Vec::new();
    let mut pending: Option<(Stream, f64, String)> = None;
    let flush = |pending: (Stream, f64, String), out: &mut Vec<(Stream, f64, String)>| {
        let (stream, time, text) = pending;
        let text = text.strip_suffix('\n').unwrap_or(&text);
        for line in text.split('\n') {
            out.push((
                stream,
                time,
                line.strip_suffix('\r').unwrap_or(line).to_owned(),
            ));
        }
    };
    for entry in entries {
        match pending.as_mut() {
            Some((stream, _, text)) if *stream == entry.stream && !text.ends_with('\n') => {
                text.push_str(&entry.message);
            }
            _ => {
                if let Some(done) = pending.take() {
                    flush(done, &mut out);
                }
                pending = Some((entry.stream, entry.time, entry.message.clone()));
            }
        }
    }
    if let Some(done) = pending {
        flush(done, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(stream: Stream, time: f64, message: &str) -> LogEntry {
        LogEntry {
            time,
            stream,
            message: message.to_owned(),
        }
    }

    #[test]
    fn output_becomes_lines() {
        let entries = [
            entry(Stream::Stdout, 1.0, "a"),
            entry(Stream::Stdout, 2.0, "b\nc\n"),
            entry(Stream::Stderr, 3.0, "oops\r\n"),
            entry(Stream::Stdout, 4.0, "d"),
        ];
        let got: Vec<_> = lines(&entries)
            .into_iter()
            .map(|(s, t, l)| (stream_name(s), t, l))
            .collect();
        assert_eq!(
            got,
            [
                ("stdout", 1.0, "ab".to_owned()),
                ("stdout", 1.0, "c".to_owned()),
                ("stderr", 3.0, "oops".to_owned()),
                ("stdout", 4.0, "d".to_owned()),
            ]
        );
    }
}
