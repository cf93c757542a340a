//! The record of `on.message` deliveries: each is written down when a message matches a
//! program and again when it is delivered or given up, so deliveries still due when the node
//! stops are made after it starts again. One JSON object per line, appended; rewritten with
//! only what is still due each time the node starts.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A delivery still to make.
#[derive(Debug, Clone, PartialEq)]
pub struct Due {
    pub id: u64,
    pub program: String,
    pub body: Bytes,
}

/// A delivery written down (the message kept as its JSON text).
#[derive(Serialize, Deserialize)]
struct Queued {
    id: u64,
    program: String,
    message: Box<serde_json::value::RawValue>,
}

/// A delivery over.
#[derive(Deserialize)]
struct Ended {
    ended: u64,
}

pub struct TriggerJournal {
    path: PathBuf,
    file: Mutex<(File, u64)>,
}

impl TriggerJournal {
    /// Opens the journal, returning the deliveries still due (at most `max_due`, the oldest
    /// first; the others are dropped and counted in the returned number).
    pub fn open(path: &Path, max_due: usize) -> std::io::Result<(TriggerJournal, Vec<Due>, usize)> {
        let mut due: Vec<Due> = Vec::new();
        let mut next_id = 0;
        if let Ok(file) = File::open(path) {
            for line in BufReader::new(file).lines() {
                // A torn last line (a crash mid-append) ends the useful part.
                let Ok(line) = line else { break };
                if let Ok(queued) = serde_json::from_str::<Queued>(&line) {
                    next_id = next_id.max(queued.id + 1);
                    due.push(Due {
                        id: queued.id,
                        program: queued.program,
                        body: Bytes::from(queued.message.get().to_owned()),
                    });
                } else if let Ok(Ended { ended }) = serde_json::from_str::<Ended>(&line) {
                    due.retain(|d| d.id != ended);
                }
            }
        }
        let dropped = due.len().saturating_sub(max_due);
        due.truncate(max_due);
        // Rewrite with what is due only, so the file never grows past one run's deliveries.
        let partial = path.with_extension("partial");
        {
            let mut out = File::create(&partial)?;
            for d in &due {
                writeln!(out, "{}", queued_line(d.id, &d.program, &d.body)?)?;
            }
            out.sync_all()?;
        }
        std::fs::rename(&partial, path)?;
        let file = OpenOptions::new().append(true).open(path)?;
        Ok((
            TriggerJournal {
                path: path.to_owned(),
                file: Mutex::new((file, next_id)),
            },
            due,
            dropped,
        ))
    }

    /// Writes down a delivery to make; returns its id.
    pub fn queued(&self, program: &str, body: &Bytes) -> std::io::Result<u64> {
        let mut guard = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        let id = guard.1;
        guard.1 += 1;
        let line = queued_line(id, program, body)?;
        writeln!(guard.0, "{line}")?;
        Ok(id)
    }

    /// Writes down that a delivery is over (made, or given up).
    pub fn ended(&self, id: u64, delivered: bool) {
        let mut guard = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        let line = serde_json::json!({"ended": id, "delivered": delivered});
        if let Err(e) = writeln!(guard.0, "{line}") {
            tracing::warn!(path = %self.path.display(), "trigger journal: {e}");
        }
    }
}

fn queued_line(id: u64, program: &str, body: &Bytes) -> std::io::Result<String> {
    let message: Box<serde_json::value::RawValue> = serde_json::from_slice(body)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    serde_json::to_string(&Queued {
        id,
        program: program.to_owned(),
        message,
    })
    .map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_not_ended_are_due_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("triggers.jsonl");
        let (journal, due, _) = TriggerJournal::open(&path, 100).unwrap();
        assert!(due.is_empty());
        let a = journal
            .queued("p1", &Bytes::from_static(b"{\"n\":1}"))
            .unwrap();
        let b = journal
            .queued("p2", &Bytes::from_static(b"{\"n\":2}"))
            .unwrap();
        let c = journal
            .queued("p1", &Bytes::from_static(b"{\"n\":3}"))
            .unwrap();
        journal.ended(a, true);
        journal.ended(c, false);
        drop(journal);
        // A torn line, as a crash mid-append leaves.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"id\": 9, \"prog").unwrap();
        drop(file);
        let (journal, due, dropped) = TriggerJournal::open(&path, 100).unwrap();
        assert_eq!(dropped, 0);
        assert_eq!(
            due,
            vec![Due {
                id: b,
                program: "p2".into(),
                body: Bytes::from_static(b"{\"n\":2}")
            }]
        );
        // Ids go on after the highest seen.
        assert!(journal.queued("p3", &Bytes::from_static(b"{}")).unwrap() > c);
        drop(journal);
        let (_, due, _) = TriggerJournal::open(&path, 1).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].id, b);
    }
}
