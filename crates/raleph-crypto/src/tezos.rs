//! Tezos (`TEZOS`): ed25519 (`edpk`/`edsig`), secp256k1 (`sppk`/`spsig`) or
//! P-256 (`p2pk`/`p2sig`) keys; generic `sig…` signatures are accepted for any
//! curve. Every curve signs the blake2b-256 digest of the signed bytes
//! (pytezos `Key.verify`).
//!
//! The `signature` field is `{"signature": …, "publicKey": …, "signingType":
//! "raw" | "micheline" (default raw), "dAppUrl": … (default "aleph.im")}`. The
//! sender must be the `tz1`/`tz2`/`tz3` hash of the public key. In micheline
//! mode (what Beacon wallets sign) the bytes are
//! `05 01 00 ‖ ascii(len(hex(payload))) ‖ payload` with payload
//! `"Tezos Signed Message: {dAppUrl} {time as JS ISO string} {buffer}"`, copied
//! byte for byte from pyaleph `chains/tezos.py` (which uses the envelope time).

use blake2::Blake2b;
use blake2::digest::consts::{U20, U32};
use sha2::Digest;

use crate::util::{b58_decode, json_object, json_str, sha256};
use crate::{SignedFields, VerifyError, verification_buffer};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Curve {
    Ed25519,
    Secp256k1,
    P256,
}

fn blake2b_256(data: &[u8]) -> [u8; 32] {
    Blake2b::<U32>::digest(data).into()
}

/// Base58check with a binary prefix; `text_prefix`/`text_len` are what pytezos
/// matches on before decoding.
fn b58check_decode(
    s: &str,
    text_prefix: &str,
    text_len: usize,
    bin_prefix: &[u8],
) -> Option<Vec<u8>> {
    if s.len() != text_len || !s.starts_with(text_prefix) {
        return None;
    }
    let raw = b58_decode(s)?;
    if raw.len() < 4 {
        return None;
    }
    let (payload, checksum) = raw.split_at(raw.len() - 4);
    if sha256(&sha256(payload))[..4] != *checksum {
        return None;
    }
    payload.strip_prefix(bin_prefix).map(<[u8]>::to_vec)
}

fn b58check_encode(bin_prefix: &[u8], data: &[u8]) -> String {
    let mut v = bin_prefix.to_vec();
    v.extend_from_slice(data);
    let check = sha256(&sha256(&v));
    v.extend_from_slice(&check[..4]);
    bs58::encode(v).into_string()
}

fn decode_public_key(s: &str) -> Result<(Curve, Vec<u8>), VerifyError> {
    let decoded = if s.starts_with("edpk") {
        b58check_decode(s, "edpk", 54, &[13, 15, 37, 217]).map(|k| (Curve::Ed25519, k))
    } else if s.starts_with("sppk") {
        b58check_decode(s, "sppk", 55, &[3, 254, 226, 86]).map(|k| (Curve::Secp256k1, k))
    } else if s.starts_with("p2pk") {
        b58check_decode(s, "p2pk", 55, &[3, 178, 139, 127]).map(|k| (Curve::P256, k))
    } else {
        None
    };
    decoded.ok_or_else(|| {
        VerifyError::Malformed("Tezos publicKey is not an edpk, sppk or p2pk public key".into())
    })
}

fn public_key_hash(curve: Curve, key: &[u8]) -> String {
    let prefix: &[u8] = match curve {
        Curve::Ed25519 => &[6, 161, 159],
        Curve::Secp256k1 => &[6, 161, 161],
        Curve::P256 => &[6, 161, 164],
    };
    let hash: [u8; 20] = Blake2b::<U20>::digest(key).into();
    b58check_encode(prefix, &hash)
}

fn decode_signature(s: &str, curve: Curve) -> Result<[u8; 64], VerifyError> {
    let decoded = if s.starts_with("sig") {
        b58check_decode(s, "sig", 96, &[4, 130, 43])
    } else {
        let (text, len, bin, sig_curve): (&str, usize, &[u8], Curve) = if s.starts_with("edsig") {
            ("edsig", 99, &[9, 245, 205, 134, 18], Curve::Ed25519)
        } else if s.starts_with("spsig") {
            ("spsig", 99, &[13, 115, 101, 19, 63], Curve::Secp256k1)
        } else if s.starts_with("p2sig") {
            ("p2sig", 98, &[54, 240, 44, 52], Curve::P256)
        } else {
            return Err(VerifyError::Malformed(
                "Tezos signature is not an edsig, spsig, p2sig or sig signature".into(),
            ));
        };
        if sig_curve != curve {
            return Err(VerifyError::Malformed(
                "Tezos signature and public key curves differ".into(),
            ));
        }
        b58check_decode(s, text, len, bin)
    };
    decoded
        .and_then(|d| <[u8; 64]>::try_from(d).ok())
        .ok_or_else(|| VerifyError::Malformed("Tezos signature is not valid base58check".into()))
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The envelope time as pyaleph formats it: `datetime.fromtimestamp(t, utc)`
/// (microseconds rounded half-even), then `YYYY-MM-DDTHH:MM:SS.mmmZ` with the
/// milliseconds truncated.
fn js_iso_time(time: f64) -> Option<String> {
    if !time.is_finite() {
        return None;
    }
    let mut secs = time.trunc();
    let mut micros = (time.fract() * 1e6).round_ties_even();
    if micros >= 1e6 {
        micros -= 1e6;
        secs += 1.0;
    } else if micros < 0.0 {
        micros += 1e6;
        secs -= 1.0;
    }
    // Python's datetime covers years 1 to 9999.
    if !(-62_135_596_800.0..=253_402_300_799.0).contains(&secs) {
        return None;
    }
    let secs = secs as i64;
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    Some(format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60,
        micros as u32 / 1000
    ))
}

fn micheline_bytes(buffer: &str, time: f64, dapp_url: &str) -> Option<Vec<u8>> {
    let payload = format!(
        "Tezos Signed Message: {dapp_url} {} {buffer}",
        js_iso_time(time)?
    );
    let mut out = vec![0x05, 0x01, 0x00];
    out.extend_from_slice((payload.len() * 2).to_string().as_bytes());
    out.extend_from_slice(payload.as_bytes());
    Some(out)
}

pub(crate) fn verify(f: &SignedFields, signature: &str) -> Result<(), VerifyError> {
    let map = json_object(signature, "Tezos")?;
    let sig_str = json_str(&map, "signature", "Tezos")?;
    let key_str = json_str(&map, "publicKey", "Tezos")?;
    let micheline = match map.get("signingType") {
        None => false,
        Some(v) => match v.as_str() {
            Some("raw") => false,
            Some("micheline") => true,
            _ => {
                return Err(VerifyError::Malformed(format!(
                    "unsupported Tezos signingType {v}, expected \"raw\" or \"micheline\""
                )));
            }
        },
    };
    let dapp_url = match map.get("dAppUrl") {
        None => "aleph.im",
        Some(_) => json_str(&map, "dAppUrl", "Tezos")?,
    };
    let (curve, key) = decode_public_key(key_str)?;
    if public_key_hash(curve, &key) != f.sender {
        return Err(VerifyError::Mismatch);
    }
    let buffer = verification_buffer(f);
    let signed = if micheline {
        micheline_bytes(&buffer, f.time, dapp_url).ok_or_else(|| {
            VerifyError::Malformed("message time is out of range for a micheline signature".into())
        })?
    } else {
        buffer.into_bytes()
    };
    let sig = decode_signature(sig_str, curve)?;
    let digest = blake2b_256(&signed);
    let ok = match curve {
        Curve::Ed25519 => <[u8; 32]>::try_from(key.as_slice())
            .is_ok_and(|k| crate::ed25519::verify(&k, &digest, &sig)),
        Curve::Secp256k1 => verify_secp256k1(&key, &digest, &sig),
        Curve::P256 => verify_p256(&key, &digest, &sig),
    };
    if ok {
        Ok(())
    } else {
        Err(VerifyError::BadSignature)
    }
}

/// libsecp256k1 through coincurve: compact signature, low-s required.
fn verify_secp256k1(key: &[u8], digest: &[u8; 32], sig: &[u8; 64]) -> bool {
    let (Ok(key), Ok(sig)) = (
        secp256k1::PublicKey::from_slice(key),
        secp256k1::ecdsa::Signature::from_compact(sig),
    ) else {
        return false;
    };
    sig.verify(secp256k1::Message::from_digest(*digest), &key)
        .is_ok()
}

/// fastecdsa: plain ECDSA over the digest, high-s accepted.
fn verify_p256(key: &[u8], digest: &[u8; 32], sig: &[u8; 64]) -> bool {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    let (Ok(key), Ok(sig)) = (
        p256::ecdsa::VerifyingKey::from_sec1_bytes(key),
        p256::ecdsa::Signature::from_slice(sig),
    ) else {
        return false;
    };
    key.verify_prehash(digest, &sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_time_like_python() {
        assert_eq!(
            js_iso_time(1663944079.029).as_deref(),
            Some("2022-09-23T14:41:19.029Z")
        );
        assert_eq!(
            js_iso_time(0.0).as_deref(),
            Some("1970-01-01T00:00:00.000Z")
        );
        assert_eq!(
            js_iso_time(-1.5).as_deref(),
            Some("1969-12-31T23:59:58.500Z")
        );
        assert_eq!(js_iso_time(f64::NAN), None);
        assert_eq!(js_iso_time(1e300), None);
    }
}
