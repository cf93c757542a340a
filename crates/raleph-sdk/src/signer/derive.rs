//! Keys from a BIP-39 mnemonic: the seed (BIP-39), then a path of child keys, BIP-32 on
//! secp256k1 for ETH and SLIP-10 on ed25519 for SOL. Written here on `hmac` and `sha2` (and
//! `secp256k1`'s scalar addition) rather than taken from a wallet crate: the two derivations
//! are a few HMAC calls each, and their published test vectors check them.

use hmac::{Hmac, Mac};
use sha2::Sha512;

use super::KeyError;

/// The path `eth_account`'s `Account.from_mnemonic` uses by default (MetaMask's first
/// account).
pub const ETH_PATH: &str = "m/44'/60'/0'/0/0";

/// The path Phantom, Solflare and `solana-keygen recover 'prompt://?key=0/0'` use for a
/// wallet's first account. (`solana-keygen` without a derivation path instead takes the
/// first 32 bytes of the seed as the key; that is not what wallets show, so not the default.)
pub const SOL_PATH: &str = "m/44'/501'/0'/0'";

/// Indexes at or above this are hardened (written `n'`).
const HARDENED: u32 = 1 << 31;

/// The 64-byte BIP-39 seed of a mnemonic (English word list, checksum checked) and a
/// passphrase (empty for none); both are NFKD-normalized first, as BIP-39 says.
pub fn seed(phrase: &str, passphrase: &str) -> Result<[u8; 64], KeyError> {
    let words = phrase.split_whitespace().collect::<Vec<_>>().join(" ");
    let mnemonic = bip39::Mnemonic::parse_in(bip39::Language::English, &words)
        .map_err(|e| KeyError::Mnemonic(e.to_string()))?;
    Ok(mnemonic.to_seed(passphrase))
}

/// `m/44'/60'/0'/0/0` as indexes; `'` (or `h`) marks a hardened index.
pub fn parse_path(path: &str) -> Result<Vec<u32>, KeyError> {
    let bad = || KeyError::Path(path.to_owned());
    let mut parts = path.split('/');
    if parts.next() != Some("m") {
        return Err(bad());
    }
    parts
        .map(|part| {
            let (digits, hardened) = match part.strip_suffix(['\'', 'h']) {
                Some(digits) => (digits, true),
                None => (part, false),
            };
            let index: u32 = digits.parse().map_err(|_| bad())?;
            if index >= HARDENED {
                return Err(bad());
            }
            Ok(if hardened { index | HARDENED } else { index })
        })
        .collect()
}

fn hmac_sha512(key: &[u8], parts: &[&[u8]]) -> [u8; 64] {
    // HMAC takes keys of any length: this cannot fail.
    let mut mac = <Hmac<Sha512> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

fn split(i: [u8; 64]) -> ([u8; 32], [u8; 32]) {
    let mut left = [0u8; 32];
    let mut right = [0u8; 32];
    left.copy_from_slice(&i[..32]);
    right.copy_from_slice(&i[32..]);
    (left, right)
}

/// BIP-32: the secp256k1 secret key at `path` from `seed`.
pub fn secp256k1_key(seed: &[u8], path: &[u32]) -> Result<[u8; 32], KeyError> {
    use secp256k1::{PublicKey, Scalar, SecretKey};
    let (key, mut chain_code) = split(hmac_sha512(b"Bitcoin seed", &[seed]));
    let mut key = SecretKey::from_secret_bytes(key).map_err(|_| KeyError::Derivation)?;
    for &index in path {
        let i = if index >= HARDENED {
            hmac_sha512(
                &chain_code,
                &[&[0], &key.to_secret_bytes(), &index.to_be_bytes()],
            )
        } else {
            let public = PublicKey::from_secret_key(&key).serialize();
            hmac_sha512(&chain_code, &[&public, &index.to_be_bytes()])
        };
        let (tweak, code) = split(i);
        // IL ≥ n or a zero child: BIP-32 says skip to the next index; the chance is below
        // 2^-127, so this reports it instead.
        let tweak = Scalar::from_be_bytes(tweak).map_err(|_| KeyError::Derivation)?;
        key = key.add_tweak(&tweak).map_err(|_| KeyError::Derivation)?;
        chain_code = code;
    }
    Ok(key.to_secret_bytes())
}

/// SLIP-10: the ed25519 seed at `path` from `seed` (every index must be hardened).
pub fn ed25519_key(seed: &[u8], path: &[u32]) -> Result<[u8; 32], KeyError> {
    let (mut key, mut chain_code) = split(hmac_sha512(b"ed25519 seed", &[seed]));
    for &index in path {
        if index < HARDENED {
            return Err(KeyError::Path(
                "ed25519 (SOL) derivation needs hardened indexes only (n')".into(),
            ));
        }
        (key, chain_code) = split(hmac_sha512(
            &chain_code,
            &[&[0], &key, &index.to_be_bytes()],
        ));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    #[test]
    fn bip39_seed_vector() {
        // BIP-39's first English vector (passphrase "TREZOR").
        let seed = seed(
            "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
            "TREZOR",
        )
        .unwrap();
        assert_eq!(
            hex::encode(seed),
            "c55257c360c07c72029aebc1b53c05ed0362ada38ead3e3e9efa3708e53495531f09a6987599d18264c1e1c92f2cf141630c7a3c4ab7c81b2f001698e7463b04"
        );
    }

    #[test]
    fn bip32_vector_1() {
        // BIP-32 test vector 1: seed 000102…0f, m/0'/1/2'/2/1000000000.
        let seed = unhex("000102030405060708090a0b0c0d0e0f");
        let path = parse_path("m/0'/1/2'/2/1000000000").unwrap();
        assert_eq!(
            hex::encode(secp256k1_key(&seed, &path).unwrap()),
            "471b76e389e528d6de6d816857e012c5455051cad6660850e58372a6c3e6e7c8"
        );
        assert_eq!(
            hex::encode(secp256k1_key(&seed, &path[..1]).unwrap()),
            "edb2e14f9ee77d26dd93b4ecede8d16ed408ce149b6cd80b0715a2d911a0afea"
        );
    }

    #[test]
    fn slip10_ed25519_vector_1() {
        // SLIP-10 ed25519 test vector 1: seed 000102…0f.
        let seed = unhex("000102030405060708090a0b0c0d0e0f");
        assert_eq!(
            hex::encode(ed25519_key(&seed, &[]).unwrap()),
            "2b4be7f19ee27bbf30c667b642d5f4aa69fd169872f8fc3059c08ebae2eb19e7"
        );
        let path = parse_path("m/0'/1'/2'/2'/1000000000'").unwrap();
        assert_eq!(
            hex::encode(ed25519_key(&seed, &path).unwrap()),
            "8f94d394a8e8fd6b1bc2f3f49f5c47e385281d5c17e65324b0f62483e37e8793"
        );
        assert!(ed25519_key(&seed, &parse_path("m/0").unwrap()).is_err());
    }

    #[test]
    fn paths() {
        assert_eq!(
            parse_path(ETH_PATH).unwrap(),
            vec![44 | HARDENED, 60 | HARDENED, HARDENED, 0, 0]
        );
        for bad in ["", "44'/60'", "m/x", "m/2147483648", "m//1"] {
            assert!(parse_path(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_path("m").unwrap(), Vec::<u32>::new());
    }

    #[test]
    fn bad_mnemonics() {
        assert!(seed("abandon abandon", "").is_err());
        // A wrong checksum word.
        assert!(seed("abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon", "").is_err());
    }
}
