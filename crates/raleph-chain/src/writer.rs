//! Sends anchoring transactions: `doEmit(payload)` from the packing key.
//!
//! Fees follow the reference's packer (`shared/spec/anchoring.md` B1): EIP-1559 from
//! `eth_feeHistory` over the last [`FEE_HISTORY_BLOCKS`] blocks at the
//! [`FEE_TIP_PERCENTILE`]th percentile tip, the tip being the mean of those blocks' values and
//! `max_fee = 2 × base fee + tip` (base fee of the next block); when the chain gives no tip
//! data (no EIP-1559), the legacy gas price × 1.1. Nothing is sent when the most the
//! transaction could pay per gas (`max_fee`, or the legacy price) exceeds the configured
//! ceiling. The nonce is the chain's pending count for the account.
//!
//! **What the caller persists** for anchoring to be idempotent across restarts (the writer
//! itself persists nothing): before [`Writer::submit`], the batch and its payload; after it,
//! the returned [`Submitted`] (tx hash and nonce) with the batch. At start, for a batch with a
//! submitted transaction: [`Writer::receipt`] tells whether it was mined; if not, and
//! [`Writer::nonce_state`] shows `latest > nonce`, another transaction took that nonce (the
//! one sent was dropped or replaced) and the batch is sent again; if `pending <= nonce`, it
//! was dropped from the pool and is sent again with a fresh nonce; otherwise it is still
//! pending and the caller waits. A batch is done when the reader sees its `SyncEvent` at the
//! confirmation depth, not when the receipt arrives.

use std::time::Duration;

use alloy_network::{EthereumWallet, NetworkTransactionBuilder, TransactionBuilder};
use alloy_primitives::{Address, B256, U256};
use alloy_provider::Provider as _;
use alloy_rpc_types_eth::{BlockNumberOrTag, FeeHistory, TransactionRequest};
use alloy_sol_types::SolCall;
use alloy_transport::TransportError;
use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, EvmChainConfig, PackingKey};
use crate::events::doEmitCall;
use crate::rpc::{Provider, RpcSetupError, provider};

/// Blocks of fee history the tip is taken from.
pub const FEE_HISTORY_BLOCKS: u64 = 5;
/// The percentile of each block's tips.
pub const FEE_TIP_PERCENTILE: f64 = 25.0;
/// Gas limit = estimate × 6/5: `doEmit`'s cost depends only on the payload, but an estimate
/// taken against one block may be a little short in the next.
const GAS_MARGIN_NUMERATOR: u64 = 6;
const GAS_MARGIN_DENOMINATOR: u64 = 5;
/// How often a receipt is asked for while waiting.
pub const DEFAULT_RECEIPT_POLL: Duration = Duration::from_secs(1);

/// The fee fields of a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fees {
    Eip1559 {
        max_fee_per_gas: u128,
        max_priority_fee_per_gas: u128,
    },
    Legacy {
        gas_price: u128,
    },
}

impl Fees {
    /// The most the transaction may pay per gas: what the ceiling is compared with.
    pub fn max_price(&self) -> u128 {
        match *self {
            Fees::Eip1559 {
                max_fee_per_gas, ..
            } => max_fee_per_gas,
            Fees::Legacy { gas_price } => gas_price,
        }
    }

    /// EIP-1559 fees from a fee history (see the module doc), or `None` when it carries no
    /// tip data or no base fee.
    pub fn from_history(history: &FeeHistory) -> Option<Fees> {
        let tips: Vec<u128> = history
            .reward
            .as_ref()?
            .iter()
            .filter_map(|block| block.first().copied())
            .collect();
        if tips.is_empty() {
            return None;
        }
        let tip = tips.iter().sum::<u128>() / tips.len() as u128;
        let base = *history.base_fee_per_gas.last()?;
        Some(Fees::Eip1559 {
            max_fee_per_gas: base.saturating_mul(2).saturating_add(tip),
            max_priority_fee_per_gas: tip,
        })
    }

    /// The legacy price: the node's gas price × 1.1.
    pub fn legacy(gas_price: u128) -> Fees {
        Fees::Legacy {
            gas_price: gas_price.saturating_mul(11) / 10,
        }
    }
}

/// The fee would exceed the ceiling: nothing was sent.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "gas price {price} wei exceeds the ceiling of {ceiling} wei (packing.max_gas_price_gwei); not sending"
)]
pub struct FeeError {
    pub price: u128,
    pub ceiling: u128,
}

/// Why a transaction was not sent, or its outcome is not known.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Setup(#[from] RpcSetupError),
    #[error("{chain} has no packing settings (packing) configured")]
    NotPacking { chain: String },
    #[error(transparent)]
    Fee(#[from] FeeError),
    #[error("payload of {size} bytes exceeds limits.max_event_payload_bytes ({limit})")]
    PayloadTooLarge { size: usize, limit: usize },
    #[error("chain RPC {method}: {source}")]
    Rpc {
        method: &'static str,
        #[source]
        source: TransportError,
    },
    #[error("signing the transaction: {0}")]
    Sign(String),
    #[error("no receipt for {tx_hash} after {waited:?}; check it again later (Writer::receipt)")]
    ReceiptTimeout { tx_hash: B256, waited: Duration },
    #[error("transaction {tx_hash} was mined in block {block_height} but reverted")]
    Reverted { tx_hash: B256, block_height: u64 },
}

fn rpc(method: &'static str) -> impl FnOnce(TransportError) -> WriterError {
    move |source| WriterError::Rpc { method, source }
}

/// A transaction handed to the chain, not yet known to be mined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submitted {
    pub tx_hash: B256,
    pub nonce: u64,
    pub fees: Fees,
    pub gas_limit: u64,
}

/// A mined anchoring transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Emitted {
    pub tx_hash: B256,
    pub block_height: u64,
    pub block_hash: B256,
    pub gas_used: u64,
    pub effective_gas_price: u128,
}

/// The packing account's nonces: transactions mined (`latest`) and mined or pooled
/// (`pending`). `pending > latest` means transactions wait in the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NonceState {
    pub latest: u64,
    pub pending: u64,
}

impl NonceState {
    /// Transactions of the account waiting in the pool.
    pub fn pending_gap(&self) -> u64 {
        self.pending.saturating_sub(self.latest)
    }
}

/// A signed `doEmit` transaction, not sent yet (see [`Writer::sign`]).
#[derive(Debug, Clone)]
pub struct Signed {
    pub submitted: Submitted,
    envelope: <alloy_network::Ethereum as alloy_network::Network>::TxEnvelope,
}

/// Sends `doEmit` transactions for one chain. One writer per packing account, one
/// transaction at a time: nonces come from the chain's pending count, so two writers (or two
/// concurrent submits) on one account would take the same nonce and replace each other.
#[derive(Debug)]
pub struct Writer {
    provider: Provider,
    wallet: EthereumWallet,
    from: Address,
    contract: Address,
    ceiling: u128,
    max_payload_bytes: usize,
    receipt_timeout: Duration,
    receipt_poll: Duration,
}

impl Writer {
    /// A writer for `config` (which must have `packing` settings) signing with `key`.
    pub fn new(config: &EvmChainConfig, key: PackingKey) -> Result<Self, WriterError> {
        config.validate()?;
        let packing = config
            .packing
            .as_ref()
            .ok_or_else(|| WriterError::NotPacking {
                chain: config.chain.as_str().to_owned(),
            })?;
        Ok(Writer {
            provider: provider(config)?,
            from: key.address(),
            wallet: EthereumWallet::new(key.signer().clone()),
            contract: config.sync_contract,
            ceiling: packing.max_gas_price_wei(),
            max_payload_bytes: config.limits.max_event_payload_bytes,
            receipt_timeout: packing.receipt_timeout(),
            receipt_poll: DEFAULT_RECEIPT_POLL,
        })
    }

    /// Asks for receipts this often (default [`DEFAULT_RECEIPT_POLL`]).
    pub fn with_receipt_poll(mut self, every: Duration) -> Self {
        self.receipt_poll = every;
        self
    }

    /// The packing account.
    pub fn address(&self) -> Address {
        self.from
    }

    /// The fees a transaction sent now would carry, or [`FeeError`] above the ceiling.
    pub async fn fees(&self) -> Result<Fees, WriterError> {
        let history = self
            .provider
            .get_fee_history(
                FEE_HISTORY_BLOCKS,
                BlockNumberOrTag::Latest,
                &[FEE_TIP_PERCENTILE],
            )
            .await
            .map_err(rpc("eth_feeHistory"))?;
        let fees = match Fees::from_history(&history) {
            Some(fees) => fees,
            None => Fees::legacy(
                self.provider
                    .get_gas_price()
                    .await
                    .map_err(rpc("eth_gasPrice"))?,
            ),
        };
        if fees.max_price() > self.ceiling {
            return Err(FeeError {
                price: fees.max_price(),
                ceiling: self.ceiling,
            }
            .into());
        }
        Ok(fees)
    }

    /// Signs and sends `doEmit(payload)`; returns once the node accepted it into its pool.
    pub async fn submit(&self, payload: &str) -> Result<Submitted, WriterError> {
        let signed = self.sign(payload).await?;
        self.broadcast(&signed).await?;
        Ok(signed.submitted)
    }

    /// Signs `doEmit(payload)` without sending it: the caller can record the transaction's
    /// hash and nonce durably first (a write-ahead record), then [`Writer::broadcast`] it, so
    /// that a crash between the two is seen at start as a transaction that never reached the
    /// pool, never as an emission it does not know of.
    pub async fn sign(&self, payload: &str) -> Result<Signed, WriterError> {
        if payload.len() > self.max_payload_bytes {
            return Err(WriterError::PayloadTooLarge {
                size: payload.len(),
                limit: self.max_payload_bytes,
            });
        }
        let fees = self.fees().await?;
        let input = doEmitCall {
            message: payload.to_owned(),
        }
        .abi_encode();
        let base = TransactionRequest::default()
            .with_from(self.from)
            .with_to(self.contract)
            .with_input(input);
        let estimate = self
            .provider
            .estimate_gas(base.clone())
            .await
            .map_err(rpc("eth_estimateGas"))?;
        let gas_limit = estimate.saturating_mul(GAS_MARGIN_NUMERATOR) / GAS_MARGIN_DENOMINATOR;
        let chain_id = self
            .provider
            .get_chain_id()
            .await
            .map_err(rpc("eth_chainId"))?;
        let nonce = self
            .provider
            .get_transaction_count(self.from)
            .pending()
            .await
            .map_err(rpc("eth_getTransactionCount"))?;
        let request = base
            .with_chain_id(chain_id)
            .with_nonce(nonce)
            .with_gas_limit(gas_limit);
        let request = match fees {
            Fees::Eip1559 {
                max_fee_per_gas,
                max_priority_fee_per_gas,
            } => request
                .with_max_fee_per_gas(max_fee_per_gas)
                .with_max_priority_fee_per_gas(max_priority_fee_per_gas),
            Fees::Legacy { gas_price } => request.with_gas_price(gas_price),
        };
        let envelope = request
            .build(&self.wallet)
            .await
            .map_err(|e| WriterError::Sign(e.to_string()))?;
        Ok(Signed {
            submitted: Submitted {
                tx_hash: *envelope.tx_hash(),
                nonce,
                fees,
                gas_limit,
            },
            envelope,
        })
    }

    /// Sends a signed transaction to the chain's pool.
    pub async fn broadcast(&self, signed: &Signed) -> Result<(), WriterError> {
        // The pending-transaction handle is not kept: the caller follows the transaction by
        // its recorded hash (`receipt`, `nonce_state`).
        let _pending = self
            .provider
            .send_tx_envelope(signed.envelope.clone())
            .await
            .map_err(rpc("eth_sendRawTransaction"))?;
        Ok(())
    }

    /// The transaction's outcome if it is mined.
    pub async fn receipt(&self, tx_hash: B256) -> Result<Option<Emitted>, WriterError> {
        let Some(receipt) = self
            .provider
            .get_transaction_receipt(tx_hash)
            .await
            .map_err(rpc("eth_getTransactionReceipt"))?
        else {
            return Ok(None);
        };
        let (Some(block_height), Some(block_hash)) = (receipt.block_number, receipt.block_hash)
        else {
            return Ok(None);
        };
        if !receipt.status() {
            return Err(WriterError::Reverted {
                tx_hash,
                block_height,
            });
        }
        Ok(Some(Emitted {
            tx_hash,
            block_height,
            block_hash,
            gas_used: receipt.gas_used,
            effective_gas_price: receipt.effective_gas_price,
        }))
    }

    /// Waits for the receipt, up to `packing.receipt_timeout_secs`.
    pub async fn wait(&self, tx_hash: B256) -> Result<Emitted, WriterError> {
        let started = tokio::time::Instant::now();
        loop {
            if let Some(emitted) = self.receipt(tx_hash).await? {
                return Ok(emitted);
            }
            if started.elapsed() >= self.receipt_timeout {
                return Err(WriterError::ReceiptTimeout {
                    tx_hash,
                    waited: started.elapsed(),
                });
            }
            tokio::time::sleep(self.receipt_poll).await;
        }
    }

    /// [`Writer::submit`] then [`Writer::wait`].
    pub async fn emit(&self, payload: &str) -> Result<Emitted, WriterError> {
        let submitted = self.submit(payload).await?;
        self.wait(submitted.tx_hash).await
    }

    /// The packing account's nonces (see the module doc for how a caller reads them).
    pub async fn nonce_state(&self) -> Result<NonceState, WriterError> {
        let latest = self
            .provider
            .get_transaction_count(self.from)
            .latest()
            .await
            .map_err(rpc("eth_getTransactionCount"))?;
        let pending = self
            .provider
            .get_transaction_count(self.from)
            .pending()
            .await
            .map_err(rpc("eth_getTransactionCount"))?;
        Ok(NonceState { latest, pending })
    }

    /// The packing account's balance in wei (an operator's check before packing starts).
    pub async fn balance(&self) -> Result<U256, WriterError> {
        self.provider
            .get_balance(self.from)
            .await
            .map_err(rpc("eth_getBalance"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(base: Vec<u128>, reward: Option<Vec<Vec<u128>>>) -> FeeHistory {
        FeeHistory {
            base_fee_per_gas: base,
            gas_used_ratio: vec![],
            base_fee_per_blob_gas: vec![],
            blob_gas_used_ratio: vec![],
            oldest_block: 0,
            reward,
        }
    }

    #[test]
    fn the_reference_fee_rule() {
        let gwei = 1_000_000_000u128;
        let h = history(
            vec![10 * gwei, 11 * gwei, 12 * gwei],
            Some(vec![vec![gwei], vec![2 * gwei], vec![3 * gwei]]),
        );
        assert_eq!(
            Fees::from_history(&h),
            Some(Fees::Eip1559 {
                max_fee_per_gas: 2 * 12 * gwei + 2 * gwei,
                max_priority_fee_per_gas: 2 * gwei
            })
        );
        assert_eq!(Fees::from_history(&history(vec![gwei], None)), None);
        assert_eq!(Fees::from_history(&history(vec![gwei], Some(vec![]))), None);
        assert_eq!(
            Fees::from_history(&history(vec![], Some(vec![vec![1]]))),
            None
        );
        assert_eq!(
            Fees::legacy(100 * gwei),
            Fees::Legacy {
                gas_price: 110 * gwei
            }
        );
        assert_eq!(Fees::legacy(u128::MAX).max_price(), u128::MAX / 10);
    }
}
