//! Blockchain anchoring in the node: for each configured EVM chain, a reader that follows the
//! sync contract's events (messages read back from archives and contract calls, with their
//! confirmations), and, on a packing node, a packer that anchors batches of the node's
//! unconfirmed messages. The chain side (RPC, events, payloads, Merkle trees) is
//! `raleph-chain`'s; the store side (anchors, confirmations, batches, reader positions) is
//! `raleph-db`'s, written through the pipeline's writer like everything else.

mod archives;
mod packer;
pub mod proof;
mod reader;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use raleph_chain::EvmChainConfig;
use raleph_db::ReadStore;
use raleph_pipeline::PipelineHandle;
use raleph_storage::FileStore;
use serde::{Deserialize, Serialize};

use crate::network::FetchRequests;

/// `[anchoring]`: the chains the node reads and, with `packing`, writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnchoringConfig {
    /// One `[[anchoring.evm]]` table per EVM chain (Ethereum, BNB Chain, Avalanche...): its
    /// RPC endpoint, sync contract, authorized emitters, confirmation depth, and optional
    /// `[anchoring.evm.packing]` key file (see `raleph_chain::EvmChainConfig`).
    pub evm: Vec<EvmChainConfig>,
    /// HTTP places an archive is fetched from by CID when neither this node nor its peers
    /// hold it: IPFS gateways (`https://gateway.example/ipfs/`) or other nodes' raw file
    /// route (`http://node:4024/api/v0/storage/raw/`); the CID is appended.
    pub archive_gateways: Vec<String>,
    /// Seconds an archive is looked for (peers and gateways, with retries) before its anchor
    /// is recorded without its messages, the archive kept among those looked for again.
    pub archive_fetch_timeout_secs: u64,
    /// Seconds between two rounds of looking again for the archives found nowhere; when one
    /// turns up, its messages are taken in and the anchor confirms them.
    pub archive_retry_secs: u64,
    /// Seconds a fetched or packed archive is kept pinned, so that peers can fetch it too.
    pub archive_pin_secs: u64,
}

impl Default for AnchoringConfig {
    fn default() -> Self {
        AnchoringConfig {
            evm: Vec::new(),
            archive_gateways: Vec::new(),
            archive_fetch_timeout_secs: 60,
            archive_retry_secs: 60,
            // Ten years: as long as a node is likely to run.
            archive_pin_secs: 10 * 365 * 24 * 3600,
        }
    }
}

impl AnchoringConfig {
    pub fn archive_fetch_timeout(&self) -> Duration {
        Duration::from_secs(self.archive_fetch_timeout_secs)
    }

    pub fn archive_retry_interval(&self) -> Duration {
        Duration::from_secs(self.archive_retry_secs)
    }

    /// Refuses settings that cannot work, naming them.
    pub fn check(&self) -> anyhow::Result<()> {
        let mut seen = std::collections::HashSet::new();
        for chain in &self.evm {
            chain
                .validate()
                .with_context(|| format!("anchoring.evm ({})", chain.chain))?;
            anyhow::ensure!(
                seen.insert(chain.chain),
                "anchoring.evm: chain {} is configured twice",
                chain.chain
            );
        }
        for gateway in &self.archive_gateways {
            anyhow::ensure!(
                gateway.starts_with("http://") || gateway.starts_with("https://"),
                "anchoring.archive_gateways: {gateway:?} is not an http(s) URL"
            );
        }
        anyhow::ensure!(
            self.archive_fetch_timeout_secs > 0,
            "anchoring.archive_fetch_timeout_secs must be at least 1"
        );
        anyhow::ensure!(
            self.archive_retry_secs > 0,
            "anchoring.archive_retry_secs must be at least 1"
        );
        Ok(())
    }
}

/// What the anchoring tasks share.
#[derive(Clone)]
pub(crate) struct Anchoring {
    pub pipeline: PipelineHandle,
    /// How long the reader waits between two looks for the archives found nowhere.
    pub archive_retry: Duration,
    pub reader: Arc<dyn ReadStore>,
    pub archives: Arc<archives::Archives>,
}

/// Starts a reader for every configured chain, and a packer for those with `packing`.
pub fn start(
    config: &AnchoringConfig,
    pipeline: PipelineHandle,
    reader: Arc<dyn ReadStore>,
    files: FileStore,
    fetches: FetchRequests,
) -> anyhow::Result<()> {
    config.check()?;
    if config.evm.is_empty() {
        return Ok(());
    }
    let shared = Anchoring {
        archives: Arc::new(archives::Archives::new(
            config,
            files,
            fetches,
            pipeline.clone(),
        )?),
        pipeline,
        reader,
        archive_retry: config.archive_retry_interval(),
    };
    for chain in &config.evm {
        tracing::info!(
            chain = %chain.chain,
            rpc = %chain.rpc_url_for_logs(),
            contract = %chain.sync_contract,
            confirmations = chain.confirmations,
            packing = chain.packing.is_some(),
            "anchoring: following the chain"
        );
        reader::spawn(shared.clone(), chain.clone())?;
        if chain.packing.is_some() {
            packer::spawn(shared.clone(), chain.clone())?;
        }
    }
    Ok(())
}
