//! Item hashes: the identifier of a message, and the address of non-inline content.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What kind of identifier an item hash is, told from its shape alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ItemHashKind {
    /// 64 hex characters: a SHA-256 digest.
    Sha256,
    /// An IPFS CID: `Qm…` (CIDv0) or `bafy…` (CIDv1, base32).
    Cid,
}

/// A syntactically valid item hash.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemHash(String);

/// A string that has the shape of no item hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an item hash (expected 64 hex characters or an IPFS CID)")]
pub struct InvalidItemHash(pub String);

impl ItemHash {
    /// Checks the shape the reference accepts: 64 lowercase hex characters, `Qm` + 42–44 base58
    /// characters, or `bafy` + 55 base32 characters.
    pub fn parse(s: &str) -> Result<Self, InvalidItemHash> {
        if kind_of(s).is_some() {
            Ok(ItemHash(s.to_owned()))
        } else {
            Err(InvalidItemHash(s.to_owned()))
        }
    }

    pub fn kind(&self) -> ItemHashKind {
        kind_of(&self.0).expect("checked at construction")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

fn kind_of(s: &str) -> Option<ItemHashKind> {
    const BASE58: &str = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Some(ItemHashKind::Sha256);
    }
    if s.starts_with("Qm") && (44..=46).contains(&s.len()) && s.chars().all(|c| BASE58.contains(c))
    {
        return Some(ItemHashKind::Cid);
    }
    if s.starts_with("bafy")
        && s.len() == 59
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
    {
        return Some(ItemHashKind::Cid);
    }
    None
}

impl fmt::Display for ItemHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for ItemHash {
    type Err = InvalidItemHash;
    fn from_str(s: &str) -> Result<Self, InvalidItemHash> {
        ItemHash::parse(s)
    }
}

impl AsRef<str> for ItemHash {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<ItemHash> for String {
    fn from(hash: ItemHash) -> String {
        hash.0
    }
}

impl Serialize for ItemHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ItemHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ItemHash::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let sha = "acdcf62bccef79ac2df0627c0e1f82eb2a1ef8911e2a45003f61724d96f38be7";
        assert_eq!(
            ItemHash::parse(sha).map(|h| h.kind()),
            Ok(ItemHashKind::Sha256)
        );
        let v0 = "QmNrEidQrAbxx3FzxNt9E6qjEDZrtvzxUVh47BXm55Zuen";
        assert_eq!(ItemHash::parse(v0).map(|h| h.kind()), Ok(ItemHashKind::Cid));
        let v1 = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";
        assert_eq!(ItemHash::parse(v1).map(|h| h.kind()), Ok(ItemHashKind::Cid));
        for bad in [
            "",
            "abc",
            &sha[1..],
            "Qm0",
            &format!("{sha}0"),
            "zz".repeat(32).as_str(),
        ] {
            assert!(ItemHash::parse(bad).is_err(), "{bad}");
        }
    }
}
