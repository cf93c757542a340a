//! The content-addressed file store: each file kept once, under its SHA-256, with its IPFS
//! CIDs (computed exactly as kubo does) indexed beside it.
//!
//! Layout under the root:
//! - `sha256/<hex>`: the bytes;
//! - `meta/<hex>`: `size cid_v0 [cid_v1]`, one line;
//! - `cid/<cid>`: the sha256 hex the CID designates;
//! - `tmp/`: uploads in progress.
//!
//! Bytes are streamed into a temporary file while every identifier is computed in the same
//! pass; the file is synced, then renamed into place, so a crash never leaves a partial file
//! under a valid name. Names only ever come from validated hashes, never from clients.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod writer;

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use raleph_message::{ItemHash, ItemHashKind};

pub use writer::{FileWriter, PendingFile};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    #[error("file store I/O: {0}")]
    Io(#[from] io::Error),
    #[error("{0:?} is not a file hash")]
    BadHash(String),
    #[error("the file is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
}

/// What the store knows of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    pub sha256: String,
    pub size: u64,
    /// kubo's default: CIDv0, UnixFS, 256 KiB chunks, balanced DAG.
    pub cid_v0: String,
    /// CIDv1 with raw leaves, when it was asked for.
    pub cid_v1: Option<String>,
}

impl FileInfo {
    /// Every identifier of the file.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        [
            Some(self.sha256.as_str()),
            Some(self.cid_v0.as_str()),
            self.cid_v1.as_deref(),
        ]
        .into_iter()
        .flatten()
    }
}

/// Files on local disk, named by their hash.
#[derive(Debug, Clone)]
pub struct FileStore {
    root: PathBuf,
}

impl FileStore {
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StorageError> {
        let root = root.into();
        for dir in ["sha256", "meta", "cid", "tmp"] {
            fs::create_dir_all(root.join(dir))?;
        }
        Ok(FileStore { root })
    }

    /// Deletes what `tmp/` holds: uploads a stop interrupted, which nothing will finish. Call
    /// it at start, before any upload begins (it would delete uploads in progress). Returns
    /// how many files it deleted.
    pub fn sweep_temporary(&self) -> Result<usize, StorageError> {
        let mut deleted = 0;
        for entry in fs::read_dir(self.root.join("tmp"))? {
            let path = entry?.path();
            match fs::remove_file(&path) {
                Ok(()) => deleted += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(deleted)
    }

    /// Starts streaming a file in. `limit` bounds its size; `with_cid_v1` also computes the
    /// CIDv1 (raw leaves), at the cost of one more hash pass.
    pub fn writer(&self, limit: u64, with_cid_v1: bool) -> Result<FileWriter, StorageError> {
        FileWriter::new(self.clone(), limit, with_cid_v1)
    }

    /// Stores bytes and returns what they are known by.
    pub fn put_bytes(&self, bytes: &[u8], with_cid_v1: bool) -> Result<FileInfo, StorageError> {
        let mut writer = self.writer(u64::MAX, with_cid_v1)?;
        writer.write(bytes)?;
        writer.finish()?.commit()
    }

    /// The sha256 of a file, from any of its identifiers, if the store holds it.
    pub fn resolve(&self, id: &str) -> Result<Option<String>, StorageError> {
        let sha256 = match file_id_kind(id) {
            Some(ItemHashKind::Sha256) => id.to_owned(),
            Some(ItemHashKind::Cid) => match fs::read_to_string(self.root.join("cid").join(id)) {
                Ok(text) => text.trim().to_owned(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e.into()),
            },
            None => return Err(StorageError::BadHash(id.to_owned())),
        };
        if ItemHash::parse(&sha256).map(|h| h.kind()) != Ok(ItemHashKind::Sha256) {
            return Ok(None);
        }
        Ok(self.data_path(&sha256).is_file().then_some(sha256))
    }

    pub fn contains(&self, id: &str) -> bool {
        matches!(self.resolve(id), Ok(Some(_)))
    }

    pub fn info(&self, id: &str) -> Result<Option<FileInfo>, StorageError> {
        let Some(sha256) = self.resolve(id)? else {
            return Ok(None);
        };
        self.read_meta(&sha256)
    }

    /// The bytes of a file, if the store holds it. Reads it whole: for small files only.
    pub fn get(&self, id: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let Ok(Some(sha256)) = self.resolve(id) else {
            return Ok(None);
        };
        match fs::read(self.data_path(&sha256)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The path of a file's bytes, for streaming it out.
    pub fn path_of(&self, id: &str) -> Result<Option<(PathBuf, FileInfo)>, StorageError> {
        let Some(sha256) = self.resolve(id)? else {
            return Ok(None);
        };
        let Some(info) = self.read_meta(&sha256)? else {
            return Ok(None);
        };
        Ok(Some((self.data_path(&sha256), info)))
    }

    /// Removes a file and its CID entries.
    pub fn delete(&self, sha256: &str) -> Result<(), StorageError> {
        if ItemHash::parse(sha256).map(|h| h.kind()) != Ok(ItemHashKind::Sha256) {
            return Err(StorageError::BadHash(sha256.to_owned()));
        }
        if let Some(info) = self.read_meta(sha256)? {
            for cid in [Some(info.cid_v0), info.cid_v1].into_iter().flatten() {
                remove_if_present(&self.root.join("cid").join(cid))?;
            }
        }
        remove_if_present(&self.data_path(sha256))?;
        remove_if_present(&self.root.join("meta").join(sha256))?;
        Ok(())
    }

    /// The sha256 of every file held, for sweeping files nothing recorded.
    pub fn list(&self) -> Result<Vec<String>, StorageError> {
        let mut hashes = Vec::new();
        for entry in fs::read_dir(self.root.join("sha256"))? {
            if let Some(name) = entry?.file_name().to_str() {
                hashes.push(name.to_owned());
            }
        }
        Ok(hashes)
    }

    /// When a file was stored (its modification time), for the sweep's grace period.
    pub fn stored_at(&self, sha256: &str) -> Result<Option<std::time::SystemTime>, StorageError> {
        match fs::metadata(self.data_path(sha256)) {
            Ok(meta) => Ok(Some(meta.modified()?)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn data_path(&self, sha256: &str) -> PathBuf {
        self.root.join("sha256").join(sha256)
    }

    fn read_meta(&self, sha256: &str) -> Result<Option<FileInfo>, StorageError> {
        let text = match fs::read_to_string(self.root.join("meta").join(sha256)) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut parts = text.split_whitespace();
        let (Some(size), Some(cid_v0)) = (parts.next().and_then(|s| s.parse().ok()), parts.next())
        else {
            return Ok(None);
        };
        Ok(Some(FileInfo {
            sha256: sha256.to_owned(),
            size,
            cid_v0: cid_v0.to_owned(),
            cid_v1: parts.next().map(str::to_owned),
        }))
    }

    /// Writes a small file atomically: temporary file, sync, rename.
    fn write_atomic(&self, path: &Path, contents: &[u8]) -> Result<(), StorageError> {
        let mut tmp = tempfile::NamedTempFile::new_in(self.root.join("tmp"))?;
        tmp.write_all(contents)?;
        tmp.as_file().sync_all()?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }
}

/// What kind of file identifier `id` is: a lowercase sha256 hex, a message-style CID, or a
/// CIDv1 of a single raw block (`bafk…`, which kubo gives one-chunk files with raw leaves and
/// which message item hashes never are). `None` for anything else, so no other name can reach
/// the file system.
pub fn file_id_kind(id: &str) -> Option<ItemHashKind> {
    if let Ok(hash) = ItemHash::parse(id) {
        return Some(hash.kind());
    }
    let raw_block = id.starts_with("bafk")
        && id.len() == 59
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b));
    raw_block.then_some(ItemHashKind::Cid)
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests;

/// Limits and timings of file storage. Every field is a documented config value.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// How long a file with no pin is kept before the garbage collector deletes it, seconds.
    pub grace_period_secs: f64,
    /// How often the garbage collector runs, seconds.
    pub gc_interval_secs: f64,
    /// Largest upload without a signed STORE message, bytes.
    pub max_unauthenticated_upload_bytes: u64,
    /// Largest upload to `/api/v0/storage/add_file` with a signed STORE message, bytes.
    pub max_upload_bytes: u64,
    /// Largest upload to `/api/v0/ipfs/add_file` with a signed STORE message, bytes.
    pub max_ipfs_upload_bytes: u64,
    /// Largest file served base64-encoded by `/api/v0/storage/{hash}`, bytes.
    pub max_base64_file_bytes: u64,
}

const MIB: u64 = 1024 * 1024;

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            grace_period_secs: 24.0 * 3600.0,
            gc_interval_secs: 3600.0,
            max_unauthenticated_upload_bytes: 25 * MIB,
            max_upload_bytes: 100 * MIB,
            max_ipfs_upload_bytes: 1024 * MIB,
            max_base64_file_bytes: 100 * MIB,
        }
    }
}
