//! Checking an anchoring proof against a chain, trusting no node: the transaction's receipt is
//! read from an RPC endpoint of the verifier's choice, the `SyncEvent` at the proof's log index
//! is decoded, its payload must name the proof's archive and Merkle root, and the proof must
//! lead from the message's leaf to that root.

use std::time::Duration;

use alloy_primitives::{Address, B256};
use alloy_provider::Provider as _;

use crate::events::{ChainEvent, EventKind, decode_log};
use crate::merkle::{leaf, verify};
use crate::payload::{Limits, SyncPayload};
use crate::rpc::Provider;
use crate::transport::HttpTransport;
use raleph_message::Chain;

/// Largest RPC answer read while verifying (a receipt).
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// What is claimed: a message anchored by a transaction, with its path to the batch's root.
#[derive(Clone, Debug)]
pub struct Claim<'a> {
    pub chain: Chain,
    pub item_hash: &'a str,
    pub tx_hash: B256,
    pub log_index: u64,
    pub archive: &'a str,
    pub merkle_root: B256,
    pub proof: &'a [B256],
}

/// What the chain says of a claim that holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub height: u64,
    pub block_hash: B256,
    /// The contract that emitted the event.
    pub contract: Address,
    /// Who called it (the packing account).
    pub emitter: Address,
    /// Blocks on top of the transaction's (1 when it is in the latest block).
    pub confirmations: u64,
}

/// Why a claim does not hold (or could not be checked).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("chain RPC: {0}")]
    Rpc(String),
    #[error("the transaction is not mined (no receipt)")]
    NotMined,
    #[error("the transaction failed")]
    Reverted,
    #[error("the transaction has no log at index {0}")]
    NoSuchLog(u64),
    #[error("the log is not a sync event of this contract: {0}")]
    NotASyncEvent(String),
    #[error("the event's payload names another archive or root: {0}")]
    OtherPayload(String),
    #[error("the proof does not lead from the message to the batch's root")]
    BadProof,
}

/// Checks `claim` against the chain at `rpc_url`; `contract`, when given, must be the
/// emitting contract.
pub async fn check(
    rpc_url: &str,
    claim: &Claim<'_>,
    contract: Option<Address>,
) -> Result<Verified, VerifyError> {
    // The proof first: no RPC call for a claim that cannot hold.
    if !verify(claim.proof, claim.merkle_root, leaf(claim.item_hash)) {
        return Err(VerifyError::BadProof);
    }
    let provider = provider(rpc_url)?;
    let rpc = |e: alloy_transport::TransportError| VerifyError::Rpc(e.to_string());
    let receipt = provider
        .get_transaction_receipt(claim.tx_hash)
        .await
        .map_err(rpc)?
        .ok_or(VerifyError::NotMined)?;
    if !receipt.status() {
        return Err(VerifyError::Reverted);
    }
    let log = receipt
        .inner
        .logs()
        .iter()
        .find(|log| log.log_index == Some(claim.log_index))
        .ok_or(VerifyError::NoSuchLog(claim.log_index))?;
    if let Some(expected) = contract
        && log.address() != expected
    {
        return Err(VerifyError::NotASyncEvent(format!(
            "emitted by {}, not {expected}",
            log.address()
        )));
    }
    let event: ChainEvent =
        decode_log(claim.chain, log).map_err(|e| VerifyError::NotASyncEvent(e.to_string()))?;
    let EventKind::Sync(payload) = &event.kind else {
        return Err(VerifyError::NotASyncEvent("a MessageEvent".to_owned()));
    };
    match SyncPayload::parse(payload, &Limits::default()) {
        Ok(SyncPayload::AlephOffchain { cid, merkle_root })
            if cid == claim.archive && merkle_root == Some(claim.merkle_root) => {}
        Ok(other) => return Err(VerifyError::OtherPayload(format!("{other:?}"))),
        Err(e) => return Err(VerifyError::OtherPayload(e.to_string())),
    }
    let head = provider.get_block_number().await.map_err(rpc)?;
    Ok(Verified {
        height: event.height,
        block_hash: event.block_hash,
        contract: log.address(),
        emitter: event.emitter,
        confirmations: head.saturating_sub(event.height) + 1,
    })
}

fn provider(rpc_url: &str) -> Result<Provider, VerifyError> {
    let url = reqwest::Url::parse(rpc_url).map_err(|e| VerifyError::Rpc(e.to_string()))?;
    let transport = HttpTransport::new(url, Duration::from_secs(30), MAX_RESPONSE_BYTES)
        .map_err(|e| VerifyError::Rpc(e.to_string()))?;
    Ok(Provider::new(transport.into_client()))
}
