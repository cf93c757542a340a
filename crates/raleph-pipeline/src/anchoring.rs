//! Blockchain anchoring's records, changed on the writer thread (invariant 6): what a chain
//! reader saw (anchors, reorganisations, its position) and a packer's batches. The binary's
//! chain tasks ask through `PipelineHandle`; each change is a transaction of its own.

use raleph_db::WriteStore;

use crate::submission::{AnchorDone, AnchorOp};

/// Applies `op` in the open transaction; `now` is the pipeline clock's time.
pub(crate) fn apply(
    store: &mut dyn WriteStore,
    op: AnchorOp,
    now: f64,
) -> raleph_db::Result<AnchorDone> {
    Ok(match op {
        AnchorOp::Record { anchor, items } => {
            AnchorDone::Recorded(store.record_anchor(&anchor, &items)?)
        }
        AnchorOp::RecordMissing {
            anchor,
            claimed_root,
        } => AnchorDone::Recorded(
            store.record_anchor_missing_archive(&anchor, claimed_root.as_deref())?,
        ),
        AnchorOp::Complete {
            anchor,
            items,
            merkle_root,
        } => {
            AnchorDone::Recorded(store.complete_anchor(&anchor, &items, merkle_root.as_deref())?)
        }
        AnchorOp::DropFrom { chain, height } => {
            AnchorDone::Dropped(store.drop_anchors_from(chain, height)?)
        }
        AnchorOp::SetPosition { chain, position } => {
            store.set_chain_position(chain, &position)?;
            AnchorDone::Done
        }
        AnchorOp::CreateBatch {
            chain,
            archive,
            merkle_root,
            items,
        } => AnchorDone::Batch(store.create_batch(chain, &archive, &merkle_root, &items, now)?),
        AnchorOp::Submitted { id, tx_hash, nonce } => {
            store.batch_submitted(id, &tx_hash, nonce, now)?;
            AnchorDone::Done
        }
        AnchorOp::KeepFile { file, secs } => {
            // A grace pin: the later one holds (`WriteStore::record_file`).
            store.record_file(&file, Some(now + secs))?;
            AnchorDone::Done
        }
        AnchorOp::Abandon { id } => {
            store.abandon_batch(id)?;
            AnchorDone::Done
        }
    })
}
