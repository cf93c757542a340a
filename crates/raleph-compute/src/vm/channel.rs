//! The control connection to one VM: the host's end of QEMU's `ctl.sock`. A reader task
//! decodes the guest's frames and routes them (replies by id, logs to the program's log, hello
//! and config replies as events); a writer task sends whole frames in order, so a request
//! that times out never leaves half a frame behind. Memory is bounded: one frame being
//! decoded ([`MAX_FRAME_FROM_GUEST`]), [`MAX_QUEUED_BYTES`] waiting to be written and
//! [`MAX_IN_FLIGHT`] requests waiting for replies.

use std::collections::HashMap;
use std::net::Shutdown;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout_at};

use super::VmError;
use super::frame::{self, Decoded, Decoder, MAX_FRAME_FROM_GUEST, MAX_FRAME_TO_GUEST};
use super::proto::{self, GuestMessage, Malformed, Reply};
use crate::logs::ProgramLog;

/// Requests awaiting a reply at once; more wait (within their own deadline).
pub const MAX_IN_FLIGHT: usize = 256;
/// Bytes of frames queued for the guest at once.
pub const MAX_QUEUED_BYTES: usize = MAX_FRAME_TO_GUEST + (16 << 20);
/// Hello and config-reply events kept until read.
const EVENT_QUEUE: usize = 16;

/// An unsolicited guest frame the VM's setup waits for.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Hello(String),
    Config(Result<(), String>),
}

type Waiter = oneshot::Sender<Result<Reply, VmError>>;

/// Chunks of a streamed response body buffered per request before the reader waits for the
/// consumer (back-pressure on the whole channel); with the guest's 64 KiB ASGI chunks, at most
/// a few MiB per request.
pub const STREAM_BUFFER_CHUNKS: usize = 16;

/// One item of a streamed response body: a chunk and whether more follow, or the error that
/// ended it.
/// How long the reader waits for a streamed body's consumer to make room before it drops that
/// stream (the consumer then sees the body end early) so the other requests go on.
pub const STREAM_STALL: Duration = Duration::from_secs(10);

pub type StreamItem = Result<(bytes::Bytes, bool), VmError>;

struct Shared {
    pending: Mutex<Pending>,
    log: Option<Arc<ProgramLog>>,
    closed: watch::Sender<bool>,
}

#[derive(Default)]
struct Pending {
    waiters: HashMap<u64, Waiter>,
    /// Streamed exchanges: where their response chunks (and a late error) go.
    streams: HashMap<u64, mpsc::Sender<StreamItem>>,
    /// Why the channel is unusable, once it is.
    closed: Option<String>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn complete(&self, id: u64, result: Result<Reply, VmError>) {
        let (waiter, stream) = {
            let mut pending = self.lock();
            let waiter = pending.waiters.remove(&id);
            // An error, or a whole answer, ends a streamed exchange; a head starts its body.
            let ends = !matches!(result, Ok(Reply::Head { .. }));
            let stream = if ends {
                pending.streams.remove(&id)
            } else {
                None
            };
            (waiter, stream)
        };
        match (waiter, stream) {
            (Some(waiter), _) => {
                let _ = waiter.send(result);
            }
            (None, Some(stream)) => {
                let item = match result {
                    Err(e) => Err(e),
                    Ok(Reply::Error(text)) => Err(VmError::ProgramError(text)),
                    Ok(_) => Err(VmError::ProgramError("the program answered twice".into())),
                };
                let _ = stream.try_send(item);
            }
            // A reply to a request that timed out, or to a command nobody waits for.
            (None, None) => tracing::trace!(id, "reply with no waiter"),
        }
    }

    fn close(&self, reason: String) {
        let waiters = {
            let mut pending = self.lock();
            if pending.closed.is_none() {
                pending.closed = Some(reason.clone());
            }
            let streams = std::mem::take(&mut pending.streams);
            (std::mem::take(&mut pending.waiters), streams)
        };
        let (waiters, streams) = waiters;
        for (_, waiter) in waiters {
            let _ = waiter.send(Err(VmError::Crashed(reason.clone())));
        }
        for (_, stream) in streams {
            let _ = stream.try_send(Err(VmError::Crashed(reason.clone())));
        }
        self.closed.send_replace(true);
    }

    /// Routes one unit; a chunk of a streamed body is returned for the reader to hand over
    /// (waiting while that request's buffer is full).
    fn dispatch(
        &self,
        unit: Decoded,
        events: &mpsc::Sender<Event>,
    ) -> Option<(u64, mpsc::Sender<StreamItem>, StreamItem)> {
        match unit {
            Decoded::Frame(payload) => match proto::parse(&payload) {
                Ok(GuestMessage::Log { stream, data }) => {
                    if let Some(log) = &self.log {
                        log.push(stream, &data);
                    }
                }
                Ok(GuestMessage::Hello { state }) => {
                    let _ = events.try_send(Event::Hello(state));
                }
                Ok(GuestMessage::ConfigReply(result)) => {
                    let _ = events.try_send(Event::Config(result));
                }
                Ok(GuestMessage::Reply { id, reply }) => self.complete(id, Ok(reply)),
                Ok(GuestMessage::Chunk { id, data, more }) => {
                    let mut pending = self.lock();
                    let stream = if more {
                        pending.streams.get(&id).cloned()
                    } else {
                        pending.streams.remove(&id)
                    };
                    return stream.map(|s| (id, s, Ok((bytes::Bytes::from(data), more))));
                }
                Ok(GuestMessage::Other) => tracing::debug!("guest frame of no known shape"),
                Err(Malformed { id, reason }) => {
                    tracing::warn!(?id, %reason, "malformed frame from a VM");
                    if let Some(id) = id {
                        self.complete(
                            id,
                            Err(VmError::ProgramError(format!(
                                "the VM sent a malformed reply: {reason}"
                            ))),
                        );
                    }
                }
            },
            Decoded::Oversize { size, head } => {
                tracing::warn!(size, "oversized frame from a VM skipped");
                if let Some(id) = proto::peek_id(&head) {
                    self.complete(
                        id,
                        Err(VmError::ProgramError(format!(
                            "the reply ({size} bytes) exceeds the limit of {} MiB",
                            MAX_FRAME_FROM_GUEST >> 20
                        ))),
                    );
                }
            }
        }
        None
    }
}

/// One frame: written whole, header then payload, by the writer task.
struct Outgoing {
    header: [u8; 4],
    payload: Vec<u8>,
    _budget: Option<OwnedSemaphorePermit>,
}

pub struct Channel {
    shared: Arc<Shared>,
    out: mpsc::Sender<Outgoing>,
    budget: Arc<Semaphore>,
    slots: Arc<Semaphore>,
    next_id: AtomicU64,
    events: tokio::sync::Mutex<mpsc::Receiver<Event>>,
    /// The same socket, kept to `shutdown()` it: a bare close while the reader task is
    /// blocked on it would not end the connection (PROTOCOL.md §5, rule 4).
    socket: std::os::unix::net::UnixStream,
    tasks: [JoinHandle<()>; 2],
}

impl Channel {
    pub async fn connect(
        path: &Path,
        log: Option<Arc<ProgramLog>>,
        deadline: Instant,
    ) -> Result<Channel, VmError> {
        let stream = timeout_at(deadline, UnixStream::connect(path))
            .await
            .map_err(|_| VmError::Boot("connecting to the control socket timed out".into()))?
            .map_err(|e| VmError::Boot(format!("cannot connect to the control socket: {e}")))?;
        let io = |e: std::io::Error| VmError::Boot(format!("control socket: {e}"));
        let std_stream = stream.into_std().map_err(io)?;
        let socket = std_stream.try_clone().map_err(io)?;
        let (read, write) = UnixStream::from_std(std_stream).map_err(io)?.into_split();
        let (closed, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            log,
            closed,
        });
        let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
        let (out, out_rx) = mpsc::channel(MAX_IN_FLIGHT * 2);
        let reader = tokio::spawn(read_loop(read, shared.clone(), events_tx));
        let writer = tokio::spawn(write_loop(write, out_rx, shared.clone()));
        Ok(Channel {
            shared,
            out,
            budget: Arc::new(Semaphore::new(MAX_QUEUED_BYTES)),
            slots: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            next_id: AtomicU64::new(first_id()),
            events: tokio::sync::Mutex::new(events),
            socket,
            tasks: [reader, writer],
        })
    }

    /// Why the channel is unusable, if it is.
    pub fn closed_reason(&self) -> Option<String> {
        self.shared.lock().closed.clone()
    }

    pub fn is_closed(&self) -> bool {
        self.closed_reason().is_some()
    }

    /// Changes to `true` when the channel becomes unusable.
    pub fn watch_closed(&self) -> watch::Receiver<bool> {
        self.shared.closed.subscribe()
    }

    /// Marks the channel unusable: pending requests fail with `Crashed(reason)`.
    pub fn fail(&self, reason: String) {
        self.shared.close(reason);
    }

    /// Ends the connection (QEMU sees the host leave).
    pub fn shutdown(&self) {
        let _ = self.socket.shutdown(Shutdown::Both);
    }

    /// Queues one msgpack payload as a frame.
    pub async fn send(&self, payload: Vec<u8>, deadline: Instant) -> Result<(), VmError> {
        let header = frame::header(payload.len(), MAX_FRAME_TO_GUEST).ok_or_else(|| {
            VmError::Config(format!(
                "a message of {} bytes exceeds the VM's limit of {} MiB",
                payload.len(),
                MAX_FRAME_TO_GUEST >> 20
            ))
        })?;
        if let Some(reason) = self.closed_reason() {
            return Err(VmError::Crashed(reason));
        }
        let permits = u32::try_from(payload.len() + 4).unwrap_or(u32::MAX);
        let budget = timeout_at(deadline, self.budget.clone().acquire_many_owned(permits))
            .await
            .map_err(|_| VmError::Timeout)?
            .map_err(|_| VmError::Crashed("control channel closed".into()))?;
        timeout_at(
            deadline,
            self.out.send(Outgoing {
                header,
                payload,
                _budget: Some(budget),
            }),
        )
        .await
        .map_err(|_| VmError::Timeout)?
        .map_err(|_| VmError::Crashed(self.closed_reason().unwrap_or_default()))
    }

    /// Sends a request built for a fresh id and waits for its reply. On timeout (or if the
    /// caller drops the future) the guest is asked to cancel it.
    pub async fn request(
        &self,
        build: impl FnOnce(u64) -> Vec<u8>,
        timeout: Duration,
    ) -> Result<Reply, VmError> {
        let deadline = Instant::now() + timeout;
        let _slot = timeout_at(deadline, self.slots.acquire())
            .await
            .map_err(|_| VmError::Timeout)?
            .map_err(|_| VmError::Crashed("control channel closed".into()))?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let payload = build(id);
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.shared.lock();
            if let Some(reason) = &pending.closed {
                return Err(VmError::Crashed(reason.clone()));
            }
            pending.waiters.insert(id, tx);
        }
        let _inflight = Inflight { channel: self, id };
        self.send(payload, deadline).await?;
        match timeout_at(deadline, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(VmError::Crashed(
                self.closed_reason().unwrap_or_else(|| "reply lost".into()),
            )),
            Err(_) => Err(VmError::Timeout),
        }
    }

    /// Starts a streamed exchange: sends the request built for a fresh id and returns that id,
    /// the receiver of its first reply (a head, a whole answer or an error) and the receiver of
    /// its body chunks ([`STREAM_BUFFER_CHUNKS`] buffered). The caller must [`Channel::forget`]
    /// the id when it stops listening.
    pub async fn request_streamed(
        &self,
        build: impl FnOnce(u64) -> Vec<u8>,
        slot: OwnedSemaphorePermit,
        deadline: Instant,
    ) -> Result<StreamedRequest, VmError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let payload = build(id);
        let (tx, first) = oneshot::channel();
        let (chunks_tx, chunks) = mpsc::channel(STREAM_BUFFER_CHUNKS);
        {
            let mut pending = self.shared.lock();
            if let Some(reason) = &pending.closed {
                return Err(VmError::Crashed(reason.clone()));
            }
            pending.waiters.insert(id, tx);
            pending.streams.insert(id, chunks_tx);
        }
        if let Err(e) = self.send(payload, deadline).await {
            self.forget(id, false);
            return Err(e);
        }
        Ok(StreamedRequest {
            id,
            first,
            chunks,
            _slot: slot,
        })
    }

    /// A slot for a request in flight.
    pub async fn slot(&self, deadline: Instant) -> Result<OwnedSemaphorePermit, VmError> {
        timeout_at(deadline, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| VmError::Timeout)?
            .map_err(|_| VmError::Crashed("control channel closed".into()))
    }

    /// Ends a streamed exchange early with an error (e.g. the request body failed): whoever
    /// listens gets it, and the guest is asked to cancel.
    pub fn fail_request(&self, id: u64, error: VmError) {
        self.shared.complete(id, Err(error));
        self.forget(id, false);
    }

    /// Stops listening to a request: unless it `finished` (its last chunk came), the guest is
    /// asked to cancel it.
    pub fn forget(&self, id: u64, finished: bool) {
        let live = {
            let mut pending = self.shared.lock();
            let waiter = pending.waiters.remove(&id).is_some();
            let stream = pending.streams.remove(&id).is_some();
            waiter || stream
        };
        if (live || !finished) && !self.is_closed() {
            let cancel_id = self.next_id.fetch_add(1, Ordering::Relaxed);
            self.try_send(proto::cancel(cancel_id, id));
        }
    }

    /// The next hello or config reply.
    pub async fn next_event(&self, deadline: Instant) -> Result<Event, VmError> {
        let mut events = timeout_at(deadline, self.events.lock())
            .await
            .map_err(|_| VmError::Timeout)?;
        match timeout_at(deadline, events.recv()).await {
            Ok(Some(event)) => Ok(event),
            Ok(None) => Err(VmError::Crashed(
                self.closed_reason()
                    .unwrap_or_else(|| "control channel closed".into()),
            )),
            Err(_) => Err(VmError::Timeout),
        }
    }

    /// Best effort, without waiting: used from `Drop`.
    fn try_send(&self, payload: Vec<u8>) {
        if let Some(header) = frame::header(payload.len(), MAX_FRAME_TO_GUEST) {
            let _ = self.out.try_send(Outgoing {
                header,
                payload,
                _budget: None,
            });
        }
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.shutdown();
        for task in &self.tasks {
            task.abort();
        }
        self.shared.close("the VM was stopped".into());
    }
}

/// A streamed exchange in flight (see [`Channel::request_streamed`]).
pub struct StreamedRequest {
    pub id: u64,
    pub first: oneshot::Receiver<Result<Reply, VmError>>,
    pub chunks: mpsc::Receiver<StreamItem>,
    _slot: OwnedSemaphorePermit,
}

/// A request awaiting its reply: forgotten (and cancelled in the guest) when its caller stops
/// waiting before the reply came.
struct Inflight<'a> {
    channel: &'a Channel,
    id: u64,
}

impl Drop for Inflight<'_> {
    fn drop(&mut self) {
        let unanswered = self
            .channel
            .shared
            .lock()
            .waiters
            .remove(&self.id)
            .is_some();
        if unanswered && !self.channel.is_closed() {
            let cancel_id = self.channel.next_id.fetch_add(1, Ordering::Relaxed);
            self.channel.try_send(proto::cancel(cancel_id, self.id));
        }
    }
}

async fn read_loop(mut read: OwnedReadHalf, shared: Arc<Shared>, events: mpsc::Sender<Event>) {
    let mut decoder = Decoder::new(MAX_FRAME_FROM_GUEST);
    let mut buf = vec![0u8; 64 << 10];
    let reason = loop {
        match read.read(&mut buf).await {
            Ok(0) => break "the control channel closed".to_string(),
            Ok(n) => {
                decoder.push(&buf[..n]);
                while let Some(unit) = decoder.next_frame() {
                    if let Some((id, stream, item)) = shared.dispatch(unit, &events) {
                        // Back-pressure: a full buffer holds the reader (and so the guest's
                        // writes) until the consumer reads or goes away, for a while.
                        if let Err(tokio::sync::mpsc::error::SendTimeoutError::Timeout(_)) =
                            stream.send_timeout(item, STREAM_STALL).await
                        {
                            tracing::debug!(id, "a streamed body's consumer stalled: dropped");
                            shared.lock().streams.remove(&id);
                        }
                    }
                }
            }
            Err(e) => break format!("control channel: {e}"),
        }
    };
    shared.close(reason);
}

async fn write_loop(
    mut write: OwnedWriteHalf,
    mut queue: mpsc::Receiver<Outgoing>,
    shared: Arc<Shared>,
) {
    while let Some(item) = queue.recv().await {
        let written = match write.write_all(&item.header).await {
            Ok(()) => write.write_all(&item.payload).await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            shared.close(format!("control channel: {e}"));
            return;
        }
    }
}

/// Request ids start at a random multiple of 2^32: a VM restored from a program snapshot may
/// still answer requests that were in flight when it was saved (PROTOCOL.md §5 rule 5), and
/// their ids must not match this connection's.
fn first_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    // Below 2^62: room for ids to count up, and plain msgpack integers everywhere.
    ((h.finish() >> 34) << 32) | 1
}
