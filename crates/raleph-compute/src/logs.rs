//! What programs write to stdout and stderr, kept for their owner in a bounded ring per
//! program: the oldest bytes go first, and a program can never make the node hold more.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use serde::Serialize;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogEntry {
    /// Seconds since the epoch.
    pub time: f64,
    #[serde(rename = "type")]
    pub stream: Stream,
    pub message: String,
}

/// One program's log.
#[derive(Debug)]
pub struct ProgramLog {
    entries: Mutex<(VecDeque<LogEntry>, usize)>,
    max_bytes: usize,
}

impl ProgramLog {
    pub fn new(max_bytes: usize) -> Arc<ProgramLog> {
        Arc::new(ProgramLog {
            entries: Mutex::new((VecDeque::new(), 0)),
            max_bytes,
        })
    }

    /// Appends what a program wrote; a single write longer than the whole budget keeps its end.
    pub fn push(&self, stream: Stream, bytes: &[u8]) {
        if bytes.is_empty() || self.max_bytes == 0 {
            return;
        }
        let bytes = &bytes[bytes.len().saturating_sub(self.max_bytes)..];
        let message = String::from_utf8_lossy(bytes).into_owned();
        let mut guard = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let (entries, used) = &mut *guard;
        *used += message.len();
        entries.push_back(LogEntry {
            time: crate::now(),
            stream,
            message,
        });
        while *used > self.max_bytes {
            match entries.pop_front() {
                Some(old) => *used -= old.message.len(),
                None => break,
            }
        }
    }

    /// A note from the node itself (a crash, a timeout), on stderr.
    pub fn note(&self, text: &str) {
        self.push(Stream::Stderr, text.as_bytes());
    }

    pub fn entries(&self) -> Vec<LogEntry> {
        let guard = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        guard.0.iter().cloned().collect()
    }
}

/// A program's stdout or stderr, as WASI sees it.
#[derive(Clone)]
pub struct LogSink {
    pub log: Arc<ProgramLog>,
    pub stream: Stream,
}

impl IsTerminal for LogSink {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogSink {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for LogSink {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.log.push(self.stream, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_keeps_the_newest_bytes_within_its_budget() {
        let log = ProgramLog::new(10);
        log.push(Stream::Stdout, b"12345");
        log.push(Stream::Stderr, b"6789");
        log.push(Stream::Stdout, b"abc");
        let kept: Vec<_> = log.entries().into_iter().map(|e| e.message).collect();
        assert_eq!(kept, ["6789", "abc"]);
        log.push(Stream::Stdout, &[b'x'; 100]);
        let kept = log.entries();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].message.len(), 10);
    }
}
