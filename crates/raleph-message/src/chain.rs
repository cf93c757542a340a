//! Chain names as they appear in the `chain` field of a message.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How the signature of a message on a chain is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SignatureScheme {
    /// EIP-191 `personal_sign` over secp256k1, address from keccak256.
    Evm,
    /// Avalanche X-chain style signed message, cb58 signature.
    Avalanche,
    /// ed25519 over the raw buffer, `{signature, publicKey}` JSON.
    Solana,
    /// sr25519 (substrate), `{curve, data}` JSON.
    Substrate,
    /// Cosmos SDK ADR-036 style amino document.
    Cosmos,
    /// NULS2 signed message, base64 65-byte recoverable signature.
    Nuls2,
    /// Legacy NULS v1 serialized signature.
    Nuls,
    /// Tezos `edsig`/`spsig`/`p2sig` over blake2b.
    Tezos,
    /// Listed by the reference, but it has no verifier: messages are rejected.
    Unsupported,
}

macro_rules! chains {
    ($($variant:ident = $name:literal => $scheme:ident,)*) => {
        /// A chain a sender key belongs to.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Chain { $($variant,)* }

        impl Chain {
            /// Every chain, in declaration order.
            pub const ALL: &'static [Chain] = &[$(Chain::$variant,)*];

            /// The wire name, e.g. `"ETH"`.
            pub fn as_str(self) -> &'static str {
                match self { $(Chain::$variant => $name,)* }
            }

            /// How signatures on this chain are verified.
            pub fn scheme(self) -> SignatureScheme {
                match self { $(Chain::$variant => SignatureScheme::$scheme,)* }
            }
        }

        impl FromStr for Chain {
            type Err = UnknownChain;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok(Chain::$variant),)*
                    _ => Err(UnknownChain(s.to_owned())),
                }
            }
        }
    };
}

chains! {
    Eth = "ETH" => Evm,
    Etherlink = "ETHERLINK" => Evm,
    Arb = "ARB" => Evm,
    Aurora = "AURORA" => Unsupported,
    Avax = "AVAX" => Avalanche,
    Base = "BASE" => Evm,
    Blast = "BLAST" => Evm,
    Bob = "BOB" => Evm,
    Bsc = "BSC" => Evm,
    Csdk = "CSDK" => Cosmos,
    Cyber = "CYBER" => Evm,
    Dot = "DOT" => Substrate,
    Eclipse = "ES" => Solana,
    Frax = "FRAX" => Evm,
    Hype = "HYPE" => Evm,
    Ink = "INK" => Evm,
    Lens = "LENS" => Evm,
    Linea = "LINEA" => Evm,
    Lisk = "LISK" => Evm,
    Metis = "METIS" => Evm,
    Mode = "MODE" => Evm,
    Neo = "NEO" => Evm,
    Nuls = "NULS" => Nuls,
    Nuls2 = "NULS2" => Nuls2,
    Op = "OP" => Evm,
    Pol = "POL" => Evm,
    Sol = "SOL" => Solana,
    Sonic = "SONIC" => Evm,
    Somnia = "STT" => Unsupported,
    Tezos = "TEZOS" => Tezos,
    Unichain = "UNICHAIN" => Evm,
    Wld = "WLD" => Evm,
    Zora = "ZORA" => Evm,
}

/// A `chain` value that is not in the list of known chains.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown chain {0:?}")]
pub struct UnknownChain(pub String);

impl fmt::Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Chain {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Chain {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for chain in Chain::ALL {
            assert_eq!(chain.as_str().parse::<Chain>(), Ok(*chain));
        }
        assert!("eth".parse::<Chain>().is_err());
    }
}
