use serde_json::json;

use super::*;
use crate::test_names::{h, name};
use crate::*;

fn store() -> (tempfile::TempDir, SqliteWriter, SqliteReader) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (w, r) = open(&dir.path().join("index.sqlite"), Durability::Normal).expect("open");
    (dir, w, r)
}

fn element(hash: &str, time: f64, content: serde_json::Value) -> NewAggregateElement {
    NewAggregateElement {
        item_hash: h(hash),
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
    w.add_aggregate_element(&element("h2", 2.0, json!({"a": {"y": 2}, "b": null})))?;
    w.add_aggregate_element(&element("h1", 1.0, json!({"a": {"x": 1}, "b": 1, "c": 1})))?;
    w.commit()?;
    let aggs = r.aggregates_of("0xA", &[])?;
    assert_eq!(aggs.len(), 1);
    let value: serde_json::Value = serde_json::from_str(&aggs[0].content).expect("json");
    assert_eq!(value, json!({"a": {"y": 2}, "b": null, "c": 1}));
    assert_eq!(name(&aggs[0].original_item_hash), "h1");
    assert_eq!(name(&aggs[0].last_update_item_hash), "h2");
    // The newest element is merged into the value; one of the same time but a smaller hash
    // comes before it in merge order.
    w.begin()?;
    w.add_aggregate_element(&element("h3", 3.0, json!({"c": 3, "d": 4})))?;
    w.add_aggregate_element(&element("h0", 3.0, json!({"c": 0, "e": 5})))?;
    w.commit()?;
    let aggs = r.aggregates_of("0xA", &[])?;
    let value: serde_json::Value = serde_json::from_str(&aggs[0].content).expect("json");
    assert_eq!(
        value,
        json!({"a": {"y": 2}, "b": null, "c": 3, "d": 4, "e": 5})
    );
    assert_eq!(name(&aggs[0].original_item_hash), "h1");
    assert_eq!(name(&aggs[0].last_update_item_hash), "h3");
    Ok(())
}

/// A minimal processed message: a status of `processed` is the message's row.
fn processed_message(hash: &str) -> NewMessage {
    NewMessage {
        record: MessageRecord {
            envelope: Envelope {
                item_hash: h(hash),
                message_type: MessageType::Post,
                chain: Chain::Eth,
                sender: "0xA".into(),
                signature: None,
                item_type: ItemType::Inline,
                item_content: Some("{}".into()),
                channel: None,
                time: 1.0,
            },
            content: "{}".into(),
            size: 2,
            reception_time: 10.0,
            status: MessageStatus::Processed,
        },
        owner: "0xA".into(),
        content_type: None,
        content_ref: None,
        content_key: None,
        content_item_hash: None,
        payment_type: None,
        tags: Vec::new(),
    }
}

#[test]
fn pending_queue_dedups_and_orders() -> Result<()> {
    let (_dir, mut w, _r) = store();
    let pending = |hash: &str, at: f64| NewPending {
        item_hash: h(hash),
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
        due.iter().map(|p| name(&p.item_hash)).collect::<Vec<_>>(),
        ["a", "b"]
    );
    w.begin()?;
    w.insert_message(&processed_message("a"))?;
    w.set_status(&h("a"), MessageStatus::Processed, 10.0)?;
    assert_eq!(
        w.enqueue_pending(&pending("a", 1.0))?,
        EnqueueOutcome::Known(MessageStatus::Processed)
    );
    w.commit()?;
    Ok(())
}

/// Applies the first `n` migrations to a new store at `path`.
fn migrate_to(path: &std::path::Path, n: usize) -> Result<Connection> {
    let mut conn = Connection::open(path).map_err(backend)?;
    for (index, sql) in schema::MIGRATIONS.iter().take(n).enumerate() {
        let tx = conn.transaction().map_err(backend)?;
        tx.execute_batch(sql).map_err(backend)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)
            .map_err(backend)?;
        tx.commit().map_err(backend)?;
    }
    Ok(conn)
}

/// Migration 8 on a store written by migrations 1–7: processed messages lose their status
/// rows, the others keep theirs, and statuses, counts and owner lists read the same.
#[test]
fn processed_statuses_migrate_to_message_rows() -> Result<()> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("index.sqlite");
    {
        let conn = migrate_to(&path, 7)?;
        for (seq, hash, owner, status) in [
            (1, "m1", "0xA", "processed"),
            (2, "m2", "0xB", "processed"),
            (3, "m3", "0xA", "removing"),
        ] {
            conn.execute(
                "INSERT INTO messages (item_hash, type, chain, sender, item_type, content, time,
                     size, owner, reception_time, seq, status)
                 VALUES (?1, 'POST', 'ETH', '0xA', 'inline', '{}', 1.0, 1, ?2, 7.0, ?3, ?4)",
                rusqlite::params![h(hash).as_str(), owner, seq, status],
            )
            .map_err(backend)?;
        }
        for (hash, status) in [
            ("m1", "processed"),
            ("m2", "processed"),
            ("m3", "removing"),
            ("r1", "rejected"),
        ] {
            conn.execute(
                "INSERT INTO message_status (item_hash, status, reception_time) VALUES (?1, ?2, 7.0)",
                [h(hash).as_str(), status],
            )
            .map_err(backend)?;
        }
    }
    let (mut w, r) = open(&path, Durability::Normal)?;
    for (hash, status) in [
        ("m1", MessageStatus::Processed),
        ("m2", MessageStatus::Processed),
        ("m3", MessageStatus::Removing),
        ("r1", MessageStatus::Rejected),
    ] {
        assert_eq!(w.status(&h(hash))?, Some(status), "{hash}");
        assert_eq!(
            r.status(&h(hash))?.map(|s| s.status),
            Some(status),
            "{hash}"
        );
    }
    let counts = r.counts()?;
    assert_eq!(counts.messages, 3);
    assert_eq!(
        counts.by_status,
        [
            (MessageStatus::Processed, 2),
            (MessageStatus::Rejected, 1),
            (MessageStatus::Removing, 1)
        ]
    );
    let owned_by = |owner: &str| -> Result<Vec<String>> {
        let q = MessageQuery {
            owners: vec![owner.to_owned()],
            ..Default::default()
        };
        let mut hashes: Vec<String> = r
            .messages(&q)?
            .into_iter()
            .map(|m| name(&m.envelope.item_hash))
            .collect();
        hashes.sort();
        Ok(hashes)
    };
    assert_eq!(owned_by("0xA")?, ["m1", "m3"]);
    assert_eq!(owned_by("0xB")?, ["m2"]);
    w.begin()?;
    w.set_status(&h("m3"), MessageStatus::Processed, 8.0)?;
    w.commit()?;
    assert_eq!(
        r.message(&h("m3"))?.map(|m| m.status),
        Some(MessageStatus::Processed)
    );
    assert_eq!(r.counts()?.by_status[0], (MessageStatus::Processed, 3));
    Ok(())
}

/// Migrations 10–16 on a store written by migrations 1–9: the totals of content types, tags,
/// post types, channels, aggregate keys, posts per channel and messages per span of time are
/// counted from the rows, and the lists' totals read them.
#[test]
fn list_totals_migrate_from_the_rows() -> Result<()> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("index.sqlite");
    {
        let conn = migrate_to(&path, 9)?;
        for (seq, hash, content_type, tags) in [
            (1, "m1", Some("note"), vec!["a", "b"]),
            (2, "m2", Some("note"), vec!["a"]),
            (3, "m3", None, vec![]),
        ] {
            conn.execute(
                "INSERT INTO messages (item_hash, type, chain, sender, item_type, content, time,
                     size, owner, reception_time, seq, content_type, tags, channel)
                 VALUES (?1, 'POST', 'ETH', '0xA', 'inline', '{}', ?2, 1, '0xA', 7.0, ?2, ?3, ?4,
                     'C')",
                rusqlite::params![
                    h(hash).as_str(),
                    seq,
                    content_type,
                    serde_json::json!(tags).to_string()
                ],
            )
            .map_err(backend)?;
            for tag in tags {
                conn.execute(
                    "INSERT INTO message_tags (tag, time, item_hash) VALUES (?1, ?2, ?3)",
                    rusqlite::params![tag, seq, h(hash).as_str()],
                )
                .map_err(backend)?;
            }
            // m1 and m2 are original posts, m3 an amend of m1.
            let (post_type, amends) = if hash == "m3" {
                ("amend", Some(h("m1").to_string()))
            } else {
                ("note", None)
            };
            conn.execute(
                "INSERT INTO posts (item_hash, owner, type, amends, creation_time, last_updated,
                     channel)
                 VALUES (?1, '0xA', ?2, ?3, ?4, ?4, 'C')",
                rusqlite::params![h(hash).as_str(), post_type, amends, seq],
            )
            .map_err(backend)?;
        }
    }
    {
        let conn = Connection::open(&path).map_err(backend)?;
        for owner in ["0xA", "0xB"] {
            conn.execute(
                "INSERT INTO aggregates (owner, key, content, creation_time, last_update_time,
                     original_item_hash, last_revision_hash)
                 VALUES (?1, 'k', '{}', 1.0, 1.0, 'h', 'h')",
                [owner],
            )
            .map_err(backend)?;
        }
    }
    let (_w, r) = open(&path, Durability::Normal)?;
    let with_key = crate::AggregateQuery {
        keys: vec!["k".to_owned()],
        ..Default::default()
    };
    assert_eq!(r.count_aggregates(&with_key)?, 2);
    let posts_of = |post_type: &str| {
        r.count_posts(&crate::PostQuery {
            types: vec![post_type.to_owned()],
            ..Default::default()
        })
    };
    assert_eq!(posts_of("note")?, 2);
    assert_eq!(posts_of("amend")?, 0);
    let total = |q: MessageQuery| r.count_messages(&q);
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let by_type = |types: &[&str]| MessageQuery {
        content_types: strings(types),
        ..Default::default()
    };
    let by_tag = |tag: &str| MessageQuery {
        tags: strings(&[tag]),
        ..Default::default()
    };
    assert_eq!(total(by_type(&["note"]))?, 2);
    assert_eq!(total(by_type(&["note", "other"]))?, 2);
    assert_eq!(total(by_type(&["other"]))?, 0);
    assert_eq!(total(by_tag("a"))?, 2);
    assert_eq!(total(by_tag("b"))?, 1);
    assert_eq!(total(by_tag("c"))?, 0);
    let in_channel = MessageQuery {
        channels: strings(&["C"]),
        ..Default::default()
    };
    assert_eq!(total(in_channel)?, 3);
    let posts_in = |channel: &str| {
        r.count_posts(&crate::PostQuery {
            channels: vec![channel.to_owned()],
            ..Default::default()
        })
    };
    assert_eq!(posts_in("C")?, 2);
    assert_eq!(posts_in("D")?, 0);
    // Messages at times 1, 2 and 3.
    let between = |start: f64, end: f64| MessageQuery {
        start_date: Some(start),
        end_date: Some(end),
        ..Default::default()
    };
    assert_eq!(total(between(0.0, 10.0))?, 3);
    assert_eq!(total(between(1.5, 3.0))?, 1);
    assert_eq!(total(between(1.0, 3.5))?, 3);
    Ok(())
}

/// Migration 6 on a store written by migrations 1–5: each tag row gets its message's time,
/// each message its list of tags, and lists, totals and forgets work on the result.
#[test]
fn tags_migrate_to_time_order() -> Result<()> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("index.sqlite");
    {
        let conn = migrate_to(&path, 5)?;
        for (hash, time, tags) in [
            ("m1", 1.0, &["a", "b"][..]),
            ("m2", 2.0, &[][..]),
            ("m3", 3.0, &["b"][..]),
        ] {
            conn.execute(
                "INSERT INTO messages (item_hash, type, chain, sender, item_type, content, time,
                     size, owner, reception_time, seq)
                 VALUES (?1, 'POST', 'ETH', '0xA', 'inline', '{}', ?2, 1, '0xA', ?2, ?2)",
                rusqlite::params![h(hash).as_str(), time],
            )
            .map_err(backend)?;
            for tag in tags {
                conn.execute(
                    "INSERT INTO message_tags (tag, item_hash) VALUES (?1, ?2)",
                    [tag, h(hash).as_str()],
                )
                .map_err(backend)?;
            }
        }
    }
    let (mut w, r) = open(&path, Durability::Normal)?;
    let tagged = |tags: &[&str]| MessageQuery {
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        ..Default::default()
    };
    let listed = |q: &MessageQuery| -> Result<Vec<String>> {
        Ok(r.messages(q)?
            .into_iter()
            .map(|m| name(&m.envelope.item_hash))
            .collect())
    };
    assert_eq!(listed(&tagged(&["b"]))?, ["m3", "m1"]);
    assert_eq!(listed(&tagged(&["a", "b"]))?, ["m3", "m1"]);
    assert_eq!(r.count_messages(&tagged(&["a", "b"]))?, 2);
    w.begin()?;
    w.forget(&h("m1"), &h("f"), 10.0, 20.0)?;
    w.commit()?;
    assert_eq!(listed(&tagged(&["a", "b"]))?, ["m3"]);
    assert_eq!(r.count_messages(&tagged(&["a"]))?, 0);
    r.pool.with(|conn| {
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM message_tags", [], |row| row.get(0))
            .map_err(backend)?;
        assert_eq!(rows, 1, "only m3's tag is left");
        Ok(())
    })
}

/// Read connections opened before the writer refreshed the planner's statistics are not
/// reused (they would plan with the statistics they read when they opened).
#[test]
fn readers_reopen_after_new_statistics() -> Result<()> {
    let (_dir, _w, r) = store();
    let cache_size = |conn: &Connection| -> Result<i64> {
        conn.query_row("PRAGMA cache_size", [], |row| row.get(0))
            .map_err(backend)
    };
    r.pool.with(|conn| {
        conn.pragma_update(None, "cache_size", -1234)
            .map_err(backend)
    })?;
    assert_eq!(
        r.pool.with(cache_size)?,
        -1234,
        "the idle connection is reused"
    );
    r.pool
        .statistics
        .fetch_add(1, std::sync::atomic::Ordering::Release);
    assert_ne!(r.pool.with(cache_size)?, -1234, "a new connection");
    Ok(())
}

#[test]
fn durable_store_writes_through_the_batching_log() -> Result<()> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("index.sqlite");
    let (mut w, r) = open(&path, Durability::Full)?;
    w.begin()?;
    w.add_aggregate_element(&element("h1", 1.0, json!({"a": 1})))?;
    w.commit()?;
    assert_eq!(r.aggregates_of("0xA", &[])?.len(), 1);
    Ok(())
}

/// The writer's tally of `messages` rows and sequence numbers is written when a transaction
/// commits, dropped when it rolls back, and a number given out is never given again.
#[test]
fn tally_follows_commits_and_rollbacks() -> Result<()> {
    let (_dir, mut w, r) = store();
    let seqs = |r: &SqliteReader| -> Result<Vec<u64>> {
        Ok(r.sync_log(0, 100, usize::MAX)?
            .messages
            .iter()
            .map(|(seq, _)| *seq)
            .collect())
    };
    w.begin()?;
    w.insert_message(&processed_message("a"))?;
    w.rollback()?;
    assert_eq!(r.counts()?.messages, 0);

    w.begin()?;
    w.insert_message(&processed_message("b"))?;
    w.savepoint()?;
    w.insert_message(&processed_message("c"))?;
    w.rollback_savepoint()?;
    w.insert_message(&processed_message("d"))?;
    w.commit()?;
    assert_eq!(r.counts()?.messages, 2);
    // `c`'s number (2) stays given although `c` is gone.
    assert_eq!(seqs(&r)?, [1, 3]);

    w.begin()?;
    w.forget(&h("b"), &h("f"), 10.0, 20.0)?;
    w.insert_message(&processed_message("e"))?;
    w.commit()?;
    assert_eq!(r.counts()?.messages, 2);
    assert_eq!(seqs(&r)?, [3, 5]);

    // Outside a transaction each write commits alone, its tally with it.
    w.insert_message(&processed_message("f"))?;
    assert_eq!(r.counts()?.messages, 3);
    assert_eq!(seqs(&r)?, [3, 5, 6]);
    Ok(())
}

/// A post and its processed message, as the pipeline indexes them.
fn add_post(w: &mut SqliteWriter, hash: &str, amends: Option<&str>, time: f64) -> Result<()> {
    let mut m = processed_message(hash);
    m.record.envelope.time = time + 0.5; // the envelope's time, not the content's
    m.record.envelope.signature = Some(format!("sig-{hash}"));
    m.record.envelope.item_content = Some(format!(r#"{{"n":"{hash}"}}"#));
    m.content_type = Some(if amends.is_some() { "amend" } else { "note" }.into());
    m.content_ref = amends.map(str::to_owned);
    w.begin()?;
    w.insert_message(&m)?;
    w.insert_post(&NewPost {
        item_hash: h(hash),
        owner: "0xA".into(),
        post_type: "note".into(),
        reference: None,
        amends: amends.map(h),
        channel: Some("C".into()),
        content: Some(format!(r#"{{"body":"{hash}"}}"#)),
        creation_time: time,
        tags: Vec::new(),
    })?;
    if let Some(original) = amends {
        w.refresh_latest_amend(&h(original))?;
    }
    w.set_status(&h(hash), MessageStatus::Processed, time)?;
    w.commit()
}

#[test]
fn posts_by_latest_hash_only_match_full_posts() -> Result<()> {
    let (_dir, mut w, r) = store();
    add_post(&mut w, "p1", None, 1.0)?;
    add_post(&mut w, "p2", None, 2.0)?;
    add_post(&mut w, "a1", Some("p1"), 3.0)?;
    add_post(&mut w, "a2", Some("p1"), 4.0)?;
    add_post(&mut w, "p3", None, 2.0)?;
    for sort_order in [SortOrder::Ascending, SortOrder::Descending] {
        let full = PostQuery {
            sort_order,
            limit: 2,
            offset: 1,
            ..Default::default()
        };
        let full = r.posts(&full)?;
        let brief = r.posts(&PostQuery {
            latest_hash_only: true,
            ..PostQuery {
                sort_order,
                limit: 2,
                offset: 1,
                ..Default::default()
            }
        })?;
        assert_eq!(full.len(), 2);
        assert_eq!(full.len(), brief.len());
        for (f, b) in full.iter().zip(&brief) {
            // Everything but the latest version's message, which was not read.
            assert_eq!(f.latest_item_hash, b.latest_item_hash);
            assert!(f.latest.is_some() && b.latest.is_none());
            assert_eq!(
                (
                    &f.original_item_hash,
                    &f.original_type,
                    &f.owner,
                    &f.reference
                ),
                (
                    &b.original_item_hash,
                    &b.original_type,
                    &b.owner,
                    &b.reference
                )
            );
            assert_eq!((&f.channel, f.created), (&b.channel, b.created));
            assert_eq!(
                (&f.latest_content, f.last_updated),
                (&b.latest_content, b.last_updated)
            );
            assert_eq!(f.amended, b.amended);
        }
    }
    // p1's latest version is its last amend, read in full by default.
    let all = r.posts(&PostQuery::default())?;
    let p1 = all
        .iter()
        .find(|p| p.original_item_hash == h("p1"))
        .expect("p1");
    assert_eq!(name(&p1.latest_item_hash), "a2");
    let latest = p1.latest.as_ref().expect("the latest version's message");
    assert_eq!(latest.time, 4.5);
    assert_eq!(latest.signature.as_deref(), Some("sig-a2"));
    assert_eq!(p1.original_signature.as_deref(), Some("sig-p1"));
    assert_eq!(p1.latest_content.as_deref(), Some(r#"{"body":"a2"}"#));
    Ok(())
}

/// A young store gets planner statistics as soon as it holds a few thousand messages, not a
/// minute later: without them an address-and-type list reads the whole type's range.
#[test]
fn statistics_arrive_with_the_first_thousands_of_messages() -> Result<()> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("index.sqlite");
    let (mut w, _r) = open(&path, Durability::Normal)?;
    w.begin()?;
    w.commit()?;
    w.begin()?;
    for i in 0..12_000 {
        let mut m = processed_message(&format!("{i:064x}"));
        m.record.envelope.sender = format!("0x{:040x}", i % 1_000);
        m.owner = m.record.envelope.sender.clone();
        m.record.envelope.message_type = [MessageType::Post, MessageType::Aggregate][i % 2];
        m.record.envelope.time = i as f64;
        w.insert_message(&m)?;
    }
    w.commit()?;
    let conn = Connection::open(&path).map_err(backend)?;
    let plan: Vec<String> = conn
        .prepare(
            "EXPLAIN QUERY PLAN SELECT m.item_hash FROM messages m
             WHERE m.sender IN (?1) AND m.type IN (?2) ORDER BY m.time DESC, m.item_hash LIMIT 20",
        )
        .and_then(|mut s| {
            s.query_map(["0x1", "POST"], |r| r.get::<_, String>(3))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(backend)?;
    assert!(
        plan.iter().any(|step| step.contains("messages_by_sender")),
        "{plan:?}"
    );
    Ok(())
}

/// Time-range totals read `time_counts` for whole seconds and the index for the rest: they
/// must equal a count of the rows whatever the writes (fractions, ties, times outside the
/// bucketed span, moves to an earlier time, forgets, rolled-back savepoints), and the
/// writer's buckets must equal those migration 16 counts from the rows.
#[test]
fn time_range_totals_follow_writes() -> Result<()> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("index.sqlite");
    let (mut w, r) = open(&path, Durability::Normal)?;
    let state = std::cell::Cell::new(0x2545_f491_4f6c_dd1du64);
    let next = |n: u64| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        x % n
    };
    let time_of = |i: u64| match i % 10 {
        0 => -(next(500) as f64) / 4.0,
        1 => 2e12 + next(100) as f64,
        2 => crate::time_counts::END as f64 - 0.5,
        _ => next(300_000) as f64 + [0.0, 0.25, 0.5, 0.999][next(4) as usize],
    };
    let times: Vec<f64> = (0..600).map(time_of).collect();
    w.begin()?;
    for (i, time) in times.iter().enumerate() {
        w.savepoint()?;
        let mut m = processed_message(&format!("m{i}"));
        m.record.envelope.time = *time;
        w.insert_message(&m)?;
        if i % 7 == 3 {
            w.rollback_savepoint()?;
        } else {
            w.release_savepoint()?;
        }
    }
    w.commit()?;
    w.begin()?;
    for i in (0..600).step_by(11) {
        w.forget(&h(&format!("m{i}")), &h("f"), 1.0, 2.0)?;
    }
    for i in (5..600).step_by(13) {
        w.keep_earliest_time(&h(&format!("m{i}")), times[i] - 1000.5)?;
    }
    w.commit()?;
    // Outside a transaction too.
    w.keep_earliest_time(&h("m6"), -3.0)?;
    w.forget(&h("m8"), &h("f"), 1.0, 2.0)?;

    let conn = Connection::open(&path).map_err(backend)?;
    let rows = |start: Option<f64>, end: Option<f64>| -> Result<u64> {
        conn.query_row(
            "SELECT count(*) FROM messages WHERE time >= coalesce(?1, -1e308)
                 AND time < coalesce(?2, 1e308)",
            rusqlite::params![start, end],
            |row| row.get::<_, i64>(0),
        )
        .map(|n| n as u64)
        .map_err(backend)
    };
    let total = |start: Option<f64>, end: Option<f64>| {
        r.count_messages(&MessageQuery {
            start_date: start,
            end_date: end,
            ..Default::default()
        })
    };
    let mut bounds = vec![None, Some(-1e9), Some(-2.5), Some(0.0), Some(1e13)];
    for _ in 0..60 {
        bounds.push(Some(time_of(next(10))));
        bounds.push(Some(next(300_000) as f64));
    }
    for (i, start) in bounds.iter().enumerate() {
        for end in bounds.iter().skip(i % 5).step_by(5) {
            assert_eq!(
                total(*start, *end)?,
                rows(*start, *end)?,
                "{start:?}..{end:?}"
            );
        }
    }

    // The same buckets as migration 16 counts from the rows.
    let buckets = |table: &str| -> Result<Vec<(i64, i64, i64)>> {
        let mut stmt = conn
            .prepare(&format!(
                "SELECT level, bucket, n FROM {table} WHERE n <> 0 ORDER BY level, bucket"
            ))
            .map_err(backend)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(backend)?;
        rows.collect::<rusqlite::Result<_>>().map_err(backend)
    };
    let kept = buckets("time_counts")?;
    assert!(kept.len() > 500);
    // Each type's buckets add up to the buckets of all messages.
    conn.execute_batch(
        "CREATE TEMP VIEW summed_type_time_counts AS
             SELECT level, bucket, sum(n) AS n FROM type_time_counts GROUP BY level, bucket",
    )
    .map_err(backend)?;
    assert_eq!(buckets("summed_type_time_counts")?, kept);
    conn.execute_batch("ALTER TABLE time_counts RENAME TO kept_time_counts")
        .map_err(backend)?;
    conn.execute_batch(schema::MIGRATIONS[15])
        .map_err(backend)?;
    assert_eq!(buckets("time_counts")?, kept);
    Ok(())
}

/// Migration 19 on a store written by migrations 1–18: the grants of `security` aggregates
/// and each address's channels and post types are read from the rows already there.
#[test]
fn grants_and_facets_migrate_from_the_rows() -> Result<()> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("index.sqlite");
    {
        let conn = migrate_to(&path, 18)?;
        for (seq, hash, kind, channel, content_type) in [
            (1, "m1", "POST", Some("c2"), Some("blog")),
            (2, "m2", "POST", Some("c1"), Some("blog")),
            (3, "m3", "AGGREGATE", None, Some("x")),
        ] {
            conn.execute(
                "INSERT INTO messages (item_hash, type, chain, sender, item_type, content, time,
                     size, owner, reception_time, seq, content_type, tags, channel)
                 VALUES (?1, ?2, 'ETH', '0xA', 'inline', '{}', ?3, 1, '0xA', 7.0, ?3, ?4, '[]',
                     ?5)",
                rusqlite::params![h(hash).as_str(), kind, seq, content_type, channel],
            )
            .map_err(backend)?;
        }
        for (owner, key, content) in [
            (
                "0xA",
                "security",
                r#"{"authorizations":[{"address":"0xD"},{"address":"0xE"},{"address":"0xD"},{"address":""},{"address":5},"x"]}"#,
            ),
            ("0xB", "security", r#"{"authorizations":{"address":"0xD"}}"#),
            (
                "0xC",
                "profile",
                r#"{"authorizations":[{"address":"0xD"}]}"#,
            ),
        ] {
            conn.execute(
                "INSERT INTO aggregates (owner, key, content, creation_time, last_update_time,
                     original_item_hash, last_revision_hash)
                 VALUES (?1, ?2, ?3, 1.0, 1.0, 'h', 'h')",
                [owner, key, content],
            )
            .map_err(backend)?;
        }
    }
    let (_w, r) = open(&path, Durability::Normal)?;
    let owners = |grantee: &str| -> Result<Vec<String>> {
        let mut owners = Vec::new();
        r.each_grant_to(grantee, &mut |g| {
            owners.push(g.owner);
            Ok(())
        })?;
        Ok(owners)
    };
    assert_eq!(owners("0xD")?, ["0xA"]);
    assert_eq!(owners("0xE")?, ["0xA"]);
    assert_eq!(r.address_channels("0xA")?, ["c1", "c2"]);
    assert_eq!(r.address_post_types("0xA")?, ["blog"]);
    Ok(())
}
