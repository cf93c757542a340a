//! Streaming a file in: every identifier computed in one pass over the bytes.

use std::io::Write;

use aleph_cid::verify::Hasher as CidHasher;
use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;

use crate::{FileInfo, FileStore, StorageError, sync_dir};

/// A file being written. Dropping it before [`FileWriter::finish`] leaves nothing behind.
pub struct FileWriter {
    store: FileStore,
    tmp: NamedTempFile,
    sha256: Sha256,
    cid_v0: CidHasher,
    cid_v1: Option<CidHasher>,
    size: u64,
    limit: u64,
}

impl FileWriter {
    pub(crate) fn new(
        store: FileStore,
        limit: u64,
        with_cid_v1: bool,
    ) -> Result<Self, StorageError> {
        let tmp = NamedTempFile::new_in(store.root.join("tmp"))?;
        Ok(FileWriter {
            store,
            tmp,
            sha256: Sha256::new(),
            cid_v0: CidHasher::for_ipfs(),
            cid_v1: with_cid_v1.then(CidHasher::for_ipfs_v1_raw_leaves),
            size: 0,
            limit,
        })
    }

    /// Appends bytes. Fails, keeping nothing, once the file passes its limit.
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), StorageError> {
        self.size += chunk.len() as u64;
        if self.size > self.limit {
            return Err(StorageError::TooLarge { limit: self.limit });
        }
        self.tmp.write_all(chunk)?;
        self.sha256.update(chunk);
        self.cid_v0.update(chunk);
        if let Some(v1) = &mut self.cid_v1 {
            v1.update(chunk);
        }
        Ok(())
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Syncs the bytes and computes the identifiers. The file is not in the store until
    /// [`PendingFile::commit`], so checks can still refuse it.
    pub fn finish(self) -> Result<PendingFile, StorageError> {
        self.tmp.as_file().sync_all()?;
        let info = FileInfo {
            sha256: hex::encode(self.sha256.finalize()),
            size: self.size,
            cid_v0: self.cid_v0.finalize().to_string(),
            cid_v1: self.cid_v1.map(|h| h.finalize().to_string()),
        };
        Ok(PendingFile {
            store: self.store,
            tmp: self.tmp,
            info,
        })
    }
}

/// A complete, synced file waiting to enter the store. Dropping it discards it.
pub struct PendingFile {
    store: FileStore,
    tmp: NamedTempFile,
    info: FileInfo,
}

impl PendingFile {
    pub fn info(&self) -> &FileInfo {
        &self.info
    }

    /// Moves the file into the store (a no-op for its bytes if the store already holds them)
    /// and records its identifiers.
    pub fn commit(self) -> Result<FileInfo, StorageError> {
        let PendingFile { store, tmp, info } = self;
        let data = store.data_path(&info.sha256);
        if !data.is_file() {
            tmp.persist(&data).map_err(|e| e.error)?;
        }
        // Keep a CIDv1 learned earlier when this upload did not compute one.
        let known_v1 = store.read_meta(&info.sha256)?.and_then(|m| m.cid_v1);
        let info = FileInfo {
            cid_v1: info.cid_v1.or(known_v1),
            ..info
        };
        let meta = match &info.cid_v1 {
            Some(v1) => format!("{} {} {v1}\n", info.size, info.cid_v0),
            None => format!("{} {}\n", info.size, info.cid_v0),
        };
        store.write_atomic(&store.root.join("meta").join(&info.sha256), meta.as_bytes())?;
        for cid in [Some(&info.cid_v0), info.cid_v1.as_ref()]
            .into_iter()
            .flatten()
        {
            store.write_atomic(&store.root.join("cid").join(cid), info.sha256.as_bytes())?;
        }
        for dir in ["sha256", "meta", "cid"] {
            sync_dir(&store.root.join(dir))?;
        }
        Ok(info)
    }
}
