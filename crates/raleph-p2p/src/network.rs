//! Starting the network: the transport, the behaviour, the listener, then the swarm task.

use std::time::Duration;

use futures::StreamExt;
use libp2p::gossipsub::IdentTopic;
use libp2p::identity::Keypair;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, SwarmBuilder, noise, tcp, yamux};
use tokio::sync::{mpsc, watch};

use crate::behaviour;
use crate::config::{P2pConfig, secs};
use crate::handle::{NetworkEvent, NetworkHandle};
use crate::identity::{IdentityError, load_or_create_identity};
use crate::task::{Task, Topics};

/// Commands queued from handles to the task.
const COMMAND_CAPACITY: usize = 1_024;
/// How long `start` waits for the listener to bind.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

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

/// The muxers' configurations, with the stream and buffer bounds of `config`.
fn muxer_configs(config: &P2pConfig) -> (yamux::Config, libp2p_mplex::Config) {
    let mut yamux = yamux::Config::default();
    // At least one stream; the 1 GiB connection window of the default allows up to 4 096.
    yamux.set_max_num_streams(config.yamux_max_streams.clamp(1, 4_096));
    let mut mplex = libp2p_mplex::Config::new();
    mplex
        .set_max_num_streams(config.mplex_max_streams.max(1))
        .set_max_buffer_size(config.mplex_max_buffered_frames.max(1))
        // The default: a full stream buffer pauses reading the connection rather than
        // resetting the stream.
        .set_max_buffer_behaviour(libp2p_mplex::MaxBufferBehaviour::Block);
    (yamux, mplex)
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
        let muxers = muxer_configs(&config);
        let mut swarm = SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                // yamux first, mplex for older peers, in the order the reference offers them.
                (move || muxers.0.clone(), move || muxers.1.clone()),
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
        let mut task = Task::new(swarm, config, topics, events_tx, listen_tx);
        task.add_listen_addr(first_addr);
        task.redial();
        let connected = task.connected_counter();
        tokio::spawn(task.run(commands_rx));

        let handle = NetworkHandle {
            commands: commands_tx,
            local_peer_id,
            listen_addrs: listen_rx,
            connected,
        };
        Ok((handle, events_rx))
    }
}
