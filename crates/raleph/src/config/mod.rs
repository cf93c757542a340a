//! The node's configuration: one model, [`NodeConfig`], filled from four layers, each
//! overriding the one before it:
//!
//! ```text
//! defaults  <  TOML file  <  environment (RALEPH_*)  <  flags
//! ```
//!
//! Every field of every section can be set in every layer:
//! - the file (`--config node.toml`, or `RALEPH_CONFIG`): top-level fields first, then
//!   `[section]` tables (`[api]`, `[api.multipart]`, `[pipeline]`, ...);
//! - the environment: `RALEPH_<FIELD>` for a top-level field (`RALEPH_DATA_DIR`,
//!   `RALEPH_DURABILITY`), `RALEPH_<SECTION>__<FIELD>` for a section's, with a double
//!   underscore between levels (`RALEPH_API__MAX_BODY_BYTES`,
//!   `RALEPH_API__MULTIPART__MAX_PARTS`); one set to nothing sets nothing. Other `RALEPH_*`
//!   variables (`RALEPH_LOG`, `RALEPH_CONFIG`, those of the scripts and tests) are not
//!   settings and are left alone;
//! - flags: the named ones (`--data-dir`, `--api-addr`, `--p2p-addr`, `--peer`, `--node-key`,
//!   `--database`, `--database-resident`) and `--set section.field=value` (repeatable).
//!
//! A value from the environment or `--set` is read as a TOML value (`5`, `1.5`, `true`,
//! `["a", "b"]`); for a string field the text is taken as it is. A layer replaces a value
//! whole: a list (`peers`) given by a flag replaces the file's. Within one layer a setting
//! given twice with different values (a named flag and `--set`; a field and its alias) is
//! refused, as is an unknown key or a bad value, naming the key and where it came from.
//!
//! A setting has one place. `[p2p] listen`, `[p2p] peers` and `[p2p] key` are other names of
//! the top-level `p2p_addr`, `peers` and `node_key` (see [`layers`]); once loaded, both show
//! the same value. What the node derives from several settings (the pipeline's grace period
//! and durability, the API's read concurrency on PostgreSQL) is computed by the methods below,
//! never patched into a section after loading.
//!
//! `raleph node --print-config` prints the result of the layers.

mod check;
mod layers;
mod text;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use raleph_db::Durability;
use serde::{Deserialize, Serialize};

pub use layers::Layers;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Where the index database and files live.
    pub data_dir: PathBuf,
    /// HTTP API address; port 0 binds a free port (the bound address is printed).
    pub api_addr: SocketAddr,
    /// Peer-to-peer address (TCP); port 0 binds a free port (the bound multiaddr is printed).
    /// Also settable as `[p2p] listen` (a multiaddr `/ip4/<ip>/tcp/<port>`).
    pub p2p_addr: SocketAddr,
    /// Peers to dial, as multiaddrs ending in `/p2p/<peer id>`. Also settable as `[p2p] peers`.
    pub peers: Vec<String>,
    /// The p2p identity key file (Ed25519, created if missing; an RSA PKCS#8 DER key such as a
    /// pyaleph node's `node-secret.pkcs8.der` is accepted); unset means `<data_dir>/node-key`.
    /// Also settable as `[p2p] key`.
    pub node_key: Option<PathBuf>,
    /// The index database: a SQLite file path (empty means `<data_dir>/index.sqlite`), or a
    /// PostgreSQL URL, `postgres://user:password@host:port/database`.
    pub database: String,
    /// PostgreSQL only: most connections the API opens for reads (the writer has its own).
    pub database_read_connections: usize,
    /// SQLite only: keep the index file's pages in memory (locked, as the file grows), so a
    /// request never waits for pages the host paged out because nobody read them lately.
    /// Costs memory the size of the file, and needs a lock limit (`ulimit -l`,
    /// `LimitMEMLOCK`) at least that large; without one the node warns and goes on. At most
    /// half of the machine's memory is locked.
    pub database_resident: bool,
    /// An acknowledged commit survives power loss (`full`: SQLite fsyncs every commit,
    /// PostgreSQL runs with `synchronous_commit = on`, the intake journal is synced before a
    /// submission is acknowledged), or only crashes of the node process (`normal`).
    pub durability: Durability,
    pub pipeline: raleph_pipeline::PipelineConfig,
    pub api: raleph_api::ApiConfig,
    pub storage: raleph_storage::StorageConfig,
    /// The libp2p layer. Its `listen`, `peers` and `key` are the top-level `p2p_addr`,
    /// `peers` and `node_key` under other names; an unset `http_base_url` is the bound API
    /// address.
    pub p2p: raleph_p2p::P2pConfig,
    /// Catching up with peers and fetching files from them.
    pub sync: crate::network::SyncConfig,
    /// Programs: their limits and runtimes.
    pub compute: raleph_compute::ComputeConfig,
    /// Blockchain anchoring: the EVM chains read (`[[anchoring.evm]]`) and, with a packing
    /// key, written.
    pub anchoring: crate::anchoring::AnchoringConfig,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            data_dir: PathBuf::from("raleph-data"),
            api_addr: SocketAddr::from(([127, 0, 0, 1], 4024)),
            p2p_addr: SocketAddr::from(([127, 0, 0, 1], 4025)),
            peers: Vec::new(),
            node_key: None,
            database: String::new(),
            database_read_connections: 16,
            database_resident: false,
            durability: Durability::Full,
            pipeline: Default::default(),
            api: Default::default(),
            storage: Default::default(),
            p2p: Default::default(),
            sync: Default::default(),
            compute: Default::default(),
            anchoring: Default::default(),
        }
    }
}

impl NodeConfig {
    /// Whether the index is a PostgreSQL database rather than a SQLite file.
    pub fn database_is_postgres(&self) -> bool {
        raleph_db::postgres::is_url(&self.database)
    }

    pub fn database_path(&self) -> PathBuf {
        if self.database.is_empty() {
            self.data_dir.join("index.sqlite")
        } else {
            PathBuf::from(&self.database)
        }
    }

    /// The identity key file: `node_key`, or `<data_dir>/node-key`.
    pub fn node_key_path(&self) -> PathBuf {
        self.node_key
            .clone()
            .unwrap_or_else(|| self.data_dir.join("node-key"))
    }

    /// The pipeline's settings, with what it takes from other sections: the grace period of
    /// unpinned files (`storage.grace_period_secs`), whether to sync the intake journal
    /// (`durability = "full"`), and the runtimes the node provides itself (`[compute]`).
    pub fn pipeline_config(&self) -> raleph_pipeline::PipelineConfig {
        raleph_pipeline::PipelineConfig {
            file_grace_period_secs: self.storage.grace_period_secs,
            durable: self.durability == Durability::Full,
            provided_runtimes: raleph_compute::Compute::provided_runtimes(&self.compute),
            ..self.pipeline.clone()
        }
    }

    /// The API's settings; `max_concurrent_reads = 0` (automatic) on a PostgreSQL index means
    /// as many reads as `database_read_connections`: a remote server is waited for, not
    /// computed on. (On SQLite, 0 stays: one read per core, decided by the API.)
    pub fn api_config(&self) -> raleph_api::ApiConfig {
        let mut api = self.api.clone();
        if api.max_concurrent_reads == 0 && self.database_is_postgres() {
            api.max_concurrent_reads = self.database_read_connections.max(1);
        }
        api
    }

    /// How often the garbage collector runs: `storage.gc_interval_secs`, at least 0.1 s so
    /// that a zero does not spin the writer thread.
    pub fn gc_interval(&self) -> Duration {
        Duration::from_secs_f64(self.storage.gc_interval_secs.max(0.1))
    }

    /// Gives `[p2p]`'s `listen`, `peers` and `key` the values of the settings they are other
    /// names of (`p2p_addr`, `peers`, the identity key file), so that the section the
    /// network is started with, and the printed configuration, say what the node does.
    /// `peers` must have been checked to be multiaddrs (see `check`).
    fn fill_p2p_aliases(&mut self) -> anyhow::Result<()> {
        self.p2p.listen = text::socket_to_multiaddr(self.p2p_addr).parse()?;
        self.p2p.peers = self
            .peers
            .iter()
            .map(|peer| peer.parse())
            .collect::<Result<_, _>>()?;
        self.p2p.key = self.node_key_path();
        Ok(())
    }

    /// The configuration as TOML, as `--print-config` shows it: every field with its
    /// effective value (the identity key file resolved, `[p2p]`'s aliases equal to their
    /// top-level settings), a PostgreSQL password redacted. Loaded back as a file, it gives
    /// the same configuration.
    pub fn to_printable_toml(&self) -> anyhow::Result<String> {
        let mut shown = self.clone();
        shown.node_key = Some(self.node_key_path());
        if shown.database_is_postgres() {
            shown.database = raleph_db::postgres::redact(&shown.database);
        }
        Ok(toml::to_string_pretty(&shown)?)
    }
}

/// The top-level fields that are settings (not sections), as `RALEPH_<FIELD>` names them.
fn top_level_settings() -> Vec<String> {
    // An unset optional field is not serialized: give each one a value so that it is listed.
    let every_field_set = NodeConfig {
        node_key: Some(PathBuf::new()),
        ..NodeConfig::default()
    };
    match toml::Table::try_from(&every_field_set) {
        Ok(table) => table
            .into_iter()
            .filter(|(_, value)| !value.is_table())
            .map(|(name, _)| name)
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests;
