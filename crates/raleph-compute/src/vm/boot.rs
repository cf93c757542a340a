//! Bringing a VM to its hello: a cold boot, or a restore of a template snapshot
//! (PROTOCOL.md §5 host rules, §10 per-program steps). Each step has a deadline; on any
//! failure the QEMU process is dropped, which kills it.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::VmError;
use super::channel::{Channel, Event};
use super::cmdline::{QemuCommand, ctl_socket, qmp_socket};
use super::process::{Qemu, wait_for_path};
use super::proto;
use super::qmp::Qmp;
use crate::logs::ProgramLog;

pub struct Booted {
    pub qemu: Qemu,
    pub channel: Channel,
    /// The state the hello announced.
    pub state: String,
    /// QEMU launch → hello.
    pub to_hello: Duration,
}

pub async fn cold_boot(
    command: &QemuCommand,
    log: Option<Arc<ProgramLog>>,
    timeout: Duration,
) -> Result<Booted, VmError> {
    let start = Instant::now();
    let deadline = start + timeout;
    let qemu = Qemu::spawn(command)?;
    let ctl = ctl_socket(&command.dir);
    wait_for_path(&qemu, &ctl, deadline).await?;
    let channel = Channel::connect(&ctl, log, deadline).await?;
    channel.send(proto::hello(), deadline).await?;
    let state = wait_hello(&qemu, &channel, deadline, timeout).await?;
    Ok(Booted {
        qemu,
        channel,
        state,
        to_hello: start.elapsed(),
    })
}

/// `command.incoming` names the snapshot.
pub async fn restore(
    command: &QemuCommand,
    log: Option<Arc<ProgramLog>>,
    timeout: Duration,
) -> Result<Booted, VmError> {
    let start = Instant::now();
    let deadline = start + timeout;
    let qemu = Qemu::spawn(command)?;
    let boot = |e: String| VmError::Boot(format!("restore: {e}{}", qemu.diagnostics()));
    wait_for_path(&qemu, &qmp_socket(&command.dir), deadline).await?;
    let mut qmp = Qmp::connect(&qmp_socket(&command.dir), deadline)
        .await
        .map_err(boot)?;
    // The template was saved stopped, so the restored VM waits paused once loaded.
    qmp.wait_status(&["paused", "running"], deadline)
        .await
        .map_err(boot)?;
    let ctl = ctl_socket(&command.dir);
    let channel = Channel::connect(&ctl, log, deadline).await?;
    channel.send(proto::hello(), deadline).await?;
    qmp.execute("cont", None, deadline).await.map_err(boot)?;
    drop(qmp);
    let state = wait_hello(&qemu, &channel, deadline, timeout).await?;
    Ok(Booted {
        qemu,
        channel,
        state,
        to_hello: start.elapsed(),
    })
}

async fn wait_hello(
    qemu: &Qemu,
    channel: &Channel,
    deadline: Instant,
    timeout: Duration,
) -> Result<String, VmError> {
    loop {
        match channel.next_event(deadline).await {
            Ok(Event::Hello(state)) => return Ok(state),
            Ok(Event::Config(_)) => continue,
            Err(VmError::Timeout) => {
                return Err(VmError::Boot(format!(
                    "no hello within {} s{}",
                    timeout.as_secs(),
                    qemu.diagnostics()
                )));
            }
            Err(e) => {
                // Give the watcher a moment to reap QEMU, for a useful message.
                let _ = qemu
                    .wait_exit(Instant::now() + Duration::from_millis(200))
                    .await;
                let status = qemu
                    .exit_status()
                    .map(|s| format!(" (QEMU exited: {s})"))
                    .unwrap_or_default();
                return Err(VmError::Boot(format!("{e}{status}{}", qemu.diagnostics())));
            }
        }
    }
}
