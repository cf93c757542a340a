//! A peer publishing above its rate is throttled, then disconnected and banned.

use raleph_p2p::{DialError, Network, P2pConfig};

use crate::harness::{config, connect, spawn, spawn_with, wait_until};

#[tokio::test]
async fn flooding_peer_is_throttled_then_banned() {
    let (config, dir) = config();
    let guard = spawn_with(
        P2pConfig {
            flood_burst: 10,
            flood_rate_per_sec: 0.5,
            ignored_before_ban: 30,
            ban_secs: 600.0,
            ..config
        },
        dir,
    )
    .await;
    let flooder = spawn().await;
    connect(&flooder, &guard).await;
    let (f, g) = (flooder.peer_id(), guard.peer_id());

    // Phase 1: 25 messages at once. About 10 get through, the rest are throttled.
    for i in 0..25 {
        flooder.publish(format!("flood {i}").as_bytes()).await;
    }
    wait_until("the guard to count 25 messages", async || {
        guard
            .peer(f)
            .await
            .is_some_and(|p| p.counters.messages_received == 25)
    })
    .await;
    let info = guard.peer(f).await.unwrap();
    assert!(info.throttled);
    assert!(
        info.counters.messages_throttled >= 13,
        "{:?}",
        info.counters
    );
    let delivered = guard.seen(|s| s.messages.iter().filter(|m| m.source == f).count());
    assert!(delivered <= 12, "delivered {delivered}");
    assert_eq!(delivered as u64 + info.counters.messages_throttled, 25);

    // Phase 2: it keeps going, and is cut off.
    for i in 25..80 {
        if flooder
            .handle
            .publish("ALEPH-TEST", format!("flood {i}").into_bytes())
            .await
            .is_err()
        {
            break; // no subscribed peer any more: the guard closed the connection
        }
    }
    wait_until("the guard to drop the flooder", async || {
        guard.seen(|s| s.disconnected.contains(&f)) && guard.peer(f).await.is_none()
    })
    .await;
    // Banned: the guard will not dial it, and refuses its connections.
    assert!(matches!(
        guard.handle.dial(flooder.addr()).await,
        Err(DialError::Banned(p)) if p == f
    ));
    wait_until("the flooder to see the disconnection", async || {
        flooder.seen(|s| s.disconnected.contains(&g))
    })
    .await;
}

/// A node that stops reading its events loses gossip (counted, and not forwarded) instead of
/// buffering it without bound.
#[tokio::test]
async fn a_slow_node_drops_counted_gossip() {
    let (config, _dir) = config();
    let (slow, _events_never_read) = Network::start(P2pConfig {
        event_channel_capacity: 2,
        event_backlog: 3,
        ..config
    })
    .await
    .unwrap();
    let sender = spawn().await;
    sender
        .handle
        .dial(slow.listen_addrs()[0].clone())
        .await
        .unwrap();
    let s = sender.peer_id();
    for i in 0..10 {
        sender.publish(format!("message {i}").as_bytes()).await;
    }
    let counters = async || {
        slow.connected_peers()
            .await
            .unwrap()
            .into_iter()
            .find(|p| p.peer_id == s)
            .map(|p| p.counters)
    };
    wait_until("the slow node to count 10 messages", async || {
        counters().await.is_some_and(|c| c.messages_received == 10)
    })
    .await;
    // At most 2 events fit in the channel and 3 gossip messages in the backlog.
    let dropped = counters().await.unwrap().messages_dropped;
    assert!((5..=10).contains(&dropped), "dropped {dropped}");
}
