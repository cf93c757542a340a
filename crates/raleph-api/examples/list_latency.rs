//! The message list's latency, in process: a SQLite store of `N` POST messages, every one
//! confirmed on a chain (anchors of 1 000 items; none with `unconfirmed`), the real router
//! over it, and `R` sequential requests of each list, timed one by one. Not a test: a
//! measurement, run in release (`cargo run --release -p raleph-api --example list_latency --
//! [N] [R] [unconfirmed]`), before and after a change of the list's path. With every message
//! confirmed, 1 000 more are stored unconfirmed first, and a packer's read of what is left to
//! anchor (`ReadStore::unanchored`) is timed too. The reads go through the API's read threads as in
//! a node; there is no socket, so the figures are the node's share of a request.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::body::Body;
use axum::http::Request;
use raleph_api::{ApiConfig, AppState};
use raleph_db::{
    Anchor, Chain, Envelope, FileRecord, ItemHash, ItemType, MessageRecord, MessageStatus,
    NewMessage, ReadStore, WriteStore,
};
use raleph_message::sha256_hex;
use raleph_pipeline::{ContentSource, NoPayments, PipelineConfig};
use raleph_storage::{FileStore, StorageConfig};
use tower::ServiceExt;

struct NoFiles;

impl ContentSource for NoFiles {
    fn load(&self, _: ItemType, _: &str) -> std::io::Result<Option<Vec<u8>>> {
        Ok(None)
    }
    fn file(&self, _: &str) -> std::io::Result<Option<FileRecord>> {
        Ok(None)
    }
    fn delete_file(&self, _: &str) -> std::io::Result<()> {
        Ok(())
    }
    fn list_files(&self) -> std::io::Result<Vec<(String, SystemTime)>> {
        Ok(Vec::new())
    }
}

fn message(i: u64) -> NewMessage {
    let sender = format!("0x{:040x}", i % 100);
    let time = 1_700_000_000.0 + i as f64;
    let content = format!(
        r#"{{"address":"{sender}","time":{time},"type":"note","content":{{"body":"message number {i}"}}}}"#
    );
    let item_hash = ItemHash::parse(&sha256_hex(content.as_bytes())).expect("a sha256");
    NewMessage {
        record: MessageRecord {
            envelope: Envelope {
                item_hash,
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

fn populate(store: &mut dyn WriteStore, n: u64, confirmed: bool) {
    const PER_ANCHOR: u64 = 1_000;
    let mut start = 0;
    while start < n {
        let end = (start + PER_ANCHOR).min(n);
        store.begin().expect("begin");
        let mut items = Vec::new();
        for i in start..end {
            let m = message(i);
            items.push(m.record.envelope.item_hash.clone());
            store.insert_message(&m).expect("insert");
        }
        let tx = format!("0x{}", sha256_hex(format!("tx {start}").as_bytes()));
        let anchor = Anchor {
            chain: Chain::Eth,
            tx_hash: tx,
            log_index: 0,
            height: start / PER_ANCHOR + 1,
            block_hash: format!("0x{}", sha256_hex(format!("block {start}").as_bytes())),
            time: 1_700_000_000.0 + end as f64,
            publisher: format!("0x{}", "ab".repeat(20)),
            protocol: "aleph-offchain".into(),
            archive: None,
            merkle_root: None,
        };
        if confirmed {
            store.record_anchor(&anchor, &items).expect("anchor");
        }
        store.commit().expect("commit");
        start = end;
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let requests: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2_000);
    let confirmed = args.next().as_deref() != Some("unconfirmed");
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut writer, reader) = raleph_db::sqlite::open(
        &dir.path().join("index.sqlite"),
        raleph_db::sqlite::Durability::Normal,
    )
    .expect("open the index");
    let started = Instant::now();
    populate(&mut writer, n, confirmed);
    eprintln!(
        "{n} messages stored and confirmed in {:?}",
        started.elapsed()
    );
    if confirmed {
        writer.begin().expect("begin");
        for i in n..n + 1_000 {
            writer.insert_message(&message(i)).expect("insert");
        }
        writer.commit().expect("commit");
        let mut times = Vec::new();
        for _ in 0..200 {
            let at = Instant::now();
            let left = reader.unanchored(500).expect("unanchored");
            times.push(at.elapsed().as_secs_f64() * 1e6);
            assert_eq!(left.len(), 500);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "unanchored(500) of {} left among {n} confirmed: p50 {:.0} µs, p99 {:.0} µs",
            1_000, times[100], times[198]
        );
    }
    let files = FileStore::open(dir.path().join("files")).expect("files");
    let (pipeline, _thread) = raleph_pipeline::spawn(
        Box::new(writer),
        Arc::new(NoFiles),
        Arc::new(NoPayments),
        PipelineConfig::default(),
        &dir.path().join("intake"),
        Arc::new(raleph_pipeline::SystemClock),
    )
    .expect("pipeline");
    let state = AppState::new(
        Arc::new(reader),
        pipeline,
        files,
        ApiConfig::default(),
        StorageConfig::default(),
    );
    let router = raleph_api::router(state);
    for (label, uri) in [
        ("20 newest", "/api/v0/messages.json"),
        ("200 newest", "/api/v0/messages.json?pagination=200"),
        ("20, page 50", "/api/v0/messages.json?page=50"),
        (
            "20 of a sender",
            "/api/v0/messages.json?addresses=0x0000000000000000000000000000000000000007",
        ),
        ("20 by tx-time", "/api/v0/messages.json?sortBy=tx-time"),
        (
            "20 tx-time, asc",
            "/api/v0/messages.json?sortBy=tx-time&sortOrder=1",
        ),
        ("20 below block 50", "/api/v0/messages.json?endBlock=50"),
    ] {
        let mut times = Vec::with_capacity(requests);
        for round in 0..requests + requests / 10 {
            let request = Request::get(uri).body(Body::empty()).expect("request");
            let at = Instant::now();
            let response = router.clone().oneshot(request).await.expect("answer");
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .expect("body");
            let took = at.elapsed();
            assert!(body.len() > 100, "{label}: a short answer");
            // The first tenth warms the caches.
            if round >= requests / 10 {
                times.push(took.as_secs_f64() * 1e6);
            }
        }
        times.sort_by(f64::total_cmp);
        let at = |q: f64| times[((times.len() as f64 - 1.0) * q) as usize];
        let mean = times.iter().sum::<f64>() / times.len() as f64;
        println!(
            "{label:>16}: mean {mean:7.0} µs  p50 {:7.0} µs  p99 {:7.0} µs  ({} requests)",
            at(0.5),
            at(0.99),
            times.len()
        );
    }
}
