//! Between the file store and the pipeline: a file the store wrote, handed to the pipeline's
//! writer thread to enter the store, and the record the index keeps of it. The binary uses the
//! same two for the files it fetches from peers and the files its index asks about.

use raleph_db::FileRecord;
use raleph_pipeline::PendingUpload;
use raleph_storage::{FileInfo, PendingFile};

/// The record the index keeps for a file the store holds.
pub fn file_record(info: &FileInfo) -> FileRecord {
    FileRecord {
        sha256: info.sha256.clone(),
        size: info.size,
        cid_v0: info.cid_v0.clone(),
        cid_v1: info.cid_v1.clone(),
        created: raleph_pipeline::now(),
    }
}

/// An upload the writer thread moves into the file store.
/// A checked file, handed to the pipeline to enter the file store.
pub struct Upload(pub PendingFile);

impl PendingUpload for Upload {
    fn commit(self: Box<Self>) -> std::io::Result<FileRecord> {
        let info = self.0.commit().map_err(std::io::Error::other)?;
        Ok(file_record(&info))
    }
}
