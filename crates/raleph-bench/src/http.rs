//! A lean HTTP/1.1 keep-alive client: one TCP connection per `Conn`, requests in sequence,
//! reconnecting when the server closes. Loopback only.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;

/// Longest wait for one response; the connection is dropped after it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A node's base URL, checked to be `http://` on a loopback address.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub host: String,
}

impl Target {
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let rest = url
            .strip_prefix("http://")
            .with_context(|| format!("{url}: only http:// URLs are supported"))?;
        let authority = rest.split('/').next().unwrap_or(rest);
        let addr = authority
            .to_socket_addrs()
            .with_context(|| format!("{url}: cannot resolve {authority}"))?
            .find(|a| a.ip().is_loopback())
            .with_context(|| {
                format!("{url}: the benchmark only sends traffic to loopback addresses")
            })?;
        Ok(Target {
            addr,
            host: authority.to_owned(),
        })
    }
}

/// One keep-alive connection.
pub struct Conn {
    target: Target,
    sender: Option<SendRequest<Full<Bytes>>>,
    pub reconnects: u64,
}

/// A response: status and the whole body.
pub struct Response {
    pub status: u16,
    pub body: Bytes,
}

impl Conn {
    pub fn new(target: &Target) -> Self {
        Conn {
            target: target.clone(),
            sender: None,
            reconnects: 0,
        }
    }

    async fn connect(&mut self) -> anyhow::Result<&mut SendRequest<Full<Bytes>>> {
        let usable = match self.sender.as_mut() {
            Some(s) => !s.is_closed() && s.ready().await.is_ok(),
            None => false,
        };
        if !usable {
            let stream = tokio::time::timeout(
                Duration::from_secs(10),
                tokio::net::TcpStream::connect(self.target.addr),
            )
            .await
            .context("connect timed out")?
            .with_context(|| format!("connecting to {}", self.target.addr))?;
            stream.set_nodelay(true)?;
            let (sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            if self.sender.is_some() {
                self.reconnects += 1;
            }
            self.sender = Some(sender);
        }
        self.sender
            .as_mut()
            .context("no connection after connecting")
    }

    /// Sends one request and reads the whole response. `path` starts with `/`.
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> anyhow::Result<Response> {
        for attempt in 0..2 {
            let host = self.target.host.clone();
            let mut builder = Request::builder()
                .method(method.clone())
                .uri(path)
                .header(hyper::header::HOST, host);
            if body.is_some() {
                builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
            }
            let request = builder.body(Full::new(body.clone().unwrap_or_default()))?;
            let sender = self.connect().await?;
            let exchange = async {
                let response = sender.send_request(request).await?;
                let status = response.status().as_u16();
                let body = response.into_body().collect().await?.to_bytes();
                Ok::<_, hyper::Error>(Response { status, body })
            };
            let Ok(outcome) = tokio::time::timeout(REQUEST_TIMEOUT, exchange).await else {
                self.sender = None;
                bail!("no answer within {} s", REQUEST_TIMEOUT.as_secs());
            };
            match outcome {
                Ok(response) => return Ok(response),
                // A keep-alive connection the server closed: retry once on a new one.
                Err(e) if attempt == 0 && (e.is_closed() || e.is_incomplete_message()) => {
                    self.sender = None;
                }
                Err(e) => {
                    self.sender = None;
                    return Err(e.into());
                }
            }
        }
        bail!("request failed after reconnecting")
    }

    pub async fn get(&mut self, path: &str) -> anyhow::Result<Response> {
        self.request(Method::GET, path, None).await
    }

    /// GET that must answer 200 with JSON.
    pub async fn get_json(&mut self, path: &str) -> anyhow::Result<serde_json::Value> {
        let r = self.get(path).await?;
        if r.status != 200 {
            bail!(
                "GET {path}: HTTP {}: {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            );
        }
        serde_json::from_slice(&r.body).with_context(|| format!("GET {path}: not JSON"))
    }
}

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The node's `/metrics` gauges this benchmark reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct NodeCounts {
    pub messages: u64,
    pub pending: u64,
    pub processed: u64,
    pub rejected: u64,
}

pub fn parse_metrics(text: &str) -> NodeCounts {
    let mut c = NodeCounts::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.trim().parse::<f64>() else {
            continue;
        };
        let v = v as u64;
        match name.trim() {
            "pyaleph_status_sync_messages_total" => c.messages = v,
            "pyaleph_status_sync_pending_messages_total" => c.pending = v,
            "raleph_messages_by_status{status=\"processed\"}" => c.processed = v,
            "raleph_messages_by_status{status=\"rejected\"}" => c.rejected = v,
            _ => {}
        }
    }
    c
}

pub async fn node_counts(conn: &mut Conn) -> anyhow::Result<NodeCounts> {
    let r = conn.get("/metrics").await?;
    if r.status != 200 {
        bail!("GET /metrics: HTTP {}", r.status);
    }
    Ok(parse_metrics(&String::from_utf8_lossy(&r.body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets() {
        assert!(Target::parse("http://127.0.0.1:4024").is_ok());
        assert!(Target::parse("http://127.0.0.1:4024/").is_ok());
        assert!(Target::parse("http://[::1]:80").is_ok());
        assert!(Target::parse("https://127.0.0.1:4024").is_err());
        assert!(Target::parse("http://10.0.0.1:4024").is_err());
    }

    #[test]
    fn reads_metrics() {
        let text = "# HELP x\npyaleph_status_sync_messages_total 12\n\
                    pyaleph_status_sync_pending_messages_total 3\n\
                    raleph_messages_by_status{status=\"processed\"} 10\n\
                    raleph_messages_by_status{status=\"rejected\"} 2\n";
        let c = parse_metrics(text);
        assert_eq!(
            (c.messages, c.pending, c.processed, c.rejected),
            (12, 3, 10, 2)
        );
    }

    #[test]
    fn encodes_query_values() {
        assert_eq!(encode("0xAb-_.~"), "0xAb-_.~");
        assert_eq!(encode("a b,c"), "a%20b%2Cc");
    }
}
