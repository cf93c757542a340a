// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.0;

/// Checks that an Aleph message belongs to a batch anchored by raleph: given the batch's Merkle
/// root (the `merkle_root` of the batch's `aleph-offchain` payload) and the inclusion proof a
/// raleph node serves, `verify` recomputes the root from the message's item hash.
///
/// The rules are those of raleph-chain's `merkle` module: leaf = keccak256 of the item hash
/// string's bytes; parent = keccak256 of the two children, the smaller first (sorted pairs);
/// the proof lists the siblings from the leaf up. Only well-formed item hashes (ASCII letters
/// and digits, as hex digests and CIDs are) are accepted, so that no 64-byte inner node can be
/// presented as a leaf.
///
/// That the root itself was anchored is read from the chain's `SyncEvent` log, off chain;
/// this contract keeps no state.
contract AlephMerkleVerifier {
    /// The longest item hash accepted (a hex sha256 is 64 characters, a CIDv1 about 60).
    uint256 public constant MAX_ITEM_HASH_BYTES = 128;

    /// The leaf of `itemHash`.
    function leaf(string calldata itemHash) public pure returns (bytes32) {
        return keccak256(bytes(itemHash));
    }

    /// Whether `proof` leads from `itemHash`'s leaf to `root`.
    function verify(bytes32[] calldata proof, bytes32 root, string calldata itemHash)
        external
        pure
        returns (bool)
    {
        bytes calldata raw = bytes(itemHash);
        if (raw.length == 0 || raw.length > MAX_ITEM_HASH_BYTES) {
            return false;
        }
        for (uint256 i = 0; i < raw.length; i++) {
            bytes1 c = raw[i];
            bool digit = c >= "0" && c <= "9";
            bool lower = c >= "a" && c <= "z";
            bool upper = c >= "A" && c <= "Z";
            if (!(digit || lower || upper)) {
                return false;
            }
        }
        bytes32 node = keccak256(raw);
        for (uint256 i = 0; i < proof.length; i++) {
            bytes32 sibling = proof[i];
            node = node <= sibling
                ? keccak256(abi.encodePacked(node, sibling))
                : keccak256(abi.encodePacked(sibling, node));
        }
        return node == root;
    }
}
