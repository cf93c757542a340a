//! The node's status: one snapshot of its counters ([`Snapshot`]), written as Prometheus
//! text (`/metrics`) or as the reference's JSON dict (`/metrics.json`, the `/api/ws0/status`
//! websocket), and a history of samples for the explorer (`/api/v0/status/history`), kept by
//! the [`monitor`] task the node starts with its server.

pub mod monitor;
pub(crate) mod socket;

use std::fmt::Write;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use raleph_db::MessageStatus;
use raleph_message::Chain;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::error::ApiResult;
use crate::misc::VERSION;
use crate::p2p::PeerView;

/// What the node's counters say at one moment.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    /// Messages stored and served.
    pub messages: u64,
    /// Messages in the pending queue.
    pub pending: u64,
    /// Accepted messages in the intake journal not yet applied to the index.
    pub unapplied: u64,
    /// Item hashes by status, every status listed.
    pub by_status: Vec<(MessageStatus, u64)>,
    /// Open message websockets.
    pub websockets: u64,
    /// Open status websockets.
    pub status_websockets: u64,
    /// Connected peers with their counters; `None` without a peer-to-peer network.
    pub peers: Option<Vec<PeerView>>,
    /// Bytes of the files held, as last sampled by the monitor (`None` before).
    pub storage_bytes: Option<u64>,
    /// How far each chain has been read (blockchain anchoring): the last height whose
    /// events are all processed, by chain.
    pub chain_heights: Vec<(Chain, u64)>,
    /// Anchoring transactions whose archive is still looked for (the reference's pending
    /// transactions: their messages are not in yet).
    pub pending_txs: u64,
}

impl Snapshot {
    /// Reads the counters now (one read of the store's kept counts).
    pub(crate) async fn read(state: &AppState) -> ApiResult<Snapshot> {
        let (counts, positions, pending_txs) = state
            .read(|r| {
                Ok((
                    r.counts()?,
                    r.chain_positions()?,
                    r.count_missing_archives()?,
                ))
            })
            .await?;
        let peers = match &state.network {
            Some(network) => Some(network.peers().await),
            None => None,
        };
        let by_status = MessageStatus::ALL
            .into_iter()
            .map(|status| {
                let n = counts
                    .by_status
                    .iter()
                    .find(|(s, _)| *s == status)
                    .map_or(0, |(_, n)| *n);
                (status, n)
            })
            .collect();
        Ok(Snapshot {
            messages: counts.messages,
            pending: counts.pending,
            unapplied: state.pipeline.unapplied(),
            by_status,
            websockets: state.websockets.load(Ordering::Relaxed) as u64,
            status_websockets: state.status.sockets.load(Ordering::Relaxed) as u64,
            peers,
            storage_bytes: state.status.storage_bytes(),
            chain_heights: positions
                .iter()
                .filter_map(|(chain, position)| Some((*chain, synced_height(position)?)))
                .collect(),
            pending_txs,
        })
    }

    /// Messages waiting: in the pending queue or in the intake journal.
    pub(crate) fn waiting(&self) -> u64 {
        self.pending + self.unapplied
    }

    pub(crate) fn peer_count(&self) -> u64 {
        self.peers.as_ref().map_or(0, |p| p.len() as u64)
    }

    /// The reference's metrics dict (its names, `pyaleph_…`), then this node's (`raleph_…`).
    pub(crate) fn to_json(&self) -> Value {
        let by_status: Map<String, Value> = self
            .by_status
            .iter()
            .map(|(s, n)| (s.as_str().to_owned(), json!(n)))
            .collect();
        let peers: Option<Map<String, Value>> = self.peers.as_ref().map(|peers| {
            peers
                .iter()
                .map(|p| {
                    let counters: Map<String, Value> = p
                        .counters
                        .iter()
                        .map(|(name, n)| ((*name).to_owned(), json!(n)))
                        .collect();
                    (p.peer_id.clone(), Value::Object(counters))
                })
                .collect()
        });
        json!({
            "pyaleph_build_info": {"version": format!("raleph-{VERSION}")},
            "pyaleph_status_peers_total": self.peer_count(),
            "pyaleph_status_sync_messages_total": self.messages,
            "pyaleph_status_sync_pending_messages_total": self.waiting(),
            "pyaleph_status_sync_pending_txs_total": self.pending_txs,
            "raleph_intake_journal_unapplied": self.unapplied,
            "raleph_websocket_connections": self.websockets,
            "raleph_status_websocket_connections": self.status_websockets,
            "raleph_messages_by_status": by_status,
            "raleph_storage_bytes": self.storage_bytes,
            "raleph_p2p_peer_totals": peers,
            "raleph_chain_synced_height": self
                .chain_heights
                .iter()
                .map(|(chain, height)| (chain.as_str().to_owned(), json!(height)))
                .collect::<Map<String, Value>>(),
        })
    }

    /// Prometheus text.
    pub(crate) fn to_text(&self) -> String {
        let mut out = String::new();
        let mut gauge = |name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        };
        gauge(
            "pyaleph_status_sync_messages_total",
            "Messages stored and served.",
            self.messages,
        );
        gauge(
            "pyaleph_status_sync_pending_messages_total",
            "Messages waiting in the pending queue or in the intake journal.",
            self.waiting(),
        );
        gauge(
            "pyaleph_status_sync_pending_txs_total",
            "Anchoring transactions whose archive is still looked for.",
            self.pending_txs,
        );
        gauge(
            "pyaleph_status_peers_total",
            "Connected peers.",
            self.peer_count(),
        );
        gauge(
            "raleph_intake_journal_unapplied",
            "Accepted messages in the intake journal not yet applied to the index.",
            self.unapplied,
        );
        gauge(
            "raleph_websocket_connections",
            "Open message websockets.",
            self.websockets,
        );
        gauge(
            "raleph_status_websocket_connections",
            "Open status websockets.",
            self.status_websockets,
        );
        if let Some(bytes) = self.storage_bytes {
            gauge(
                "raleph_storage_bytes",
                "Bytes of the files held, as last sampled.",
                bytes,
            );
        }
        let _ = writeln!(
            out,
            "# HELP raleph_messages_by_status Item hashes by status.\n# TYPE raleph_messages_by_status gauge"
        );
        for (status, n) in &self.by_status {
            let _ = writeln!(out, "raleph_messages_by_status{{status=\"{status}\"}} {n}");
        }
        if !self.chain_heights.is_empty() {
            let _ = writeln!(
                out,
                "# HELP raleph_chain_synced_height The last block of each chain whose events are processed.\n# TYPE raleph_chain_synced_height gauge"
            );
            for (chain, height) in &self.chain_heights {
                let _ = writeln!(
                    out,
                    "raleph_chain_synced_height{{chain=\"{chain}\"}} {height}"
                );
            }
        }
        if let Some(peers) = &self.peers {
            crate::p2p::write_metrics(peers, &mut out);
        }
        let _ = writeln!(
            out,
            "# HELP pyaleph_build_info Node build.\n# TYPE pyaleph_build_info gauge\npyaleph_build_info{{version=\"raleph-{VERSION}\"}} 1"
        );
        out
    }
}

/// The height in a chain reader's saved position. The position is the reader's own document
/// (raleph-chain's `ReaderPosition`, saved by the node); its `synced_height` is the last block
/// whose events were all handed on. A position without one (no window read yet) has no height.
fn synced_height(position: &str) -> Option<u64> {
    serde_json::from_str::<Value>(position)
        .ok()?
        .get("synced_height")?
        .as_u64()
}

/// `GET /metrics`: Prometheus text.
pub async fn metrics(State(state): State<AppState>) -> ApiResult<Response> {
    let text = Snapshot::read(&state).await?.to_text();
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

/// `GET /metrics.json`: the same counters as the reference's JSON dict.
pub async fn metrics_json(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    Ok(Json(Snapshot::read(&state).await?.to_json()))
}

/// `GET /api/v0/status/history`: the monitor's samples of the last hour, oldest first.
pub async fn history(State(state): State<AppState>) -> Json<Value> {
    Json(state.status.history_json())
}
