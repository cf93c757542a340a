//! The records the store takes and gives back.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

pub use raleph_message::{Chain, Envelope, ItemHash, ItemType, MessageType};

/// The status of an item hash. Every message ends in exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageStatus {
    Pending,
    Processed,
    Rejected,
    Forgotten,
    Removing,
    Removed,
}

impl MessageStatus {
    pub const ALL: [MessageStatus; 6] = [
        MessageStatus::Pending,
        MessageStatus::Processed,
        MessageStatus::Rejected,
        MessageStatus::Forgotten,
        MessageStatus::Removing,
        MessageStatus::Removed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Pending => "pending",
            MessageStatus::Processed => "processed",
            MessageStatus::Rejected => "rejected",
            MessageStatus::Forgotten => "forgotten",
            MessageStatus::Removing => "removing",
            MessageStatus::Removed => "removed",
        }
    }

    /// Whether the message is stored and served (its content is live).
    pub fn is_live(self) -> bool {
        matches!(self, MessageStatus::Processed | MessageStatus::Removing)
    }
}

impl FromStr for MessageStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        MessageStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown status {s:?}"))
    }
}

impl fmt::Display for MessageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error codes of rejections and retries, as the reference numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
#[non_exhaustive]
pub enum ErrorCode {
    InternalError = -1,
    InvalidFormat = 0,
    InvalidSignature = 1,
    PermissionDenied = 2,
    ContentUnavailable = 3,
    FileUnavailable = 4,
    BalanceInsufficient = 5,
    CreditInsufficient = 6,
    PostAmendNoTarget = 100,
    PostAmendTargetNotFound = 101,
    PostAmendAmend = 102,
    StoreRefNotFound = 200,
    StoreUpdateUpdate = 201,
    InvalidPaymentMethod = 202,
    VmRefNotFound = 300,
    VmVolumeNotFound = 301,
    VmAmendNotAllowed = 302,
    VmUpdateUpdate = 303,
    VmVolumeTooSmall = 304,
    ForgetNoTarget = 500,
    ForgetTargetNotFound = 501,
    ForgetForget = 502,
    ForgetNotAllowed = 503,
    ForgottenDuplicate = 504,
}

impl ErrorCode {
    pub fn code(self) -> i32 {
        self as i32
    }

    /// Whether a message failing with this code may succeed later (a dependency not yet
    /// known, content not yet available) and so is retried before being rejected.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::InternalError
                | ErrorCode::ContentUnavailable
                | ErrorCode::FileUnavailable
                | ErrorCode::PostAmendTargetNotFound
                | ErrorCode::StoreRefNotFound
                | ErrorCode::VmRefNotFound
                | ErrorCode::VmVolumeNotFound
                | ErrorCode::ForgetTargetNotFound
        )
    }
}

/// Why a message could not be processed (yet): the code, and details for the sender.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub code: ErrorCode,
    /// `{"errors": [...]}` as the reference shapes it.
    pub details: Value,
}

impl Failure {
    pub fn new(code: ErrorCode, error: impl Into<Value>) -> Self {
        Failure {
            code,
            details: serde_json::json!({ "errors": [error.into()] }),
        }
    }
}

/// A message entering the pending queue.
#[derive(Debug, Clone)]
pub struct NewPending {
    pub item_hash: ItemHash,
    pub sender: String,
    pub signature: Option<String>,
    /// The envelope as submitted (see `raleph_message::Envelope::to_json`).
    pub message: Value,
    pub reception_time: f64,
    /// Where it came from: `api`, `p2p`, `onchain`.
    pub origin: &'static str,
    /// The signature was verified on the way in, so processing need not verify it again.
    pub signature_verified: bool,
    /// When to process it first: `min(message time, now)`, so history replays in time order.
    pub first_attempt: f64,
}

/// What happened to a message offered to the pending queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnqueueOutcome {
    /// Queued (or already queued): it will be processed.
    Queued,
    /// The item hash already has this final status; nothing was queued.
    Known(MessageStatus),
}

#[derive(Debug, Clone)]
pub struct PendingRow {
    pub id: i64,
    pub item_hash: ItemHash,
    pub message: Value,
    pub reception_time: f64,
    pub retries: u32,
    pub signature_verified: bool,
    pub origin: String,
}

/// A processed message, ready to be indexed: the record it will be served as, and what the
/// indexes need to know of its content.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// The message as the store gives it back (its status is `processed`).
    pub record: MessageRecord,
    pub owner: String,
    pub content_type: Option<String>,
    pub content_ref: Option<String>,
    pub content_key: Option<String>,
    pub content_item_hash: Option<String>,
    pub payment_type: Option<String>,
    pub tags: Vec<String>,
}

/// What authorization and FORGET need to know about a stored message: its envelope without
/// the content (`item_content` is `None`; a content may be large), and its index facts.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageFacts {
    pub envelope: Envelope,
    pub owner: String,
    pub content_type: Option<String>,
    pub content_key: Option<String>,
    pub content_ref: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewPost {
    pub item_hash: ItemHash,
    pub owner: String,
    pub post_type: String,
    pub reference: Option<String>,
    /// The original's item hash, for an amend.
    pub amends: Option<ItemHash>,
    pub channel: Option<String>,
    pub content: Option<String>,
    pub creation_time: f64,
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PostFacts {
    pub owner: String,
    pub post_type: String,
    pub amends: Option<ItemHash>,
}

#[derive(Debug, Clone)]
pub struct NewAggregateElement {
    pub item_hash: ItemHash,
    pub owner: String,
    pub key: String,
    /// The element's object, serialized.
    pub content: String,
    pub creation_time: f64,
}

#[derive(Debug, Clone)]
pub struct NewFilePin {
    pub message_hash: ItemHash,
    pub file_hash: String,
    pub owner: String,
    /// The file tag this STORE updates.
    pub tag: String,
    pub created: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FilePinFacts {
    pub file_hash: String,
    pub owner: String,
    pub tag: String,
    /// The STORE's own `ref`, if it was an update of another STORE.
    pub is_update: bool,
}

#[derive(Debug, Clone)]
pub struct NewVm {
    pub item_hash: ItemHash,
    pub owner: String,
    pub vm_type: String,
    pub allow_amend: bool,
    pub replaces: Option<String>,
    pub created: f64,
    /// STORE message hashes or file tags the program uses.
    pub volume_refs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VmFacts {
    pub owner: String,
    pub allow_amend: bool,
    pub replaces: Option<String>,
}

// ---- read side ----

/// A stored message: its envelope as signed, and its content as served.
#[derive(Debug, Clone)]
pub struct MessageRecord {
    pub envelope: Envelope,
    /// Content as served, serialized.
    pub content: String,
    pub size: u64,
    pub reception_time: f64,
    pub status: MessageStatus,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StatusRecord {
    pub item_hash: ItemHash,
    pub status: MessageStatus,
    pub reception_time: f64,
}

/// A page of item hashes of every status, by reception time (`GET /api/v0/messages/hashes`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HashQuery {
    /// Only item hashes of this status.
    pub status: Option<MessageStatus>,
    /// Received at or after this time (seconds since the epoch).
    pub start: Option<f64>,
    /// Received before this time.
    pub end: Option<f64>,
    /// By reception time in this direction, ties by item hash ascending (as the reference).
    pub order: SortOrder,
    /// At most this many (0: no limit), after skipping `offset`.
    pub limit: u64,
    pub offset: u64,
}

/// A security aggregate that grants something to an address (`authorizations/received`).
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    /// The address whose `security` aggregate it is.
    pub owner: String,
    /// The aggregate's merged value, as stored.
    pub content: String,
}

#[derive(Debug, Clone)]
pub struct PendingCopy {
    pub message: Value,
    pub reception_time: f64,
}

#[derive(Debug, Clone)]
pub struct Rejection {
    pub message: Value,
    pub error_code: i32,
    pub details: Value,
}

/// What remains of a forgotten message: its envelope without the content (`item_content` is
/// always `None`), and the facts its listing shows.
#[derive(Debug, Clone)]
pub struct ForgottenRecord {
    pub envelope: Envelope,
    pub owner: String,
    pub payment_type: Option<String>,
    pub size: u64,
    /// The FORGET messages that removed it.
    pub forgotten_by: Vec<ItemHash>,
    pub forgotten_at: f64,
    pub reception_time: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortOrder {
    Ascending,
    #[default]
    Descending,
}

/// Keyset position: the last row of the previous page.
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor {
    pub time: f64,
    pub item_hash: String,
}

/// Filters of the message list. Empty lists mean "no filter".
#[derive(Debug, Clone, Default)]
pub struct MessageQuery {
    pub hashes: Vec<String>,
    pub addresses: Vec<String>,
    pub owners: Vec<String>,
    pub refs: Vec<String>,
    pub content_hashes: Vec<String>,
    pub content_keys: Vec<String>,
    pub content_types: Vec<String>,
    pub chains: Vec<String>,
    pub channels: Vec<String>,
    pub tags: Vec<String>,
    pub payment_types: Vec<String>,
    pub message_types: Vec<String>,
    pub statuses: Vec<MessageStatus>,
    pub start_date: Option<f64>,
    pub end_date: Option<f64>,
    /// Messages unconfirmed, or first confirmed at this height or above (the reference's
    /// `startBlock`).
    pub start_block: Option<u64>,
    /// Messages first confirmed below this height (the reference's `endBlock`).
    pub end_block: Option<u64>,
    /// List by first confirmation time (the reference's `sortBy=tx-time`): unconfirmed
    /// messages first when descending, last when ascending, then by time. No cursor.
    pub sort_by_tx_time: bool,
    pub sort_order: SortOrder,
    /// 0 = no limit.
    pub limit: u64,
    pub offset: u64,
    pub cursor: Option<Cursor>,
    /// Most bytes of messages (their `item_content` and `content`) a list may read; past it
    /// the read stops with [`crate::StoreError::TooLarge`]. 0: no bound.
    pub max_bytes: usize,
}

#[derive(Debug, Clone, Default)]
pub struct PostQuery {
    pub addresses: Vec<String>,
    pub hashes: Vec<String>,
    pub refs: Vec<String>,
    pub types: Vec<String>,
    pub tags: Vec<String>,
    pub channels: Vec<String>,
    pub chains: Vec<String>,
    pub start_date: Option<f64>,
    pub end_date: Option<f64>,
    pub sort_order: SortOrder,
    pub limit: u64,
    pub offset: u64,
    pub cursor: Option<Cursor>,
    /// The caller shows only each latest version's item hash (the v1 shape): the version's
    /// message is then left unread (`PostRecord::latest` is `None`, `original_signature`
    /// empty).
    pub latest_hash_only: bool,
    /// Most bytes of posts (their latest content and raw content) a list may read; past it
    /// the read stops with [`crate::StoreError::TooLarge`]. 0: no bound.
    pub max_bytes: usize,
}

/// A post as listed: the original, folded with its latest amend.
#[derive(Debug, Clone)]
pub struct PostRecord {
    pub original_item_hash: ItemHash,
    pub original_type: String,
    pub original_signature: Option<String>,
    pub owner: String,
    pub reference: Option<String>,
    pub channel: Option<String>,
    pub created: f64,
    /// The latest version: the latest amend, or the original itself.
    pub latest_item_hash: ItemHash,
    /// The latest version's message, as far as post lists show it; `None` when the query
    /// asked for `latest_hash_only`.
    pub latest: Option<PostVersion>,
    pub latest_content: Option<String>,
    pub last_updated: f64,
    pub amended: bool,
}

/// The message of a post's latest version, as far as post lists show it: the fields of the
/// v0 shape. Its content is the post's `latest_content`, so the message's own content (and
/// the columns no post shape shows) are not read.
#[derive(Debug, Clone, PartialEq)]
pub struct PostVersion {
    pub chain: Chain,
    pub signature: Option<String>,
    pub item_type: ItemType,
    pub item_content: Option<String>,
    pub time: f64,
    pub size: u64,
}

#[derive(Debug, Clone, Default)]
pub struct AggregateQuery {
    pub keys: Vec<String>,
    pub addresses: Vec<String>,
    pub sort_by_creation: bool,
    pub sort_order: SortOrder,
    pub limit: u64,
    pub offset: u64,
    /// Most bytes of aggregate values a list may read; past it the read stops with
    /// [`crate::StoreError::TooLarge`]. 0: no bound.
    pub max_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct AggregateRecord {
    pub owner: String,
    pub key: String,
    pub content: String,
    pub created: f64,
    pub last_updated: f64,
    pub original_item_hash: ItemHash,
    pub last_update_item_hash: ItemHash,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AddressStats {
    pub address: String,
    pub post: u64,
    pub aggregate: u64,
    pub store: u64,
    pub forget: u64,
    pub program: u64,
    pub instance: u64,
}

impl AddressStats {
    pub fn total(&self) -> u64 {
        self.post + self.aggregate + self.store + self.forget + self.program + self.instance
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    pub messages: u64,
    pub pending: u64,
    pub by_status: Vec<(MessageStatus, u64)>,
}

/// A file the node holds, by every identifier.
#[derive(Debug, Clone, PartialEq)]
pub struct FileRecord {
    pub sha256: String,
    pub size: u64,
    pub cid_v0: String,
    pub cid_v1: Option<String>,
    pub created: f64,
}

impl FileRecord {
    /// Whether `id` names this file.
    pub fn is_named(&self, id: &str) -> bool {
        id == self.sha256 || id == self.cid_v0 || self.cid_v1.as_deref() == Some(id)
    }
}

/// A file in an address's listing: what its STORE message pinned.
#[derive(Debug, Clone, PartialEq)]
pub struct AddressFile {
    pub file_hash: String,
    pub size: u64,
    pub created: f64,
    pub item_hash: ItemHash,
}

/// The file a STORE message (or a file tag) points to.
#[derive(Debug, Clone, PartialEq)]
pub struct PinnedFile {
    pub message_hash: ItemHash,
    pub file_hash: String,
    pub owner: String,
    pub tag: String,
    pub size: Option<u64>,
}

/// A page of the node's sync log: processed messages in the order this store received them.
/// Peers catch up by asking for what follows the last sequence number they saw.
#[derive(Debug, Clone)]
pub struct SyncPage {
    /// Identifies this store's log; sequence numbers from another epoch mean nothing here
    /// (a store rebuilt from scratch numbers its log again).
    pub epoch: String,
    /// `(sequence number, message)`, in increasing sequence order.
    pub messages: Vec<(u64, MessageRecord)>,
    /// `(sequence number, skeleton)` of messages forgotten here, numbered when forgotten: a
    /// peer that never saw such a message can still record that it is gone (its FORGET alone
    /// cannot be processed without the target).
    pub forgotten: Vec<(u64, ForgottenRecord)>,
    /// The page was ended early by its byte budget: more of the log follows, whatever the
    /// number of entries.
    pub cut_short: bool,
}
