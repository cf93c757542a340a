//! One EVM chain's settings, as the node's configuration file gives them
//! (`[[chains.evm]]` tables), and the packing key.
//!
//! Every limit is a named field with a documented default; [`EvmChainConfig::validate`]
//! refuses a bad value with the field named, so a node fails at start rather than later.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy_primitives::Address;
use alloy_signer_local::PrivateKeySigner;
use raleph_message::{Chain, SignatureScheme};
use serde::{Deserialize, Serialize};

use crate::payload::Limits;

/// The reference's window for `eth_getLogs` (blocks per request), halved when the RPC says a
/// request returns too much.
pub const DEFAULT_MAX_BLOCK_RANGE: u64 = 100_000;
/// Blocks mined on top of an event before it is read (Ethereum's usual finality margin for
/// non-finalized reads; set per chain).
pub const DEFAULT_CONFIRMATIONS: u64 = 12;
/// The reference polls its sync events every `message_delay` = 30 s.
pub const DEFAULT_POLL_INTERVAL_SECS: u64 = 30;
/// How many recent heights the reader remembers the hash of, to detect a reorg. Must exceed
/// `confirmations`: a reorg deeper than the memory is reported from its oldest height.
pub const DEFAULT_MAX_REMEMBERED_HEIGHTS: usize = 256;
/// Upper bound of `max_remembered_heights`: the reader's position is persisted as one value.
pub const MAX_REMEMBERED_HEIGHTS_LIMIT: usize = 100_000;
/// The reference refuses to send above 150 gwei.
pub const DEFAULT_MAX_GAS_PRICE_GWEI: u64 = 150;
/// The reference waits 35 s between two anchoring transactions.
pub const DEFAULT_COMMIT_DELAY_SECS: u64 = 35;
/// How long the writer waits for a receipt before giving the transaction to the caller to
/// check again later.
pub const DEFAULT_RECEIPT_TIMEOUT_SECS: u64 = 300;
/// Largest accepted private key file: a hex key with a `0x` prefix and a newline is 67 bytes.
pub const MAX_KEY_FILE_BYTES: u64 = 1024;
/// Per RPC request; an endpoint that does not answer in this time is treated as failing.
pub const DEFAULT_RPC_TIMEOUT_SECS: u64 = 30;
/// Largest JSON-RPC response body read (a `eth_getLogs` window of full blocks of events is
/// the largest answer the reader asks for; a window that exceeds this is halved).
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// One EVM chain: where to read and write, whom to trust, and how deep to wait.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EvmChainConfig {
    /// The chain's Aleph name (`"ETH"`, `"BSC"`, `"AVAX"`, ...), recorded with each
    /// confirmation.
    pub chain: Chain,
    /// The JSON-RPC endpoint, `http://` or `https://`. Not logged in full: it may carry an
    /// API key (see [`EvmChainConfig::rpc_url_for_logs`]).
    pub rpc_url: String,
    /// The AlephSync contract whose events are read and to which `doEmit` is sent.
    pub sync_contract: Address,
    /// The first height read when nothing was read yet (the contract's deployment block).
    #[serde(default)]
    pub start_height: u64,
    /// The addresses whose `SyncEvent`s are accepted; others are ignored, as the reference
    /// does. `MessageEvent`s are accepted from any address (the contract's caller signs them).
    pub authorized_emitters: Vec<Address>,
    /// Whether `MessageEvent`s (the `smart-contract` protocol: any account publishing one
    /// message through `doMessage`) are read. They are taken from any emitter: the chain
    /// authenticates their sender.
    #[serde(default = "default_true")]
    pub read_message_events: bool,
    /// Blocks on top of an event's block before it is read.
    #[serde(default = "default_confirmations")]
    pub confirmations: u64,
    /// Largest block window of one `eth_getLogs`; halved while the RPC refuses a window.
    #[serde(default = "default_max_block_range")]
    pub max_block_range: u64,
    /// Seconds between two polls of the chain once the reader has caught up.
    #[serde(default = "default_poll_interval_secs")]
    pub poll_interval_secs: u64,
    /// Recent heights whose block hash the reader keeps to detect reorgs.
    #[serde(default = "default_max_remembered_heights")]
    pub max_remembered_heights: usize,
    /// Seconds per RPC request.
    #[serde(default = "default_rpc_timeout_secs")]
    pub rpc_timeout_secs: u64,
    /// Largest RPC response body, in bytes.
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: usize,
    /// Limits of the payloads read from (and written to) this chain.
    #[serde(default)]
    pub limits: Limits,
    /// Set on a packing node: it anchors batches on this chain.
    #[serde(default)]
    pub packing: Option<PackingConfig>,
}

/// A packing node's settings for one chain.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PackingConfig {
    /// A file holding the packing account's private key (64 hex digits, `0x` optional). The
    /// key is read by [`PackingKey::load`] and never logged.
    pub key_file: PathBuf,
    /// No transaction is sent while the fee it would pay per gas exceeds this, in gwei.
    #[serde(default = "default_max_gas_price_gwei")]
    pub max_gas_price_gwei: u64,
    /// Seconds between two anchoring transactions.
    #[serde(default = "default_commit_delay_secs")]
    pub commit_delay_secs: u64,
    /// Most messages in one archive (the reference's `max_unconfirmed_messages`).
    #[serde(default = "default_max_messages")]
    pub max_messages: usize,
    /// Seconds the writer waits for a receipt.
    #[serde(default = "default_receipt_timeout_secs")]
    pub receipt_timeout_secs: u64,
}

fn default_true() -> bool {
    true
}
fn default_confirmations() -> u64 {
    DEFAULT_CONFIRMATIONS
}
fn default_max_block_range() -> u64 {
    DEFAULT_MAX_BLOCK_RANGE
}
fn default_poll_interval_secs() -> u64 {
    DEFAULT_POLL_INTERVAL_SECS
}
fn default_max_remembered_heights() -> usize {
    DEFAULT_MAX_REMEMBERED_HEIGHTS
}
fn default_rpc_timeout_secs() -> u64 {
    DEFAULT_RPC_TIMEOUT_SECS
}
fn default_max_response_bytes() -> usize {
    DEFAULT_MAX_RESPONSE_BYTES
}
fn default_max_gas_price_gwei() -> u64 {
    DEFAULT_MAX_GAS_PRICE_GWEI
}
fn default_commit_delay_secs() -> u64 {
    DEFAULT_COMMIT_DELAY_SECS
}
fn default_max_messages() -> usize {
    crate::payload::DEFAULT_MAX_ARCHIVE_MESSAGES
}
fn default_receipt_timeout_secs() -> u64 {
    DEFAULT_RECEIPT_TIMEOUT_SECS
}

/// A setting refused, with the field it concerns.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("chains.evm ({chain}): {field}: {reason}")]
    Invalid {
        chain: String,
        field: &'static str,
        reason: String,
    },
    /// Never carries the file's content.
    #[error("packing key file {path}: {reason}")]
    Key { path: PathBuf, reason: String },
}

impl EvmChainConfig {
    /// A configuration with the defaults, for `chain` at `rpc_url` reading `sync_contract`.
    pub fn new(
        chain: Chain,
        rpc_url: impl Into<String>,
        sync_contract: Address,
        authorized_emitters: Vec<Address>,
    ) -> Self {
        EvmChainConfig {
            chain,
            rpc_url: rpc_url.into(),
            sync_contract,
            start_height: 0,
            authorized_emitters,
            read_message_events: true,
            confirmations: DEFAULT_CONFIRMATIONS,
            max_block_range: DEFAULT_MAX_BLOCK_RANGE,
            poll_interval_secs: DEFAULT_POLL_INTERVAL_SECS,
            max_remembered_heights: DEFAULT_MAX_REMEMBERED_HEIGHTS,
            rpc_timeout_secs: DEFAULT_RPC_TIMEOUT_SECS,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            limits: Limits::default(),
            packing: None,
        }
    }

    /// Refuses a setting the reader or the writer could not honour.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field: &'static str, reason: String| ConfigError::Invalid {
            chain: self.chain.as_str().to_owned(),
            field,
            reason,
        };
        // AVAX messages are signed the Avalanche way, but its C-chain, where a sync contract
        // lives, is an EVM chain.
        if self.chain.scheme() != SignatureScheme::Evm && self.chain != Chain::Avax {
            return Err(bad(
                "chain",
                format!("{} is not an EVM chain", self.chain.as_str()),
            ));
        }
        let url = reqwest::Url::parse(&self.rpc_url)
            .map_err(|e| bad("rpc_url", format!("not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad(
                "rpc_url",
                format!(
                    "scheme {:?}: only http and https are supported",
                    url.scheme()
                ),
            ));
        }
        if self.authorized_emitters.is_empty() {
            return Err(bad(
                "authorized_emitters",
                "empty: no sync event would ever be accepted".to_owned(),
            ));
        }
        if self.max_block_range == 0 {
            return Err(bad("max_block_range", "must be at least 1".to_owned()));
        }
        if self.poll_interval_secs == 0 {
            return Err(bad("poll_interval_secs", "must be at least 1".to_owned()));
        }
        if self.rpc_timeout_secs == 0 {
            return Err(bad("rpc_timeout_secs", "must be at least 1".to_owned()));
        }
        if self.max_response_bytes < 1024 {
            return Err(bad(
                "max_response_bytes",
                "must be at least 1024".to_owned(),
            ));
        }
        if self.max_remembered_heights < 2
            || self.max_remembered_heights > MAX_REMEMBERED_HEIGHTS_LIMIT
        {
            return Err(bad(
                "max_remembered_heights",
                format!("must be between 2 and {MAX_REMEMBERED_HEIGHTS_LIMIT}"),
            ));
        }
        if (self.max_remembered_heights as u64) <= self.confirmations {
            return Err(bad(
                "max_remembered_heights",
                format!(
                    "{} does not exceed confirmations ({}): a reorg within the confirmation depth could go unseen",
                    self.max_remembered_heights, self.confirmations
                ),
            ));
        }
        self.limits
            .validate()
            .map_err(|reason| bad("limits", reason))?;
        if let Some(packing) = &self.packing {
            if packing.max_gas_price_gwei == 0 {
                return Err(bad(
                    "packing.max_gas_price_gwei",
                    "must be at least 1".to_owned(),
                ));
            }
            if packing.max_messages == 0 || packing.max_messages > self.limits.max_archive_messages
            {
                return Err(bad(
                    "packing.max_messages",
                    format!(
                        "must be between 1 and limits.max_archive_messages ({})",
                        self.limits.max_archive_messages
                    ),
                ));
            }
            if packing.receipt_timeout_secs == 0 {
                return Err(bad(
                    "packing.receipt_timeout_secs",
                    "must be at least 1".to_owned(),
                ));
            }
        }
        Ok(())
    }

    /// The RPC URL without its path, query and credentials, which often hold an API key.
    pub fn rpc_url_for_logs(&self) -> String {
        match reqwest::Url::parse(&self.rpc_url) {
            Ok(url) => format!(
                "{}://{}{}",
                url.scheme(),
                url.host_str().unwrap_or("?"),
                url.port().map(|p| format!(":{p}")).unwrap_or_default()
            ),
            Err(_) => "<invalid url>".to_owned(),
        }
    }

    pub fn poll_interval(&self) -> Duration {
        Duration::from_secs(self.poll_interval_secs)
    }

    pub fn rpc_timeout(&self) -> Duration {
        Duration::from_secs(self.rpc_timeout_secs)
    }
}

impl PackingConfig {
    /// The ceiling in wei per gas.
    pub fn max_gas_price_wei(&self) -> u128 {
        u128::from(self.max_gas_price_gwei) * 1_000_000_000
    }

    pub fn commit_delay(&self) -> Duration {
        Duration::from_secs(self.commit_delay_secs)
    }

    pub fn receipt_timeout(&self) -> Duration {
        Duration::from_secs(self.receipt_timeout_secs)
    }
}

/// The packing account's key. Its `Debug` shows the address only, so neither a log line nor
/// an error ever carries the key.
#[derive(Clone)]
pub struct PackingKey {
    signer: PrivateKeySigner,
}

impl fmt::Debug for PackingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PackingKey")
            .field("address", &self.signer.address())
            .field("key", &"<redacted>")
            .finish()
    }
}

impl PackingKey {
    /// Reads the key from `path`: 64 hex digits, optionally `0x`-prefixed, surrounding
    /// whitespace ignored. Errors name the file, never its content.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let err = |reason: String| ConfigError::Key {
            path: path.to_owned(),
            reason,
        };
        let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
        if meta.len() > MAX_KEY_FILE_BYTES {
            return Err(err(format!(
                "{} bytes, larger than a key file can be ({MAX_KEY_FILE_BYTES})",
                meta.len()
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        Self::from_hex(&text).map_err(err)
    }

    /// Parses a hex key (see [`PackingKey::load`]); the error never quotes the input.
    pub fn from_hex(text: &str) -> Result<Self, String> {
        let hex = text.trim();
        let hex = hex.strip_prefix("0x").unwrap_or(hex);
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("not a private key: expected 64 hex digits, 0x optional".to_owned());
        }
        let signer: PrivateKeySigner = hex
            .parse()
            .map_err(|_| "not a valid secp256k1 private key".to_owned())?;
        Ok(PackingKey { signer })
    }

    /// The packing account.
    pub fn address(&self) -> Address {
        self.signer.address()
    }

    pub(crate) fn signer(&self) -> &PrivateKeySigner {
        &self.signer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

    fn sample() -> EvmChainConfig {
        let toml_like = serde_json::json!({
            "chain": "ETH",
            "rpc_url": "https://user:secret@rpc.example/v3/apikey",
            "sync_contract": "0x166fd4299364B21c7567e163d85D78d2fb2f8Ad5",
            "start_height": 11474360,
            "authorized_emitters": ["0x23eC28598DCeB2f7082Cc3a9D670592DfEd6e0dC"],
        });
        serde_json::from_value(toml_like).unwrap()
    }

    #[test]
    fn defaults_and_validation() {
        let config = sample();
        assert_eq!(config.max_block_range, 100_000);
        assert_eq!(config.confirmations, DEFAULT_CONFIRMATIONS);
        assert_eq!(config.limits, Limits::default());
        config.validate().unwrap();
        assert_eq!(config.rpc_url_for_logs(), "https://rpc.example");
    }

    #[test]
    fn bad_values_are_named() {
        let mut config = sample();
        config.authorized_emitters.clear();
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("authorized_emitters")
        );

        let mut config = sample();
        config.chain = Chain::Sol;
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("not an EVM chain")
        );

        let mut config = sample();
        config.chain = Chain::Avax;
        config.validate().unwrap();

        let mut config = sample();
        config.rpc_url = "ws://x".to_owned();
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("rpc_url")
        );

        let mut config = sample();
        config.confirmations = 300;
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("max_remembered_heights")
        );

        let mut config = sample();
        config.max_block_range = 0;
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("max_block_range")
        );

        let mut config = sample();
        config.packing = Some(PackingConfig {
            key_file: "k".into(),
            max_gas_price_gwei: 150,
            commit_delay_secs: 35,
            max_messages: config.limits.max_archive_messages + 1,
            receipt_timeout_secs: 1,
        });
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("packing.max_messages")
        );

        let unknown = serde_json::json!({"chain": "ETH", "rpc_url": "http://x", "sync_contract": "0x166fd4299364B21c7567e163d85D78d2fb2f8Ad5", "authorized_emitters": [], "confirmation": 3});
        assert!(serde_json::from_value::<EvmChainConfig>(unknown).is_err());
    }

    proptest::proptest! {
        /// Whatever an operator writes, parsing and validating answer with a value or an
        /// error naming the field, never a panic.
        #[test]
        fn arbitrary_settings_never_panic(
            chain in "[A-Z]{0,8}",
            rpc_url in ".{0,40}",
            numbers in proptest::collection::vec(proptest::num::u64::ANY, 6),
            key in ".{0,80}",
        ) {
            let value = serde_json::json!({
                "chain": chain,
                "rpc_url": rpc_url,
                "sync_contract": "0x166fd4299364B21c7567e163d85D78d2fb2f8Ad5",
                "authorized_emitters": ["0x23eC28598DCeB2f7082Cc3a9D670592DfEd6e0dC"],
                "confirmations": numbers[0],
                "max_block_range": numbers[1],
                "max_remembered_heights": numbers[2],
                "max_response_bytes": numbers[3],
                "limits": {"max_archive_messages": numbers[4]},
                "packing": {"key_file": "k", "max_gas_price_gwei": numbers[5]},
            });
            if let Ok(config) = serde_json::from_value::<EvmChainConfig>(value) {
                let _ = config.validate();
                let _ = config.rpc_url_for_logs();
            }
            if let Err(err) = PackingKey::from_hex(&key) {
                proptest::prop_assert!(key.trim().len() < 8 || !err.contains(key.trim()));
            }
        }
    }

    #[test]
    fn the_key_never_shows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, format!("{KEY}\n")).unwrap();
        let key = PackingKey::load(&path).unwrap();
        let shown = format!("{key:?}");
        assert!(!shown.contains(&KEY[2..]), "{shown}");
        assert!(shown.contains("redacted"));
        assert_eq!(
            key.address(),
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
                .parse::<Address>()
                .unwrap()
        );

        // A file that is not a key: the error does not quote it.
        let secretish = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690";
        std::fs::write(&path, secretish).unwrap();
        let err = PackingKey::load(&path).unwrap_err().to_string();
        assert!(!err.contains(&secretish[2..]), "{err}");
        assert!(err.contains("64 hex digits"));

        std::fs::write(&path, vec![b'a'; 2000]).unwrap();
        assert!(
            PackingKey::load(&path)
                .unwrap_err()
                .to_string()
                .contains("larger")
        );
    }
}
