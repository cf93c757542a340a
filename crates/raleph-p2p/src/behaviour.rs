//! The network behaviour: what runs on a connection.
//!
//! Only four parts, and only gossipsub ever opens a stream on its own:
//! - connection limits (total, inbound, per peer, pending), so connections cannot exhaust
//!   the node;
//! - a block list, so banned peers' connections are refused;
//! - gossipsub, configured as the reference nodes are (p2p.md §4.1, §11), except that received
//!   messages are validated by the node before they are forwarded;
//! - `/raleph/1` request-response, which opens a stream only when asked to send a request.
//!
//! No identify, ping or kad: each would open a stream that reference nodes refuse, and they
//! drop a connection after five refused or accepted inbound streams (p2p.md §3).

use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{allow_block_list, connection_limits, gossipsub, request_response};

use crate::config::{P2pConfig, limit, secs};
use crate::message_id::message_id;
use crate::protocol::{Codec, PROTOCOL};

/// Gossipsub frame limit of the reference, bytes (p2p.md §4.2). It bounds both what we send and
/// what we accept.
pub const MAX_TRANSMIT_SIZE: usize = 262_144;

/// Largest `data` we publish, bytes: the frame limit less the signature, key and framing of an
/// RSA-2048 author (p2p.md §4.2).
pub const MAX_PUBLISH_BYTES: usize = 261_500;

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub(crate) limits: connection_limits::Behaviour,
    pub(crate) blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    pub(crate) gossipsub: gossipsub::Behaviour,
    pub(crate) raleph: request_response::Behaviour<Codec>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum BuildError {
    #[error("gossipsub configuration: {0}")]
    Config(#[from] gossipsub::ConfigBuilderError),
    #[error("gossipsub: {0}")]
    Gossipsub(&'static str),
}

/// The gossipsub configuration of the reference nodes, plus application validation.
pub(crate) fn gossipsub_config() -> Result<gossipsub::Config, gossipsub::ConfigBuilderError> {
    gossipsub::ConfigBuilder::default()
        // The default protocol list offers /meshsub/1.3.0 down to 1.0.0; reference nodes
        // settle on 1.1.0 (p2p.md §2).
        .heartbeat_interval(Duration::from_secs(1))
        .heartbeat_initial_delay(Duration::from_secs(5))
        .validation_mode(gossipsub::ValidationMode::Strict)
        .max_transmit_size(MAX_TRANSMIT_SIZE)
        .max_publish_messages(100)
        .duplicate_cache_time(Duration::from_secs(1800))
        .message_id_fn(|m: &gossipsub::Message| gossipsub::MessageId::from(message_id(&m.data)))
        .mesh_n(6)
        .mesh_n_low(5)
        .mesh_n_high(12)
        .mesh_outbound_min(2)
        .flood_publish(true)
        // Differs from the reference on purpose: a message is forwarded only after the node
        // has checked its envelope, hash and signature and reported it acceptable.
        .validate_messages()
        .build()
}

pub(crate) fn build(keypair: &Keypair, config: &P2pConfig) -> Result<Behaviour, BuildError> {
    let gossipsub = gossipsub::Behaviour::new(
        gossipsub::MessageAuthenticity::Signed(keypair.clone()),
        gossipsub_config()?,
    )
    .map_err(BuildError::Gossipsub)?;
    let codec = Codec {
        max_request_bytes: config.max_request_bytes,
        max_response_bytes: config.max_response_bytes,
    };
    let raleph = request_response::Behaviour::with_codec(
        codec,
        [(PROTOCOL, request_response::ProtocolSupport::Full)],
        request_response::Config::default().with_request_timeout(secs(config.request_timeout_secs)),
    );
    let limits = connection_limits::ConnectionLimits::default()
        .with_max_established(limit(config.max_connections))
        .with_max_established_incoming(limit(config.max_incoming_connections))
        .with_max_established_per_peer(limit(config.max_connections_per_peer))
        .with_max_pending_incoming(limit(config.max_pending_incoming))
        .with_max_pending_outgoing(limit(config.max_pending_outgoing));
    Ok(Behaviour {
        limits: connection_limits::Behaviour::new(limits),
        blocked: allow_block_list::Behaviour::default(),
        gossipsub,
        raleph,
    })
}
