//! The intake journal reader: the bytes of a segment file, decoded as `Journal::open` decodes
//! them, then each record's envelope parsed as the writer replays it. Decoding is exact: the
//! records found, encoded again by the documented layout, are the bytes they were read from.

#![no_main]

use libfuzzer_sys::fuzz_target;
use raleph_message::Envelope;
use raleph_pipeline::fuzzing::{JournalRecord, decode_journal_segment};

/// `[u32 LE body length][u32 LE CRC-32 of body][body]`, the body being the number (u64 LE),
/// the reception time (f64 LE), the origin (u8 length, its bytes) and the envelope JSON.
fn encode(record: &JournalRecord, out: &mut Vec<u8>) {
    let mut body = Vec::new();
    body.extend_from_slice(&record.number.to_le_bytes());
    body.extend_from_slice(&record.received.to_le_bytes());
    let origin_len = u8::try_from(record.origin.len()).expect("an origin of at most 255 bytes");
    body.push(origin_len);
    body.extend_from_slice(record.origin.as_bytes());
    body.extend_from_slice(&record.envelope_json);
    let length = u32::try_from(body.len()).expect("a body under 4 GiB");
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(&crc32_of(&body).to_le_bytes());
    out.extend_from_slice(&body);
}

/// Plain bitwise CRC-32 (IEEE), independent of the reader's implementation.
fn crc32_of(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fuzz_target!(|data: &[u8]| {
    let (records, valid_len) = decode_journal_segment(data);
    assert!(valid_len <= data.len());
    let mut encoded = Vec::with_capacity(valid_len);
    for record in &records {
        encode(record, &mut encoded);
    }
    assert!(
        encoded == data[..valid_len],
        "records do not encode to the bytes read"
    );
    for record in records {
        let _ = serde_json::from_slice(&record.envelope_json)
            .map_err(|e| e.to_string())
            .and_then(|json| Envelope::from_json(&json).map_err(|e| e.to_string()));
    }
});
