use serde_json::json;

use super::*;
use crate::*;

fn store() -> (tempfile::TempDir, SqliteWriter, SqliteReader) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (w, r) = open(&dir.path().join("index.sqlite"), Durability::Normal).expect("open");
    (dir, w, r)
}

fn element(hash: &str, time: f64, content: serde_json::Value) -> NewAggregateElement {
    NewAggregateElement {
        item_hash: hash.into(),
        owner: "0xA".into(),
        key: "profile".into(),
        content: content.to_string(),
        creation_time: time,
    }
}

#[test]
fn migrations_are_idempotent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("index.sqlite");
    drop(open(&path, Durability::Normal).expect("first open"));
    drop(open(&path, Durability::Normal).expect("second open"));
}

#[test]
fn aggregate_merge_is_shallow_and_time_ordered() -> Result<()> {
    let (_dir, mut w, r) = store();
    w.begin()?;
    // Inserted out of order: the merge follows content time, not arrival.
    w.insert_aggregate_element(&element("h2", 2.0, json!({"a": {"y": 2}, "b": null})))?;
    w.insert_aggregate_element(&element("h1", 1.0, json!({"a": {"x": 1}, "b": 1, "c": 1})))?;
    w.rebuild_aggregate("0xA", "profile")?;
    w.commit()?;
    let aggs = r.aggregates_of("0xA", &[])?;
    assert_eq!(aggs.len(), 1);
    let value: serde_json::Value = serde_json::from_str(&aggs[0].content).expect("json");
    assert_eq!(value, json!({"a": {"y": 2}, "b": null, "c": 1}));
    assert_eq!(aggs[0].original_item_hash, "h1");
    assert_eq!(aggs[0].last_update_item_hash, "h2");
    Ok(())
}

#[test]
fn pending_queue_dedups_and_orders() -> Result<()> {
    let (_dir, mut w, _r) = store();
    let pending = |hash: &str, at: f64| NewPending {
        item_hash: hash.into(),
        sender: "s".into(),
        signature: Some("sig".into()),
        message: json!({"item_hash": hash}),
        reception_time: 10.0,
        origin: "api",
        signature_verified: true,
        first_attempt: at,
    };
    w.begin()?;
    assert_eq!(
        w.enqueue_pending(&pending("b", 2.0))?,
        EnqueueOutcome::Queued
    );
    assert_eq!(
        w.enqueue_pending(&pending("a", 1.0))?,
        EnqueueOutcome::Queued
    );
    assert_eq!(
        w.enqueue_pending(&pending("a", 1.0))?,
        EnqueueOutcome::Queued
    );
    w.commit()?;
    let due = w.due_pending(5.0, 10)?;
    assert_eq!(
        due.iter().map(|p| p.item_hash.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    w.begin()?;
    w.set_status("a", MessageStatus::Processed, 10.0)?;
    assert_eq!(
        w.enqueue_pending(&pending("a", 1.0))?,
        EnqueueOutcome::Known(MessageStatus::Processed)
    );
    w.commit()?;
    Ok(())
}
