//! One program's running VM: configured once, then answering scopes over the control channel
//! (concurrently, by request id) until stopped. A monitor task notices a QEMU that exits (or a
//! channel that breaks) and fails every pending request at once.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::{Instant, Sleep, sleep_until, timeout_at};

use super::boot::Booted;
use super::channel::{Channel, Event, StreamItem, StreamedRequest};
use super::cmdline::qmp_socket;
use super::process::Qemu;
use super::proto::{self, GUEST_API_ADDR, GUEST_DNS, GUEST_IP, GUEST_ROUTE, Reply};
use super::snapshot::ProgramSnapshots;
use super::{
    HttpAnswer, HttpScope, LIFESPAN_TIMEOUT, SHUTDOWN_TIMEOUT, VmError, VmProgram, WorkDir,
};
use crate::logs::ProgramLog;

/// `halt` → its reply (the guest runs the lifespan shutdown first, bounded by
/// `SHUTDOWN_TIMEOUT`).
const HALT_TIMEOUT: Duration = Duration::from_secs(6);
/// `resume` sent to a VM that was paused for its snapshot → its reply.
const RESUME_AFTER_SAVE: Duration = Duration::from_secs(5);
/// Halted → QEMU gone; then it is killed.
const EXIT_AFTER_HALT: Duration = Duration::from_secs(4);

/// A streamed request body travels to the guest in frames of at most this many bytes.
pub const BODY_CHUNK_BYTES: usize = 1 << 20;
/// The longest a streamed exchange may last (request body, response body), when the program's
/// own deadline (for the response head) is shorter.
pub const MAX_EXCHANGE: Duration = Duration::from_secs(600);

/// The head of a streamed answer and its body.
pub struct HttpStream {
    pub status: u16,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: BodyStream,
}

/// A streamed response body, chunk by chunk as the program sends them. Dropping it before its
/// end cancels the request in the guest.
pub struct BodyStream {
    first: Option<Bytes>,
    chunks: Option<mpsc::Receiver<StreamItem>>,
    deadline: Pin<Box<Sleep>>,
    guard: ExchangeGuard,
}

/// Forgets the exchange (cancelling it in the guest unless it finished) and stops forwarding
/// the request body.
struct ExchangeGuard {
    parts: Weak<Parts>,
    id: u64,
    finished: bool,
    forward: AbortHandle,
}

impl Drop for ExchangeGuard {
    fn drop(&mut self) {
        self.forward.abort();
        if let Some(parts) = self.parts.upgrade() {
            parts.channel.forget(self.id, self.finished);
        }
    }
}

impl Stream for BodyStream {
    type Item = Result<Bytes, VmError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(first) = this.first.take() {
            return Poll::Ready(Some(Ok(first)));
        }
        let Some(chunks) = this.chunks.as_mut() else {
            return Poll::Ready(None);
        };
        match chunks.poll_recv(cx) {
            Poll::Ready(Some(Ok((data, more)))) => {
                if !more {
                    this.chunks = None;
                    this.guard.finished = true;
                }
                Poll::Ready(Some(Ok(data)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.chunks = None;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.chunks = None;
                Poll::Ready(Some(Err(VmError::Crashed(
                    "the response ended before its last chunk".into(),
                ))))
            }
            Poll::Pending => {
                if this.deadline.as_mut().poll(cx).is_ready() {
                    this.chunks = None;
                    return Poll::Ready(Some(Err(VmError::Timeout)));
                }
                Poll::Pending
            }
        }
    }
}

/// Sends the request body to the guest as it arrives, then its end; an error of the body (too
/// large, client gone) ends the exchange with that error.
async fn forward_body<S>(parts: Weak<Parts>, id: u64, body: S, end: Instant)
where
    S: Stream<Item = Result<Bytes, VmError>> + Send + 'static,
{
    let mut body = std::pin::pin!(body);
    loop {
        let next = timeout_at(end, body.next()).await;
        let Some(parts) = parts.upgrade() else {
            return;
        };
        match next {
            Err(_) => return parts.channel.fail_request(id, VmError::Timeout),
            Ok(Some(Ok(bytes))) => {
                for piece in bytes.chunks(BODY_CHUNK_BYTES) {
                    let frame = proto::body_chunk(id, piece, true);
                    if parts.channel.send(frame, end).await.is_err() {
                        return;
                    }
                }
            }
            Ok(Some(Err(e))) => return parts.channel.fail_request(id, e),
            Ok(None) => {
                let _ = parts
                    .channel
                    .send(proto::body_chunk(id, &[], false), end)
                    .await;
                return;
            }
        }
    }
}

/// How the VM came up.
#[derive(Debug, Clone)]
pub struct StartupInfo {
    /// Restored from a snapshot (the template's or the program's own; else cold booted).
    pub restored: bool,
    /// Restored from the program's own snapshot (configured, past its first answer): no
    /// config was sent.
    pub from_program_snapshot: bool,
    /// QEMU launch → hello.
    pub to_hello: Duration,
    /// Config sent → `{"success": true}`; for a program snapshot, `resume` sent → its reply.
    pub config: Duration,
    /// `start` called → ready (includes making the template when it was missing).
    pub total: Duration,
}

struct Parts {
    channel: Channel,
    qemu: Qemu,
}

/// A program's VM. Dropping it kills the QEMU process.
pub struct VmHandle {
    item_hash: String,
    parts: Arc<Parts>,
    startup: StartupInfo,
    stopping: Arc<AtomicBool>,
    monitor: JoinHandle<()>,
    dir: Mutex<Option<WorkDir>>,
    /// Where to save the program's snapshot after its first answer (taken by that answer).
    snapshot: Mutex<Option<SnapshotPlan>>,
}

/// What a handle needs to save its program's snapshot.
pub(super) struct SnapshotPlan {
    pub store: Arc<ProgramSnapshots>,
    pub key: String,
}

impl VmHandle {
    fn new(
        dir: WorkDir,
        booted: Booted,
        program: &VmProgram,
        restored: bool,
        snapshot: Option<SnapshotPlan>,
    ) -> VmHandle {
        let Booted {
            qemu,
            channel,
            to_hello,
            ..
        } = booted;
        let parts = Arc::new(Parts { channel, qemu });
        let stopping = Arc::new(AtomicBool::new(false));
        let monitor = tokio::spawn(monitor(
            parts.clone(),
            stopping.clone(),
            program.log.clone(),
        ));
        VmHandle {
            item_hash: program.item_hash.clone(),
            parts,
            startup: StartupInfo {
                restored,
                from_program_snapshot: false,
                to_hello,
                config: Duration::ZERO,
                total: Duration::ZERO,
            },
            stopping,
            monitor,
            dir: Mutex::new(Some(dir)),
            snapshot: Mutex::new(snapshot),
        }
    }

    /// A VM restored from the program's own snapshot (hello said `ready`): `resume` (clock,
    /// RNG reseed) instead of the config.
    pub(super) async fn resume(
        dir: WorkDir,
        booted: Booted,
        program: &VmProgram,
        start: Instant,
        timeout: Duration,
    ) -> Result<VmHandle, VmError> {
        let mut handle = VmHandle::new(dir, booted, program, true, None);
        handle.startup.from_program_snapshot = true;
        let sent = Instant::now();
        let entropy = random_bytes();
        let result = handle
            .parts
            .channel
            .request(|id| proto::resume(id, crate::now(), &entropy), timeout)
            .await
            .map_err(|e| handle.explain(e));
        let result = match result {
            Ok(Reply::Done) => Ok(()),
            Ok(Reply::Error(text)) => Err(VmError::Boot(format!("resume: {text}"))),
            Ok(Reply::Http { .. } | Reply::Head { .. }) => {
                Err(VmError::Boot("resume: unexpected reply".into()))
            }
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            handle.stop().await;
            return Err(e);
        }
        handle.startup.config = sent.elapsed();
        handle.startup.total = start.elapsed();
        tracing::debug!(item_hash = %handle.item_hash, startup = ?handle.startup, "VM program resumed from its snapshot");
        Ok(handle)
    }

    pub(super) async fn configure(
        dir: WorkDir,
        booted: Booted,
        program: VmProgram,
        restored: bool,
        snapshot: Option<SnapshotPlan>,
        start: Instant,
        timeout: Duration,
    ) -> Result<VmHandle, VmError> {
        let mut handle = VmHandle::new(dir, booted, &program, restored, snapshot);
        let entropy = random_bytes();
        let dns: &[&str] = if program.internet { &[GUEST_DNS] } else { &[] };
        let api_host = format!("http://{GUEST_API_ADDR}");
        let payload = proto::config(&proto::Config {
            vm_hash: &program.item_hash,
            encoding: &program.encoding,
            entrypoint: &program.entrypoint,
            interface: program.interface.as_deref(),
            code: &program.code,
            input_data: None,
            variables: (!program.variables.is_empty())
                .then_some(proto::Variables(&program.variables)),
            volumes: [],
            ip: GUEST_IP,
            route: GUEST_ROUTE,
            dns_servers: dns,
            api_host: &api_host,
            time: crate::now(),
            entropy: &entropy,
            lifespan_timeout: LIFESPAN_TIMEOUT,
            shutdown_timeout: SHUTDOWN_TIMEOUT,
        });
        drop(program);
        let sent = Instant::now();
        let deadline = sent + timeout;
        let result = async {
            handle.parts.channel.send(payload, deadline).await?;
            loop {
                match handle.parts.channel.next_event(deadline).await {
                    Ok(Event::Config(Ok(()))) => return Ok(()),
                    Ok(Event::Config(Err(text))) => return Err(VmError::Config(text)),
                    Ok(Event::Hello(_)) => continue,
                    Err(VmError::Timeout) => {
                        return Err(VmError::Boot(format!(
                            "no answer to the config within {} s{}",
                            timeout.as_secs(),
                            handle.parts.qemu.diagnostics()
                        )));
                    }
                    Err(e) => return Err(handle.explain(e)),
                }
            }
        }
        .await;
        if let Err(e) = result {
            handle.stop().await;
            return Err(e);
        }
        handle.startup.config = sent.elapsed();
        handle.startup.total = start.elapsed();
        tracing::debug!(item_hash = %handle.item_hash, startup = ?handle.startup, "VM program ready");
        Ok(handle)
    }

    pub async fn http(&self, scope: HttpScope, timeout: Duration) -> Result<HttpAnswer, VmError> {
        let reply = self
            .parts
            .channel
            .request(
                |id| {
                    proto::http_request(
                        id,
                        &scope.method,
                        &scope.path,
                        &scope.query_string,
                        &scope.headers,
                        &scope.body,
                    )
                },
                timeout,
            )
            .await
            .map_err(|e| self.explain(e))?;
        match reply {
            Reply::Http {
                status,
                headers,
                body,
            } => {
                self.snapshot_after_first_answer();
                Ok(HttpAnswer {
                    status,
                    headers,
                    body: Bytes::from(body),
                })
            }
            Reply::Error(text) => Err(VmError::ProgramError(text)),
            Reply::Head { .. } => Err(VmError::ProgramError(
                "a streamed answer to a whole request".into(),
            )),
            Reply::Done => Err(VmError::ProgramError(
                "the program sent no HTTP response".into(),
            )),
        }
    }

    /// A streamed exchange: the request body is forwarded as `body` yields it, and the answer
    /// returns at its head (within `timeout`), its body following in [`BodyStream`]. The whole
    /// exchange ends by `max(timeout, MAX_EXCHANGE)`. `head.body` is ignored.
    pub async fn http_stream<S>(
        &self,
        head: HttpScope,
        body: S,
        timeout: Duration,
    ) -> Result<HttpStream, VmError>
    where
        S: Stream<Item = Result<Bytes, VmError>> + Send + 'static,
    {
        let start = Instant::now();
        let head_deadline = start + timeout;
        let end = start + timeout.max(MAX_EXCHANGE);
        let channel = &self.parts.channel;
        let slot = channel
            .slot(head_deadline)
            .await
            .map_err(|e| self.explain(e))?;
        let StreamedRequest {
            id, first, chunks, ..
        } = channel
            .request_streamed(
                |id| {
                    proto::http_request_streamed(
                        id,
                        &head.method,
                        &head.path,
                        &head.query_string,
                        &head.headers,
                    )
                },
                slot,
                head_deadline,
            )
            .await
            .map_err(|e| self.explain(e))?;
        let forward = tokio::spawn(forward_body(Arc::downgrade(&self.parts), id, body, end));
        let mut guard = ExchangeGuard {
            parts: Arc::downgrade(&self.parts),
            id,
            finished: false,
            forward: forward.abort_handle(),
        };
        let reply = match timeout_at(head_deadline, first).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(VmError::Crashed(
                channel
                    .closed_reason()
                    .unwrap_or_else(|| "reply lost".into()),
            )),
            Err(_) => Err(VmError::Timeout),
        }
        .map_err(|e| self.explain(e))?;
        let (status, headers, first, chunks) = match reply {
            Reply::Head { status, headers } => (status, headers, None, Some(chunks)),
            Reply::Http {
                status,
                headers,
                body,
            } => {
                guard.finished = true;
                (status, headers, Some(Bytes::from(body)), None)
            }
            Reply::Error(text) => return Err(VmError::ProgramError(text)),
            Reply::Done => {
                return Err(VmError::ProgramError(
                    "the program sent no HTTP response".into(),
                ));
            }
        };
        self.snapshot_after_first_answer();
        Ok(HttpStream {
            status,
            headers,
            body: BodyStream {
                first,
                chunks,
                deadline: Box::pin(sleep_until(end)),
                guard,
            },
        })
    }

    /// After the first answer: saves the program's snapshot in the background (the VM pauses
    /// for about a second; requests meanwhile wait for it).
    fn snapshot_after_first_answer(&self) {
        let Some(plan) = self
            .snapshot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return;
        };
        if self.stopping.load(Ordering::SeqCst) || !self.alive() {
            return;
        }
        let dir = self.dir.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(dir) = dir.as_ref() else {
            return;
        };
        let socket = qmp_socket(dir.path());
        let parts = Arc::downgrade(&self.parts);
        let stopping = self.stopping.clone();
        tokio::spawn(async move {
            if !plan.store.save(plan.key, socket).await || stopping.load(Ordering::SeqCst) {
                return;
            }
            // The pause froze the guest's clock: set it again (and reseed, as the restores do).
            let Some(parts) = parts.upgrade() else {
                return;
            };
            let entropy = random_bytes();
            let _ = parts
                .channel
                .request(
                    |id| proto::resume(id, crate::now(), &entropy),
                    RESUME_AFTER_SAVE,
                )
                .await;
        });
    }

    /// Delivers a message to the program as the reference's `aleph.message` scope.
    pub async fn message(&self, message_json: Bytes, timeout: Duration) -> Result<(), VmError> {
        let reply = self
            .parts
            .channel
            .request(|id| proto::message_request(id, &message_json), timeout)
            .await
            .map_err(|e| self.explain(e))?;
        match reply {
            Reply::Error(text) => Err(VmError::ProgramError(text)),
            Reply::Http { .. } | Reply::Head { .. } | Reply::Done => Ok(()),
        }
    }

    pub fn alive(&self) -> bool {
        self.parts.qemu.alive() && !self.parts.channel.is_closed()
    }

    /// Asks the guest to halt, kills QEMU by PID if it is still there after a short deadline,
    /// and removes the VM's folder.
    pub async fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        if self.alive() {
            let halted = self.parts.channel.request(proto::halt, HALT_TIMEOUT).await;
            if halted.is_err()
                || !self
                    .parts
                    .qemu
                    .wait_exit(Instant::now() + EXIT_AFTER_HALT)
                    .await
            {
                tracing::debug!(item_hash = %self.item_hash, "VM did not power off after halt: killed");
            }
        }
        self.parts.qemu.kill_and_wait().await;
        self.parts.channel.shutdown();
        self.parts.channel.fail("the VM was stopped".into());
        self.dir
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    /// The QEMU process id (QEMU itself: `nice` execs it).
    pub fn pid(&self) -> Option<u32> {
        self.parts.qemu.pid()
    }

    pub fn startup(&self) -> &StartupInfo {
        &self.startup
    }

    pub fn item_hash(&self) -> &str {
        &self.item_hash
    }

    /// Adds how QEMU ended to a `Crashed` error.
    fn explain(&self, error: VmError) -> VmError {
        match error {
            VmError::Crashed(reason) => match self.parts.qemu.exit_status() {
                Some(status) if !reason.contains("QEMU") => {
                    VmError::Crashed(format!("{reason} (QEMU exited: {status})"))
                }
                _ => VmError::Crashed(reason),
            },
            other => other,
        }
    }
}

impl Drop for VmHandle {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.monitor.abort();
        self.parts.qemu.kill();
        self.parts.channel.shutdown();
    }
}

/// Waits for QEMU to exit or the channel to break; then makes sure both are over and fails
/// every pending request. An exit nobody asked for is noted in the program's log.
async fn monitor(parts: Arc<Parts>, stopping: Arc<AtomicBool>, log: Arc<ProgramLog>) {
    let mut exited = parts.qemu.watch_exit();
    let mut closed = parts.channel.watch_closed();
    let channel_broke = tokio::select! {
        _ = async { exited.wait_for(Option::is_some).await.is_ok() } => false,
        _ = async { closed.wait_for(|closed| *closed).await.is_ok() } => true,
    };
    if channel_broke {
        // No request can be answered any more: the VM is of no use.
        parts.qemu.kill_and_wait().await;
    }
    let status = parts
        .qemu
        .exit_status()
        .unwrap_or_else(|| "not reaped".into());
    let reason = format!("QEMU exited ({status})");
    if !stopping.load(Ordering::SeqCst) {
        tracing::warn!(pid = ?parts.qemu.pid(), %reason, "a program's VM stopped unexpectedly");
        log.note(&format!(
            "[raleph] the program's VM stopped unexpectedly: {reason}{}\n",
            parts.qemu.console_tail()
        ));
    }
    parts.channel.fail(reason);
}

/// 32 bytes for the guest's RNGs: a restored snapshot shares its RNG state with every other
/// restore of the same file.
fn random_bytes() -> [u8; 32] {
    use std::io::Read;
    let mut out = [0u8; 32];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut out))
        .is_err()
    {
        use std::hash::{BuildHasher, Hasher};
        for chunk in out.chunks_mut(8) {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                std::time::SystemTime::now()
                    .elapsed()
                    .unwrap_or_default()
                    .as_nanos(),
            );
            chunk.copy_from_slice(&h.finish().to_le_bytes());
        }
    }
    out
}
