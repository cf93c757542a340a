//! Wallet signatures over arbitrary bytes: what an owner's ETH or SOL wallet signs to authorize
//! an ephemeral key (`X-SignedPubKey`).
//! - ETH: EIP-191 `personal_sign` of the payload bytes, the signer's address recovered from
//!   the secp256k1 signature and compared with the claimed address case-insensitively, as the
//!   reference does;
//! - SOL: ed25519 over the payload, the public key being the base58 address.
//!
//! Both through raleph-crypto (the secp256k1 library and ed25519-dalek).

/// `0x` + the 20-byte address (lowercase hex) whose key made `signature` over the EIP-191
/// hash of `message`; `None` if the signature is malformed or recovers no key.
pub fn eth_recover(message: &[u8], signature: &[u8]) -> Option<String> {
    raleph_crypto::recover_personal_sign(message, signature)
}

/// Whether `signature` (64 bytes) is the ed25519 signature of `message` by the key whose base58
/// text is `address`.
pub fn sol_verify(address: &str, message: &[u8], signature: &[u8]) -> bool {
    raleph_crypto::sol_verify_bytes(address, message, signature)
}

/// Base58 (Bitcoin alphabet) decoding, for the tests' signatures.
#[cfg(test)]
fn b58_decode(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    if text.is_empty() {
        return None;
    }
    let mut bytes: Vec<u8> = Vec::with_capacity(text.len());
    for c in text.bytes() {
        let mut carry = ALPHABET.iter().position(|&a| a == c)? as u32;
        for byte in bytes.iter_mut().rev() {
            carry += u32::from(*byte) * 58;
            *byte = (carry & 0xff) as u8;
            carry >>= 8;
        }
        while carry > 0 {
            bytes.insert(0, (carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    let zeros = text.bytes().take_while(|&c| c == b'1').count();
    let mut out = vec![0u8; zeros];
    out.extend(bytes.into_iter().skip_while(|&b| b == 0));
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use raleph_crypto::{Chain, EthSigner, SignedFields, SolSigner, verification_buffer};

    #[test]
    fn base58_round_trips_a_solana_address() {
        let signer = SolSigner::from_seed(&[9; 32]);
        let key = b58_decode(&signer.address()).unwrap();
        assert_eq!(key.len(), 32);
        assert_eq!(b58_decode("11"), Some(vec![0, 0]));
        assert_eq!(b58_decode("0OIl"), None);
        assert_eq!(b58_decode(""), None);
    }

    fn sol_signature(signed: &str) -> Vec<u8> {
        let value: serde_json::Value = serde_json::from_str(signed).unwrap();
        b58_decode(value["signature"].as_str().unwrap()).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Whatever raleph-crypto's ETH signer signs, the recovery here finds its address.
        #[test]
        fn eth_recovery_agrees_with_the_secp256k1_library(
            secret in prop::array::uniform32(1u8..),
            item_hash in "[0-9a-f]{64}",
        ) {
            let signer = EthSigner::from_secret_bytes(&secret).unwrap();
            let address = signer.address();
            let fields = SignedFields {
                chain: Chain::Eth,
                sender: &address,
                message_type: "POST",
                item_hash: &item_hash,
                time: 0.0,
            };
            let signature = hex::decode(&signer.sign_message(&fields)[2..]).unwrap();
            let buffer = verification_buffer(&fields);
            let recovered = eth_recover(buffer.as_bytes(), &signature).unwrap();
            prop_assert!(recovered.eq_ignore_ascii_case(&address));
            let other = eth_recover(b"another message", &signature);
            prop_assert!(other.is_none_or(|o| !o.eq_ignore_ascii_case(&address)));
        }

        /// Whatever ed25519-dalek signs (through raleph-crypto's SOL signer) verifies here,
        /// and nothing else does.
        #[test]
        fn ed25519_agrees_with_dalek(seed in prop::array::uniform32(any::<u8>()), flip in 0usize..64) {
            let signer = SolSigner::from_seed(&seed);
            let address = signer.address();
            let fields = SignedFields {
                chain: Chain::Sol,
                sender: &address,
                message_type: "STORE",
                item_hash: "00ff",
                time: 0.0,
            };
            let signature = sol_signature(&signer.sign_message(&fields));
            let buffer = verification_buffer(&fields);
            prop_assert!(sol_verify(&address, buffer.as_bytes(), &signature));
            let mut tampered = signature.clone();
            tampered[flip] ^= 0x10;
            prop_assert!(!sol_verify(&address, buffer.as_bytes(), &tampered));
            prop_assert!(!sol_verify(&address, b"other", &signature));
        }
    }
}
