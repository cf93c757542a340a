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

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageId, TopicHash};
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, SwarmBuilder, noise, tcp, yamux};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::alive::{Announcement, PeerType, alive_payload, parse_announcement};
use crate::behaviour::{self, Behaviour, BehaviourEvent, MAX_TRANSMIT_SIZE};
use crate::config::{P2pConfig, secs};
use crate::handle::{
    Command, DialError, NetworkEvent, NetworkHandle, PublishError, RequestError, Validation,
};
use crate::identity::{IdentityError, load_or_create_identity};
use crate::peers::{Admit, Limits, Peer, PeerInfo};
use crate::protocol::{HelloResponse, MAX_HELLO_ADDRS, RalephRequest, RalephResponse};

/// Inbound requests waiting for the node's answer, across all peers. Beyond it, requests are
/// answered "busy" at once.
const MAX_PENDING_INBOUND: usize = 256;
/// Commands queued from handles to the task.
const COMMAND_CAPACITY: usize = 1_024;
/// How long `start` waits for the listener to bind.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Delay before the first ALIVE, so that the configured peers are connected by then.
const FIRST_ALIVE_DELAY: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("p2p transport: {0}")]
    Transport(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("p2p behaviour: {0}")]
    Behaviour(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("listen on {addr}: {source}")]
    Listen {
        addr: Multiaddr,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("subscribe to {topic}: {source}")]
    Subscribe {
        topic: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Starts the libp2p layer.
#[derive(Debug)]
pub struct Network;

impl Network {
    /// Loads (or creates) the identity at `config.key`, then starts as
    /// [`Network::start_with_keypair`] does.
    pub async fn start(
        config: P2pConfig,
    ) -> Result<(NetworkHandle, mpsc::Receiver<NetworkEvent>), StartError> {
        let keypair = load_or_create_identity(&config.key)?;
        Self::start_with_keypair(config, keypair).await
    }

    /// Builds the swarm, binds the listener (returning once its address is known), subscribes
    /// to the topics, dials the configured peers and spawns the swarm task on the current tokio
    /// runtime. The task ends when every [`NetworkHandle`] is dropped.
    pub async fn start_with_keypair(
        config: P2pConfig,
        keypair: Keypair,
    ) -> Result<(NetworkHandle, mpsc::Receiver<NetworkEvent>), StartError> {
        let behaviour_config = config.clone();
        let mut swarm = SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                // yamux first, mplex for older peers, in the order the reference offers them.
                (yamux::Config::default, libp2p_mplex::Config::default),
            )
            .map_err(|e| StartError::Transport(Box::new(e)))?
            .with_dns()
            .map_err(|e| StartError::Transport(Box::new(e)))?
            .with_behaviour(|key| {
                behaviour::build(key, &behaviour_config)
                    .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })
            })
            .map_err(|e| StartError::Behaviour(Box::new(e)))?
            .with_swarm_config(|c| {
                c.with_idle_connection_timeout(secs(config.idle_connection_timeout_secs))
            })
            .build();
        let local_peer_id = *swarm.local_peer_id();

        let listen_err = |source: Box<dyn std::error::Error + Send + Sync>| StartError::Listen {
            addr: config.listen.clone(),
            source,
        };
        swarm
            .listen_on(config.listen.clone())
            .map_err(|e| listen_err(Box::new(e)))?;
        let first_addr = tokio::time::timeout(LISTEN_TIMEOUT, async {
            loop {
                match swarm.select_next_some().await {
                    SwarmEvent::NewListenAddr { address, .. } => return Ok(address),
                    SwarmEvent::ListenerError { error, .. } => return Err(Box::new(error).into()),
                    SwarmEvent::ListenerClosed { reason, .. } => {
                        let reason = match reason {
                            Ok(()) => "listener closed".into(),
                            Err(e) => Box::new(e).into(),
                        };
                        return Err(reason);
                    }
                    _ => {}
                }
            }
        })
        .await
        .map_err(|_| listen_err("timed out waiting for the listener".into()))?
        .map_err(listen_err)?;

        let topics = Topics {
            message: IdentTopic::new(config.message_topic.clone()).hash(),
            alive: IdentTopic::new(config.alive_topic.clone()).hash(),
            raleph: IdentTopic::new(config.raleph_topic.clone()).hash(),
        };
        for topic in [
            &config.message_topic,
            &config.alive_topic,
            &config.raleph_topic,
        ] {
            swarm
                .behaviour_mut()
                .gossipsub
                .subscribe(&IdentTopic::new(topic.clone()))
                .map_err(|e| StartError::Subscribe {
                    topic: topic.clone(),
                    source: Box::new(e),
                })?;
        }

        let (events_tx, events_rx) = mpsc::channel(config.event_channel_capacity.max(1));
        let (commands_tx, commands_rx) = mpsc::channel(COMMAND_CAPACITY);
        let (listen_tx, listen_rx) = watch::channel(Vec::new());
        let mut task = Task {
            swarm,
            limits: Limits::from_config(&config),
            config,
            local_peer_id,
            topics,
            peers: HashMap::new(),
            banned: HashMap::new(),
            known: HashMap::new(),
            dialed: HashMap::new(),
            listen_addrs: Vec::new(),
            listen_tx,
            events: events_tx,
            outbox: VecDeque::new(),
            pending_out: HashMap::new(),
            inbound: FuturesUnordered::new(),
        };
        task.add_listen_addr(first_addr);
        task.redial();
        tokio::spawn(task.run(commands_rx));

        let handle = NetworkHandle {
            commands: commands_tx,
            local_peer_id,
            listen_addrs: listen_rx,
        };
        Ok((handle, events_rx))
    }
}

struct Topics {
    message: TopicHash,
    alive: TopicHash,
    raleph: TopicHash,
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

struct Task {
    swarm: Swarm<Behaviour>,
    config: P2pConfig,
    limits: Limits,
    local_peer_id: PeerId,
    topics: Topics,
    /// Connected peers.
    peers: HashMap<PeerId, Peer>,
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
}

impl Task {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
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
                    self.respond(channel, peer, response);
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

    fn add_listen_addr(&mut self, address: Multiaddr) {
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
        let limits = &self.limits;
        let state = self
            .peers
            .entry(peer)
            .or_insert_with(|| Peer::new(limits, std::time::Instant::now()));
        let first = state.connections.is_empty();
        state.connections.insert(connection, address.clone());
        if first {
            tracing::debug!(%peer, %address, "p2p peer connected");
            self.emit_control(NetworkEvent::PeerConnected { peer, address });
        }
    }

    fn on_disconnected(&mut self, peer: PeerId, connection: ConnectionId, remaining: u32) {
        if let Some(state) = self.peers.get_mut(&peer) {
            state.connections.remove(&connection);
        }
        if remaining == 0 && self.peers.remove(&peer).is_some() {
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

    fn on_message(&mut self, source: PeerId, id: MessageId, message: gossipsub::Message) {
        let now = std::time::Instant::now();
        let limits = &self.limits;
        let Some(state) = self.peers.get_mut(&source) else {
            self.report(&id, &source, MessageAcceptance::Ignore);
            return;
        };
        match state.admit(message.data.len(), limits, now) {
            Admit::Deliver => {}
            Admit::Ignore => {
                self.report(&id, &source, MessageAcceptance::Ignore);
                return;
            }
            Admit::Ban => {
                self.report(&id, &source, MessageAcceptance::Ignore);
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

    /// Handles an ALIVE payload; well-formed announcements are forwarded, like the reference
    /// forwards every signed one.
    fn on_alive(&mut self, author: Option<PeerId>, data: &[u8]) -> MessageAcceptance {
        let Some(author) = author else {
            return MessageAcceptance::Ignore;
        };
        match parse_announcement(data, &author) {
            Ok(Announcement::P2p(addr)) => {
                self.remember_alive(author, addr.clone());
                if self.should_dial(&author) && self.config.dial_discovered {
                    self.dial_peer(author, addr);
                }
                MessageAcceptance::Accept
            }
            Ok(Announcement::Other) => MessageAcceptance::Accept,
            Err(error) => {
                tracing::debug!(%author, %error, "p2p: unusable ALIVE payload");
                MessageAcceptance::Ignore
            }
        }
    }

    fn remember_alive(&mut self, peer: PeerId, addr: Multiaddr) {
        let now = Instant::now();
        if !self.known.contains_key(&peer) && self.known.len() >= self.config.max_known_peers {
            let oldest = self
                .known
                .iter()
                .min_by_key(|(_, k)| k.last_seen)
                .map(|(id, _)| *id);
            match oldest {
                Some(oldest) => {
                    self.known.remove(&oldest);
                }
                None => return, // max_known_peers is 0
            }
        }
        self.known.insert(
            peer,
            KnownPeer {
                addr,
                last_seen: now,
            },
        );
    }

    // ---- raleph peers and /raleph/1 ----

    fn on_raleph_peer(&mut self, peer: PeerId) {
        let Some(state) = self.peers.get_mut(&peer) else {
            return;
        };
        state.is_raleph = true;
        state.counters.requests_sent += 1;
        tracing::debug!(%peer, "p2p peer announced the raleph topic, saying hello");
        let id = self
            .swarm
            .behaviour_mut()
            .raleph
            .send_request(&peer, RalephRequest::Hello);
        self.pending_out.insert(id, Pending::Hello);
    }

    fn on_raleph(&mut self, event: request_response::Event<RalephRequest, RalephResponse>) {
        use request_response::{Event, Message};
        match event {
            Event::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => self.on_request(peer, request, channel),
            Event::Message {
                peer,
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => match self.pending_out.remove(&request_id) {
                Some(Pending::Hello) => self.on_hello(peer, response),
                Some(Pending::Node(reply)) => {
                    let _ = reply.send(Ok(response));
                }
                None => {}
            },
            Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => match self.pending_out.remove(&request_id) {
                Some(Pending::Hello) => {
                    tracing::debug!(%peer, %error, "p2p hello failed");
                }
                Some(Pending::Node(reply)) => {
                    let _ = reply.send(Err(RequestError::Failed {
                        peer,
                        source: Box::new(error),
                    }));
                }
                None => {}
            },
            Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "p2p inbound request failed");
            }
            Event::ResponseSent { peer, .. } => {
                if let Some(state) = self.peers.get_mut(&peer) {
                    state.counters.requests_served += 1;
                }
            }
        }
    }

    fn on_request(
        &mut self,
        peer: PeerId,
        request: RalephRequest,
        channel: ResponseChannel<RalephResponse>,
    ) {
        // Peers that never announced the raleph topic may still ask: speaking the protocol is
        // proof enough, and answering opens no stream of ours.
        if let Some(state) = self.peers.get_mut(&peer) {
            state.counters.requests_received += 1;
        }
        if request == RalephRequest::Hello {
            let hello = self.hello_response(&peer);
            self.respond(channel, peer, RalephResponse::Hello(hello));
            return;
        }
        let busy = || RalephResponse::Error {
            message: "busy".to_string(),
        };
        if self.inbound.len() >= MAX_PENDING_INBOUND {
            self.respond(channel, peer, busy());
            return;
        }
        let (reply, answer) = oneshot::channel();
        if !self.emit_control(NetworkEvent::InboundRequest {
            peer,
            request,
            reply,
        }) {
            self.respond(channel, peer, busy());
            return;
        }
        let timeout = secs(self.config.request_timeout_secs);
        self.inbound.push(Box::pin(async move {
            let response = match tokio::time::timeout(timeout, answer).await {
                Ok(Ok(response)) => response,
                Ok(Err(_)) => RalephResponse::Error {
                    message: "the node did not answer".to_string(),
                },
                Err(_) => RalephResponse::Error {
                    message: "the node did not answer in time".to_string(),
                },
            };
            (channel, peer, response)
        }));
    }

    fn respond(
        &mut self,
        channel: ResponseChannel<RalephResponse>,
        peer: PeerId,
        response: RalephResponse,
    ) {
        let size = response.encoded_len();
        let response = if size > self.config.max_response_bytes {
            tracing::warn!(%peer, size, "p2p: refusing to send an oversize response");
            RalephResponse::Error {
                message: format!(
                    "response of {size} bytes exceeds the limit of {} bytes",
                    self.config.max_response_bytes
                ),
            }
        } else {
            response
        };
        // Fails only when the requester is gone or timed out; nothing to do then.
        let _ = self
            .swarm
            .behaviour_mut()
            .raleph
            .send_response(channel, response);
    }

    fn hello_response(&self, requester: &PeerId) -> HelloResponse {
        let from_raleph = self
            .peers
            .iter()
            .filter(|(id, state)| *id != requester && state.is_raleph)
            .filter_map(|(_, state)| state.hello.as_ref())
            .flat_map(|hello| hello.listen_addrs.iter().take(4).cloned());
        let from_alive = self
            .known
            .iter()
            .filter(|(id, _)| *id != requester)
            .map(|(_, k)| k.addr.clone());
        HelloResponse {
            http_base_url: self.config.http_base_url.clone(),
            listen_addrs: self.announced_addrs(),
            known_peers: from_raleph
                .chain(from_alive)
                .take(MAX_HELLO_ADDRS)
                .collect(),
            node_version: self.config.version.clone(),
        }
    }

    fn on_hello(&mut self, peer: PeerId, response: RalephResponse) {
        let RalephResponse::Hello(mut hello) = response else {
            tracing::debug!(%peer, "p2p: unexpected answer to hello");
            return;
        };
        hello.listen_addrs.truncate(MAX_HELLO_ADDRS);
        hello.known_peers.truncate(MAX_HELLO_ADDRS);
        // A peer speaks only for itself: keep the addresses that name it (or no one).
        hello
            .listen_addrs
            .retain(|a| peer_id_of(a).is_none_or(|id| id == peer));
        for addr in &hello.listen_addrs {
            self.swarm.add_peer_address(peer, addr.clone());
        }
        let Some(state) = self.peers.get_mut(&peer) else {
            return;
        };
        state.is_raleph = true;
        state.hello = Some(hello.clone());
        self.emit_control(NetworkEvent::PeerIdentified {
            peer,
            is_raleph: true,
            http_base_url: hello.http_base_url,
            listen_addrs: hello.listen_addrs,
            node_version: hello.node_version,
        });
        if self.config.dial_discovered {
            for addr in hello.known_peers {
                if let Some(id) = peer_id_of(&addr)
                    && self.should_dial(&id)
                {
                    self.dial_peer(id, addr);
                }
            }
        }
    }

    /// Our own addresses as others should dial them, ending in `/p2p/<our id>`.
    fn announced_addrs(&self) -> Vec<Multiaddr> {
        let addrs = if self.config.announce_addrs.is_empty() {
            &self.listen_addrs
        } else {
            &self.config.announce_addrs
        };
        addrs
            .iter()
            .filter(|a| !is_unspecified(a))
            .map(|a| with_peer_id(a.clone(), self.local_peer_id))
            .collect()
    }

    // ---- ALIVE, dialing, bans ----

    fn publish_alive(&mut self) {
        let version = self.config.version.clone();
        let mut payloads: Vec<Vec<u8>> = self
            .announced_addrs()
            .iter()
            .map(|a| alive_payload(&a.to_string(), PeerType::P2p, &version))
            .collect();
        if let Some(url) = &self.config.http_base_url {
            payloads.push(alive_payload(url, PeerType::Http, &version));
        }
        let topic = self.topics.alive.clone();
        for payload in payloads {
            // Duplicates (the same bytes within 30 min) and "no peers" are expected here.
            if let Err(error) = self
                .swarm
                .behaviour_mut()
                .gossipsub
                .publish(topic.clone(), payload)
            {
                tracing::debug!(?error, "p2p: ALIVE not published");
            }
        }
    }

    fn should_dial(&self, peer: &PeerId) -> bool {
        *peer != self.local_peer_id
            && !self.peers.contains_key(peer)
            && !self.banned.contains_key(peer)
    }

    fn dial_peer(&mut self, peer: PeerId, addr: Multiaddr) {
        let opts = DialOpts::peer_id(peer)
            .addresses(vec![addr])
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        if let Err(error) = self.swarm.dial(opts) {
            tracing::debug!(%peer, %error, "p2p: cannot dial");
        }
    }

    /// Dials every configured peer, and every recently announced one, that is not connected.
    fn redial(&mut self) {
        for addr in self.config.peers.clone() {
            match peer_id_of(&addr) {
                Some(peer) => {
                    if self.should_dial(&peer) {
                        self.dial_peer(peer, addr);
                    }
                }
                None => {
                    let connected = self
                        .dialed
                        .get(&addr)
                        .is_some_and(|peer| self.peers.contains_key(peer));
                    if !connected && let Err(error) = self.swarm.dial(addr.clone()) {
                        tracing::debug!(%addr, %error, "p2p: cannot dial");
                    }
                }
            }
        }
        let ttl = secs(self.config.alive_peer_ttl_secs);
        let now = Instant::now();
        self.known
            .retain(|_, k| now.saturating_duration_since(k.last_seen) < ttl);
        if self.config.dial_discovered {
            let targets: Vec<_> = self
                .known
                .iter()
                .filter(|(id, _)| self.should_dial(id))
                .map(|(id, k)| (*id, k.addr.clone()))
                .collect();
            for (peer, addr) in targets {
                self.dial_peer(peer, addr);
            }
        }
    }

    fn ban(&mut self, peer: PeerId) {
        tracing::warn!(%peer, "p2p peer flooded past its limits: disconnecting and banning it");
        self.banned
            .insert(peer, Instant::now() + secs(self.config.ban_secs));
        // Closes its connections and refuses new ones until unblocked.
        self.swarm.behaviour_mut().blocked.block_peer(peer);
    }

    fn unban_expired(&mut self) {
        let now = Instant::now();
        let expired: Vec<PeerId> = self
            .banned
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(id, _)| *id)
            .collect();
        for peer in expired {
            self.banned.remove(&peer);
            self.swarm.behaviour_mut().blocked.unblock_peer(peer);
        }
    }

    // ---- commands ----

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Publish { topic, data, reply } => {
                let size = data.len();
                let result = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(IdentTopic::new(topic), data)
                    .map_err(|e| match e {
                        gossipsub::PublishError::Duplicate => PublishError::Duplicate,
                        gossipsub::PublishError::NoPeersSubscribedToTopic => {
                            PublishError::InsufficientPeers
                        }
                        gossipsub::PublishError::MessageTooLarge => PublishError::TooLarge {
                            size,
                            limit: MAX_TRANSMIT_SIZE,
                        },
                        other => PublishError::Failed(Box::new(other)),
                    });
                let _ = reply.send(result);
            }
            Command::ReportValidation {
                id,
                source,
                validation,
            } => {
                let now = std::time::Instant::now();
                if let Some(state) = self.peers.get_mut(&source) {
                    match validation {
                        Validation::Accept => state.counters.messages_accepted += 1,
                        Validation::Reject => state.rejected(&self.limits, now),
                        Validation::Ignore => state.counters.messages_ignored += 1,
                    }
                }
                let acceptance = match validation {
                    Validation::Accept => MessageAcceptance::Accept,
                    Validation::Reject => MessageAcceptance::Reject,
                    Validation::Ignore => MessageAcceptance::Ignore,
                };
                self.report(&id, &source, acceptance);
            }
            Command::ConnectedPeers { reply } => {
                let now = std::time::Instant::now();
                let peers = self
                    .peers
                    .iter()
                    .map(|(id, state)| state.info(*id, now))
                    .collect::<Vec<PeerInfo>>();
                let _ = reply.send(peers);
            }
            Command::Dial { addr, reply } => {
                let result = match peer_id_of(&addr) {
                    Some(peer) if self.banned.contains_key(&peer) => Err(DialError::Banned(peer)),
                    _ => self
                        .swarm
                        .dial(addr)
                        .map_err(|e| DialError::Failed(Box::new(e))),
                };
                let _ = reply.send(result);
            }
            Command::Request {
                peer,
                request,
                reply,
            } => {
                let Some(state) = self.peers.get_mut(&peer).filter(|s| s.is_raleph) else {
                    let _ = reply.send(Err(RequestError::NotRaleph(peer)));
                    return;
                };
                state.counters.requests_sent += 1;
                let id = self
                    .swarm
                    .behaviour_mut()
                    .raleph
                    .send_request(&peer, request);
                self.pending_out.insert(id, Pending::Node(reply));
            }
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
    }
}
