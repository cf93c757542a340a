//! Signing keys for ETH and SOL: one [`Signer`] over raleph-crypto's `EthSigner` and
//! `SolSigner`, made fresh, from secret bytes or hex, or from a BIP-39 mnemonic.

pub mod derive;

use raleph_crypto::{EthSigner, SignedFields, SolSigner};
use raleph_message::Chain;

/// Why a key could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Only ETH and SOL keys sign here.
    #[error("no signer for chain {0}: raleph signs with ETH or SOL keys")]
    UnsupportedChain(String),
    /// The secret is not hex.
    #[error("the key is not hex")]
    NotHex,
    /// The secret has the wrong length for its chain.
    #[error("a {chain} key is {expected}, got {got} bytes")]
    Length {
        /// The chain the key is for.
        chain: &'static str,
        /// What the chain takes.
        expected: &'static str,
        /// What was given.
        got: usize,
    },
    /// Zero or not below the secp256k1 order.
    #[error("not a valid secp256k1 secret key")]
    InvalidSecret,
    /// A 64-byte SOL keypair whose second half is not the public key of its first.
    #[error("the SOL keypair's public half does not match its secret half")]
    KeypairMismatch,
    /// A phrase that is not a BIP-39 English mnemonic.
    #[error("not a valid BIP-39 mnemonic: {0}")]
    Mnemonic(String),
    /// A derivation path that does not parse (`m/44'/60'/0'/0/0`).
    #[error("not a usable derivation path: {0}")]
    Path(String),
    /// A derivation step gave no valid key (chance below 2^-127).
    #[error("this derivation path gives no valid key; try the next index")]
    Derivation,
}

/// Anything that signs Aleph messages: the chain it signs for, the sender address, and the
/// `signature` field for a message's signed fields.
pub trait Sign {
    /// The `chain` field of the messages it signs.
    fn chain(&self) -> Chain;
    /// The `sender` field of the messages it signs.
    fn address(&self) -> String;
    /// The `signature` field over these fields (chain, sender, type, item hash).
    fn sign_fields(&self, fields: &SignedFields) -> String;
}

/// A reference signs as what it refers to (so `&signer` and `signer` both do).
impl<T: Sign + ?Sized> Sign for &T {
    fn chain(&self) -> Chain {
        (**self).chain()
    }
    fn address(&self) -> String {
        (**self).address()
    }
    fn sign_fields(&self, fields: &SignedFields) -> String {
        (**self).sign_fields(fields)
    }
}

impl Sign for EthSigner {
    fn chain(&self) -> Chain {
        Chain::Eth
    }
    fn address(&self) -> String {
        EthSigner::address(self)
    }
    fn sign_fields(&self, fields: &SignedFields) -> String {
        self.sign_message(fields)
    }
}

impl Sign for SolSigner {
    fn chain(&self) -> Chain {
        Chain::Sol
    }
    fn address(&self) -> String {
        SolSigner::address(self)
    }
    fn sign_fields(&self, fields: &SignedFields) -> String {
        self.sign_message(fields)
    }
}

/// An ETH or a SOL signing key.
///
/// ```
/// use raleph_sdk::Signer;
/// use raleph_sdk::Chain;
///
/// let eth = Signer::from_mnemonic(
///     Chain::Eth,
///     "test test test test test test test test test test test junk",
///     "",
/// )?;
/// assert_eq!(eth.address(), "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
/// let sol = Signer::generate(Chain::Sol)?;
/// assert_eq!(sol.public_key(), sol.address());
/// # Ok::<(), raleph_sdk::KeyError>(())
/// ```
#[derive(Clone, Debug)]
pub enum Signer {
    /// secp256k1, EIP-191 signatures, as `eth_account`.
    Eth(EthSigner),
    /// ed25519, as the Python SDK's `SOLAccount`.
    Sol(SolSigner),
}

fn supported(chain: Chain) -> Result<Chain, KeyError> {
    match chain {
        Chain::Eth | Chain::Sol => Ok(chain),
        other => Err(KeyError::UnsupportedChain(other.as_str().to_owned())),
    }
}

impl Signer {
    /// A fresh key from the operating system's random source.
    pub fn generate(chain: Chain) -> Result<Self, KeyError> {
        Ok(match supported(chain)? {
            Chain::Sol => Signer::Sol(SolSigner::new_random()),
            _ => Signer::Eth(EthSigner::new_random()),
        })
    }

    /// From secret bytes: 32 for ETH (the secp256k1 key); 32 (the ed25519 seed) or 64 (seed
    /// then public key, the layout of `solana-keygen` files and Phantom exports) for SOL.
    pub fn from_bytes(chain: Chain, bytes: &[u8]) -> Result<Self, KeyError> {
        match supported(chain)? {
            Chain::Sol => {
                let seed: [u8; 32] = match bytes.len() {
                    32 | 64 => bytes[..32].try_into().map_err(|_| KeyError::NotHex)?,
                    got => {
                        return Err(KeyError::Length {
                            chain: "SOL",
                            expected: "32 or 64",
                            got,
                        });
                    }
                };
                let signer = SolSigner::from_seed(&seed);
                if bytes.len() == 64 && bytes[32..] != signer.public_key() {
                    return Err(KeyError::KeypairMismatch);
                }
                Ok(Signer::Sol(signer))
            }
            _ => {
                let secret: [u8; 32] = bytes.try_into().map_err(|_| KeyError::Length {
                    chain: "ETH",
                    expected: "32",
                    got: bytes.len(),
                })?;
                EthSigner::from_secret_bytes(&secret)
                    .map(Signer::Eth)
                    .map_err(|_| KeyError::InvalidSecret)
            }
        }
    }

    /// From hex (an optional `0x`, surrounding whitespace ignored); see [`Signer::from_bytes`].
    pub fn from_hex(chain: Chain, text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        let digits = text
            .strip_prefix("0x")
            .or_else(|| text.strip_prefix("0X"))
            .unwrap_or(text);
        let bytes = hex::decode(digits).map_err(|_| KeyError::NotHex)?;
        Self::from_bytes(chain, &bytes)
    }

    /// From a BIP-39 mnemonic (English) and passphrase (`""` for none), at the chain's usual
    /// first account: [`derive::ETH_PATH`] (as `eth_account`'s `Account.from_mnemonic`) or
    /// [`derive::SOL_PATH`] (as Phantom and Solflare).
    pub fn from_mnemonic(chain: Chain, phrase: &str, passphrase: &str) -> Result<Self, KeyError> {
        let path = match supported(chain)? {
            Chain::Sol => derive::SOL_PATH,
            _ => derive::ETH_PATH,
        };
        Self::from_mnemonic_path(chain, phrase, passphrase, path)
    }

    /// The same at another derivation path (every index hardened for SOL).
    pub fn from_mnemonic_path(
        chain: Chain,
        phrase: &str,
        passphrase: &str,
        path: &str,
    ) -> Result<Self, KeyError> {
        let chain = supported(chain)?;
        let seed = derive::seed(phrase, passphrase)?;
        let path = derive::parse_path(path)?;
        match chain {
            Chain::Sol => Self::from_bytes(chain, &derive::ed25519_key(&seed, &path)?),
            _ => Self::from_bytes(chain, &derive::secp256k1_key(&seed, &path)?),
        }
    }

    /// `ETH` or `SOL`.
    pub fn chain(&self) -> Chain {
        match self {
            Signer::Eth(_) => Chain::Eth,
            Signer::Sol(_) => Chain::Sol,
        }
    }

    /// The address: EIP-55 `0x…` for ETH, the base58 public key for SOL.
    pub fn address(&self) -> String {
        match self {
            Signer::Eth(signer) => signer.address(),
            Signer::Sol(signer) => signer.address(),
        }
    }

    /// The public key as wallets show it: `0x04…` (SEC1 uncompressed, hex) for ETH, base58
    /// for SOL (which is also its address).
    pub fn public_key(&self) -> String {
        match self {
            Signer::Eth(signer) => format!("0x{}", hex::encode(signer.public_key_uncompressed())),
            Signer::Sol(signer) => signer.address(),
        }
    }

    /// The 32 secret bytes (the secp256k1 key, or the ed25519 seed). Keep them secret.
    pub fn secret_bytes(&self) -> [u8; 32] {
        match self {
            Signer::Eth(signer) => signer.secret_bytes(),
            Signer::Sol(signer) => signer.seed_bytes(),
        }
    }

    /// Signs any bytes: an EIP-191 `personal_sign` for ETH (65 bytes r ‖ s ‖ v), a plain
    /// ed25519 signature for SOL (64 bytes).
    pub fn sign_bytes(&self, message: &[u8]) -> Vec<u8> {
        match self {
            Signer::Eth(signer) => signer.sign_personal(message).to_vec(),
            Signer::Sol(signer) => signer.sign_bytes(message).to_vec(),
        }
    }
}

impl Sign for Signer {
    fn chain(&self) -> Chain {
        Signer::chain(self)
    }
    fn address(&self) -> String {
        Signer::address(self)
    }
    fn sign_fields(&self, fields: &SignedFields) -> String {
        match self {
            Signer::Eth(signer) => signer.sign_message(fields),
            Signer::Sol(signer) => signer.sign_message(fields),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST_PHRASE: &str = "test test test test test test test test test test test junk";

    #[test]
    fn eth_mnemonic_is_the_well_known_account() {
        // Hardhat's and anvil's first account for this phrase.
        let signer = Signer::from_mnemonic(Chain::Eth, TEST_PHRASE, "").unwrap();
        assert_eq!(
            signer.address(),
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
        );
        assert_eq!(
            hex::encode(signer.secret_bytes()),
            "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
        );
    }

    #[test]
    fn sol_mnemonic_is_the_wallets_account() {
        // A phrase and its m/44'/501'/0'/0' address as published with the ed25519-hd-key
        // JavaScript library (what Phantom-compatible tools use).
        let signer = Signer::from_mnemonic(
            Chain::Sol,
            "have work cattle cream victory just garden pilot lonely fiscal rough winner",
            "",
        )
        .unwrap();
        assert_eq!(
            signer.address(),
            "Bsw8DaAn7tb7n4AuP1WWVDS4BjEW3EVKnDwobqx8WYFC"
        );
        let second = Signer::from_mnemonic_path(
            Chain::Sol,
            "have work cattle cream victory just garden pilot lonely fiscal rough winner",
            "",
            "m/44'/501'/1'/0'",
        )
        .unwrap();
        assert_eq!(
            second.address(),
            "B3GyLfJNL8mN4JNh6NNzCSKoYDGPh5cKsZ5sUd1bgCfB"
        );
    }

    #[test]
    fn bytes_and_hex() {
        let eth = Signer::generate(Chain::Eth).unwrap();
        let again = Signer::from_hex(
            Chain::Eth,
            &format!(" 0x{} \n", hex::encode(eth.secret_bytes())),
        )
        .unwrap();
        assert_eq!(eth.address(), again.address());
        assert!(eth.public_key().starts_with("0x04") && eth.public_key().len() == 132);

        let sol = Signer::generate(Chain::Sol).unwrap();
        let Signer::Sol(inner) = &sol else { panic!() };
        let mut keypair = sol.secret_bytes().to_vec();
        keypair.extend(inner.public_key());
        assert_eq!(
            Signer::from_bytes(Chain::Sol, &keypair).unwrap().address(),
            sol.address()
        );
        keypair[40] ^= 1;
        assert_eq!(
            Signer::from_bytes(Chain::Sol, &keypair).unwrap_err(),
            KeyError::KeypairMismatch
        );

        assert_eq!(
            Signer::from_hex(Chain::Eth, "zz").unwrap_err(),
            KeyError::NotHex
        );
        assert!(matches!(
            Signer::from_bytes(Chain::Eth, &[1; 31]),
            Err(KeyError::Length { .. })
        ));
        assert_eq!(
            Signer::from_bytes(Chain::Eth, &[0; 32]).unwrap_err(),
            KeyError::InvalidSecret
        );
        assert!(matches!(
            Signer::generate(Chain::Dot),
            Err(KeyError::UnsupportedChain(_))
        ));
    }

    #[test]
    fn byte_signatures_verify() {
        let eth = Signer::generate(Chain::Eth).unwrap();
        let signature = eth.sign_bytes(b"hello");
        let recovered = raleph_crypto::recover_personal_sign(b"hello", &signature).unwrap();
        assert!(recovered.eq_ignore_ascii_case(&eth.address()));
        let sol = Signer::generate(Chain::Sol).unwrap();
        assert!(raleph_crypto::sol_verify_bytes(
            &sol.address(),
            b"hello",
            &sol.sign_bytes(b"hello")
        ));
        assert!(!raleph_crypto::sol_verify_bytes(
            &sol.address(),
            b"hellO",
            &sol.sign_bytes(b"hello")
        ));
    }
}
