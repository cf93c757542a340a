//! Polkadot / Substrate (`DOT`): sr25519 (schnorrkel, signing context
//! `"substrate"`) over the verification buffer.
//!
//! The `signature` field is `{"curve": "sr25519", "data": "<hex>"}` (`curve`
//! defaults to sr25519; other curves are refused). The key is the account id
//! inside the ss58 sender. Like substrate-interface's `Keypair.verify`, a
//! signature over `<Bytes>buffer</Bytes>` is also accepted, because the
//! polkadot-js extension wraps what it signs that way.
//!
//! The reference only accepts `data` with a `0x` prefix, while the Python SDK
//! writes it without one; raleph accepts both (see protocol.md appendix).

use blake2::{Blake2b512, Digest};
use schnorrkel::{PublicKey, Signature};

use crate::util::{b58_decode_lenient, json_object, json_str};
use crate::{SignedFields, VerifyError, verification_buffer};

const SIGNING_CONTEXT: &[u8] = b"substrate";

/// The 32-byte account id of an ss58 address, with the checks of
/// scalecodec's `ss58_decode` (any network prefix, blake2b "SS58PRE" checksum).
/// Like substrate-interface, a `0x`-prefixed hex account id is also taken as is.
pub(crate) fn ss58_decode(address: &str) -> Result<[u8; 32], VerifyError> {
    let invalid = |why: &str| VerifyError::InvalidSender(format!("not an ss58 address: {why}"));
    if address.starts_with("0x") {
        let bytes = hex::decode(address.replace("0x", "")).map_err(|_| invalid("bad hex"))?;
        return bytes.try_into().map_err(|_| invalid("not 32 bytes"));
    }
    if address.is_empty() {
        return Err(invalid("empty"));
    }
    let decoded = b58_decode_lenient(address).ok_or_else(|| invalid("not base58"))?;
    let (first, second) = match decoded.as_slice() {
        [a, b, ..] => (*a, *b),
        _ => return Err(invalid("too short")),
    };
    let (prefix_len, format) = if first & 0b0100_0000 != 0 {
        (
            2,
            (u16::from(first & 0b0011_1111) << 2)
                | u16::from(second >> 6)
                | (u16::from(second & 0b0011_1111) << 8),
        )
    } else {
        (1, u16::from(first))
    };
    if format == 46 || format == 47 {
        return Err(invalid("reserved network prefix"));
    }
    // Only the 32-byte account id layouts can yield a usable key.
    if decoded.len() != 32 + prefix_len + 2 {
        return Err(invalid("wrong length"));
    }
    let body_len = decoded.len() - 2;
    let mut h = Blake2b512::new();
    h.update(b"SS58PRE");
    h.update(&decoded[..body_len]);
    if h.finalize()[..2] != decoded[body_len..] {
        return Err(invalid("checksum mismatch"));
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(&decoded[prefix_len..body_len]);
    Ok(key)
}

pub(crate) fn verify(f: &SignedFields, signature: &str) -> Result<(), VerifyError> {
    let map = json_object(signature, "Substrate")?;
    if let Some(curve) = map.get("curve")
        && curve.as_str() != Some("sr25519")
    {
        return Err(VerifyError::Malformed(format!(
            "unsupported Substrate signature curve {curve}, only sr25519 is accepted"
        )));
    }
    let data = json_str(&map, "data", "Substrate")?;
    let digits = data.strip_prefix("0x").unwrap_or(data);
    let sig = hex::decode(digits)
        .map_err(|_| VerifyError::Malformed("Substrate signature data is not hex".into()))?;
    let sig = Signature::from_bytes(&sig)
        .map_err(|e| VerifyError::Malformed(format!("Substrate signature data: {e}")))?;
    let key = ss58_decode(f.sender)?;
    let key = PublicKey::from_bytes(&key)
        .map_err(|_| VerifyError::InvalidSender("not an sr25519 public key".into()))?;
    let buffer = verification_buffer(f);
    if key
        .verify_simple(SIGNING_CONTEXT, buffer.as_bytes(), &sig)
        .is_ok()
    {
        return Ok(());
    }
    let wrapped = format!("<Bytes>{buffer}</Bytes>");
    key.verify_simple(SIGNING_CONTEXT, wrapped.as_bytes(), &sig)
        .map_err(|_| VerifyError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ss58_alice() {
        // Alice's well-known dev account (generic substrate prefix 42).
        let key = ss58_decode("5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY").unwrap();
        assert_eq!(
            hex::encode(key),
            "d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d"
        );
        assert!(ss58_decode("5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQZ").is_err());
        assert!(ss58_decode("").is_err());
    }

    /// Signed by aleph-sdk-python 2.4.0 `DOTAccount.sign_message`, which writes
    /// `data` without a `0x` prefix (the reference node rejects this form).
    #[test]
    fn python_sdk_form_without_0x_verifies() {
        let data = "14100976f48ad78c7b1bb1d204e1c6a0b989f1f2e2cc8d5cc654badabddbf62a\
                    10259f6b49e08071e484b18e723c6bba5c63db222d61857e040954b28021b388";
        let f = SignedFields {
            chain: raleph_message::Chain::Dot,
            sender: "5DfhGyQdFobKM8NsWvEeAKk5EQQgYe9AydgJ7rMB6E1EqRzV",
            message_type: "POST",
            item_hash: "c1d872a8a80610c1e27a3ad3aca6088611002e29f1b00941286817a4239ecbf8",
            time: 1700000500.0,
        };
        let sdk_form = format!(r#"{{"curve": "sr25519", "data": "{data}"}}"#);
        assert_eq!(verify(&f, &sdk_form), Ok(()));
        let prefixed = format!(r#"{{"curve": "sr25519", "data": "0x{data}"}}"#);
        assert_eq!(verify(&f, &prefixed), Ok(()));
        let no_curve = format!(r#"{{"data": "{data}"}}"#);
        assert_eq!(verify(&f, &no_curve), Ok(()));
        let ed = format!(r#"{{"curve": "ed25519", "data": "{data}"}}"#);
        assert!(matches!(verify(&f, &ed), Err(VerifyError::Malformed(_))));
        let other = SignedFields {
            message_type: "STORE",
            ..f
        };
        assert_eq!(verify(&other, &sdk_form), Err(VerifyError::BadSignature));
    }
}
