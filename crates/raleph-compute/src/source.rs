//! What compute reads from the node: programs and the files they name. The node (the binary)
//! implements it over its index and file store; compute never sees either directly.

use std::io;

/// A processed PROGRAM message.
#[derive(Debug, Clone)]
pub struct StoredProgram {
    pub item_hash: String,
    pub sender: String,
    pub time: f64,
    /// The content JSON as stored.
    pub content: String,
}

/// A STORE'd file, resolved from a reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedFile {
    /// The STORE message that pins it.
    pub store_hash: String,
    /// sha256 of the file, hex.
    pub sha256: String,
    pub size: u64,
}

/// Blocking calls: compute runs them off the async threads.
pub trait ProgramSource: Send + Sync + 'static {
    /// A processed PROGRAM by item hash (`None`: unknown, not a program, or not processed).
    fn program(&self, item_hash: &str) -> io::Result<Option<StoredProgram>>;

    /// Processed PROGRAM messages after `after` (an opaque position, `None` from the start),
    /// at most `limit`, with the position to continue from. Read once at start.
    fn programs(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> io::Result<(Vec<StoredProgram>, Option<String>)>;

    /// The file a STORE message pins, or with `use_latest` the newest file stored under that
    /// reference by the original's owner.
    fn resolve(&self, reference: &str, use_latest: bool) -> io::Result<Option<ResolvedFile>>;

    /// A file's bytes, by sha256, if the node holds it and it is no larger than `max_bytes`
    /// (`Err(InvalidData)` when larger).
    fn read(&self, sha256: &str, max_bytes: u64) -> io::Result<Option<Vec<u8>>>;
}
