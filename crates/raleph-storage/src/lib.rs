//! The content-addressed file store: each file kept once, under its SHA-256 hex name.
//!
//! Writes go to a temporary file in the same directory, are synced, then renamed into place,
//! so a crash never leaves a partial file under a valid hash.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use raleph_message::{ItemHash, ItemHashKind, sha256_hex};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    #[error("file store I/O: {0}")]
    Io(#[from] io::Error),
    #[error("{0:?} is not a file hash")]
    BadHash(String),
}

/// Files on local disk, named by their hash.
#[derive(Debug, Clone)]
pub struct FileStore {
    root: PathBuf,
}

impl FileStore {
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StorageError> {
        let root = root.into();
        std::fs::create_dir_all(root.join("sha256"))?;
        std::fs::create_dir_all(root.join("tmp"))?;
        Ok(FileStore { root })
    }

    /// Path of a file, only for hashes of a known shape (so no name can escape the store).
    fn path_of(&self, hash: &str) -> Result<PathBuf, StorageError> {
        match ItemHash::parse(hash).map(|h| h.kind()) {
            Ok(ItemHashKind::Sha256) => {
                Ok(self.root.join("sha256").join(hash.to_ascii_lowercase()))
            }
            _ => Err(StorageError::BadHash(hash.to_owned())),
        }
    }

    /// Stores bytes and returns their sha256 hex.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<String, StorageError> {
        let hash = sha256_hex(bytes);
        let target = self.path_of(&hash)?;
        if target.exists() {
            return Ok(hash);
        }
        let mut tmp = tempfile::NamedTempFile::new_in(self.root.join("tmp"))?;
        tmp.write_all(bytes)?;
        tmp.as_file().sync_all()?;
        tmp.persist(&target).map_err(|e| e.error)?;
        sync_dir(target.parent())?;
        Ok(hash)
    }

    /// The bytes of a file, if the store holds it.
    pub fn get(&self, hash: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let Ok(path) = self.path_of(hash) else {
            return Ok(None);
        };
        match std::fs::read(path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub fn contains(&self, hash: &str) -> bool {
        self.path_of(hash).map(|p| p.is_file()).unwrap_or(false)
    }
}

fn sync_dir(dir: Option<&Path>) -> io::Result<()> {
    match dir {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_and_get() -> Result<(), StorageError> {
        let dir = tempfile::tempdir()?;
        let store = FileStore::open(dir.path())?;
        let hash = store.put_bytes(br#"{"hello":"world"}"#)?;
        assert_eq!(
            hash,
            "93a23971a914e5eacbf0a8d25154cda309c3c1c72fbb9914d47c60f3cb681588"
        );
        assert_eq!(
            store.get(&hash)?.as_deref(),
            Some(&br#"{"hello":"world"}"#[..])
        );
        assert!(store.contains(&hash));
        assert_eq!(store.get("../../etc/passwd")?, None);
        assert_eq!(store.get(&"0".repeat(64))?, None);
        Ok(())
    }
}
