//! `[compute]`: every limit of the program executors, with its default.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ComputeConfig {
    /// Run programs at all; when false `/vm/...` answers 503 and nothing is compiled.
    pub enabled: bool,
    /// Most programs loaded (compiled code in memory, ready to instantiate) at once. Past it
    /// the least recently used idle program is unloaded; if every one is busy, 503.
    pub max_programs: usize,
    /// Most memory promised to loaded programs, in MiB: the sum over them of
    /// `resources.memory × resources.vcpus` (each may run `vcpus` requests at once).
    pub max_total_memory_mib: u64,
    /// The largest `resources.memory` (MiB) a program may ask for on this node.
    pub max_program_memory_mib: u32,
    /// The largest `resources.vcpus` honoured: a program runs at most this many requests at once.
    pub max_program_vcpus: u32,
    /// The largest `resources.seconds` honoured per request.
    pub max_program_seconds: u32,
    /// Instances (requests in flight) the engine's pool holds, over all programs.
    pub max_instances: u32,
    /// A loaded program that answered nothing for this long is unloaded.
    pub idle_timeout_secs: f64,
    /// How long a request waits for one of its program's `vcpus` slots before 503.
    pub queue_wait_ms: u64,
    /// Largest code (component or bundle) fetched and compiled.
    pub max_code_bytes: u64,
    /// Largest unpacked size of a zip bundle or data archive.
    pub max_unpacked_bytes: u64,
    /// Largest request body passed to a program; past it the program reads an error.
    pub max_request_body_bytes: u64,
    /// Most bytes of stdout/stderr kept per program for its owner (the oldest are dropped).
    pub max_log_bytes: usize,
    /// The authority under which a program reads the node's API without internet access,
    /// e.g. `http://aleph.api/api/v0/messages.json`.
    pub guest_api_authority: String,
    /// Largest answer a program reads from the node's API at that authority, bytes; past
    /// it the program reads `{"error":"answer too large"}` (with the answer's status).
    pub max_guest_api_answer_bytes: usize,
    /// Largest request body a program may send to the node's API at that authority, bytes
    /// (its requests are reads, so rarely have one); past it the request fails in the
    /// program. Held in memory while the request is served.
    pub max_guest_api_request_bytes: usize,
    /// Largest request body the compute node API (`/control/...`) reads, bytes: its
    /// requests are small notices (`{"instance": hash}`). From 1 KiB to 1 MiB.
    pub max_control_body_bytes: usize,
    /// Most elements a WebAssembly table (function references) may grow to, per table;
    /// past it the growth fails in the program. From 1 000 to 10 000 000.
    pub max_table_elements: usize,
    /// Programs with `environment.internet` may reach loopback, private and link-local
    /// addresses (tests); off, only public addresses.
    pub allow_private_destinations: bool,
    /// Largest persistent volume (`size_mib`) granted on this node.
    pub max_persistent_volume_mib: u64,
    /// Times a failed `on.message` delivery is retried.
    pub trigger_retries: u32,
    /// Most trigger deliveries waiting at once; past it new ones are dropped and counted.
    pub max_pending_triggers: usize,
    /// Most bytes of messages waiting for trigger deliveries (in memory and in the journal).
    pub max_pending_trigger_bytes: usize,
    /// The domain the owners' signed operations must name (the reference's `DOMAIN_NAME`), e.g.
    /// `node.example.org`; empty: the request's own host name (`Host`, or
    /// `X-Forwarded-Host` behind a proxy), which does not stop an operation signed for another
    /// node from being replayed here within its two minutes.
    pub domain: String,
    /// Runtime refs run as Python microVMs; by default the published SDK's default runtime,
    /// so that `aleph program upload` works unchanged.
    pub python_runtimes: Vec<String>,
    /// The Python runtime's kernel, initrd and root filesystem, as built by
    /// `scripts/build-python-runtime.sh`; empty: microVM programs are not run (503).
    pub python_runtime_dir: std::path::PathBuf,
    /// Most microVMs running at once (each holds its `resources.memory`, at least 128 MiB).
    pub max_vms: usize,
    /// The largest `resources.memory` (MiB) of a microVM program (the published CLI's smallest
    /// tier asks for 2 048). Guest memory is taken from the host as the guest touches it.
    pub max_vm_memory_mib: u32,
    /// Longest a microVM may take from launch to ready for its program.
    pub vm_boot_timeout_secs: f64,
}

impl Default for ComputeConfig {
    fn default() -> Self {
        ComputeConfig {
            enabled: true,
            max_programs: 256,
            max_total_memory_mib: 8 * 1024,
            max_program_memory_mib: 1024,
            max_program_vcpus: 8,
            max_program_seconds: 300,
            max_instances: 1000,
            idle_timeout_secs: 600.0,
            queue_wait_ms: 1000,
            max_code_bytes: 64 << 20,
            max_unpacked_bytes: 256 << 20,
            max_request_body_bytes: 10 << 20,
            max_log_bytes: 64 << 10,
            guest_api_authority: "aleph.api".to_owned(),
            max_guest_api_answer_bytes: 64 << 20,
            max_guest_api_request_bytes: 1 << 20,
            max_control_body_bytes: 16 << 10,
            max_table_elements: 100_000,
            allow_private_destinations: false,
            max_persistent_volume_mib: 1024,
            trigger_retries: 3,
            max_pending_triggers: 10_000,
            max_pending_trigger_bytes: 64 << 20,
            domain: String::new(),
            python_runtimes: vec![crate::runtimes::SDK_DEFAULT_RUNTIME.to_owned()],
            python_runtime_dir: std::path::PathBuf::new(),
            max_vms: 2,
            max_vm_memory_mib: 2048,
            vm_boot_timeout_secs: 60.0,
        }
    }
}
