//! The node's side of the peer-to-peer network: what raleph-p2p delivers is checked and
//! submitted here, accepted submissions are gossiped, raleph peers are synced from, and files
//! the pipeline misses are fetched from peers.
//!
//! - `gossip`: inbound messages (checked, submitted, then reported to gossipsub so only valid
//!   ones are forwarded) and outbound publication.
//! - `sync`: answering `SyncMessages` from the store's sync log, and pulling every raleph
//!   peer's log from the last sequence number seen (kept per peer in `sync-cursors.json`).
//! - `fetch`: files and non-inline content from raleph peers (`FetchFile`) or any node's HTTP
//!   API (`GET /api/v0/storage/{hash}`), verified against their hash before they are stored.

mod base64_json;
mod fetch;
mod gossip;
mod sync;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use raleph_api::p2p::PeerView;
use raleph_db::ReadStore;
use raleph_p2p::{Multiaddr, Network, NetworkEvent, NetworkHandle, P2pConfig, PeerId, PeerInfo};
use raleph_pipeline::PipelineHandle;
use raleph_storage::{FileStore, StorageConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

pub use fetch::FetchRequests;
pub(crate) use fetch::MIN_CHUNK;
pub(crate) use sync::not_held;

/// How the node catches up with its peers and fetches what it misses.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncConfig {
    /// Seconds between two pulls of every raleph peer's log (a pull also starts as soon as a
    /// raleph peer is identified).
    pub interval_secs: f64,
    /// Messages asked for per sync request.
    pub batch: u32,
    /// Most bytes of message JSON in one sync answer.
    pub max_answer_bytes: usize,
    /// Received gossip messages being checked at once; more wait (and gossipsub keeps them).
    pub max_inbound_checks: usize,
    /// Files fetched from peers at once.
    pub max_concurrent_fetches: usize,
    /// Bytes per `FetchFile` request.
    pub fetch_chunk_bytes: u32,
    /// Seconds an HTTP peer gets to answer a file request.
    pub http_fetch_timeout_secs: f64,
    /// HTTP API base URLs of other nodes to fetch files from, besides those announced. Kept
    /// even when they fail (then rested for `http_peer_rest_secs` after
    /// `http_peer_max_failures` failures in a row).
    pub http_peers: Vec<String>,
    /// Most HTTP peers known at once; announcements past it are ignored. An announced peer
    /// that fails `http_peer_max_failures` times in a row (no answer, timeout, redirect,
    /// 5xx, bad answer; not a 404) is dropped, and its announcements ignored for
    /// `http_peer_dropped_secs`.
    pub max_http_peers: usize,
    /// Failures in a row after which an HTTP peer is dropped (announced) or rested
    /// (configured, for `http_peer_rest_secs`). At least 1.
    pub http_peer_max_failures: u32,
    /// Seconds a configured HTTP peer that keeps failing is not asked (at most a year).
    pub http_peer_rest_secs: f64,
    /// Seconds the announcements of a dropped HTTP peer are ignored (at most a year).
    pub http_peer_dropped_secs: f64,
    /// Seconds a peer (raleph or HTTP) that served bytes not matching the hash asked for is
    /// not asked again (at most a year).
    pub bad_peer_penalty_secs: f64,
    /// Seconds after a failed fetch during which the same file is not looked for again (its
    /// message waits in the pending queue meanwhile; at most a year).
    pub fetch_retry_after_secs: f64,
    /// Most messages a peer may ask for in one sync request; a larger ask is served this
    /// many. This node's own requests (`batch`) are capped to it too. From 1 to 100 000.
    pub max_served_batch: u32,
    /// Largest file chunk answered to one `FetchFile`, bytes; this node's own requests
    /// (`fetch_chunk_bytes`) are capped to it too. At least 64 KiB, and 64 KiB less than
    /// `p2p.max_response_bytes` at most, so a chunk and its header fit in one answer.
    pub max_served_chunk_bytes: u32,
    /// Messages accepted by the API waiting to be gossiped; past it a message is not
    /// published (peers get it by sync). From 1 to 1 000 000.
    pub max_outbound_gossip: usize,
    /// Forgotten-message records a pull keeps while it waits for the FORGET that proves
    /// them in the next pages; past it the others are dropped (a later pull brings them
    /// again). At most 1 000 000.
    pub max_carried_skeletons: usize,
    /// File fetches queued for the fetchers; past it a request is dropped (its message
    /// waits in the pending queue and asks again). From 1 to 1 000 000.
    pub max_queued_fetches: usize,
    /// Files remembered as being fetched or recently failed (so a file is not asked for
    /// twice at once, or again before `fetch_retry_after_secs`); past it the expired ones
    /// are forgotten. From 1 to 10 000 000.
    pub max_remembered_fetches: usize,
}

/// The longest a `[sync]` duration may be: a year. Longer ones overflow the clock's
/// arithmetic on some platforms, and no node needs them.
pub(crate) const MAX_SYNC_DURATION_SECS: f64 = 365.0 * 24.0 * 3600.0;

impl SyncConfig {
    /// `secs` as a duration, within 0 and [`MAX_SYNC_DURATION_SECS`] whatever it is (the
    /// configuration refuses values outside; a config built in code is not checked).
    fn duration(secs: f64) -> std::time::Duration {
        let secs = if secs.is_nan() { 0.0 } else { secs };
        std::time::Duration::from_secs_f64(secs.clamp(0.0, MAX_SYNC_DURATION_SECS))
    }

    pub(crate) fn http_peer_rest(&self) -> std::time::Duration {
        Self::duration(self.http_peer_rest_secs)
    }

    pub(crate) fn http_peer_dropped_for(&self) -> std::time::Duration {
        Self::duration(self.http_peer_dropped_secs)
    }

    pub(crate) fn bad_peer_penalty(&self) -> std::time::Duration {
        Self::duration(self.bad_peer_penalty_secs)
    }

    pub(crate) fn fetch_retry_after(&self) -> std::time::Duration {
        Self::duration(self.fetch_retry_after_secs)
    }
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            interval_secs: 5.0,
            batch: 500,
            max_answer_bytes: 4 * 1024 * 1024,
            max_inbound_checks: 512,
            max_concurrent_fetches: 4,
            fetch_chunk_bytes: 4 * 1024 * 1024,
            http_fetch_timeout_secs: 30.0,
            http_peers: Vec::new(),
            max_http_peers: 1_000,
            http_peer_max_failures: 3,
            http_peer_rest_secs: 600.0,
            http_peer_dropped_secs: 3600.0,
            bad_peer_penalty_secs: 3600.0,
            fetch_retry_after_secs: 2.0,
            max_served_batch: 2_000,
            max_served_chunk_bytes: 4 * 1024 * 1024,
            max_outbound_gossip: 4096,
            max_carried_skeletons: 10_000,
            max_queued_fetches: 1024,
            max_remembered_fetches: 10_000,
        }
    }
}

/// What the network parts share.
pub(crate) struct Shared {
    handle: NetworkHandle,
    pipeline: PipelineHandle,
    reader: Arc<dyn ReadStore>,
    files: FileStore,
    storage: StorageConfig,
    config: SyncConfig,
    message_topic: String,
    data_dir: PathBuf,
    /// The time sync records things at (the pipeline's clock).
    clock: Arc<dyn raleph_pipeline::Clock>,
    /// HTTP API base URLs of other nodes (announced on ALIVE, told in Hello, configured),
    /// without this node's own.
    http_peers: fetch::HttpPeers,
}

/// The running network, as the API sees it.
pub struct NodeNetwork {
    shared: Arc<Shared>,
    outbound: mpsc::Sender<Vec<u8>>,
}

pub struct Started {
    pub network: Arc<NodeNetwork>,
    /// Requests for content the pipeline found missing; hand to the node's `ContentSource`.
    pub fetches: FetchRequests,
}

/// The libp2p settings of the node's configuration: the top-level `p2p_addr`, `peers` and
/// `node_key` override `[p2p]`'s `listen`, `peers` and `key`.
pub fn p2p_config(
    mut p2p: P2pConfig,
    p2p_addr: SocketAddr,
    peers: &[String],
    node_key: PathBuf,
    api_url: String,
) -> anyhow::Result<P2pConfig> {
    let ip = match p2p_addr.ip() {
        std::net::IpAddr::V4(ip) => format!("/ip4/{ip}"),
        std::net::IpAddr::V6(ip) => format!("/ip6/{ip}"),
    };
    p2p.listen = format!("{ip}/tcp/{}", p2p_addr.port())
        .parse()
        .context("p2p address as a multiaddr")?;
    for peer in peers {
        let addr: Multiaddr = peer
            .parse()
            .with_context(|| format!("peer {peer:?} is not a multiaddr"))?;
        p2p.peers.push(addr);
    }
    p2p.key = node_key;
    if p2p.http_base_url.is_none() {
        p2p.http_base_url = Some(api_url);
    }
    Ok(p2p)
}

#[allow(clippy::too_many_arguments)]
pub async fn start(
    p2p: P2pConfig,
    config: SyncConfig,
    pipeline: PipelineHandle,
    reader: Arc<dyn ReadStore>,
    files: FileStore,
    storage: StorageConfig,
    data_dir: PathBuf,
    clock: Arc<dyn raleph_pipeline::Clock>,
) -> anyhow::Result<Started> {
    let message_topic = p2p.message_topic.clone();
    let http_peers = fetch::HttpPeers::new(
        &config.http_peers,
        p2p.http_base_url.clone(),
        fetch::HttpPeerRules::of(&config),
    );
    let (handle, events) = Network::start(p2p).await.context("start the p2p network")?;
    let shared = Arc::new(Shared {
        handle,
        pipeline,
        reader,
        files,
        storage,
        config,
        message_topic,
        data_dir,
        clock,
        http_peers,
    });
    let (outbound, outbound_rx) = mpsc::channel(shared.config.max_outbound_gossip.max(1));
    tokio::spawn(gossip::publish_loop(shared.clone(), outbound_rx));
    let syncer = sync::Syncer::spawn(shared.clone());
    let fetches = fetch::spawn(shared.clone());
    tokio::spawn(event_loop(shared.clone(), events, syncer));
    Ok(Started {
        network: Arc::new(NodeNetwork { shared, outbound }),
        fetches,
    })
}

async fn event_loop(
    shared: Arc<Shared>,
    mut events: mpsc::Receiver<NetworkEvent>,
    syncer: sync::Syncer,
) {
    let checks = Arc::new(tokio::sync::Semaphore::new(
        shared.config.max_inbound_checks.max(1),
    ));
    while let Some(event) = events.recv().await {
        match event {
            NetworkEvent::Message {
                id,
                source,
                author,
                topic,
                data,
            } => {
                let Ok(permit) = checks.clone().acquire_owned().await else {
                    return;
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    gossip::check_and_submit(&shared, id, source, author, &topic, &data).await;
                    drop(permit);
                });
            }
            NetworkEvent::InboundRequest {
                peer,
                request,
                reply,
            } => {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let answer = sync::answer(&shared, peer, request).await;
                    let _ = reply.send(answer);
                });
            }
            NetworkEvent::PeerIdentified {
                peer,
                is_raleph,
                http_base_url,
                ..
            } => {
                if let Some(url) = http_base_url {
                    shared.add_http_peer(&url);
                }
                if is_raleph {
                    syncer.sync_now(peer);
                }
            }
            NetworkEvent::HttpPeer { url, .. } => shared.add_http_peer(&url),
            NetworkEvent::PeerConnected { peer, address } => {
                tracing::debug!(%peer, %address, "peer connected");
            }
            NetworkEvent::PeerDisconnected { peer } => {
                tracing::debug!(%peer, "peer disconnected");
            }
            _ => {}
        }
    }
}

impl Shared {
    fn add_http_peer(&self, url: &str) {
        self.http_peers.add(url);
    }

    /// The HTTP peers to fetch from now (not dropped nor resting), healthiest first.
    fn http_peers(&self) -> Vec<String> {
        self.http_peers.list()
    }

    /// Connected raleph peers.
    async fn raleph_peers(&self) -> Vec<PeerId> {
        match self.handle.connected_peers().await {
            Ok(peers) => peers
                .into_iter()
                .filter(|p| p.is_raleph)
                .map(|p| p.peer_id)
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

impl raleph_api::p2p::Network for NodeNetwork {
    fn broadcast(&self, message: Vec<u8>) {
        if self.outbound.try_send(message).is_err() {
            tracing::debug!("gossip queue full: a message was not published (peers sync it)");
        }
    }

    fn has_peers(&self) -> bool {
        self.shared.handle.connected_peer_count() > 0
    }

    fn peer_id(&self) -> String {
        self.shared.handle.local_peer_id().to_string()
    }

    fn addresses(&self) -> Vec<String> {
        self.shared
            .handle
            .listen_addrs()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn message_topic(&self) -> String {
        self.shared.message_topic.clone()
    }

    fn peers(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<PeerView>> + Send + '_>> {
        Box::pin(async move {
            let peers = self
                .shared
                .handle
                .connected_peers()
                .await
                .unwrap_or_default();
            peers.into_iter().map(peer_view).collect()
        })
    }
}

fn peer_view(p: PeerInfo) -> PeerView {
    let c = &p.counters;
    PeerView {
        peer_id: p.peer_id.to_string(),
        addresses: p.addresses.iter().map(ToString::to_string).collect(),
        connections: p.connections,
        is_raleph: p.is_raleph,
        http_base_url: p.http_base_url,
        version: p.node_version,
        throttled: p.throttled,
        counters: vec![
            ("messages_received", c.messages_received),
            ("bytes_received", c.bytes_received),
            ("messages_accepted", c.messages_accepted),
            ("messages_rejected", c.messages_rejected),
            ("messages_relayed_rejected", c.messages_relayed_rejected),
            ("messages_ignored", c.messages_ignored),
            ("messages_throttled", c.messages_throttled),
            ("messages_author_throttled", c.messages_author_throttled),
            ("messages_dropped", c.messages_dropped),
            ("requests_received", c.requests_received),
            ("requests_served", c.requests_served),
            ("requests_sent", c.requests_sent),
        ],
    }
}
