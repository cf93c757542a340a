//! NULS (legacy v1) and NULS2.
//!
//! Both sign `"\x18NULS Signed Message:\n" ‖ varint(len(buffer)) ‖ buffer` with
//! secp256k1/sha256, and both derive the address from the key as
//! `chain_id (i16 LE) ‖ address type 1 ‖ ripemd160(sha256(key))` followed by an
//! xor checksum byte, base58 encoded. The chain id is read from the sender.
//!
//! * NULS2 (pyaleph `chains/nuls2.py`, `nuls2` package): base64 of a 65-byte
//!   recoverable signature in Electrum layout (recid + 27 first); the address
//!   gets a text prefix (`NULS` for chain 1, `tNULS` for chain 2) plus one letter.
//! * NULS v1 (pyaleph `chains/nuls.py`, best effort): hex of a serialized
//!   `NulsSignature` (varint-length key, one algorithm byte, varint-length DER
//!   signature). Its reference formats the message with `str.format`, so what is
//!   actually signed is the *Python repr* of the prefixed bytes (`b'…'`), not the
//!   bytes themselves; this is reproduced here.

use secp256k1::ecdsa::{RecoverableSignature, RecoveryId, Signature};
use secp256k1::{Message, PublicKey};

use crate::util::{b58_decode, b64_decode_lenient, hash160, py_bytes_repr, sha256, varint};
use crate::{SignedFields, VerifyError, verification_buffer};

const PREFIX: &[u8] = b"\x18NULS Signed Message:\n";

fn prefixed_buffer(buffer: &[u8]) -> Vec<u8> {
    let mut m = varint(buffer.len());
    m.extend_from_slice(buffer);
    m
}

fn xor(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |acc, b| acc ^ b)
}

/// `chain_id ‖ 1 ‖ hash160(key)`.
fn address_hash(key: &[u8], chain_id: i16) -> Vec<u8> {
    let mut h = Vec::with_capacity(23);
    h.extend_from_slice(&chain_id.to_le_bytes());
    h.push(1);
    h.extend_from_slice(&hash160(key));
    h
}

/// base58 of the hash followed by its xor checksum.
fn encode_hash(hash: &[u8]) -> String {
    let mut v = hash.to_vec();
    v.push(xor(hash));
    bs58::encode(v).into_string()
}

/// The chain id stored in the first two bytes of a base58 address body.
fn chain_id_of(body: &str) -> Result<i16, VerifyError> {
    let decoded = b58_decode(body)
        .ok_or_else(|| VerifyError::InvalidSender("NULS address is not base58".into()))?;
    // The reference drops the trailing checksum byte and needs two bytes left.
    match decoded.as_slice() {
        [a, b, _, ..] => Ok(i16::from_le_bytes([*a, *b])),
        _ => Err(VerifyError::InvalidSender(
            "NULS address is too short".into(),
        )),
    }
}

pub(crate) fn verify_nuls2(f: &SignedFields, signature: &str) -> Result<(), VerifyError> {
    let body = if let Some(rest) = f.sender.strip_prefix("NULS") {
        rest.get(1..)
    } else if let Some(rest) = f.sender.strip_prefix("tNULS") {
        rest.get(1..)
    } else {
        None
    }
    .ok_or_else(|| {
        VerifyError::InvalidSender("a NULS2 sender starts with \"NULS\" or \"tNULS\"".into())
    })?;
    let chain_id = chain_id_of(body)?;
    let text_prefix = match chain_id {
        1 => "NULS",
        2 => "tNULS",
        other => {
            return Err(VerifyError::InvalidSender(format!(
                "unsupported NULS chain id {other}"
            )));
        }
    };
    let raw = b64_decode_lenient(signature)
        .ok_or_else(|| VerifyError::Malformed("NULS2 signature is not base64".into()))?;
    if raw.len() != 65 {
        return Err(VerifyError::Malformed(format!(
            "NULS2 signature has {} bytes, expected 65",
            raw.len()
        )));
    }
    let recid = match raw[0] {
        v @ 27..=30 => RecoveryId::from_u8_masked(v - 27),
        v => {
            return Err(VerifyError::Malformed(format!(
                "NULS2 signature recovery byte {v} is not 27-30"
            )));
        }
    };
    let sig = RecoverableSignature::from_compact(&raw[1..], recid)
        .map_err(|_| VerifyError::Malformed("NULS2 signature r or s is out of range".into()))?;
    let mut message = PREFIX.to_vec();
    message.extend_from_slice(&prefixed_buffer(verification_buffer(f).as_bytes()));
    let key = sig
        .recover_ecdsa(Message::from_digest(sha256(&message)))
        .map_err(|_| VerifyError::BadSignature)?;
    // ascii_letters[len(prefix) - 1]: 'd' after "NULS", 'e' after "tNULS".
    let letter = if text_prefix == "NULS" { 'd' } else { 'e' };
    let address = format!(
        "{text_prefix}{letter}{}",
        encode_hash(&address_hash(&key.serialize(), chain_id))
    );
    if address == f.sender {
        Ok(())
    } else {
        Err(VerifyError::BadSignature)
    }
}

/// Reads a varint-length-prefixed field like the reference's `read_by_length`
/// (a short buffer yields a short field rather than an error).
fn read_by_length(buf: &[u8], cursor: usize) -> Option<(usize, &[u8])> {
    let first = *buf.get(cursor)?;
    let (len, size) = match first {
        0..=252 => (u64::from(first), 1),
        253 => {
            let b = buf.get(cursor + 1..cursor + 3)?;
            (u64::from(u16::from_le_bytes([b[0], b[1]])), 3)
        }
        254 => {
            let b: [u8; 4] = buf.get(cursor + 1..cursor + 5)?.try_into().ok()?;
            (u64::from(u32::from_le_bytes(b)), 5)
        }
        255 => {
            let b: [u8; 8] = buf.get(cursor + 1..cursor + 9)?.try_into().ok()?;
            (u64::from_le_bytes(b), 9)
        }
    };
    let start = cursor + size;
    let end = usize::try_from(len)
        .ok()
        .and_then(|l| start.checked_add(l))
        .map_or(buf.len(), |e| e.min(buf.len()));
    let value = buf.get(start.min(buf.len())..end)?;
    Some((size + value.len(), value))
}

pub(crate) fn verify_nuls1(f: &SignedFields, signature: &str) -> Result<(), VerifyError> {
    let raw = hex::decode(signature)
        .map_err(|_| VerifyError::Malformed("NULS signature is not hex".into()))?;
    let malformed = || VerifyError::Malformed("NULS signature is truncated".into());
    let (used, key_bytes) = read_by_length(&raw, 0).ok_or_else(malformed)?;
    // One algorithm byte (always 0) follows the key.
    raw.get(used).ok_or_else(malformed)?;
    let (_, der) = read_by_length(&raw, used + 1).ok_or_else(malformed)?;
    let chain_id = chain_id_of(f.sender)?;
    if encode_hash(&address_hash(key_bytes, chain_id)) != f.sender {
        return Err(VerifyError::Mismatch);
    }
    let key = PublicKey::from_slice(key_bytes).map_err(|_| {
        VerifyError::Malformed("NULS signature key is not a secp256k1 point".into())
    })?;
    let sig = Signature::from_der(der)
        .map_err(|_| VerifyError::Malformed("NULS signature is not DER".into()))?;
    let mut text = PREFIX.to_vec();
    text.extend_from_slice(
        py_bytes_repr(&prefixed_buffer(verification_buffer(f).as_bytes())).as_bytes(),
    );
    // No low-s normalisation: the reference (coincurve) does not normalise either.
    sig.verify(Message::from_digest(sha256(&text)), &key)
        .map_err(|_| VerifyError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_by_length_is_lenient_on_short_input() {
        assert_eq!(read_by_length(&[3, 1, 2], 0), Some((3, &[1u8, 2][..])));
        assert_eq!(read_by_length(&[], 0), None);
        assert_eq!(read_by_length(&[255, 1], 0), None);
        assert_eq!(read_by_length(&[2, 9], 5), None);
    }
}
