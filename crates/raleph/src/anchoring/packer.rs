//! One chain's packer (a packing node only): every `commit_delay_secs`, anchors a batch of
//! the node's unconfirmed messages, as the reference's packer does, in its archive format
//! and through `doEmit`, with a Merkle root of the batch's item hashes in the payload.
//!
//! One batch at a time per chain, and every step is recorded before the next, so a restart
//! or a crash neither loses a batch nor emits one twice:
//! 1. the archive is stored and pinned, and the batch recorded (`create_batch`): its items
//!    are no longer "unanchored";
//! 2. the transaction is signed, its hash and nonce recorded (`batch_submitted`), then sent;
//! 3. the batch is done when this node's own reader sees its `SyncEvent` at the confirmation
//!    depth (`record_anchor` closes it).
//!
//! A batch found open at a later round (or after a restart) is resumed: one never submitted
//! is sent; one whose transaction is mined waits for the reader; one whose transaction is in
//! no block and not in the pool (dropped, replaced, or never sent before a crash) is sent
//! again; one still pending waits. Its items and archive never change.

use std::time::Duration;

use anyhow::Context;
use raleph_chain::merkle::MerkleTree;
use raleph_chain::payload::{ArchiveMessage, build_archive, offchain_payload};
use raleph_chain::{B256, EvmChainConfig, NonceState, PackingKey, Writer, WriterError};
use raleph_db::{Batch, ItemHash, MessageRecord};

use super::Anchoring;

/// What a round did.
#[derive(Debug, PartialEq, Eq)]
enum Round {
    /// Nothing to anchor.
    Idle,
    /// A batch was sent (or sent again).
    Sent,
    /// A batch's transaction is pending or mined: the reader will confirm it.
    Waiting,
}

pub(super) fn spawn(anchoring: Anchoring, config: EvmChainConfig) -> anyhow::Result<()> {
    let packing = config
        .packing
        .clone()
        .context("a packer needs packing settings")?;
    let key = PackingKey::load(&packing.key_file)?;
    let writer = Writer::new(&config, key)?;
    tracing::info!(chain = %config.chain, account = %writer.address(), "anchoring: packing");
    tokio::spawn(async move {
        let chain = config.chain;
        let delay = packing_delay(&config);
        loop {
            match round(&anchoring, &config, &writer).await {
                Ok(round) => tracing::debug!(%chain, ?round, "anchoring: packer round"),
                Err(e) => tracing::warn!(%chain, "anchoring: packing failed, retrying: {e:#}"),
            }
            tokio::time::sleep(delay).await;
        }
    });
    Ok(())
}

fn packing_delay(config: &EvmChainConfig) -> Duration {
    config
        .packing
        .as_ref()
        .map_or(Duration::from_secs(35), |p| p.commit_delay())
}

async fn round(
    anchoring: &Anchoring,
    config: &EvmChainConfig,
    writer: &Writer,
) -> anyhow::Result<Round> {
    let chain = config.chain;
    let reader = anchoring.reader.clone();
    let open = tokio::task::spawn_blocking(move || reader.open_batches(chain)).await??;
    if let Some(batch) = open.into_iter().next() {
        return resume(anchoring, writer, &batch).await;
    }
    let max = config
        .packing
        .as_ref()
        .map_or(0, |p| p.max_messages)
        .min(config.limits.max_archive_messages);
    let reader = anchoring.reader.clone();
    let messages = tokio::task::spawn_blocking(move || reader.unanchored(max)).await??;
    if messages.is_empty() {
        return Ok(Round::Idle);
    }
    let archive = build_archive(
        &messages.iter().map(archive_message).collect::<Vec<_>>(),
        &config.limits,
    )?;
    let file = anchoring
        .archives
        .store(&archive, None)
        .await?
        .context("the archive was not stored")?;
    let items: Vec<ItemHash> = messages.into_iter().map(|m| m.envelope.item_hash).collect();
    let root = MerkleTree::new(&items)?.root();
    let count = items.len();
    let id = anchoring
        .pipeline
        .create_batch(chain, file.cid_v0.clone(), format!("{root:#x}"), items)
        .await?;
    tracing::info!(%chain, batch = id, messages = count, cid = %file.cid_v0, "anchoring: batch built");
    send(anchoring, writer, id, &file.cid_v0, root).await
}

/// An open batch, found again: sent, or left to wait (see the module doc).
async fn resume(anchoring: &Anchoring, writer: &Writer, batch: &Batch) -> anyhow::Result<Round> {
    let root: B256 = batch
        .merkle_root
        .parse()
        .context("a batch's stored Merkle root")?;
    let Some(tx) = &batch.submitted else {
        return send(anchoring, writer, batch.id, &batch.archive, root).await;
    };
    let hash: B256 = tx.tx_hash.parse().context("a batch's stored tx hash")?;
    // The nonces are read before the receipt, never after: a transaction mined between the
    // two reads then shows as mined. Read the other way round, a block arriving between them
    // made a pending transaction look replaced (no receipt yet, its nonce already used), and
    // the batch was emitted twice.
    let nonces = writer.nonce_state().await?;
    match writer.receipt(hash).await {
        Ok(Some(_)) => return Ok(Round::Waiting),
        Ok(None) => {}
        // Mined but failed: nothing was emitted; send it again.
        Err(WriterError::Reverted { .. }) => {
            return send(anchoring, writer, batch.id, &batch.archive, root).await;
        }
        Err(e) => return Err(e.into()),
    }
    if replaced_or_dropped(nonces, tx.nonce) {
        tracing::warn!(batch = batch.id, tx = %tx.tx_hash, "anchoring: the batch's transaction was dropped; sending it again");
        return send(anchoring, writer, batch.id, &batch.archive, root).await;
    }
    Ok(Round::Waiting)
}

/// Whether a transaction with this nonce, not mined when the receipt was asked for (after
/// `nonces` were read), will never be: another transaction took its nonce, or it is in no
/// pool.
fn replaced_or_dropped(nonces: NonceState, nonce: u64) -> bool {
    nonces.latest > nonce || nonces.pending <= nonce
}

/// Signs the batch's `doEmit`, records the transaction, then sends it.
async fn send(
    anchoring: &Anchoring,
    writer: &Writer,
    batch: i64,
    archive: &str,
    root: B256,
) -> anyhow::Result<Round> {
    let payload = offchain_payload(archive, Some(root))?;
    let signed = writer.sign(&payload).await?;
    let tx = signed.submitted;
    anchoring
        .pipeline
        .batch_submitted(batch, format!("{:#x}", tx.tx_hash), tx.nonce)
        .await?;
    writer.broadcast(&signed).await?;
    tracing::info!(batch, tx = %format!("{:#x}", tx.tx_hash), nonce = tx.nonce, "anchoring: batch sent");
    Ok(Round::Sent)
}

/// A message as the archive carries it: the fields its sender signed.
fn archive_message(m: &MessageRecord) -> ArchiveMessage {
    let e = &m.envelope;
    ArchiveMessage {
        sender: e.sender.clone(),
        chain: e.chain.as_str().to_owned(),
        signature: e.signature.clone(),
        message_type: e.message_type.as_str().to_owned(),
        item_content: e.item_content.clone(),
        item_type: e.item_type.as_str().to_owned(),
        item_hash: e.item_hash.to_string(),
        time: e.time,
        channel: e.channel.clone(),
    }
}
