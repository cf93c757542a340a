//! The intake journal: an append-only log of accepted submissions, synced before they are
//! acknowledged, so the index can apply them later in large transactions.
//!
//! Acknowledging a message once its index rows commit ties the size of each index transaction
//! to how many clients wait at once; and on a large index every message costs a page write per
//! random-key index per transaction. The journal makes a message durable with one small
//! sequential append (one `fdatasync` per group of submissions), and the writer thread then
//! applies whatever has gathered, thousands of messages per transaction when busy. The store
//! records the number of the last record it applied in the same transaction
//! (`WriteStore::set_journal_position`); at start the records after it are replayed.
//!
//! Layout: segment files `<dir>/<first record number, 20 digits>.journal`, each a sequence of
//! records `[u32 LE body length][u32 LE CRC-32 of body][body]`, the body being the record
//! number (u64 LE), the reception time (f64 LE), the origin (u8 length, then its bytes) and the
//! envelope as JSON. A record cut short or failing its checksum at the end of the last segment
//! is a write the crash interrupted (it was never acknowledged) and is cut off; a new segment
//! starts at every open and past `SEGMENT_BYTES`. Segments whose records are all applied are
//! deleted.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use raleph_message::Envelope;

/// A new segment starts once the current one passes this size.
const SEGMENT_BYTES: u64 = 64 << 20;
/// Larger bodies are corrupt: the API refuses messages far below this.
const MAX_BODY: usize = 64 << 20;
const HEADER: usize = 8;

/// One journaled submission.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub number: u64,
    pub received: f64,
    pub origin: String,
    pub envelope_json: Vec<u8>,
}

pub(crate) struct Journal {
    dir: PathBuf,
    /// Sync appends to disk before they are acknowledged (durable mode).
    sync: bool,
    file: File,
    file_bytes: u64,
    /// First record number of each segment, oldest first; the last is the open one.
    segments: Vec<u64>,
    next_number: u64,
    /// A write failed: the open segment may end in part of a record. Nothing is appended
    /// until it is cut back to its last whole record or a new segment is started
    /// ([`Journal::repair`]), so no acknowledged record ever follows a torn one.
    damaged: bool,
}

impl Journal {
    /// Opens the journal in `dir`, returning the records after `applied` in order.
    pub fn open(dir: &Path, applied: u64, sync: bool) -> io::Result<(Journal, Vec<Record>)> {
        std::fs::create_dir_all(dir)?;
        let mut segments = list_segments(dir)?;
        let mut unapplied = Vec::new();
        let mut last_number = applied;
        for (index, &first) in segments.iter().enumerate() {
            let path = segment_path(dir, first);
            let is_last = index + 1 == segments.len();
            let (records, valid_len) = read_segment(&path)?;
            let file_len = std::fs::metadata(&path)?.len();
            if valid_len < file_len {
                if is_last {
                    tracing::warn!(
                        path = %path.display(),
                        cut = file_len - valid_len,
                        "intake journal: cutting off a write the last stop interrupted"
                    );
                    let file = OpenOptions::new().write(true).open(&path)?;
                    file.set_len(valid_len)?;
                    file.sync_all()?;
                } else {
                    tracing::error!(
                        path = %path.display(),
                        offset = valid_len,
                        "intake journal: a damaged record; the rest of this segment is skipped"
                    );
                }
            }
            for record in records {
                last_number = last_number.max(record.number);
                if record.number > applied {
                    unapplied.push(record);
                }
            }
        }
        let next_number = last_number + 1;
        let file = create_segment(dir, next_number)?;
        segments.push(next_number);
        let mut journal = Journal {
            dir: dir.to_owned(),
            sync,
            file,
            file_bytes: 0,
            segments,
            next_number,
            damaged: false,
        };
        journal.release(applied)?;
        Ok((journal, unapplied))
    }

    /// Appends one record per entry and, in durable mode, syncs them: on return they survive
    /// a crash. Returns the number given to the first entry (the others follow in order).
    pub fn append<'a>(
        &mut self,
        entries: impl IntoIterator<Item = (&'a Envelope, &'a str, f64)>,
    ) -> io::Result<u64> {
        self.repair()?;
        if self.file_bytes >= SEGMENT_BYTES {
            self.start_segment()?;
        }
        let first = self.next_number;
        let mut buffer = Vec::new();
        for (envelope, origin, received) in entries {
            let start = buffer.len();
            buffer.extend_from_slice(&[0; HEADER]);
            buffer.extend_from_slice(&self.next_number.to_le_bytes());
            buffer.extend_from_slice(&received.to_le_bytes());
            let origin = &origin.as_bytes()[..origin.len().min(255)];
            buffer.push(origin.len() as u8);
            buffer.extend_from_slice(origin);
            serde_json::to_writer(&mut buffer, &envelope.to_json())?;
            let body = &buffer[start + HEADER..];
            let length = (body.len() as u32).to_le_bytes();
            let checksum = crc32fast::hash(body).to_le_bytes();
            buffer[start..start + 4].copy_from_slice(&length);
            buffer[start + 4..start + HEADER].copy_from_slice(&checksum);
            self.next_number += 1;
        }
        if let Err(e) = self.write(&buffer) {
            // None of these records is acknowledged; they may be half written.
            self.next_number = first;
            self.damaged = true;
            // At once if possible; otherwise before the next append.
            if let Err(repair) = self.repair() {
                tracing::warn!("intake journal: cannot repair the segment yet: {repair}");
            }
            return Err(e);
        }
        Ok(first)
    }

    /// After a failed write: cuts the open segment back to its last whole record or, if that
    /// fails, starts a new segment. Fails, leaving the journal damaged, if neither works.
    fn repair(&mut self) -> io::Result<()> {
        if !self.damaged {
            return Ok(());
        }
        let cut = self.file.set_len(self.file_bytes).and_then(|()| {
            if self.sync {
                self.file.sync_data()?;
            }
            Ok(())
        });
        match cut {
            Ok(()) => {}
            Err(e) => {
                tracing::warn!("intake journal: cutting a failed write off failed: {e}");
                self.start_segment()?;
            }
        }
        self.damaged = false;
        Ok(())
    }

    fn start_segment(&mut self) -> io::Result<()> {
        self.file = create_segment(&self.dir, self.next_number)?;
        self.segments.push(self.next_number);
        self.file_bytes = 0;
        Ok(())
    }

    fn write(&mut self, buffer: &[u8]) -> io::Result<()> {
        self.file.write_all(buffer)?;
        if self.sync {
            self.file.sync_data()?;
        }
        self.file_bytes += buffer.len() as u64;
        Ok(())
    }

    /// The number of the last record written (or of the position it was opened at).
    pub fn last_number(&self) -> u64 {
        self.next_number - 1
    }

    /// Deletes the segments whose records are all applied (never the open one).
    pub fn release(&mut self, applied: u64) -> io::Result<()> {
        while self.segments.len() > 1 && self.segments[1] <= applied + 1 {
            let first = self.segments.remove(0);
            match std::fs::remove_file(segment_path(&self.dir, first)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    self.segments.insert(0, first);
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

/// The origin a replayed record names, as the `'static` label the pipeline passes around.
pub(crate) fn static_origin(origin: &str) -> &'static str {
    const KNOWN: &[&str] = &["api", "p2p", "sync", "onchain", "test"];
    KNOWN
        .iter()
        .find(|known| **known == origin)
        .copied()
        .unwrap_or("journal")
}

fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.journal"))
}

fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(first) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".journal"))
            .and_then(|n| n.parse().ok())
        else {
            continue;
        };
        segments.push(first);
    }
    segments.sort_unstable();
    Ok(segments)
}

fn create_segment(dir: &Path, first: u64) -> io::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(segment_path(dir, first))?;
    // The new name must survive a crash too, not only the bytes written under it.
    File::open(dir)?.sync_all()?;
    Ok(file)
}

/// The records of a segment up to the first damaged one, and the length they span.
fn read_segment(path: &Path) -> io::Result<(Vec<Record>, u64)> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let (records, valid_len) = decode_segment(&bytes);
    Ok((records, valid_len as u64))
}

/// The records at the start of a segment's bytes up to the first damaged one, and the length
/// they span. Pure: the fuzz target `journal` feeds it arbitrary bytes.
pub fn decode_segment(bytes: &[u8]) -> (Vec<Record>, usize) {
    let mut records = Vec::new();
    let mut offset = 0;
    while let Some((record, length)) = bytes.get(offset..).and_then(parse_record) {
        records.push(record);
        offset += length;
    }
    (records, offset)
}

/// The record at the start of `bytes` and its encoded length; `None` if it is cut short or
/// damaged.
fn parse_record(bytes: &[u8]) -> Option<(Record, usize)> {
    let length = u32::from_le_bytes(bytes.get(0..4)?.try_into().ok()?) as usize;
    let checksum = u32::from_le_bytes(bytes.get(4..HEADER)?.try_into().ok()?);
    if length > MAX_BODY {
        return None;
    }
    let body = bytes.get(HEADER..HEADER + length)?;
    if crc32fast::hash(body) != checksum {
        return None;
    }
    let number = u64::from_le_bytes(body.get(0..8)?.try_into().ok()?);
    let received = f64::from_le_bytes(body.get(8..16)?.try_into().ok()?);
    let origin_len = *body.get(16)? as usize;
    let origin = std::str::from_utf8(body.get(17..17 + origin_len)?).ok()?;
    let envelope_json = body.get(17 + origin_len..)?.to_vec();
    let record = Record {
        number,
        received,
        origin: origin.to_owned(),
        envelope_json,
    };
    Some((record, HEADER + length))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn envelope(n: u32) -> Envelope {
        let content = format!(r#"{{"type":"t","address":"0xA","time":1.0,"content":{{"n":{n}}}}}"#);
        let hash = raleph_message::sha256_hex(content.as_bytes());
        Envelope::from_json(&json!({
            "sender": "0xA", "chain": "ETH", "signature": "0x00", "type": "POST",
            "item_type": "inline", "item_content": content, "item_hash": hash,
            "time": 1.0, "channel": "TEST",
        }))
        .expect("envelope")
    }

    /// A closed journal holding three records, numbered 1 to 3, in one segment.
    fn three_journaled() -> (tempfile::TempDir, Vec<Envelope>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut journal, _) = Journal::open(dir.path(), 0, true).expect("open");
        let envelopes: Vec<_> = (0..3).map(envelope).collect();
        journal
            .append(envelopes.iter().map(|e| (e, "api", 1.0)))
            .expect("append");
        (dir, envelopes)
    }

    fn numbers(records: &[Record]) -> Vec<u64> {
        records.iter().map(|r| r.number).collect()
    }

    #[test]
    fn records_come_back_after_the_applied_position() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut journal, replay) = Journal::open(dir.path(), 0, true).expect("open");
        assert!(replay.is_empty());
        let envelopes: Vec<_> = (0..5).map(envelope).collect();
        let first = journal
            .append(envelopes.iter().map(|e| (e, "api", 12.5)))
            .expect("append");
        assert_eq!(first, 1);
        drop(journal);
        let (_, replay) = Journal::open(dir.path(), 3, true).expect("reopen");
        assert_eq!(numbers(&replay), [4, 5]);
        let back = Envelope::from_json(&serde_json::from_slice(&replay[0].envelope_json).unwrap())
            .expect("envelope back");
        assert_eq!(back.item_hash, envelopes[3].item_hash);
        assert_eq!(
            (replay[0].origin.as_str(), replay[0].received),
            ("api", 12.5)
        );
    }

    #[test]
    fn a_torn_tail_is_cut_and_numbering_continues() {
        let (dir, envelopes) = three_journaled();
        // A crash in the middle of the third record's write.
        let segment = segment_path(dir.path(), 1);
        let len = std::fs::metadata(&segment).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&segment)
            .unwrap()
            .set_len(len - 10)
            .unwrap();
        let (mut journal, replay) = Journal::open(dir.path(), 0, true).expect("reopen");
        assert_eq!(numbers(&replay), [1, 2]);
        let next = journal
            .append([(&envelopes[2], "api", 1.0)])
            .expect("append");
        assert_eq!(next, 3);
        drop(journal);
        let (_, replay) = Journal::open(dir.path(), 0, true).expect("reopen");
        assert_eq!(numbers(&replay), [1, 2, 3]);
    }

    #[test]
    fn a_damaged_record_is_not_replayed_nor_anything_after_it() {
        let (dir, _) = three_journaled();
        let segment = segment_path(dir.path(), 1);
        let mut bytes = std::fs::read(&segment).unwrap();
        let (_, first_len) = parse_record(&bytes).unwrap();
        bytes[first_len + HEADER + 20] ^= 0xff;
        std::fs::write(&segment, &bytes).unwrap();
        let (_, replay) = Journal::open(dir.path(), 0, true).expect("reopen");
        assert_eq!(numbers(&replay), [1]);
    }

    #[test]
    fn applied_segments_are_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = envelope(0);
        // Each open starts a segment: three segments of one record each.
        for _ in 0..3 {
            let (mut journal, _) = Journal::open(dir.path(), 0, false).expect("open");
            journal.append([(&e, "api", 1.0)]).expect("append");
        }
        assert_eq!(list_segments(dir.path()).unwrap(), [1, 2, 3]);
        let (mut journal, replay) = Journal::open(dir.path(), 1, false).expect("open");
        assert_eq!(numbers(&replay), [2, 3]);
        assert_eq!(list_segments(dir.path()).unwrap(), [2, 3, 4]);
        journal.release(3).expect("release");
        assert_eq!(list_segments(dir.path()).unwrap(), [4]);
    }

    /// A journal whose last append failed halfway: part of a record is on disk after the
    /// three whole ones, and nothing was acknowledged.
    fn torn_after_three() -> (tempfile::TempDir, Journal, Vec<Envelope>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut journal, _) = Journal::open(dir.path(), 0, true).expect("open");
        let envelopes: Vec<_> = (0..5).map(envelope).collect();
        journal
            .append(envelopes[..3].iter().map(|e| (e, "api", 1.0)))
            .expect("append");
        journal
            .file
            .write_all(&[0x40, 0, 0, 0, 1, 2])
            .expect("torn");
        journal.damaged = true;
        (dir, journal, envelopes)
    }

    #[test]
    fn no_record_follows_a_torn_one_in_its_segment() {
        let (dir, mut journal, envelopes) = torn_after_three();
        let next = journal
            .append([(&envelopes[3], "api", 1.0)])
            .expect("append");
        assert_eq!(next, 4, "the failed records' numbers are given again");
        drop(journal);
        let (_, replay) = Journal::open(dir.path(), 0, true).expect("reopen");
        assert_eq!(numbers(&replay), [1, 2, 3, 4]);
    }

    #[test]
    fn a_segment_that_cannot_be_cut_is_left_for_a_new_one() {
        let (dir, mut journal, envelopes) = torn_after_three();
        // A handle that can neither write nor cut the segment: the failed write's tail
        // stays, and the journal goes on in a new segment.
        journal.file = File::open(segment_path(dir.path(), 1)).expect("read-only handle");
        journal.damaged = false;
        assert!(journal.append([(&envelopes[3], "api", 1.0)]).is_err());
        let next = journal
            .append([(&envelopes[4], "api", 1.0)])
            .expect("append");
        assert_eq!(next, 4);
        assert_eq!(journal.segments, [1, 4]);
        drop(journal);
        let (_, replay) = Journal::open(dir.path(), 0, true).expect("reopen");
        assert_eq!(numbers(&replay), [1, 2, 3, 4]);
        let last: serde_json::Value =
            serde_json::from_slice(&replay[3].envelope_json).expect("json");
        assert_eq!(last["item_hash"], json!(envelopes[4].item_hash.as_str()));
    }
}
