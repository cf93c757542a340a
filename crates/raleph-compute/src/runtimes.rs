//! The runtimes a node offers, and how a PROGRAM's `runtime.ref` names one.
//!
//! A runtime ref is normally the item hash of a STORE'd root filesystem. The WebAssembly
//! runtime has no filesystem: its ref is the sha256 of a small descriptor (below), used either
//! directly or through a STORE of the descriptor's bytes. Python (microVM) runtimes are known by
//! their refs, by default the published SDK's default runtime.

use std::sync::LazyLock;

use serde::Serialize;

/// The descriptor whose sha256 names the WebAssembly runtime: components exporting
/// `wasi:http/incoming-handler` (the `wasi:http/proxy` world, WASI 0.2), run by wasmtime.
pub const WASM_DESCRIPTOR: &str =
    r#"{"abi":"wasi:http/proxy@0.2","engine":"wasmtime","kind":"wasm"}"#;

/// The runtime ref of WebAssembly programs: sha256 of [`WASM_DESCRIPTOR`].
pub static WASM_RUNTIME: LazyLock<String> =
    LazyLock::new(|| raleph_message::sha256_hex(WASM_DESCRIPTOR.as_bytes()));

/// The runtime the published Python SDK and CLI put in every PROGRAM by default
/// (`aleph program upload`): "Aleph Debian 12 Python".
pub const SDK_DEFAULT_RUNTIME: &str =
    "63f07193e6ee9d207b7d1fcf8286f9aee34e6f12f101d2ec77c1229f92964696";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// A WebAssembly component, run in-process by wasmtime.
    Wasm,
    /// A Linux root filesystem with Python, run in a QEMU microVM.
    Microvm,
}

/// One line of `GET /api/v0/runtimes`.
#[derive(Debug, Clone, Serialize)]
pub struct RuntimeInfo {
    #[serde(rename = "ref")]
    pub reference: String,
    pub kind: RuntimeKind,
    pub description: String,
    /// Whether this node can run it now (a microVM runtime needs QEMU and its image).
    pub available: bool,
}

/// Which runtime a ref names, if this node knows it without reading a file.
pub fn kind_of(reference: &str, python_runtimes: &[String]) -> Option<RuntimeKind> {
    if reference == WASM_RUNTIME.as_str() {
        Some(RuntimeKind::Wasm)
    } else if python_runtimes.iter().any(|r| r == reference) {
        Some(RuntimeKind::Microvm)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wasm_runtime_ref_is_the_descriptor_hash() {
        // Documented in the README: changing the descriptor changes every deployed ref.
        assert_eq!(
            WASM_RUNTIME.as_str(),
            raleph_message::sha256_hex(WASM_DESCRIPTOR.as_bytes())
        );
        assert_eq!(
            WASM_RUNTIME.as_str(),
            "417776c2f04d5ec9bf02a79a9cb7092fb33c2521d4aaf1bba6bcd806b016286b"
        );
        assert_eq!(kind_of(&WASM_RUNTIME, &[]), Some(RuntimeKind::Wasm));
        let python = vec![SDK_DEFAULT_RUNTIME.to_owned()];
        assert_eq!(
            kind_of(SDK_DEFAULT_RUNTIME, &python),
            Some(RuntimeKind::Microvm)
        );
        assert_eq!(kind_of(SDK_DEFAULT_RUNTIME, &[]), None);
    }
}
