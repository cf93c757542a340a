//! The swarm task: one tokio task owns the libp2p swarm and all peer state.
//!
//! ```text
//!   NetworkHandle ──Command (bounded)──►┌────────────┐──NetworkEvent (bounded)──► node
//!        ▲                              │ swarm task │      (overflow: a bounded backlog,
//!        └────────── oneshot replies ───│            │       then gossip is dropped)
//!                                       └─────┬──────┘
//!                 gossipsub + /raleph/1 ◄─────┘  timers: ALIVE, re-dial, unban
//! ```
//!
//! The task never waits on the node: events that do not fit in the channel wait in a bounded
//! backlog, and a gossip message that does not fit there is ignored (and counted) rather than
//! buffered. Inbound requests wait for the node's answer as futures polled by the task, each
//! bounded by the request timeout.

mod commands;
mod discovery;
mod requests;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageId, TopicHash};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::behaviour::{Behaviour, BehaviourEvent, MAX_TRANSMIT_SIZE};
use crate::config::{P2pConfig, secs};
use crate::handle::{Command, DialError, NetworkEvent, PublishError, RequestError, Validation};
use crate::peers::{Admit, Authors, Limits, Peer, PeerInfo};
use crate::protocol::RalephResponse;

/// Delay before the first ALIVE, so that the configured peers are connected by then.
const FIRST_ALIVE_DELAY: Duration = Duration::from_secs(10);

pub(crate) struct Topics {
    pub(crate) message: TopicHash,
    pub(crate) alive: TopicHash,
    pub(crate) raleph: TopicHash,
}

/// An outbound request in flight.
enum Pending {
    /// Sent by the task itself when it recognised a raleph peer.
    Hello,
    Node(oneshot::Sender<Result<RalephResponse, RequestError>>),
}

/// A P2P address learned from an ALIVE announcement.
struct KnownPeer {
    addr: Multiaddr,
    last_seen: Instant,
}

type InboundAnswer = (ResponseChannel<RalephResponse>, PeerId, RalephResponse);

pub(crate) struct Task {
    swarm: Swarm<Behaviour>,
    config: P2pConfig,
    limits: Limits,
    local_peer_id: PeerId,
    topics: Topics,
    /// Connected peers.
    peers: HashMap<PeerId, Peer>,
    /// Flood guards of the authors of relayed messages who are not connected (a connected
    /// author's is in its `Peer`).
    authors: Authors,
    /// Banned peers and when their ban ends.
    banned: HashMap<PeerId, Instant>,
    /// ALIVE-announced addresses, by the announcing peer.
    known: HashMap<PeerId, KnownPeer>,
    /// The peer found at each configured address that has no `/p2p/` suffix.
    dialed: HashMap<Multiaddr, PeerId>,
    /// Bound listen addresses, without the `/p2p/` suffix.
    listen_addrs: Vec<Multiaddr>,
    listen_tx: watch::Sender<Vec<Multiaddr>>,
    events: mpsc::Sender<NetworkEvent>,
    /// Events waiting for room in `events`.
    outbox: VecDeque<NetworkEvent>,
    pending_out: HashMap<OutboundRequestId, Pending>,
    inbound: FuturesUnordered<BoxFuture<'static, InboundAnswer>>,
    /// Entries of `inbound`, by requesting peer.
    inbound_per_peer: HashMap<PeerId, usize>,
    /// `peers.len()`, readable by handles without a round trip to this task.
    connected: Arc<AtomicUsize>,
}

impl Task {
    /// The number of connected peers, kept current by this task.
    pub(crate) fn connected_counter(&self) -> Arc<AtomicUsize> {
        self.connected.clone()
    }

    pub(crate) fn new(
        swarm: Swarm<Behaviour>,
        config: P2pConfig,
        topics: Topics,
        events: mpsc::Sender<NetworkEvent>,
        listen_tx: watch::Sender<Vec<Multiaddr>>,
    ) -> Self {
        Task {
            local_peer_id: *swarm.local_peer_id(),
            swarm,
            limits: Limits::from_config(&config),
            authors: Authors::new(config.max_tracked_authors),
            config,
            topics,
            peers: HashMap::new(),
            banned: HashMap::new(),
            known: HashMap::new(),
            dialed: HashMap::new(),
            listen_addrs: Vec::new(),
            listen_tx,
            connected: Arc::default(),
            events,
            outbox: VecDeque::new(),
            pending_out: HashMap::new(),
            inbound: FuturesUnordered::new(),
            inbound_per_peer: HashMap::new(),
        }
    }

    pub(crate) async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let alive_every = secs(self.config.alive_interval_secs).max(Duration::from_secs(1));
        let mut alive = tokio::time::interval_at(
            Instant::now() + FIRST_ALIVE_DELAY.min(alive_every),
            alive_every,
        );
        let redial_every = secs(self.config.redial_interval_secs).max(Duration::from_secs(1));
        let mut redial = tokio::time::interval_at(Instant::now() + redial_every, redial_every);
        let mut housekeeping = tokio::time::interval(Duration::from_secs(1));
        for timer in [&mut alive, &mut redial, &mut housekeeping] {
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        // A permit borrows its sender; a local clone keeps that borrow off `self`.
        let events = self.events.clone();
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                command = commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => break,
                },
                Some((channel, peer, response)) = self.inbound.next(), if !self.inbound.is_empty() => {
                    self.answered(channel, peer, response);
                }
                permit = events.reserve(), if !self.outbox.is_empty() => match permit {
                    Ok(permit) => {
                        if let Some(event) = self.outbox.pop_front() {
                            permit.send(event);
                        }
                    }
                    // The node dropped its receiver: nobody will read these.
                    Err(_) => self.outbox.clear(),
                },
                _ = alive.tick() => self.publish_alive(),
                _ = redial.tick() => self.redial(),
                _ = housekeeping.tick() => self.unban_expired(),
            }
        }
        tracing::debug!("p2p task stopped: every handle was dropped");
    }

    // ---- events towards the node ----

    /// Queues an event for the node; `false` when it was dropped (backlog full, or no reader).
    fn emit(&mut self, event: NetworkEvent, backlog_limit: usize) -> bool {
        if self.events.is_closed() {
            return false;
        }
        let event = if self.outbox.is_empty() {
            match self.events.try_send(event) {
                Ok(()) => return true,
                Err(mpsc::error::TrySendError::Full(event)) => event,
                Err(mpsc::error::TrySendError::Closed(_)) => return false,
            }
        } else {
            event
        };
        if self.outbox.len() >= backlog_limit {
            return false;
        }
        self.outbox.push_back(event);
        true
    }

    /// Control events (connections, identification, requests) get twice the backlog of gossip,
    /// so a gossip flood cannot crowd them out.
    fn emit_control(&mut self, event: NetworkEvent) -> bool {
        let limit = self.config.event_backlog.saturating_mul(2);
        let sent = self.emit(event, limit);
        if !sent {
            tracing::warn!("p2p event backlog full, dropping a control event");
        }
        sent
    }

    // ---- swarm events ----

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(event)) => self.on_gossipsub(event),
            SwarmEvent::Behaviour(BehaviourEvent::Raleph(event)) => self.on_raleph(event),
            SwarmEvent::Behaviour(BehaviourEvent::Blocked(never)) => match never {},
            SwarmEvent::Behaviour(BehaviourEvent::Limits(never)) => match never {},
            SwarmEvent::NewListenAddr { address, .. } => self.add_listen_addr(address),
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listen_addrs.retain(|a| *a != address);
                self.publish_listen_addrs();
            }
            SwarmEvent::ListenerClosed {
                addresses, reason, ..
            } => {
                tracing::warn!(?addresses, ?reason, "p2p listener closed");
                self.listen_addrs.retain(|a| !addresses.contains(a));
                self.publish_listen_addrs();
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => self.on_connected(peer_id, connection_id, &endpoint),
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                ..
            } => self.on_disconnected(peer_id, connection_id, num_established),
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(?peer_id, %error, "p2p dial failed");
            }
            SwarmEvent::IncomingConnectionError { error, .. } => {
                tracing::debug!(%error, "p2p inbound connection failed");
            }
            _ => {}
        }
    }

    pub(crate) fn add_listen_addr(&mut self, address: Multiaddr) {
        tracing::info!(%address, peer_id = %self.local_peer_id, "p2p listening");
        if !self.listen_addrs.contains(&address) {
            self.listen_addrs.push(address);
        }
        self.publish_listen_addrs();
    }

    fn publish_listen_addrs(&self) {
        let full = self
            .listen_addrs
            .iter()
            .map(|a| with_peer_id(a.clone(), self.local_peer_id))
            .collect();
        self.listen_tx.send_replace(full);
    }

    fn on_connected(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        endpoint: &libp2p::core::ConnectedPoint,
    ) {
        let address = endpoint.get_remote_address().clone();
        if let libp2p::core::ConnectedPoint::Dialer {
            address: dialed, ..
        } = endpoint
            && self.config.peers.contains(dialed)
            && peer_id_of(dialed).is_none()
        {
            self.dialed.insert(dialed.clone(), peer);
        }
        let (limits, authors) = (&self.limits, &mut self.authors);
        let state = self.peers.entry(peer).or_insert_with(|| {
            // As an author it may already have a record here.
            Peer::new(authors.take(&peer), limits, std::time::Instant::now())
        });
        let first = state.connections.is_empty();
        state.connections.insert(connection, address.clone());
        self.connected.store(self.peers.len(), Ordering::Relaxed);
        if first {
            tracing::debug!(%peer, %address, "p2p peer connected");
            self.emit_control(NetworkEvent::PeerConnected { peer, address });
        }
    }

    fn on_disconnected(&mut self, peer: PeerId, connection: ConnectionId, remaining: u32) {
        if let Some(state) = self.peers.get_mut(&peer) {
            state.connections.remove(&connection);
        }
        if remaining == 0
            && let Some(state) = self.peers.remove(&peer)
        {
            // What it authored may still come, relayed by others: its record stays.
            self.authors
                .keep(peer, state.own, &self.limits, std::time::Instant::now());
            self.connected.store(self.peers.len(), Ordering::Relaxed);
            tracing::debug!(%peer, "p2p peer disconnected");
            self.emit_control(NetworkEvent::PeerDisconnected { peer });
        }
    }

    fn on_gossipsub(&mut self, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => self.on_message(propagation_source, message_id, message),
            gossipsub::Event::Subscribed { peer_id, topic } if topic == self.topics.raleph => {
                self.on_raleph_peer(peer_id);
            }
            gossipsub::Event::Unsubscribed { peer_id, topic } if topic == self.topics.raleph => {
                if let Some(state) = self.peers.get_mut(&peer_id) {
                    state.is_raleph = false;
                }
            }
            gossipsub::Event::GossipsubNotSupported { peer_id } => {
                // Nothing keeps such a connection alive; it closes at the idle timeout.
                tracing::debug!(%peer_id, "p2p peer does not speak gossipsub");
            }
            _ => {}
        }
    }

    fn report(&mut self, id: &MessageId, source: &PeerId, acceptance: MessageAcceptance) {
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(id, source, acceptance);
    }

    /// Holds a rejected message relayed by another peer against its `author`: against its own
    /// guard as a connected peer, else its tracked record (if tracked).
    pub(crate) fn author_rejected(&mut self, author: PeerId, now: std::time::Instant) {
        let limits = &self.limits;
        let guard = match self.peers.get_mut(&author) {
            Some(peer) => Some(&mut peer.own),
            None => self.authors.get_or_track(author, limits, now),
        };
        if let Some(guard) = guard {
            guard.rejected(limits, now);
        }
    }

    /// Decides whether a message relayed by `source` is delivered: it is held against its
    /// author if known and another peer (see `peers.rs`), else against `source`.
    fn admit(
        &mut self,
        source: PeerId,
        author: Option<PeerId>,
        len: usize,
        now: std::time::Instant,
    ) -> Option<Admit> {
        let author = author.filter(|a| *a != source);
        let Some(author) = author else {
            return Some(self.peers.get_mut(&source)?.admit(len, &self.limits, now));
        };
        let [relayer, connected_author] = self.peers.get_disjoint_mut([&source, &author]);
        let relayer = relayer?;
        let guard = match connected_author {
            Some(peer) => Some(&mut peer.own),
            None => self.authors.get_or_track(author, &self.limits, now),
        };
        Some(relayer.admit_relayed(len, guard, &self.limits, now))
    }

    fn on_message(&mut self, source: PeerId, id: MessageId, message: gossipsub::Message) {
        let now = std::time::Instant::now();
        let verdict = self.admit(source, message.source, message.data.len(), now);
        match verdict {
            Some(Admit::Deliver) => {}
            None | Some(Admit::Ignore) => {
                self.report(&id, &source, MessageAcceptance::Ignore);
                return;
            }
            Some(Admit::Ban) => {
                self.report(&id, &source, MessageAcceptance::Ignore);
                // What it authored stays ignored while it is banned, whoever relays it.
                if let (Some(state), Some(until)) = (
                    self.peers.get_mut(&source),
                    now.checked_add(secs(self.config.ban_secs)),
                ) {
                    state.own.penalise_until(until);
                }
                self.ban(source);
                return;
            }
        }
        if message.topic == self.topics.message {
            let event = NetworkEvent::Message {
                id: id.clone(),
                source,
                author: message.source,
                topic: message.topic.into_string(),
                data: Bytes::from(message.data),
            };
            if !self.emit(event, self.config.event_backlog) {
                if let Some(state) = self.peers.get_mut(&source) {
                    state.counters.messages_dropped += 1;
                }
                self.report(&id, &source, MessageAcceptance::Ignore);
            }
        } else if message.topic == self.topics.alive {
            let acceptance = self.on_alive(message.source, &message.data);
            if let Some(state) = self.peers.get_mut(&source) {
                match acceptance {
                    MessageAcceptance::Accept => state.counters.messages_accepted += 1,
                    _ => state.counters.messages_ignored += 1,
                }
            }
            self.report(&id, &source, acceptance);
        } else {
            // Nothing is ever published on the raleph topic.
            self.report(&id, &source, MessageAcceptance::Ignore);
        }
    }
}

/// `addr` ending in `/p2p/<peer>` (unchanged if it already names a peer).
fn with_peer_id(addr: Multiaddr, peer: PeerId) -> Multiaddr {
    match addr.iter().last() {
        Some(Protocol::P2p(_)) => addr,
        _ => addr.with(Protocol::P2p(peer)),
    }
}

/// The peer id an address ends with, if any.
fn peer_id_of(addr: &Multiaddr) -> Option<PeerId> {
    match addr.iter().last() {
        Some(Protocol::P2p(peer)) => Some(peer),
        _ => None,
    }
}

/// Whether `addr` is on the loopback interface (127.0.0.0/8 or ::1).
fn is_loopback(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_loopback(),
        Protocol::Ip6(ip) => ip.is_loopback(),
        _ => false,
    })
}

/// Whether `addr` is a wildcard address (0.0.0.0 or ::), which no one can dial.
fn is_unspecified(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_unspecified(),
        Protocol::Ip6(ip) => ip.is_unspecified(),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_id_suffix_and_wildcards() {
        let peer = PeerId::random();
        let a: Multiaddr = "/ip4/127.0.0.1/tcp/4025".parse().unwrap();
        let full = with_peer_id(a.clone(), peer);
        assert_eq!(
            full.to_string(),
            format!("/ip4/127.0.0.1/tcp/4025/p2p/{peer}")
        );
        assert_eq!(with_peer_id(full.clone(), PeerId::random()), full);
        assert!(is_unspecified(&"/ip4/0.0.0.0/tcp/4025".parse().unwrap()));
        assert!(is_unspecified(&"/ip6/::/tcp/4025".parse().unwrap()));
        assert!(!is_unspecified(&a));
        assert!(is_loopback(&a));
        assert!(!is_loopback(&"/ip4/192.0.2.1/tcp/4025".parse().unwrap()));
    }
}
