//! `GET /api/ws0/status`: the metrics dict, sent on connect and again whenever it changes
//! (the monitor reads it every couple of seconds while someone listens). At most
//! `api.max_status_websockets` at once.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket};

use crate::upgrade::Upgrade;
use axum::response::Response;

use super::Snapshot;
use crate::AppState;

/// Close code "try again later", sent when the node is at its limit of status sockets.
const TRY_AGAIN_LATER: u16 = 1013;
/// A client that does not take a message within this time is dropped: the socket is the
/// only thing its task waits on.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn status(State(state): State<AppState>, Upgrade(upgrade): Upgrade) -> Response {
    let limit = state.config.max_websocket_message_bytes;
    upgrade
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| serve(state, socket))
}

async fn serve(state: AppState, mut socket: WebSocket) {
    let hub = state.status.clone();
    let open = hub.sockets.fetch_add(1, Ordering::SeqCst);
    if open >= state.config.max_status_websockets {
        let frame = CloseFrame {
            code: TRY_AGAIN_LATER,
            reason: "too many status websockets".into(),
        };
        let _ = socket.send(Message::Close(Some(frame))).await;
        hub.sockets.fetch_sub(1, Ordering::SeqCst);
        return;
    }
    if let Err(e) = stream(&state, socket).await {
        tracing::debug!("status websocket closed: {e}");
    }
    hub.sockets.fetch_sub(1, Ordering::SeqCst);
}

async fn send(socket: &mut WebSocket, message: Message) -> Result<(), String> {
    match tokio::time::timeout(SEND_TIMEOUT, socket.send(message)).await {
        Ok(sent) => sent.map_err(|e| e.to_string()),
        Err(_) => Err("the client stopped reading".into()),
    }
}

async fn stream(state: &AppState, mut socket: WebSocket) -> Result<(), String> {
    // Subscribed first, so a change while the counters are read is sent after them (a
    // repeat at worst, never a miss).
    let mut changes = state.status.subscribe();
    // On connect, the counters as they are now (the monitor's last reading may be older).
    let now = Snapshot::read(state)
        .await
        .map_err(|e| format!("{e:?}"))?
        .to_json();
    send(&mut socket, Message::Text(now.to_string().into())).await?;
    let ping_every = Duration::from_secs_f64(state.config.websocket_ping_secs.clamp(1.0, 86_400.0));
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    loop {
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    // The hub outlives every socket's state: not seen, but not a loop.
                    return Ok(());
                }
                let latest = changes.borrow_and_update().clone();
                if let Some(metrics) = latest {
                    send(&mut socket, Message::Text(metrics.to_string().into())).await?;
                }
            }
            _ = ping.tick() => send(&mut socket, Message::Ping(Vec::new().into())).await?,
            received = socket.recv() => match received {
                // Clients send only pings and closes; anything else is ignored.
                Some(Ok(Message::Close(_))) | None => return Ok(()),
                Some(Err(e)) => return Err(e.to_string()),
                Some(Ok(_)) => {}
            },
        }
    }
}
