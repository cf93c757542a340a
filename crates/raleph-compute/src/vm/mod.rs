//! MicroVM programs: reference-style Python (ASGI) programs in QEMU microVMs. See
//! `runtimes/python/PROTOCOL.md` for the guest side.
//!
//! [`VmExecutor`] owns the runtime artifacts and the template snapshots; [`VmExecutor::start`]
//! restores a template (cold boots when that fails), pushes the program's config and returns a
//! [`VmHandle`] that answers HTTP and `aleph.message` scopes over the control channel. After its
//! first answer a program's own VM is saved in the background (`snapshot`); the next `start` of
//! the same program restores that, already configured.
//!
//! Map: `accel` picks KVM or TCG; `cmdline` writes QEMU's argv; `frame` and `proto` are the
//! framed msgpack transport, `channel` runs it over the control socket; `qmp` talks to QEMU;
//! `process` owns the QEMU process; `boot` brings a VM to its hello; `template` keeps the
//! template snapshots, `snapshot` the programs' own; `handle` is one program's VM.

mod accel;
mod boot;
mod channel;
mod cmdline;
mod frame;
mod handle;
mod process;
mod proto;
mod qmp;
mod snapshot;
mod template;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

pub use accel::Accel;
pub use channel::{MAX_IN_FLIGHT, MAX_QUEUED_BYTES, STREAM_BUFFER_CHUNKS, STREAM_STALL};
pub use frame::{MAX_FRAME_FROM_GUEST, MAX_FRAME_TO_GUEST};
pub use handle::{BODY_CHUNK_BYTES, BodyStream, HttpStream, MAX_EXCHANGE, StartupInfo, VmHandle};
pub use proto::MAX_HEADERS;
pub use snapshot::MAX_PROGRAM_SNAPSHOTS;
pub use template::TemplateInfo;

use cmdline::QemuCommand;
use snapshot::ProgramSnapshots;
use template::{Shape, Templates};

/// Where the runtime is and how VMs are run.
#[derive(Debug, Clone)]
pub struct VmConfig {
    /// `vmlinuz`, `initrd.gz`, `rootfs.squashfs`, `manifest.json` (from
    /// `scripts/build-python-runtime.sh`).
    pub runtime_dir: PathBuf,
    /// Per-VM folders (sockets, console log), template snapshots (`templates/`) and program
    /// snapshots (`programs/`).
    pub work_dir: PathBuf,
    /// Cold boot: QEMU launch → hello.
    pub boot_timeout: Duration,
    /// QEMU binary: a path, or a name looked up on `PATH`.
    pub qemu: PathBuf,
    /// Where per-VM folders (control and QMP sockets, console log) go; default
    /// `<work_dir>/vms`. Socket paths are limited to 107 bytes, so a node whose data directory
    /// is deep puts them in a shorter place.
    pub vms_dir: Option<PathBuf>,
}

impl VmConfig {
    pub fn new(runtime_dir: impl Into<PathBuf>, work_dir: impl Into<PathBuf>) -> VmConfig {
        VmConfig {
            runtime_dir: runtime_dir.into(),
            work_dir: work_dir.into(),
            boot_timeout: Duration::from_secs(60),
            qemu: PathBuf::from("qemu-system-x86_64"),
            vms_dir: None,
        }
    }
}

/// One program to run.
pub struct VmProgram {
    pub item_hash: String,
    pub code: Vec<u8>,
    /// `zip`, `squashfs` or `plain`.
    pub encoding: String,
    pub entrypoint: String,
    /// `asgi` or `executable` (`binary`); `None`: ASGI iff the entrypoint has a `:`.
    pub interface: Option<String>,
    pub variables: Vec<(String, String)>,
    pub memory_mib: u32,
    pub vcpus: u32,
    pub internet: bool,
    /// The node's API on loopback; the guest reaches it at `http://10.0.2.100`.
    pub api_addr: Option<std::net::SocketAddr>,
    /// Receives the program's stdout and stderr, and the node's notes about its VM.
    pub log: Arc<crate::logs::ProgramLog>,
}

/// An HTTP request for the program.
#[derive(Debug, Clone)]
pub struct HttpScope {
    pub method: String,
    pub path: String,
    pub query_string: String,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: bytes::Bytes,
}

/// The program's answer.
#[derive(Debug, Clone)]
pub struct HttpAnswer {
    pub status: u16,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: bytes::Bytes,
}

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("microVMs are not available: {0}")]
    Unavailable(String),
    #[error("the VM did not boot: {0}")]
    Boot(String),
    /// The guest refused the configuration (`success: false`: import error, failed lifespan
    /// startup…), or the program cannot be configured at all (too large, too little memory).
    #[error("the program could not start: {0}")]
    Config(String),
    #[error("the VM did not answer in time")]
    Timeout,
    /// The program raised: the traceback, for the owner's log (never for HTTP callers).
    #[error("the program raised an exception: {0}")]
    ProgramError(String),
    #[error("the VM stopped: {0}")]
    Crashed(String),
}

/// Smallest guest memory the image boots with (96 MiB never reached the hello).
pub const MIN_MEMORY_MIB: u32 = 128;
/// Restore of a template → hello. Under TCG on a loaded host this is 0.3–0.4 s; beyond this the
/// restore is given up for a cold boot.
const RESTORE_TIMEOUT: Duration = Duration::from_secs(20);
/// `resume` (after a program snapshot restore) → its reply.
const RESUME_TIMEOUT: Duration = Duration::from_secs(10);
/// Config → `{"success": …}` (the guest bounds the lifespan startup to 30 s).
const CONFIG_TIMEOUT: Duration = Duration::from_secs(60);
/// Sent to the guest: bound on the lifespan startup and shutdown.
const LIFESPAN_TIMEOUT: f64 = 30.0;
const SHUTDOWN_TIMEOUT: f64 = 3.0;
/// Longest usable Unix socket path (`sun_path` is 108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Runs microVM programs. Cheap to clone; clones share the template snapshots.
#[derive(Clone)]
pub struct VmExecutor {
    inner: Arc<Inner>,
}

struct Inner {
    config: VmConfig,
    qemu: PathBuf,
    nice: Option<PathBuf>,
    /// `busybox` (its `nc`) or `socat`: slirp runs it per guest connection to the guest API.
    relay: Option<Relay>,
    accel: Accel,
    append: String,
    port_name: String,
    templates: Templates,
    /// Distinguishes the templates (and so the program snapshots) of different artifacts and
    /// accelerators.
    template_key: String,
    programs: Arc<ProgramSnapshots>,
    vms_dir: PathBuf,
    next_vm: AtomicU64,
}

#[derive(Debug, Clone)]
enum Relay {
    Busybox(PathBuf),
    Socat(PathBuf),
}

impl Relay {
    fn command(&self, addr: std::net::SocketAddr) -> String {
        match self {
            Relay::Busybox(path) => format!("{} nc {} {}", path.display(), addr.ip(), addr.port()),
            Relay::Socat(path) => match addr {
                std::net::SocketAddr::V4(a) => format!("{} - TCP4:{a}", path.display()),
                std::net::SocketAddr::V6(a) => {
                    format!("{} - TCP6:[{}]:{}", path.display(), a.ip(), a.port())
                }
            },
        }
    }
}

/// A VM's folder, removed when dropped.
pub(crate) struct WorkDir(PathBuf);

impl WorkDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const ARTIFACTS: [&str; 4] = ["vmlinuz", "initrd.gz", "rootfs.squashfs", "manifest.json"];

impl VmExecutor {
    /// Checks QEMU and the artifacts, reads the manifest, picks the accelerator.
    pub fn new(config: VmConfig) -> Result<VmExecutor, VmError> {
        let qemu = find_program(&config.qemu)
            .ok_or_else(|| VmError::Unavailable(format!("{} not found", config.qemu.display())))?;
        for name in ARTIFACTS {
            if !config.runtime_dir.join(name).is_file() {
                return Err(VmError::Unavailable(format!(
                    "{} is missing from {}",
                    name,
                    config.runtime_dir.display()
                )));
            }
        }
        let manifest: serde_json::Value = std::fs::read(config.runtime_dir.join("manifest.json"))
            .ok()
            .and_then(|data| serde_json::from_slice(&data).ok())
            .ok_or_else(|| VmError::Unavailable("manifest.json is unreadable".into()))?;
        let text = |key: &str| manifest.get(key).and_then(|v| v.as_str());
        let key = text("key").unwrap_or("unknown").to_string();
        let append = text("cmdline")
            .unwrap_or("console=ttyS0 quiet loglevel=4 panic=-1 random.trust_cpu=on tsc_early_khz={tsc_khz}")
            .replace("{tsc_khz}", &accel::host_tsc_khz().to_string());
        let port_name = text("control_port")
            .unwrap_or("org.raleph.control")
            .to_string();
        let accel = Accel::host();
        let relay = find_program(Path::new("busybox"))
            .map(Relay::Busybox)
            .or_else(|| find_program(Path::new("socat")).map(Relay::Socat));
        if relay.is_none() {
            tracing::warn!("neither busybox nor socat found: VM programs get no guest API");
        }
        let vms_dir = config
            .vms_dir
            .clone()
            .unwrap_or_else(|| config.work_dir.join("vms"));
        let templates_dir = config.work_dir.join("templates");
        let programs_dir = config.work_dir.join("programs");
        for dir in [&vms_dir, &templates_dir, &programs_dir] {
            std::fs::create_dir_all(dir).map_err(|e| {
                VmError::Unavailable(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let longest = vms_dir
            .join(format!("{}-{}", u32::MAX, u64::MAX))
            .join("ctl.sock");
        if longest.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(VmError::Unavailable(format!(
                "work_dir {} is too long for Unix socket paths",
                config.work_dir.display()
            )));
        }
        remove_stale_vm_dirs(&vms_dir);
        let prefix = format!("python-{key}-{}", accel.name());
        Ok(VmExecutor {
            inner: Arc::new(Inner {
                templates: Templates::new(templates_dir, prefix.clone()),
                template_key: prefix,
                programs: Arc::new(ProgramSnapshots::new(programs_dir, MAX_PROGRAM_SNAPSHOTS)),
                nice: find_program(Path::new("nice")),
                qemu,
                relay,
                accel,
                append,
                port_name,
                vms_dir,
                next_vm: AtomicU64::new(1),
                config,
            }),
        })
    }

    /// QEMU can be found and the artifacts are present.
    pub fn available(config: &VmConfig) -> bool {
        find_program(&config.qemu).is_some()
            && ARTIFACTS
                .iter()
                .all(|name| config.runtime_dir.join(name).is_file())
    }

    pub fn accel(&self) -> Accel {
        self.inner.accel
    }

    /// Makes the template snapshot of a shape now (otherwise made by the first `start`).
    pub async fn prepare(&self, memory_mib: u32, vcpus: u32) -> Result<TemplateInfo, VmError> {
        self.template(Shape { memory_mib, vcpus }).await
    }

    /// Starts a program's VM: restore of the program's own snapshot (made after an earlier
    /// VM of the same program answered) and `resume`; else restore of the template (a cold boot
    /// if that fails), config, `{"success": true}`.
    pub async fn start(&self, program: VmProgram) -> Result<VmHandle, VmError> {
        if program.memory_mib < MIN_MEMORY_MIB {
            return Err(VmError::Config(format!(
                "{} MiB of memory is below the {MIN_MEMORY_MIB} MiB the runtime needs",
                program.memory_mib
            )));
        }
        if program.vcpus == 0 {
            return Err(VmError::Config("vcpus must be at least 1".into()));
        }
        // Room for the rest of the config map.
        if program.code.len() > MAX_FRAME_TO_GUEST - (1 << 20) {
            return Err(VmError::Config(format!(
                "the code ({} bytes) is larger than a VM accepts ({} MiB)",
                program.code.len(),
                (MAX_FRAME_TO_GUEST >> 20) - 1
            )));
        }
        let start = Instant::now();
        let key = snapshot::program_key(&program, &self.inner.template_key);
        if let Some(path) = self.inner.programs.lookup(&key) {
            match self.restore_program(&path, &program, start).await {
                Ok(handle) => return Ok(handle),
                Err(e) => {
                    tracing::warn!(error = %e, path = %path.display(), "program snapshot restore failed: discarded");
                    self.inner.programs.discard(&key);
                }
            }
        }
        let shape = Shape {
            memory_mib: program.memory_mib,
            vcpus: program.vcpus,
        };
        let mut restored = None;
        match self.template(shape).await {
            Ok(template) => {
                let dir = self.inner.new_vm_dir()?;
                let mut command = self.inner.command(&dir, &program);
                command.incoming = Some(template.path.clone());
                match boot::restore(&command, Some(program.log.clone()), RESTORE_TIMEOUT).await {
                    Ok(booted) if booted.state == "waiting_config" => {
                        restored = Some((dir, booted))
                    }
                    Ok(booted) => {
                        let why = format!("restored VM said hello in state {:?}", booted.state);
                        tracing::warn!(%why, "template restore failed: cold boot");
                        self.inner.templates.discard(shape, why).await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "template restore failed: cold boot");
                        self.inner.templates.discard(shape, e.to_string()).await;
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "no VM template: cold boot"),
        }
        let was_restored = restored.is_some();
        let (dir, booted) = match restored {
            Some(restored) => restored,
            None => {
                let dir = self.inner.new_vm_dir()?;
                let command = self.inner.command(&dir, &program);
                let booted = boot::cold_boot(
                    &command,
                    Some(program.log.clone()),
                    self.inner.config.boot_timeout,
                )
                .await?;
                if booted.state != "waiting_config" {
                    return Err(VmError::Boot(format!(
                        "the VM said hello in state {:?}",
                        booted.state
                    )));
                }
                (dir, booted)
            }
        };
        let plan = handle::SnapshotPlan {
            store: self.inner.programs.clone(),
            key,
        };
        handle::VmHandle::configure(
            dir,
            booted,
            program,
            was_restored,
            Some(plan),
            start,
            CONFIG_TIMEOUT,
        )
        .await
    }

    /// Restore of a program snapshot → hello in state `ready` (for this program) → `resume`.
    async fn restore_program(
        &self,
        path: &Path,
        program: &VmProgram,
        start: Instant,
    ) -> Result<VmHandle, VmError> {
        let dir = self.inner.new_vm_dir()?;
        let mut command = self.inner.command(&dir, program);
        command.incoming = Some(path.to_path_buf());
        let booted = boot::restore(&command, Some(program.log.clone()), RESTORE_TIMEOUT).await?;
        if booted.state != "ready" {
            return Err(VmError::Boot(format!(
                "restored program VM said hello in state {:?}",
                booted.state
            )));
        }
        handle::VmHandle::resume(dir, booted, program, start, RESUME_TIMEOUT).await
    }

    async fn template(&self, shape: Shape) -> Result<TemplateInfo, VmError> {
        let inner = &self.inner;
        inner
            .templates
            .get(
                shape,
                || {
                    let dir = inner.new_vm_dir()?;
                    let command = inner.command_for(dir.path(), shape, false, None);
                    Ok((dir, command))
                },
                inner.config.boot_timeout,
            )
            .await
    }
}

impl Inner {
    fn new_vm_dir(&self) -> Result<WorkDir, VmError> {
        let n = self.next_vm.fetch_add(1, Ordering::Relaxed);
        let path = self.vms_dir.join(format!("{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .map_err(|e| VmError::Unavailable(format!("cannot create {}: {e}", path.display())))?;
        Ok(WorkDir(path))
    }

    fn command(&self, dir: &WorkDir, program: &VmProgram) -> QemuCommand {
        let shape = Shape {
            memory_mib: program.memory_mib,
            vcpus: program.vcpus,
        };
        let relay = match (&self.relay, program.api_addr) {
            (Some(relay), Some(addr)) => Some(relay.command(addr)),
            _ => None,
        };
        self.command_for(dir.path(), shape, program.internet, relay)
    }

    fn command_for(
        &self,
        dir: &Path,
        shape: Shape,
        internet: bool,
        guest_api_relay: Option<String>,
    ) -> QemuCommand {
        let runtime = &self.config.runtime_dir;
        QemuCommand {
            nice: self.nice.clone(),
            qemu: self.qemu.clone(),
            accel: self.accel,
            memory_mib: shape.memory_mib,
            vcpus: shape.vcpus,
            kernel: runtime.join("vmlinuz"),
            initrd: runtime.join("initrd.gz"),
            rootfs: runtime.join("rootfs.squashfs"),
            append: self.append.clone(),
            port_name: self.port_name.clone(),
            dir: dir.to_path_buf(),
            internet,
            guest_api_relay,
            incoming: None,
        }
    }
}

/// A program given as a path, or looked up on `PATH`.
fn find_program(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return program.is_file().then(|| program.to_path_buf());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Folders of VMs whose node process is gone (named `<pid>-<n>`).
fn remove_stale_vm_dirs(vms_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(vms_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.split('-').next()) else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_commands() {
        let v4: std::net::SocketAddr = "127.0.0.1:4024".parse().unwrap();
        let v6: std::net::SocketAddr = "[::1]:4024".parse().unwrap();
        assert_eq!(
            Relay::Busybox("/bin/busybox".into()).command(v4),
            "/bin/busybox nc 127.0.0.1 4024"
        );
        assert_eq!(
            Relay::Socat("/usr/bin/socat".into()).command(v4),
            "/usr/bin/socat - TCP4:127.0.0.1:4024"
        );
        assert_eq!(
            Relay::Socat("/usr/bin/socat".into()).command(v6),
            "/usr/bin/socat - TCP6:[::1]:4024"
        );
    }

    #[test]
    fn unavailable_without_artifacts() {
        let dir = tempfile::tempdir().unwrap();
        let config = VmConfig::new(dir.path().join("none"), dir.path().join("work"));
        assert!(!VmExecutor::available(&config));
        assert!(matches!(
            VmExecutor::new(config),
            Err(VmError::Unavailable(_))
        ));
        let mut config = VmConfig::new(dir.path(), dir.path().join("work"));
        config.qemu = dir.path().join("no-such-qemu");
        assert!(!VmExecutor::available(&config));
    }
}
