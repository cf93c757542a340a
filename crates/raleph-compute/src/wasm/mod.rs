//! WebAssembly programs: components of the `wasi:http/proxy` world, one fresh instance per
//! request (microseconds from a pre-linked component), under the PROGRAM's limits.

mod engine;
mod host;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use tokio::sync::Semaphore;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi::{FsPerms, WasiCtx};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpView};

pub use engine::{TICK, WasmEngine};
pub use host::{GuestApi, Outbound, is_public};
use host::{HostState, MemoryLimit};

use crate::ExecError;
use crate::logs::{LogSink, ProgramLog, Stream};

/// A directory the program sees.
#[derive(Debug, Clone)]
pub struct Preopen {
    pub host: PathBuf,
    pub guest: String,
    pub writable: bool,
    /// For a persistent volume: its size limit.
    pub quota: Option<Arc<Quota>>,
}

/// A writable directory's size limit. Checked before each execution: a directory at or past
/// it is mounted read-only, so a program can overfill it by at most what one execution
/// writes.
#[derive(Debug)]
pub struct Quota {
    pub max_bytes: u64,
    pub full: std::sync::atomic::AtomicBool,
}

impl Quota {
    pub fn new(max_bytes: u64) -> Arc<Quota> {
        Arc::new(Quota {
            max_bytes,
            full: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn is_full(&self) -> bool {
        self.full.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Measures `dir` and records whether it is full.
    pub fn check(&self, dir: &std::path::Path) -> bool {
        let full = directory_size(dir) >= self.max_bytes;
        self.full.store(full, std::sync::atomic::Ordering::Relaxed);
        full
    }
}

/// Bytes of the files under `dir` (symlinks not followed).
fn directory_size(dir: &std::path::Path) -> u64 {
    let mut total = 0u64;
    let mut pending = vec![dir.to_owned()];
    while let Some(folder) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => pending.push(entry.path()),
                Ok(kind) if kind.is_file() => {
                    total += entry.metadata().map(|m| m.len()).unwrap_or(0);
                }
                _ => {}
            }
        }
    }
    total
}

/// What every execution of one program gets.
pub struct Grants {
    pub env: Vec<(String, String)>,
    pub preopens: Vec<Preopen>,
    /// Per-execution scratch directories (ephemeral volumes): created under `host` before,
    /// deleted after.
    pub ephemeral: Vec<(PathBuf, String)>,
    pub outbound: Outbound,
}

/// What one execution of a program may use.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `resources.memory`, MiB: the sum of its linear memories.
    pub memory_mib: u32,
    /// `resources.seconds`: its deadline.
    pub seconds: u32,
    /// `resources.vcpus`: executions at once.
    pub vcpus: u32,
    /// Most elements a table may grow to (`compute.max_table_elements`).
    pub max_table_elements: usize,
}

/// A program ready to answer: compiled, linked, with its limits.
pub struct WasmProgram {
    pre: ProxyPre<HostState>,
    grants: Grants,
    log: Arc<ProgramLog>,
    memory_bytes: usize,
    max_table_elements: usize,
    seconds: u32,
    /// `resources.vcpus`: executions at once.
    slots: Arc<Semaphore>,
    slot_count: usize,
}

/// The result of one execution's guest side, reported once it ends.
enum Ending {
    Finished,
    TimedOut,
    OutOfMemory,
    Crashed(String),
}

impl WasmProgram {
    pub fn new(
        engine: &WasmEngine,
        component: &Component,
        grants: Grants,
        log: Arc<ProgramLog>,
        limits: Limits,
    ) -> Result<WasmProgram, ExecError> {
        let Limits {
            memory_mib,
            seconds,
            vcpus,
            max_table_elements,
        } = limits;
        let mut linker = Linker::new(engine.engine());
        // The whole of WASI 0.2 is linked so that ordinary guests (which import the CLI
        // world's environment, clocks and files) link; what they may reach is decided by
        // each execution's WasiCtx, which grants nothing the PROGRAM does not name.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .and_then(|()| wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker))
            .map_err(|e| ExecError::Internal(format!("link WASI: {e}")))?;
        let pre = linker
            .instantiate_pre(component)
            .and_then(ProxyPre::new)
            .map_err(|e| ExecError::BadCode(format!("{e:#}")))?;
        Ok(WasmProgram {
            pre,
            grants,
            log,
            memory_bytes: (memory_mib as usize) << 20,
            max_table_elements,
            seconds,
            slots: Arc::new(Semaphore::new(vcpus.max(1) as usize)),
            slot_count: vcpus.max(1) as usize,
        })
    }

    /// Executions running now.
    pub fn busy(&self) -> bool {
        self.slots.available_permits() < self.slot_count
    }

    fn context(&self, ephemeral: &[PathBuf]) -> Result<WasiCtx, ExecError> {
        let mut wasi = WasiCtx::builder();
        for (key, value) in &self.grants.env {
            wasi.env(key, value);
        }
        wasi.stdout(LogSink {
            log: self.log.clone(),
            stream: Stream::Stdout,
        });
        wasi.stderr(LogSink {
            log: self.log.clone(),
            stream: Stream::Stderr,
        });
        // Outbound traffic goes through wasi:http (policed by `Outbound`), never raw sockets.
        wasi.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let mounts = self.grants.preopens.iter().map(|p| {
            let full = p.quota.as_ref().is_some_and(|q| {
                let was_full = q.is_full();
                let full = q.check(&p.host);
                if full && !was_full {
                    self.log.note(&format!(
                        "[node] volume {} is past its size_mib: read-only\n",
                        p.guest
                    ));
                }
                full
            });
            (&p.host, &p.guest, p.writable && !full)
        });
        let scratch = ephemeral
            .iter()
            .zip(&self.grants.ephemeral)
            .map(|(host, (_, guest))| (host, guest, true));
        for (host, guest, writable) in mounts.chain(scratch) {
            let perms = if writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            wasi.preopened_dir(host, guest, perms)
                .map_err(|e| ExecError::Internal(format!("open {}: {e}", host.display())))?;
        }
        Ok(wasi.build())
    }

    /// Runs one request. The answer's head is returned as soon as the program sets it; its
    /// body streams while the program goes on writing it, within the same deadline.
    pub async fn handle<B>(
        &self,
        request: http::Request<B>,
        queue_wait: Duration,
    ) -> Result<http::Response<HyperOutgoingBody>, ExecError>
    where
        B: http_body::Body<Data = Bytes, Error = wasmtime_wasi_http::Error> + Send + 'static,
    {
        let permit = tokio::time::timeout(queue_wait, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| ExecError::Busy)?
            .map_err(|_| ExecError::Busy)?;
        let ephemeral = self.make_ephemeral()?;
        let wasi = match self.context(&ephemeral) {
            Ok(wasi) => wasi,
            Err(e) => {
                remove_all(&ephemeral);
                return Err(e);
            }
        };
        let mut store = Store::new(
            self.pre.engine(),
            HostState {
                wasi,
                http: WasiHttpCtx::new(),
                table: ResourceTable::new(),
                limits: MemoryLimit {
                    cap: self.memory_bytes,
                    max_table_elements: self.max_table_elements,
                    used: 0,
                    exceeded: false,
                },
                outbound: self.grants.outbound.clone(),
            },
        );
        store.limiter(|state| &mut state.limits);
        // Every tick the program yields its thread (a busy loop never starves the node's
        // other tasks); past `resources.seconds` it is stopped.
        let budget = (u64::from(self.seconds) * 1000).div_ceil(TICK.as_millis() as u64);
        let mut ticks = 0u64;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            ticks += 1;
            if ticks > budget {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        let (sender, mut head) = tokio::sync::oneshot::channel();
        let setup = (|| {
            let request = store
                .data_mut()
                .http()
                .new_incoming_request(Scheme::Http, request)?;
            let out = store.data_mut().http().new_response_outparam(sender)?;
            Ok::<_, wasmtime::Error>((request, out))
        })();
        let (incoming, out) = match setup {
            Ok(pair) => pair,
            Err(e) => {
                remove_all(&ephemeral);
                return Err(ExecError::Internal(format!("{e:#}")));
            }
        };
        let pre = self.pre.clone();
        let log = self.log.clone();
        let mut run = Box::pin(async move {
            let result = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, incoming, out)
                    .await
            }
            .await;
            let ending = match result {
                Ok(()) => Ending::Finished,
                Err(e) if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) => Ending::TimedOut,
                Err(_) if store.data().limits.exceeded => Ending::OutOfMemory,
                Err(e) => Ending::Crashed(format!("{e:#}")),
            };
            drop(store);
            remove_all(&ephemeral);
            drop(permit);
            report(&log, &ending);
            ending
        });
        // The head, or the end of the program without one.
        let deadline = Duration::from_secs(u64::from(self.seconds)) + Duration::from_secs(1);
        let waited = tokio::time::timeout(deadline, async {
            tokio::select! {
                biased;
                answer = &mut head => {
                    // The rest of the program (its body) runs on its own.
                    tokio::spawn(run);
                    Ok(answer.ok())
                }
                ending = &mut run => match head.try_recv() {
                    Ok(answer) => Ok(Some(answer)),
                    Err(_) => Err(ending),
                },
            }
        })
        .await;
        let no_answer = || ExecError::Crashed("the program set no answer".into());
        match waited {
            Ok(Ok(Some(Ok(response)))) => Ok(response),
            Ok(Ok(Some(Err(code)))) => Err(ExecError::Crashed(error_code_text(&code))),
            Ok(Ok(None)) | Ok(Err(Ending::Finished)) => Err(no_answer()),
            Ok(Err(Ending::TimedOut)) | Err(_) => Err(ExecError::Timeout(self.seconds)),
            Ok(Err(Ending::OutOfMemory)) => Err(ExecError::Crashed(
                "the program ran out of memory (resources.memory)".into(),
            )),
            Ok(Err(Ending::Crashed(e))) => Err(ExecError::Crashed(e)),
        }
    }

    fn make_ephemeral(&self) -> Result<Vec<PathBuf>, ExecError> {
        let mut made = Vec::with_capacity(self.grants.ephemeral.len());
        for (parent, _) in &self.grants.ephemeral {
            let dir = parent.join(format!("x{:016x}", rand_suffix()));
            if let Err(e) = std::fs::create_dir_all(&dir) {
                remove_all(&made);
                return Err(ExecError::Internal(format!(
                    "create {}: {e}",
                    dir.display()
                )));
            }
            made.push(dir);
        }
        Ok(made)
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::Instant::now())
}

fn remove_all(dirs: &[PathBuf]) {
    for dir in dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The owner reads why an execution failed; the caller never does.
fn report(log: &ProgramLog, ending: &Ending) {
    match ending {
        Ending::Finished => {}
        Ending::TimedOut => log.note("[node] stopped: past resources.seconds\n"),
        Ending::OutOfMemory => log.note("[node] stopped: memory limit (resources.memory)\n"),
        Ending::Crashed(e) => log.note(&format!("[node] crashed: {e}\n")),
    }
}

fn error_code_text(code: &ErrorCode) -> String {
    format!("the program answered with an error: {code:?}")
}

/// A request body as wasi:http reads it: the caller's bytes, cut off past `limit`.
pub fn limited_body<B>(
    body: B,
    limit: u64,
) -> impl http_body::Body<Data = Bytes, Error = wasmtime_wasi_http::Error> + Send + 'static
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    http_body_util::Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX)).map_err(
        move |e| {
            if e.is::<http_body_util::LengthLimitError>() {
                wasmtime_wasi_http::Error::HttpRequestBodySize(Some(limit))
            } else {
                wasmtime_wasi_http::Error::ConnectionTerminated
            }
        },
    )
}
