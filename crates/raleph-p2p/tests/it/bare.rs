//! A "reference-like" peer: a bare rust-libp2p swarm with only gossipsub, configured as the
//! reference sidecar (validation off), that counts every inbound substream its peers open,
//! whatever the protocol and whether or not negotiation succeeds. That is exactly the budget a
//! reference node enforces (p2p.md §3).

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::StreamExt;
use libp2p::core::muxing::{
    StreamMuxer, StreamMuxerBox, StreamMuxerEvent, StreamMuxerExt, SubstreamBox,
};
use libp2p::core::transport::Transport;
use libp2p::core::upgrade;
use libp2p::gossipsub::{self, IdentTopic};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, SwarmBuilder, noise, tcp, yamux};
use tokio::sync::mpsc;

/// Wraps a muxer to count the substreams the remote opens.
struct CountingMuxer {
    inner: StreamMuxerBox,
    inbound: Arc<AtomicUsize>,
}

impl StreamMuxer for CountingMuxer {
    type Substream = SubstreamBox;
    type Error = std::io::Error;

    fn poll_inbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let this = self.get_mut();
        let polled = this.inner.poll_inbound_unpin(cx);
        if let Poll::Ready(Ok(_)) = &polled {
            this.inbound.fetch_add(1, Ordering::SeqCst);
        }
        polled
    }

    fn poll_outbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        self.get_mut().inner.poll_outbound_unpin(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.get_mut().inner.poll_close_unpin(cx)
    }

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<StreamMuxerEvent, Self::Error>> {
        self.get_mut().inner.poll_unpin(cx)
    }
}

/// (topic, data) of a received message.
type Received = (String, Vec<u8>);

pub struct Bare {
    pub peer_id: PeerId,
    pub addr: Multiaddr,
    /// Inbound substreams opened by remotes, all connections together.
    pub inbound: Arc<AtomicUsize>,
    pub received: Arc<Mutex<Vec<Received>>>,
    /// Peers whose subscription to ALEPH-TEST arrived.
    pub subscribed: Arc<Mutex<HashSet<PeerId>>>,
    publish: mpsc::Sender<(String, Vec<u8>)>,
    /// Result of the last publish: true if it went out.
    pub published: Arc<Mutex<Vec<bool>>>,
}

impl Bare {
    pub async fn spawn() -> Bare {
        let key = libp2p::identity::Keypair::generate_ed25519();
        let peer_id = key.public().to_peer_id();
        let inbound = Arc::new(AtomicUsize::new(0));
        let counter = inbound.clone();
        let transport = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
            .upgrade(upgrade::Version::V1)
            .authenticate(noise::Config::new(&key).unwrap())
            .multiplex(yamux::Config::default())
            .map(move |(peer, muxer), _| {
                let counting = CountingMuxer {
                    inner: StreamMuxerBox::new(muxer),
                    inbound: counter.clone(),
                };
                (peer, StreamMuxerBox::new(counting))
            })
            .boxed();
        let config = gossipsub::ConfigBuilder::default()
            .heartbeat_interval(Duration::from_secs(1))
            .validation_mode(gossipsub::ValidationMode::Strict)
            .max_transmit_size(262_144)
            .duplicate_cache_time(Duration::from_secs(1800))
            .message_id_fn(|m: &gossipsub::Message| {
                gossipsub::MessageId::from(raleph_p2p::message_id(&m.data))
            })
            .mesh_n(6)
            .mesh_n_low(5)
            .mesh_n_high(12)
            .flood_publish(true)
            .build()
            .unwrap();
        let behaviour: gossipsub::Behaviour =
            gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Signed(key.clone()), config)
                .unwrap();
        let mut swarm = SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_other_transport(|_| transport)
            .unwrap()
            .with_behaviour(|_| behaviour)
            .unwrap()
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
            .build();
        for topic in ["ALEPH-TEST", "ALIVE"] {
            swarm
                .behaviour_mut()
                .subscribe(&IdentTopic::new(topic))
                .unwrap();
        }
        swarm
            .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
            .unwrap();
        let addr = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                break address.with(libp2p::multiaddr::Protocol::P2p(peer_id));
            }
        };

        let received = Arc::new(Mutex::new(Vec::new()));
        let subscribed = Arc::new(Mutex::new(HashSet::new()));
        let published = Arc::new(Mutex::new(Vec::new()));
        let (publish, mut to_publish) = mpsc::channel::<(String, Vec<u8>)>(16);
        let (rx_received, rx_subscribed, rx_published) =
            (received.clone(), subscribed.clone(), published.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    event = swarm.select_next_some() => match event {
                        SwarmEvent::Behaviour(gossipsub::Event::Message { message, .. }) => {
                            rx_received
                                .lock()
                                .unwrap()
                                .push((message.topic.into_string(), message.data));
                        }
                        SwarmEvent::Behaviour(gossipsub::Event::Subscribed { peer_id, topic })
                            if topic.as_str() == "ALEPH-TEST" =>
                        {
                            rx_subscribed.lock().unwrap().insert(peer_id);
                        }
                        _ => {}
                    },
                    data = to_publish.recv() => match data {
                        Some((topic, data)) => {
                            let ok = swarm
                                .behaviour_mut()
                                .publish(IdentTopic::new(topic), data)
                                .is_ok();
                            rx_published.lock().unwrap().push(ok);
                        }
                        None => break,
                    },
                }
            }
        });
        Bare {
            peer_id,
            addr,
            inbound,
            received,
            subscribed,
            publish,
            published,
        }
    }

    pub async fn publish(&self, data: &[u8]) {
        self.publish_on("ALEPH-TEST", data).await;
    }

    pub async fn publish_on(&self, topic: &str, data: &[u8]) {
        self.publish
            .send((topic.to_string(), data.to_vec()))
            .await
            .unwrap();
    }

    pub fn received(&self, topic: &str, data: &[u8]) -> bool {
        self.received
            .lock()
            .unwrap()
            .iter()
            .any(|(t, d)| t == topic && d == data)
    }
}
