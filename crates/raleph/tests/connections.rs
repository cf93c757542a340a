//! The API cannot be exhausted by connections: a slowloris flood is shed by the header
//! timeout, connections past the per-address limit are closed at once, a normal client is
//! served throughout, and the node's memory stays bounded.
//!
//! The flood comes from many loopback addresses (127.0.0.0/8 is all loopback on Linux), so
//! that the per-address limit does not refuse it and the header timeout has to shed it.

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::RunningNode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const HEADER_TIMEOUT_SECS: f64 = 2.0;
const PER_IP: usize = 64;
/// Source addresses of the flood, `PER_IP` connections from each (fewer if this process may
/// not open that many files: the node and the test each hold one per connection).
const FLOOD_SOURCES: u8 = 16;
/// Generous: a busy machine must not fail the test.
const SHED_WITHIN: Duration = Duration::from_secs(10);
/// The node's peak resident memory must stay under this (a debug build: 29 MB at start and
/// 43 MB at the peak of the flood were measured).
const MAX_PEAK_RSS_KB: u64 = 128 * 1024;

fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

async fn connect_from(source: IpAddr, target: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(target).await
}

/// Reads until the server closes the connection or `within` passes; returns whether it closed
/// and the bytes it sent.
async fn read_to_close(stream: &mut TcpStream, within: Duration) -> (bool, Vec<u8>) {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (closed, received)
}

/// A slowloris connection of one of three kinds: silent, a partial request line, or a request
/// line and then a header byte every 300 ms. Returns how long the node held it, or `None` if it
/// was still open after `SHED_WITHIN`.
async fn slowloris(mut stream: TcpStream, kind: usize) -> Option<Duration> {
    let opened = Instant::now();
    let start: &[u8] = match kind % 3 {
        0 => b"",
        1 => b"GET /api/v0/ver",
        _ => b"GET /api/v0/version HTTP/1.1\r\nhost: x\r\nx-slow: ",
    };
    if !start.is_empty() && stream.write_all(start).await.is_err() {
        return Some(opened.elapsed());
    }
    let (mut read, mut write) = stream.split();
    let dribble = async {
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if kind % 3 == 2 && write.write_all(b"a").await.is_err() {
                // Closed under us: let the read side see it.
                std::future::pending::<()>().await;
            }
        }
    };
    let closed = async {
        let mut buf = [0u8; 256];
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(SHED_WITHIN, async {
        tokio::select! {
            () = closed => {}
            () = dribble => {}
        }
    })
    .await
    .ok()
    .map(|()| opened.elapsed())
}

/// How many flood sources the open-files limit allows (the node inherits it).
fn flood_sources() -> u8 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let soft = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|v| v.split_whitespace().next()?.parse::<usize>().ok())
        .unwrap_or(1024);
    // Keep room for the node's own files and the held connections.
    let sources = soft.saturating_sub(2 * PER_IP + 256) / PER_IP;
    u8::try_from(sources)
        .unwrap_or(u8::MAX)
        .clamp(1, FLOOD_SOURCES)
}

/// The node's peak and current resident memory, KiB.
fn memory_kb(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("a memory field")
    };
    (field("VmHWM:"), field("VmRSS:"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_floods_are_shed_and_a_normal_client_is_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            "[api]\nheader_timeout_secs = {HEADER_TIMEOUT_SECS:?}\n\
             max_connections_per_ip = {PER_IP}\n"
        ),
    )
    .expect("write config");
    let node = RunningNode::start_with(
        &dir.path().join("data"),
        &["--config", config.to_str().expect("utf-8 path")],
    );
    let pid = node.child.id();
    let target: SocketAddr = node
        .url
        .strip_prefix("http://")
        .and_then(|a| a.parse().ok())
        .expect("the API address");
    let (_, rss_at_start) = memory_kb(pid);

    // A normal client (127.0.0.1), a new connection every 100 ms, for the whole test.
    let polling = Arc::new(AtomicBool::new(true));
    let poller = {
        let polling = polling.clone();
        let url = format!("{}/api/v0/version", node.url);
        tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_secs(5))
                .build()
                .expect("client");
            let (mut served, mut failed, mut slowest) = (0u32, Vec::new(), Duration::ZERO);
            while polling.load(Ordering::Relaxed) {
                let asked = Instant::now();
                match http.get(&url).send().await {
                    Ok(r) if r.status().is_success() => served += 1,
                    Ok(r) => failed.push(format!("status {}", r.status())),
                    Err(e) => failed.push(format!("{e}")),
                }
                slowest = slowest.max(asked.elapsed());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (served, failed, slowest)
        })
    };

    // Per address: PER_IP keep-alive connections that were served and now idle (within the
    // idle timeout), then more, which must be closed without an answer.
    let crowded = loopback(200);
    let mut held = Vec::new();
    for _ in 0..PER_IP {
        let mut stream = connect_from(crowded, target).await.expect("connect");
        stream
            .write_all(b"GET /api/v0/version HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .expect("send");
        let mut buf = [0u8; 1024];
        let n = stream.read(&mut buf).await.expect("answer");
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200"),
            "a connection within the limit"
        );
        held.push(stream);
    }
    let mut refused_in = Vec::new();
    for _ in 0..16 {
        let asked = Instant::now();
        let mut stream = connect_from(crowded, target).await.expect("connect");
        // Sent at once; a connection the node took would be answered.
        let _ = stream
            .write_all(b"GET /api/v0/version HTTP/1.1\r\nhost: x\r\n\r\n")
            .await;
        let (closed, answer) = read_to_close(&mut stream, SHED_WITHIN).await;
        assert!(closed, "a connection past the per-address limit is closed");
        assert!(
            answer.is_empty(),
            "a connection past the per-address limit gets no answer: {}",
            String::from_utf8_lossy(&answer)
        );
        refused_in.push(asked.elapsed());
    }

    // The flood: PER_IP slowloris connections from each of FLOOD_SOURCES addresses.
    let sources = flood_sources();
    let flood_started = Instant::now();
    let mut flood = Vec::new();
    for source in 0..sources {
        for i in 0..PER_IP {
            let stream = connect_from(loopback(10 + source), target)
                .await
                .expect("connect a slowloris");
            flood.push(tokio::spawn(slowloris(stream, i)));
        }
    }
    let opened_in = flood_started.elapsed();
    let mut held_for = Vec::new();
    for task in flood {
        held_for.push(task.await.expect("slowloris task"));
    }
    let shed_in = flood_started.elapsed();
    let (peak_kb, rss_kb) = memory_kb(pid);
    polling.store(false, Ordering::Relaxed);
    let (served, failed, slowest) = poller.await.expect("poller");

    let still_open = held_for.iter().filter(|h| h.is_none()).count();
    let held_for: Vec<Duration> = held_for.into_iter().flatten().collect();
    let shortest = held_for.iter().min().copied().unwrap_or_default();
    let longest = held_for.iter().max().copied().unwrap_or_default();
    let slowest_refusal = refused_in.iter().max().copied().unwrap_or_default();
    let flood_size = usize::from(sources) * PER_IP;
    println!(
        "flood: {flood_size} slowloris connections opened in {opened_in:.2?}, all shed after \
         {shed_in:.2?} (each held {shortest:.2?}..{longest:.2?}, header timeout \
         {HEADER_TIMEOUT_SECS} s); {} past the per-address limit closed unanswered, the slowest \
         in {slowest_refusal:.2?}; normal client: {served} served, {} failed, slowest \
         {slowest:.2?}; node memory: {} MB at start, peak {} MB, {} MB after",
        refused_in.len(),
        failed.len(),
        rss_at_start / 1024,
        peak_kb / 1024,
        rss_kb / 1024,
    );
    assert_eq!(
        still_open, 0,
        "slowloris connections still open after {SHED_WITHIN:?}"
    );
    // Held for the header timeout, not refused (a timer never fires early).
    assert!(
        shortest >= Duration::from_secs_f64(HEADER_TIMEOUT_SECS * 0.75),
        "a slowloris was closed after {shortest:?}, before the header timeout"
    );
    assert!(failed.is_empty(), "the normal client failed: {failed:?}");
    assert!(served >= 10, "the normal client was served {served} times");
    assert!(
        peak_kb < MAX_PEAK_RSS_KB,
        "peak RSS {} MB over {} MB",
        peak_kb / 1024,
        MAX_PEAK_RSS_KB / 1024
    );
    drop(held);
}
