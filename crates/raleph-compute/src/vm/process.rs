//! One QEMU process: spawned with its output in a file, watched by a task that reaps it and
//! kills it (SIGKILL to its PID) on request, on drop of the [`Qemu`], or when the runtime goes
//! away (`kill_on_drop`). Nothing here waits without a deadline.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::VmError;
use super::cmdline::{QemuCommand, serial_log, stderr_log};

pub struct Qemu {
    pid: Option<u32>,
    /// `Some(description)` once the process has exited and been reaped.
    exited: watch::Receiver<Option<String>>,
    kill: Arc<Notify>,
    dir: PathBuf,
}

impl Qemu {
    pub fn spawn(command: &QemuCommand) -> Result<Qemu, VmError> {
        let argv = command.argv();
        let out = std::fs::File::create(stderr_log(&command.dir))
            .map_err(|e| VmError::Unavailable(format!("cannot create the VM's log file: {e}")))?;
        let err = out
            .try_clone()
            .map_err(|e| VmError::Unavailable(format!("cannot create the VM's log file: {e}")))?;
        let mut child = tokio::process::Command::new(&argv[0])
            .args(&argv[1..])
            .current_dir(&command.dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| VmError::Unavailable(format!("cannot start {:?}: {e}", argv[0])))?;
        let pid = child.id();
        let (tx, exited) = watch::channel(None);
        let kill = Arc::new(Notify::new());
        let killer = kill.clone();
        tokio::spawn(async move {
            let status = tokio::select! {
                status = child.wait() => status,
                _ = killer.notified() => {
                    let _ = child.start_kill();
                    child.wait().await
                }
            };
            let text = match status {
                Ok(status) => status.to_string(),
                Err(e) => format!("wait failed: {e}"),
            };
            let _ = tx.send(Some(text));
        });
        tracing::debug!(pid, dir = %command.dir.display(), "QEMU started");
        Ok(Qemu {
            pid,
            exited,
            kill,
            dir: command.dir.clone(),
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    pub fn alive(&self) -> bool {
        self.exited.borrow().is_none()
    }

    /// How it ended, once it has.
    pub fn exit_status(&self) -> Option<String> {
        self.exited.borrow().clone()
    }

    /// A receiver that changes when the process exits.
    pub fn watch_exit(&self) -> watch::Receiver<Option<String>> {
        self.exited.clone()
    }

    /// Sends SIGKILL (through the watcher task, which owns the child).
    pub fn kill(&self) {
        self.kill.notify_one();
    }

    /// Waits until the process has exited, at most until `deadline`.
    pub async fn wait_exit(&self, deadline: Instant) -> bool {
        let mut rx = self.exited.clone();
        tokio::time::timeout_at(deadline, rx.wait_for(|s| s.is_some()))
            .await
            .is_ok()
    }

    /// SIGKILL, then wait for the reaping (bounded).
    pub async fn kill_and_wait(&self) {
        self.kill();
        let _ = self
            .wait_exit(Instant::now() + Duration::from_secs(10))
            .await;
    }

    /// The end of the serial console (the guest init's diagnostics, kernel messages): fit for
    /// the program owner's log.
    pub fn console_tail(&self) -> String {
        let tail = tail(&serial_log(&self.dir), 1500);
        if tail.trim().is_empty() {
            String::new()
        } else {
            format!("\n--- console:\n{}", tail.trim_end())
        }
    }

    /// The last lines of the serial console and of QEMU's own output, for error messages.
    pub fn diagnostics(&self) -> String {
        let mut text = String::new();
        for (name, file) in [
            ("qemu", stderr_log(&self.dir)),
            ("console", serial_log(&self.dir)),
        ] {
            let tail = tail(&file, 1500);
            if !tail.trim().is_empty() {
                text.push_str(&format!("\n--- {name}:\n{}", tail.trim_end()));
            }
        }
        text
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        if self.alive() {
            self.kill();
        }
    }
}

/// The last `max` bytes of a file, lossily decoded.
fn tail(path: &Path, max: usize) -> String {
    match std::fs::read(path) {
        Ok(data) => String::from_utf8_lossy(&data[data.len().saturating_sub(max)..]).into_owned(),
        Err(_) => String::new(),
    }
}

/// Waits for a file QEMU creates (a socket), failing early if QEMU exits.
pub async fn wait_for_path(qemu: &Qemu, path: &Path, deadline: Instant) -> Result<(), VmError> {
    loop {
        if path.exists() {
            return Ok(());
        }
        if let Some(status) = qemu.exit_status() {
            return Err(VmError::Boot(format!(
                "QEMU exited ({status}){}",
                qemu.diagnostics()
            )));
        }
        if Instant::now() >= deadline {
            return Err(VmError::Boot(format!(
                "{} did not appear{}",
                path.display(),
                qemu.diagnostics()
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
