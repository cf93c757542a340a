//! Discovery: raleph-to-raleph through Hello, and anyone through ALIVE.

use raleph_p2p::{P2pConfig, PeerType, alive_payload};

use crate::bare::Bare;
use crate::harness::{config, connect, spawn, spawn_with, wait_identified, wait_until};

#[tokio::test]
async fn hello_shares_known_peers() {
    let a = spawn().await;
    let b = spawn().await;
    let c = spawn().await;
    connect(&a, &b).await;
    // C only knows B; B's Hello answer names A, and C dials it.
    connect(&c, &b).await;
    wait_until("c to connect to a", async || {
        c.peer(a.peer_id()).await.is_some()
    })
    .await;
    wait_identified(&c, &a).await;
    let a_addrs = c.seen(|s| s.identified[&a.peer_id()].clone());
    assert_eq!(a_addrs, a.handle.listen_addrs());
}

/// N hears, through Y, the ALIVE announcement of a reference-like peer X, and dials X.
#[tokio::test]
async fn alive_announcements_lead_to_dials() {
    let x = Bare::spawn().await;
    let (config, dir) = config();
    let y = spawn_with(
        P2pConfig {
            peers: vec![x.addr.clone()],
            ..config
        },
        dir,
    )
    .await;
    let n = spawn().await;
    connect(&n, &y).await;
    wait_until("y and x to exchange subscriptions", async || {
        x.subscribed.lock().unwrap().contains(&y.peer_id()) && y.peer(x.peer_id).await.is_some()
    })
    .await;
    assert!(n.peer(x.peer_id).await.is_none());

    // X announces its own address, as a reference node does every 120 s. Re-publishing the
    // same bytes is refused as a duplicate, so retrying is harmless.
    let payload = alive_payload(&x.addr.to_string(), PeerType::P2p, "v0.6.0");
    wait_until("n to dial x", async || {
        x.publish_on("ALIVE", &payload).await;
        n.peer(x.peer_id).await.is_some()
    })
    .await;
    assert!(!n.peer(x.peer_id).await.unwrap().is_raleph);
}
