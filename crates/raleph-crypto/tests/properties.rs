//! Property tests: signing round-trips, any change is detected, and no input
//! makes verification panic.

use base64::Engine as _;
use proptest::prelude::*;
use raleph_crypto::{Chain, EthSigner, SignedFields, SolSigner, verify, verify_many};

const TYPES: &[&str] = &[
    "POST",
    "AGGREGATE",
    "STORE",
    "PROGRAM",
    "INSTANCE",
    "FORGET",
];

fn fields<'a>(chain: Chain, sender: &'a str, t: &'a str, hash: &'a str) -> SignedFields<'a> {
    SignedFields {
        chain,
        sender,
        message_type: t,
        item_hash: hash,
        time: 1_700_000_000.0,
    }
}

fn evm_chain() -> impl Strategy<Value = Chain> {
    prop::sample::select(
        Chain::ALL
            .iter()
            .copied()
            .filter(|c| c.scheme() == raleph_message::SignatureScheme::Evm)
            .collect::<Vec<_>>(),
    )
}

/// The signer of a random secret. About 2^-128 of secrets are no key (zero, or past the curve
/// order): such an input is rejected, not passed, so that a constructor that refused every
/// secret would fail the test (proptest gives up after too many rejects) instead of skipping
/// its checks.
fn valid_signer(secret: &[u8; 32]) -> Result<EthSigner, TestCaseError> {
    EthSigner::from_secret_bytes(secret)
        .map_err(|e| TestCaseError::reject(format!("not a secp256k1 secret: {e}")))
}

proptest! {
    #[test]
    fn eth_sign_then_verify(
        secret in any::<[u8; 32]>(),
        chain in evm_chain(),
        t in prop::sample::select(TYPES),
        hash in "[0-9a-f]{64}|Qm[1-9A-HJ-NP-Za-km-z]{44}|\\PC{0,80}",
        other_hash in "[0-9a-f]{64}",
    ) {
        let signer = valid_signer(&secret)?;
        let address = signer.address();
        let f = fields(chain, &address, t, &hash);
        let sig = signer.sign_message(&f);
        prop_assert_eq!(verify(&f, &sig), Ok(()));
        // The recovered address compares case-insensitively with the sender, so a
        // wallet that signs with a lower-case sender is accepted too.
        let lower = address.to_lowercase();
        let g = SignedFields { sender: &lower, ..f };
        prop_assert_eq!(verify(&g, &signer.sign_message(&g)), Ok(()));
        // But the sender is part of the signed text: changing its case afterwards fails.
        if lower != address {
            prop_assert!(verify(&g, &sig).is_err());
        }
        prop_assume!(other_hash != hash);
        let g = SignedFields { item_hash: &other_hash, ..f };
        prop_assert!(verify(&g, &sig).is_err());
        let other_type = if t == "POST" { "STORE" } else { "POST" };
        let g = SignedFields { message_type: other_type, ..f };
        prop_assert!(verify(&g, &sig).is_err());
        let other_chain = if chain == Chain::Eth { Chain::Base } else { Chain::Eth };
        let g = SignedFields { chain: other_chain, ..f };
        prop_assert!(verify(&g, &sig).is_err());
        let someone = EthSigner::from_secret_bytes(&[0x42; 32]).unwrap().address();
        prop_assume!(someone != address);
        let g = SignedFields { sender: &someone, ..f };
        prop_assert!(verify(&g, &sig).is_err());
    }

    #[test]
    // r and s only: like eth_account, v accepts equivalent values (27 = 0 = 35 + 2k).
    fn eth_any_signature_byte_change_fails(secret in any::<[u8; 32]>(), hash in "[0-9a-f]{64}", pos in 0usize..64, bit in 0u8..8) {
        let signer = valid_signer(&secret)?;
        let address = signer.address();
        let f = fields(Chain::Eth, &address, "POST", &hash);
        let mut raw = hex::decode(&signer.sign_message(&f)[2..]).unwrap();
        raw[pos] ^= 1 << bit;
        let tampered = format!("0x{}", hex::encode(raw));
        prop_assert!(verify(&f, &tampered).is_err());
    }

    #[test]
    fn sol_sign_then_verify(
        seed in any::<[u8; 32]>(),
        es in any::<bool>(),
        t in prop::sample::select(TYPES),
        hash in "[0-9a-f]{64}|\\PC{0,80}",
        other_hash in "[0-9a-f]{64}",
        pos in 0usize..64,
        bit in 0u8..8,
    ) {
        let chain = if es { Chain::Eclipse } else { Chain::Sol };
        let signer = SolSigner::from_seed(&seed);
        let address = signer.address();
        let f = fields(chain, &address, t, &hash);
        let sig = signer.sign_message(&f);
        prop_assert_eq!(verify(&f, &sig), Ok(()));
        let g = SignedFields { chain: if es { Chain::Sol } else { Chain::Eclipse }, ..f };
        prop_assert!(verify(&g, &sig).is_err());
        let other_type = if t == "POST" { "STORE" } else { "POST" };
        let g = SignedFields { message_type: other_type, ..f };
        prop_assert!(verify(&g, &sig).is_err());
        if other_hash != hash {
            let g = SignedFields { item_hash: &other_hash, ..f };
            prop_assert!(verify(&g, &sig).is_err());
        }
        // Flip one bit of the signature itself.
        let obj: serde_json::Value = serde_json::from_str(&sig).unwrap();
        let mut raw = bs58::decode(obj["signature"].as_str().unwrap()).into_vec().unwrap();
        raw[pos] ^= 1 << bit;
        let tampered = format!(
            "{{\"publicKey\": \"{address}\", \"signature\": \"{}\"}}",
            bs58::encode(raw).into_string()
        );
        prop_assert!(verify(&f, &tampered).is_err());
    }

    #[test]
    fn verify_many_matches_verify(
        seeds in prop::collection::vec(any::<[u8; 32]>(), 1..20),
        corrupt in prop::collection::vec(any::<bool>(), 20),
    ) {
        let signers: Vec<SolSigner> = seeds.iter().map(SolSigner::from_seed).collect();
        let addresses: Vec<String> = signers.iter().map(SolSigner::address).collect();
        let hashes: Vec<String> = (0..signers.len()).map(|i| format!("{i:064x}")).collect();
        let sigs: Vec<String> = signers
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let f = fields(Chain::Sol, &addresses[i], "POST", &hashes[i]);
                let sig = s.sign_message(&f);
                if corrupt[i] { sig.replacen('1', "2", 1).replacen('A', "B", 1) } else { sig }
            })
            .collect();
        let items: Vec<(SignedFields, &str)> = (0..signers.len())
            .map(|i| (fields(Chain::Sol, &addresses[i], "POST", &hashes[i]), sigs[i].as_str()))
            .collect();
        let one_by_one: Vec<_> = items.iter().map(|(f, s)| verify(f, s)).collect();
        prop_assert_eq!(verify_many(&items), one_by_one);
    }
}

/// Signature strings shaped like each chain's format, filled with arbitrary data,
/// so that fuzzing reaches past the first parsing step.
fn signature_like() -> impl Strategy<Value = String> {
    let b64 = |b: Vec<u8>| base64::engine::general_purpose::STANDARD.encode(b);
    prop_oneof![
        any::<String>(),
        "\\PC{0,200}",
        prop::collection::vec(any::<u8>(), 0..140).prop_map(|b| format!("0x{}", hex::encode(b))),
        prop::collection::vec(any::<u8>(), 60..70).prop_map(hex::encode),
        prop::collection::vec(any::<u8>(), 60..75).prop_map(|b| bs58::encode(b).into_string()),
        prop::collection::vec(any::<u8>(), 60..70).prop_map(b64),
        (any::<String>(), any::<String>(), "[a-z]{0,12}").prop_map(|(a, b, c)| {
            serde_json::json!({"signature": a, "publicKey": b, "version": 1, "curve": c, "data": a,
                "signingType": c, "pub_key": {"type": "tendermint/PubKeySecp256k1", "value": b}})
            .to_string()
        }),
        (prop::collection::vec(any::<u8>(), 0..80), prop::collection::vec(any::<u8>(), 0..40)).prop_map(|(s, k)| {
            serde_json::json!({
                "signature": bs58::encode(&s).into_string(),
                "publicKey": bs58::encode(&k).into_string(),
                "data": hex::encode(&s),
                "pub_key": {"type": "tendermint/PubKeySecp256k1", "value": base64::engine::general_purpose::STANDARD.encode(&k)},
            })
            .to_string()
        }),
        (prop::sample::select(vec!["edsig", "spsig1", "p2sig", "sig", "edpk", "sppk", "p2pk"]),
         "[1-9A-HJ-NP-Za-km-z]{40,100}", prop::sample::select(vec!["raw", "micheline", "other"]))
            .prop_map(|(p, body, st)| {
                serde_json::json!({"signature": format!("{p}{body}"), "publicKey": format!("edpk{body}"),
                    "signingType": st}).to_string()
            }),
    ]
}

/// Senders: real addresses of every format, or anything at all.
fn sender_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::sample::select(vec![
            "0x1a642f0E3c3aF545E7AcBD38b07251B3990914F1".to_string(),
            "9hSR6S7WPtxmTojgo6GG3k4yDPecgJY292j7xrsUGWBu".to_string(),
            "5DfhGyQdFobKM8NsWvEeAKk5EQQgYe9AydgJ7rMB6E1EqRzV".to_string(),
            "cosmos180pg6mvjmyrnld0r4h6gz7274azxhnhdht2pqt".to_string(),
            "NULSd6HggRHkc63TWpB2STXTjpWkWwXVj2cFP".to_string(),
            "tNULSeBaMm1ju1zRSzXS5jvJVgr4ewCmteVb8r".to_string(),
            "Nse5n2814K6wnTwvek7NxmLWxEV1kq4V".to_string(),
            "X-avax1u8awxvjw9zjw7hhqru2d6vm6cmy968vskqg8ex".to_string(),
            "tz1SMisyzmPwYsJpx2B74WitcSNjYv7kL6Qr".to_string(),
            "tz2SGTjiNr2HJwZ4TyrqMnDrHKT2nEiddA8W".to_string(),
            "tz3RvSkSfQ8c2oC3q5bz62ySyhi5WvKmtdFU".to_string(),
            String::new(),
            "1".to_string(),
            "-1".to_string(),
            "NULS".to_string(),
            "0x".to_string(),
        ]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn verify_never_panics(
        chain in prop::sample::select(Chain::ALL),
        sender in sender_like(),
        t in "\\PC{0,12}",
        hash in "\\PC{0,80}",
        time in prop_oneof![any::<f64>(), Just(f64::NAN), Just(-1e20), Just(1.7e9)],
        sig in signature_like(),
    ) {
        let f = SignedFields { chain, sender: &sender, message_type: &t, item_hash: &hash, time };
        let single = verify(&f, &sig);
        // Random data is never a valid signature, and the batch path agrees.
        prop_assert!(single.is_err());
        prop_assert_eq!(verify_many(&[(f, sig.as_str()); 5]), vec![single; 5]);
    }
}
