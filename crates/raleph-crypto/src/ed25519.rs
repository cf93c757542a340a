//! ed25519 with the acceptance rules of libsodium's `crypto_sign_verify_detached`,
//! which the reference uses for Solana (PyNaCl) and Tezos (libnacl).
//!
//! libsodium rejects non-canonical public keys, small-order public keys and `R`
//! values, non-canonical `s`, and compares the recomputed `R` byte for byte.
//! `ed25519-dalek`'s `verify_strict` does all of that except the canonical
//! public-key check, which is added here.

use curve25519_dalek::edwards::CompressedEdwardsY;
use ed25519_dalek::{Signature, VerifyingKey};

/// A decoded key and signature that passed every check that batch verification
/// would otherwise skip, so a batch gives the same answer as one-by-one checks.
pub(crate) struct Prepared {
    pub key: VerifyingKey,
    pub signature: Signature,
}

/// Decodes a public key, refusing the encodings libsodium refuses.
fn canonical_key(public_key: &[u8; 32]) -> Option<VerifyingKey> {
    let key = VerifyingKey::from_bytes(public_key).ok()?;
    // Recompressing gives back the input only for canonical encodings (y < p,
    // no "negative zero" x).
    if key.to_edwards().compress().as_bytes() != public_key || key.is_weak() {
        return None;
    }
    Some(key)
}

/// Checks everything but the verification equation.
pub(crate) fn prepare(public_key: &[u8; 32], signature: &[u8; 64]) -> Option<Prepared> {
    let key = canonical_key(public_key)?;
    let mut r = [0u8; 32];
    r.copy_from_slice(&signature[..32]);
    let mut s = [0u8; 32];
    s.copy_from_slice(&signature[32..]);
    // `s` must be reduced (also checked by dalek, but batch would fail as a whole).
    curve25519_dalek::Scalar::from_canonical_bytes(s).into_option()?;
    // Batch verification works on decompressed `R` points, so refuse what the
    // byte-wise single check can never accept: non-canonical or small-order `R`.
    let r_point = CompressedEdwardsY(r).decompress()?;
    if r_point.compress().to_bytes() != r || r_point.is_small_order() {
        return None;
    }
    Some(Prepared {
        key,
        signature: Signature::from_bytes(signature),
    })
}

/// One signature, libsodium rules.
pub(crate) fn verify(public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    match prepare(public_key, signature) {
        Some(p) => verify_prepared(&p, message),
        None => false,
    }
}

pub(crate) fn verify_prepared(p: &Prepared, message: &[u8]) -> bool {
    p.key.verify_strict(message, &p.signature).is_ok()
}

/// Batch check; `true` means every signature is valid. Batch verification uses
/// the same cofactorless equation with random (deterministic, transcript-derived)
/// weights; after [`prepare`] it can only disagree with the single check on
/// signatures a key owner crafted with small-order components mixed into a
/// non-small-order point, where it accepts with probability below 1/8.
pub(crate) fn verify_batch(items: &[(&Prepared, &[u8])]) -> bool {
    let messages: Vec<&[u8]> = items.iter().map(|(_, m)| *m).collect();
    let signatures: Vec<Signature> = items.iter().map(|(p, _)| p.signature).collect();
    let keys: Vec<VerifyingKey> = items.iter().map(|(p, _)| p.key).collect();
    ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    #[test]
    fn rejects_small_order_key_and_noncanonical_encodings() {
        // The identity point (y = 1) is small order.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(canonical_key(&identity).is_none());
        // y = p (non-canonical encoding of y = 0).
        let mut p = [0xffu8; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        assert!(canonical_key(&p).is_none());
    }

    #[test]
    fn single_and_batch_agree_on_valid() {
        let sk = SigningKey::from_bytes(&[7u8; 32]);
        let sig = sk.sign(b"hello").to_bytes();
        let pk = sk.verifying_key().to_bytes();
        assert!(verify(&pk, b"hello", &sig));
        assert!(!verify(&pk, b"hellO", &sig));
        let p = prepare(&pk, &sig).unwrap();
        assert!(verify_batch(&[(&p, b"hello"), (&p, b"hello")]));
        assert!(!verify_batch(&[(&p, b"hello"), (&p, b"hellO")]));
    }
}
