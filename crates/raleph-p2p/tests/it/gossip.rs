//! Gossip between raleph nodes: delivery to the node, and forwarding only after acceptance.

use raleph_p2p::P2pConfig;

use crate::harness::{config, connect, spawn, spawn_with, wait_until};

#[tokio::test]
async fn two_nodes_identify_each_other_and_gossip() {
    let a = spawn().await;
    let b = spawn().await;
    // The bound address is readable back, with the peer id.
    let addr = b.addr().to_string();
    assert!(addr.starts_with("/ip4/127.0.0.1/tcp/"), "{addr}");
    assert!(addr.ends_with(&format!("/p2p/{}", b.peer_id())), "{addr}");

    assert_eq!(a.handle.connected_peer_count(), 0);
    connect(&a, &b).await;
    wait_until("both to count one connected peer", async || {
        a.handle.connected_peer_count() == 1 && b.handle.connected_peer_count() == 1
    })
    .await;
    let info = b.peer(a.peer_id()).await.unwrap();
    assert!(info.is_raleph);
    assert_eq!(info.node_version.as_deref(), Some("test"));

    a.publish(b"hello from a").await;
    wait_until("b to receive a's message", async || {
        b.received(b"hello from a").is_some()
    })
    .await;
    let got = b.received(b"hello from a").unwrap();
    assert_eq!(got.author, Some(a.peer_id()));
    assert_eq!(got.source, a.peer_id());
    // The harness accepted it; the counters show it.
    wait_until("b's counters to show the acceptance", async || {
        let info = b.peer(a.peer_id()).await.unwrap();
        info.counters.messages_accepted == 1 && info.counters.messages_received == 1
    })
    .await;
}

/// A–B–C in a line: C hears A's messages only through B, and only those B accepted.
#[tokio::test]
async fn forwarding_requires_acceptance() {
    let line = || {
        let (config, dir) = config();
        // No discovery, so C never connects to A directly.
        (
            P2pConfig {
                dial_discovered: false,
                ..config
            },
            dir,
        )
    };
    let (ca, da) = line();
    let (cb, db) = line();
    let (cc, dc) = line();
    let a = spawn_with(ca, da).await;
    let b = spawn_with(cb, db).await;
    let c = spawn_with(cc, dc).await;
    connect(&a, &b).await;
    connect(&c, &b).await;

    a.publish(b"bad: rejected by b").await;
    wait_until("b to reject the bad message", async || {
        b.peer(a.peer_id())
            .await
            .is_some_and(|p| p.counters.messages_rejected == 1)
    })
    .await;
    a.publish(b"good: accepted by b").await;
    wait_until("c to receive the good message", async || {
        c.received(b"good: accepted by b").is_some()
    })
    .await;
    let good = c.received(b"good: accepted by b").unwrap();
    assert_eq!(good.author, Some(a.peer_id()));
    assert_eq!(good.source, b.peer_id());
    // The bad one was published first and never forwarded.
    assert!(c.received(b"bad: rejected by b").is_none());
    assert!(c.peer(a.peer_id()).await.is_none(), "c must not know a");
}
