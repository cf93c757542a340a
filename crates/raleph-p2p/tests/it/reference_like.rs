//! Towards a peer that is not a raleph node, our node opens nothing but gossipsub.

use std::sync::atomic::Ordering;

use raleph_p2p::{P2pConfig, PeerType, RalephRequest, RequestError, alive_payload};

use crate::bare::Bare;
use crate::harness::{config, spawn_with, wait_until};

#[tokio::test]
async fn only_gossipsub_towards_a_reference_like_peer() {
    let bare = Bare::spawn().await;
    let (config, dir) = config();
    let node = spawn_with(
        P2pConfig {
            peers: vec![bare.addr.clone()],
            alive_interval_secs: 1.0,
            http_base_url: Some("http://127.0.0.1:4024".to_string()),
            ..config
        },
        dir,
    )
    .await;

    // The node dialed the configured peer; its gossipsub subscription reached it.
    wait_until("the bare peer to see the node's subscription", async || {
        bare.subscribed.lock().unwrap().contains(&node.peer_id())
    })
    .await;
    // Gossip flows both ways.
    node.publish(b"from raleph").await;
    wait_until("the bare peer to receive", async || {
        bare.received("ALEPH-TEST", b"from raleph")
    })
    .await;
    wait_until("the node to receive", async || {
        if node.received(b"from bare").is_none() {
            bare.publish(b"from bare").await;
        }
        node.received(b"from bare").is_some()
    })
    .await;
    assert_eq!(
        node.received(b"from bare").unwrap().author,
        Some(bare.peer_id)
    );
    // ALIVE goes out in the reference's exact bytes: one P2P and one HTTP announcement.
    let p2p = alive_payload(
        &node.handle.listen_addrs()[0].to_string(),
        PeerType::P2p,
        "test",
    );
    let http = alive_payload("http://127.0.0.1:4024", PeerType::Http, "test");
    wait_until("the ALIVE announcements", async || {
        bare.received("ALIVE", &p2p) && bare.received("ALIVE", &http)
    })
    .await;

    let info = node.peer(bare.peer_id).await.unwrap();
    assert!(!info.is_raleph);
    assert_eq!(info.connections, 1);
    // No /raleph/1 request may be sent to it, even when asked.
    assert!(matches!(
        node.handle
            .request(bare.peer_id, RalephRequest::Hello)
            .await,
        Err(RequestError::NotRaleph(_))
    ));
    // One more round trip, so that any stream opened earlier would have arrived by now.
    node.publish(b"from raleph, again").await;
    wait_until("the bare peer to receive again", async || {
        bare.received("ALEPH-TEST", b"from raleph, again")
    })
    .await;
    assert_eq!(
        bare.inbound.load(Ordering::SeqCst),
        1,
        "the node opened streams other than gossipsub"
    );
    assert!(bare.published.lock().unwrap().iter().any(|ok| *ok));
}
