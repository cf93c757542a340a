//! How fast the SQLite writer indexes new messages: `N` POST messages (signed, unconfirmed),
//! in transactions of 1 000 as the pipeline's writer batches them, each inserted and marked
//! processed; prints messages per second. A measurement of the store alone (no pipeline, no
//! signatures, no journal), for before/after a change of the insert path:
//! `cargo run --release -p raleph-db --example insert_rate -- [N]`.

use std::time::Instant;

use raleph_db::sqlite::{Durability, open};
use raleph_db::{
    Chain, Envelope, ItemHash, ItemType, MessageRecord, MessageStatus, NewMessage, WriteStore,
};

fn message(i: u64) -> NewMessage {
    let sender = format!("0x{:040x}", i % 1000);
    let time = 1_700_000_000.0 + i as f64 / 100.0;
    let content = format!(
        r#"{{"address":"{sender}","time":{time},"type":"note","content":{{"body":"message number {i}"}}}}"#
    );
    // Distinct, well-formed hashes without hashing: the index sees random-looking keys.
    let mixed = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let hash = format!("{mixed:016x}{i:016x}{:032x}", u128::from(mixed) << 3);
    NewMessage {
        record: MessageRecord {
            envelope: Envelope {
                item_hash: ItemHash::parse(&hash).expect("64 hex digits"),
                message_type: raleph_db::MessageType::Post,
                chain: Chain::Eth,
                sender: sender.clone(),
                signature: Some(format!("0x{}", "5".repeat(130))),
                item_type: ItemType::Inline,
                item_content: Some(content.clone()),
                channel: Some("BENCH".into()),
                time,
            },
            size: content.len() as u64,
            content,
            reception_time: time + 0.5,
            status: MessageStatus::Processed,
        },
        owner: sender,
        content_type: Some("note".into()),
        content_ref: None,
        content_key: None,
        content_item_hash: None,
        payment_type: None,
        tags: Vec::new(),
    }
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, _reader) =
        open(&dir.path().join("index.sqlite"), Durability::Normal).expect("open");
    let started = Instant::now();
    let mut i = 0;
    while i < n {
        store.begin().expect("begin");
        for _ in 0..1_000.min(n - i) {
            let m = message(i);
            store.insert_message(&m).expect("insert");
            store
                .set_status(&m.record.envelope.item_hash, MessageStatus::Processed, 0.0)
                .expect("status");
            i += 1;
        }
        store.commit().expect("commit");
    }
    let took = started.elapsed().as_secs_f64();
    println!(
        "{n} messages in {took:.2} s: {:.0} messages/s",
        n as f64 / took
    );
}
