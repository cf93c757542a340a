//! Raleph-to-raleph discovery through Hello.

use crate::harness::{connect, spawn, wait_identified, wait_until};

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
