//! A node running on a reference-style RSA PKCS#8 DER identity talks to an Ed25519 node.

use rsa::pkcs8::EncodePrivateKey;

use crate::harness::{config, connect, spawn, spawn_with, wait_until};

#[tokio::test]
async fn rsa_node_interoperates_with_ed25519_node() {
    let (mut rsa_config, dir) = config();
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    rsa_config.key = dir.path().join("node-secret.pkcs8.der");
    std::fs::write(&rsa_config.key, key.to_pkcs8_der().unwrap().as_bytes()).unwrap();
    let r = spawn_with(rsa_config, dir).await;
    assert!(r.peer_id().to_base58().starts_with("Qm"));
    let e = spawn().await;
    assert!(e.peer_id().to_base58().starts_with("12D3KooW"));

    connect(&r, &e).await;
    r.publish(b"signed with rsa").await;
    e.publish(b"signed with ed25519").await;
    wait_until("both messages to arrive", async || {
        e.received(b"signed with rsa").is_some() && r.received(b"signed with ed25519").is_some()
    })
    .await;
    assert_eq!(
        e.received(b"signed with rsa").unwrap().author,
        Some(r.peer_id())
    );
    assert_eq!(
        r.received(b"signed with ed25519").unwrap().author,
        Some(e.peer_id())
    );
}
