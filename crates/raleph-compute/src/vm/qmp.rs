//! A minimal QMP client (JSON lines on QEMU's `-qmp` Unix socket): enough to pause, save and
//! resume a VM. Every call has a deadline.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::{Instant, timeout_at};

/// Longest QMP line read (answers here are small).
const MAX_LINE: u64 = 1 << 20;

pub struct Qmp {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Qmp {
    /// Connects, reads the greeting and negotiates capabilities.
    pub async fn connect(path: &Path, deadline: Instant) -> Result<Qmp, String> {
        let stream = timeout_at(deadline, UnixStream::connect(path))
            .await
            .map_err(|_| "QMP connect timed out".to_string())?
            .map_err(|e| format!("QMP connect: {e}"))?;
        let (read, writer) = stream.into_split();
        let mut qmp = Qmp {
            reader: BufReader::new(read),
            writer,
        };
        let greeting = qmp.read_message(deadline).await?;
        if greeting.get("QMP").is_none() {
            return Err(format!("unexpected QMP greeting: {greeting}"));
        }
        qmp.execute("qmp_capabilities", None, deadline).await?;
        Ok(qmp)
    }

    pub async fn execute(
        &mut self,
        command: &str,
        arguments: Option<Value>,
        deadline: Instant,
    ) -> Result<Value, String> {
        let mut request = json!({ "execute": command });
        if let Some(arguments) = arguments {
            request["arguments"] = arguments;
        }
        let mut line = request.to_string();
        line.push('\n');
        timeout_at(deadline, self.writer.write_all(line.as_bytes()))
            .await
            .map_err(|_| format!("QMP {command}: timed out"))?
            .map_err(|e| format!("QMP {command}: {e}"))?;
        loop {
            let message = self.read_message(deadline).await?;
            if let Some(value) = message.get("return") {
                return Ok(value.clone());
            }
            if let Some(error) = message.get("error") {
                return Err(format!("QMP {command}: {error}"));
            }
            // An asynchronous event: skip it.
        }
    }

    /// Polls `query-status` until the run state is one of `wanted`.
    pub async fn wait_status(&mut self, wanted: &[&str], deadline: Instant) -> Result<(), String> {
        loop {
            let status = self.execute("query-status", None, deadline).await?;
            let state = status.get("status").and_then(Value::as_str).unwrap_or("");
            if wanted.contains(&state) {
                return Ok(());
            }
            if matches!(state, "internal-error" | "shutdown" | "guest-panicked") {
                return Err(format!("VM state {state}"));
            }
            if Instant::now() >= deadline {
                return Err(format!("VM state still {state}"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn read_message(&mut self, deadline: Instant) -> Result<Value, String> {
        let mut line = String::new();
        let n = timeout_at(
            deadline,
            (&mut self.reader).take(MAX_LINE).read_line(&mut line),
        )
        .await
        .map_err(|_| "QMP: no answer in time".to_string())?
        .map_err(|e| format!("QMP read: {e}"))?;
        if n == 0 {
            return Err("QMP: connection closed".into());
        }
        serde_json::from_str(&line).map_err(|e| format!("QMP: bad answer ({e})"))
    }
}
