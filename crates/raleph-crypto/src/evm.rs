//! ETH and the other EVM chains: EIP-191 `personal_sign` over the verification
//! buffer, secp256k1 public-key recovery, address = last 20 bytes of
//! keccak256(uncompressed key).
//!
//! The reference (pyaleph `chains/evm.py`) calls `eth_account`'s
//! `Account.recover_message` and compares addresses case-insensitively, so the
//! sender's EIP-55 checksum is not enforced. The signature parsing below follows
//! `eth_account`/`hexbytes`: optional `0x`/`0X` prefix, an odd number of hex
//! digits gets a leading zero, and `v` may be 27/28, 0/1, or an EIP-155 value
//! (35 and up).

use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use secp256k1::{Message, PublicKey, SecretKey};
use sha3::{Digest, Keccak256};

use crate::{SignedFields, VerifyError, verification_buffer};

fn keccak256(data: &[u8]) -> [u8; 32] {
    Keccak256::digest(data).into()
}

/// The EIP-191 "version 0x45" hash of a text message.
fn personal_message_hash(text: &str) -> [u8; 32] {
    let mut h = Keccak256::new();
    h.update(b"\x19Ethereum Signed Message:\n");
    h.update(text.len().to_string().as_bytes());
    h.update(text.as_bytes());
    h.finalize().into()
}

fn address_bytes(key: &PublicKey) -> [u8; 20] {
    let uncompressed = key.serialize_uncompressed();
    let hash = keccak256(&uncompressed[1..]);
    let mut out = [0u8; 20];
    out.copy_from_slice(&hash[12..]);
    out
}

/// EIP-55 mixed-case checksum address, `0x`-prefixed.
fn checksum_address(addr: &[u8; 20]) -> String {
    let lower = hex::encode(addr);
    let hash = keccak256(lower.as_bytes());
    let mut out = String::with_capacity(42);
    out.push_str("0x");
    for (i, c) in lower.chars().enumerate() {
        let nibble = (hash[i / 2] >> if i % 2 == 0 { 4 } else { 0 }) & 0xf;
        if c.is_ascii_alphabetic() && nibble >= 8 {
            out.push(c.to_ascii_uppercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `HexBytes(signature)` then `to_standard_signature_bytes`.
fn parse_signature(signature: &str) -> Result<RecoverableSignature, VerifyError> {
    let digits = signature
        .strip_prefix("0x")
        .or_else(|| signature.strip_prefix("0X"))
        .unwrap_or(signature);
    let bytes = if signature.len() % 2 == 1 {
        hex::decode(format!("0{digits}"))
    } else {
        hex::decode(digits)
    }
    .map_err(|_| VerifyError::Malformed("EVM signature is not a hex string".into()))?;
    if bytes.len() != 65 {
        return Err(VerifyError::Malformed(format!(
            "EVM signature has {} bytes, expected 65 (r, s, v)",
            bytes.len()
        )));
    }
    let v = bytes[64];
    let recid = match v {
        0 | 1 => v,
        27 | 28 => v - 27,
        35.. => (v - 35) % 2,
        _ => {
            return Err(VerifyError::Malformed(format!(
                "EVM signature has v = {v}, expected 27 or 28"
            )));
        }
    };
    RecoverableSignature::from_compact(&bytes[..64], RecoveryId::from_u8_masked(recid))
        .map_err(|_| VerifyError::Malformed("EVM signature r or s is out of range".into()))
}

/// The address (`0x` + lowercase hex) whose key made `signature` (65 bytes: r, s, v as
/// `eth_account` accepts it) over the EIP-191 `personal_sign` hash of `message`; `None` if
/// the signature is malformed or recovers no key. For payloads other than Aleph messages,
/// such as the compute API's signed keys.
pub fn recover_personal_sign(message: &[u8], signature: &[u8]) -> Option<String> {
    let sig = parse_signature(&hex::encode(signature)).ok()?;
    let mut h = Keccak256::new();
    h.update(b"\x19Ethereum Signed Message:\n");
    h.update(message.len().to_string().as_bytes());
    h.update(message);
    let digest: [u8; 32] = h.finalize().into();
    let key = sig.recover_ecdsa(Message::from_digest(digest)).ok()?;
    Some(format!("0x{}", hex::encode(address_bytes(&key))))
}

pub(crate) fn verify(f: &SignedFields, signature: &str) -> Result<(), VerifyError> {
    let sig = parse_signature(signature)?;
    let digest = personal_message_hash(&verification_buffer(f));
    let key = sig
        .recover_ecdsa(Message::from_digest(digest))
        .map_err(|_| VerifyError::BadSignature)?;
    let recovered = format!("0x{}", hex::encode(address_bytes(&key)));
    // Any other signature recovers *some* key: a wrong signature and a wrong
    // sender look the same here, so report it as a bad signature.
    if recovered.eq_ignore_ascii_case(f.sender) {
        Ok(())
    } else {
        Err(VerifyError::BadSignature)
    }
}

/// Signs Aleph messages with an Ethereum key, byte-for-byte like the Python
/// SDK's `ETHAccount` (RFC 6979 nonces, so signatures are deterministic).
#[derive(Clone)]
pub struct EthSigner {
    secret: SecretKey,
}

impl std::fmt::Debug for EthSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EthSigner")
            .field("address", &self.address())
            .finish_non_exhaustive()
    }
}

/// A 32-byte string that is not a valid secp256k1 secret key (zero or ≥ the group order).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid secp256k1 secret key (zero or not below the curve order)")]
pub struct InvalidSecretKey;

impl EthSigner {
    /// From a 32-byte secret key.
    pub fn from_secret_bytes(secret: &[u8; 32]) -> Result<Self, InvalidSecretKey> {
        SecretKey::from_secret_bytes(*secret)
            .map(|secret| EthSigner { secret })
            .map_err(|_| InvalidSecretKey)
    }

    /// A fresh key from the operating system's random source.
    pub fn new_random() -> Self {
        loop {
            let bytes: [u8; 32] = rand::random();
            if let Ok(signer) = Self::from_secret_bytes(&bytes) {
                return signer;
            }
        }
    }

    /// The 32-byte secret key.
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.secret.to_secret_bytes()
    }

    /// The public key, SEC1 uncompressed: `0x04` ‖ x ‖ y (65 bytes).
    pub fn public_key_uncompressed(&self) -> [u8; 65] {
        PublicKey::from_secret_key(&self.secret).serialize_uncompressed()
    }

    /// EIP-55 checksummed `0x…` address.
    pub fn address(&self) -> String {
        checksum_address(&address_bytes(&PublicKey::from_secret_key(&self.secret)))
    }

    /// The `signature` field for these fields: `0x` + r ‖ s ‖ v (v = 27 or 28) in hex.
    pub fn sign_message(&self, f: &SignedFields) -> String {
        let digest = personal_message_hash(&verification_buffer(f));
        format!("0x{}", hex::encode(self.sign_digest(digest)))
    }

    /// EIP-191 `personal_sign` of any bytes (what a wallet signs for the compute API's
    /// ephemeral keys): r ‖ s ‖ v, v = 27 or 28.
    pub fn sign_personal(&self, message: &[u8]) -> [u8; 65] {
        let mut h = Keccak256::new();
        h.update(b"\x19Ethereum Signed Message:\n");
        h.update(message.len().to_string().as_bytes());
        h.update(message);
        self.sign_digest(h.finalize().into())
    }

    fn sign_digest(&self, digest: [u8; 32]) -> [u8; 65] {
        let sig = RecoverableSignature::sign_ecdsa_recoverable(
            Message::from_digest(digest),
            &self.secret,
        );
        let (recid, compact) = sig.serialize_compact();
        let mut bytes = [0u8; 65];
        bytes[..64].copy_from_slice(&compact);
        bytes[64] = 27 + recid.to_u8();
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_signatures_recover_their_signer() {
        let signer = EthSigner::from_secret_bytes(&[7; 32]).unwrap();
        let signature = signer.sign_personal(b"{\"pubkey\": 1}");
        let recovered = recover_personal_sign(b"{\"pubkey\": 1}", &signature).unwrap();
        assert!(recovered.eq_ignore_ascii_case(&signer.address()));
        let other = recover_personal_sign(b"{\"pubkey\": 2}", &signature);
        assert!(other.is_none_or(|o| !o.eq_ignore_ascii_case(&signer.address())));
    }
    use raleph_message::Chain;

    #[test]
    fn signature_forms_eth_account_accepts() {
        let signer = EthSigner::from_secret_bytes(&[5; 32]).unwrap();
        let address = signer.address();
        let f = SignedFields {
            chain: Chain::Eth,
            sender: &address,
            message_type: "POST",
            item_hash: "ab",
            time: 0.0,
        };
        let sig = signer.sign_message(&f);
        let body = &sig[2..130];
        let v = u8::from_str_radix(&sig[130..], 16).unwrap();
        let parity = v - 27;
        for (form, ok) in [
            (sig.clone(), true),
            (sig[2..].to_string(), true),
            (format!("0X{}", &sig[2..]), true),
            (sig.to_uppercase().replacen("0X", "0x", 1), true),
            (format!("0x{body}{:02x}", parity), true),
            (format!("0x{body}{:02x}", 35 + 2 * 7 + parity), true),
            (format!("0x{body}{:02x}", 1 - parity + 27), false),
            (format!("0x{body}{:02x}", 29), false),
            (format!("0x{body}"), false),
        ] {
            assert_eq!(verify(&f, &form).is_ok(), ok, "{form}");
        }
    }

    #[test]
    fn eip55() {
        // From the EIP-55 test cases.
        let addr: [u8; 20] = hex::decode("5aaeb6053f3e94c9b9a09f33669435e7ef1beaed")
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(
            checksum_address(&addr),
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
        );
    }
}
