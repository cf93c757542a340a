//! The libp2p layer of a raleph node: gossip with reference Aleph nodes (pyaleph's libp2p
//! sidecar) and raleph-only requests between raleph nodes.
//!
//! What it owns: the identity key file, the transport (TCP with nodelay, Noise, yamux then
//! mplex, DNS for dialing), gossipsub configured as the reference (`shared/spec/p2p.md` §4, §11,
//! including the content-addressed message id of §4.5), the ALIVE announcements, peer discovery
//! and re-dialing, per-peer flood limits, and the `/raleph/1` request-response protocol. What it
//! deliberately does not own: deciding whether a message is valid, storing anything, or
//! answering sync and file requests; the node does that through [`NetworkHandle`] and
//! [`NetworkEvent`]. Of the other raleph crates it uses only `raleph-message` (pure).
//!
//! Start reading at [`Network::start`] (`network.rs`), then the swarm task (`task.rs`, with
//! `task/requests.rs`, `task/discovery.rs` and `task/commands.rs`). The wire types of
//! `/raleph/1` are in `protocol.rs`, the flood guard in `peers.rs`.
//!
//! **Stream budget.** A reference node drops a connection once the remote has opened five
//! inbound streams on it, counting refused ones (p2p.md §3). So towards a peer not known to be
//! a raleph node this crate opens nothing but the gossipsub stream: no identify, no ping, no
//! kad, and no `/raleph/1` request.
//!
//! **Recognising raleph nodes without a stream.** Every raleph node subscribes to one more
//! gossipsub topic, `raleph/1` (`P2pConfig::raleph_topic`). Subscriptions travel on the gossipsub
//! stream that is open anyway, so a peer whose SUBSCRIBE names that topic is a raleph node, and
//! only then is a `/raleph/1` Hello sent to it. Its answer gives its HTTP URL, its addresses and
//! the nodes it knows, which are dialed in turn. Reference nodes ignore the extra topic.
//!
//! **Validation.** Unlike the reference, received messages are forwarded only after the node
//! has checked them: each arrives as [`NetworkEvent::Message`] and the node answers with
//! [`NetworkHandle::report_validation`]. Rejections count against the message's signed author,
//! or against the relaying peer when it is the author or the author is unknown: reference nodes
//! relay gossip unchecked, so an honest neighbour relays other people's junk ([`PeerCounters`]).
//! A sender that floods or keeps sending invalid messages is throttled, whoever relays its
//! messages; a peer that does so itself is then disconnected and banned.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod alive;
mod behaviour;
mod config;
mod handle;
mod identity;
mod message_id;
mod network;
mod peers;
mod protocol;
mod task;

pub use alive::{AliveError, Announcement, PeerType, alive_payload, parse_announcement};
pub use behaviour::{MAX_PUBLISH_BYTES, MAX_TRANSMIT_SIZE};
pub use config::P2pConfig;
pub use handle::{
    DialError, NetworkEvent, NetworkHandle, NetworkStopped, PublishError, RequestError, Validation,
};
pub use identity::{IdentityError, load_or_create_identity};
pub use message_id::{message_id, message_id_u64};
pub use network::{Network, StartError};
pub use peers::{PeerCounters, PeerInfo};
pub use protocol::{HelloResponse, PROTOCOL, RalephRequest, RalephResponse, SyncResponse};

/// For the fuzz targets under `fuzz/` only; not part of the crate's API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::protocol::Codec;
    pub use libp2p::request_response::Codec as RequestResponseCodec;
}

/// Re-exported libp2p types that appear in this crate's API.
pub use libp2p::gossipsub::MessageId;
pub use libp2p::identity::Keypair;
pub use libp2p::{Multiaddr, PeerId};
