//! The node's configuration: defaults ← TOML file ← `RALEPH_*` environment ← flags.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Where the index database and files live.
    pub data_dir: PathBuf,
    /// HTTP API address; port 0 binds a free port (the bound address is printed).
    pub api_addr: SocketAddr,
    /// Peer-to-peer address (TCP); port 0 binds a free port (the bound multiaddr is printed).
    pub p2p_addr: SocketAddr,
    /// Peers to dial, as multiaddrs ending in `/p2p/<peer id>`.
    pub peers: Vec<String>,
    /// The p2p identity key file (Ed25519, created if missing; an RSA PKCS#8 DER key such as a
    /// pyaleph node's `node-secret.pkcs8.der` is accepted); `None` means `<data_dir>/node-key`.
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
    /// PostgreSQL runs with `synchronous_commit = on`), or only crashes of the node process
    /// (`normal`).
    pub durability: Durability,
    pub pipeline: raleph_pipeline::PipelineConfig,
    pub api: raleph_api::ApiConfig,
    pub storage: raleph_storage::StorageConfig,
    /// The libp2p layer (`listen`, `peers` and `key` come from `p2p_addr`, `peers`, `node_key`).
    pub p2p: raleph_p2p::P2pConfig,
    /// Catching up with peers and fetching files from them.
    pub sync: crate::network::SyncConfig,
    /// Programs: their limits and runtimes.
    pub compute: raleph_compute::ComputeConfig,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    #[default]
    Full,
    Normal,
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
        }
    }
}

impl NodeConfig {
    pub fn load(file: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let Some(file) = file else {
            return Ok(NodeConfig::default());
        };
        let text = std::fs::read_to_string(file)
            .map_err(|e| anyhow::anyhow!("read config file {}: {e}", file.display()))?;
        toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("parse config file {}: {e}", file.display()))
    }

    /// Refuses values no node can run with: every duration (a field named `*_secs` or
    /// `*_ms`, in any section) must be a finite number, zero or more. A negative or infinite
    /// one used to panic the node when it was first used, possibly long after start.
    pub fn check(&self) -> anyhow::Result<()> {
        let value = serde_json::to_value(self)?;
        let mut problems = Vec::new();
        check_durations(&value, "", &mut problems);
        match problems.is_empty() {
            true => Ok(()),
            false => anyhow::bail!("invalid configuration: {}", problems.join("; ")),
        }
    }

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
}

/// Collects the durations under `value` (at `path`) that are not finite numbers ≥ 0.
fn check_durations(value: &serde_json::Value, path: &str, problems: &mut Vec<String>) {
    let serde_json::Value::Object(fields) = value else {
        return;
    };
    for (name, field) in fields {
        let at = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        if name.ends_with("_secs") || name.ends_with("_ms") {
            // serde_json writes a non-finite float as null.
            let good = field.as_f64().is_some_and(|n| n.is_finite() && n >= 0.0);
            if !good {
                problems.push(format!(
                    "{at} must be a finite number of zero or more, not {field}"
                ));
            }
        }
        check_durations(field, &at, problems);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> NodeConfig {
        toml::from_str(text).expect("toml")
    }

    #[test]
    fn durations_must_be_finite_and_not_negative() {
        assert!(NodeConfig::default().check().is_ok());
        for bad in [
            "[api]\nsync_timeout_secs = -1.0",
            "[api]\ncount_cache_secs = inf",
            "[pipeline]\nmax_backoff_secs = nan",
            "[storage]\ngc_interval_secs = -inf",
            "[pipeline]\ngather_ms = -5.0",
        ] {
            let error = parsed(bad).check().expect_err(bad).to_string();
            let field = bad.split('\n').nth(1).unwrap().split(' ').next().unwrap();
            assert!(error.contains(field), "{error}");
        }
        assert!(parsed("[api]\nsync_timeout_secs = 0.0").check().is_ok());
    }
}
