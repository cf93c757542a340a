//! Blame goes to a message's signed author, not to the honest neighbour that relayed it.
//!
//! Reference nodes forward every correctly signed message before anyone checks its content
//! (p2p.md §4.4), so a busy reference neighbour relays other people's junk. The relay here is a
//! plain rust-libp2p gossipsub node configured as a reference node: signed, Strict, no
//! application validation.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, SwarmBuilder, noise, tcp, yamux};
use raleph_p2p::{DialError, P2pConfig, PeerCounters};
use tokio::sync::{mpsc, oneshot};

use crate::harness::{TOPIC, TestNode, config, spawn, spawn_with, wait_until};

enum Command {
    Publish(Vec<u8>, oneshot::Sender<bool>),
    Dial(Multiaddr),
}

/// A reference-like gossipsub node: it forwards whatever is correctly signed, unchecked.
struct Plain {
    peer_id: PeerId,
    addr: Multiaddr,
    /// Messages delivered to it (its own publishes aside).
    received: Arc<AtomicUsize>,
    /// Peers whose subscription to the message topic arrived.
    subscribed: Arc<Mutex<HashSet<PeerId>>>,
    commands: mpsc::Sender<Command>,
}

impl Plain {
    async fn spawn() -> Plain {
        let key = libp2p::identity::Keypair::generate_ed25519();
        let peer_id = key.public().to_peer_id();
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
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .unwrap()
            .with_behaviour(|_| behaviour)
            .unwrap()
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
            .build();
        swarm
            .behaviour_mut()
            .subscribe(&IdentTopic::new(TOPIC))
            .unwrap();
        swarm
            .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
            .unwrap();
        let addr = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                break address.with(libp2p::multiaddr::Protocol::P2p(peer_id));
            }
        };
        let received = Arc::new(AtomicUsize::new(0));
        let subscribed = Arc::new(Mutex::new(HashSet::new()));
        let (commands, mut rx) = mpsc::channel::<Command>(64);
        let (task_received, task_subscribed) = (received.clone(), subscribed.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    event = swarm.select_next_some() => match event {
                        SwarmEvent::Behaviour(gossipsub::Event::Message { .. }) => {
                            task_received.fetch_add(1, Ordering::SeqCst);
                        }
                        SwarmEvent::Behaviour(gossipsub::Event::Subscribed { peer_id, topic })
                            if topic.as_str() == TOPIC =>
                        {
                            task_subscribed.lock().unwrap().insert(peer_id);
                        }
                        _ => {}
                    },
                    command = rx.recv() => match command {
                        Some(Command::Publish(data, reply)) => {
                            let ok = swarm
                                .behaviour_mut()
                                .publish(IdentTopic::new(TOPIC), data)
                                .is_ok();
                            let _ = reply.send(ok);
                        }
                        Some(Command::Dial(addr)) => swarm.dial(addr).unwrap(),
                        None => break,
                    },
                }
            }
        });
        Plain {
            peer_id,
            addr,
            received,
            subscribed,
            commands,
        }
    }

    /// Publishes on the message topic; false if it went nowhere.
    async fn publish(&self, data: impl Into<Vec<u8>>) -> bool {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Publish(data.into(), reply))
            .await
            .unwrap();
        rx.await.unwrap()
    }

    async fn dial(&self, addr: Multiaddr) {
        self.commands.send(Command::Dial(addr)).await.unwrap();
    }

    fn sees_subscribed(&self, peer: PeerId) -> bool {
        self.subscribed.lock().unwrap().contains(&peer)
    }
}

/// `peer`'s counters at `node`; `None` once it is disconnected.
async fn counters(node: &TestNode, peer: PeerId) -> Option<PeerCounters> {
    node.peer(peer).await.map(|info| info.counters)
}

/// Every message counted as received has its outcome counted too (the node has answered).
fn settled(c: &PeerCounters) -> bool {
    c.messages_received
        == c.messages_accepted
            + c.messages_rejected
            + c.messages_relayed_rejected
            + c.messages_ignored
            + c.messages_throttled
            + c.messages_author_throttled
            + c.messages_dropped
}

/// Invalid messages the malicious author publishes, in batches of `BATCH`.
const INVALID: usize = 3_000;
const BATCH: usize = 250;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_relay_is_not_blamed_for_the_junk_it_relays() {
    let started = Instant::now();
    // The raleph node N, with the default limits: 2 000-message burst, 100 rejects per
    // 10 minutes, a ban after 1 000 ignored messages.
    let node = spawn().await;
    let relay = Plain::spawn().await;
    let author = Plain::spawn().await;
    // A line: the author M, the relay R, the node N. M and N never meet.
    node.handle.dial(relay.addr.clone()).await.unwrap();
    author.dial(relay.addr.clone()).await;
    let (n, r, m) = (node.peer_id(), relay.peer_id, author.peer_id);
    wait_until("the relay to see both subscriptions", async || {
        relay.sees_subscribed(n) && relay.sees_subscribed(m)
    })
    .await;

    // M's valid messages reach N through R (once the relay's mesh includes N).
    let mut probe = 0;
    wait_until("a probe from the author to reach the node", async || {
        probe += 1;
        author.publish(format!("probe {probe}")).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        node.seen(|s| s.messages.iter().any(|m| m.data.starts_with(b"probe")))
    })
    .await;
    let got = node.seen(|s| {
        s.messages
            .iter()
            .find(|m| m.data.starts_with(b"probe"))
            .cloned()
    });
    let got = got.unwrap();
    assert_eq!((got.source, got.author), (r, Some(m)));
    wait_until("the probes to be settled", async || {
        counters(&node, r).await.is_some_and(|c| settled(&c))
    })
    .await;
    let before = counters(&node, r).await.unwrap();

    // M publishes thousands of invalid messages; R relays them all to N unchecked.
    let relayed_by_r = relay.received.load(Ordering::SeqCst);
    for batch in 0..INVALID / BATCH {
        for i in 0..BATCH {
            assert!(author.publish(format!("bad {batch} {i}")).await);
        }
        let expected = before.messages_received + ((batch + 1) * BATCH) as u64;
        wait_until("the node to receive the batch", async || {
            counters(&node, r)
                .await
                .is_some_and(|c| c.messages_received >= expected)
        })
        .await;
    }
    wait_until("the flood to be settled", async || {
        counters(&node, r).await.is_some_and(|c| settled(&c))
    })
    .await;
    assert!(relay.received.load(Ordering::SeqCst) >= relayed_by_r + INVALID);
    let info = node.peer(r).await.expect("the relay is still connected");
    let c = &info.counters;
    let invalid_rejected = c.messages_relayed_rejected - before.messages_relayed_rejected;
    let author_ignored = c.messages_author_throttled - before.messages_author_throttled;
    eprintln!(
        "relayed {} invalid messages: {invalid_rejected} rejected (held against the author), \
         {author_ignored} ignored once the author was penalised, {} throttled by the relay's \
         total ({:.1} s so far)",
        c.messages_received - before.messages_received,
        c.messages_throttled,
        started.elapsed().as_secs_f64(),
    );
    assert_eq!(
        c.messages_received - before.messages_received,
        INVALID as u64
    );
    // Rejected until the author passed its allowance, then ignored as the author's.
    assert!(invalid_rejected > 100, "{c:?}");
    assert!(author_ignored > 0, "{c:?}");
    assert_eq!(
        invalid_rejected + author_ignored + c.messages_throttled,
        INVALID as u64
    );
    // Nothing of it is held against the relay.
    assert_eq!(c.messages_rejected, 0, "{c:?}");
    assert!(!info.throttled, "{c:?}");
    assert!(!node.seen(|s| s.disconnected.contains(&r)));

    // M is penalised: its valid messages are ignored whoever relays them...
    let received = node.seen(|s| s.messages.len());
    assert!(
        author
            .publish("valid from the author, while penalised")
            .await
    );
    wait_until("the author's message to be ignored", async || {
        counters(&node, r).await.is_some_and(|c| {
            c.messages_author_throttled == before.messages_author_throttled + author_ignored + 1
        })
    })
    .await;
    assert_eq!(node.seen(|s| s.messages.len()), received);
    // ...while R's own messages still get through.
    wait_until("the relay's own message to reach the node", async || {
        relay.publish("valid from the relay").await;
        node.received(b"valid from the relay").is_some()
    })
    .await;
    let got = node.received(b"valid from the relay").unwrap();
    assert_eq!((got.source, got.author), (r, Some(r)));
    wait_until("the relay's message to be accepted", async || {
        counters(&node, r)
            .await
            .is_some_and(|c| c.messages_accepted == before.messages_accepted + 1)
    })
    .await;
    let info = node.peer(r).await.expect("the relay is still connected");
    assert!(!info.throttled);
    assert_eq!(info.counters.messages_rejected, 0);
    assert!(!node.seen(|s| s.disconnected.contains(&r)));
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
}

/// A peer that authors its own junk is still penalised, then disconnected and banned.
#[tokio::test]
async fn a_peer_authoring_junk_is_still_banned() {
    let (config, dir) = config();
    let node = spawn_with(
        P2pConfig {
            max_rejects: 5,
            ignored_before_ban: 20,
            ..config
        },
        dir,
    )
    .await;
    let junk = Plain::spawn().await;
    node.handle.dial(junk.addr.clone()).await.unwrap();
    let j = junk.peer_id;
    wait_until("the peer to see the node's subscription", async || {
        junk.sees_subscribed(node.peer_id())
    })
    .await;
    let mut sent = 0;
    wait_until("a first message to reach the node", async || {
        sent += 1;
        junk.publish(format!("bad {sent}")).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        node.seen(|s| !s.messages.is_empty())
    })
    .await;
    for _ in 0..10 {
        sent += 1;
        assert!(junk.publish(format!("bad {sent}")).await);
    }
    // Its rejects are its own; past `max_rejects` it is penalised.
    wait_until("the node to penalise it", async || {
        node.peer(j).await.is_some_and(|info| {
            info.throttled && info.counters.messages_rejected > 5 && settled(&info.counters)
        })
    })
    .await;
    let c = counters(&node, j).await.unwrap();
    assert_eq!(c.messages_relayed_rejected, 0);
    assert_eq!(c.messages_author_throttled, 0);
    // It keeps going, and is cut off.
    for _ in 0..100 {
        sent += 1;
        if !junk.publish(format!("bad {sent}")).await {
            break; // no subscribed peer any more: the node closed the connection
        }
    }
    wait_until("the node to drop it", async || {
        node.seen(|s| s.disconnected.contains(&j)) && node.peer(j).await.is_none()
    })
    .await;
    assert!(matches!(
        node.handle.dial(junk.addr.clone()).await,
        Err(DialError::Banned(p)) if p == j
    ));
}
