//! An `https://` node is spoken to over TLS, for HTTP calls and for the websocket alike. The
//! "node" here is a loopback listener that reads the first bytes the client sends: a TLS
//! handshake starts with a handshake record (0x16, then version 3.x). It answers nothing, so
//! the call itself fails; what matters is what the client sent.

use std::time::Duration;

use raleph_sdk::{Client, MessageFilter};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

/// Accepts one connection and returns its first three bytes.
async fn first_bytes() -> (String, tokio::task::JoinHandle<[u8; 3]>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        // A client without TLS never connects: it refuses the scheme first.
        let connection = tokio::time::timeout(Duration::from_secs(10), async {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut bytes = [0u8; 3];
            socket.read_exact(&mut bytes).await.expect("read");
            bytes
        });
        connection
            .await
            .expect("the client connected and sent 3 bytes")
    });
    // A name, not an address: TLS sends it as the server name.
    (format!("https://localhost:{}", addr.port()), task)
}

fn is_tls_handshake(bytes: [u8; 3]) -> bool {
    bytes[0] == 0x16 && bytes[1] == 0x03
}

#[tokio::test]
async fn http_calls_to_an_https_node_use_tls() {
    let (url, first) = first_bytes().await;
    let client = Client::new(&url);
    let call = tokio::spawn(async move { client.version().await });
    let bytes = first.await.expect("listener");
    assert!(is_tls_handshake(bytes), "sent {bytes:02x?}");
    assert!(call.await.expect("call").is_err(), "no TLS server answered");
}

#[tokio::test]
async fn the_websocket_of_an_https_node_uses_tls() {
    let (url, first) = first_bytes().await;
    let client = Client::new(&url);
    let call = tokio::spawn(async move {
        client
            .watch(&MessageFilter::default(), Some(0))
            .await
            .map(|_| ())
    });
    let bytes = first.await.expect("listener");
    assert!(is_tls_handshake(bytes), "sent {bytes:02x?}");
    assert!(call.await.expect("call").is_err(), "no TLS server answered");
}
