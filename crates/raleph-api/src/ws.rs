//! `GET /api/ws0/messages`: recent history, then every newly processed message that matches.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::extract::{RawQuery, State};
use axum::response::Response;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use raleph_db::{MessageQuery, MessageRecord, MessageType, SortOrder};
use raleph_pipeline::Event;
use serde_json::Value;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use crate::AppState;
use crate::confirmations::PageConfirmations;
use crate::error::{ApiError, ApiResult};
use crate::messages::{content_format, message_query};
use crate::params::Params;
use crate::shapes::{self, ContentFormat};
use crate::upgrade::Upgrade;

/// Most history messages a client may ask for.
const MAX_HISTORY: u64 = 199;
/// Close code "try again later", sent when the node is at its websocket capacity.
const TRY_AGAIN_LATER: u16 = 1013;

pub async fn messages(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    Upgrade(upgrade): Upgrade,
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
    if let Err(e) = stream(&state, socket, &mut events, filter, format).await {
        tracing::debug!("websocket closed: {e}");
    }
    state.websockets.fetch_sub(1, Ordering::SeqCst);
}

/// Messages queued for one client and not yet written to its socket, in bytes: the client's
/// own count, and the count of every client together (`AppState::websocket_backlog`).
struct Backlog {
    mine: Arc<AtomicUsize>,
    all: Arc<AtomicUsize>,
    max_mine: usize,
    max_all: usize,
}

impl Backlog {
    /// Counts a message queued; false when this client, or all of them, now hold more than
    /// their limit: the client does not read what it is sent and is dropped.
    fn add(&self, bytes: usize) -> bool {
        let mine = self.mine.fetch_add(bytes, Ordering::AcqRel) + bytes;
        let all = self.all.fetch_add(bytes, Ordering::AcqRel) + bytes;
        mine <= self.max_mine && all <= self.max_all
    }

    fn sent(&self, bytes: usize) {
        self.mine.fetch_sub(bytes, Ordering::AcqRel);
        self.all.fetch_sub(bytes, Ordering::AcqRel);
    }
}

impl Drop for Backlog {
    fn drop(&mut self) {
        // What this client still had queued is gone with it.
        self.all
            .fetch_sub(self.mine.swap(0, Ordering::AcqRel), Ordering::AcqRel);
    }
}

/// Streams history then live messages to the client. The socket is written by a task of its
/// own, so that this loop keeps taking events from the node's broadcast while a client reads
/// slowly: a receiver that stopped would keep up to the broadcast's capacity of messages
/// (thousands, up to ~400 KB each) alive for it. What the client has not read yet is counted
/// (`api.max_websocket_backlog_bytes` per client, `max_websocket_backlog_total_bytes` for all);
/// a client past its share is dropped.
async fn stream(
    state: &AppState,
    socket: WebSocket,
    events: &mut tokio::sync::broadcast::Receiver<Event>,
    filter: MessageQuery,
    format: ContentFormat,
) -> Result<(), String> {
    let (sink, mut incoming) = socket.split();
    let backlog = Arc::new(Backlog {
        mine: Arc::default(),
        all: state.websocket_backlog.clone(),
        max_mine: state.config.max_websocket_backlog_bytes,
        max_all: state.config.max_websocket_backlog_total_bytes,
    });
    let (queue, queued) = tokio::sync::mpsc::unbounded_channel::<Message>();
    let writer = tokio::spawn(write_to(sink, queued, backlog.clone()));
    let result = feed(
        state,
        &queue,
        &backlog,
        &mut incoming,
        events,
        filter,
        format,
    )
    .await;
    drop(queue);
    if result.is_err() {
        // Dropped, not drained: a client that does not read would hold the writer forever.
        writer.abort();
    } else {
        let _ = writer.await;
    }
    result
}

/// Writes what is queued to the client's socket, in order, until the queue closes or the
/// socket fails.
async fn write_to(
    mut sink: SplitSink<WebSocket, Message>,
    mut queued: tokio::sync::mpsc::UnboundedReceiver<Message>,
    backlog: Arc<Backlog>,
) {
    while let Some(message) = queued.recv().await {
        let bytes = message_bytes(&message);
        let sent = sink.send(message).await;
        backlog.sent(bytes);
        if sent.is_err() {
            return;
        }
    }
    let _ = sink.close().await;
}

fn message_bytes(message: &Message) -> usize {
    match message {
        Message::Text(text) => text.len(),
        _ => 0,
    }
}

/// Queues history, then every matching event, for the writer task; answers what the client
/// sends. Fails if the client is dropped for reading too slowly.
async fn feed(
    state: &AppState,
    queue: &tokio::sync::mpsc::UnboundedSender<Message>,
    backlog: &Backlog,
    incoming: &mut SplitStream<WebSocket>,
    events: &mut tokio::sync::broadcast::Receiver<Event>,
    filter: MessageQuery,
    format: ContentFormat,
) -> Result<(), String> {
    let send = |message: &MessageRecord,
                confirmations: &[raleph_db::Confirmation],
                with_size: bool|
     -> Result<(), String> {
        let shape = shapes::message(message, with_size, format).confirmed_by(confirmations);
        let text = serde_json::to_string(&shape).map_err(|e| e.to_string())?;
        let fits = backlog.add(text.len());
        queue
            .send(Message::Text(text.into()))
            .map_err(|_| "the client's socket is closed".to_owned())?;
        match fits {
            true => Ok(()),
            false => Err("the client does not read what it is sent: dropped".to_owned()),
        }
    };
    if filter.limit > 0 {
        let mut query = filter.clone();
        query.max_bytes = state.config.max_response_bytes;
        let (mut history, confirmations) = state
            .read(move |r| {
                let history = r.messages(&query)?;
                let confirmations =
                    PageConfirmations::read(r, history.iter().map(|m| &m.envelope.item_hash))?;
                Ok((history, confirmations))
            })
            .await
            .map_err(|e| format!("{e:?}"))?;
        history.reverse();
        for message in &history {
            send(message, confirmations.of(&message.envelope.item_hash), true)?;
        }
    }
    // Within a second and a day: a zero period would spin, a huge one overflow the clock.
    let ping_every = Duration::try_from_secs_f64(state.config.websocket_ping_secs)
        .unwrap_or(Duration::ZERO)
        .clamp(Duration::from_secs(1), Duration::from_secs(24 * 3600));
    let mut ping = tokio::time::interval(ping_every);
    ping.tick().await;
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(Event::Processed(message)) if matches(&filter, &message) => {
                    // The messages processed meanwhile go with it, so that their confirmations
                    // are one read (a read per push let a busy socket fall behind the events).
                    let mut batch = vec![message];
                    while batch.len() < PUSH_BATCH {
                        match events.try_recv() {
                            Ok(Event::Processed(more)) if matches(&filter, &more) => {
                                batch.push(more)
                            }
                            Ok(_) | Err(TryRecvError::Lagged(_)) => {}
                            Err(_) => break,
                        }
                    }
                    // A message read from a chain was confirmed before it was processed. A
                    // failed read (the store is down) costs the pushes their confirmations,
                    // not the client its socket.
                    let hashes: Vec<_> =
                        batch.iter().map(|m| m.envelope.item_hash.clone()).collect();
                    let confirmations = state
                        .read(move |r| PageConfirmations::read(r, &hashes))
                        .await
                        .unwrap_or_default();
                    for message in &batch {
                        send(message, confirmations.of(&message.envelope.item_hash), false)?;
                    }
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return Ok(()),
            },
            incoming = incoming.next() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ok(()),
                Some(Ok(Message::Text(text))) if text.as_str() == "close cmd" => return Ok(()),
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                queue
                    .send(Message::Ping(Vec::new().into()))
                    .map_err(|_| "the client's socket is closed".to_owned())?;
            }
        }
    }
}

/// Most messages pushed together after one read of their confirmations.
const PUSH_BATCH: usize = 256;

/// The live filter: the list filters that can be decided from the message itself.
fn matches(q: &MessageQuery, m: &MessageRecord) -> bool {
    fn ok(list: &[String], value: Option<&str>) -> bool {
        list.is_empty() || value.is_some_and(|v| list.iter().any(|x| x == v))
    }
    let content: Value = serde_json::from_str(&m.content).unwrap_or(Value::Null);
    let text = |key: &str| content.get(key).and_then(Value::as_str);
    let message_type = m.envelope.message_type;
    let tags: Vec<&str> = match message_type {
        MessageType::Post | MessageType::Aggregate => {
            content.get("content").and_then(|c| c.get("tags"))
        }
        MessageType::Store => content.get("tags"),
        _ => content.get("metadata").and_then(|c| c.get("tags")),
    }
    .and_then(Value::as_array)
    .map(|tags| tags.iter().filter_map(Value::as_str).collect())
    .unwrap_or_default();
    ok(&q.message_types, Some(message_type.as_str()))
        && ok(&q.addresses, Some(&m.envelope.sender))
        && ok(&q.owners, text("address"))
        && ok(&q.hashes, Some(m.envelope.item_hash.as_str()))
        && ok(&q.chains, Some(m.envelope.chain.as_str()))
        && ok(&q.channels, m.envelope.channel.as_deref())
        && ok(&q.refs, text("ref"))
        && ok(
            &q.content_types,
            if message_type == MessageType::Post {
                text("type")
            } else {
                None
            },
        )
        && ok(
            &q.content_keys,
            if message_type == MessageType::Aggregate {
                text("key")
            } else {
                None
            },
        )
        && ok(
            &q.content_hashes,
            if message_type == MessageType::Store {
                text("item_hash")
            } else {
                None
            },
        )
        && (q.tags.is_empty() || tags.iter().any(|t| q.tags.iter().any(|x| x == t)))
}
