//! A Merkle tree over the item hashes of one anchored batch, so that one message can be
//! proven part of an anchoring transaction without the whole archive.
//!
//! The rules, which a verifier (off chain, or a Solidity contract using the same scheme as
//! OpenZeppelin's `MerkleProof.verify`) must follow exactly:
//!
//! - **Leaf**: `keccak256(bytes(item_hash))`, the hash of the item hash *string* as it appears
//!   in the message (64 lowercase hex digits, or a CID), UTF-8, no prefix or length.
//! - **Pair**: `keccak256(min(a, b) ++ max(a, b))`, the two 32-byte children ordered as
//!   unsigned big-endian numbers before hashing ("sorted pairs"), so a proof is a plain list
//!   of siblings with no left/right flags.
//! - **Levels**: leaves in batch (archive) order; each level pairs neighbours `(0,1), (2,3),
//!   ...`; an odd last node is carried up unchanged (it is hashed with nothing).
//! - **Root** of one leaf is the leaf; an empty batch has no root.
//! - **Verify**: fold the proof over the leaf with the pair rule; the result must equal the
//!   root.
//!
//! A verifier must also check that the item hash it hashes is a well-formed item hash (ASCII
//! hex or base58): an inner node's preimage is 64 arbitrary bytes, never such a string, which
//! is what keeps an inner node from being passed off as a leaf.
//!
//! `contracts/AlephMerkleVerifier.sol` applies these rules on chain; the test
//! `tests/merkle_verifier.rs` checks it accepts this module's proofs (and refuses the
//! inner-node forgery) on anvil.

use alloy_primitives::{B256, keccak256};

/// Most leaves in one tree (proofs of at most 24 hashes); `limits.max_archive_messages` may
/// not exceed it, and its default (10 000) is far below.
pub const MAX_LEAVES: usize = 1 << 24;

/// The leaf of one item hash.
pub fn leaf(item_hash: &str) -> B256 {
    keccak256(item_hash.as_bytes())
}

/// The parent of two nodes, in either order.
pub fn hash_pair(a: B256, b: B256) -> B256 {
    let (low, high) = if a <= b { (a, b) } else { (b, a) };
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(low.as_slice());
    buf[32..].copy_from_slice(high.as_slice());
    keccak256(buf)
}

/// Why a tree could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MerkleError {
    #[error("a Merkle tree needs at least one item")]
    Empty,
    #[error("{0} items, more than a tree may hold ({MAX_LEAVES})")]
    TooMany(usize),
}

/// A built tree: every level, leaves first, so proofs are read off without rehashing.
#[derive(Clone, Debug)]
pub struct MerkleTree {
    levels: Vec<Vec<B256>>,
}

impl MerkleTree {
    /// The tree over `item_hashes`, in order.
    pub fn new<S: AsRef<str>>(item_hashes: &[S]) -> Result<Self, MerkleError> {
        Self::from_leaves(item_hashes.iter().map(|h| leaf(h.as_ref())).collect())
    }

    /// The tree over already hashed leaves.
    pub fn from_leaves(leaves: Vec<B256>) -> Result<Self, MerkleError> {
        if leaves.is_empty() {
            return Err(MerkleError::Empty);
        }
        if leaves.len() > MAX_LEAVES {
            return Err(MerkleError::TooMany(leaves.len()));
        }
        let mut levels = vec![leaves];
        while let Some(level) = levels.last().filter(|level| level.len() > 1) {
            let next = level
                .chunks(2)
                .map(|pair| match pair {
                    [a, b] => hash_pair(*a, *b),
                    [odd] => *odd,
                    _ => unreachable!("chunks(2) yields one or two nodes"),
                })
                .collect();
            levels.push(next);
        }
        Ok(MerkleTree { levels })
    }

    pub fn root(&self) -> B256 {
        // Built with at least one leaf, so the top level has exactly one node.
        self.levels
            .last()
            .and_then(|top| top.first())
            .copied()
            .unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.levels.first().map_or(0, Vec::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The siblings from leaf `index` up to the root, or `None` past the last leaf.
    pub fn proof(&self, index: usize) -> Option<Vec<B256>> {
        if index >= self.len() {
            return None;
        }
        let mut proof = Vec::new();
        let mut i = index;
        for level in &self.levels[..self.levels.len() - 1] {
            let sibling = i ^ 1;
            // An odd last node has no sibling at this level: it is carried up as is.
            if let Some(node) = level.get(sibling) {
                proof.push(*node);
            }
            i /= 2;
        }
        Some(proof)
    }
}

/// Whether `proof` leads from `leaf` to `root` (the pair rule of the module doc).
pub fn verify(proof: &[B256], root: B256, leaf: B256) -> bool {
    proof
        .iter()
        .fold(leaf, |node, sibling| hash_pair(node, *sibling))
        == root
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hashes(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{:064x}", i * 7919)).collect()
    }

    #[test]
    fn small_trees_by_hand() {
        let h = hashes(3);
        let [a, b, c] = [leaf(&h[0]), leaf(&h[1]), leaf(&h[2])];
        assert_eq!(MerkleTree::new(&h[..1]).unwrap().root(), a);
        assert_eq!(MerkleTree::new(&h[..2]).unwrap().root(), hash_pair(a, b));
        let three = MerkleTree::new(&h).unwrap();
        assert_eq!(three.root(), hash_pair(hash_pair(a, b), c));
        assert_eq!(three.proof(2).unwrap(), vec![hash_pair(a, b)]);
        assert_eq!(three.proof(0).unwrap(), vec![b, c]);
        assert_eq!(three.proof(3), None);
        assert_eq!(
            MerkleTree::new::<String>(&[]).unwrap_err(),
            MerkleError::Empty
        );
        // The leaf is keccak256 of the string's bytes: a known vector.
        assert_eq!(
            leaf(""),
            "0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
                .parse::<B256>()
                .unwrap()
        );
    }

    proptest! {
        #[test]
        fn every_proof_verifies(n in 1usize..80) {
            let h = hashes(n);
            let tree = MerkleTree::new(&h).unwrap();
            for (i, item) in h.iter().enumerate() {
                let proof = tree.proof(i).unwrap();
                prop_assert!(proof.len() <= 7);
                prop_assert!(verify(&proof, tree.root(), leaf(item)));
            }
        }

        #[test]
        fn a_proof_does_not_verify_another_item_or_root(n in 2usize..60, i in 0usize..60, j in 0usize..60, flip in 0usize..32) {
            let (i, j) = (i % n, j % n);
            prop_assume!(i != j);
            let h = hashes(n);
            let tree = MerkleTree::new(&h).unwrap();
            let proof = tree.proof(i).unwrap();
            prop_assert!(!verify(&proof, tree.root(), leaf(&h[j])));
            let mut root = tree.root();
            root.0[flip] ^= 1;
            prop_assert!(!verify(&proof, root, leaf(&h[i])));
            // Any change to the batch changes the root.
            let mut other = h.clone();
            other[j].push('0');
            prop_assert_ne!(MerkleTree::new(&other).unwrap().root(), tree.root());
        }
    }
}
