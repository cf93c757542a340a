//! The write side's domain operations, written once for both backends over [`Session`]: the
//! statements of an operation and the kept totals it changes. Each backend keeps its
//! connection, transactions, sequence numbers, how it writes the kept totals at commit, and
//! the operations whose statements differ on purpose (a message's status, inserting a
//! message). Statements run as [`crate::conn`] describes.

pub(crate) mod aggregates;
pub(crate) mod anchors;
pub(crate) mod files;
pub(crate) mod forget;
pub(crate) mod grants;
pub(crate) mod messages;
pub(crate) mod pending;
pub(crate) mod posts;
pub(crate) mod records;

use crate::Result;
pub(crate) use crate::conn::{Connection, Row, Value, first, hashes, rows, strings};
use crate::totals::Totals;

/// The writer's connection, as the shared operations use it.
pub(crate) trait Session: Connection {
    /// Runs a statement; returns how many rows it changed.
    fn execute(&mut self, sql: &str, params: &[Value<'_>]) -> Result<u64>;
    /// The open transaction's changes to the kept totals.
    fn totals(&mut self) -> &mut Totals;
    /// Outside a transaction each statement commits alone: so do the kept totals.
    fn settle_if_autocommit(&mut self) -> Result<()>;
    /// SQL for "the text `haystack` contains `needle`".
    fn contains(&self, haystack: &str, needle: &str) -> String;
    /// The next number of the sync log (messages and skeletons share it).
    fn next_seq(&mut self) -> Result<i64>;
    /// Messages were added to or removed from the index in the open transaction (SQLite
    /// refreshes its planner statistics by them); nothing by default.
    fn count_messages(&mut self, _delta: i64) {}
}

/// The `WriteStore` operations both backends take from this module, in each backend's
/// `impl WriteStore` (a macro, since the rest of each impl is the backend's own).
macro_rules! shared_write_operations {
    () => {
        fn enqueue_pending(
            &mut self,
            p: &$crate::NewPending,
        ) -> $crate::Result<$crate::EnqueueOutcome> {
            let status = $crate::WriteStore::status(self, &p.item_hash)?;
            $crate::write::pending::enqueue(self, p, status)
        }

        fn due_pending(
            &mut self,
            now: f64,
            limit: usize,
        ) -> $crate::Result<Vec<$crate::PendingRow>> {
            $crate::write::pending::due(self, now, limit)
        }

        fn next_due(&mut self) -> $crate::Result<Option<f64>> {
            $crate::write::pending::next_due(self)
        }

        fn delete_pending(&mut self, id: i64) -> $crate::Result<()> {
            $crate::write::pending::delete(self, id)
        }

        fn reschedule_pending(
            &mut self,
            id: i64,
            retries: u32,
            next_attempt: f64,
            error: &$crate::Failure,
        ) -> $crate::Result<()> {
            $crate::write::pending::reschedule(self, id, retries, next_attempt, error)
        }

        fn other_pending(
            &mut self,
            item_hash: &$crate::ItemHash,
            except_id: i64,
        ) -> $crate::Result<u64> {
            $crate::write::pending::others(self, item_hash.as_str(), except_id)
        }

        fn record_rejection(
            &mut self,
            item_hash: &$crate::ItemHash,
            message: &serde_json::Value,
            error: &$crate::Failure,
        ) -> $crate::Result<()> {
            $crate::write::records::record_rejection(self, item_hash.as_str(), message, error)
        }

        fn message_facts(
            &mut self,
            item_hash: &$crate::ItemHash,
        ) -> $crate::Result<Option<$crate::MessageFacts>> {
            $crate::write::records::message_facts(self, item_hash.as_str())
        }

        fn insert_post(&mut self, p: &$crate::NewPost) -> $crate::Result<()> {
            $crate::write::posts::insert(self, p)
        }

        fn post_facts(
            &mut self,
            item_hash: &$crate::ItemHash,
        ) -> $crate::Result<Option<$crate::PostFacts>> {
            $crate::write::posts::facts(self, item_hash.as_str())
        }

        fn refresh_latest_amend(&mut self, original: &$crate::ItemHash) -> $crate::Result<()> {
            $crate::write::posts::refresh_latest_amend(self, original.as_str())
        }

        fn amends_of(
            &mut self,
            original: &$crate::ItemHash,
        ) -> $crate::Result<Vec<$crate::ItemHash>> {
            $crate::write::posts::amends_of(self, original.as_str())
        }

        fn add_aggregate_element(&mut self, e: &$crate::NewAggregateElement) -> $crate::Result<()> {
            $crate::write::aggregates::add_element(self, e)
        }

        fn rebuild_aggregate(&mut self, owner: &str, key: &str) -> $crate::Result<()> {
            $crate::write::aggregates::rebuild(self, owner, key)
        }

        fn aggregate_value(
            &mut self,
            owner: &str,
            key: &str,
        ) -> $crate::Result<Option<serde_json::Value>> {
            $crate::write::aggregates::value(self, owner, key)
        }

        fn aggregate_size(&mut self, owner: &str, key: &str) -> $crate::Result<u64> {
            $crate::write::aggregates::size(self, owner, key)
        }

        fn aggregate_element_hashes(
            &mut self,
            owner: &str,
            key: &str,
        ) -> $crate::Result<Vec<$crate::ItemHash>> {
            $crate::write::aggregates::element_hashes(self, owner, key)
        }

        fn insert_file_pin(&mut self, pin: &$crate::NewFilePin) -> $crate::Result<()> {
            $crate::write::files::insert_pin(self, pin)
        }

        fn file_pin(
            &mut self,
            message_hash: &$crate::ItemHash,
        ) -> $crate::Result<Option<$crate::FilePinFacts>> {
            $crate::write::files::pin(self, message_hash.as_str())
        }

        fn file_tag_exists(&mut self, tag: &str) -> $crate::Result<bool> {
            $crate::write::files::tag_exists(self, tag)
        }

        fn refresh_file_tag(&mut self, tag: &str) -> $crate::Result<()> {
            $crate::write::files::refresh_tag(self, tag)
        }

        fn insert_vm(&mut self, vm: &$crate::NewVm) -> $crate::Result<()> {
            $crate::write::files::insert_vm(self, vm)
        }

        fn vm_facts(
            &mut self,
            item_hash: &$crate::ItemHash,
        ) -> $crate::Result<Option<$crate::VmFacts>> {
            $crate::write::files::vm_facts(self, item_hash.as_str())
        }

        fn store_used_by_vm(&mut self, store_hash: &str) -> $crate::Result<bool> {
            $crate::write::files::store_used_by_vm(self, store_hash)
        }

        fn record_file(
            &mut self,
            file: &$crate::FileRecord,
            grace_until: Option<f64>,
        ) -> $crate::Result<()> {
            $crate::write::files::record(self, file, grace_until)
        }

        fn volume_file_size(
            &mut self,
            reference: &str,
            use_latest: bool,
        ) -> $crate::Result<Option<u64>> {
            $crate::write::files::volume_size(self, reference, use_latest)
        }

        fn file_known(&mut self, sha256: &str) -> $crate::Result<bool> {
            $crate::write::files::known(self, sha256)
        }

        fn forgotten_by(
            &mut self,
            item_hash: &$crate::ItemHash,
        ) -> $crate::Result<Vec<$crate::ItemHash>> {
            $crate::write::records::forgotten_by(self, item_hash.as_str())
        }

        fn forgot_aggregates_of(
            &mut self,
            owner: &str,
            forget_hash: &$crate::ItemHash,
        ) -> $crate::Result<bool> {
            $crate::write::records::forgot_aggregates_of(self, owner, forget_hash.as_str())
        }

        fn append_forgotten_by(
            &mut self,
            item_hash: &$crate::ItemHash,
            forgotten_by: &$crate::ItemHash,
        ) -> $crate::Result<()> {
            $crate::write::records::append_forgotten_by(
                self,
                item_hash.as_str(),
                forgotten_by.as_str(),
            )
        }

        fn message_content(
            &mut self,
            item_hash: &$crate::ItemHash,
        ) -> $crate::Result<Option<serde_json::Value>> {
            $crate::write::records::message_content(self, item_hash.as_str())
        }

        fn forget(
            &mut self,
            item_hash: &$crate::ItemHash,
            forgotten_by: &$crate::ItemHash,
            now: f64,
            grace_until: f64,
        ) -> $crate::Result<()> {
            $crate::write::forget::forget(
                self,
                item_hash.as_str(),
                forgotten_by.as_str(),
                now,
                grace_until,
            )
        }

        fn record_forgotten(&mut self, k: &$crate::ForgottenRecord) -> $crate::Result<bool> {
            let hash = &k.envelope.item_hash;
            match $crate::WriteStore::status(self, hash)? {
                Some(status) if status.is_live() || status == $crate::MessageStatus::Forgotten => {
                    return Ok(false);
                }
                _ => {}
            }
            $crate::write::forget::insert_skeleton(self, k)?;
            $crate::WriteStore::set_status(
                self,
                hash,
                $crate::MessageStatus::Forgotten,
                k.reception_time,
            )?;
            $crate::write::Session::settle_if_autocommit(self)?;
            Ok(true)
        }

        fn journal_position(&mut self) -> $crate::Result<u64> {
            $crate::write::records::journal_position(self)
        }

        fn keep_earliest_time(
            &mut self,
            item_hash: &$crate::ItemHash,
            time: f64,
        ) -> $crate::Result<()> {
            $crate::write::messages::keep_earliest_time(self, item_hash.as_str(), time)
        }

        fn unforget(&mut self, item_hash: &$crate::ItemHash) -> $crate::Result<()> {
            $crate::write::messages::unforget(self, item_hash.as_str())
        }

        fn collect_unpinned_files(&mut self, now: f64) -> $crate::Result<Vec<String>> {
            $crate::write::files::collect_unpinned(self, now)
        }

        fn expire_rejections(
            &mut self,
            before: f64,
            keep: u64,
            batch: usize,
        ) -> $crate::Result<usize> {
            $crate::write::records::expire_rejections(self, before, keep, batch)
        }

        fn set_journal_position(&mut self, position: u64) -> $crate::Result<()> {
            $crate::write::records::set_journal_position(self, position)
        }

        fn record_anchor(
            &mut self,
            anchor: &$crate::Anchor,
            items: &[$crate::ItemHash],
        ) -> $crate::Result<bool> {
            $crate::write::anchors::record_anchor(self, anchor, items)
        }

        fn record_anchor_missing_archive(
            &mut self,
            anchor: &$crate::Anchor,
            claimed_root: Option<&str>,
        ) -> $crate::Result<bool> {
            $crate::write::anchors::record_anchor_missing_archive(self, anchor, claimed_root)
        }

        fn complete_anchor(
            &mut self,
            anchor: &$crate::Anchor,
            items: &[$crate::ItemHash],
            merkle_root: Option<&str>,
        ) -> $crate::Result<bool> {
            $crate::write::anchors::complete_anchor(self, anchor, items, merkle_root)
        }

        fn drop_anchors_from(&mut self, chain: $crate::Chain, height: u64) -> $crate::Result<u64> {
            $crate::write::anchors::drop_anchors_from(self, chain, height)
        }

        fn set_chain_position(
            &mut self,
            chain: $crate::Chain,
            position: &str,
        ) -> $crate::Result<()> {
            $crate::write::anchors::set_chain_position(self, chain, position)
        }

        fn create_batch(
            &mut self,
            chain: $crate::Chain,
            archive: &str,
            merkle_root: &str,
            items: &[$crate::ItemHash],
            now: f64,
        ) -> $crate::Result<i64> {
            $crate::write::anchors::create_batch(self, chain, archive, merkle_root, items, now)
        }

        fn batch_submitted(
            &mut self,
            id: i64,
            tx_hash: &str,
            nonce: u64,
            now: f64,
        ) -> $crate::Result<()> {
            $crate::write::anchors::batch_submitted(self, id, tx_hash, nonce, now)
        }

        fn abandon_batch(&mut self, id: i64) -> $crate::Result<()> {
            $crate::write::anchors::abandon_batch(self, id)
        }
    };
}

pub(crate) use shared_write_operations;
