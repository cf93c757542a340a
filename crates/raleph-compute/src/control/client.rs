//! The other side of [`auth`](super::auth): the headers an owner sends, byte for byte as the
//! published SDK's `VmClient` builds them (`aleph.sdk.client.vm_client`, `aleph.sdk.utils`):
//! Python's `json.dumps` layout, lowercase hex, ES256 signatures as raw r ‖ s.
//!
//! The wallet's part (signing the key's payload) is the caller's: pass the signature it made.

use base64::Engine as _;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use raleph_message::push_python_json_string;

use super::time;

/// An ephemeral P-256 key, authorized by a wallet to sign operations.
#[derive(Clone)]
pub struct EphemeralKey {
    key: SigningKey,
}

impl std::fmt::Debug for EphemeralKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EphemeralKey")
            .field("jwk", &self.jwk())
            .finish_non_exhaustive()
    }
}

impl EphemeralKey {
    /// From a 32-byte secret scalar (`None` if it is zero or not below the curve order).
    pub fn from_secret_bytes(secret: &[u8; 32]) -> Option<EphemeralKey> {
        SigningKey::from_slice(secret)
            .ok()
            .map(|key| EphemeralKey { key })
    }

    /// The public key as the SDK exports it (jwcrypto's `export_public`, keys sorted):
    /// `{"crv": "P-256", "kty": "EC", "x": ..., "y": ...}`.
    pub fn jwk(&self) -> String {
        let point = self.key.verifying_key().to_encoded_point(false);
        let encode = |bytes: Option<&[u8]>| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.unwrap_or_default())
        };
        python_object(&[
            ("crv", python_string("P-256")),
            ("kty", python_string("EC")),
            ("x", python_string(&encode(point.x().map(|x| x.as_slice())))),
            ("y", python_string(&encode(point.y().map(|y| y.as_slice())))),
        ])
    }

    /// The JSON the wallet signs (`_generate_pubkey_payload`). `expires` is ISO 8601 (the SDK:
    /// a day from now, `utcnow().isoformat() + "Z"`); `chain` is `ETH` or `SOL`.
    pub fn pubkey_payload(
        &self,
        address: &str,
        chain: &str,
        domain: &str,
        expires: &str,
    ) -> String {
        python_object(&[
            ("pubkey", self.jwk()),
            ("alg", python_string("ECDSA")),
            ("domain", python_string(domain)),
            ("address", python_string(address)),
            ("expires", python_string(expires)),
            ("chain", python_string(chain)),
        ])
    }

    /// `X-SignedOperation` for one request (`create_vm_control_payload` then
    /// `sign_vm_control_payload`); `time` is seconds since the epoch.
    pub fn signed_operation(&self, method: &str, path: &str, domain: &str, time: f64) -> String {
        let payload = python_object(&[
            ("time", python_string(&time::format_iso_z(time))),
            ("method", python_string(&method.to_ascii_uppercase())),
            ("path", python_string(path)),
            ("domain", python_string(domain)),
        ]);
        let signature: Signature = self.key.sign(payload.as_bytes());
        python_object(&[
            ("payload", python_string(&hex::encode(payload))),
            (
                "signature",
                python_string(&hex::encode(signature.to_bytes())),
            ),
        ])
    }
}

/// What the wallet signs for `payload` (the key's JSON): for `ETH` its bytes (then EIP-191
/// `personal_sign`), for `SOL` the ASCII of their lowercase hex.
pub fn wallet_message(chain: &str, payload: &str) -> Vec<u8> {
    if chain == "SOL" {
        hex::encode(payload).into_bytes()
    } else {
        payload.as_bytes().to_vec()
    }
}

/// `X-SignedPubKey` (`_generate_pubkey_signature_header`): the key's payload, the wallet's
/// signature of it (sent `0x`-prefixed hex), and the SDK's informative `sender` and `content`.
pub fn signed_pubkey_header(
    payload: &str,
    wallet_signature: &[u8],
    address: &str,
    domain: &str,
) -> String {
    python_object(&[
        ("sender", python_string(address)),
        ("payload", python_string(&hex::encode(payload))),
        (
            "signature",
            python_string(&format!("0x{}", hex::encode(wallet_signature))),
        ),
        (
            "content",
            python_object(&[("domain", python_string(domain))]),
        ),
    ])
}

fn python_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    push_python_json_string(&mut out, text);
    out
}

/// `{"a": 1, "b": 2}`: `json.dumps`'s default separators around already-encoded values.
fn python_object(fields: &[(&str, String)]) -> String {
    let mut out = String::from("{");
    for (i, (name, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        push_python_json_string(&mut out, name);
        out.push_str(": ");
        out.push_str(value);
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_verify_with_the_node_side() {
        let key = EphemeralKey::from_secret_bytes(&[3; 32]).unwrap();
        let now = 1_800_000_000.0;
        let operation = key.signed_operation("get", "/control/machine/ab/logs", "node.test", now);
        let parsed = super::super::auth::parse_signed_operation(&operation, now).unwrap();
        assert_eq!(parsed.method, "GET");
        assert_eq!(parsed.path, "/control/machine/ab/logs");
        let payload = key.pubkey_payload("0xabc", "ETH", "node.test", "2030-01-01T00:00:00Z");
        assert!(payload.starts_with(r#"{"pubkey": {"crv": "P-256", "kty": "EC", "x": ""#));
        assert!(payload.ends_with(
            r#""alg": "ECDSA", "domain": "node.test", "address": "0xabc", "expires": "2030-01-01T00:00:00Z", "chain": "ETH"}"#
        ));
        assert_eq!(wallet_message("SOL", "{}"), b"7b7d");
        assert_eq!(wallet_message("ETH", "{}"), b"{}");
    }
}
