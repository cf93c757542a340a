//! The node's side of the network: a cheap, cloneable handle and the events it receives.

use bytes::Bytes;
use libp2p::gossipsub::MessageId;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot, watch};

use crate::behaviour::MAX_PUBLISH_BYTES;
use crate::peers::PeerInfo;
use crate::protocol::{RalephRequest, RalephResponse};

/// What the node hears from the network. The channel is bounded; see `P2pConfig::event_backlog`
/// for what happens when the node falls behind.
#[derive(Debug)]
#[non_exhaustive]
pub enum NetworkEvent {
    /// A message on the message topic. The node must answer with
    /// [`NetworkHandle::report_validation`] within a few seconds (gossipsub keeps unvalidated
    /// messages for `history_length` = 5 heartbeats); only accepted messages are forwarded.
    Message {
        id: MessageId,
        /// The peer that relayed it to us.
        source: PeerId,
        /// The peer that signed it (gossipsub's `from`): the peer a rejection is held against
        /// when it differs from `source`. Pass it back to
        /// [`NetworkHandle::report_validation`].
        author: Option<PeerId>,
        topic: String,
        data: Bytes,
    },
    /// A `/raleph/1` request the node must answer (anything but Hello, which the swarm answers
    /// itself). Dropping `reply` answers with an error.
    InboundRequest {
        peer: PeerId,
        request: RalephRequest,
        reply: oneshot::Sender<RalephResponse>,
    },
    /// A peer was recognised as a raleph node and answered our Hello.
    PeerIdentified {
        peer: PeerId,
        is_raleph: bool,
        http_base_url: Option<String>,
        listen_addrs: Vec<Multiaddr>,
        node_version: String,
    },
    /// A peer announced its HTTP API on the ALIVE topic (reference nodes do; the node may
    /// fetch files from it with `GET /api/v0/storage/{hash}`).
    HttpPeer { peer: PeerId, url: String },
    /// The first connection to a peer opened.
    PeerConnected { peer: PeerId, address: Multiaddr },
    /// The last connection to a peer closed.
    PeerDisconnected { peer: PeerId },
}

/// The node's verdict on a received message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validation {
    /// Valid: deliver and forward it.
    Accept,
    /// Invalid: do not forward, and count it against its signed author, or against the peer
    /// that relayed it if that is its author or the author is unknown.
    Reject,
    /// Not forwarded, not held against anyone (for example: already known, or the node is busy).
    Ignore,
}

/// The swarm task has stopped.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the p2p network task has stopped")]
pub struct NetworkStopped;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    #[error("message of {size} bytes exceeds the gossip limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    /// No connected peer subscribes to the topic: the message went nowhere (p2p.md §4.6).
    #[error("no connected peer subscribes to the topic")]
    InsufficientPeers,
    /// The same bytes were published or received within the last 30 minutes (p2p.md §4.6).
    #[error("the same bytes were already published or received")]
    Duplicate,
    #[error("publish failed: {0}")]
    Failed(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error(transparent)]
    Stopped(#[from] NetworkStopped),
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// `/raleph/1` is only opened towards peers that announced the raleph topic.
    #[error("peer {0} is not a known raleph node")]
    NotRaleph(PeerId),
    #[error("request to {peer} failed: {source}")]
    Failed {
        peer: PeerId,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(transparent)]
    Stopped(#[from] NetworkStopped),
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DialError {
    #[error("peer {0} is banned")]
    Banned(PeerId),
    #[error("dial failed: {0}")]
    Failed(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error(transparent)]
    Stopped(#[from] NetworkStopped),
}

pub(crate) enum Command {
    Publish {
        topic: String,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<MessageId, PublishError>>,
    },
    ReportValidation {
        id: MessageId,
        source: PeerId,
        author: Option<PeerId>,
        validation: Validation,
    },
    ConnectedPeers {
        reply: oneshot::Sender<Vec<PeerInfo>>,
    },
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<(), DialError>>,
    },
    Request {
        peer: PeerId,
        request: RalephRequest,
        reply: oneshot::Sender<Result<RalephResponse, RequestError>>,
    },
}

/// A handle on the running swarm. Cloning is cheap; every method fails with
/// [`NetworkStopped`] (never panics) once the swarm task has ended. All methods are
/// cancel-safe: dropping a call's future at most loses that call's reply.
#[derive(Debug, Clone)]
pub struct NetworkHandle {
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) local_peer_id: PeerId,
    pub(crate) listen_addrs: watch::Receiver<Vec<Multiaddr>>,
    pub(crate) connected: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Publish { topic, data, .. } => {
                write!(f, "Publish({topic}, {} bytes)", data.len())
            }
            Command::ReportValidation { id, validation, .. } => {
                write!(f, "ReportValidation({id}, {validation:?})")
            }
            Command::ConnectedPeers { .. } => f.write_str("ConnectedPeers"),
            Command::Dial { addr, .. } => write!(f, "Dial({addr})"),
            Command::Request { peer, request, .. } => write!(f, "Request({peer}, {request:?})"),
        }
    }
}

impl NetworkHandle {
    /// How many peers have an open connection now (no round trip to the network task).
    pub fn connected_peer_count(&self) -> usize {
        self.connected.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    /// The addresses the node listens on, each ending in `/p2p/<local peer id>`.
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.listen_addrs.borrow().clone()
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NetworkStopped> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| NetworkStopped)?;
        rx.await.map_err(|_| NetworkStopped)
    }

    /// Publishes `data` on `topic`, signed with the node key. The size is checked first:
    /// reference nodes silently drop frames above 262 144 bytes (p2p.md §4.2).
    pub async fn publish(
        &self,
        topic: &str,
        data: impl Into<Vec<u8>>,
    ) -> Result<MessageId, PublishError> {
        let data = data.into();
        if data.len() > MAX_PUBLISH_BYTES {
            return Err(PublishError::TooLarge {
                size: data.len(),
                limit: MAX_PUBLISH_BYTES,
            });
        }
        let topic = topic.to_string();
        self.call(|reply| Command::Publish { topic, data, reply })
            .await?
    }

    /// Reports the node's verdict on a message received as [`NetworkEvent::Message`], with its
    /// `id`, `source` and `author` as received. A rejection is held against `author` when it is
    /// known and is not `source` (reference nodes relay gossip unchecked): gossipsub is then
    /// told to ignore the message, so the relaying peer is not penalised for it.
    pub async fn report_validation(
        &self,
        id: MessageId,
        source: PeerId,
        author: Option<PeerId>,
        validation: Validation,
    ) -> Result<(), NetworkStopped> {
        self.commands
            .send(Command::ReportValidation {
                id,
                source,
                author,
                validation,
            })
            .await
            .map_err(|_| NetworkStopped)
    }

    /// The currently connected peers with their counters.
    pub async fn connected_peers(&self) -> Result<Vec<PeerInfo>, NetworkStopped> {
        self.call(|reply| Command::ConnectedPeers { reply }).await
    }

    /// Starts dialing `addr` (preferably ending in `/p2p/<peer id>`). Returns once the dial is
    /// under way; the outcome shows as [`NetworkEvent::PeerConnected`].
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), DialError> {
        self.call(|reply| Command::Dial { addr, reply }).await?
    }

    /// Sends a `/raleph/1` request to a connected raleph peer and waits for the answer
    /// (bounded by `request_timeout_secs`).
    pub async fn request(
        &self,
        peer: PeerId,
        request: RalephRequest,
    ) -> Result<RalephResponse, RequestError> {
        self.call(|reply| Command::Request {
            peer,
            request,
            reply,
        })
        .await?
    }
}
