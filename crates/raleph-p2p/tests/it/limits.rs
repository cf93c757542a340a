//! Connection limits: inbound connections past `max_incoming_connections` are refused, while
//! the node's own dials still get a place.

use raleph_p2p::P2pConfig;

use crate::harness::{config, connect, spawn, spawn_with, wait_until};

#[tokio::test]
async fn inbound_connections_past_the_limit_are_refused_but_own_dials_go_out() {
    let (limited, dir) = config();
    let a = spawn_with(
        P2pConfig {
            max_incoming_connections: 1,
            ..limited
        },
        dir,
    )
    .await;
    let b = spawn().await;
    let c = spawn().await;
    connect(&b, &a).await;

    // C's connection completes its handshake, then A closes it: C sees A come and go.
    c.handle.dial(a.addr()).await.unwrap();
    wait_until("a to close c's connection", async || {
        c.seen(|s| s.disconnected.contains(&a.peer_id()))
    })
    .await;
    assert!(a.peer(c.peer_id()).await.is_none());
    assert!(a.peer(b.peer_id()).await.is_some());

    // Dialing out is not limited by the inbound limit.
    a.handle.dial(c.addr()).await.unwrap();
    wait_until("a to connect to c", async || {
        a.peer(c.peer_id()).await.is_some()
    })
    .await;
    assert_eq!(a.handle.connected_peer_count(), 2);
}
