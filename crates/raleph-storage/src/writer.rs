//! Streaming a file in: every identifier computed in one pass over the bytes.

use std::io::Write;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

use aleph_cid::verify::Hasher as CidHasher;
use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;

use crate::{FileInfo, FileStore, StorageError, sync_dir};

/// Past this size, the CIDs are computed on a second thread while this one writes and takes
/// the sha256: two hash passes on two cores instead of one.
const PARALLEL_FROM: u64 = 4 * 1024 * 1024;
/// Chunks waiting for the CID thread.
const CID_QUEUE: usize = 32;

/// The CIDv0 and optional CIDv1 hashers.
type CidHashers = (CidHasher, Option<CidHasher>);

/// Where the CIDs are being computed.
enum CidWork {
    Inline(Box<CidHashers>),
    Threaded {
        chunks: SyncSender<Vec<u8>>,
        done: JoinHandle<CidHashers>,
    },
}

impl CidWork {
    fn update(&mut self, chunk: &[u8], size: u64) {
        if let CidWork::Inline(hashers) = self {
            if size <= PARALLEL_FROM {
                hashers.0.update(chunk);
                if let Some(v1) = &mut hashers.1 {
                    v1.update(chunk);
                }
                return;
            }
            let (chunks, incoming) = sync_channel::<Vec<u8>>(CID_QUEUE);
            let mut hashers = std::mem::replace(hashers, Box::new((CidHasher::for_ipfs(), None)));
            let done = std::thread::spawn(move || {
                for chunk in incoming {
                    hashers.0.update(&chunk);
                    if let Some(v1) = &mut hashers.1 {
                        v1.update(&chunk);
                    }
                }
                *hashers
            });
            *self = CidWork::Threaded { chunks, done };
        }
        if let CidWork::Threaded { chunks, .. } = self {
            // The thread only stops when the sender is dropped, so this cannot fail while
            // `self` lives; a panic in it is reported by `finish`.
            let _ = chunks.send(chunk.to_vec());
        }
    }

    fn finish(self) -> Result<CidHashers, StorageError> {
        match self {
            CidWork::Inline(hashers) => Ok(*hashers),
            CidWork::Threaded { chunks, done } => {
                drop(chunks);
                done.join()
                    .map_err(|_| StorageError::Io(std::io::Error::other("the CID thread failed")))
            }
        }
    }
}

/// A file being written. Dropping it before [`FileWriter::finish`] leaves nothing behind.
pub struct FileWriter {
    store: FileStore,
    tmp: NamedTempFile,
    sha256: Sha256,
    cids: CidWork,
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
            cids: CidWork::Inline(Box::new((
                CidHasher::for_ipfs(),
                with_cid_v1.then(CidHasher::for_ipfs_v1_raw_leaves),
            ))),
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
        self.cids.update(chunk, self.size);
        self.tmp.write_all(chunk)?;
        self.sha256.update(chunk);
        Ok(())
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Syncs the bytes and computes the identifiers. The file is not in the store until
    /// [`PendingFile::commit`], so checks can still refuse it.
    pub fn finish(self) -> Result<PendingFile, StorageError> {
        self.tmp.as_file().sync_all()?;
        let (cid_v0, cid_v1) = self.cids.finish()?;
        let info = FileInfo {
            sha256: hex::encode(self.sha256.finalize()),
            size: self.size,
            cid_v0: cid_v0.finalize().to_string(),
            cid_v1: cid_v1.map(|h| h.finalize().to_string()),
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
