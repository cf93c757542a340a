//! Template snapshots: a VM booted to "waiting for config" and saved to a file (PROTOCOL.md
//! §10), one per memory size × vCPU count, made on first need and restored for every program
//! of that shape. A template that fails (to be made or restored) is not retried for
//! [`RETRY_AFTER`]; programs cold boot meanwhile.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use super::boot;
use super::cmdline::{QemuCommand, migrate_to, qmp_socket};
use super::qmp::Qmp;
use super::{VmError, WorkDir};

/// How long a failed template is left alone.
pub const RETRY_AFTER: Duration = Duration::from_secs(600);
/// Pause + migration to the file + quit.
const SAVE_TIMEOUT: Duration = Duration::from_secs(60);

/// A saved template.
#[derive(Debug, Clone)]
pub struct TemplateInfo {
    pub path: PathBuf,
    pub size_bytes: u64,
    /// Launch → hello → saved.
    pub took: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    pub memory_mib: u32,
    pub vcpus: u32,
}

enum Slot {
    Empty,
    Ready(TemplateInfo),
    Failed(Instant, String),
}

pub struct Templates {
    dir: PathBuf,
    /// Distinguishes templates of different artifacts and accelerators.
    prefix: String,
    slots: Mutex<HashMap<Shape, Arc<tokio::sync::Mutex<Slot>>>>,
}

impl Templates {
    pub fn new(dir: PathBuf, prefix: String) -> Templates {
        Templates {
            dir,
            prefix,
            slots: Mutex::new(HashMap::new()),
        }
    }

    pub fn path(&self, shape: Shape) -> PathBuf {
        self.dir.join(format!(
            "{}-m{}-c{}.state",
            self.prefix, shape.memory_mib, shape.vcpus
        ))
    }

    fn slot(&self, shape: Shape) -> Arc<tokio::sync::Mutex<Slot>> {
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(shape)
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(Slot::Empty)))
            .clone()
    }

    /// The template of `shape`, made with `boot_command` (a cold-boot command line, with the
    /// VM folder it uses, removed afterwards) when missing. Callers for one shape wait for a single making.
    pub async fn get(
        &self,
        shape: Shape,
        boot_command: impl FnOnce() -> Result<(WorkDir, QemuCommand), VmError>,
        boot_timeout: Duration,
    ) -> Result<TemplateInfo, VmError> {
        let slot = self.slot(shape);
        let mut slot = slot.lock().await;
        match &*slot {
            Slot::Ready(info) if info.path.exists() => return Ok(info.clone()),
            Slot::Failed(at, why) if at.elapsed() < RETRY_AFTER => {
                return Err(VmError::Boot(format!("template unavailable: {why}")));
            }
            _ => {}
        }
        let result = match boot_command() {
            Ok((_dir, command)) => make(&command, &self.path(shape), boot_timeout).await,
            Err(e) => Err(e),
        };
        *slot = match &result {
            Ok(info) => Slot::Ready(info.clone()),
            Err(e) => Slot::Failed(Instant::now(), e.to_string()),
        };
        result
    }

    /// After a failed restore: forget the file, and make a new one only after [`RETRY_AFTER`].
    pub async fn discard(&self, shape: Shape, why: String) {
        let slot = self.slot(shape);
        let mut slot = slot.lock().await;
        let _ = std::fs::remove_file(self.path(shape));
        *slot = Slot::Failed(Instant::now(), why);
    }
}

/// Cold boot → hello (waiting_config) → leave the control channel → QMP stop, migrate to a
/// temporary file, quit → rename into place.
async fn make(
    command: &QemuCommand,
    path: &Path,
    boot_timeout: Duration,
) -> Result<TemplateInfo, VmError> {
    let start = Instant::now();
    let booted = boot::cold_boot(command, None, boot_timeout).await?;
    if booted.state != "waiting_config" {
        return Err(VmError::Boot(format!(
            "template VM said hello in state {:?}",
            booted.state
        )));
    }
    // The template is saved with the host disconnected, and the restores start clean.
    booted.channel.shutdown();
    static MADE: AtomicU64 = AtomicU64::new(0);
    let tmp = path.with_extension(format!(
        "tmp-{}-{}",
        std::process::id(),
        MADE.fetch_add(1, Ordering::Relaxed)
    ));
    let saved = save(&booted.qemu, &command.dir, &tmp).await;
    booted.qemu.kill_and_wait().await;
    drop(booted);
    if let Err(e) = saved {
        let _ = std::fs::remove_file(&tmp);
        return Err(VmError::Boot(format!("template snapshot: {e}")));
    }
    std::fs::rename(&tmp, path)
        .map_err(|e| VmError::Boot(format!("template snapshot: rename: {e}")))?;
    let size_bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let info = TemplateInfo {
        path: path.to_path_buf(),
        size_bytes,
        took: start.elapsed(),
    };
    tracing::info!(path = %path.display(), size_bytes, took = ?info.took, "VM template saved");
    Ok(info)
}

async fn save(qemu: &super::process::Qemu, dir: &Path, file: &Path) -> Result<(), String> {
    let deadline = Instant::now() + SAVE_TIMEOUT;
    let mut qmp = Qmp::connect(&qmp_socket(dir), deadline).await?;
    qmp.execute("stop", None, deadline).await?;
    qmp.execute(
        "migrate",
        Some(json!({ "uri": migrate_to(file) })),
        deadline,
    )
    .await?;
    loop {
        let info = qmp.execute("query-migrate", None, deadline).await?;
        match info.get("status").and_then(|s| s.as_str()).unwrap_or("") {
            "completed" => break,
            "failed" | "cancelled" => return Err(format!("migration {info}")),
            _ if Instant::now() >= deadline => return Err(format!("migration too slow: {info}")),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    // QEMU exits on quit; the answer may not make it out.
    let _ = qmp
        .execute("quit", None, Instant::now() + Duration::from_secs(5))
        .await;
    if !qemu
        .wait_exit(Instant::now() + Duration::from_secs(10))
        .await
    {
        tracing::warn!("template QEMU did not quit: killed");
    }
    Ok(())
}
