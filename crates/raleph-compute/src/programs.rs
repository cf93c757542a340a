//! The node's programs: which are loaded, within the node's limits, and kept in step with
//! the messages that change them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::mpsc;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::index::{Listener, ProgramIndex};
use crate::logs::{LogEntry, ProgramLog};
use crate::runtimes::{self, RuntimeInfo, RuntimeKind};
use crate::spec::{Encoding, FileRef, ProgramSpec, Volume};
use crate::triggers::TriggerJournal;
use crate::vm::{HttpScope, VmConfig, VmError, VmExecutor, VmHandle, VmProgram};
use crate::wasm::{Grants, GuestApi, Outbound, Preopen, Quota, WasmEngine, WasmProgram};
use crate::{ComputeConfig, ExecError, ProgramSource, ResolvedFile, bundle};

/// A message the pipeline processed, as compute needs it.
#[derive(Debug, Clone, Copy)]
pub struct ProcessedMessage<'a> {
    pub item_hash: &'a str,
    /// `POST`, `STORE`, `PROGRAM`, ...
    pub message_type: &'a str,
    pub sender: &'a str,
    pub time: f64,
    /// The content JSON as stored.
    pub content: &'a str,
    /// The message as the API shows it: what `on.message` subscriptions are matched against
    /// and what a triggered program receives.
    pub json: &'a Value,
}

/// The path a program is called on for each message it subscribed to.
pub const TRIGGER_PATH: &str = "/.well-known/aleph/message";

/// What answers for a loaded program.
enum Runner {
    /// A compiled component, instantiated per request.
    Wasm(WasmProgram),
    /// A running microVM, answering `vcpus` requests at once.
    Vm {
        handle: VmHandle,
        slots: Arc<tokio::sync::Semaphore>,
        slot_count: usize,
        seconds: u32,
    },
}

impl Runner {
    fn busy(&self) -> bool {
        match self {
            Runner::Wasm(program) => program.busy(),
            Runner::Vm {
                slots, slot_count, ..
            } => slots.available_permits() < *slot_count,
        }
    }

    fn is_vm(&self) -> bool {
        matches!(self, Runner::Vm { .. })
    }

    fn alive(&self) -> bool {
        match self {
            Runner::Wasm(_) => true,
            Runner::Vm { handle, .. } => handle.alive(),
        }
    }
}

/// A program ready to answer.
struct Loaded {
    runner: Runner,
    spec: Arc<ProgramSpec>,
    code: ResolvedFile,
    /// What it counts against `max_total_memory_mib`: memory × vcpus.
    memory_cost: u64,
    /// Milliseconds since the node started, at the last request.
    last_used: AtomicU64,
}

/// What `prepare` found: everything but the running program.
struct Prepared {
    spec: Arc<ProgramSpec>,
    code: ResolvedFile,
    run: PreparedRun,
}

enum PreparedRun {
    /// Compiled into the cache under this key.
    Wasm {
        component_key: String,
        grants: Grants,
    },
    /// The code, for a microVM.
    Vm { code: Vec<u8> },
}

struct Inner {
    config: ComputeConfig,
    source: Arc<dyn ProgramSource>,
    engine: Option<WasmEngine>,
    /// Python programs, when a runtime is configured and QEMU is here.
    vms: Option<VmExecutor>,
    /// The node's API on loopback, which microVM guests reach through their NAT.
    api_addr: Option<std::net::SocketAddr>,
    root: PathBuf,
    started: Instant,
    loaded: Mutex<HashMap<String, Arc<Loaded>>>,
    /// Loading compiles: one at a time, so two requests never compile the same code twice
    /// and compilation never takes both cores from the node.
    loading: tokio::sync::Mutex<()>,
    index: RwLock<ProgramIndex>,
    logs: Mutex<HashMap<String, Arc<ProgramLog>>>,
    guest_api: Option<GuestApi>,
    python_runtimes: Vec<String>,
    precompile: mpsc::UnboundedSender<String>,
    triggers: mpsc::Sender<Delivery>,
    /// Deliveries written down until made or given up (`None`: the file could not be opened).
    journal: Option<TriggerJournal>,
    stats: Stats,
}

#[derive(Default)]
struct Stats {
    executions: AtomicU64,
    failures: AtomicU64,
    triggers_delivered: AtomicU64,
    triggers_failed: AtomicU64,
    triggers_dropped: AtomicU64,
    /// Bytes of the messages of deliveries not over yet.
    trigger_bytes: AtomicU64,
}

struct Delivery {
    /// In the trigger journal.
    id: u64,
    program: String,
    body: Bytes,
    attempt: u32,
}

/// The programs of one node. Cheap to clone.
#[derive(Clone)]
pub struct Compute {
    inner: Arc<Inner>,
}

impl Compute {
    /// Starts compute under `<data_dir>/compute`: reads the node's programs, compiles what is
    /// not compiled yet (in the background), and watches for idle programs.
    pub fn start(
        config: ComputeConfig,
        data_dir: &Path,
        source: Arc<dyn ProgramSource>,
        guest_api: Option<GuestApi>,
        api_addr: Option<std::net::SocketAddr>,
    ) -> anyhow::Result<Compute> {
        let python_runtimes = config.python_runtimes.clone();
        let vms = if config.enabled && !config.python_runtime_dir.as_os_str().is_empty() {
            // Absolute: QEMU runs in another directory, and sockets are named by path.
            let work = std::path::absolute(root_of(data_dir).join("vm"))?;
            let runtime = std::path::absolute(&config.python_runtime_dir)?;
            let mut vm_config = VmConfig::new(runtime, &work);
            // Per-VM sockets need short paths (107 bytes): a deep data directory gets them
            // under the temporary directory instead, in a folder named after it.
            if work.as_os_str().len() > 48 {
                let key = raleph_message::sha256_hex(work.as_os_str().as_encoded_bytes());
                vm_config.vms_dir =
                    Some(std::env::temp_dir().join(format!("raleph-vms-{}", &key[..12])));
            }
            vm_config.boot_timeout = Duration::from_secs_f64(config.vm_boot_timeout_secs.max(1.0));
            match VmExecutor::new(vm_config) {
                Ok(executor) => {
                    tracing::info!(accel = ?executor.accel(), "compute: Python programs run in microVMs");
                    Some(executor)
                }
                Err(e) => {
                    tracing::warn!("compute: Python programs will not run: {e}");
                    None
                }
            }
        } else {
            None
        };
        let root = root_of(data_dir);
        let engine = if config.enabled {
            Some(WasmEngine::new(&config, &root.join("compiled"))?)
        } else {
            None
        };
        // Scratch space of executions from a previous run is nobody's.
        let _ = std::fs::remove_dir_all(root.join("scratch"));
        std::fs::create_dir_all(&root)?;
        let (journal, due) = match TriggerJournal::open(
            &root.join("triggers.jsonl"),
            config.max_pending_triggers.max(1),
        ) {
            Ok((journal, due, dropped)) => {
                if dropped > 0 {
                    tracing::warn!(
                        dropped,
                        "compute: trigger deliveries past the queue's bound dropped"
                    );
                }
                (Some(journal), due)
            }
            Err(e) => {
                tracing::warn!("compute: trigger deliveries will not survive a restart: {e}");
                (None, Vec::new())
            }
        };
        let (precompile, precompile_queue) = mpsc::unbounded_channel();
        let (triggers, trigger_queue) = mpsc::channel(config.max_pending_triggers.max(1));
        let compute = Compute {
            inner: Arc::new(Inner {
                config,
                source,
                engine,
                vms,
                api_addr,
                root,
                started: Instant::now(),
                loaded: Mutex::new(HashMap::new()),
                loading: tokio::sync::Mutex::new(()),
                index: RwLock::new(ProgramIndex::default()),
                logs: Mutex::new(HashMap::new()),
                guest_api,
                python_runtimes,
                precompile,
                triggers,
                journal,
                stats: Stats::default(),
            }),
        };
        if let Some(vms) = compute.inner.vms.clone() {
            let template_memory = compute.inner.config.max_vm_memory_mib;
            // The snapshot new Python programs start from (about 10 s under emulation), made
            // now rather than by the first program's first request, for the memory the
            // published CLI's smallest tier asks (other sizes get theirs on first use).
            let memory = template_memory.clamp(128, 2048);
            tokio::spawn(async move {
                if let Err(e) = vms.prepare(memory, 1).await {
                    tracing::warn!("compute: the microVM template was not made: {e}");
                }
            });
        }
        if compute.inner.engine.is_some() {
            tokio::spawn(compute.clone().read_programs());
            tokio::spawn(compute.clone().compile_queued(precompile_queue));
            tokio::spawn(compute.clone().unload_idle());
            tokio::spawn(compute.clone().keep_persistent());
            tokio::spawn(compute.clone().deliver_triggers(trigger_queue));
            // What was due when the node stopped.
            for due in due {
                compute
                    .inner
                    .stats
                    .trigger_bytes
                    .fetch_add(due.body.len() as u64, Ordering::Relaxed);
                let delivery = Delivery {
                    id: due.id,
                    program: due.program,
                    body: due.body,
                    attempt: 0,
                };
                let _ = compute.inner.triggers.try_send(delivery);
            }
        }
        Ok(compute)
    }

    pub fn config(&self) -> &ComputeConfig {
        &self.inner.config
    }

    /// Answers one HTTP request to `/vm/{item_hash}`; `request`'s URI is what the program
    /// sees (the prefix already removed).
    pub async fn handle<B>(
        &self,
        item_hash: &str,
        request: http::Request<B>,
    ) -> Result<(http::Response<HyperOutgoingBody>, Arc<str>), ExecError>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let loaded = self.load(item_hash, true).await?;
        self.execute(&loaded, request).await
    }

    async fn execute<B>(
        &self,
        loaded: &Arc<Loaded>,
        request: http::Request<B>,
    ) -> Result<(http::Response<HyperOutgoingBody>, Arc<str>), ExecError>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let inner = &self.inner;
        loaded
            .last_used
            .store(inner.elapsed_ms(), Ordering::Relaxed);
        inner.stats.executions.fetch_add(1, Ordering::Relaxed);
        let limit = inner.config.max_request_body_bytes;
        let wait = Duration::from_millis(inner.config.queue_wait_ms);
        let answer = match &loaded.runner {
            Runner::Wasm(program) => {
                let request = request.map(|body| crate::wasm::limited_body(body, limit));
                program.handle(request, wait).await
            }
            Runner::Vm {
                handle,
                slots,
                seconds,
                ..
            } => {
                let answer = vm_http(handle, slots, *seconds, request, limit, wait).await;
                if !handle.alive() {
                    // A VM that died is started again by the next request.
                    let spec = loaded.spec.item_hash.clone();
                    inner.unload_where(|hash, _| *hash == spec);
                }
                if let Err(VmError::ProgramError(traceback)) = &answer {
                    let original = inner.read_index().original(&loaded.spec.item_hash);
                    inner.log_of(&original).note(&format!("{traceback}\n"));
                }
                answer.map_err(|e| vm_failure(e, *seconds))
            }
        };
        if answer.is_err() {
            inner.stats.failures.fetch_add(1, Ordering::Relaxed);
        }
        answer.map(|response| (response, Arc::from(loaded.code.store_hash.as_str())))
    }

    /// The loaded program answering for `item_hash` (its newest update), loading it if needed.
    async fn load(&self, item_hash: &str, http: bool) -> Result<Arc<Loaded>, ExecError> {
        let inner = &self.inner;
        let Some(engine) = inner.engine.as_ref() else {
            return Err(ExecError::Disabled);
        };
        let current = inner.read_index().current(item_hash);
        if let Some(loaded) = inner.lock_loaded().get(&current) {
            return check_http(loaded.clone(), http);
        }
        let _one_at_a_time = inner.loading.lock().await;
        if let Some(loaded) = inner.lock_loaded().get(&current) {
            return check_http(loaded.clone(), http);
        }
        let worker = self.clone();
        let hash = current.clone();
        let prepared = tokio::task::spawn_blocking(move || worker.inner.prepare(&hash))
            .await
            .map_err(|e| ExecError::Internal(e.to_string()))??;
        let spec = prepared.spec.clone();
        let vcpus = spec.vcpus.min(inner.config.max_program_vcpus).max(1);
        let seconds = spec.seconds.min(inner.config.max_program_seconds);
        let log = inner.log_of(&inner.read_index().original(&current));
        let runner = match prepared.run {
            PreparedRun::Wasm {
                component_key,
                grants,
            } => {
                inner.admit(u64::from(spec.memory_mib) * u64::from(vcpus), false)?;
                let component = engine
                    .load(&component_key)
                    .map_err(|e| ExecError::Internal(format!("{e:#}")))?;
                Runner::Wasm(WasmProgram::new(
                    engine,
                    &component,
                    grants,
                    log,
                    crate::wasm::Limits {
                        memory_mib: spec.memory_mib,
                        seconds,
                        vcpus,
                        max_table_elements: inner.config.max_table_elements,
                    },
                )?)
            }
            PreparedRun::Vm { code } => {
                let vms = inner.vms.as_ref().ok_or(ExecError::Disabled)?;
                inner.admit(u64::from(spec.memory_mib.max(128)), true)?;
                let handle = vms
                    .start(VmProgram {
                        item_hash: current.clone(),
                        code,
                        encoding: match spec.code.encoding {
                            Encoding::Plain => "plain",
                            Encoding::Zip => "zip",
                            Encoding::Squashfs => "squashfs",
                        }
                        .to_owned(),
                        entrypoint: spec.code.entrypoint.clone(),
                        interface: spec.code.interface.clone(),
                        variables: spec.variables.clone(),
                        memory_mib: spec.memory_mib.max(128),
                        vcpus: 1,
                        internet: spec.internet,
                        api_addr: inner.api_addr,
                        log: log.clone(),
                    })
                    .await
                    .map_err(|e| {
                        log.note(&format!("[node] the program's VM did not start: {e}\n"));
                        match e {
                            VmError::Config(_) => {
                                ExecError::BadCode("the program did not start".into())
                            }
                            VmError::Unavailable(e) => ExecError::UnknownRuntime(e),
                            other => ExecError::Internal(other.to_string()),
                        }
                    })?;
                Runner::Vm {
                    handle,
                    slots: Arc::new(tokio::sync::Semaphore::new(vcpus as usize)),
                    slot_count: vcpus as usize,
                    seconds,
                }
            }
        };
        let memory_cost = match &runner {
            Runner::Vm { .. } => u64::from(spec.memory_mib.max(128)),
            Runner::Wasm(_) => u64::from(spec.memory_mib) * u64::from(vcpus),
        };
        let loaded = Arc::new(Loaded {
            runner,
            spec,
            code: prepared.code,
            memory_cost,
            last_used: AtomicU64::new(inner.elapsed_ms()),
        });
        inner.lock_loaded().insert(current, loaded.clone());
        check_http(loaded, http)
    }

    /// A message the pipeline processed: a new program or version, a new version of a file
    /// programs run from, or a message some program listens to.
    pub fn on_processed(&self, message: &ProcessedMessage<'_>) {
        let inner = &self.inner;
        if inner.engine.is_none() {
            return;
        }
        match message.message_type {
            "PROGRAM" => {
                if let Ok(spec) = ProgramSpec::parse(
                    message.item_hash,
                    message.content,
                    message.sender,
                    message.time,
                ) {
                    inner.write_index().add(&spec, message.time);
                    if let Some(original) = &spec.replaces {
                        // The original's chain answers with this version from now on.
                        inner.unload_where(|hash, loaded| {
                            hash == original || loaded.spec.replaces.as_deref() == Some(original)
                        });
                    }
                    if spec.persistent {
                        let compute = self.clone();
                        let hash = spec.item_hash.clone();
                        tokio::spawn(async move {
                            if let Err(e) = compute.ensure_running(&hash).await {
                                tracing::info!(program = %hash, "persistent program not started: {e}");
                            }
                        });
                    } else {
                        let _ = inner.precompile.send(spec.item_hash.clone());
                    }
                }
            }
            "STORE" => {
                let reference = serde_json::from_str::<Value>(message.content)
                    .ok()
                    .and_then(|c| c.get("ref").and_then(Value::as_str).map(str::to_owned));
                if let Some(reference) = reference {
                    // A new version of a file: every program running it with use_latest
                    // reloads on its next request, compiled ahead if possible.
                    let stale = inner.unload_where(|_, loaded| {
                        loaded
                            .spec
                            .files()
                            .any(|f| f.use_latest && f.reference == reference)
                    });
                    for hash in stale {
                        let _ = inner.precompile.send(hash);
                    }
                }
            }
            "FORGET" => {
                let hashes: Vec<String> = serde_json::from_str::<Value>(message.content)
                    .ok()
                    .and_then(|c| c.get("hashes").cloned())
                    .and_then(|h| serde_json::from_value(h).ok())
                    .unwrap_or_default();
                for hash in hashes {
                    self.on_forgotten(&hash);
                }
            }
            _ => {}
        }
        let listeners = inner.read_index().listeners_of(message.json);
        if listeners.is_empty() {
            return;
        }
        let body = Bytes::from(serde_json::to_vec(message.json).unwrap_or_default());
        for program in listeners {
            let id = match &inner.journal {
                Some(journal) => journal.queued(&program, &body).unwrap_or(u64::MAX),
                None => u64::MAX,
            };
            let size = body.len() as u64;
            let held = inner.stats.trigger_bytes.fetch_add(size, Ordering::Relaxed);
            let delivery = Delivery {
                id,
                program,
                body: body.clone(),
                attempt: 0,
            };
            let too_much = held + size > inner.config.max_pending_trigger_bytes as u64;
            if too_much || inner.triggers.try_send(delivery).is_err() {
                inner.stats.trigger_bytes.fetch_sub(size, Ordering::Relaxed);
                inner.stats.triggers_dropped.fetch_add(1, Ordering::Relaxed);
                inner.trigger_ended(id, false);
            }
        }
    }

    /// A message was forgotten: if it was a program (or an original with updates), it stops
    /// answering and its memory, volumes and logs are freed.
    pub fn on_forgotten(&self, item_hash: &str) {
        let inner = &self.inner;
        let gone = inner.write_index().remove(item_hash);
        inner.unload_where(|hash, loaded| {
            gone.iter().any(|g| g == hash)
                || loaded
                    .spec
                    .replaces
                    .as_deref()
                    .is_some_and(|o| gone.iter().any(|g| g == o))
        });
        for hash in &gone {
            let _ = std::fs::remove_dir_all(inner.root.join("volumes").join(hash));
            inner.lock_logs().remove(hash);
        }
    }

    /// Runtime refs this node provides without a STORE message.
    pub fn provided_runtimes(config: &ComputeConfig) -> Vec<String> {
        let mut refs = vec![runtimes::WASM_RUNTIME.clone()];
        refs.extend(config.python_runtimes.iter().cloned());
        refs
    }

    /// The runtimes this node runs.
    pub fn runtimes(&self) -> Vec<RuntimeInfo> {
        let mut list = vec![RuntimeInfo {
            reference: runtimes::WASM_RUNTIME.clone(),
            kind: RuntimeKind::Wasm,
            description: "WebAssembly component exporting wasi:http/incoming-handler \
                          (wasi:http/proxy, WASI 0.2), run by wasmtime"
                .to_owned(),
            available: self.inner.engine.is_some(),
        }];
        for reference in &self.inner.python_runtimes {
            list.push(RuntimeInfo {
                reference: reference.clone(),
                kind: RuntimeKind::Microvm,
                description: "Debian 12 with Python 3 and an ASGI server (FastAPI), in a QEMU \
                              microVM; the published SDK's default runtime"
                    .to_owned(),
                available: self.inner.vms.is_some(),
            });
        }
        list
    }

    /// Programs with `on.message` subscriptions.
    pub fn listeners(&self, newest_first: bool) -> Vec<Listener> {
        self.inner.read_index().listeners(newest_first)
    }

    /// What a program printed (its original's log, shared by its versions).
    pub fn logs(&self, item_hash: &str) -> Vec<LogEntry> {
        let original = self.inner.read_index().original(item_hash);
        match self.inner.lock_logs().get(&original) {
            Some(log) => log.entries(),
            None => Vec::new(),
        }
    }

    /// Programs loaded now: (item hash, spec).
    pub fn loaded(&self) -> Vec<(String, Arc<ProgramSpec>)> {
        let loaded = self.inner.lock_loaded();
        let mut list: Vec<_> = loaded
            .iter()
            .map(|(hash, l)| (hash.clone(), l.spec.clone()))
            .collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        list
    }

    /// Stops a program now (the owner asked): it is unloaded; the next request loads it again.
    pub fn stop(&self, item_hash: &str) -> bool {
        let current = self.inner.read_index().current(item_hash);
        !self
            .inner
            .unload_where(|hash, _| hash == current || hash == item_hash)
            .is_empty()
    }

    /// Loads a program now (an allocation notice, a reboot): its next request finds it ready.
    pub async fn ensure_running(&self, item_hash: &str) -> Result<(), ExecError> {
        self.load(item_hash, false).await.map(|_| ())
    }

    /// Stops a program and starts it again.
    pub async fn restart(&self, item_hash: &str) -> Result<(), ExecError> {
        self.stop(item_hash);
        self.ensure_running(item_hash).await
    }

    /// The owner (`content.address`) of a processed PROGRAM, and its spec.
    pub async fn program(&self, item_hash: &str) -> Result<Arc<ProgramSpec>, ExecError> {
        let source = self.inner.source.clone();
        let hash = item_hash.to_owned();
        let stored = tokio::task::spawn_blocking(move || source.program(&hash))
            .await
            .map_err(|e| ExecError::Internal(e.to_string()))?
            .map_err(|e| ExecError::Internal(e.to_string()))?
            .ok_or(ExecError::NotFound)?;
        ProgramSpec::parse(
            &stored.item_hash,
            &stored.content,
            &stored.sender,
            stored.time,
        )
        .map(Arc::new)
        .map_err(ExecError::Internal)
    }

    /// Counters: executions, failures, trigger deliveries.
    pub fn counters(&self) -> Value {
        let s = &self.inner.stats;
        serde_json::json!({
            "executions": s.executions.load(Ordering::Relaxed),
            "failures": s.failures.load(Ordering::Relaxed),
            "loaded": self.inner.lock_loaded().len(),
            "triggers_delivered": s.triggers_delivered.load(Ordering::Relaxed),
            "triggers_failed": s.triggers_failed.load(Ordering::Relaxed),
            "triggers_dropped": s.triggers_dropped.load(Ordering::Relaxed),
        })
    }

    /// Starts over from the store, after compute missed some of the pipeline's events (the
    /// node was too busy for their queue): every program is unloaded (requests in flight
    /// finish) and the index is read again, so no missed update or FORGET goes unseen.
    pub fn resync(&self) {
        if self.inner.engine.is_none() {
            return;
        }
        self.inner.unload_where(|_, _| true);
        tokio::spawn(self.clone().read_programs());
    }

    /// Reads every PROGRAM once at start, then compiles those not compiled yet.
    async fn read_programs(self) {
        let source = self.inner.source.clone();
        let read = tokio::task::spawn_blocking(move || {
            let mut all = Vec::new();
            let mut after = None;
            loop {
                let (page, next) = source.programs(after, 500)?;
                all.extend(page);
                match next {
                    Some(next) => after = Some(next),
                    None => return Ok::<_, std::io::Error>(all),
                }
            }
        })
        .await;
        let programs = match read {
            Ok(Ok(programs)) => programs,
            Ok(Err(e)) => {
                tracing::warn!("compute: reading programs failed: {e}");
                return;
            }
            Err(_) => return,
        };
        let mut specs = Vec::new();
        let mut persistent = Vec::new();
        {
            let mut index = self.inner.write_index();
            *index = ProgramIndex::default();
            for program in &programs {
                if let Ok(spec) = ProgramSpec::parse(
                    &program.item_hash,
                    &program.content,
                    &program.sender,
                    program.time,
                ) {
                    index.add(&spec, program.time);
                    if spec.persistent {
                        persistent.push(spec.item_hash.clone());
                    }
                    specs.push(spec.item_hash);
                }
            }
        }
        tracing::info!(programs = specs.len(), "compute: programs read");
        for hash in specs {
            let _ = self.inner.precompile.send(hash);
        }
        // Persistent programs are kept loaded from the start (and never unloaded for idleness).
        for hash in persistent {
            if let Err(e) = self.ensure_running(&hash).await {
                tracing::info!(program = %hash, "persistent program not started: {e}");
            }
        }
    }

    /// Compiles queued programs ahead of their first request, one at a time.
    async fn compile_queued(self, mut queue: mpsc::UnboundedReceiver<String>) {
        while let Some(hash) = queue.recv().await {
            let worker = self.clone();
            let _ = tokio::task::spawn_blocking(move || {
                let inner = &worker.inner;
                match inner.prepare(&hash) {
                    Ok(_) | Err(ExecError::UnknownRuntime(_)) | Err(ExecError::NotHttp) => {}
                    Err(e) => tracing::debug!(program = %hash, "not compiled ahead: {e}"),
                }
            })
            .await;
        }
    }

    /// Unloads programs idle for `idle_timeout_secs` (persistent ones stay).
    async fn unload_idle(self) {
        let idle = Duration::from_secs_f64(self.inner.config.idle_timeout_secs.max(0.01));
        let mut ticks = tokio::time::interval((idle / 4).max(Duration::from_millis(10)));
        loop {
            ticks.tick().await;
            let now = self.inner.elapsed_ms();
            let idle_ms = idle.as_millis() as u64;
            self.inner.unload_where(|_, loaded| {
                !loaded.spec.persistent
                    && !loaded.runner.busy()
                    && now.saturating_sub(loaded.last_used.load(Ordering::Relaxed)) >= idle_ms
            });
        }
    }

    /// Keeps `on.persistent` programs running: one that is not (it crashed, its VM died, it
    /// could not start) is started again, waiting twice as long after each failure (5 s to
    /// 5 min).
    async fn keep_persistent(self) {
        const CHECK: Duration = Duration::from_secs(5);
        const MAX_BACKOFF: Duration = Duration::from_secs(300);
        let mut backoff: HashMap<String, (Instant, Duration)> = HashMap::new();
        loop {
            tokio::time::sleep(CHECK).await;
            let programs = self.inner.read_index().persistent();
            backoff.retain(|hash, _| programs.contains(hash));
            for hash in programs {
                let current = self.inner.read_index().current(&hash);
                let running = self
                    .inner
                    .lock_loaded()
                    .get(&current)
                    .is_some_and(|l| l.runner.alive());
                if running {
                    backoff.remove(&hash);
                    continue;
                }
                if backoff
                    .get(&hash)
                    .is_some_and(|(next, _)| Instant::now() < *next)
                {
                    continue;
                }
                self.inner.unload_where(|h, _| *h == current);
                match self.ensure_running(&hash).await {
                    Ok(()) => {
                        backoff.remove(&hash);
                    }
                    Err(ExecError::NotFound) => {}
                    Err(e) => {
                        let wait = backoff
                            .get(&hash)
                            .map_or(CHECK, |(_, last)| (*last * 2).min(MAX_BACKOFF));
                        let log = self.inner.log_of(&self.inner.read_index().original(&hash));
                        log.note(&format!(
                            "[node] persistent program not running: {e}; next try in {} s\n",
                            wait.as_secs()
                        ));
                        backoff.insert(hash, (Instant::now() + wait, wait));
                    }
                }
            }
        }
    }

    /// Calls each listening program with the messages it subscribed to, retrying a bounded
    /// number of times with a growing delay.
    async fn deliver_triggers(self, mut queue: mpsc::Receiver<Delivery>) {
        while let Some(delivery) = queue.recv().await {
            let compute = self.clone();
            let answered = compute.deliver(&delivery).await;
            let inner = &self.inner;
            match answered {
                Ok(()) => {
                    inner
                        .stats
                        .triggers_delivered
                        .fetch_add(1, Ordering::Relaxed);
                    inner.trigger_ended(delivery.id, true);
                    inner
                        .stats
                        .trigger_bytes
                        .fetch_sub(delivery.body.len() as u64, Ordering::Relaxed);
                }
                Err(e) if delivery.attempt < inner.config.trigger_retries => {
                    let log = inner.log_of(&inner.read_index().original(&delivery.program));
                    log.note(&format!(
                        "[node] message trigger failed (attempt {}): {e}\n",
                        delivery.attempt + 1
                    ));
                    let retry = Delivery {
                        attempt: delivery.attempt + 1,
                        ..delivery
                    };
                    let compute = self.clone();
                    let delay = Duration::from_millis(250 << retry.attempt.min(10));
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        let inner = &compute.inner;
                        if let Err(refused) = inner.triggers.try_send(retry) {
                            // The queue is full: this delivery is given up like one dropped.
                            let retry = refused.into_inner();
                            inner.stats.triggers_dropped.fetch_add(1, Ordering::Relaxed);
                            inner.trigger_ended(retry.id, false);
                            inner
                                .stats
                                .trigger_bytes
                                .fetch_sub(retry.body.len() as u64, Ordering::Relaxed);
                        }
                    });
                }
                Err(e) => {
                    inner.stats.triggers_failed.fetch_add(1, Ordering::Relaxed);
                    inner.trigger_ended(delivery.id, false);
                    inner
                        .stats
                        .trigger_bytes
                        .fetch_sub(delivery.body.len() as u64, Ordering::Relaxed);
                    let log = inner.log_of(&inner.read_index().original(&delivery.program));
                    log.note(&format!("[node] message trigger given up: {e}\n"));
                }
            }
        }
    }

    async fn deliver(&self, delivery: &Delivery) -> Result<(), String> {
        let loaded = self
            .load(&delivery.program, false)
            .await
            .map_err(|e| e.to_string())?;
        if let Runner::Vm {
            handle, seconds, ..
        } = &loaded.runner
        {
            // The reference's `aleph.message` scope.
            return handle
                .message(
                    delivery.body.clone(),
                    Duration::from_secs(u64::from(*seconds)),
                )
                .await
                .map_err(|e| e.to_string());
        }
        let request = http::Request::post(format!("http://localhost{TRIGGER_PATH}"))
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("aleph-trigger", "message")
            .body(http_body_util::Full::new(delivery.body.clone()))
            .map_err(|e| e.to_string())?;
        let (response, _) = self
            .execute(&loaded, request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        // The answer's body is read (and dropped) so the program runs to its end.
        let _ = http_body_util::BodyExt::collect(response.into_body()).await;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("answered {status}"))
        }
    }
}

fn check_http(loaded: Arc<Loaded>, http: bool) -> Result<Arc<Loaded>, ExecError> {
    if http && !loaded.spec.http {
        return Err(ExecError::NotHttp);
    }
    Ok(loaded)
}

impl Inner {
    fn trigger_ended(&self, id: u64, delivered: bool) {
        if let Some(journal) = &self.journal
            && id != u64::MAX
        {
            journal.ended(id, delivered);
        }
    }

    fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn lock_loaded(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Loaded>>> {
        self.loaded.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_logs(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<ProgramLog>>> {
        self.logs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn read_index(&self) -> std::sync::RwLockReadGuard<'_, ProgramIndex> {
        self.index.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_index(&self) -> std::sync::RwLockWriteGuard<'_, ProgramIndex> {
        self.index.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The log of a program (by its original's hash). Logs of at most twice `max_programs`
    /// programs are kept; past that, those of programs not loaded are dropped first.
    fn log_of(&self, original: &str) -> Arc<ProgramLog> {
        let mut logs = self.lock_logs();
        if let Some(log) = logs.get(original) {
            return log.clone();
        }
        let cap = self.config.max_programs.saturating_mul(2).max(1);
        if logs.len() >= cap {
            let loaded = self.lock_loaded();
            let victim = logs
                .keys()
                .find(|hash| !loaded.contains_key(*hash))
                .or_else(|| logs.keys().next())
                .cloned();
            if let Some(victim) = victim {
                logs.remove(&victim);
            }
        }
        let log = ProgramLog::new(self.config.max_log_bytes);
        logs.insert(original.to_owned(), log.clone());
        log
    }

    /// Unloads the programs `which` selects; in-flight requests finish on their own copy.
    fn unload_where(&self, mut which: impl FnMut(&str, &Loaded) -> bool) -> Vec<String> {
        let mut loaded = self.lock_loaded();
        let gone: Vec<String> = loaded
            .iter()
            .filter(|(hash, l)| which(hash, l))
            .map(|(hash, _)| hash.clone())
            .collect();
        for hash in &gone {
            loaded.remove(hash);
        }
        gone
    }

    /// Makes room for a program costing `memory_cost` MiB: unloads the least recently used
    /// idle programs as needed, or refuses.
    fn admit(&self, memory_cost: u64, vm: bool) -> Result<(), ExecError> {
        let config = &self.config;
        if memory_cost > config.max_total_memory_mib {
            return Err(ExecError::Capacity(format!(
                "the program needs {memory_cost} MiB (memory × vcpus), this node gives at most \
                 {} MiB to all programs",
                config.max_total_memory_mib
            )));
        }
        let mut loaded = self.lock_loaded();
        loop {
            let used: u64 = loaded.values().map(|l| l.memory_cost).sum();
            let vms = loaded.values().filter(|l| l.runner.is_vm()).count();
            let full_of_vms = vm && vms >= config.max_vms;
            if loaded.len() < config.max_programs.max(1)
                && used + memory_cost <= config.max_total_memory_mib
                && !full_of_vms
            {
                return Ok(());
            }
            let victim = loaded
                .iter()
                .filter(|(_, l)| !l.runner.busy() && (!vm || l.runner.is_vm() || !full_of_vms))
                .min_by_key(|(_, l)| l.last_used.load(Ordering::Relaxed))
                .map(|(hash, _)| hash.clone());
            match victim {
                Some(hash) => {
                    loaded.remove(&hash);
                }
                None => {
                    return Err(ExecError::Capacity(format!(
                        "{} programs loaded using {used} MiB, all busy",
                        loaded.len()
                    )));
                }
            }
        }
    }

    /// Everything up to the in-memory program: reads the PROGRAM, resolves and fetches its
    /// files, unpacks bundles and compiles the component into the cache. Blocking.
    fn prepare(&self, item_hash: &str) -> Result<Prepared, ExecError> {
        let io = |e: std::io::Error| ExecError::Internal(e.to_string());
        let stored = self
            .source
            .program(item_hash)
            .map_err(io)?
            .ok_or(ExecError::NotFound)?;
        let spec = ProgramSpec::parse(
            &stored.item_hash,
            &stored.content,
            &stored.sender,
            stored.time,
        )
        .map_err(|e| ExecError::Internal(format!("stored program does not parse: {e}")))?;
        // Forgetting an original forgets its updates (the reference deletes their VM rows).
        if let Some(original) = &spec.replaces
            && self.source.program(original).map_err(io)?.is_none()
        {
            return Err(ExecError::NotFound);
        }
        let kind = self.runtime_kind(&spec.runtime)?;
        let config = &self.config;
        let max_memory = match kind {
            RuntimeKind::Wasm => config.max_program_memory_mib,
            RuntimeKind::Microvm => config.max_vm_memory_mib,
        };
        if spec.memory_mib > max_memory {
            return Err(ExecError::Capacity(format!(
                "the program asks for {} MiB of memory, this node runs programs of at most \
                 {max_memory} MiB",
                spec.memory_mib
            )));
        }
        let (code, code_bytes) = self.fetch(&spec.code.file, "code")?;
        if kind == RuntimeKind::Microvm {
            return Ok(Prepared {
                spec: Arc::new(spec),
                code,
                run: PreparedRun::Vm { code: code_bytes },
            });
        }
        let engine = self.engine.as_ref().ok_or(ExecError::Disabled)?;
        let mut preopens = Vec::new();
        let component = match spec.code.encoding {
            Encoding::Plain => code_bytes,
            Encoding::Zip | Encoding::Squashfs => {
                let dir = self.unpacked(&code.sha256, &code_bytes)?;
                let entry = bundle_entry(&spec.code.entrypoint);
                let path = dir.join(&entry);
                if !path.starts_with(&dir) || entry.contains("..") {
                    return Err(ExecError::BadCode(format!(
                        "entrypoint {entry:?} is outside the bundle"
                    )));
                }
                let component = std::fs::read(&path).map_err(|_| {
                    ExecError::BadCode(format!("the bundle has no {entry:?} (code.entrypoint)"))
                })?;
                preopens.push(Preopen {
                    host: dir,
                    guest: "/app".to_owned(),
                    writable: false,
                    quota: None,
                });
                component
            }
        };
        let component_key = raleph_message::sha256_hex(&component);
        if !engine.is_compiled(&component_key) {
            engine
                .compile(&component_key, &component)
                .map_err(|e| ExecError::BadCode(format!("{e:#}")))?;
        }
        if let Some((file, encoding, mount)) = &spec.data {
            preopens.push(self.read_only_mount(file, *encoding, mount, "data")?);
        }
        let original = self.read_index().original(&spec.item_hash);
        let mut ephemeral = Vec::new();
        for volume in &spec.volumes {
            match volume {
                Volume::Immutable { file, mount } => {
                    preopens.push(self.read_only_mount(file, Encoding::Zip, mount, "volume")?);
                }
                Volume::Ephemeral { mount, .. } => {
                    let parent = self.root.join("scratch").join(&spec.item_hash);
                    ephemeral.push((parent, mount.clone()));
                }
                Volume::Persistent {
                    name,
                    mount,
                    size_mib,
                } => {
                    if *size_mib > config.max_persistent_volume_mib {
                        return Err(ExecError::Capacity(format!(
                            "persistent volume {name:?} asks for {size_mib} MiB, this node \
                             grants at most {} MiB",
                            config.max_persistent_volume_mib
                        )));
                    }
                    let safe: String = name
                        .chars()
                        .map(|c| {
                            if c.is_ascii_alphanumeric() || c == '-' {
                                c
                            } else {
                                '_'
                            }
                        })
                        .collect();
                    let dir = self.root.join("volumes").join(&original).join(safe);
                    std::fs::create_dir_all(&dir).map_err(io)?;
                    let quota = Quota::new(size_mib.saturating_mul(1 << 20));
                    quota.check(&dir);
                    preopens.push(Preopen {
                        host: dir,
                        guest: mount.clone(),
                        writable: true,
                        quota: Some(quota),
                    });
                }
            }
        }
        let mut env = vec![
            ("ALEPH_ITEM_HASH".to_owned(), original.clone()),
            ("ALEPH_PROGRAM_VERSION".to_owned(), spec.item_hash.clone()),
            ("ALEPH_CODE_REF".to_owned(), code.store_hash.clone()),
            (
                "ALEPH_API_HOST".to_owned(),
                format!("http://{}", config.guest_api_authority),
            ),
        ];
        env.extend(spec.variables.iter().cloned());
        let grants = Grants {
            env,
            preopens,
            ephemeral,
            outbound: Outbound {
                guest_api_authority: config.guest_api_authority.to_ascii_lowercase(),
                guest_api: self.guest_api.clone(),
                max_guest_api_body: config.max_guest_api_request_bytes,
                internet: spec.internet,
                allow_private: config.allow_private_destinations,
                timeout: Duration::from_secs(u64::from(
                    spec.seconds.min(config.max_program_seconds).max(1),
                )),
            },
        };
        Ok(Prepared {
            spec: Arc::new(spec),
            code,
            run: PreparedRun::Wasm {
                component_key,
                grants,
            },
        })
    }

    /// Which executor runs this runtime; only WebAssembly runs here so far.
    fn runtime_kind(&self, runtime: &FileRef) -> Result<RuntimeKind, ExecError> {
        let kind = match runtimes::kind_of(&runtime.reference, &self.python_runtimes) {
            Some(kind) => Some(kind),
            // A STORE of the descriptor names the WebAssembly runtime too.
            None => self
                .source
                .resolve(&runtime.reference, runtime.use_latest)
                .ok()
                .flatten()
                .filter(|file| file.sha256 == *runtimes::WASM_RUNTIME)
                .map(|_| RuntimeKind::Wasm),
        };
        match kind {
            Some(RuntimeKind::Wasm) => Ok(RuntimeKind::Wasm),
            Some(RuntimeKind::Microvm) if self.vms.is_some() => Ok(RuntimeKind::Microvm),
            Some(RuntimeKind::Microvm) => Err(ExecError::UnknownRuntime(format!(
                "{} (microVM runtimes are not enabled on this node)",
                runtime.reference
            ))),
            None => Err(ExecError::UnknownRuntime(runtime.reference.clone())),
        }
    }

    /// A file a program names, resolved and read within `max_code_bytes`.
    fn fetch(&self, file: &FileRef, role: &str) -> Result<(ResolvedFile, Vec<u8>), ExecError> {
        let io = |e: std::io::Error| ExecError::Internal(e.to_string());
        let resolved = self
            .source
            .resolve(&file.reference, file.use_latest)
            .map_err(io)?
            .ok_or_else(|| ExecError::FilesMissing(format!("{role} {}", file.reference)))?;
        let max = self.config.max_code_bytes;
        if resolved.size > max {
            return Err(ExecError::BadCode(format!(
                "{role} is {} bytes, more than this node's {max}",
                resolved.size
            )));
        }
        let bytes = match self.source.read(&resolved.sha256, max) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                return Err(ExecError::FilesMissing(format!(
                    "{role} {}",
                    resolved.sha256
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(ExecError::BadCode(format!("{role}: {e}")));
            }
            Err(e) => return Err(io(e)),
        };
        Ok((resolved, bytes))
    }

    /// A zip archive unpacked once per content hash, shared by every program using it.
    fn unpacked(&self, sha256: &str, zip: &[u8]) -> Result<PathBuf, ExecError> {
        let dir = self.root.join("unpacked").join(sha256);
        if !dir.is_dir() {
            std::fs::create_dir_all(self.root.join("unpacked"))
                .map_err(|e| ExecError::Internal(e.to_string()))?;
            bundle::unpack(zip, &dir, self.config.max_unpacked_bytes)
                .map_err(ExecError::BadCode)?;
        }
        Ok(dir)
    }

    fn read_only_mount(
        &self,
        file: &FileRef,
        encoding: Encoding,
        mount: &str,
        role: &str,
    ) -> Result<Preopen, ExecError> {
        let (resolved, bytes) = self.fetch(file, role)?;
        let _ = encoding;
        if !(bytes.starts_with(b"PK") || bundle::is_squashfs(&bytes)) {
            return Err(ExecError::BadCode(format!(
                "{role} {}: only zip and squashfs archives are mounted for WebAssembly programs",
                file.reference
            )));
        }
        let dir = self.unpacked(&resolved.sha256, &bytes)?;
        Ok(Preopen {
            host: dir,
            guest: mount.to_owned(),
            writable: false,
            quota: None,
        })
    }
}

/// The component's path inside a bundle: `code.entrypoint`, or `app.wasm` when the
/// entrypoint names the world rather than a file.
fn bundle_entry(entrypoint: &str) -> String {
    let entry = entrypoint.trim_start_matches('/');
    if entry.is_empty() || entry.contains(':') {
        "app.wasm".to_owned()
    } else {
        entry.to_owned()
    }
}

fn root_of(data_dir: &Path) -> PathBuf {
    data_dir.join("compute")
}

/// One HTTP request to a microVM: the body read whole (as the reference does, bounded), the
/// scope sent, the answer turned back into a response.
async fn vm_http<B>(
    handle: &VmHandle,
    slots: &Arc<tokio::sync::Semaphore>,
    seconds: u32,
    request: http::Request<B>,
    limit: u64,
    wait: Duration,
) -> Result<http::Response<HyperOutgoingBody>, VmError>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use futures::StreamExt;
    use http_body_util::BodyExt;
    let permit = tokio::time::timeout(wait, slots.clone().acquire_owned())
        .await
        .map_err(|_| VmError::Unavailable("busy".into()))?
        .map_err(|_| VmError::Unavailable("busy".into()))?;
    let (parts, body) = request.into_parts();
    // The body is forwarded as it arrives; past `limit` the exchange ends with the 413 error.
    let body = http_body_util::Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX))
        .into_data_stream()
        .map(move |chunk| chunk.map_err(|_| VmError::Config(format!("body-too-large:{limit}"))));
    let headers = parts
        .headers
        .iter()
        .map(|(name, value)| (name.as_str().as_bytes().to_vec(), value.as_bytes().to_vec()))
        .collect();
    let head = HttpScope {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query_string: parts.uri.query().unwrap_or_default().to_owned(),
        headers,
        body: Bytes::new(),
    };
    let answer = handle
        .http_stream(head, body, Duration::from_secs(u64::from(seconds.max(1))))
        .await?;
    let mut response = http::Response::builder().status(answer.status);
    for (name, value) in &answer.headers {
        // As the reference: framing and encoding headers are the node's.
        let lower = String::from_utf8_lossy(name).to_ascii_lowercase();
        if matches!(
            lower.as_str(),
            "content-length" | "transfer-encoding" | "content-encoding" | "vary" | "connection"
        ) {
            continue;
        }
        response = response.header(name.as_slice(), value.as_slice());
    }
    // The slot is held until the body is done (or dropped).
    let frames = answer.body.map(move |chunk| {
        let _held = &permit;
        chunk.map(http_body::Frame::data).map_err(|e| {
            wasmtime_wasi_http::p2::bindings::http::types::ErrorCode::InternalError(Some(
                e.to_string(),
            ))
            .into()
        })
    });
    let body = http_body_util::StreamBody::new(frames).boxed_unsync();
    response
        .body(body)
        .map_err(|e| VmError::ProgramError(format!("the program's answer is not valid HTTP: {e}")))
}

fn vm_failure(error: VmError, seconds: u32) -> ExecError {
    match error {
        VmError::Timeout => ExecError::Timeout(seconds),
        VmError::Unavailable(reason) if reason == "busy" => ExecError::Busy,
        VmError::Config(reason) if reason.starts_with("body-too-large:") => {
            ExecError::BodyTooLarge(reason["body-too-large:".len()..].parse().unwrap_or(0))
        }
        VmError::ProgramError(_) => ExecError::Crashed("the program raised an exception".into()),
        VmError::Crashed(e) => ExecError::Crashed(format!("the program's VM stopped: {e}")),
        other => ExecError::Internal(other.to_string()),
    }
}
