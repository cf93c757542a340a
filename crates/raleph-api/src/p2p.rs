//! The node's peer-to-peer network, as the API sees it: gossiping accepted submissions, the
//! legacy `pubsub/pub` endpoints, and what operators read about peers.
//!
//! The API does not depend on the network stack; the node hands it a [`Network`].

use std::fmt::Write;
use std::future::Future;
use std::pin::Pin;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use raleph_message::Envelope;
use serde_json::{Value, json};

use crate::body::LimitedBody;
use crate::error::{ApiError, ApiResult};
use crate::{AppState, messages};

/// One connected peer, for `/api/v0/p2p/peers` and `/metrics`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PeerView {
    pub peer_id: String,
    pub addresses: Vec<String>,
    pub connections: usize,
    /// A raleph node (it speaks the raleph-only sync and file protocols).
    pub is_raleph: bool,
    pub http_base_url: Option<String>,
    pub version: Option<String>,
    /// Its messages are being ignored (flooding or too many invalid messages).
    pub throttled: bool,
    /// Named counters (messages received, accepted, rejected, …), in a stable order.
    pub counters: Vec<(&'static str, u64)>,
}

/// What the node's network layer offers the API.
pub trait Network: Send + Sync + 'static {
    /// Gossips an accepted message (its JSON bytes) to peers. Never blocks: under overload
    /// the network layer may drop it (peers still get it through sync).
    fn broadcast(&self, message: Vec<u8>);
    /// Whether any peer is connected: with none, there is nobody to gossip to (and nothing to
    /// serialize and sign).
    fn has_peers(&self) -> bool;
    /// The node's peer id.
    fn peer_id(&self) -> String;
    /// The node's listening multiaddrs, each ending in `/p2p/<peer id>`.
    fn addresses(&self) -> Vec<String>;
    /// The pubsub topic messages travel on (`ALEPH-TEST` on mainnet).
    fn message_topic(&self) -> String;
    /// The connected peers.
    fn peers(&self) -> Pin<Box<dyn Future<Output = Vec<PeerView>> + Send + '_>>;
}

/// `GET /api/v0/p2p/identity`.
pub async fn identity(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let network = network(&state)?;
    Ok(Json(json!({
        "peer_id": network.peer_id(),
        "addresses": network.addresses(),
    })))
}

/// `GET /api/v0/p2p/peers`.
pub async fn peers(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let network = network(&state)?;
    let peers: Vec<Value> = network
        .peers()
        .await
        .into_iter()
        .map(|p| {
            let counters: serde_json::Map<String, Value> = p
                .counters
                .iter()
                .map(|(name, n)| ((*name).to_owned(), json!(n)))
                .collect();
            json!({
                "peer_id": p.peer_id,
                "addresses": p.addresses,
                "connections": p.connections,
                "is_raleph": p.is_raleph,
                "http_base_url": p.http_base_url,
                "version": p.version,
                "throttled": p.throttled,
                "counters": counters,
            })
        })
        .collect();
    Ok(Json(json!({ "peers": peers })))
}

/// `POST /api/v0/p2p/pubsub/pub` and `/api/v0/ipfs/pubsub/pub`: `{"topic", "data"}`, where
/// `data` is a message's JSON as a string. The message is submitted here and, unless it is
/// rejected, gossiped byte for byte.
pub async fn pubsub_pub(
    State(state): State<AppState>,
    LimitedBody(body): LimitedBody,
) -> ApiResult<Response> {
    let request: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::unprocessable(format!("request body is not valid JSON: {e}")))?;
    let topic = request.get("topic").and_then(Value::as_str).unwrap_or("");
    let expected = state
        .network
        .as_ref()
        .map_or_else(|| "ALEPH-TEST".to_owned(), |n| n.message_topic());
    if topic != expected {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("only the message topic `{expected}` can be published to"),
        ));
    }
    let data = request
        .get("data")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::unprocessable("`data` must be a string"))?;
    let message: Value = serde_json::from_str(data)
        .map_err(|e| ApiError::unprocessable(format!("`data` is not valid JSON: {e}")))?;
    let envelope =
        Envelope::from_json(&message).map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let (status, _) = messages::submit_only(&state, envelope).await?;
    if status == StatusCode::UNPROCESSABLE_ENTITY {
        return Err(ApiError::unprocessable("the message was rejected"));
    }
    let failed: Vec<&str> = match &state.network {
        Some(network) => {
            network.broadcast(data.as_bytes().to_vec());
            Vec::new()
        }
        None => vec!["p2p"],
    };
    let status = if failed.is_empty() {
        "success"
    } else {
        "warning"
    };
    Ok(Json(json!({ "status": status, "failed": failed })).into_response())
}

/// Per-peer lines for `/metrics`.
pub(crate) fn write_metrics(peers: &[PeerView], out: &mut String) {
    let _ = writeln!(
        out,
        "# HELP raleph_p2p_peers Connected peers.\n# TYPE raleph_p2p_peers gauge\nraleph_p2p_peers {}",
        peers.len()
    );
    let Some(names) = peers.first().map(|p| p.counters.iter().map(|(n, _)| *n)) else {
        return;
    };
    for name in names {
        let metric = format!("raleph_p2p_peer_{name}_total");
        let _ = writeln!(
            out,
            "# HELP {metric} Per peer, since it connected.\n# TYPE {metric} counter"
        );
        for peer in peers {
            let value = peer
                .counters
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(0, |(_, v)| *v);
            let _ = writeln!(out, "{metric}{{peer=\"{}\"}} {value}", peer.peer_id);
        }
    }
}

fn network(state: &AppState) -> ApiResult<&dyn Network> {
    state
        .network
        .as_deref()
        .ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the p2p network is off"))
}
