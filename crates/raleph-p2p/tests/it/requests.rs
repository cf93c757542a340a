//! `/raleph/1` requests answered by the node.

use raleph_p2p::{RalephRequest, RalephResponse, RequestError};

use crate::harness::{connect, spawn, test_file, wait_until};

#[tokio::test]
async fn sync_and_fetch_round_trip() {
    let a = spawn().await;
    let b = spawn().await;
    connect(&a, &b).await;
    let request = |r| a.handle.request(b.peer_id(), r);

    match request(RalephRequest::SyncMessages {
        after: 5,
        limit: 10,
        hashes_only: false,
    })
    .await
    .unwrap()
    {
        RalephResponse::Sync(sync) => {
            assert_eq!(sync.epoch, "epoch-1");
            assert_eq!(sync.messages, vec![r#"{"after":5,"limit":10}"#.to_string()]);
            assert_eq!((sync.next, sync.more), (6, false));
        }
        other => panic!("unexpected {other:?}"),
    }
    let chunk = request(RalephRequest::FetchFile {
        hash: "file".into(),
        offset: 10,
        len: 100,
    })
    .await
    .unwrap();
    assert_eq!(
        chunk,
        RalephResponse::FileChunk {
            total: 1000,
            bytes: test_file()[10..110].to_vec()
        }
    );
    let missing = request(RalephRequest::FetchFile {
        hash: "missing".into(),
        offset: 0,
        len: 1,
    })
    .await
    .unwrap();
    assert_eq!(missing, RalephResponse::NotFound);

    // The node answers with 9 MiB: the swarm refuses to send it and says why.
    match request(RalephRequest::FetchFile {
        hash: "big".into(),
        offset: 0,
        len: u32::MAX,
    })
    .await
    .unwrap()
    {
        RalephResponse::Error { message } => assert!(message.contains("exceeds"), "{message}"),
        other => panic!("unexpected {other:?}"),
    }
    // The connection survived the refusal.
    let again = request(RalephRequest::SyncMessages {
        after: 0,
        limit: 1,
        hashes_only: false,
    })
    .await;
    assert!(matches!(again, Ok(RalephResponse::Sync(_))), "{again:?}");
    assert_eq!(b.seen(|s| s.requests), 5);
    wait_until("b's served counter", async || {
        b.peer(a.peer_id())
            .await
            .is_some_and(|p| p.counters.requests_served >= 6) // 5 + the Hello
    })
    .await;

    // Unknown peers are refused before any stream is opened.
    let stranger = raleph_p2p::PeerId::random();
    assert!(matches!(
        a.handle.request(stranger, RalephRequest::Hello).await,
        Err(RequestError::NotRaleph(p)) if p == stranger
    ));
}
