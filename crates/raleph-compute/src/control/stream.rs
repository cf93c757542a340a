//! `GET /control/machine/{ref}/stream_logs`: a program's output over a WebSocket, as the
//! reference streams it.
//!
//! Browsers cannot set headers on a WebSocket, so the client authenticates with its first
//! message, `{"auth": {"X-SignedPubKey": {...}, "X-SignedOperation": {...}}}`. The node
//! answers `{"status": "connected"}` (or `{"status": "failed", "reason": ...}` and closes),
//! then sends each line as `{"type": "stdout"|"stderr", "message": ...}`: what is kept, then
//! what comes. For a program that is not running it sends what is kept, then
//! `{"type": "system", "message": "VM is not running, past logs sent"}`, and closes.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::extract::rejection::PathRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use super::auth;
use super::routes::{self, error, exec_error};
use crate::logs::LogEntry;
use crate::spec::ProgramSpec;
use crate::{Compute, ExecError};

/// Authenticated log streams open at once, over all programs (each polls its program's log).
const MAX_STREAMS: usize = 64;
/// How long a client has to send its credentials.
const AUTH_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest message read from a client (the credentials are under 2 KiB).
const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// How often a running program's log is looked at for new lines.
const POLL: Duration = Duration::from_millis(250);

static STREAMS: LazyLock<Arc<Semaphore>> = LazyLock::new(|| Arc::new(Semaphore::new(MAX_STREAMS)));

pub(super) async fn stream_logs(
    State(compute): State<Compute>,
    reference: Result<Path<String>, PathRejection>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let hash = match reference {
        Ok(Path(hash)) if raleph_message::ItemHash::parse(&hash).is_ok() => hash,
        Ok(Path(hash)) => return error(StatusCode::BAD_REQUEST, format!("Invalid ref: '{hash}'")),
        Err(rejection) => return error(StatusCode::BAD_REQUEST, rejection.body_text()),
    };
    let spec = match compute.program(&hash).await {
        Ok(spec) => spec,
        Err(ExecError::NotFound) => {
            return error(
                StatusCode::NOT_FOUND,
                format!("No execution found for VM {hash}"),
            );
        }
        Err(e) => return exec_error(&e),
    };
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return error(rejection.status(), rejection.body_text()),
    };
    let domains = super::allowed_domains(&compute, &headers, &uri);
    upgrade
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| serve(socket, compute, hash, spec, domains))
        .into_response()
}

async fn serve(
    mut socket: WebSocket,
    compute: Compute,
    hash: String,
    spec: Arc<ProgramSpec>,
    domains: Vec<String>,
) {
    let first = match tokio::time::timeout(AUTH_TIMEOUT, next_text(&mut socket)).await {
        Ok(Some(first)) => first,
        _ => {
            let _ = socket.send(Message::Close(None)).await;
            return;
        }
    };
    let address = match credentials(&first, &domains) {
        Ok(address) => address,
        Err(reason) => return fail(socket, &reason).await,
    };
    if !auth::is_owner(&address, &spec.owner) {
        return fail(socket, "unauthorized sender").await;
    }
    // A slot is taken once the owner is known: sockets that never authenticate hold none.
    let Ok(_slot) = STREAMS.clone().try_acquire_owned() else {
        return fail(
            socket,
            "too many log streams are open on this node; try again later",
        )
        .await;
    };
    if !send(&mut socket, &json!({"status": "connected"})).await {
        return;
    }
    let mut cursor = Cursor::default();
    let kept = compute.logs(&hash);
    if !send_lines(&mut socket, cursor.new_entries(&kept)).await {
        return;
    }
    if !routes::is_running(&compute, &hash) {
        let done = json!({"type": "system", "message": "VM is not running, past logs sent"});
        if send(&mut socket, &done).await {
            let _ = socket.send(Message::Close(None)).await;
        }
        return;
    }
    loop {
        tokio::select! {
            received = socket.recv() => match received {
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                // Pings are answered by the socket itself; anything else is ignored.
                Some(Ok(_)) => {}
            },
            () = tokio::time::sleep(POLL) => {
                let entries = compute.logs(&hash);
                if !send_lines(&mut socket, cursor.new_entries(&entries)).await {
                    return;
                }
            }
        }
    }
}

/// The wallet address the first message authenticates, or why not.
fn credentials(first: &str, domains: &[String]) -> Result<String, String> {
    let message: Value = serde_json::from_str(first).map_err(|e| format!("invalid JSON: {e}"))?;
    let auth = message
        .get("auth")
        .ok_or_else(|| "missing 'auth' key in message".to_owned())?;
    auth::authenticate_packet(auth, domains, crate::now()).map_err(|e| e.message)
}

async fn fail(mut socket: WebSocket, reason: &str) {
    if send(&mut socket, &json!({"status": "failed", "reason": reason})).await {
        let _ = socket.send(Message::Close(None)).await;
    }
}

/// The next text (or UTF-8 binary) message; `None` once the client is gone.
async fn next_text(socket: &mut WebSocket) -> Option<String> {
    loop {
        match socket.recv().await? {
            Ok(Message::Text(text)) => return Some(text.as_str().to_owned()),
            Ok(Message::Binary(bytes)) => return String::from_utf8(bytes.to_vec()).ok(),
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            Ok(Message::Close(_)) | Err(_) => return None,
        }
    }
}

async fn send(socket: &mut WebSocket, value: &Value) -> bool {
    socket
        .send(Message::Text(value.to_string().into()))
        .await
        .is_ok()
}

async fn send_lines(socket: &mut WebSocket, entries: Vec<LogEntry>) -> bool {
    for (stream, _, line) in routes::lines(&entries) {
        let message = json!({"type": routes::stream_name(stream), "message": line});
        if !send(socket, &message).await {
            return false;
        }
    }
    true
}

/// Where a stream is in a program's log: the time of the last entry sent and how many entries
/// with that time were sent (the log drops its oldest entries, so positions shift).
#[derive(Default)]
struct Cursor {
    time: f64,
    at_time: usize,
}

impl Cursor {
    fn new_entries(&mut self, entries: &[LogEntry]) -> Vec<LogEntry> {
        let mut fresh = Vec::new();
        let mut at_time = 0;
        for entry in entries {
            if entry.time > self.time {
                fresh.push(entry.clone());
            } else if entry.time == self.time {
                at_time += 1;
                if at_time > self.at_time {
                    fresh.push(entry.clone());
                }
            }
        }
        if let Some(last) = entries.last()
            && last.time >= self.time
        {
            self.at_time = entries.iter().filter(|e| e.time == last.time).count();
            self.time = last.time;
        }
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::Stream;

    fn entry(time: f64, message: &str) -> LogEntry {
        LogEntry {
            time,
            stream: Stream::Stdout,
            message: message.to_owned(),
        }
    }

    #[test]
    fn the_cursor_sends_each_entry_once() {
        let mut cursor = Cursor::default();
        let first = [entry(1.0, "a"), entry(2.0, "b"), entry(2.0, "c")];
        assert_eq!(cursor.new_entries(&first).len(), 3);
        assert!(cursor.new_entries(&first).is_empty());
        // The oldest was dropped, two came, one at the same time as the last sent.
        let second = [
            entry(2.0, "b"),
            entry(2.0, "c"),
            entry(2.0, "d"),
            entry(3.0, "e"),
        ];
        let fresh: Vec<_> = cursor
            .new_entries(&second)
            .into_iter()
            .map(|e| e.message)
            .collect();
        assert_eq!(fresh, ["d", "e"]);
        assert!(cursor.new_entries(&second).is_empty());
    }
}
