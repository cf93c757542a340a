//! The wasmtime engine: one per node, with epoch interruption driven by a ticker thread, the
//! pooling allocator sized by `[compute]`, and compiled components cached on disk.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::ComputeConfig;

/// How often the epoch advances: the grain of `resources.seconds`, and how often a busy
/// program yields its thread to other tasks.
pub const TICK: Duration = Duration::from_millis(10);

pub struct WasmEngine {
    engine: Engine,
    cache_dir: PathBuf,
    /// Part of every cache key: compiled code from another wasmtime or another configuration
    /// is never loaded.
    engine_key: String,
    stop_ticker: Arc<AtomicBool>,
    /// One compilation at a time: the background queue and a request that came first may
    /// both want the same code, and each compilation takes the cores for a while anyway.
    compiling: std::sync::Mutex<()>,
}

impl WasmEngine {
    pub fn new(config: &ComputeConfig, cache_dir: &Path) -> anyhow::Result<WasmEngine> {
        let mut wasm = Config::new();
        wasm.epoch_interruption(true);
        let mut pool = PoolingAllocationConfig::new();
        let slots = config.max_instances.max(1);
        pool.total_component_instances(slots)
            .total_core_instances(slots.saturating_mul(8))
            .total_memories(slots.saturating_mul(2))
            .total_tables(slots.saturating_mul(4))
            .total_stacks(slots)
            .max_memory_size((config.max_program_memory_mib as usize) << 20);
        wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wasm)
            .map_err(|e| anyhow::anyhow!("start the WebAssembly engine: {e:#}"))?;
        std::fs::create_dir_all(cache_dir)
            .with_context(|| format!("create {}", cache_dir.display()))?;
        let mut hasher = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
        let engine_key = format!("{:016x}", std::hash::Hasher::finish(&hasher));
        let stop_ticker = Arc::new(AtomicBool::new(false));
        let ticking = engine.weak();
        let stop = stop_ticker.clone();
        std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    match ticking.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => return,
                    }
                }
            })
            .context("start the epoch thread")?;
        Ok(WasmEngine {
            engine,
            cache_dir: cache_dir.to_owned(),
            engine_key,
            stop_ticker,
            compiling: std::sync::Mutex::new(()),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Where the compiled form of code with this sha256 is kept.
    fn cached_path(&self, code_sha256: &str) -> PathBuf {
        self.cache_dir
            .join(format!("{code_sha256}-{}.cwasm", self.engine_key))
    }

    /// Whether code with this sha256 is compiled already.
    pub fn is_compiled(&self, code_sha256: &str) -> bool {
        self.cached_path(code_sha256).is_file()
    }

    /// Compiles a component (blocking, CPU-bound: seconds for a large one) into the cache.
    pub fn compile(&self, code_sha256: &str, wasm: &[u8]) -> anyhow::Result<()> {
        let path = self.cached_path(code_sha256);
        if path.is_file() {
            return Ok(());
        }
        let _one_at_a_time = self
            .compiling
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Compiled meanwhile by whoever held the lock.
        if path.is_file() {
            return Ok(());
        }
        let compiled = self.engine.precompile_component(wasm).map_err(|e| {
            anyhow::anyhow!("not a WebAssembly component this node can compile: {e:#}")
        })?;
        // Written under a temporary name and renamed: a crash never leaves half a file
        // that would later be loaded as code.
        let partial = path.with_extension(format!("part{}", std::process::id()));
        std::fs::write(&partial, &compiled)
            .with_context(|| format!("write {}", partial.display()))?;
        std::fs::rename(&partial, &path).with_context(|| format!("write {}", path.display()))?;
        Ok(())
    }

    /// Loads compiled code from the cache (about a millisecond).
    pub fn load(&self, code_sha256: &str) -> anyhow::Result<Component> {
        let path = self.cached_path(code_sha256);
        load_compiled(&self.engine, &path)
    }
}

/// Only files this node wrote into its own cache are loaded: compiled code is machine code,
/// and is trusted as such.
#[allow(unsafe_code)]
fn load_compiled(engine: &Engine, path: &Path) -> anyhow::Result<Component> {
    // SAFETY: the file was produced by `precompile_component` of an engine with the same
    // compatibility hash (part of its name), written atomically into a directory only this
    // node writes; wasmtime additionally checks its header and engine settings.
    unsafe { Component::deserialize_file(engine, path) }
        .map_err(|e| anyhow::anyhow!("load compiled code {}: {e:#}", path.display()))
}

impl Drop for WasmEngine {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}
