//! raleph's Merkle proofs (`raleph_chain::merkle`) checked by a Solidity verifier on a real
//! chain (`contracts/AlephMerkleVerifier.sol` on anvil): the rule documented in the module is
//! the one a smart contract can apply.

use alloy_network::TransactionBuilder;
use alloy_primitives::{Address, B256};
use alloy_provider::Provider as _;
use alloy_rpc_types_eth::TransactionRequest;
use alloy_sol_types::{SolCall, sol};
use raleph_chain::merkle::{MerkleTree, leaf};
use raleph_chain::testing::{Anvil, VERIFIER_ARTIFACT};

sol! {
    function verify(bytes32[] proof, bytes32 root, string itemHash) external pure returns (bool);
    function leaf(string itemHash) external pure returns (bytes32);
    function verifyRaw(bytes32[] proof, bytes32 root, bytes itemHash) external pure returns (bool);
}

async fn call<C: SolCall>(anvil: &Anvil, contract: Address, call: C) -> C::Return {
    let request = TransactionRequest::default()
        .with_to(contract)
        .with_input(call.abi_encode());
    let out = anvil.provider().call(request).await.unwrap();
    C::abi_decode_returns(&out).unwrap()
}

async fn on_chain(
    anvil: &Anvil,
    contract: Address,
    proof: &[B256],
    root: B256,
    item: &str,
) -> bool {
    call(
        anvil,
        contract,
        verifyCall {
            proof: proof.to_vec(),
            root,
            itemHash: item.to_owned(),
        },
    )
    .await
}

/// Item hashes of both kinds: hex sha256 digests and CIDs.
fn items(n: usize, seed: u64) -> Vec<String> {
    (0..n as u64)
        .map(|i| {
            let x = (i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ seed;
            if i % 3 == 2 {
                format!("Qm{:044x}", x)[..46].to_owned()
            } else {
                format!("{x:016x}{x:016x}{x:016x}{x:016x}")
            }
        })
        .collect()
}

#[tokio::test]
async fn the_solidity_verifier_accepts_our_proofs_and_nothing_else() {
    let Some(anvil) = Anvil::start_or_skip(&[]) else {
        return;
    };
    let verifier = anvil.deploy_artifact(VERIFIER_ARTIFACT, 0).await;

    // The leaf rule is the same on both sides.
    for item in items(4, 7) {
        let on_chain_leaf: B256 = call(
            &anvil,
            verifier,
            leafCall {
                itemHash: item.clone(),
            },
        )
        .await;
        assert_eq!(on_chain_leaf, leaf(&item));
    }

    // Every proof of every batch size up to 17 (odd and even levels), and a larger batch.
    for (n, seed) in (1..=17).map(|n| (n, n as u64)).chain([(100, 1)]) {
        let batch = items(n, seed);
        let tree = MerkleTree::new(&batch).unwrap();
        let root = tree.root();
        let indexes: Vec<usize> = if n > 17 {
            vec![0, 1, 50, 98, 99]
        } else {
            (0..n).collect()
        };
        for i in indexes {
            let proof = tree.proof(i).unwrap();
            assert!(
                on_chain(&anvil, verifier, &proof, root, &batch[i]).await,
                "batch of {n}, item {i}"
            );
            // Another root, or another item with this proof, is refused.
            let mut other_root = root;
            other_root.0[31] ^= 1;
            assert!(!on_chain(&anvil, verifier, &proof, other_root, &batch[i]).await);
            if n > 1 {
                let j = (i + 1) % n;
                assert!(!on_chain(&anvil, verifier, &proof, root, &batch[j]).await);
            }
        }
    }

    // An inner node's preimage (two 32-byte children) is never a leaf: the verifier refuses
    // an item hash that is not ASCII letters and digits, and an empty or overlong one.
    let batch = items(4, 3);
    let tree = MerkleTree::new(&batch).unwrap();
    let (a, b) = (leaf(&batch[0]), leaf(&batch[1]));
    let (low, high) = if a <= b { (a, b) } else { (b, a) };
    let mut preimage = low.to_vec();
    preimage.extend_from_slice(high.as_slice());
    let upper_proof = tree.proof(0).unwrap()[1..].to_vec();
    // Without the check the forgery would hold: the preimage hashes to the inner node.
    assert!(raleph_chain::merkle::verify(
        &upper_proof,
        tree.root(),
        alloy_primitives::keccak256(&preimage)
    ));
    // An ABI string carries any bytes: send the raw preimage under verify's selector
    // (`bytes` and `string` encode alike).
    let mut input = verifyRawCall {
        proof: upper_proof,
        root: tree.root(),
        itemHash: preimage.into(),
    }
    .abi_encode();
    input[..4].copy_from_slice(&verifyCall::SELECTOR);
    let request = TransactionRequest::default()
        .with_to(verifier)
        .with_input(input);
    let out = anvil.provider().call(request).await.unwrap();
    assert!(!verifyCall::abi_decode_returns(&out).unwrap());
    assert!(!on_chain(&anvil, verifier, &[], leaf(""), "").await);
    let long = "a".repeat(129);
    assert!(!on_chain(&anvil, verifier, &[], leaf(&long), &long).await);
    let spaced = "ab cd";
    assert!(!on_chain(&anvil, verifier, &[], leaf(spaced), spaced).await);
    assert!(on_chain(&anvil, verifier, &[], leaf("abcd"), "abcd").await);
}
