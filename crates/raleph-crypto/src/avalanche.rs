//! Avalanche (`AVAX`), X-chain style signed messages.
//!
//! Signed bytes: `"\x1aAvalanche Signed Message:\n" ‖ u32be(len) ‖ buffer`,
//! hashed with sha256. The signature is "cb58": base58 of the 65-byte
//! recoverable signature (r ‖ s ‖ recid) followed by the last 4 bytes of its
//! sha256. The recovered compressed key gives `ripemd160(sha256(key))`, bech32
//! encoded with hrp `avax`; `"{chain_id}-avax1…"` must equal the sender, where
//! `chain_id` is the part of the sender before its first `-` (pyaleph
//! `chains/avalanche.py`).
//!
//! Note: the Python SDK 2.4.0 signs AVAX messages with its Ethereum account (an
//! `0x` sender and an EIP-191 signature); the reference rejects those, and so
//! does this verifier.

use secp256k1::Message;
use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};

use crate::util::{b58_decode_lenient, bech32_encode, hash160, sha256};
use crate::{SignedFields, VerifyError, verification_buffer};

pub(crate) fn signed_bytes(buffer: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(buffer.len() + 32);
    m.extend_from_slice(b"\x1aAvalanche Signed Message:\n");
    m.extend_from_slice(&(buffer.len() as u32).to_be_bytes());
    m.extend_from_slice(buffer.as_bytes());
    m
}

pub(crate) fn verify(f: &SignedFields, signature: &str) -> Result<(), VerifyError> {
    let (chain_id, rest) = f.sender.split_once('-').ok_or_else(|| {
        VerifyError::InvalidSender("an Avalanche sender looks like \"X-avax1…\"".into())
    })?;
    if !rest.contains('1') {
        return Err(VerifyError::InvalidSender(
            "an Avalanche sender looks like \"X-avax1…\"".into(),
        ));
    }
    let raw = b58_decode_lenient(signature)
        .ok_or_else(|| VerifyError::Malformed("Avalanche signature is not base58".into()))?;
    if raw.len() < 4 {
        return Err(VerifyError::Malformed(
            "Avalanche signature is too short".into(),
        ));
    }
    let (sig, checksum) = raw.split_at(raw.len() - 4);
    if sha256(sig)[28..] != *checksum {
        return Err(VerifyError::Malformed(
            "Avalanche signature checksum does not match".into(),
        ));
    }
    if sig.len() != 65 {
        return Err(VerifyError::Malformed(format!(
            "Avalanche signature has {} bytes, expected 65",
            sig.len()
        )));
    }
    let recid = match sig[64] {
        r @ 0..=3 => RecoveryId::from_u8_masked(r),
        r => {
            return Err(VerifyError::Malformed(format!(
                "Avalanche signature recovery id {r} is not 0-3"
            )));
        }
    };
    let sig = RecoverableSignature::from_compact(&sig[..64], recid)
        .map_err(|_| VerifyError::Malformed("Avalanche signature r or s is out of range".into()))?;
    let digest = sha256(&signed_bytes(&verification_buffer(f)));
    let key = sig
        .recover_ecdsa(Message::from_digest(digest))
        .map_err(|_| VerifyError::BadSignature)?;
    let address = format!(
        "{chain_id}-{}",
        bech32_encode("avax", &hash160(&key.serialize()))
    );
    if address == f.sender {
        Ok(())
    } else {
        Err(VerifyError::BadSignature)
    }
}
