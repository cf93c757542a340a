//! The page cache wrapper (`sqlite::page_cache`) under the writer: page splits (which swap page
//! numbers through the pending-byte page), growth, and a rollback of growth, which must drop
//! the pages past the old end. Its own test binary, so that the store opens before anything
//! else initializes SQLite and the wrapper is really in use.

#![cfg(feature = "sqlite")]

use raleph_db::sqlite::{Durability, open, page_cache_wrapped};
use raleph_db::*;

fn message(i: usize) -> NewMessage {
    let content = format!(r#"{{"n":{i},"pad":"{}"}}"#, "x".repeat(200));
    NewMessage {
        item_hash: format!(
            "{:064x}",
            (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c)
        ),
        message_type: "POST".into(),
        chain: "ETH".into(),
        sender: format!("0x{:040x}", i % 997),
        signature: None,
        item_type: "inline".into(),
        item_content: Some(content.clone()),
        content,
        channel: Some(format!("C{}", i % 13)),
        time: i as f64,
        size: 1,
        owner: format!("0x{:040x}", i % 997),
        content_type: None,
        content_ref: None,
        content_key: None,
        content_item_hash: None,
        payment_type: None,
        tags: Vec::new(),
        reception_time: i as f64,
    }
}

#[test]
fn splits_growth_and_rolled_back_growth_keep_the_store_whole() -> Result<()> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("index.sqlite");
    let (mut w, r) = open(&path, Durability::Full)?;
    assert!(
        page_cache_wrapped(),
        "the store opened first, so the wrapper is in use"
    );
    // Many small transactions of random keys: page splits, swaps through the pending page.
    for batch in 0..200 {
        w.begin()?;
        for i in batch * 25..(batch + 1) * 25 {
            w.insert_message(&message(i))?;
        }
        w.commit()?;
    }
    // A transaction that grows the file a lot, rolled back: its pages must leave the cache.
    w.begin()?;
    for i in 5_000..15_000 {
        w.insert_message(&message(i))?;
    }
    w.rollback()?;
    w.begin()?;
    for i in 5_000..5_100 {
        w.insert_message(&message(i))?;
    }
    w.commit()?;
    assert_eq!(r.counts()?.messages, 5_100);
    for i in [0, 4_999, 5_000, 5_099] {
        let hash = message(i).item_hash;
        assert_eq!(r.message(&hash)?.map(|m| m.item_hash), Some(hash), "{i}");
    }
    assert!(r.message(&message(5_100).item_hash)?.is_none());
    let conn = rusqlite::Connection::open(&path).expect("open");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok");
    Ok(())
}
