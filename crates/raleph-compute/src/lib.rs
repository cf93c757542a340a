//! Compute: PROGRAM messages that run.
//!
//! A PROGRAM names its code, a runtime and its limits; this crate turns that into something
//! that answers HTTP. WebAssembly components (`wasi:http/proxy`) run in-process on wasmtime,
//! compiled once when the PROGRAM is seen and cached on disk, instantiated fresh for every
//! request. The node (the binary) gives compute a [`ProgramSource`] to read programs and
//! files, forwards the pipeline's events ([`Compute::on_processed`], [`Compute::on_forgotten`])
//! and mounts [`http::router`].
//!
//! Map: `spec` reads a PROGRAM; `runtimes` names what runs it; `programs` keeps the loaded
//! programs within the node's limits; `index` follows updates and triggers; `wasm` executes;
//! `bundle` unpacks zip code; `logs` keeps what programs print; `triggers` journals `on.message` deliveries; `http` is the front door.

mod bundle;
mod config;
pub mod control;
pub mod http;
mod index;
pub mod logs;
mod programs;
pub mod runtimes;
mod source;
pub mod spec;
mod triggers;
pub mod vm;
pub mod wasm;

pub use config::ComputeConfig;
pub use programs::{Compute, ProcessedMessage};
pub use source::{ProgramSource, ResolvedFile, StoredProgram};

/// Why a program did not answer. Each maps to one HTTP status; details meant for the owner
/// go to the program's log, never to the caller.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("program not found")]
    NotFound,
    #[error("this program does not answer HTTP requests (on.http is false)")]
    NotHttp,
    #[error("runtime {0} is not available on this node")]
    UnknownRuntime(String),
    #[error("the program's files are not on this node yet: {0}")]
    FilesMissing(String),
    #[error("the program's code cannot run: {0}")]
    BadCode(String),
    #[error("insufficient capacity: {0}")]
    Capacity(String),
    #[error("the program is busy: every one of its vcpus is answering")]
    Busy,
    #[error("the request body is larger than this node passes to programs ({0} bytes)")]
    BodyTooLarge(u64),
    #[error("program did not respond within resources.seconds ({0} s)")]
    Timeout(u32),
    #[error("the program failed")]
    Crashed(String),
    #[error("compute is disabled on this node")]
    Disabled,
    #[error("internal error")]
    Internal(String),
}

impl ExecError {
    pub fn status(&self) -> u16 {
        match self {
            ExecError::NotFound | ExecError::NotHttp => 404,
            ExecError::BodyTooLarge(_) => 413,
            ExecError::BadCode(_) => 502,
            ExecError::UnknownRuntime(_)
            | ExecError::FilesMissing(_)
            | ExecError::Capacity(_)
            | ExecError::Busy
            | ExecError::Disabled => 503,
            ExecError::Timeout(_) => 504,
            ExecError::Crashed(_) | ExecError::Internal(_) => 500,
        }
    }
}

/// Seconds since the epoch.
pub(crate) fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
