//! Cosmos SDK (`CSDK`): secp256k1 ECDSA (sha256) over an ADR-036-like amino
//! sign document, the way Keplr's `signArbitrary` produces it.
//!
//! The `signature` field is
//! `{"signature": base64(r ‖ s), "pub_key": {"type": "tendermint/PubKeySecp256k1",
//! "value": base64(key)}, …}`. The sender must be the bech32 encoding of
//! `ripemd160(sha256(key))` under the sender's own hrp (the text before its
//! first `1`). The signed document is the compact, key-sorted JSON that Python's
//! `json.dumps(doc, separators=(",", ":"), sort_keys=True)` writes (pyaleph
//! `chains/cosmos.py`), so non-ASCII characters are `\u` escaped.

use secp256k1::ecdsa::Signature;
use secp256k1::{Message, PublicKey};

use crate::util::{b64_decode_lenient, bech32_encode, hash160, json_object, sha256};
use raleph_message::push_python_json_string;

use crate::{SignedFields, VerifyError, verification_buffer};

/// The sign document, byte for byte as the reference serialises it.
pub(crate) fn sign_document(f: &SignedFields) -> String {
    let buffer = verification_buffer(f);
    let mut s = String::with_capacity(buffer.len() + f.sender.len() + 200);
    s.push_str(
        r#"{"account_number":"0","chain_id":"signed-message-v1","fee":{"amount":[],"gas":"0"},"memo":"","msgs":[{"type":"signutil/MsgSignText","value":{"message":"#,
    );
    push_python_json_string(&mut s, &buffer);
    s.push_str(r#","signer":"#);
    push_python_json_string(&mut s, f.sender);
    s.push_str(r#"}}],"sequence":"0"}"#);
    s
}

pub(crate) fn verify(f: &SignedFields, signature: &str) -> Result<(), VerifyError> {
    let map = json_object(signature, "Cosmos")?;
    let pub_key = match map.get("pub_key") {
        Some(serde_json::Value::Object(pk)) => pk,
        _ => {
            return Err(VerifyError::Malformed(
                "Cosmos signature has no \"pub_key\" object".into(),
            ));
        }
    };
    if pub_key.get("type").and_then(|t| t.as_str()) != Some("tendermint/PubKeySecp256k1") {
        return Err(VerifyError::Malformed(
            "Cosmos pub_key type must be \"tendermint/PubKeySecp256k1\"".into(),
        ));
    }
    let key_bytes = pub_key
        .get("value")
        .and_then(|v| v.as_str())
        .and_then(b64_decode_lenient)
        .ok_or_else(|| VerifyError::Malformed("Cosmos pub_key value is not base64".into()))?;
    let (hrp, _) = f.sender.split_once('1').ok_or_else(|| {
        VerifyError::InvalidSender("a Cosmos sender is a bech32 address like \"cosmos1…\"".into())
    })?;
    let sig_bytes = map
        .get("signature")
        .and_then(|v| v.as_str())
        .and_then(b64_decode_lenient)
        .ok_or_else(|| VerifyError::Malformed("Cosmos signature is not base64".into()))?;
    // The address is derived from the key bytes exactly as given.
    if bech32_encode(hrp, &hash160(&key_bytes)) != f.sender {
        return Err(VerifyError::Mismatch);
    }
    // python-ecdsa also takes a raw 64-byte x ‖ y key.
    let key = if key_bytes.len() == 64 {
        let mut full = Vec::with_capacity(65);
        full.push(4);
        full.extend_from_slice(&key_bytes);
        PublicKey::from_slice(&full)
    } else {
        PublicKey::from_slice(&key_bytes)
    }
    .map_err(|_| VerifyError::Malformed("Cosmos pub_key is not a secp256k1 point".into()))?;
    let mut sig = Signature::from_compact(&sig_bytes).map_err(|_| {
        VerifyError::Malformed(
            "Cosmos signature must be 64 bytes r ‖ s, both below the curve order".into(),
        )
    })?;
    // python-ecdsa accepts high-s signatures; libsecp256k1 only verifies low-s.
    sig.normalize_s();
    let digest = sha256(sign_document(f).as_bytes());
    sig.verify(Message::from_digest(digest), &key)
        .map_err(|_| VerifyError::BadSignature)
}
