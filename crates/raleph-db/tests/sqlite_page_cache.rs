//! The page cache wrapper (`sqlite::page_cache`) under the writer: page splits (which swap page
//! numbers through the pending-byte page), growth, and a rollback of growth, which must drop
//! the pages past the old end. Its own test binary, so that the store opens before anything
//! else initializes SQLite and the wrapper is really in use.

#![cfg(feature = "sqlite")]

mod common;

use raleph_db::sqlite::{Durability, open, page_cache_wrapped};
use raleph_db::*;

/// The `i`th message: keys spread over the hash space, senders and channels repeating, and a
/// padded content, so that inserts split pages all over the indexes.
fn message(i: usize) -> NewMessage {
    let hash = format!(
        "{:064x}",
        (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c)
    );
    let mut m = common::message(&hash, "POST", &format!("0x{:040x}", i % 997), i as f64);
    m.record.content = format!(r#"{{"n":{i},"pad":"{}"}}"#, "x".repeat(200));
    m.record.envelope.item_content = Some(m.record.content.clone());
    m.record.envelope.channel = Some(format!("C{}", i % 13));
    m
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
        let hash = message(i).record.envelope.item_hash;
        assert_eq!(
            r.message(&hash)?.map(|m| m.envelope.item_hash),
            Some(hash),
            "{i}"
        );
    }
    assert!(
        r.message(&message(5_100).record.envelope.item_hash)?
            .is_none()
    );
    let conn = rusqlite::Connection::open(&path).expect("open");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok");
    Ok(())
}
