//! The cursor file: where each raleph peer's log was read up to, kept in
//! `<data dir>/sync-cursors.json` and rewritten whole on every move.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use raleph_p2p::PeerId;
use serde::{Deserialize, Serialize};

/// Where a peer's log was read up to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct Cursor {
    /// The epoch of the peer's log the number belongs to.
    pub(super) epoch: String,
    /// The last sequence number read.
    pub(super) after: u64,
}

/// Cursors per peer id, persisted as JSON.
pub(super) struct Cursors {
    path: PathBuf,
    cursors: Mutex<BTreeMap<String, Cursor>>,
}

impl Cursors {
    pub(super) fn load(path: PathBuf) -> Cursors {
        let cursors = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Cursors {
            path,
            cursors: Mutex::new(cursors),
        }
    }

    pub(super) fn get(&self, peer: &PeerId) -> Cursor {
        self.lock()
            .get(&peer.to_string())
            .cloned()
            .unwrap_or_default()
    }

    pub(super) fn set(&self, peer: &PeerId, cursor: Cursor) -> std::io::Result<()> {
        let json = {
            let mut cursors = self.lock();
            cursors.insert(peer.to_string(), cursor);
            serde_json::to_vec_pretty(&*cursors).map_err(std::io::Error::other)?
        };
        // Written whole then renamed, so a crash leaves the old file or the new one.
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, &self.path)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Cursor>> {
        self.cursors.lock().unwrap_or_else(|p| p.into_inner())
    }
}
