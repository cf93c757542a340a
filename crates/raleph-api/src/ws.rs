//! `GET /api/ws0/messages`: recent history, then every newly processed message that matches.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::response::Response;
use raleph_db::{MessageQuery, MessageRecord, SortOrder};
use raleph_pipeline::Event;
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::messages::{content_format, message_query};
use crate::params::Params;
use crate::shapes::{self, ContentFormat};

/// Most history messages a client may ask for.
const MAX_HISTORY: u64 = 199;
const PING_EVERY: Duration = Duration::from_secs(30);
/// Close code "try again later", sent when the node is at its websocket capacity.
const TRY_AGAIN_LATER: u16 = 1013;

pub async fn messages(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    upgrade: WebSocketUpgrade,
) -> ApiResult<Response> {
    let params = Params::parse(query.as_deref(), &state.config)?;
    let mut filter = message_query(&params)?;
    let format = content_format(&params)?;
    let history = params.int(&["history"], 10)?;
    if history > MAX_HISTORY {
        return Err(ApiError::unprocessable(format!(
            "history must be at most {MAX_HISTORY}"
        )));
    }
    filter.sort_order = SortOrder::Descending;
    filter.limit = history;
    let limit = state.config.max_websocket_message_bytes;
    Ok(upgrade
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| serve(state, socket, filter, format)))
}

async fn serve(
    state: AppState,
    mut socket: WebSocket,
    filter: MessageQuery,
    format: ContentFormat,
) {
    let open = state.websockets.fetch_add(1, Ordering::SeqCst);
    if open >= state.config.max_websockets {
        let frame = CloseFrame {
            code: TRY_AGAIN_LATER,
            reason: "too many websockets".into(),
        };
        let _ = socket.send(Message::Close(Some(frame))).await;
        state.websockets.fetch_sub(1, Ordering::SeqCst);
        return;
    }
    // Subscribe before reading history so nothing processed in between is missed.
    let mut events = state.pipeline.subscribe();
    if let Err(e) = stream(&state, &mut socket, &mut events, filter, format).await {
        tracing::debug!("websocket closed: {e}");
    }
    state.websockets.fetch_sub(1, Ordering::SeqCst);
}

async fn stream(
    state: &AppState,
    socket: &mut WebSocket,
    events: &mut tokio::sync::broadcast::Receiver<Event>,
    filter: MessageQuery,
    format: ContentFormat,
) -> Result<(), String> {
    if filter.limit > 0 {
        let query = filter.clone();
        let mut history = state
            .read(move |r| r.messages(&query))
            .await
            .map_err(|e| format!("{e:?}"))?;
        history.reverse();
        for message in &history {
            send(socket, shapes::message(message, true, format)).await?;
        }
    }
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(Event::Processed(message)) if matches(&filter, &message) => {
                    send(socket, shapes::message(&message, false, format)).await?;
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return Ok(()),
            },
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ok(()),
                Some(Ok(Message::Text(text))) if text.as_str() == "close cmd" => return Ok(()),
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                socket.send(Message::Ping(Vec::new().into())).await.map_err(|e| e.to_string())?;
            }
        }
    }
}

async fn send(socket: &mut WebSocket, value: impl serde::Serialize) -> Result<(), String> {
    let text = serde_json::to_string(&value).map_err(|e| e.to_string())?;
    socket
        .send(Message::Text(text.into()))
        .await
        .map_err(|e| e.to_string())
}

/// The live filter: the list filters that can be decided from the message itself.
fn matches(q: &MessageQuery, m: &MessageRecord) -> bool {
    fn ok(list: &[String], value: Option<&str>) -> bool {
        list.is_empty() || value.is_some_and(|v| list.iter().any(|x| x == v))
    }
    let content: Value = serde_json::from_str(&m.content).unwrap_or(Value::Null);
    let text = |key: &str| content.get(key).and_then(Value::as_str);
    let tags: Vec<&str> = match m.message_type.as_str() {
        "POST" | "AGGREGATE" => content.get("content").and_then(|c| c.get("tags")),
        "STORE" => content.get("tags"),
        _ => content.get("metadata").and_then(|c| c.get("tags")),
    }
    .and_then(Value::as_array)
    .map(|tags| tags.iter().filter_map(Value::as_str).collect())
    .unwrap_or_default();
    ok(&q.message_types, Some(&m.message_type))
        && ok(&q.addresses, Some(&m.sender))
        && ok(&q.owners, text("address"))
        && ok(&q.hashes, Some(&m.item_hash))
        && ok(&q.chains, Some(&m.chain))
        && ok(&q.channels, m.channel.as_deref())
        && ok(&q.refs, text("ref"))
        && ok(
            &q.content_types,
            if m.message_type == "POST" {
                text("type")
            } else {
                None
            },
        )
        && ok(
            &q.content_keys,
            if m.message_type == "AGGREGATE" {
                text("key")
            } else {
                None
            },
        )
        && ok(
            &q.content_hashes,
            if m.message_type == "STORE" {
                text("item_hash")
            } else {
                None
            },
        )
        && (q.tags.is_empty() || tags.iter().any(|t| q.tags.iter().any(|x| x == t)))
}
