//! Shared by the chain tests: a JSON-RPC relay in front of anvil that answers `eth_getLogs`
//! over too wide a block range with error -32005, the way Infura and others refuse it
//! (anvil itself has no such limit).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Refuses `eth_getLogs` windows wider than `max_range` blocks; relays everything else.
pub struct LimitingRelay {
    pub url: String,
    /// How many `eth_getLogs` requests were refused.
    pub refused: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LimitingRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LimitingRelay {
    pub async fn start(upstream: String, max_range: u64) -> LimitingRelay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let refused = Arc::new(AtomicUsize::new(0));
        let counter = refused.clone();
        let client = reqwest::Client::new();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (client, upstream, counter) =
                    (client.clone(), upstream.clone(), counter.clone());
                tokio::spawn(async move {
                    let _ = serve(stream, &client, &upstream, max_range, &counter).await;
                });
            }
        });
        LimitingRelay { url, refused, task }
    }

    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}

async fn serve(
    mut stream: TcpStream,
    client: &reqwest::Client,
    upstream: &str,
    max_range: u64,
    refused: &AtomicUsize,
) -> std::io::Result<()> {
    // One request per connection (answered with `Connection: close`).
    let mut buf = Vec::new();
    let header_end = loop {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let headers = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
    let length: usize = headers
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < header_end + length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[header_end..].to_vec();
    let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let answer = if request["method"] == "eth_getLogs" && range(&request) > max_range {
        refused.fetch_add(1, Ordering::SeqCst);
        serde_json::to_vec(&serde_json::json!({
            "jsonrpc": "2.0",
            "id": request["id"],
            "error": {"code": -32005, "message": "query returned more than 10000 results"},
        }))
        .unwrap()
    } else {
        let response = client
            .post(upstream)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(std::io::Error::other)?;
        response
            .bytes()
            .await
            .map_err(std::io::Error::other)?
            .to_vec()
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        answer.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&answer).await?;
    stream.shutdown().await
}

fn range(request: &serde_json::Value) -> u64 {
    let filter = &request["params"][0];
    let block = |key: &str| {
        filter[key]
            .as_str()
            .and_then(|hex| u64::from_str_radix(hex.trim_start_matches("0x"), 16).ok())
    };
    match (block("fromBlock"), block("toBlock")) {
        (Some(from), Some(to)) => to.saturating_sub(from) + 1,
        _ => u64::MAX,
    }
}
