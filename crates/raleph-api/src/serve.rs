//! Serving the API over TCP: the accept loop, with the connection limits of [`ApiConfig`].
//!
//! `axum::serve` has no header-read timeout, no idle timeout and no connection limit: measured
//! on a release build, 200 slowloris connections (a request line sent a byte at a time, or
//! nothing at all) were held forever and 2 000 idle connections cost 146 MB. This loop drives
//! hyper's HTTP/1.1 connections itself and adds:
//!
//! - **limits at accept time**: past `max_connections` in all, or `max_connections_per_ip`
//!   from one address (an IPv6 client counts by its /64, which one host usually holds whole),
//!   a connection is closed as soon as it is accepted, before a byte is read. That costs next
//!   to nothing, so a flood cannot make refusing expensive; refusals are logged at most once
//!   every [`REFUSAL_LOG_EVERY`]. Loopback is not exempt.
//! - **a header timeout**: once the first byte of a request head arrives (for a new connection:
//!   once it is accepted), the whole head must arrive within `header_timeout_secs`.
//! - **an idle timeout**: a connection with no request in flight is closed after
//!   `idle_timeout_secs`. A request is in flight from its head until its response body has been
//!   sent, so a long download is never cut; a websocket leaves this loop once upgraded (its
//!   socket still counts against the limits until it closes).
//! - **a stall timeout**: a connection with a request in flight is closed when no byte went
//!   either way for `stall_timeout_secs` (a request body that stopped arriving, a client that
//!   stopped reading its answer); a slow but moving upload or download goes on.
//!
//! hyper's own `header_read_timeout` is not used: it runs whenever the connection waits for a
//! head, idle time between keep-alive requests included, so it cannot tell a slow head from an
//! idle connection. Instead each connection has an [`Activity`] that the socket (a byte
//! arrived), the service (a request began) and the response body (it was sent) update; the
//! connection's task sleeps until the deadline that state implies.
//!
//! `max_header_bytes` bounds the request head (a 431 past it) and what hyper buffers of a
//! connection's input at once, so a connection's memory is bounded too.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tower::ServiceExt;

use crate::ApiConfig;

/// Refused connections are logged at most this often (with the count since the last line).
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);
/// After an accept error that is not about one connection (out of file descriptors, say),
/// the loop waits this long before accepting again, as `axum::serve` does.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);
/// hyper refuses a smaller input buffer.
const MIN_HEADER_BYTES: usize = 8 * 1024;

/// The connection limits of [`serve`], read from [`ApiConfig`].
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Most connections at once; `None`: no limit.
    pub max_connections: Option<usize>,
    /// Most connections at once from one address (IPv6: one /64); `None`: no limit.
    pub max_connections_per_ip: Option<usize>,
    /// A request head must arrive within this time of its first byte; `None`: no limit.
    pub header_timeout: Option<Duration>,
    /// A connection with no request in flight is closed after this long; `None`: never.
    pub idle_timeout: Option<Duration>,
    /// A connection with a request in flight that neither sends nor receives a byte for this
    /// long (a body that stopped arriving, a client that stopped reading) is closed; `None`:
    /// never.
    pub stall_timeout: Option<Duration>,
    /// Largest request head, bytes (at least 8 192).
    pub max_header_bytes: usize,
}

impl ConnectionLimits {
    /// The limits `config` names; 0 turns a limit off, and a negative, NaN or infinite time
    /// turns its timeout off rather than panicking.
    pub fn from_config(config: &ApiConfig) -> Self {
        let count = |n: usize| (n > 0).then_some(n);
        let time = |secs: f64| {
            Duration::try_from_secs_f64(secs)
                .ok()
                .filter(|d| !d.is_zero())
        };
        ConnectionLimits {
            max_connections: count(config.max_connections),
            max_connections_per_ip: count(config.max_connections_per_ip),
            header_timeout: time(config.header_timeout_secs),
            idle_timeout: time(config.idle_timeout_secs),
            stall_timeout: time(config.stall_timeout_secs),
            max_header_bytes: config.max_header_bytes.max(MIN_HEADER_BYTES),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, within `limits`.
///
/// On shutdown the listener is closed at once, idle connections are closed, requests in flight
/// are answered (and their responses sent) and then their connections closed; it returns once
/// every connection it still drives has ended. Upgraded connections (websockets) are not waited
/// for, as with `axum::serve`. Every accepted connection gets `TCP_NODELAY`, so replies and
/// websocket pushes go out at once rather than after Nagle's delay.
///
/// Not cancel-safe in a useful way: dropping the future drops the listener, and the tasks of
/// open connections go on until those connections end.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let gate = Gate::new(&limits);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.keep_alive(true)
        // Timeouts are this module's (see the module docs), and so need no hyper timer.
        .header_read_timeout(None)
        .max_buf_size(limits.max_header_bytes)
        .max_header_size(limits.max_header_bytes);
    let limits = Arc::new(limits);
    let (stop, stopped) = watch::channel(());
    let mut refusals = RefusalLog::default();
    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                tracing::warn!("accepting API connections failed (pausing): {e}");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let permit = match gate.admit(peer.ip()) {
            Ok(permit) => permit,
            Err(refusal) => {
                // Dropping the socket closes it: nothing read, nothing answered.
                drop(stream);
                refusals.note(refusal, peer, &limits, std::time::Instant::now());
                continue;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!("could not set TCP_NODELAY on an API connection: {e}");
        }
        tokio::spawn(connection(
            stream,
            permit,
            router.clone(),
            http.clone(),
            limits.clone(),
            stopped.clone(),
        ));
    }
    drop(listener);
    // Ask every connection to finish, then wait until all have dropped their receiver.
    let _ = stop.send(());
    drop(stopped);
    stop.closed().await;
}

/// Errors that concern one connection only; the next accept is unaffected.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Drives one connection until it ends, times out, is upgraded, or shutdown drains it.
async fn connection(
    stream: TcpStream,
    permit: Permit,
    router: Router,
    http: hyper::server::conn::http1::Builder,
    limits: Arc<ConnectionLimits>,
    mut stop: watch::Receiver<()>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Tracked {
        stream,
        activity: activity.clone(),
        _permit: permit,
    });
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let busy = Busy::begin(&activity);
            let router = router.clone();
            async move {
                let response = router.oneshot(request).await?;
                Ok::<_, std::convert::Infallible>(response.map(|body| TrackedBody {
                    inner: body,
                    _busy: busy,
                }))
            }
        })
    };
    let mut conn = pin!(http.serve_connection(io, service).with_upgrades());
    let mut draining = false;
    loop {
        let deadline = activity.deadline(&limits);
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!("API connection ended: {e}");
                }
                return;
            }
            () = activity.changed.notified() => {}
            () = sleep_until(deadline) => {
                // Only the state now counts: a request may have begun since the sleep began.
                if activity.deadline(&limits).is_some_and(|d| d <= Instant::now()) {
                    tracing::debug!("closing an API connection: header, idle or stall timeout");
                    return;
                }
            }
            _ = stop.changed(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

// ---- limits at accept time ----

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Total,
    PerIp,
}

/// Counts open connections, in all and by address.
struct Gate {
    max_total: Option<usize>,
    max_per_ip: Option<usize>,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
}

impl Gate {
    fn new(limits: &ConnectionLimits) -> Arc<Gate> {
        Arc::new(Gate {
            max_total: limits.max_connections,
            max_per_ip: limits.max_connections_per_ip,
            open: Mutex::default(),
        })
    }

    /// Counts a new connection from `ip`, unless that would pass a limit.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, Refusal> {
        let key = address_key(ip);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if self.max_total.is_some_and(|max| open.total >= max) {
            return Err(Refusal::Total);
        }
        let from_ip = open.by_ip.get(&key).copied().unwrap_or(0);
        if self.max_per_ip.is_some_and(|max| from_ip >= max) {
            return Err(Refusal::PerIp);
        }
        open.total += 1;
        open.by_ip.insert(key, from_ip + 1);
        Ok(Permit {
            gate: self.clone(),
            key,
        })
    }

    #[cfg(test)]
    fn open(&self) -> (usize, usize) {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        (open.total, open.by_ip.len())
    }
}

/// The address a connection counts against: an IPv4 address (an IPv4-mapped IPv6 address is
/// one), or the /64 of an IPv6 address, since one host usually holds a whole /64.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(v6.to_bits() & !u128::from(u64::MAX))),
        v4 => v4,
    }
}

/// One counted connection; dropping it (with the socket) gives its place back.
struct Permit {
    gate: Arc<Gate>,
    key: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self.gate.open.lock().unwrap_or_else(|e| e.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_ip.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.by_ip.remove(&self.key);
            }
        }
    }
}

/// Logs refusals at most once every [`REFUSAL_LOG_EVERY`], with the count since the last line.
#[derive(Default)]
struct RefusalLog {
    last: Option<std::time::Instant>,
    total: u64,
    per_ip: u64,
}

impl RefusalLog {
    /// Counts a refusal; returns whether a line was logged.
    fn note(
        &mut self,
        refusal: Refusal,
        peer: SocketAddr,
        limits: &ConnectionLimits,
        now: std::time::Instant,
    ) -> bool {
        match refusal {
            Refusal::Total => self.total += 1,
            Refusal::PerIp => self.per_ip += 1,
        }
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < REFUSAL_LOG_EVERY)
        {
            return false;
        }
        tracing::warn!(
            over_max_connections = self.total,
            over_max_connections_per_ip = self.per_ip,
            last_refused = %peer.ip(),
            "API connections closed at accept: over max_connections ({:?}) or \
             max_connections_per_ip ({:?}); logged at most every {}s",
            limits.max_connections,
            limits.max_connections_per_ip,
            REFUSAL_LOG_EVERY.as_secs(),
        );
        *self = RefusalLog {
            last: Some(now),
            total: 0,
            per_ip: 0,
        };
        true
    }
}

// ---- timeouts ----

/// What a connection is doing, as far as its timeouts are concerned. All of it is touched
/// from the connection's own task (hyper polls the socket, the service and the body there),
/// except by an upgraded socket, which no deadline watches any more.
struct Activity {
    opened: Instant,
    /// Requests whose response body has not been sent yet (HTTP/1.1: at most one).
    in_flight: AtomicUsize,
    /// Whether the connection waits for the rest of a request head (its first byte arrived, or
    /// the connection is new), rather than idling between requests.
    reading_head: AtomicBool,
    /// Since when it has been waiting, milliseconds after `opened`.
    waiting_since_ms: AtomicU64,
    /// When a byte last went either way, milliseconds after `opened`.
    progress_ms: AtomicU64,
    /// Woken when the deadline may have moved earlier.
    changed: Notify,
}

impl Activity {
    fn new() -> Self {
        Activity {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            // A new connection must send its first request head within the header timeout.
            reading_head: AtomicBool::new(true),
            waiting_since_ms: AtomicU64::new(0),
            progress_ms: AtomicU64::new(0),
            changed: Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// When the connection must be closed if nothing changes; `None` when the timeout that
    /// applies is off. With a request in flight that is the stall timeout, counted from the
    /// last byte either way.
    fn deadline(&self, limits: &ConnectionLimits) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            let since = Duration::from_millis(self.progress_ms.load(Ordering::Acquire));
            return self
                .opened
                .checked_add(since)?
                .checked_add(limits.stall_timeout?);
        }
        let timeout = if self.reading_head.load(Ordering::Acquire) {
            limits.header_timeout
        } else {
            limits.idle_timeout
        }?;
        let since = Duration::from_millis(self.waiting_since_ms.load(Ordering::Acquire));
        self.opened.checked_add(since)?.checked_add(timeout)
    }

    /// Bytes went to or came from the client: a request in flight is not stalled.
    fn progressed(&self) {
        self.progress_ms.store(self.now_ms(), Ordering::Release);
    }

    /// Bytes arrived from the client.
    fn received(&self) {
        self.progressed();
        if self.in_flight.load(Ordering::Acquire) == 0 && !self.reading_head.load(Ordering::Acquire)
        {
            // The first byte of the next request head: its clock starts.
            self.waiting_since_ms
                .store(self.now_ms(), Ordering::Release);
            self.reading_head.store(true, Ordering::Release);
            self.changed.notify_one();
        }
    }
}

/// A request in flight, from its head until its response body is sent (or dropped).
struct Busy(Arc<Activity>);

impl Busy {
    fn begin(activity: &Arc<Activity>) -> Busy {
        activity.progressed();
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        activity.reading_head.store(false, Ordering::Release);
        // The stall timeout applies from now, maybe sooner than the one slept on.
        activity.changed.notify_one();
        Busy(activity.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let activity = &self.0;
        if activity.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Idle from now on: the idle clock starts.
            activity
                .waiting_since_ms
                .store(activity.now_ms(), Ordering::Release);
            activity.reading_head.store(false, Ordering::Release);
            activity.changed.notify_one();
        }
    }
}

/// A response body that keeps its request in flight until hyper has sent it all (hyper drops
/// the body then, or when the connection fails).
struct TrackedBody {
    inner: Body,
    _busy: Busy,
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The client's socket, which reports arriving bytes and holds the connection's place in the
/// limits for as long as the socket lives (through a websocket upgrade too).
struct Tracked {
    stream: TcpStream,
    activity: Arc<Activity>,
    _permit: Permit,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.received();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.progressed();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.progressed();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use axum::extract::ws::{Message, WebSocketUpgrade};
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;

    use super::*;

    /// Generous: these bound how long a test waits, never how fast the code must be.
    const PATIENCE: Duration = Duration::from_secs(10);

    fn limits(header_ms: u64, idle_ms: u64, per_ip: usize) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: Some(100),
            max_connections_per_ip: Some(per_ip),
            header_timeout: Some(Duration::from_millis(header_ms)),
            idle_timeout: Some(Duration::from_millis(idle_ms)),
            stall_timeout: Some(Duration::from_secs(5)),
            max_header_bytes: MIN_HEADER_BYTES,
        }
    }

    struct Server {
        addr: SocketAddr,
        stop: Option<oneshot::Sender<()>>,
        task: JoinHandle<()>,
    }

    impl Server {
        async fn stop(mut self) {
            if let Some(stop) = self.stop.take() {
                let _ = stop.send(());
            }
            tokio::time::timeout(PATIENCE, &mut self.task)
                .await
                .expect("serve returns after shutdown")
                .expect("serve does not panic");
        }
    }

    /// Serves `/` ("ok"), `/slow` (a body sent over `slow_ms`) and `/ws` (an echo websocket).
    async fn start(limits: ConnectionLimits, slow_ms: u64) -> Server {
        let router = Router::new()
            .route("/", get(|| async { "ok" }))
            .route(
                "/echo",
                axum::routing::post(|body: Bytes| async move { body }),
            )
            .route(
                "/slow",
                get(move || async move {
                    let chunks = futures::stream::unfold(0u64, move |i| async move {
                        if i == 10 {
                            return None;
                        }
                        tokio::time::sleep(Duration::from_millis(slow_ms / 10)).await;
                        Some((Ok::<_, io::Error>(Bytes::from_static(b"x")), i + 1))
                    });
                    Body::from_stream(chunks)
                }),
            )
            .route(
                "/ws",
                get(|upgrade: WebSocketUpgrade| async move {
                    upgrade.on_upgrade(|mut socket| async move {
                        while let Some(Ok(message)) = socket.recv().await {
                            if let Message::Text(text) = message
                                && socket.send(Message::Text(text)).await.is_err()
                            {
                                return;
                            }
                        }
                    })
                }),
            );
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, router, limits, async move {
            let _ = stopped.await;
        }));
        Server {
            addr,
            stop: Some(stop),
            task,
        }
    }

    /// Sends a GET and reads its whole response (a fixed-length or chunked body).
    async fn get_path(stream: &mut TcpStream, path: &str, extra: &str) -> String {
        let request = format!("GET {path} HTTP/1.1\r\nhost: test\r\n{extra}\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        let mut buf = [0u8; 4096];
        tokio::time::timeout(PATIENCE, async {
            loop {
                let n = stream.read(&mut buf).await.unwrap();
                assert!(n > 0, "connection closed mid-response");
                response.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&response);
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .map(|n| n.parse::<usize>().unwrap());
                    let done = match length {
                        Some(length) => body.len() >= length,
                        None => body.ends_with("0\r\n\r\n") || head.contains(" 101 "),
                    };
                    if done {
                        return text.into_owned();
                    }
                }
            }
        })
        .await
        .expect("a response in time")
    }

    /// Whether the server closes `stream` within `within` (anything it sends is skipped).
    async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
        let mut buf = [0u8; 1024];
        tokio::time::timeout(within, async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await
        .is_ok()
    }

    #[test]
    fn addresses_count_by_ipv4_and_ipv6_slash_64() {
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(address_key(v4), v4);
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_key(mapped), v4);
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(other));
        assert_eq!(address_key(a), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn the_gate_counts_per_address_and_in_all() {
        let gate = Gate::new(&ConnectionLimits {
            max_connections: Some(3),
            max_connections_per_ip: Some(2),
            ..limits(1, 1, 0)
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let c: IpAddr = "192.0.2.3".parse().unwrap();
        let a1 = gate.admit(a).unwrap();
        let _a2 = gate.admit(a).unwrap();
        assert_eq!(gate.admit(a).err(), Some(Refusal::PerIp));
        let _b1 = gate.admit(b).unwrap();
        assert_eq!(gate.admit(c).err(), Some(Refusal::Total));
        assert_eq!(gate.open(), (3, 2));
        drop(a1);
        assert_eq!(gate.open(), (2, 2));
        let _a3 = gate.admit(a).unwrap();
        assert_eq!(gate.admit(c).err(), Some(Refusal::Total));
        assert_eq!(gate.open(), (3, 2));
    }

    #[test]
    fn no_limit_admits_everything() {
        let gate = Gate::new(&ConnectionLimits {
            max_connections: None,
            max_connections_per_ip: None,
            ..limits(1, 1, 0)
        });
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let permits: Vec<_> = (0..1000).map(|_| gate.admit(ip).unwrap()).collect();
        assert_eq!(gate.open(), (1000, 1));
        drop(permits);
        assert_eq!(gate.open(), (0, 0));
    }

    #[test]
    fn refusals_are_logged_at_most_every_interval() {
        let mut log = RefusalLog::default();
        let limits = limits(1, 1, 1);
        let peer: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        let t0 = std::time::Instant::now();
        assert!(log.note(Refusal::PerIp, peer, &limits, t0));
        assert!(!log.note(Refusal::PerIp, peer, &limits, t0 + Duration::from_secs(1)));
        assert!(!log.note(Refusal::Total, peer, &limits, t0 + Duration::from_secs(9)));
        assert_eq!((log.total, log.per_ip), (1, 1));
        assert!(log.note(Refusal::Total, peer, &limits, t0 + REFUSAL_LOG_EVERY));
        assert_eq!((log.total, log.per_ip), (0, 0));
    }

    #[test]
    fn config_zero_and_nonsense_turn_limits_off() {
        let defaults = ConnectionLimits::from_config(&ApiConfig::default());
        assert_eq!(defaults.max_connections, Some(4_096));
        assert_eq!(defaults.max_connections_per_ip, Some(256));
        assert_eq!(defaults.header_timeout, Some(Duration::from_secs(10)));
        assert_eq!(defaults.idle_timeout, Some(Duration::from_secs(60)));
        assert_eq!(defaults.max_header_bytes, 64 * 1024);
        for nonsense in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e300] {
            let limits = ConnectionLimits::from_config(&ApiConfig {
                max_connections: 0,
                max_connections_per_ip: 0,
                header_timeout_secs: nonsense,
                idle_timeout_secs: nonsense,
                max_header_bytes: 10,
                ..ApiConfig::default()
            });
            assert_eq!(limits.max_connections, None);
            assert_eq!(limits.max_connections_per_ip, None);
            assert_eq!(limits.header_timeout, None, "{nonsense}");
            assert_eq!(limits.idle_timeout, None, "{nonsense}");
            assert_eq!(limits.max_header_bytes, MIN_HEADER_BYTES);
        }
        // A deadline past the clock's end is none, not a panic.
        let huge = Duration::MAX;
        let activity = Activity::new();
        let limits = ConnectionLimits {
            header_timeout: Some(huge),
            ..limits(1, 1, 1)
        };
        assert_eq!(activity.deadline(&limits), None);
    }

    #[tokio::test]
    async fn a_silent_or_dribbling_connection_is_closed_by_the_header_timeout() {
        let server = start(limits(300, 60_000, 10), 0).await;
        let mut silent = TcpStream::connect(server.addr).await.unwrap();
        assert!(closed_within(&mut silent, PATIENCE).await);

        // One byte every 50 ms: always some progress, never a whole head.
        let mut dribbling = TcpStream::connect(server.addr).await.unwrap();
        let started = Instant::now();
        let closed = tokio::time::timeout(PATIENCE, async {
            for byte in b"GET / HTTP/1.1\r\nx-padding: "
                .iter()
                .chain([b'a'; 1000].iter())
            {
                if dribbling.write_all(&[*byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert!(closed.is_ok(), "still open after {:?}", started.elapsed());
        assert!(closed_within(&mut dribbling, PATIENCE).await);
        server.stop().await;
    }

    #[tokio::test]
    async fn keep_alive_outlives_the_header_timeout_until_the_idle_timeout() {
        let server = start(limits(300, 1_500, 10), 0).await;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        assert!(get_path(&mut stream, "/", "").await.ends_with("ok"));
        // Idle for longer than the header timeout: still open.
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert!(get_path(&mut stream, "/", "").await.ends_with("ok"));
        let idle_from = Instant::now();
        assert!(closed_within(&mut stream, PATIENCE).await);
        // Never before the idle timeout (a timer does not fire early).
        assert!(idle_from.elapsed() >= Duration::from_millis(1_400));
        server.stop().await;
    }

    #[tokio::test]
    async fn a_long_download_is_not_cut_by_the_idle_timeout() {
        let server = start(limits(200, 200, 10), 1_500).await;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        let response = get_path(&mut stream, "/slow", "").await;
        assert!(response.contains("200 OK"), "{response}");
        assert_eq!(response.matches("\r\nx\r\n").count(), 10, "{response}");
        server.stop().await;
    }

    #[tokio::test]
    async fn a_websocket_is_not_cut_by_the_idle_timeout() {
        let server = start(limits(200, 200, 10), 0).await;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        let handshake = "connection: upgrade\r\nupgrade: websocket\r\n\
                         sec-websocket-version: 13\r\n\
                         sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
        let response = get_path(&mut stream, "/ws", handshake).await;
        assert!(response.starts_with("HTTP/1.1 101"), "{response}");
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        // A masked text frame "hi" (mask 0), echoed unmasked.
        stream
            .write_all(&[0x81, 0x82, 0, 0, 0, 0, b'h', b'i'])
            .await
            .unwrap();
        let mut echo = [0u8; 4];
        tokio::time::timeout(PATIENCE, stream.read_exact(&mut echo))
            .await
            .expect("an echo in time")
            .unwrap();
        assert_eq!(echo, [0x81, 2, b'h', b'i']);
        server.stop().await;
    }

    #[tokio::test]
    async fn connections_past_the_per_address_limit_are_closed_at_once() {
        let server = start(limits(5_000, 60_000, 2), 0).await;
        let mut first = TcpStream::connect(server.addr).await.unwrap();
        let mut second = TcpStream::connect(server.addr).await.unwrap();
        assert!(get_path(&mut first, "/", "").await.ends_with("ok"));
        assert!(get_path(&mut second, "/", "").await.ends_with("ok"));
        let mut third = TcpStream::connect(server.addr).await.unwrap();
        // Closed long before the 5 s header timeout could have.
        assert!(closed_within(&mut third, Duration::from_millis(4_000)).await);
        drop(first);
        // The place is given back once the server sees the close.
        let served = tokio::time::timeout(PATIENCE, async {
            loop {
                let mut again = TcpStream::connect(server.addr).await.unwrap();
                let request = b"GET / HTTP/1.1\r\nhost: test\r\n\r\n";
                if again.write_all(request).await.is_ok() {
                    let mut buf = [0u8; 256];
                    if matches!(again.read(&mut buf).await, Ok(n) if n > 0) {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(served.is_ok());
        server.stop().await;
    }

    #[tokio::test]
    async fn shutdown_finishes_requests_in_flight() {
        let server = start(limits(5_000, 60_000, 10), 1_000).await;
        let mut idle = TcpStream::connect(server.addr).await.unwrap();
        assert!(get_path(&mut idle, "/", "").await.ends_with("ok"));
        let mut busy = TcpStream::connect(server.addr).await.unwrap();
        let download = tokio::spawn(async move { get_path(&mut busy, "/slow", "").await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let addr = server.addr;
        server.stop().await;
        let response = download.await.unwrap();
        assert_eq!(response.matches("\r\nx\r\n").count(), 10, "{response}");
        assert!(closed_within(&mut idle, PATIENCE).await);
        assert!(TcpStream::connect(addr).await.is_err(), "still listening");
    }

    /// A request body that stops arriving is dropped at the stall timeout; one that arrives
    /// slowly but steadily is served.
    #[tokio::test]
    async fn a_stalled_request_is_dropped_and_a_slow_one_served() {
        let server = start(
            ConnectionLimits {
                stall_timeout: Some(Duration::from_millis(300)),
                ..limits(10_000, 10_000, 10)
            },
            0,
        )
        .await;
        let head = "POST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: 20\r\n\r\n";
        let mut stalled = TcpStream::connect(server.addr).await.unwrap();
        stalled.write_all(head.as_bytes()).await.unwrap();
        stalled.write_all(b"0123456789").await.unwrap();
        assert!(closed_within(&mut stalled, PATIENCE).await);

        let mut slow = TcpStream::connect(server.addr).await.unwrap();
        slow.write_all(head.as_bytes()).await.unwrap();
        for byte in b"abcdefghijklmnopqrst" {
            tokio::time::sleep(Duration::from_millis(100)).await;
            slow.write_all(&[*byte]).await.unwrap();
        }
        let mut response = Vec::new();
        let mut buf = [0u8; 1024];
        while !String::from_utf8_lossy(&response).ends_with("abcdefghijklmnopqrst") {
            let n = tokio::time::timeout(PATIENCE, slow.read(&mut buf))
                .await
                .expect("an answer in time")
                .unwrap();
            assert!(n > 0, "closed before answering");
            response.extend_from_slice(&buf[..n]);
        }
        assert!(String::from_utf8_lossy(&response).starts_with("HTTP/1.1 200"));
        server.stop().await;
    }
}
