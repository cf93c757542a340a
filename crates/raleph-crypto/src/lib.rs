//! Signature verification for Aleph messages, on every chain the reference node
//! (pyaleph) verifies, plus signing for ETH and SOL.
//!
//! A signature covers four envelope fields, joined by newlines (the
//! "verification buffer", see [`verification_buffer`]); each chain then wraps
//! that buffer in its own way. The scheme for a chain comes from
//! [`Chain::scheme`]. The rules follow the reference verifiers byte for byte,
//! including their leniencies (e.g. EVM addresses compare case-insensitively),
//! so raleph accepts and rejects the same messages as the rest of the network;
//! the documented exception is that DOT signatures whose `data` lacks a `0x`
//! prefix (what the Python SDK writes) are accepted.
//!
//! Everything here is pure and must never panic on input from the network.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod avalanche;
mod cosmos;
mod ed25519;
mod evm;
mod nuls;
mod solana;
mod substrate;
mod tezos;
mod util;

pub use evm::{EthSigner, InvalidSecretKey, recover_personal_sign};
pub use raleph_message::Chain;
use raleph_message::SignatureScheme;
pub use solana::{SolSigner, verify_bytes as sol_verify_bytes};

/// The fields a signature covers, plus envelope time (Tezos micheline mode uses it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SignedFields<'a> {
    pub chain: Chain,
    pub sender: &'a str,
    pub message_type: &'a str,
    pub item_hash: &'a str,
    /// The envelope `time` (seconds since the Unix epoch).
    pub time: f64,
}

/// Why a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The `signature` field cannot be decoded in the chain's format.
    #[error("malformed signature: {0}")]
    Malformed(String),
    /// The `sender` is not a valid address for the chain.
    #[error("invalid sender address: {0}")]
    InvalidSender(String),
    /// The signature is well formed but was made by a key other than the sender's.
    #[error("the signature was made by a different key than the sender's address")]
    Mismatch,
    /// The signature does not match the signed fields for the sender's key.
    #[error("the signature does not match the message fields (chain, sender, type, item_hash)")]
    BadSignature,
    /// The chain is known but has no signature verifier (the reference rejects them too).
    #[error("signatures on chain {0} cannot be verified: the chain has no verifier")]
    UnsupportedChain(Chain),
}

/// `"{chain}\n{sender}\n{type}\n{item_hash}"`, the text every chain signs.
pub fn verification_buffer(f: &SignedFields) -> String {
    let mut s = String::with_capacity(
        f.chain.as_str().len() + f.sender.len() + f.message_type.len() + f.item_hash.len() + 3,
    );
    s.push_str(f.chain.as_str());
    s.push('\n');
    s.push_str(f.sender);
    s.push('\n');
    s.push_str(f.message_type);
    s.push('\n');
    s.push_str(f.item_hash);
    s
}

/// `Ok(())` iff `signature` (the message's `signature` string field) is valid for
/// these fields on this chain.
pub fn verify(f: &SignedFields, signature: &str) -> Result<(), VerifyError> {
    match f.chain.scheme() {
        SignatureScheme::Evm => evm::verify(f, signature),
        SignatureScheme::Avalanche => avalanche::verify(f, signature),
        SignatureScheme::Solana => solana::verify(f, signature),
        SignatureScheme::Substrate => substrate::verify(f, signature),
        SignatureScheme::Cosmos => cosmos::verify(f, signature),
        SignatureScheme::Nuls2 => nuls::verify_nuls2(f, signature),
        SignatureScheme::Nuls => nuls::verify_nuls1(f, signature),
        SignatureScheme::Tezos => tezos::verify(f, signature),
        _ => Err(VerifyError::UnsupportedChain(f.chain)),
    }
}

/// Verifies many signatures at once. The results are those of [`verify`] on each
/// item, in order; ed25519 signatures (SOL, ES) are checked with batch
/// verification, which is about twice as fast when most signatures are valid.
pub fn verify_many(items: &[(SignedFields, &str)]) -> Vec<Result<(), VerifyError>> {
    let mut results: Vec<Result<(), VerifyError>> = Vec::with_capacity(items.len());
    let mut batch = Vec::new();
    for (i, (fields, signature)) in items.iter().enumerate() {
        if fields.chain.scheme() == SignatureScheme::Solana {
            match solana::prepare(fields, signature) {
                Ok(prepared) => {
                    batch.push((i, prepared));
                    // Placeholder, filled in by the batch below.
                    results.push(Ok(()));
                }
                Err(e) => results.push(Err(e)),
            }
        } else {
            results.push(verify(fields, signature));
        }
    }
    for (i, outcome) in solana::verify_prepared_batch(batch) {
        if let Some(slot) = results.get_mut(i) {
            *slot = outcome;
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_layout() {
        let f = SignedFields {
            chain: Chain::Eth,
            sender: "0xabc",
            message_type: "POST",
            item_hash: "00ff",
            time: 0.0,
        };
        assert_eq!(verification_buffer(&f), "ETH\n0xabc\nPOST\n00ff");
    }

    #[test]
    fn unsupported_chains() {
        for chain in [Chain::Aurora, Chain::Somnia] {
            let f = SignedFields {
                chain,
                sender: "0xabc",
                message_type: "POST",
                item_hash: "00",
                time: 0.0,
            };
            assert_eq!(
                verify(&f, "0x00"),
                Err(VerifyError::UnsupportedChain(chain))
            );
        }
    }
}
