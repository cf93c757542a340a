//! Program snapshots (PROTOCOL.md §10, "warm snapshot"): a program's own VM, configured and
//! having answered once, saved to `<work_dir>/programs/<key>.state`. The key covers everything
//! that shapes the guest (the program, its settings and the template it came from), so a
//! changed program never restores an old snapshot. At most [`MAX_PROGRAM_SNAPSHOTS`] files are
//! kept; the least recently used (file modification time, refreshed on every restore) go first.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::VmProgram;
use super::cmdline::migrate_to;
use super::qmp::Qmp;

/// Program snapshots kept on disk (each holds the guest's RAM: about 120 MB for 256 MiB).
pub const MAX_PROGRAM_SNAPSHOTS: usize = 16;
/// QMP stop → migration to the file → cont.
const SAVE_TIMEOUT: Duration = Duration::from_secs(60);

/// The key of a program's snapshot: sha256 over the program and what it runs on.
pub fn program_key(program: &VmProgram, template_key: &str) -> String {
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    };
    field(program.item_hash.as_bytes());
    field(&Sha256::digest(&program.code));
    field(program.encoding.as_bytes());
    field(program.entrypoint.as_bytes());
    field(program.interface.as_deref().unwrap_or("").as_bytes());
    field(&(program.variables.len() as u64).to_be_bytes());
    for (name, value) in &program.variables {
        field(name.as_bytes());
        field(value.as_bytes());
    }
    field(&program.memory_mib.to_be_bytes());
    field(&program.vcpus.to_be_bytes());
    field(&[u8::from(program.internet)]);
    field(template_key.as_bytes());
    hex::encode(h.finalize())
}

pub struct ProgramSnapshots {
    dir: PathBuf,
    max: usize,
    /// Keys being saved now (one save per key at a time).
    saving: Mutex<HashSet<String>>,
}

impl ProgramSnapshots {
    pub fn new(dir: PathBuf, max: usize) -> ProgramSnapshots {
        // Temporary files of saves a previous process did not finish.
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().contains(".tmp-") {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        ProgramSnapshots {
            dir,
            max,
            saving: Mutex::new(HashSet::new()),
        }
    }

    pub fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.state"))
    }

    /// The snapshot of `key` if there is one, marked as just used.
    pub fn lookup(&self, key: &str) -> Option<PathBuf> {
        let path = self.path(key);
        let file = std::fs::File::options().append(true).open(&path).ok()?;
        let _ = file.set_modified(SystemTime::now());
        Some(path)
    }

    pub fn discard(&self, key: &str) {
        let _ = std::fs::remove_file(self.path(key));
    }

    /// Saves the running VM whose QMP socket is `qmp_socket` as the snapshot of `key`, unless
    /// one exists or is being saved. The VM is paused meanwhile and always resumed. Returns
    /// whether the VM was paused (whether or not the snapshot was saved).
    pub async fn save(self: Arc<Self>, key: String, qmp_socket: PathBuf) -> bool {
        if self.path(&key).exists() {
            return false;
        }
        if !self
            .saving
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.clone())
        {
            return false;
        }
        static SAVED: AtomicU64 = AtomicU64::new(0);
        let path = self.path(&key);
        let tmp = path.with_extension(format!(
            "tmp-{}-{}",
            std::process::id(),
            SAVED.fetch_add(1, Ordering::Relaxed)
        ));
        let start = Instant::now();
        let (was_paused, result) = save_running(&qmp_socket, &tmp).await;
        let result = result.and_then(|paused| {
            std::fs::rename(&tmp, &path)
                .map(|()| paused)
                .map_err(|e| format!("rename: {e}"))
        });
        match result {
            Ok(paused) => {
                let size_bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                tracing::info!(
                    path = %path.display(), size_bytes, paused = ?paused, took = ?start.elapsed(),
                    "program snapshot saved"
                );
                self.prune();
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                tracing::debug!(error = %e, "program snapshot not saved");
            }
        }
        self.saving
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key);
        was_paused
    }

    /// Keeps the `max` most recently used snapshots.
    fn prune(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut files: Vec<(SystemTime, PathBuf)> = entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "state"))
            .filter_map(|e| {
                let modified = e.metadata().ok()?.modified().ok()?;
                Some((modified, e.path()))
            })
            .collect();
        if files.len() <= self.max {
            return;
        }
        files.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
        for (_, path) in files.split_off(self.max) {
            tracing::debug!(path = %path.display(), "program snapshot evicted");
            let _ = std::fs::remove_file(path);
        }
    }
}

/// QMP stop → migrate to `file` → cont (also after a failure). Returns whether the VM was
/// stopped, and how long it was paused.
async fn save_running(qmp_socket: &Path, file: &Path) -> (bool, Result<Duration, String>) {
    let deadline = Instant::now() + SAVE_TIMEOUT;
    let mut qmp = match Qmp::connect(qmp_socket, deadline).await {
        Ok(qmp) => qmp,
        Err(e) => return (false, Err(e)),
    };
    let stopped = Instant::now();
    if let Err(e) = qmp.execute("stop", None, deadline).await {
        return (false, Err(e));
    }
    let saved = async {
        qmp.execute(
            "migrate",
            Some(json!({ "uri": migrate_to(file) })),
            deadline,
        )
        .await?;
        loop {
            let info = qmp.execute("query-migrate", None, deadline).await?;
            match info.get("status").and_then(|s| s.as_str()).unwrap_or("") {
                "completed" => return Ok(()),
                "failed" | "cancelled" => return Err(format!("migration {info}")),
                _ if Instant::now() >= deadline => {
                    return Err(format!("migration too slow: {info}"));
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
    .await;
    let resume_by = Instant::now() + Duration::from_secs(5);
    if saved.is_err() {
        let _ = qmp.execute("migrate_cancel", None, resume_by).await;
    }
    let resumed = qmp.execute("cont", None, resume_by).await;
    let paused = stopped.elapsed();
    let result = saved.and_then(|()| {
        resumed
            .map(|_| paused)
            .map_err(|e| format!("cont after the snapshot: {e}"))
    });
    (true, result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program() -> VmProgram {
        VmProgram {
            item_hash: "abc".into(),
            code: b"code".to_vec(),
            encoding: "zip".into(),
            entrypoint: "main:app".into(),
            interface: None,
            variables: vec![("A".into(), "1".into())],
            memory_mib: 256,
            vcpus: 1,
            internet: false,
            api_addr: None,
            log: crate::logs::ProgramLog::new(1024),
        }
    }

    #[test]
    fn every_change_makes_a_new_key() {
        let base = program_key(&program(), "t");
        assert_eq!(base, program_key(&program(), "t"));
        assert_eq!(base.len(), 64);
        let changes: [fn(&mut VmProgram); 10] = [
            |p| p.item_hash.push('d'),
            |p| p.code.push(b'!'),
            |p| p.encoding = "squashfs".into(),
            |p| p.entrypoint = "main:other".into(),
            |p| p.interface = Some("asgi".into()),
            |p| p.variables[0].1 = "2".into(),
            |p| p.variables.push(("B".into(), String::new())),
            |p| p.memory_mib = 512,
            |p| p.vcpus = 2,
            |p| p.internet = true,
        ];
        let mut keys = HashSet::from([base.clone()]);
        for change in changes {
            let mut p = program();
            change(&mut p);
            assert!(keys.insert(program_key(&p, "t")));
        }
        assert!(keys.insert(program_key(&program(), "u")));
    }

    #[test]
    fn keeps_the_most_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("k.tmp-1-2"), b"x").unwrap();
        let store = ProgramSnapshots::new(dir.path().to_path_buf(), 2);
        assert!(!dir.path().join("k.tmp-1-2").exists());
        let old = SystemTime::now() - Duration::from_secs(100);
        for (i, key) in ["a", "b", "c"].iter().enumerate() {
            let file = std::fs::File::create(store.path(key)).unwrap();
            file.set_modified(old + Duration::from_secs(i as u64))
                .unwrap();
        }
        // "a" is the oldest, but used now.
        assert!(store.lookup("a").is_some());
        assert!(store.lookup("none").is_none());
        store.prune();
        assert!(store.path("a").exists());
        assert!(!store.path("b").exists());
        assert!(store.path("c").exists());
        store.discard("a");
        assert!(store.lookup("a").is_none());
    }
}
