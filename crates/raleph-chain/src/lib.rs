//! Blockchain anchoring on EVM chains (Ethereum, BNB Chain, Avalanche C-chain, ...): what a
//! raleph node needs to commit batches of messages to a chain and to read them back, as the
//! reference node (pyaleph) does with its `AlephSync` contract (`shared/spec/anchoring.md`).
//!
//! What it owns:
//! - [`config`]: one EVM chain's settings (`[[chains.evm]]` in the node's file), validated, and
//!   the packing key, read from a file and never printed;
//! - [`events`]: the contract's ABI (`SyncEvent`, `MessageEvent`, `doEmit`, `doMessage`) and
//!   the decoding of its logs;
//! - [`payload`]: the sync payload protocols (`aleph`, `aleph-offchain`, and the
//!   `smart-contract` message event, [`payload::ContractMessage`]), parsed under named
//!   [`payload::Limits`], and the writer's side of them (the archive and the offchain
//!   wrapper);
//! - [`merkle`]: the Merkle tree over a batch's item hashes that raleph adds to its offchain
//!   payload, with proofs a Solidity verifier can check;
//! - [`reader`]: `eth_getLogs` in bounded windows at a confirmation depth, authorized emitters
//!   only, with reorg detection over a bounded memory of block hashes;
//! - [`writer`]: `doEmit` from the packing key with the reference's fee rule and a gas-price
//!   ceiling, and the nonce state a caller needs to tell a dropped transaction;
//! - [`verify`]: checking a message's anchoring proof against a chain RPC.
//!
//! What it does not own: storage of anything. The reader's position and the writer's pending
//! transaction are values the caller persists (the node, with its store); archives are fetched
//! and pinned by the caller; messages are verified by the pipeline like any other.
//!
//! The JSON-RPC transport is ours ([`transport`]), on the workspace's reqwest, so alloy brings
//! no second HTTP stack; every response is bounded in size.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod config;
pub mod events;
pub mod merkle;
pub mod payload;
pub mod reader;
pub mod rpc;
#[cfg(feature = "testing")]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub mod testing;
pub mod transport;
pub mod verify;
pub mod writer;

pub use alloy_primitives::{Address, B256};
pub use config::{ConfigError, EvmChainConfig, PackingConfig, PackingKey};
pub use events::{ChainEvent, EventKind};
pub use payload::{ArchiveMessage, ContractMessage, Limits, PayloadError, SyncPayload};
pub use reader::{Reader, ReaderError, ReaderPosition, Step};
pub use writer::{Emitted, FeeError, Fees, NonceState, Signed, Submitted, Writer, WriterError};
