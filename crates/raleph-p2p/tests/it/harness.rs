//! A test node: a started network plus a task that plays the node's part (validates messages
//! by a simple rule, answers requests from a fixed data set) and records what it saw.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raleph_p2p::{
    Multiaddr, Network, NetworkEvent, NetworkHandle, P2pConfig, PeerId, PeerInfo, RalephRequest,
    RalephResponse, SyncResponse, Validation,
};

pub const TOPIC: &str = "ALEPH-TEST";
/// The test file served by `FetchFile { hash: "file" }`.
pub fn test_file() -> Vec<u8> {
    (0..1000u32).map(|i| (i % 251) as u8).collect()
}

#[derive(Debug, Clone)]
pub struct Received {
    pub source: PeerId,
    pub author: Option<PeerId>,
    pub data: Vec<u8>,
}

#[derive(Debug, Default)]
pub struct Seen {
    pub messages: Vec<Received>,
    pub identified: HashMap<PeerId, Vec<Multiaddr>>,
    pub http_urls: HashMap<PeerId, Option<String>>,
    pub disconnected: HashSet<PeerId>,
    pub requests: usize,
}

pub struct TestNode {
    pub handle: NetworkHandle,
    pub seen: Arc<Mutex<Seen>>,
    _dir: tempfile::TempDir,
}

/// A config for tests: loopback, port 0, a key in a fresh temporary directory.
pub fn config() -> (P2pConfig, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = P2pConfig {
        listen: "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
        key: dir.path().join("node.key"),
        version: "test".to_string(),
        ..P2pConfig::default()
    };
    (config, dir)
}

pub async fn spawn() -> TestNode {
    let (config, dir) = config();
    spawn_with(config, dir).await
}

pub async fn spawn_with(config: P2pConfig, dir: tempfile::TempDir) -> TestNode {
    let (handle, events) = Network::start(config).await.unwrap();
    attach(handle, events, dir)
}

fn attach(
    handle: NetworkHandle,
    mut events: tokio::sync::mpsc::Receiver<NetworkEvent>,
    dir: tempfile::TempDir,
) -> TestNode {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let node_handle = handle.clone();
    let node_seen = seen.clone();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            on_event(&node_handle, &node_seen, event).await;
        }
    });
    TestNode {
        handle,
        seen,
        _dir: dir,
    }
}

/// The node's part: messages starting with "bad" are invalid, everything else is accepted.
async fn on_event(handle: &NetworkHandle, seen: &Mutex<Seen>, event: NetworkEvent) {
    match event {
        NetworkEvent::Message {
            id,
            source,
            author,
            data,
            ..
        } => {
            let validation = if data.starts_with(b"bad") {
                Validation::Reject
            } else {
                Validation::Accept
            };
            seen.lock().unwrap().messages.push(Received {
                source,
                author,
                data: data.to_vec(),
            });
            let _ = handle
                .report_validation(id, source, author, validation)
                .await;
        }
        NetworkEvent::InboundRequest { request, reply, .. } => {
            seen.lock().unwrap().requests += 1;
            let _ = reply.send(answer(request));
        }
        NetworkEvent::PeerIdentified {
            peer,
            listen_addrs,
            http_base_url,
            ..
        } => {
            let mut seen = seen.lock().unwrap();
            seen.identified.insert(peer, listen_addrs);
            seen.http_urls.insert(peer, http_base_url);
        }
        NetworkEvent::PeerDisconnected { peer } => {
            seen.lock().unwrap().disconnected.insert(peer);
        }
        _ => {}
    }
}

fn answer(request: RalephRequest) -> RalephResponse {
    match request {
        RalephRequest::SyncMessages { after, limit, .. } => RalephResponse::Sync(SyncResponse {
            epoch: "epoch-1".to_string(),
            messages: vec![format!(r#"{{"after":{after},"limit":{limit}}}"#)],
            next: after + 1,
            ..SyncResponse::default()
        }),
        RalephRequest::FetchFile { hash, offset, len } => match hash.as_str() {
            "file" => {
                let file = test_file();
                let start = (offset as usize).min(file.len());
                let end = (start + len as usize).min(file.len());
                RalephResponse::FileChunk {
                    total: file.len() as u64,
                    bytes: file[start..end].to_vec(),
                }
            }
            // More than the 8 MiB response limit.
            "big" => RalephResponse::FileChunk {
                total: 9 << 20,
                bytes: vec![7; 9 << 20],
            },
            _ => RalephResponse::NotFound,
        },
        _ => RalephResponse::Error {
            message: "unexpected".to_string(),
        },
    }
}

impl TestNode {
    pub fn peer_id(&self) -> PeerId {
        self.handle.local_peer_id()
    }

    pub fn addr(&self) -> Multiaddr {
        self.handle.listen_addrs()[0].clone()
    }

    pub fn seen<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.seen.lock().unwrap())
    }

    pub fn received(&self, data: &[u8]) -> Option<Received> {
        self.seen(|s| s.messages.iter().find(|m| m.data == data).cloned())
    }

    pub async fn peer(&self, peer: PeerId) -> Option<PeerInfo> {
        self.handle
            .connected_peers()
            .await
            .unwrap()
            .into_iter()
            .find(|p| p.peer_id == peer)
    }

    /// Publishes, retrying while no peer subscribes yet.
    pub async fn publish(&self, data: &[u8]) {
        wait_until("a subscribed peer to publish to", async || {
            self.handle.publish(TOPIC, data.to_vec()).await.is_ok()
        })
        .await;
    }
}

/// Connects `a` to `b` and waits until each has identified the other as a raleph node.
pub async fn connect(a: &TestNode, b: &TestNode) {
    a.handle.dial(b.addr()).await.unwrap();
    wait_identified(a, b).await;
}

pub async fn wait_identified(a: &TestNode, b: &TestNode) {
    let (pa, pb) = (a.peer_id(), b.peer_id());
    wait_until("mutual identification", async || {
        a.seen(|s| s.identified.contains_key(&pb)) && b.seen(|s| s.identified.contains_key(&pa))
    })
    .await;
}

/// Polls `condition` every 20 ms for up to 20 s.
pub async fn wait_until(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if condition().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
