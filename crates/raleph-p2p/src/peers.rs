//! Per-peer bookkeeping: counters shown to the node, and the flood guard.
//!
//! The guard decides, for each gossip message, whether to hand it to the node. A peer gets a
//! token bucket (`flood_burst`, refilled at `flood_rate_per_sec`); a peer whose messages the
//! node rejected more than `max_rejects` times within `reject_window_secs` is penalised for the
//! rest of that window. Messages of a throttled or penalised peer are ignored (not delivered,
//! not forwarded); once `ignored_before_ban` of them pile up within a window, the peer is
//! disconnected and banned for `ban_secs`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId};

use crate::config::{P2pConfig, secs};
use crate::protocol::HelloResponse;

/// Traffic counters of one peer, since its current connection(s) opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerCounters {
    /// Gossip messages received with this peer as propagation source, on any topic.
    pub messages_received: u64,
    /// Data bytes of those messages.
    pub bytes_received: u64,
    /// Messages the node (or the swarm, for ALIVE) accepted.
    pub messages_accepted: u64,
    /// Messages the node rejected as invalid.
    pub messages_rejected: u64,
    /// Messages the node reported as ignored.
    pub messages_ignored: u64,
    /// Messages not delivered because the peer exceeded its rate or its reject allowance.
    pub messages_throttled: u64,
    /// Messages not delivered because the node's event queue was full.
    pub messages_dropped: u64,
    /// `/raleph/1` requests this peer sent us.
    pub requests_received: u64,
    /// `/raleph/1` requests we answered.
    pub requests_served: u64,
    /// `/raleph/1` requests we sent it.
    pub requests_sent: u64,
}

/// What the swarm knows of a connected peer.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PeerInfo {
    pub peer_id: PeerId,
    /// Remote addresses of the open connections.
    pub addresses: Vec<Multiaddr>,
    /// Open connections (reference nodes re-dial every 60 s, so several are normal).
    pub connections: usize,
    /// Whether the peer announced the raleph topic.
    pub is_raleph: bool,
    /// From its Hello answer, once received.
    pub http_base_url: Option<String>,
    pub listen_addrs: Vec<Multiaddr>,
    pub node_version: Option<String>,
    /// Whether its messages are currently ignored (rate exceeded or too many rejects).
    pub throttled: bool,
    pub counters: PeerCounters,
}

/// The guard's verdict on one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    Deliver,
    Ignore,
    Ban,
}

/// Flood guard limits, from the config.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    burst: f64,
    rate_per_sec: f64,
    max_rejects: u32,
    window: Duration,
    ignored_before_ban: u32,
}

impl Limits {
    pub(crate) fn from_config(config: &P2pConfig) -> Self {
        Limits {
            burst: f64::from(config.flood_burst),
            rate_per_sec: config.flood_rate_per_sec.max(0.0),
            max_rejects: config.max_rejects,
            window: secs(config.reject_window_secs),
            ignored_before_ban: config.ignored_before_ban,
        }
    }
}

/// One connected peer.
#[derive(Debug)]
pub(crate) struct Peer {
    pub(crate) connections: HashMap<libp2p::swarm::ConnectionId, Multiaddr>,
    pub(crate) is_raleph: bool,
    pub(crate) hello: Option<HelloResponse>,
    pub(crate) counters: PeerCounters,
    tokens: f64,
    last_refill: Instant,
    window_start: Instant,
    rejects_in_window: u32,
    ignored_in_window: u32,
    penalised_until: Option<Instant>,
}

impl Peer {
    pub(crate) fn new(limits: &Limits, now: Instant) -> Self {
        Peer {
            connections: HashMap::new(),
            is_raleph: false,
            hello: None,
            counters: PeerCounters::default(),
            tokens: limits.burst,
            last_refill: now,
            window_start: now,
            rejects_in_window: 0,
            ignored_in_window: 0,
            penalised_until: None,
        }
    }

    fn roll_window(&mut self, limits: &Limits, now: Instant) {
        if now.duration_since(self.window_start) >= limits.window {
            self.window_start = now;
            self.rejects_in_window = 0;
            self.ignored_in_window = 0;
        }
    }

    fn refill(&mut self, limits: &Limits, now: Instant) {
        let elapsed = now.duration_since(self.last_refill).as_secs_f64();
        self.tokens = (self.tokens + elapsed * limits.rate_per_sec).min(limits.burst);
        self.last_refill = now;
    }

    fn penalised(&self, now: Instant) -> bool {
        self.penalised_until.is_some_and(|until| now < until)
    }

    /// Counts a received message of `len` bytes and decides what to do with it.
    pub(crate) fn admit(&mut self, len: usize, limits: &Limits, now: Instant) -> Admit {
        self.counters.messages_received += 1;
        self.counters.bytes_received += len as u64;
        self.roll_window(limits, now);
        self.refill(limits, now);
        if !self.penalised(now) && self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Admit::Deliver;
        }
        self.counters.messages_throttled += 1;
        self.ignored_in_window += 1;
        if self.ignored_in_window > limits.ignored_before_ban {
            Admit::Ban
        } else {
            Admit::Ignore
        }
    }

    /// Counts a message the node rejected; too many in a window penalise the peer.
    pub(crate) fn rejected(&mut self, limits: &Limits, now: Instant) {
        self.counters.messages_rejected += 1;
        self.roll_window(limits, now);
        self.rejects_in_window += 1;
        if self.rejects_in_window > limits.max_rejects {
            self.penalised_until = Some(self.window_start + limits.window);
        }
    }

    pub(crate) fn info(&self, peer_id: PeerId, now: Instant) -> PeerInfo {
        let hello = self.hello.as_ref();
        PeerInfo {
            peer_id,
            addresses: self.connections.values().cloned().collect(),
            connections: self.connections.len(),
            is_raleph: self.is_raleph,
            http_base_url: hello.and_then(|h| h.http_base_url.clone()),
            listen_addrs: hello.map(|h| h.listen_addrs.clone()).unwrap_or_default(),
            node_version: hello.map(|h| h.node_version.clone()),
            throttled: self.penalised(now) || self.tokens < 1.0,
            counters: self.counters.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            burst: 3.0,
            rate_per_sec: 1.0,
            max_rejects: 2,
            window: Duration::from_secs(60),
            ignored_before_ban: 4,
        }
    }

    #[test]
    fn bucket_throttles_then_bans_then_refills() {
        let l = limits();
        let t0 = Instant::now();
        let mut p = Peer::new(&l, t0);
        let verdicts: Vec<_> = (0..8).map(|_| p.admit(10, &l, t0)).collect();
        use Admit::*;
        assert_eq!(
            verdicts,
            [
                Deliver, Deliver, Deliver, Ignore, Ignore, Ignore, Ignore, Ban
            ]
        );
        assert_eq!(p.counters.messages_throttled, 5);
        assert_eq!(p.counters.bytes_received, 80);
        // Two seconds later two tokens are back.
        let t2 = t0 + Duration::from_secs(2);
        assert_eq!(p.admit(1, &l, t2), Deliver);
        assert_eq!(p.admit(1, &l, t2), Deliver);
    }

    #[test]
    fn too_many_rejects_penalise_until_the_window_ends() {
        let l = limits();
        let t0 = Instant::now();
        let mut p = Peer::new(&l, t0);
        for _ in 0..3 {
            p.rejected(&l, t0);
        }
        assert_eq!(p.admit(1, &l, t0), Admit::Ignore);
        assert!(p.info(PeerId::random(), t0).throttled);
        let later = t0 + Duration::from_secs(61);
        assert_eq!(p.admit(1, &l, later), Admit::Deliver);
    }
}
