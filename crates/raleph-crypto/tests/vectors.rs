//! Checks raleph-crypto against signatures made by the real Python libraries
//! (`scripts/gen-signature-vectors.py`, aleph-sdk-python 2.4.0).

use std::collections::BTreeSet;
use std::path::Path;

use base64::Engine as _;
use raleph_crypto::{Chain, EthSigner, SignedFields, SolSigner, VerifyError, verify, verify_many};
use raleph_message::SignatureScheme;
use serde::Deserialize;
use sha2::{Digest, Sha256};

#[derive(Debug, Deserialize)]
struct Vector {
    chain: String,
    sender: String,
    #[serde(rename = "type")]
    message_type: String,
    item_hash: String,
    time: f64,
    signature: String,
    note: String,
}

impl Vector {
    fn chain(&self) -> Chain {
        self.chain.parse().expect("known chain")
    }

    fn fields(&self) -> SignedFields<'_> {
        SignedFields {
            chain: self.chain(),
            sender: &self.sender,
            message_type: &self.message_type,
            item_hash: &self.item_hash,
            time: self.time,
        }
    }
}

fn load() -> Vec<Vector> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors/signatures.json");
    let text = std::fs::read_to_string(&path).expect("read signatures.json");
    let vectors: Vec<Vector> = serde_json::from_str(&text).expect("parse signatures.json");
    // Every test loops over these: an emptied file must fail them, not pass them unchecked.
    assert!(vectors.len() > 40, "only {} vectors", vectors.len());
    vectors
}

#[test]
fn every_vector_verifies() {
    let vectors = load();
    for v in &vectors {
        assert_eq!(
            verify(&v.fields(), &v.signature),
            Ok(()),
            "{} vector {:?} ({})",
            v.chain,
            v.item_hash,
            v.note
        );
    }
}

#[test]
fn verify_many_agrees_with_verify() {
    let vectors = load();
    // Corrupt every third vector so batches contain failures too.
    let tampered: Vec<String> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            if i % 3 == 0 {
                format!("{}0", v.item_hash)
            } else {
                v.item_hash.clone()
            }
        })
        .collect();
    let mut items = Vec::new();
    // Repeat so the SOL/ES part is large enough to be batch verified.
    for _ in 0..4 {
        for (v, hash) in vectors.iter().zip(&tampered) {
            let mut f = v.fields();
            f.item_hash = hash;
            items.push((f, v.signature.as_str()));
        }
    }
    let expected: Vec<_> = items.iter().map(|(f, s)| verify(f, s)).collect();
    assert_eq!(verify_many(&items), expected);
    assert!(expected.iter().any(Result::is_ok));
    assert!(expected.iter().any(Result::is_err));

    let all_valid: Vec<_> = vectors
        .iter()
        .map(|v| (v.fields(), v.signature.as_str()))
        .collect();
    assert!(verify_many(&all_valid).iter().all(Result::is_ok));
}

#[test]
fn vectors_cover_every_verifiable_chain() {
    let covered: BTreeSet<Chain> = load().iter().map(Vector::chain).collect();
    for chain in Chain::ALL {
        if chain.scheme() != SignatureScheme::Unsupported {
            assert!(covered.contains(chain), "no vector for {chain}");
        }
    }
}

/// Changes one character so that the result differs even case-insensitively.
fn tamper_char(s: &str, index: usize) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    let c = chars[index];
    chars[index] = match c {
        '0'..='8' => (c as u8 + 1) as char,
        '9' => '1',
        'a'..='y' | 'A'..='Y' => (c as u8 + 1) as char,
        'z' => 'b',
        'Z' => 'B',
        _ => 'x',
    };
    chars.into_iter().collect()
}

fn last_alnum(s: &str) -> usize {
    s.char_indices()
        .rev()
        .find(|(_, c)| c.is_ascii_alphanumeric())
        .map(|(i, _)| i)
        .expect("an alphanumeric character")
}

fn sha256(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

/// Re-encodes the vector's signature with byte `pos` (counted from the start,
/// or from the end when negative) of the raw signature flipped.
fn flip_signature_byte(v: &Vector, pos: isize) -> String {
    let at = |len: usize| {
        if pos < 0 {
            len - pos.unsigned_abs()
        } else {
            pos as usize
        }
    };
    let flip = |bytes: &mut Vec<u8>| {
        let i = at(bytes.len());
        bytes[i] ^= 0x01;
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    match v.chain().scheme() {
        SignatureScheme::Evm => {
            let mut b = hex::decode(v.signature.trim_start_matches("0x")).unwrap();
            flip(&mut b);
            format!("0x{}", hex::encode(b))
        }
        SignatureScheme::Nuls => {
            let mut b = hex::decode(&v.signature).unwrap();
            flip(&mut b);
            hex::encode(b)
        }
        SignatureScheme::Nuls2 => {
            let mut b = b64.decode(&v.signature).unwrap();
            flip(&mut b);
            b64.encode(b)
        }
        SignatureScheme::Avalanche => {
            let raw = bs58::decode(&v.signature).into_vec().unwrap();
            let mut sig = raw[..raw.len() - 4].to_vec();
            flip(&mut sig);
            let check = sha256(&sig);
            sig.extend_from_slice(&check[28..]);
            bs58::encode(sig).into_string()
        }
        _ => {
            let mut obj: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&v.signature).unwrap();
            let (key, new) = match v.chain().scheme() {
                SignatureScheme::Solana => {
                    let mut b = bs58::decode(obj["signature"].as_str().unwrap())
                        .into_vec()
                        .unwrap();
                    flip(&mut b);
                    ("signature", bs58::encode(b).into_string())
                }
                SignatureScheme::Substrate => {
                    let data = obj["data"].as_str().unwrap();
                    let prefix = if data.starts_with("0x") { "0x" } else { "" };
                    let mut b = hex::decode(data.trim_start_matches("0x")).unwrap();
                    flip(&mut b);
                    ("data", format!("{prefix}{}", hex::encode(b)))
                }
                SignatureScheme::Cosmos => {
                    let mut b = b64.decode(obj["signature"].as_str().unwrap()).unwrap();
                    flip(&mut b);
                    ("signature", b64.encode(b))
                }
                SignatureScheme::Tezos => {
                    // base58check: binary prefix, 64 signature bytes, 4 check bytes.
                    let raw = bs58::decode(obj["signature"].as_str().unwrap())
                        .into_vec()
                        .unwrap();
                    let body_len = raw.len() - 4;
                    let mut sig = raw[body_len - 64..body_len].to_vec();
                    flip(&mut sig);
                    let mut body = raw[..body_len - 64].to_vec();
                    body.extend_from_slice(&sig);
                    let check = sha256(&sha256(&body));
                    body.extend_from_slice(&check[..4]);
                    ("signature", bs58::encode(body).into_string())
                }
                other => panic!("no tampering rule for {other:?}"),
            };
            obj.insert(key.into(), serde_json::Value::String(new));
            serde_json::to_string(&obj).unwrap()
        }
    }
}

#[test]
fn tampering_any_signed_field_fails() {
    for v in &load() {
        let what = format!("{} {} ({})", v.chain, v.item_hash, v.note);
        let base = v.fields();
        assert_eq!(verify(&base, &v.signature), Ok(()), "{what}");

        for chain in Chain::ALL.iter().filter(|c| **c != base.chain) {
            let f = SignedFields {
                chain: *chain,
                ..base
            };
            assert!(verify(&f, &v.signature).is_err(), "chain {chain}: {what}");
        }

        let sender = tamper_char(&v.sender, last_alnum(&v.sender));
        let f = SignedFields {
            sender: &sender,
            ..base
        };
        assert!(verify(&f, &v.signature).is_err(), "sender: {what}");
        let sender = tamper_char(&v.sender, v.sender.len() / 2);
        let f = SignedFields {
            sender: &sender,
            ..base
        };
        assert!(verify(&f, &v.signature).is_err(), "sender (middle): {what}");

        let other_type = if v.message_type == "POST" {
            "AGGREGATE"
        } else {
            "POST"
        };
        let f = SignedFields {
            message_type: other_type,
            ..base
        };
        assert!(verify(&f, &v.signature).is_err(), "type: {what}");
        let lower_type = v.message_type.to_lowercase();
        let f = SignedFields {
            message_type: &lower_type,
            ..base
        };
        assert!(verify(&f, &v.signature).is_err(), "type case: {what}");

        for i in [0, v.item_hash.len() - 1] {
            let hash = tamper_char(&v.item_hash, i);
            let f = SignedFields {
                item_hash: &hash,
                ..base
            };
            assert!(verify(&f, &v.signature).is_err(), "item_hash[{i}]: {what}");
        }

        for pos in [0, 20, -2] {
            let sig = flip_signature_byte(v, pos);
            assert_ne!(sig, v.signature);
            assert!(verify(&base, &sig).is_err(), "signature byte {pos}: {what}");
        }
    }
}

#[test]
fn time_matters_only_for_tezos_micheline() {
    for v in &load() {
        let f = SignedFields {
            time: v.time + 1.0,
            ..v.fields()
        };
        let micheline = v.signature.contains("\"micheline\"");
        assert_eq!(verify(&f, &v.signature).is_err(), micheline, "{}", v.note);
    }
}

enum Signer {
    Eth(EthSigner),
    Sol(SolSigner),
}

impl Signer {
    fn address(&self) -> String {
        match self {
            Signer::Eth(s) => s.address(),
            Signer::Sol(s) => s.address(),
        }
    }

    fn sign(&self, f: &SignedFields) -> String {
        match self {
            Signer::Eth(s) => s.sign_message(f),
            Signer::Sol(s) => s.sign_message(f),
        }
    }
}

#[test]
fn signers_reproduce_the_python_sdk() {
    let eth = |b| Signer::Eth(EthSigner::from_secret_bytes(&[b; 32]).unwrap());
    let sol = |b| Signer::Sol(SolSigner::from_seed(&[b; 32]));
    // Keys used by scripts/gen-signature-vectors.py, by the note they leave.
    let signers = [
        ("ETHAccount.sign_message", eth(0x11)),
        ("SOLAccount.sign_message", sol(0x22)),
        ("SVMAccount(chain=ES)", sol(0x23)),
        ("protocol.md 3.3 ETH", eth(0x01)),
        ("protocol.md 3.3 SOL", sol(0x02)),
    ];
    let mut checked = 0;
    for v in &load() {
        for (note, signer) in &signers {
            if v.note.starts_with(note) {
                assert_eq!(v.sender, signer.address(), "{}", v.note);
                // RFC 6979 (secp256k1) and ed25519 are deterministic: byte-identical.
                assert_eq!(signer.sign(&v.fields()), v.signature, "{}", v.note);
                checked += 1;
            }
        }
    }
    assert!(checked >= 23 + 3 + 2 + 2, "checked {checked}");
    assert_eq!(
        signers[3].1.address(),
        "0x1a642f0E3c3aF545E7AcBD38b07251B3990914F1"
    );
    assert_eq!(
        signers[4].1.address(),
        "9hSR6S7WPtxmTojgo6GG3k4yDPecgJY292j7xrsUGWBu"
    );
}

#[test]
fn errors_say_what_is_wrong() {
    let v = &load()[0];
    let f = v.fields();
    assert!(matches!(
        verify(&f, "0x1234"),
        Err(VerifyError::Malformed(_))
    ));
    assert!(matches!(
        verify(&f, "not hex"),
        Err(VerifyError::Malformed(_))
    ));
    let sol = SolSigner::from_seed(&[9; 32]);
    let sol_fields = SignedFields {
        chain: Chain::Sol,
        sender: "9hSR6S7WPtxmTojgo6GG3k4yDPecgJY292j7xrsUGWBu",
        ..f
    };
    assert_eq!(
        verify(&sol_fields, &sol.sign_message(&sol_fields)),
        Err(VerifyError::Mismatch)
    );
    let msg = VerifyError::Malformed("x".into()).to_string();
    assert!(msg.contains("malformed"), "{msg}");
}
