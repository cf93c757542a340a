//! A minimal websocket client for `GET /api/ws0/messages`: it records, for every message the
//! node pushes (each push follows the commit that processed the message), the wall-clock
//! time it arrived here. Loopback only; text frames from the server, pongs back.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinHandle;

use crate::http::Target;

/// An empty, masked (zero mask) pong frame.
const PONG: [u8; 6] = [0x8A, 0x80, 0, 0, 0, 0];

/// Largest message accepted from the node.
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// Wall-clock time now, Unix seconds (the clock the nodes stamp `reception_time` with).
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// When each item hash was first pushed, Unix seconds.
#[derive(Default)]
pub struct Arrivals {
    at: Mutex<HashMap<String, f64>>,
    count: AtomicUsize,
    unparsed: AtomicUsize,
}

impl Arrivals {
    fn record(&self, text: &[u8], at: f64) {
        let hash = serde_json::from_slice::<serde_json::Value>(text)
            .ok()
            .and_then(|v| v.get("item_hash")?.as_str().map(str::to_owned));
        let Some(hash) = hash else {
            self.unparsed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let mut map = self.at.lock().unwrap_or_else(|p| p.into_inner());
        if map.insert(hash, at).is_none() {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Distinct messages pushed so far.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    pub fn get(&self, hash: &str) -> Option<f64> {
        self.at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(hash)
            .copied()
    }

    /// How many of `hashes` have arrived.
    pub fn count_of<'a>(&self, hashes: impl Iterator<Item = &'a str>) -> usize {
        let map = self.at.lock().unwrap_or_else(|p| p.into_inner());
        hashes.filter(|h| map.contains_key(*h)).count()
    }

    /// Pushes that were not a message with an `item_hash`.
    pub fn unparsed(&self) -> usize {
        self.unparsed.load(Ordering::Relaxed)
    }
}

/// Opens the websocket at `path` (e.g. `/api/ws0/messages?history=0`) and records arrivals
/// until the connection closes or the returned task is aborted.
pub async fn subscribe(
    target: &Target,
    path: &str,
    arrivals: Arc<Arrivals>,
) -> anyhow::Result<JoinHandle<anyhow::Result<()>>> {
    let stream = tokio::net::TcpStream::connect(target.addr)
        .await
        .with_context(|| format!("connecting to {}", target.addr))?;
    stream.set_nodelay(true)?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.with_upgrades().await;
    });
    let request = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header(hyper::header::HOST, target.host.clone())
        .header(hyper::header::CONNECTION, "Upgrade")
        .header(hyper::header::UPGRADE, "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", "cmFsZXBoLWJlbmNoLXdzMQ==")
        .body(Full::new(Bytes::new()))?;
    let response = sender.send_request(request).await?;
    if response.status() != hyper::StatusCode::SWITCHING_PROTOCOLS {
        bail!("GET {path}: HTTP {} instead of 101", response.status());
    }
    let upgraded = hyper::upgrade::on(response)
        .await
        .context("websocket upgrade")?;
    Ok(tokio::spawn(read_loop(TokioIo::new(upgraded), arrivals)))
}

async fn read_loop<S>(mut io: S, arrivals: Arc<Arrivals>) -> anyhow::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut message = Vec::new();
    loop {
        let mut head = [0u8; 2];
        io.read_exact(&mut head).await?;
        let fin = head[0] & 0x80 != 0;
        let opcode = head[0] & 0x0f;
        let mut len = u64::from(head[1] & 0x7f);
        if len == 126 {
            let mut b = [0u8; 2];
            io.read_exact(&mut b).await?;
            len = u64::from(u16::from_be_bytes(b));
        } else if len == 127 {
            let mut b = [0u8; 8];
            io.read_exact(&mut b).await?;
            len = u64::from_be_bytes(b);
        }
        let mask = if head[1] & 0x80 != 0 {
            let mut m = [0u8; 4];
            io.read_exact(&mut m).await?;
            Some(m)
        } else {
            None
        };
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len.saturating_add(message.len()) > MAX_MESSAGE {
            bail!("a websocket message over {MAX_MESSAGE} bytes");
        }
        let mut payload = vec![0u8; len];
        io.read_exact(&mut payload).await?;
        if let Some(m) = mask {
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= m[i % 4];
            }
        }
        match opcode {
            // Continuation, text, binary.
            0x0..=0x2 => {
                message.extend_from_slice(&payload);
                if fin {
                    arrivals.record(&message, unix_now());
                    message.clear();
                    // An unsolicited pong (RFC 6455 §5.5.3), so the ACK of the push leaves at
                    // once with it: a silent client delays its ACKs (up to 40 ms on Linux),
                    // and a server writing without TCP_NODELAY holds its next push until then.
                    io.write_all(&PONG).await?;
                }
            }
            // Close.
            0x8 => return Ok(()),
            // Ping: answer with a pong carrying the same payload (a client masks its
            // frames; a zero mask leaves the payload as is).
            0x9 => {
                let n = payload.len().min(125);
                let mut frame = vec![0x8A, 0x80 | n as u8, 0, 0, 0, 0];
                frame.extend_from_slice(&payload[..n]);
                io.write_all(&frame).await?;
                io.flush().await?;
            }
            _ => {}
        }
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00` (the API's `reception_time`) to Unix seconds.
pub fn parse_iso_utc(text: &str) -> Option<f64> {
    let text = text
        .strip_suffix("+00:00")
        .or_else(|| text.strip_suffix('Z'))?;
    let (date, time) = text.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, fraction) = match time.split_once('.') {
        Some((hms, f)) => (hms, f),
        None => (time, ""),
    };
    let mut t = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    let fraction = if fraction.is_empty() {
        0.0
    } else {
        format!("0.{fraction}").parse::<f64>().ok()?
    };
    // Days from 1970-01-01 to the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hh * 3_600 + mm * 60 + ss) as f64 + fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_api_times() {
        assert_eq!(
            parse_iso_utc("2023-11-14T22:13:20+00:00"),
            Some(1_700_000_000.0)
        );
        let t = parse_iso_utc("2023-11-14T22:13:20.250000+00:00").unwrap();
        assert!((t - 1_700_000_000.25).abs() < 1e-6);
        assert_eq!(parse_iso_utc("1970-01-01T00:00:00+00:00"), Some(0.0));
        assert_eq!(
            parse_iso_utc("2024-02-29T00:00:00+00:00"),
            Some(1_709_164_800.0)
        );
        assert_eq!(parse_iso_utc("nonsense"), None);
    }

    #[tokio::test]
    async fn reads_frames_and_answers_pings() {
        let (client, mut server) = tokio::io::duplex(4096);
        let arrivals = Arc::new(Arrivals::default());
        let task = tokio::spawn(read_loop(client, arrivals.clone()));
        // A text message split in two frames, a ping, a one-frame message, then close.
        let one = br#"{"item_hash":"ab"#;
        let two = br#"c","x":1}"#;
        let mut bytes = vec![0x01, one.len() as u8];
        bytes.extend_from_slice(one);
        bytes.extend_from_slice(&[0x80, two.len() as u8]);
        bytes.extend_from_slice(two);
        bytes.extend_from_slice(&[0x89, 0x00]);
        let three = br#"{"item_hash":"def"}"#;
        bytes.extend_from_slice(&[0x81, three.len() as u8]);
        bytes.extend_from_slice(three);
        bytes.extend_from_slice(&[0x88, 0x00]);
        server.write_all(&bytes).await.unwrap();
        task.await.unwrap().unwrap();
        // A pong after each message and one answering the ping.
        let mut pongs = [0u8; 18];
        server.read_exact(&mut pongs).await.unwrap();
        assert!(pongs.chunks(6).all(|p| p == PONG));
        assert_eq!(arrivals.len(), 2);
        assert!(arrivals.get("abc").is_some() && arrivals.get("def").is_some());
    }
}
