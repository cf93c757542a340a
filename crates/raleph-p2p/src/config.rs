//! `[p2p]` configuration: every limit and interval of the libp2p layer, with its default.

use std::path::PathBuf;
use std::time::Duration;

use libp2p::Multiaddr;
use serde::{Deserialize, Serialize};

/// Settings of the libp2p layer. Defaults match the reference nodes where the reference has a
/// value (p2p.md §0, §4.1) and are otherwise sized for a mainnet node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct P2pConfig {
    /// Address to listen on. The reference listens on `/ip4/0.0.0.0/tcp/4025`.
    pub listen: Multiaddr,
    /// Peers dialed at start and re-dialed every `redial_interval_secs` while disconnected.
    /// They should end in `/p2p/<peer id>`, as reference dial targets do.
    pub peers: Vec<Multiaddr>,
    /// The identity key file (see `load_or_create_identity`).
    pub key: PathBuf,
    /// The gossipsub topic of Aleph messages. Mainnet really is called `ALEPH-TEST`.
    pub message_topic: String,
    /// The gossipsub topic of liveness announcements.
    pub alive_topic: String,
    /// The topic every raleph node subscribes to, so peers recognise each other without
    /// opening any extra stream (see the crate docs).
    pub raleph_topic: String,
    /// This node's HTTP API base URL (`http://<public ip>:4024`), announced in ALIVE and Hello.
    pub http_base_url: Option<String>,
    /// Addresses to announce instead of the bound listen addresses (for example the public
    /// `/ip4/<ip>/tcp/4025` behind NAT). Empty: announce the listen addresses.
    pub announce_addrs: Vec<Multiaddr>,
    /// The version string announced in ALIVE and Hello.
    pub version: String,
    /// How often ALIVE is published, seconds (the reference: 120).
    pub alive_interval_secs: f64,
    /// How often configured and ALIVE-announced peers are re-dialed while disconnected, seconds.
    pub redial_interval_secs: f64,
    /// Forget an ALIVE-announced address not announced again within this time, seconds (24 h,
    /// as the reference).
    pub alive_peer_ttl_secs: f64,
    /// Dial the addresses other nodes share: the P2P addresses of ALIVE announcements and the
    /// `known_peers` of raleph Hello answers.
    pub dial_discovered: bool,
    /// Most ALIVE-announced P2P addresses remembered.
    pub max_known_peers: usize,
    /// A connection without traffic that keeps it alive is closed after this long, seconds.
    pub idle_connection_timeout_secs: f64,
    /// Capacity of the event channel towards the node.
    pub event_channel_capacity: usize,
    /// Events held inside the swarm task while the node's channel is full. Beyond it, gossip
    /// messages are dropped (and counted) rather than buffered.
    pub event_backlog: usize,
    /// Message rate of one sender: a token bucket of this many messages...
    ///
    /// A gossip message is held against its signed author (gossipsub's `from`) when that is
    /// known and is not the peer that relayed it, since reference nodes relay gossip without
    /// checking it; else against the relaying peer. Every peer also has a second bucket of the
    /// same size for all it sends, its own and relayed messages together: past it, relayed
    /// messages are ignored, never held against the relaying peer.
    pub flood_burst: u32,
    /// ...refilled at this many messages per second.
    pub flood_rate_per_sec: f64,
    /// A sender (see `flood_burst`) whose messages the node rejected more than this many times
    /// within `reject_window_secs` has its further messages ignored until the window passes,
    /// whoever relays them. Rejected messages relayed for another author count against that
    /// author only, and gossipsub is told to ignore them rather than reject them, so that an
    /// honest relaying peer is never penalised.
    pub max_rejects: u32,
    /// The window of `max_rejects`, seconds.
    pub reject_window_secs: f64,
    /// A peer's own messages (authored by it, or unsigned) ignored while it is throttled or
    /// penalised before it is disconnected and banned. Relayed messages never count.
    pub ignored_before_ban: u32,
    /// Most authors of relayed messages (who are not connected peers) whose rate and rejects
    /// are tracked. When full, authors whose `reject_window_secs` is over are forgotten; if
    /// none is, new authors are not tracked until some are (their messages are then bounded by
    /// their relaying peers' buckets only).
    pub max_tracked_authors: usize,
    /// Inbound `/raleph/1` requests waiting for the node's answer, across all peers; past it
    /// requests are answered "busy" at once.
    pub max_pending_inbound: usize,
    /// The same for one peer, so that one peer cannot take every place.
    pub max_pending_inbound_per_peer: usize,
    /// How long a banned peer's connections are refused, seconds.
    pub ban_secs: f64,
    /// Largest request accepted on `/raleph/1`, bytes.
    pub max_request_bytes: usize,
    /// Largest response accepted on `/raleph/1`, bytes.
    pub max_response_bytes: usize,
    /// How long an outbound `/raleph/1` request may take, seconds.
    pub request_timeout_secs: f64,
    /// Most established connections, inbound and outbound together; a connection past it is
    /// closed once its handshake ends. 0: no limit.
    pub max_connections: u32,
    /// Most established inbound connections, kept below `max_connections` so that peers
    /// dialing in cannot take every place and leave none for this node's own dials (an
    /// eclipse). 0: no limit.
    pub max_incoming_connections: u32,
    /// Most established connections to one peer (two nodes that dial each other at once hold
    /// two). 0: no limit.
    pub max_connections_per_peer: u32,
    /// Most inbound connections still in their handshake (Noise, muxer) at once; past it a new
    /// inbound connection is closed at once. 0: no limit.
    pub max_pending_incoming: u32,
    /// Most outbound dials in progress at once; past it a dial fails at once (and is retried
    /// at the next re-dial). 0: no limit.
    pub max_pending_outgoing: u32,
    /// Most streams open at once on one yamux connection (every stream may buffer up to
    /// 256 KiB the node has not read yet). libp2p's default is 512.
    pub yamux_max_streams: usize,
    /// Most streams open at once on one mplex connection (used only by peers that offer no
    /// yamux; gossipsub needs two). Past it the peer's new streams are reset.
    pub mplex_max_streams: usize,
    /// Frames (up to 1 MiB each) an mplex stream buffers before the connection stops reading
    /// until the node has read them, so one mplex connection holds at most
    /// `mplex_max_streams` × this many MiB. libp2p's default is 32.
    pub mplex_max_buffered_frames: usize,
}

impl Default for P2pConfig {
    fn default() -> Self {
        P2pConfig {
            listen: "/ip4/0.0.0.0/tcp/4025"
                .parse()
                .expect("the default listen address is a valid multiaddr"),
            peers: Vec::new(),
            key: PathBuf::from("node-secret.key"),
            message_topic: "ALEPH-TEST".to_string(),
            alive_topic: "ALIVE".to_string(),
            raleph_topic: "raleph/1".to_string(),
            http_base_url: None,
            announce_addrs: Vec::new(),
            version: concat!("raleph-", env!("CARGO_PKG_VERSION")).to_string(),
            alive_interval_secs: 120.0,
            redial_interval_secs: 60.0,
            alive_peer_ttl_secs: 24.0 * 3600.0,
            dial_discovered: true,
            max_known_peers: 1_000,
            idle_connection_timeout_secs: 120.0,
            event_channel_capacity: 1_024,
            event_backlog: 4_096,
            flood_burst: 2_000,
            flood_rate_per_sec: 1_000.0,
            max_rejects: 100,
            reject_window_secs: 600.0,
            ignored_before_ban: 1_000,
            max_tracked_authors: 10_000,
            max_pending_inbound: 256,
            max_pending_inbound_per_peer: 16,
            ban_secs: 600.0,
            max_request_bytes: 64 * 1024,
            max_response_bytes: 8 * 1024 * 1024,
            request_timeout_secs: 30.0,
            max_connections: 256,
            max_incoming_connections: 192,
            max_connections_per_peer: 2,
            max_pending_incoming: 32,
            max_pending_outgoing: 64,
            yamux_max_streams: 128,
            mplex_max_streams: 16,
            mplex_max_buffered_frames: 4,
        }
    }
}

/// A connection-count field as a libp2p limit: 0 is none.
pub(crate) fn limit(value: u32) -> Option<u32> {
    (value > 0).then_some(value)
}

/// A seconds field as a `Duration`; negative, NaN or huge values become zero or the maximum
/// instead of panicking.
pub(crate) fn secs(value: f64) -> Duration {
    Duration::try_from_secs_f64(value.max(0.0)).unwrap_or(Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_reference() {
        let c = P2pConfig::default();
        assert_eq!(c.message_topic, "ALEPH-TEST");
        assert_eq!(c.alive_topic, "ALIVE");
        assert_eq!(secs(c.alive_interval_secs), Duration::from_secs(120));
        assert_eq!(secs(c.redial_interval_secs), Duration::from_secs(60));
        assert_eq!(c.listen.to_string(), "/ip4/0.0.0.0/tcp/4025");
    }

    #[test]
    fn partial_toml_like_json_fills_defaults() {
        let c: P2pConfig = serde_json::from_str(
            r#"{"listen": "/ip4/127.0.0.1/tcp/0", "peers": ["/ip4/127.0.0.1/tcp/1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"]}"#,
        )
        .unwrap();
        assert_eq!(c.peers.len(), 1);
        assert_eq!(c.max_known_peers, 1_000);
        assert!(serde_json::from_str::<P2pConfig>(r#"{"nope": 1}"#).is_err());
    }

    #[test]
    fn bad_seconds_do_not_panic() {
        assert_eq!(secs(-1.0), Duration::ZERO);
        assert_eq!(secs(f64::NAN), Duration::ZERO);
        assert_eq!(secs(1e300), Duration::MAX);
    }
}
