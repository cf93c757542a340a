//! Solana and Eclipse (`SOL`, `ES`): ed25519 over the raw verification buffer.
//!
//! The `signature` field is a JSON object `{"signature": base58(64 bytes),
//! "publicKey": base58(32 bytes)}`, optionally with `"version": 1`. The
//! reference (pyaleph `chains/solana.py`) requires `publicKey` to be the sender
//! string itself, so no address derivation is involved.

use crate::ed25519::{self, Prepared};
use crate::util::{b58_decode_lenient, json_object, json_str};
use crate::{SignedFields, VerifyError, verification_buffer};

/// Structural checks, shared by single and batch verification.
pub(crate) struct PreparedSol {
    prepared: Option<Prepared>,
    buffer: String,
}

pub(crate) fn prepare(f: &SignedFields, signature: &str) -> Result<PreparedSol, VerifyError> {
    let map = json_object(signature, "Solana")?;
    let sig_b58 = json_str(&map, "signature", "Solana")?;
    let key_b58 = json_str(&map, "publicKey", "Solana")?;
    if let Some(version) = map.get("version") {
        // Python compares `version != 1`, which also lets 1.0 and true through.
        let is_one = match version {
            serde_json::Value::Number(n) => n.as_f64() == Some(1.0),
            serde_json::Value::Bool(b) => *b,
            _ => false,
        };
        if !is_one {
            return Err(VerifyError::Malformed(format!(
                "unsupported Solana signature version {version}"
            )));
        }
    }
    let sig = b58_decode_lenient(sig_b58)
        .ok_or_else(|| VerifyError::Malformed("Solana signature is not base58".into()))?;
    let key = b58_decode_lenient(key_b58)
        .ok_or_else(|| VerifyError::Malformed("Solana publicKey is not base58".into()))?;
    if key_b58 != f.sender {
        return Err(VerifyError::Mismatch);
    }
    let key: [u8; 32] = key.try_into().map_err(|k: Vec<u8>| {
        VerifyError::Malformed(format!("Solana publicKey has {} bytes, not 32", k.len()))
    })?;
    let sig: [u8; 64] = sig.try_into().map_err(|s: Vec<u8>| {
        VerifyError::Malformed(format!("Solana signature has {} bytes, not 64", s.len()))
    })?;
    Ok(PreparedSol {
        prepared: ed25519::prepare(&key, &sig),
        buffer: verification_buffer(f),
    })
}

fn finish(p: &PreparedSol) -> Result<(), VerifyError> {
    match &p.prepared {
        Some(prepared) if ed25519::verify_prepared(prepared, p.buffer.as_bytes()) => Ok(()),
        _ => Err(VerifyError::BadSignature),
    }
}

/// Whether `signature` (64 bytes) is the ed25519 signature of `message` by the key whose
/// base58 text is `address` (a Solana address). For payloads other than Aleph messages.
pub fn verify_bytes(address: &str, message: &[u8], signature: &[u8]) -> bool {
    let Some(key) = b58_decode_lenient(address) else {
        return false;
    };
    let (Ok(key), Ok(signature)) = (<[u8; 32]>::try_from(key), <[u8; 64]>::try_from(signature))
    else {
        return false;
    };
    ed25519::verify(&key, message, &signature)
}

pub(crate) fn verify(f: &SignedFields, signature: &str) -> Result<(), VerifyError> {
    finish(&prepare(f, signature)?)
}

/// Below this many signatures a batch saves nothing.
const MIN_BATCH: usize = 4;
/// A failed batch is re-checked one by one, so keep batches small enough that a
/// single bad signature does not cost much.
const MAX_BATCH: usize = 64;

/// Verifies prepared items, returning `(index, outcome)` for each.
pub(crate) fn verify_prepared_batch(
    items: Vec<(usize, PreparedSol)>,
) -> Vec<(usize, Result<(), VerifyError>)> {
    let mut out = Vec::with_capacity(items.len());
    for chunk in items.chunks(MAX_BATCH) {
        let batchable: Vec<(&Prepared, &[u8])> = chunk
            .iter()
            .filter_map(|(_, p)| p.prepared.as_ref().map(|k| (k, p.buffer.as_bytes())))
            .collect();
        let all_ok = chunk.len() >= MIN_BATCH
            && batchable.len() == chunk.len()
            && ed25519::verify_batch(&batchable);
        for (i, p) in chunk {
            out.push((*i, if all_ok { Ok(()) } else { finish(p) }));
        }
    }
    out
}

/// Signs Aleph messages with a Solana (ed25519) key, like the Python SDK's `SOLAccount`.
#[derive(Clone)]
pub struct SolSigner {
    key: ed25519_dalek::SigningKey,
}

impl std::fmt::Debug for SolSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SolSigner")
            .field("address", &self.address())
            .finish_non_exhaustive()
    }
}

impl SolSigner {
    /// From the 32-byte ed25519 seed (the first half of a Phantom-style secret key).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        SolSigner {
            key: ed25519_dalek::SigningKey::from_bytes(seed),
        }
    }

    /// A fresh key from the operating system's random source.
    pub fn new_random() -> Self {
        let seed: [u8; 32] = rand::random();
        Self::from_seed(&seed)
    }

    /// The 32-byte seed.
    pub fn seed_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The 32-byte ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// The ed25519 signature of any bytes (for payloads other than Aleph messages).
    pub fn sign_bytes(&self, message: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer;
        self.key.sign(message).to_bytes()
    }

    /// The base58 public key, which is the Solana address.
    pub fn address(&self) -> String {
        bs58::encode(self.key.verifying_key().as_bytes()).into_string()
    }

    /// The `signature` field for these fields, formatted exactly as the Python SDK
    /// does (`json.dumps` with default separators, `publicKey` first).
    pub fn sign_message(&self, f: &SignedFields) -> String {
        use ed25519_dalek::Signer;
        let sig = self.key.sign(verification_buffer(f).as_bytes());
        format!(
            "{{\"publicKey\": \"{}\", \"signature\": \"{}\"}}",
            self.address(),
            bs58::encode(sig.to_bytes()).into_string()
        )
    }
}
