//! A message's anchoring proof: `GET /api/v0/messages/{hash}/proof` answers, for every anchor
//! of the message, the transaction and block it is in, the batch's Merkle root, and the path
//! from the message's leaf to that root. With it, anyone can check against a chain RPC (or a
//! contract, on chain: `contracts/AlephMerkleVerifier.sol`) that the message was anchored,
//! without trusting this node: `raleph message verify` does so.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, State};
use axum::routing::get;
use raleph_api::{ApiError, ApiResult};
use raleph_chain::merkle::{MerkleTree, leaf};
use raleph_db::{AnchoredAt, ItemHash, ReadStore};
use serde::{Deserialize, Serialize};

/// The proofs of one message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Proofs {
    pub item_hash: String,
    /// The leaf the proofs start from: keccak256 of the item hash's text.
    pub leaf: String,
    /// One per anchor of the message, lowest height first.
    pub anchors: Vec<AnchorProof>,
}

/// Where a message was anchored, and the path to the batch's root.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AnchorProof {
    pub chain: String,
    pub tx_hash: String,
    pub log_index: u64,
    pub height: u64,
    pub block_hash: String,
    /// The block's time, seconds since the epoch.
    pub time: f64,
    pub publisher: String,
    pub protocol: String,
    /// The archive's CID (`aleph-offchain`).
    pub archive: Option<String>,
    /// The batch's Merkle root as the payload carried it; `None` for an anchor without one
    /// (the reference's packers add none): such an anchor is proven by its archive alone.
    pub merkle_root: Option<String>,
    /// The message's position among the batch's items.
    pub position: u32,
    /// The sibling hashes from the leaf up (sorted-pair hashing, `raleph_chain::merkle`).
    pub proof: Vec<String>,
}

/// Batch trees kept for the proofs asked next: rebuilding a 10 000-message tree per request
/// took ~38 ms. A tree of `max_archive_messages` (10 000) leaves holds ~640 KB, so the cache
/// stays under ~10 MB.
const TREES_KEPT: usize = 16;

/// An anchor, as the cache knows it.
type AnchorKey = (String, String, u64);

/// The most recently used trees, oldest first.
#[derive(Default)]
struct Trees(Mutex<VecDeque<(AnchorKey, Arc<MerkleTree>)>>);

impl Trees {
    fn get(&self, key: &AnchorKey) -> Option<Arc<MerkleTree>> {
        let mut trees = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let at = trees.iter().position(|(k, _)| k == key)?;
        let entry = trees.remove(at)?;
        let tree = entry.1.clone();
        trees.push_back(entry);
        Some(tree)
    }

    fn put(&self, key: AnchorKey, tree: Arc<MerkleTree>) {
        let mut trees = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if trees.len() >= TREES_KEPT {
            trees.pop_front();
        }
        trees.push_back((key, tree));
    }
}

#[derive(Clone)]
struct ProofState {
    reader: Arc<dyn ReadStore>,
    trees: Arc<Trees>,
}

/// The proof route, to merge into the node's router.
pub fn router(reader: Arc<dyn ReadStore>) -> axum::Router {
    axum::Router::new()
        .route("/api/v0/messages/{hash}/proof", get(proof))
        .with_state(ProofState {
            reader,
            trees: Arc::default(),
        })
}

async fn proof(
    State(ProofState { reader, trees }): State<ProofState>,
    Path(hash): Path<String>,
) -> ApiResult<Json<Proofs>> {
    let hash = ItemHash::parse(&hash).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let item = hash.clone();
    let proofs = tokio::task::spawn_blocking(move || -> raleph_db::Result<Vec<AnchorProof>> {
        let anchors = reader.anchored_at(&item)?;
        let mut proofs = Vec::with_capacity(anchors.len());
        for at in anchors {
            let tree = match at.anchor.merkle_root {
                Some(_) => tree_of(reader.as_ref(), &trees, &at)?,
                None => None,
            };
            proofs.push(anchor_proof(at, tree.as_deref()));
        }
        Ok(proofs)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    if proofs.is_empty() {
        return Err(ApiError::not_found(format!(
            "message {hash} is not anchored"
        )));
    }
    Ok(Json(Proofs {
        leaf: format!("{:#x}", leaf(hash.as_str())),
        item_hash: hash.into(),
        anchors: proofs,
    }))
}

/// The tree of the anchor's items, from the cache or built from the store.
fn tree_of(
    reader: &dyn ReadStore,
    trees: &Trees,
    at: &AnchoredAt,
) -> raleph_db::Result<Option<Arc<MerkleTree>>> {
    let a = &at.anchor;
    let key = (a.chain.as_str().to_owned(), a.tx_hash.clone(), a.log_index);
    if let Some(tree) = trees.get(&key) {
        return Ok(Some(tree));
    }
    let items = reader.anchor_items(a.chain, &a.tx_hash, a.log_index)?;
    let Ok(tree) = MerkleTree::new(&items) else {
        return Ok(None);
    };
    let tree = Arc::new(tree);
    trees.put(key, tree.clone());
    Ok(Some(tree))
}

/// The proof of the item at `at.position` in `tree` (empty when the anchor has no root: no
/// path is given).
fn anchor_proof(at: AnchoredAt, tree: Option<&MerkleTree>) -> AnchorProof {
    let path = tree
        .and_then(|tree| tree.proof(at.position as usize))
        .unwrap_or_default();
    let a = at.anchor;
    AnchorProof {
        chain: a.chain.as_str().to_owned(),
        tx_hash: a.tx_hash,
        log_index: a.log_index,
        height: a.height,
        block_hash: a.block_hash,
        time: a.time,
        publisher: a.publisher,
        protocol: a.protocol,
        archive: a.archive,
        merkle_root: a.merkle_root,
        position: at.position,
        proof: path.iter().map(|h| format!("{h:#x}")).collect(),
    }
}
