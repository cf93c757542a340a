//! The index store: everything the node knows about messages, and the state derived from them.
//!
//! Two interfaces, both backend-neutral and synchronous (callers run them on a blocking
//! thread):
//! - [`WriteStore`]: one per node, owned by the pipeline's writer thread. Operations are
//!   domain-shaped (insert a post, rebuild an aggregate, forget a message) so a second backend
//!   reimplements them in its own SQL without touching the pipeline.
//! - [`ReadStore`]: shared by the API; every method is one consistent read.
//!
//! SQLite (WAL, embedded) is the default backend (`sqlite` feature): `sqlite::open`.
//! PostgreSQL (`postgres` feature) serves an index larger than one machine, or read by several
//! API processes: `postgres::open`. Both behave the same; `tests/conformance.rs` checks it.
//!
//! Records are built on the message crate's types: a stored message is its [`Envelope`] plus
//! what the node learnt of it ([`MessageRecord`]), and item hashes, chains and types are
//! [`ItemHash`], [`Chain`] and [`MessageType`], checked as rows are read (a value that does not
//! parse is [`StoreError::Corrupt`]). Lookups take an [`ItemHash`]: a caller holding text that
//! is no item hash knows without asking that nothing is stored under it.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod anchors;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod conn;
// The query layer's backend-neutral parts; without a backend nothing calls most of them.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
mod kept;
mod model;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod query;
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
mod shared;
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
mod sql;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(test)]
mod test_names;
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
mod time_counts;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod totals;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod write;

pub use anchors::*;
pub use model::*;

/// How durable a commit is. In the node's configuration, `durability = "full"` or `"normal"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// An acknowledged commit survives power loss (SQLite: fsync on every commit;
    /// PostgreSQL: `synchronous_commit = on`). The default.
    #[default]
    Full,
    /// Survives a crash of the node process, not of the machine (or of the database server).
    Normal,
}

/// A failure of the store itself, never of the data it was given.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("database error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The database cannot be used right now, whatever is asked of it: the server is down or
    /// unreachable, the disk is full, an I/O error. Nothing is wrong with the request; the
    /// same request may succeed once the database is back.
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("database schema is version {found}, newer than this node knows ({known})")]
    SchemaTooNew { found: i64, known: i64 },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A read asked for more than its byte bound (`MessageQuery::max_bytes`).
    #[error("the rows asked for hold more than {limit} bytes")]
    TooLarge { limit: usize },
}

impl StoreError {
    /// Whether the database, not the request, failed (see [`StoreError::Unavailable`]).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The write side. Calls between [`WriteStore::begin`] and [`WriteStore::commit`] form one
/// durable transaction; savepoints isolate one message's changes inside a batch.
pub trait WriteStore: Send {
    fn begin(&mut self) -> Result<()>;
    fn commit(&mut self) -> Result<()>;
    fn rollback(&mut self) -> Result<()>;
    fn savepoint(&mut self) -> Result<()>;
    fn release_savepoint(&mut self) -> Result<()>;
    fn rollback_savepoint(&mut self) -> Result<()>;

    // Intake and the pending queue.
    fn enqueue_pending(&mut self, pending: &NewPending) -> Result<EnqueueOutcome>;
    fn due_pending(&mut self, now: f64, limit: usize) -> Result<Vec<PendingRow>>;
    fn next_due(&mut self) -> Result<Option<f64>>;
    fn delete_pending(&mut self, id: i64) -> Result<()>;
    fn reschedule_pending(
        &mut self,
        id: i64,
        retries: u32,
        next_attempt: f64,
        error: &Failure,
    ) -> Result<()>;
    fn other_pending(&mut self, item_hash: &ItemHash, except_id: i64) -> Result<u64>;

    // Statuses.
    fn status(&mut self, item_hash: &ItemHash) -> Result<Option<MessageStatus>>;
    /// `Processed` (and `Removing`, `Removed`) belong to a message indexed with
    /// `insert_message`, earlier or in the same transaction: a backend may keep a processed
    /// message's status as its row.
    fn set_status(
        &mut self,
        item_hash: &ItemHash,
        status: MessageStatus,
        reception_time: f64,
    ) -> Result<()>;
    fn record_rejection(
        &mut self,
        item_hash: &ItemHash,
        message: &serde_json::Value,
        error: &Failure,
    ) -> Result<()>;

    // Messages.
    fn insert_message(&mut self, message: &NewMessage) -> Result<()>;
    fn message_facts(&mut self, item_hash: &ItemHash) -> Result<Option<MessageFacts>>;
    /// A second copy of a known message: keep the earliest declared time.
    fn keep_earliest_time(&mut self, item_hash: &ItemHash, time: f64) -> Result<()>;

    // POST.
    fn insert_post(&mut self, post: &NewPost) -> Result<()>;
    fn post_facts(&mut self, item_hash: &ItemHash) -> Result<Option<PostFacts>>;
    /// Points the original at its amend with the greatest content time.
    fn refresh_latest_amend(&mut self, original: &ItemHash) -> Result<()>;
    fn amends_of(&mut self, original: &ItemHash) -> Result<Vec<ItemHash>>;

    // AGGREGATE.
    /// Inserts an element and brings its aggregate up to date: the first element is the
    /// value, the newest in content-time order is merged into the current value, and one that
    /// arrives out of order makes the value be rebuilt from every element. `element.content`
    /// is a JSON object as `serde_json` writes it.
    fn add_aggregate_element(&mut self, element: &NewAggregateElement) -> Result<()>;
    /// Recomputes the merged value of `(owner, key)` from its elements; deletes it if none remain.
    fn rebuild_aggregate(&mut self, owner: &str, key: &str) -> Result<()>;
    fn aggregate_value(&mut self, owner: &str, key: &str) -> Result<Option<serde_json::Value>>;
    /// The size in bytes of an aggregate's merged value (0 when it has none), without reading
    /// the value.
    fn aggregate_size(&mut self, owner: &str, key: &str) -> Result<u64>;
    fn aggregate_element_hashes(&mut self, owner: &str, key: &str) -> Result<Vec<ItemHash>>;

    // STORE, PROGRAM, INSTANCE.
    fn insert_file_pin(&mut self, pin: &NewFilePin) -> Result<()>;
    fn file_pin(&mut self, message_hash: &ItemHash) -> Result<Option<FilePinFacts>>;
    fn file_tag_exists(&mut self, tag: &str) -> Result<bool>;
    fn refresh_file_tag(&mut self, tag: &str) -> Result<()>;
    fn insert_vm(&mut self, vm: &NewVm) -> Result<()>;
    fn vm_facts(&mut self, item_hash: &ItemHash) -> Result<Option<VmFacts>>;
    /// Whether a program or instance uses this STORE message (or its file tag) as a volume.
    fn store_used_by_vm(&mut self, store_hash: &str) -> Result<bool>;

    // Files.
    /// Records a file the node holds; `grace_until` keeps it alive until then without pins.
    fn record_file(&mut self, file: &FileRecord, grace_until: Option<f64>) -> Result<()>;
    /// The size of the file a volume reference designates (a STORE message hash, or a file
    /// tag when `use_latest`), when the node knows it.
    fn volume_file_size(&mut self, reference: &str, use_latest: bool) -> Result<Option<u64>>;
    /// Deletes the records of files with no pin and no unexpired grace pin; returns their
    /// sha256 so their bytes can be deleted.
    fn collect_unpinned_files(&mut self, now: f64) -> Result<Vec<String>>;
    /// Forgets rejected messages (their record and status) first received before `before`,
    /// then the oldest past the newest `keep`, at most `batch` in all; returns how many. A
    /// copy that arrives later is a new message.
    fn expire_rejections(&mut self, before: f64, keep: u64, batch: usize) -> Result<usize>;
    fn file_known(&mut self, sha256: &str) -> Result<bool>;

    // FORGET.
    /// Deletes the message and what it derived, keeps a skeleton, sets status forgotten.
    /// Files it pinned that have no pin left get a grace pin until `grace_until`.
    fn forget(
        &mut self,
        item_hash: &ItemHash,
        forgotten_by: &ItemHash,
        now: f64,
        grace_until: f64,
    ) -> Result<()>;
    fn append_forgotten_by(&mut self, item_hash: &ItemHash, forgotten_by: &ItemHash) -> Result<()>;
    /// Records that a message this store never held was forgotten elsewhere (a skeleton a peer
    /// synced, already checked by the caller): the item hash becomes `forgotten`, so the message
    /// is refused if it ever arrives. Does nothing, and returns false, when the store holds the
    /// message or already knows it forgotten.
    fn record_forgotten(&mut self, skeleton: &ForgottenRecord) -> Result<bool>;
    /// The FORGET messages a forgotten message was forgotten by (empty when it is not).
    fn forgotten_by(&mut self, item_hash: &ItemHash) -> Result<Vec<ItemHash>>;
    /// Whether some AGGREGATE message of `owner` is recorded as forgotten by `forget_hash`.
    fn forgot_aggregates_of(&mut self, owner: &str, forget_hash: &ItemHash) -> Result<bool>;
    /// Drops what `record_forgotten` recorded, once a copy of the message itself has shown
    /// that the FORGET the skeleton came with does not target it: the item hash is unknown
    /// again, and the message can be processed.
    fn unforget(&mut self, item_hash: &ItemHash) -> Result<()>;
    /// The parsed `content` of a message the store holds.
    fn message_content(&mut self, item_hash: &ItemHash) -> Result<Option<serde_json::Value>>;

    /// The number of the last intake-journal record whose effects this store holds (0 when
    /// none): set in the same transaction as those effects, read at start to replay the rest.
    fn journal_position(&mut self) -> Result<u64>;
    fn set_journal_position(&mut self, position: u64) -> Result<()>;

    // Blockchain anchoring (issue 16). Confirmations are kept by item hash, whatever the
    // message's status (or whether the store holds it at all).
    /// Records an anchoring transaction and one confirmation per item (its position is its
    /// index in `items`), and closes the open batch of the chain whose archive is the
    /// anchor's. Idempotent on `(chain, tx_hash, log_index)`: returns false, changing
    /// nothing, when the anchor is known already.
    fn record_anchor(&mut self, anchor: &Anchor, items: &[ItemHash]) -> Result<bool>;
    /// Records an anchor whose archive was found nowhere, without confirmations, and keeps it
    /// among the [`ReadStore::missing_archives`] (with the Merkle root its payload claimed)
    /// until [`WriteStore::complete_anchor`]. False, changing nothing, when it is known.
    fn record_anchor_missing_archive(
        &mut self,
        anchor: &Anchor,
        claimed_root: Option<&str>,
    ) -> Result<bool>;
    /// An anchor's archive, found at last: one confirmation per item, as
    /// [`WriteStore::record_anchor`] would have made them, and its Merkle root; it is no
    /// longer missing. False, changing nothing, when the anchor is not missing its archive
    /// (completed already, or dropped by a reorganisation).
    fn complete_anchor(
        &mut self,
        anchor: &Anchor,
        items: &[ItemHash],
        merkle_root: Option<&str>,
    ) -> Result<bool>;
    /// A reorganisation of `chain`: deletes its anchors at `height` and above and their
    /// confirmations, and opens again the batches they confirmed. Returns how many anchors.
    fn drop_anchors_from(&mut self, chain: Chain, height: u64) -> Result<u64>;
    /// The chain reader's position on `chain` (opaque to the store; one per chain).
    fn set_chain_position(&mut self, chain: Chain, position: &str) -> Result<()>;
    /// Records a batch a packing node built, open until an anchor confirms it; its items
    /// are no longer [`ReadStore::unanchored`]. Returns its id.
    fn create_batch(
        &mut self,
        chain: Chain,
        archive: &str,
        merkle_root: &str,
        items: &[ItemHash],
        now: f64,
    ) -> Result<i64>;
    /// The batch was sent in transaction `tx_hash` with `nonce` (the last one sent, when
    /// it is sent again). Nothing happens for a batch that no longer exists.
    fn batch_submitted(&mut self, id: i64, tx_hash: &str, nonce: u64, now: f64) -> Result<()>;
    /// Deletes a batch: its items that no anchor confirms are unanchored again.
    fn abandon_batch(&mut self, id: i64) -> Result<()>;
}

/// The read side, for the API. Implementations are cheap to share across threads.
pub trait ReadStore: Send + Sync + 'static {
    fn message(&self, item_hash: &ItemHash) -> Result<Option<MessageRecord>>;
    fn status(&self, item_hash: &ItemHash) -> Result<Option<StatusRecord>>;
    fn pending_copies(&self, item_hash: &ItemHash) -> Result<Vec<PendingCopy>>;
    fn rejection(&self, item_hash: &ItemHash) -> Result<Option<Rejection>>;
    fn forgotten(&self, item_hash: &ItemHash) -> Result<Option<ForgottenRecord>>;
    fn messages(&self, query: &MessageQuery) -> Result<Vec<MessageRecord>>;
    fn count_messages(&self, query: &MessageQuery) -> Result<u64>;
    fn forgotten_messages(&self, query: &MessageQuery) -> Result<Vec<ForgottenRecord>>;
    fn count_forgotten_messages(&self, query: &MessageQuery) -> Result<u64>;
    fn posts(&self, query: &PostQuery) -> Result<Vec<PostRecord>>;
    fn count_posts(&self, query: &PostQuery) -> Result<u64>;
    /// An owner's aggregates (those of `keys`, or all), by key, with no bound on their size.
    fn aggregates_of(&self, owner: &str, keys: &[String]) -> Result<Vec<AggregateRecord>> {
        self.aggregates_of_bounded(owner, keys, 0)
    }
    /// The same, read no further than `max_bytes` of values (0: no bound): past it,
    /// [`StoreError::TooLarge`].
    fn aggregates_of_bounded(
        &self,
        owner: &str,
        keys: &[String],
        max_bytes: usize,
    ) -> Result<Vec<AggregateRecord>>;
    fn aggregates(&self, query: &AggregateQuery) -> Result<Vec<AggregateRecord>>;
    fn count_aggregates(&self, query: &AggregateQuery) -> Result<u64>;
    /// The total of a message list when the store keeps it (see `kept.rs`): exact as of this
    /// read and a few rows to read, so it needs no cache. `None` when the total must be
    /// counted. (A backend's `count_messages` reads kept totals itself.)
    fn kept_message_total(&self, query: &MessageQuery) -> Result<Option<u64>> {
        match kept::message_total(query) {
            Some(_) => self.count_messages(query).map(Some),
            None => Ok(None),
        }
    }
    /// As [`ReadStore::kept_message_total`], for a post list.
    fn kept_post_total(&self, query: &PostQuery) -> Result<Option<u64>> {
        match kept::post_is_kept(query) {
            true => self.count_posts(query).map(Some),
            false => Ok(None),
        }
    }
    /// As [`ReadStore::kept_message_total`], for an aggregate list.
    fn kept_aggregate_total(&self, query: &AggregateQuery) -> Result<Option<u64>> {
        match kept::aggregate_is_kept(query) {
            true => self.count_aggregates(query).map(Some),
            false => Ok(None),
        }
    }
    fn channels(&self) -> Result<Vec<String>>;
    /// A page of the item hashes of every status (the reference's `messages/hashes`), by
    /// reception time, each with its status.
    fn message_hashes(&self, query: &HashQuery) -> Result<Vec<StatusRecord>>;
    /// How many item hashes `query` names, its page aside.
    fn count_message_hashes(&self, query: &HashQuery) -> Result<u64>;
    /// The post types of an address's processed POST messages, sorted, each once (kept in
    /// `list_totals`: a few rows, however many messages the address sent).
    fn address_post_types(&self, address: &str) -> Result<Vec<String>>;
    /// The channels of an address's processed messages, sorted, each once (kept likewise).
    fn address_channels(&self, address: &str) -> Result<Vec<String>>;
    /// The `security` aggregates whose authorizations name `grantee`, by owner (through the
    /// `security_grants` index), each handed to `visit` as it is read: however many owners
    /// grant `grantee`, memory holds one aggregate at a time. An error from `visit` stops the
    /// read and is returned.
    fn each_grant_to(
        &self,
        grantee: &str,
        visit: &mut dyn FnMut(Grant) -> Result<()>,
    ) -> Result<()>;
    /// The bytes of every file the node holds (the `files` table's sizes: one pass over it).
    fn stored_file_bytes(&self) -> Result<u64>;
    /// A file the node holds, by any of its identifiers.
    fn file(&self, id: &str) -> Result<Option<FileRecord>>;
    /// How many messages pin a file (STORE pins and non-inline message contents), plus one
    /// for a grace pin still running at `now` (seconds since the epoch).
    fn file_pin_count(&self, file: &FileRecord, now: f64) -> Result<u64>;
    /// The files an address's STORE messages pin, and their total size.
    fn address_files(
        &self,
        address: &str,
        limit: u64,
        offset: u64,
        order: SortOrder,
    ) -> Result<(Vec<AddressFile>, u64, u64)>;
    /// The file a STORE message pins.
    fn file_of_message(&self, message_hash: &ItemHash) -> Result<Option<PinnedFile>>;
    /// The file a tag points to now.
    fn file_of_tag(&self, tag: &str) -> Result<Option<PinnedFile>>;
    fn address_stats(&self, addresses: &[String]) -> Result<Vec<AddressStats>>;
    fn counts(&self) -> Result<Counts>;
    /// Up to `limit` messages whose sync sequence number is above `after`, in sequence order,
    /// and no further than the first whose content (`item_content` and `content`) would take
    /// the page's past `max_bytes`: at least one message, so a page never stalls, and never
    /// more than `max_bytes` plus one message read into memory.
    fn sync_log(&self, after: u64, limit: usize, max_bytes: usize) -> Result<SyncPage>;

    // Blockchain anchoring (issue 16).
    /// The chain reader's position on `chain`, as last set.
    fn chain_position(&self, chain: Chain) -> Result<Option<String>>;
    /// Every chain reader's position, by chain name.
    fn chain_positions(&self) -> Result<Vec<(Chain, String)>>;
    /// The confirmations of a page of messages, read at once: by item hash, then lowest
    /// height first.
    fn confirmations(&self, hashes: &[ItemHash]) -> Result<Vec<(ItemHash, Confirmation)>>;
    /// Every anchor of a message and its position there, lowest height first.
    fn anchored_at(&self, hash: &ItemHash) -> Result<Vec<AnchoredAt>>;
    /// An anchor's items in position order (empty for an unknown anchor).
    fn anchor_items(&self, chain: Chain, tx_hash: &str, log_index: u64) -> Result<Vec<ItemHash>>;
    /// Anchors of `chain` whose archive is still missing, in the order they were recorded,
    /// from just after the one whose id is `after` (0: from the first), at most `limit`.
    fn missing_archives(&self, chain: Chain, after: i64, limit: u64)
    -> Result<Vec<MissingArchive>>;
    /// How many anchors, on every chain, still miss their archive.
    fn count_missing_archives(&self) -> Result<u64>;
    /// Up to `limit` processed (or removing) signed messages that no anchor confirms and no
    /// open batch holds, oldest reception first, then by item hash: what a packer anchors.
    fn unanchored(&self, limit: usize) -> Result<Vec<MessageRecord>>;
    /// The batches of `chain` neither confirmed nor abandoned, oldest first, with their items.
    fn open_batches(&self, chain: Chain) -> Result<Vec<Batch>>;
}
