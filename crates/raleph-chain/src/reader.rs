//! Reads the sync contract's events, in order, at a confirmation depth, noticing reorgs.
//!
//! Each [`Reader::step`] first checks that the chain it read is still there, then reads one
//! window of `eth_getLogs` from the last read height + 1 up to `head - confirmations`. The
//! window starts at `max_block_range` blocks, is halved while the RPC says a window returns
//! too much (as the reference does on -32005), and grows back by doubling after a success.
//!
//! **Reorgs.** The reader remembers the block hash of the last height of every window it read
//! and of every block an event came from, at most `max_remembered_heights` of them (oldest
//! dropped). A block hash commits to all its ancestors, so if the highest remembered hash is
//! unchanged nothing below it changed; otherwise the reader walks down to the highest
//! remembered height whose hash is unchanged and reports [`Step::Reorg`] from the height above
//! it. Every event at or above that height may be gone: the caller drops the confirmations it
//! recorded from there, and the reader reads again from there.
//!
//! **Persistence.** The reader keeps no state of its own beyond [`ReaderPosition`], which the
//! caller saves *after* it has stored the events of a step (or applied a reorg), and gives back
//! to [`Reader::new`] at start. A crash in between re-reads the step: the caller's handling of
//! events must be idempotent (keyed by chain, tx hash and log index).

use std::collections::HashSet;

use alloy_primitives::{Address, B256};
use alloy_provider::Provider as _;
use alloy_rpc_types_eth::{BlockNumberOrTag, Filter};
use alloy_transport::TransportError;
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::config::{ConfigError, EvmChainConfig};
use crate::events::{ChainEvent, EventKind, MESSAGE_EVENT_TOPIC, SYNC_EVENT_TOPIC, decode_log};
use crate::rpc::{Provider, RpcSetupError, is_too_many_results, provider};

/// How many times one step re-reads a window whose last block changed while it was read.
const MAX_UNSTABLE_RETRIES: usize = 3;

/// Where a reader stands; the caller persists it (see the module doc).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReaderPosition {
    /// The last height read: every event at or below it has been yielded. `None` before the
    /// first window (reading starts at the configured `start_height`).
    pub synced_height: Option<u64>,
    /// Remembered `(height, block hash)` pairs, heights ascending.
    pub recent: Vec<(u64, B256)>,
}

/// What one step found.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Heights `from..=to` were read; `events` are the accepted ones, in chain order.
    /// `ignored` counts logs dropped: undecodable, or a `SyncEvent` from an emitter not
    /// authorized.
    Events {
        from: u64,
        to: u64,
        events: Vec<ChainEvent>,
        ignored: usize,
    },
    /// Blocks from `from_height` up changed: drop what was recorded from them. The next step
    /// reads from `from_height` again. `beyond_memory` is set when even the oldest remembered
    /// hash changed: the fork may be deeper than `from_height`, which is then the oldest
    /// remembered height.
    Reorg {
        from_height: u64,
        beyond_memory: bool,
    },
    /// Nothing new at the confirmation depth yet (`head` is the chain's latest height).
    UpToDate { head: u64 },
}

/// Why a step failed; the position is unchanged, so the caller retries later.
#[derive(Debug, thiserror::Error)]
pub enum ReaderError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Setup(#[from] RpcSetupError),
    #[error("chain RPC {method}: {source}")]
    Rpc {
        method: &'static str,
        #[source]
        source: TransportError,
    },
    #[error("block {0} is missing from the RPC's answer although it is below the head")]
    MissingBlock(u64),
    #[error("the chain kept changing at block {0} while it was read")]
    Unstable(u64),
}

fn rpc(method: &'static str) -> impl FnOnce(TransportError) -> ReaderError {
    move |source| ReaderError::Rpc { method, source }
}

/// A reader of one chain's sync contract.
#[derive(Debug)]
pub struct Reader {
    config: EvmChainConfig,
    provider: Provider,
    authorized: HashSet<Address>,
    position: ReaderPosition,
    window: u64,
}

impl Reader {
    /// A reader for `config`, continuing from `position` (`ReaderPosition::default()` the
    /// first time).
    pub fn new(config: EvmChainConfig, position: ReaderPosition) -> Result<Self, ReaderError> {
        config.validate()?;
        let provider = provider(&config)?;
        let authorized = config.authorized_emitters.iter().copied().collect();
        let window = config.max_block_range;
        let mut reader = Reader {
            config,
            provider,
            authorized,
            position,
            window,
        };
        // A position saved under a larger memory limit is cut to this one.
        reader.trim();
        Ok(reader)
    }

    /// The position to persist once this step's events are stored.
    pub fn position(&self) -> &ReaderPosition {
        &self.position
    }

    /// The current `eth_getLogs` window, in blocks.
    pub fn window(&self) -> u64 {
        self.window
    }

    pub fn config(&self) -> &EvmChainConfig {
        &self.config
    }

    /// Checks for a reorg, then reads the next window (see the module doc).
    pub async fn step(&mut self) -> Result<Step, ReaderError> {
        if let Some(reorg) = self.check_reorg().await? {
            return Ok(reorg);
        }
        let head = self
            .provider
            .get_block_number()
            .await
            .map_err(rpc("eth_blockNumber"))?;
        let Some(target) = head.checked_sub(self.config.confirmations) else {
            return Ok(Step::UpToDate { head });
        };
        let from = match self.position.synced_height {
            Some(height) => height.saturating_add(1).max(self.config.start_height),
            None => self.config.start_height,
        };
        if from > target {
            return Ok(Step::UpToDate { head });
        }

        let mut unstable = 0;
        loop {
            let to = target.min(from.saturating_add(self.window - 1));
            let end_hash = self
                .block_hash(to)
                .await?
                .ok_or(ReaderError::MissingBlock(to))?;
            let filter = Filter::new()
                .address(self.config.sync_contract)
                .event_signature(vec![SYNC_EVENT_TOPIC, MESSAGE_EVENT_TOPIC])
                .from_block(from)
                .to_block(to);
            let logs = match self.provider.get_logs(&filter).await {
                Ok(logs) => logs,
                Err(err) if is_too_many_results(&err) && self.window > 1 => {
                    self.window = (self.window / 2).max(1);
                    debug!(chain = %self.config.chain.as_str(), window = self.window, "eth_getLogs window halved: {err}");
                    continue;
                }
                Err(err) => return Err(rpc("eth_getLogs")(err)),
            };
            // The window's logs belong to the chain ending in `end_hash` only if that block is
            // still there after the read.
            if self.block_hash(to).await? != Some(end_hash) {
                unstable += 1;
                if unstable > MAX_UNSTABLE_RETRIES {
                    return Err(ReaderError::Unstable(to));
                }
                continue;
            }

            let mut events = Vec::with_capacity(logs.len());
            let mut ignored = 0;
            for log in &logs {
                if log.removed || log.address() != self.config.sync_contract {
                    ignored += 1;
                    continue;
                }
                match decode_log(self.config.chain, log) {
                    Ok(event) if self.accepts(&event) => events.push(event),
                    Ok(_) => ignored += 1,
                    Err(err) => {
                        warn!(chain = %self.config.chain.as_str(), tx = ?log.transaction_hash, "sync contract log ignored: {err}");
                        ignored += 1;
                    }
                }
            }
            events.sort_by_key(|e| (e.height, e.log_index));

            for event in &events {
                self.remember(event.height, event.block_hash);
            }
            self.remember(to, end_hash);
            self.position.synced_height = Some(to);
            self.trim();
            self.window = self
                .window
                .saturating_mul(2)
                .min(self.config.max_block_range);
            return Ok(Step::Events {
                from,
                to,
                events,
                ignored,
            });
        }
    }

    fn accepts(&self, event: &ChainEvent) -> bool {
        match event.kind {
            EventKind::Sync(_) => self.authorized.contains(&event.emitter),
            EventKind::Message { .. } => self.config.read_message_events,
        }
    }

    async fn block_hash(&self, height: u64) -> Result<Option<B256>, ReaderError> {
        let block = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Number(height))
            .await
            .map_err(rpc("eth_getBlockByNumber"))?;
        Ok(block.map(|b| b.header.hash))
    }

    /// `Some(Step::Reorg)` if a remembered block changed; the position is moved back.
    async fn check_reorg(&mut self) -> Result<Option<Step>, ReaderError> {
        let Some(&(top, top_hash)) = self.position.recent.last() else {
            return Ok(None);
        };
        if self.block_hash(top).await? == Some(top_hash) {
            return Ok(None);
        }
        // Walk down to the highest remembered block that is still there.
        let mut kept = None;
        for (i, &(height, hash)) in self.position.recent.iter().enumerate().rev().skip(1) {
            if self.block_hash(height).await? == Some(hash) {
                kept = Some(i);
                break;
            }
        }
        let (from_height, beyond_memory) = match kept {
            Some(i) => (self.position.recent[i].0 + 1, false),
            None => (self.position.recent[0].0, true),
        };
        self.position
            .recent
            .retain(|&(height, _)| height < from_height);
        self.position.synced_height = from_height.checked_sub(1);
        warn!(
            chain = %self.config.chain.as_str(),
            from_height, beyond_memory, "chain reorganisation: events from this height are dropped and read again"
        );
        Ok(Some(Step::Reorg {
            from_height,
            beyond_memory,
        }))
    }

    fn remember(&mut self, height: u64, hash: B256) {
        let recent = &mut self.position.recent;
        match recent.last() {
            Some(&(last, _)) if last == height => {}
            Some(&(last, _)) if last > height => {
                // Out of order (never expected): keep the list sorted.
                if let Err(at) = recent.binary_search_by_key(&height, |&(h, _)| h) {
                    recent.insert(at, (height, hash));
                }
            }
            _ => recent.push((height, hash)),
        }
    }

    fn trim(&mut self) {
        let recent = &mut self.position.recent;
        let excess = recent
            .len()
            .saturating_sub(self.config.max_remembered_heights);
        recent.drain(..excess);
    }
}
