//! The store's behaviour, backend-neutral: every test here runs, unchanged, against each
//! backend compiled in (SQLite with `--features sqlite`, PostgreSQL with `--features postgres`),
//! and a differential test checks that both give identical answers to the same queries.
//!
//! PostgreSQL: the tests connect to `DATABASE_URL` (`scripts/postgres.sh` starts a private
//! server and prints it); each test works in a fresh schema of its own, dropped at the end, so
//! tests run in parallel. Without `DATABASE_URL` they print a notice and pass, unless
//! `RALEPH_REQUIRE_POSTGRES=1`, which makes them fail (as does an unreachable server).

#![cfg(any(feature = "sqlite", feature = "postgres"))]

mod common;

use common::{h, message, name};
use raleph_db::*;
use serde_json::{Value, json};

/// Opens a store's two sides.
type Opener = Box<dyn Fn() -> (Box<dyn WriteStore>, Box<dyn ReadStore>)>;

/// One open store of some backend, and what keeps its storage alive.
struct Store {
    w: Slot<dyn WriteStore>,
    r: Slot<dyn ReadStore>,
    /// Opens the same storage again (after `w` and `r` were closed).
    reopen: Opener,
    /// Dropped last: removes the storage.
    _guard: Box<dyn std::any::Any>,
}

/// A handle that can be closed and replaced.
struct Slot<T: ?Sized>(Option<Box<T>>);

impl<T: ?Sized> std::ops::Deref for Slot<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.0.as_deref().expect("an open store")
    }
}

impl<T: ?Sized> std::ops::DerefMut for Slot<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.0.as_deref_mut().expect("an open store")
    }
}

impl Store {
    fn new(reopen: Opener, guard: Box<dyn std::any::Any>) -> Store {
        let (w, r) = reopen();
        Store {
            w: Slot(Some(w)),
            r: Slot(Some(r)),
            reopen,
            _guard: guard,
        }
    }

    fn reopen(&mut self) {
        // Close the old handles first (PostgreSQL: one writer at a time).
        self.w.0 = None;
        self.r.0 = None;
        let (w, r) = (self.reopen)();
        self.w.0 = Some(w);
        self.r.0 = Some(r);
    }
}

#[cfg(feature = "sqlite")]
fn sqlite_store() -> Option<Store> {
    use raleph_db::sqlite;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("index.sqlite");
    let open = move || -> (Box<dyn WriteStore>, Box<dyn ReadStore>) {
        // Durable, as a node runs by default: the suite goes through the WAL-batching VFS.
        let (w, r) = sqlite::open(&path, Durability::Full).expect("open sqlite");
        (Box::new(w), Box::new(r))
    };
    Some(Store::new(Box::new(open), Box::new(dir)))
}

#[cfg(feature = "postgres")]
mod pg {
    use std::sync::atomic::{AtomicU32, Ordering};

    use raleph_db::postgres::{PgOptions, open, redact};

    use super::*;

    /// The server to test against, or `None` to skip (see the module doc).
    pub fn url() -> Option<String> {
        let required = std::env::var("RALEPH_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
        match std::env::var("DATABASE_URL") {
            Ok(url) if !url.trim().is_empty() => Some(url.trim().to_owned()),
            _ if required => {
                panic!(
                    "RALEPH_REQUIRE_POSTGRES=1 but DATABASE_URL is not set (scripts/postgres.sh)"
                )
            }
            _ => {
                eprintln!(
                    "notice: DATABASE_URL is not set, skipping a PostgreSQL conformance test \
                     (run scripts/postgres.sh and export what it prints)"
                );
                None
            }
        }
    }

    /// A schema name no other test uses.
    pub fn fresh_schema() -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        format!(
            "raleph_test_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        )
    }

    pub fn admin(url: &str) -> ::postgres::Client {
        ::postgres::Client::connect(url, ::postgres::NoTls)
            .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {}: {e}", redact(url)))
    }

    /// Drops the test's schema when the test ends, passed or failed.
    pub struct SchemaGuard {
        pub url: String,
        pub schema: String,
    }

    impl Drop for SchemaGuard {
        fn drop(&mut self) {
            let sql = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.schema);
            let dropped = ::postgres::Client::connect(&self.url, ::postgres::NoTls)
                .and_then(|mut client| client.batch_execute(&sql));
            if let Err(e) = dropped {
                eprintln!("could not drop test schema {}: {e}", self.schema);
            }
        }
    }

    pub fn options(schema: &str) -> PgOptions {
        PgOptions {
            durability: Durability::Full,
            schema: Some(schema.to_owned()),
            max_read_connections: 4,
        }
    }

    pub fn store() -> Option<Store> {
        let url = url()?;
        let schema = fresh_schema();
        let guard = SchemaGuard {
            url: url.clone(),
            schema: schema.clone(),
        };
        let open = move || -> (Box<dyn WriteStore>, Box<dyn ReadStore>) {
            let (w, r) = open(&url, &options(&schema))
                .unwrap_or_else(|e| panic!("cannot open PostgreSQL at {}: {e}", redact(&url)));
            (Box::new(w), Box::new(r))
        };
        Some(Store::new(Box::new(open), Box::new(guard)))
    }
}

/// Declares each test once per backend: `sqlite::name` and `postgres::name`.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        #[cfg(feature = "sqlite")]
        mod sqlite {
            $(
                #[test]
                fn $name() -> raleph_db::Result<()> {
                    match super::sqlite_store() {
                        Some(mut store) => super::$name(&mut store),
                        None => Ok(()),
                    }
                }
            )*
        }
        #[cfg(feature = "postgres")]
        mod postgres {
            $(
                #[test]
                fn $name() -> raleph_db::Result<()> {
                    match super::pg::store() {
                        Some(mut store) => super::$name(&mut store),
                        None => Ok(()),
                    }
                }
            )*
        }
    };
}

conformance!(
    pending_queue,
    statuses_and_counts,
    rejections,
    message_roundtrip_and_content_fidelity,
    message_filters_sorts_and_counts,
    message_cursors_and_pages,
    posts_and_amends,
    aggregates_merge,
    aggregate_listing,
    forget_messages,
    forget_derived_state,
    files_pins_and_tags,
    garbage_collection,
    vms_and_volumes,
    address_stats_and_channels,
    transactions_and_savepoints,
    reopen_keeps_data,
    sync_log_order_and_epoch,
    journal_position_commits_with_its_transaction,
    tags_lists_and_totals,
    tags_follow_forget_and_time,
    tags_against_a_model,
    totals_with_rare_statuses,
    posts_by_tags_common_and_rare,
    kept_totals_follow_writes,
    message_lists_stop_at_their_byte_bound,
    anchors_and_confirmations,
    anchor_reorg_drops_confirmations,
    missing_archives_wait_until_found,
    batch_life,
    unanchored_messages,
    first_confirmation_filters_and_order,
    message_hashes_by_reception,
    address_channels_and_post_types,
    security_grants_follow_the_aggregate,
    hashes_and_facets_against_a_model,
);

// ---- data helpers ----

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}

/// Indexes a message and marks it processed, in one transaction, as the pipeline does.
fn add(s: &mut Store, m: &NewMessage) -> Result<()> {
    s.w.begin()?;
    s.w.insert_message(m)?;
    s.w.set_status(
        &m.record.envelope.item_hash,
        MessageStatus::Processed,
        m.record.reception_time,
    )?;
    s.w.commit()
}

/// The item hashes of test names, as a filter lists them.
fn hash_texts(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| h(n).to_string()).collect()
}

/// Item hashes by their test names (see `common::h`).
fn names(hashes: &[ItemHash]) -> Vec<String> {
    hashes.iter().map(name).collect()
}

/// The records' item hashes, by their test names (see `common::h`).
fn hashes(records: &[MessageRecord]) -> Vec<String> {
    records
        .iter()
        .map(|m| name(&m.envelope.item_hash))
        .collect()
}

fn asc() -> MessageQuery {
    MessageQuery {
        sort_order: SortOrder::Ascending,
        ..Default::default()
    }
}

fn listed(s: &Store, q: &MessageQuery) -> Result<Vec<String>> {
    Ok(hashes(&s.r.messages(q)?))
}

fn pending(hash: &str, signature: Option<&str>, first_attempt: f64) -> NewPending {
    NewPending {
        item_hash: h(hash),
        sender: "0xSender".into(),
        signature: signature.map(str::to_owned),
        message: json!({"item_hash": hash, "z": 1, "a": [1, 2]}),
        reception_time: 10.0,
        origin: "api",
        signature_verified: true,
        first_attempt,
    }
}

// ---- the tests ----

fn pending_queue(s: &mut Store) -> Result<()> {
    assert_eq!(s.w.next_due()?, None);
    s.w.begin()?;
    assert_eq!(
        s.w.enqueue_pending(&pending("b", Some("sig"), 2.0))?,
        EnqueueOutcome::Queued
    );
    assert_eq!(
        s.w.enqueue_pending(&pending("a", Some("sig"), 1.0))?,
        EnqueueOutcome::Queued
    );
    // The same copy again is deduplicated; another signature is another copy.
    assert_eq!(
        s.w.enqueue_pending(&pending("a", Some("sig"), 1.0))?,
        EnqueueOutcome::Queued
    );
    assert_eq!(
        s.w.enqueue_pending(&pending("a", Some("other"), 3.0))?,
        EnqueueOutcome::Queued
    );
    // No signature is one copy too.
    s.w.enqueue_pending(&pending("c", None, 4.0))?;
    s.w.enqueue_pending(&pending("c", None, 4.0))?;
    s.w.commit()?;

    assert_eq!(s.w.next_due()?, Some(1.0));
    let due = s.w.due_pending(10.0, 100)?;
    let order: Vec<_> = due.iter().map(|p| name(&p.item_hash)).collect();
    assert_eq!(order, ["a", "b", "a", "c"]);
    let first = &due[0];
    assert_eq!(
        first.message,
        json!({"item_hash": "a", "z": 1, "a": [1, 2]})
    );
    assert_eq!(
        first.message.to_string(),
        r#"{"item_hash":"a","z":1,"a":[1,2]}"#
    );
    assert_eq!((first.retries, first.signature_verified), (0, true));
    assert_eq!((first.origin.as_str(), first.reception_time), ("api", 10.0));
    assert_eq!(s.w.due_pending(1.5, 100)?.len(), 1);
    assert_eq!(s.w.due_pending(10.0, 2)?.len(), 2);
    assert!(s.w.due_pending(0.5, 100)?.is_empty());

    assert_eq!(s.w.other_pending(&h("a"), first.id)?, 1);
    assert_eq!(s.w.other_pending(&h("b"), due[1].id)?, 0);
    let copies = s.r.pending_copies(&h("a"))?;
    assert_eq!(copies.len(), 2);
    assert_eq!(copies[0].message["item_hash"], "a");
    assert_eq!(copies[0].reception_time, 10.0);
    assert!(s.r.pending_copies(&h("zz"))?.is_empty());

    // Rescheduled: later in the queue, with its retry count.
    s.w.begin()?;
    let failure = Failure::new(ErrorCode::ContentUnavailable, "not yet");
    s.w.reschedule_pending(first.id, 3, 20.0, &failure)?;
    s.w.commit()?;
    let due = s.w.due_pending(100.0, 100)?;
    let order: Vec<_> = due
        .iter()
        .map(|p| (name(&p.item_hash), p.retries))
        .collect();
    assert_eq!(
        order,
        [("b", 0), ("a", 0), ("c", 0), ("a", 3)].map(|(n, r)| (n.to_owned(), r))
    );
    assert_eq!(s.w.next_due()?, Some(2.0));

    s.w.begin()?;
    s.w.delete_pending(first.id)?;
    s.w.commit()?;
    assert_eq!(s.w.due_pending(100.0, 100)?.len(), 3);
    assert_eq!(s.w.other_pending(&h("a"), -1)?, 1);

    // A final status stops new copies; a rejected message may be queued again.
    s.w.begin()?;
    s.w.insert_message(&message("b", "POST", "0xA", 1.0))?;
    s.w.set_status(&h("b"), MessageStatus::Processed, 10.0)?;
    s.w.set_status(&h("d"), MessageStatus::Rejected, 11.0)?;
    assert_eq!(
        s.w.enqueue_pending(&pending("b", Some("new"), 1.0))?,
        EnqueueOutcome::Known(MessageStatus::Processed)
    );
    assert_eq!(
        s.w.enqueue_pending(&pending("d", Some("sig"), 1.0))?,
        EnqueueOutcome::Queued
    );
    s.w.commit()?;
    assert_eq!(s.w.status(&h("d"))?, Some(MessageStatus::Pending));
    // The status keeps its first reception time.
    assert_eq!(
        s.r.status(&h("d"))?,
        Some(StatusRecord {
            item_hash: h("d"),
            status: MessageStatus::Pending,
            reception_time: 11.0,
        })
    );
    assert_eq!(s.w.status(&h("a"))?, Some(MessageStatus::Pending));
    Ok(())
}

fn statuses_and_counts(s: &mut Store) -> Result<()> {
    assert_eq!(s.w.status(&h("x"))?, None);
    assert_eq!(s.r.status(&h("x"))?, None);
    assert_eq!(s.r.counts()?, Counts::default());
    add(s, &message("m1", "POST", "0xA", 1.0))?;
    add(s, &message("m2", "POST", "0xA", 2.0))?;
    s.w.begin()?;
    s.w.enqueue_pending(&pending("p1", Some("s"), 1.0))?;
    s.w.set_status(&h("r1"), MessageStatus::Rejected, 3.0)?;
    s.w.set_status(&h("m2"), MessageStatus::Removing, 4.0)?;
    s.w.insert_message(&message("cycle", "POST", "0xB", 5.0))?;
    s.w.commit()?;
    for status in MessageStatus::ALL {
        s.w.begin()?;
        s.w.set_status(&h("cycle"), status, 5.0)?;
        s.w.commit()?;
        assert_eq!(s.w.status(&h("cycle"))?, Some(status));
        assert_eq!(s.r.status(&h("cycle"))?.map(|r| r.status), Some(status));
    }
    // The message's own status follows.
    assert_eq!(
        s.r.message(&h("m2"))?.map(|m| m.status),
        Some(MessageStatus::Removing)
    );
    let counts = s.r.counts()?;
    assert_eq!((counts.messages, counts.pending), (3, 1));
    let mut by_status = counts.by_status.clone();
    by_status.sort_by_key(|(st, _)| st.as_str());
    assert_eq!(
        by_status,
        vec![
            (MessageStatus::Pending, 1),
            (MessageStatus::Processed, 1),
            (MessageStatus::Rejected, 1),
            (MessageStatus::Removed, 1),
            (MessageStatus::Removing, 1),
        ]
    );
    Ok(())
}

fn rejections(s: &mut Store) -> Result<()> {
    assert!(s.r.rejection(&h("h"))?.is_none());
    let envelope = json!({"item_hash": "h", "b": 2, "a": 1});
    s.w.begin()?;
    s.w.record_rejection(
        &h("h"),
        &envelope,
        &Failure::new(ErrorCode::InvalidSignature, "bad"),
    )?;
    s.w.set_status(&h("h"), MessageStatus::Rejected, 1.0)?;
    s.w.commit()?;
    let rejection = s.r.rejection(&h("h"))?.expect("rejection");
    assert_eq!(rejection.error_code, 1);
    assert_eq!(rejection.message.to_string(), envelope.to_string());
    assert_eq!(rejection.details, json!({"errors": ["bad"]}));
    // Recorded again: the last one wins.
    s.w.begin()?;
    s.w.record_rejection(
        &h("h"),
        &envelope,
        &Failure::new(ErrorCode::PermissionDenied, json!({"why": "no"})),
    )?;
    s.w.commit()?;
    let rejection = s.r.rejection(&h("h"))?.expect("rejection");
    assert_eq!(rejection.error_code, 2);
    assert_eq!(rejection.details, json!({"errors": [{"why": "no"}]}));
    // Processed later: the rejection goes.
    add(s, &message("h", "POST", "0xA", 1.0))?;
    assert!(s.r.rejection(&h("h"))?.is_none());

    // Expiry: by age first, then the oldest past the number kept, a batch at a time.
    s.w.begin()?;
    for (i, hash) in ["r1", "r2", "r3", "r4", "r5"].iter().enumerate() {
        let failure = Failure::new(ErrorCode::InvalidSignature, "bad");
        s.w.record_rejection(&h(hash), &json!({"item_hash": hash}), &failure)?;
        s.w.set_status(&h(hash), MessageStatus::Rejected, 10.0 + i as f64)?;
    }
    s.w.set_status(&h("pending"), MessageStatus::Pending, 0.0)?;
    s.w.commit()?;
    let status = |s: &mut Store, hash: &str| -> Result<Option<MessageStatus>> {
        Ok(s.r.status(&h(hash))?.map(|st| st.status))
    };
    s.w.begin()?;
    assert_eq!(s.w.expire_rejections(11.5, 10, 100)?, 2, "r1 and r2 by age");
    s.w.commit()?;
    assert!(s.r.rejection(&h("r1"))?.is_none() && s.r.rejection(&h("r2"))?.is_none());
    assert_eq!(status(s, "r2")?, None);
    assert_eq!(status(s, "r3")?, Some(MessageStatus::Rejected));
    s.w.begin()?;
    assert_eq!(s.w.expire_rejections(0.0, 1, 1)?, 1, "one at a time");
    assert_eq!(s.w.expire_rejections(0.0, 1, 100)?, 1, "down to one kept");
    assert_eq!(s.w.expire_rejections(0.0, 1, 100)?, 0);
    s.w.commit()?;
    assert_eq!(status(s, "r4")?, None);
    assert_eq!(status(s, "r5")?, Some(MessageStatus::Rejected));
    assert!(s.r.rejection(&h("r5"))?.is_some());
    // Other statuses are never touched.
    assert_eq!(status(s, "pending")?, Some(MessageStatus::Pending));
    Ok(())
}

fn message_roundtrip_and_content_fidelity(s: &mut Store) -> Result<()> {
    // Content served byte for byte: key order, duplicate keys, escapes, non-ASCII.
    let raw = r#"{"z":1,"a":{"y":[1,2.50,"\u0000"],"b":null},"z":2,"é":"😀 \"q\""}"#;
    let mut m = message("m1", "POST", "0xA", 1_700_000_000.123_456_7);
    m.record.envelope.item_content = Some(raw.to_owned());
    m.record.content = raw.to_owned();
    m.record.size = u32::MAX as u64 + 7;
    m.record.envelope.chain = Chain::Sol;
    m.record.envelope.channel = None;
    m.record.envelope.signature = None;
    m.content_type = Some("note".into());
    m.content_ref = Some("ref".into());
    m.content_key = Some("key".into());
    m.content_item_hash = Some("content-hash".into());
    m.payment_type = Some("hold".into());
    m.tags = strings(&["t1", "t2", "t1"]);
    add(s, &m)?;
    let mut storage = message("m2", "STORE", "0xB", 2.0);
    storage.record.envelope.item_type = ItemType::Storage;
    storage.record.envelope.item_content = None;
    add(s, &storage)?;

    let got = s.r.message(&h("m1"))?.expect("stored");
    assert_eq!(got.content, raw);
    assert_eq!(got.envelope.item_content.as_deref(), Some(raw));
    assert_eq!(
        (
            name(&got.envelope.item_hash).as_str(),
            got.envelope.message_type.as_str()
        ),
        ("m1", "POST")
    );
    assert_eq!(
        (got.envelope.chain.as_str(), got.envelope.sender.as_str()),
        ("SOL", "0xA")
    );
    assert_eq!((got.envelope.signature, got.envelope.channel), (None, None));
    assert_eq!(got.envelope.item_type, ItemType::Inline);
    assert_eq!(got.envelope.time, 1_700_000_000.123_456_7);
    assert_eq!(got.reception_time, m.record.reception_time);
    assert_eq!(got.size, u32::MAX as u64 + 7);
    assert_eq!(got.status, MessageStatus::Processed);
    let got = s.r.message(&h("m2"))?.expect("stored");
    assert_eq!(
        (got.envelope.item_content, got.envelope.item_type.as_str()),
        (None, "storage")
    );
    assert!(s.r.message(&h("nope"))?.is_none());

    assert_eq!(
        s.w.message_facts(&h("m1"))?,
        Some(MessageFacts {
            // The envelope as stored, without its content.
            envelope: Envelope {
                item_content: None,
                ..m.record.envelope.clone()
            },
            owner: "0xA".into(),
            content_type: Some("note".into()),
            content_key: Some("key".into()),
            content_ref: Some("ref".into()),
        })
    );
    assert_eq!(s.w.message_facts(&h("nope"))?, None);

    // A second copy keeps the earliest declared time.
    s.w.begin()?;
    s.w.keep_earliest_time(&h("m2"), 5.0)?;
    s.w.commit()?;
    assert_eq!(s.r.message(&h("m2"))?.map(|m| m.envelope.time), Some(2.0));
    s.w.begin()?;
    s.w.keep_earliest_time(&h("m2"), 0.5)?;
    s.w.keep_earliest_time(&h("nope"), 0.5)?;
    s.w.commit()?;
    assert_eq!(s.r.message(&h("m2"))?.map(|m| m.envelope.time), Some(0.5));
    // Inserting the same item hash twice is an error, not a panic.
    s.w.begin()?;
    assert!(s.w.insert_message(&m).is_err());
    s.w.rollback()?;
    Ok(())
}

/// Messages with ties on time, mixed-case hashes and channels, for filters and sorts.
fn seed_messages(s: &mut Store) -> Result<()> {
    let mut h1 = message("h1", "POST", "0xA", 1.0);
    h1.record.envelope.channel = Some("C1".into());
    h1.content_type = Some("note".into());
    h1.content_ref = Some("r1".into());
    h1.tags = strings(&["x"]);
    let mut h2 = message("h2", "AGGREGATE", "0xB", 2.0);
    h2.record.envelope.chain = Chain::Sol;
    h2.record.envelope.channel = Some("C2".into());
    h2.content_key = Some("k1".into());
    let mut h3 = message("h3", "STORE", "0xA", 2.0);
    h3.owner = "0xO".into();
    h3.record.envelope.channel = None;
    h3.content_item_hash = Some("f1".into());
    h3.payment_type = Some("hold".into());
    h3.record.envelope.item_type = ItemType::Storage;
    let mut h4 = message("h4", "POST", "0xB", 3.0);
    h4.record.envelope.channel = Some("C1".into());
    h4.content_type = Some("blog".into());
    h4.content_ref = Some("r2".into());
    h4.tags = strings(&["x", "y"]);
    // Upper case sorts before lower case bytewise (not in most locales).
    let mut h5 = message("H5", "POST", "0xA", 2.0);
    h5.record.envelope.channel = Some("b".into());
    h5.content_type = Some("note".into());
    for m in [&h4, &h3, &h1, &h5, &h2] {
        add(s, m)?;
    }
    Ok(())
}

fn message_filters_sorts_and_counts(s: &mut Store) -> Result<()> {
    seed_messages(s)?;
    let all_asc = strings(&["h1", "H5", "h2", "h3", "h4"]);
    assert_eq!(listed(s, &asc())?, all_asc);
    // Descending time, ties still by item hash ascending.
    assert_eq!(
        listed(s, &MessageQuery::default())?,
        strings(&["h4", "H5", "h2", "h3", "h1"])
    );
    let cases: Vec<(MessageQuery, Vec<&str>)> = vec![
        (
            MessageQuery {
                hashes: hash_texts(&["h4", "h1", "nope"]),
                ..asc()
            },
            vec!["h1", "h4"],
        ),
        (
            MessageQuery {
                addresses: strings(&["0xA"]),
                ..asc()
            },
            vec!["h1", "H5", "h3"],
        ),
        (
            MessageQuery {
                owners: strings(&["0xO"]),
                ..asc()
            },
            vec!["h3"],
        ),
        (
            MessageQuery {
                refs: strings(&["r1", "r2"]),
                ..asc()
            },
            vec!["h1", "h4"],
        ),
        (
            MessageQuery {
                content_hashes: strings(&["f1"]),
                ..asc()
            },
            vec!["h3"],
        ),
        (
            MessageQuery {
                content_keys: strings(&["k1"]),
                ..asc()
            },
            vec!["h2"],
        ),
        (
            MessageQuery {
                content_types: strings(&["note"]),
                ..asc()
            },
            vec!["h1", "H5"],
        ),
        (
            MessageQuery {
                chains: strings(&["SOL"]),
                ..asc()
            },
            vec!["h2"],
        ),
        (
            MessageQuery {
                channels: strings(&["C1", "b"]),
                ..asc()
            },
            vec!["h1", "H5", "h4"],
        ),
        // Exact matches only: no case folding, no patterns.
        (
            MessageQuery {
                channels: strings(&["c1", "C%", "B"]),
                ..asc()
            },
            vec![],
        ),
        (
            MessageQuery {
                tags: strings(&["x"]),
                ..asc()
            },
            vec!["h1", "h4"],
        ),
        (
            MessageQuery {
                tags: strings(&["y", "x"]),
                ..asc()
            },
            vec!["h1", "h4"],
        ),
        (
            MessageQuery {
                payment_types: strings(&["hold"]),
                ..asc()
            },
            vec!["h3"],
        ),
        (
            MessageQuery {
                message_types: strings(&["POST"]),
                ..asc()
            },
            vec!["h1", "H5", "h4"],
        ),
        (
            MessageQuery {
                statuses: vec![MessageStatus::Processed],
                ..asc()
            },
            vec!["h1", "H5", "h2", "h3", "h4"],
        ),
        (
            MessageQuery {
                start_date: Some(2.0),
                ..asc()
            },
            vec!["H5", "h2", "h3", "h4"],
        ),
        // The end is exclusive.
        (
            MessageQuery {
                end_date: Some(2.0),
                ..asc()
            },
            vec!["h1"],
        ),
        (
            MessageQuery {
                start_date: Some(1.5),
                end_date: Some(3.0),
                ..asc()
            },
            vec!["H5", "h2", "h3"],
        ),
        (
            MessageQuery {
                addresses: strings(&["0xA"]),
                message_types: strings(&["POST"]),
                channels: strings(&["C1"]),
                ..asc()
            },
            vec!["h1"],
        ),
        (
            MessageQuery {
                limit: 2,
                offset: 1,
                ..asc()
            },
            vec!["H5", "h2"],
        ),
        // No limit: the offset does not apply.
        (
            MessageQuery { offset: 3, ..asc() },
            vec!["h1", "H5", "h2", "h3", "h4"],
        ),
        (
            MessageQuery {
                limit: 10,
                offset: 10,
                ..asc()
            },
            vec![],
        ),
    ];
    for (query, expected) in &cases {
        let got = listed(s, query)?;
        assert_eq!(got, strings(expected), "{query:?}");
        // Counts ignore the page.
        let unpaged = MessageQuery {
            limit: 0,
            offset: 0,
            ..query.clone()
        };
        let total = listed(s, &unpaged)?.len() as u64;
        assert_eq!(s.r.count_messages(query)?, total, "{query:?}");
    }
    s.w.begin()?;
    s.w.set_status(&h("h4"), MessageStatus::Removing, 9.0)?;
    s.w.commit()?;
    let removing = MessageQuery {
        statuses: vec![MessageStatus::Removing],
        ..asc()
    };
    assert_eq!(listed(s, &removing)?, strings(&["h4"]));
    let live = MessageQuery {
        statuses: vec![MessageStatus::Processed, MessageStatus::Removing],
        ..asc()
    };
    assert_eq!(s.r.count_messages(&live)?, 5);
    assert_eq!(s.r.count_messages(&MessageQuery::default())?, 5);
    Ok(())
}

fn message_cursors_and_pages(s: &mut Store) -> Result<()> {
    seed_messages(s)?;
    // Many ties on time, hashes of several lengths and cases.
    for (i, hash) in ["a", "B", "ab", "A0", "b", "_", "aa", "Z", "0"]
        .iter()
        .enumerate()
    {
        add(s, &message(hash, "POST", "0xC", 2.0 + (i % 2) as f64))?;
    }
    for order in [SortOrder::Ascending, SortOrder::Descending] {
        let base = MessageQuery {
            sort_order: order,
            ..Default::default()
        };
        let all = listed(s, &base)?;
        let mut sorted = s.r.messages(&base)?;
        sorted.sort_by(|a, b| {
            let by_time = a.envelope.time.total_cmp(&b.envelope.time);
            let by_time = if order == SortOrder::Descending {
                by_time.reverse()
            } else {
                by_time
            };
            by_time.then_with(|| {
                a.envelope
                    .item_hash
                    .as_str()
                    .cmp(b.envelope.item_hash.as_str())
            })
        });
        assert_eq!(all, hashes(&sorted), "{order:?}: time, then bytewise hash");
        for page in 1..=4 {
            let mut walked = Vec::new();
            let mut cursor = None;
            loop {
                let q = MessageQuery {
                    limit: page,
                    cursor: cursor.clone(),
                    ..base.clone()
                };
                let rows = s.r.messages(&q)?;
                if rows.is_empty() {
                    break;
                }
                let last = rows.last().expect("a row");
                cursor = Some(Cursor {
                    time: last.envelope.time,
                    item_hash: last.envelope.item_hash.to_string(),
                });
                walked.extend(hashes(&rows));
            }
            assert_eq!(walked, all, "{order:?} pages of {page}");
            // Offsets walk the same list.
            let mut by_offset = Vec::new();
            for n in 0.. {
                let q = MessageQuery {
                    limit: page,
                    offset: n * page,
                    ..base.clone()
                };
                let rows = listed(s, &q)?;
                if rows.is_empty() {
                    break;
                }
                by_offset.extend(rows);
            }
            assert_eq!(by_offset, all);
        }
    }
    // A cursor combined with filters.
    let q = MessageQuery {
        addresses: strings(&["0xC"]),
        cursor: Some(Cursor {
            time: 2.0,
            item_hash: h("ab").to_string(),
        }),
        ..asc()
    };
    assert_eq!(listed(s, &q)?, strings(&["b", "A0", "B", "Z", "_"]));
    Ok(())
}

/// A post and its message, as the pipeline indexes them.
#[allow(clippy::too_many_arguments)]
fn add_post(
    s: &mut Store,
    hash: &str,
    owner: &str,
    post_type: &str,
    amends: Option<&str>,
    reference: Option<&str>,
    channel: Option<&str>,
    time: f64,
    tags: &[&str],
) -> Result<()> {
    let content = format!(r#"{{"body":"{hash}","n":{time}}}"#);
    let mut m = message(hash, "POST", owner, time);
    m.record.envelope.channel = channel.map(str::to_owned);
    m.content_type = Some(if amends.is_some() { "amend" } else { post_type }.to_owned());
    m.content_ref = amends.or(reference).map(str::to_owned);
    m.tags = strings(tags);
    m.record.envelope.chain = if owner == "0xB" {
        Chain::Sol
    } else {
        Chain::Eth
    };
    s.w.begin()?;
    s.w.insert_message(&m)?;
    s.w.insert_post(&NewPost {
        item_hash: h(hash),
        owner: owner.into(),
        post_type: post_type.into(),
        reference: reference.map(str::to_owned),
        amends: amends.map(h),
        channel: channel.map(str::to_owned),
        content: Some(content),
        creation_time: time,
        tags: strings(tags),
    })?;
    if let Some(original) = amends {
        s.w.refresh_latest_amend(&h(original))?;
    }
    s.w.set_status(&h(hash), MessageStatus::Processed, time)?;
    s.w.commit()
}

fn post_hashes(posts: &[PostRecord]) -> Vec<(String, String)> {
    posts
        .iter()
        .map(|p| (name(&p.original_item_hash), name(&p.latest_item_hash)))
        .collect()
}

fn posts_and_amends(s: &mut Store) -> Result<()> {
    add_post(
        s,
        "p1",
        "0xA",
        "note",
        None,
        None,
        Some("C1"),
        10.0,
        &["orig"],
    )?;
    add_post(
        s,
        "p2",
        "0xB",
        "blog",
        None,
        Some("r"),
        Some("C2"),
        20.0,
        &[],
    )?;
    add_post(s, "p3", "0xA", "note", None, None, None, 15.0, &[])?;
    // Amends arrive out of order: the latest is the greatest content time.
    add_post(
        s,
        "a1",
        "0xA",
        "note",
        Some("p1"),
        None,
        Some("C1"),
        30.0,
        &["new"],
    )?;
    add_post(
        s,
        "a2",
        "0xA",
        "note",
        Some("p1"),
        None,
        Some("C1"),
        25.0,
        &[],
    )?;

    let all = s.r.posts(&PostQuery::default())?;
    assert_eq!(
        post_hashes(&all),
        vec![
            ("p1".to_owned(), "a1".to_owned()),
            ("p2".to_owned(), "p2".to_owned()),
            ("p3".to_owned(), "p3".to_owned()),
        ]
    );
    let p1 = &all[0];
    assert_eq!(p1.original_type, "note");
    assert_eq!(p1.original_signature.as_deref(), Some("sig-p1"));
    assert_eq!((p1.owner.as_str(), p1.reference.as_deref()), ("0xA", None));
    assert_eq!(p1.channel.as_deref(), Some("C1"));
    assert_eq!(
        (p1.created, p1.last_updated, p1.amended),
        (10.0, 30.0, true)
    );
    assert_eq!(
        p1.latest_content.as_deref(),
        Some(r#"{"body":"a1","n":30}"#)
    );
    assert_eq!(p1.latest.as_ref().map(|l| l.time), Some(30.0));
    assert!(!all[1].amended);
    assert_eq!(all[1].reference.as_deref(), Some("r"));

    let ascending = PostQuery {
        sort_order: SortOrder::Ascending,
        ..Default::default()
    };
    let listed_posts = |q: &PostQuery| -> Result<Vec<String>> {
        Ok(s.r
            .posts(q)?
            .into_iter()
            .map(|p| name(&p.original_item_hash))
            .collect())
    };
    assert_eq!(listed_posts(&ascending)?, strings(&["p3", "p2", "p1"]));
    let cases: Vec<(PostQuery, Vec<&str>)> = vec![
        (
            PostQuery {
                addresses: strings(&["0xB"]),
                ..ascending.clone()
            },
            vec!["p2"],
        ),
        (
            PostQuery {
                hashes: hash_texts(&["p1", "a1"]),
                ..ascending.clone()
            },
            vec!["p1"],
        ),
        (
            PostQuery {
                refs: strings(&["r"]),
                ..ascending.clone()
            },
            vec!["p2"],
        ),
        (
            PostQuery {
                types: strings(&["note"]),
                ..ascending.clone()
            },
            vec!["p3", "p1"],
        ),
        (
            PostQuery {
                channels: strings(&["C1"]),
                ..ascending.clone()
            },
            vec!["p1"],
        ),
        (
            PostQuery {
                chains: strings(&["SOL"]),
                ..ascending.clone()
            },
            vec!["p2"],
        ),
        // Tags are those of the latest version.
        (
            PostQuery {
                tags: strings(&["new"]),
                ..ascending.clone()
            },
            vec!["p1"],
        ),
        (
            PostQuery {
                tags: strings(&["orig"]),
                ..ascending.clone()
            },
            vec![],
        ),
        // Dates are those of the latest version.
        (
            PostQuery {
                start_date: Some(25.0),
                ..ascending.clone()
            },
            vec!["p1"],
        ),
        (
            PostQuery {
                end_date: Some(20.0),
                ..ascending.clone()
            },
            vec!["p3"],
        ),
        (
            PostQuery {
                limit: 1,
                offset: 1,
                ..ascending.clone()
            },
            vec!["p2"],
        ),
        (
            PostQuery {
                cursor: Some(Cursor {
                    time: 15.0,
                    item_hash: h("p3").to_string(),
                }),
                ..ascending.clone()
            },
            vec!["p2", "p1"],
        ),
        (
            PostQuery {
                cursor: Some(Cursor {
                    time: 20.0,
                    item_hash: h("p2").to_string(),
                }),
                ..Default::default()
            },
            vec!["p3"],
        ),
    ];
    for (query, expected) in &cases {
        assert_eq!(listed_posts(query)?, strings(expected), "{query:?}");
        let unpaged = PostQuery {
            limit: 0,
            offset: 0,
            cursor: None,
            ..query.clone()
        };
        let total = listed_posts(&unpaged)?.len() as u64;
        if query.cursor.is_none() {
            assert_eq!(s.r.count_posts(query)?, total, "{query:?}");
        }
    }

    assert_eq!(
        s.w.post_facts(&h("a1"))?,
        Some(PostFacts {
            owner: "0xA".into(),
            post_type: "note".into(),
            amends: Some(h("p1")),
        })
    );
    assert_eq!(s.w.post_facts(&h("nope"))?, None);
    let mut amends = s.w.amends_of(&h("p1"))?;
    amends.sort();
    assert_eq!(names(&amends), strings(&["a1", "a2"]));
    assert!(s.w.amends_of(&h("p2"))?.is_empty());

    // Forgetting the latest amend falls back to the previous one, then to the original.
    s.w.begin()?;
    s.w.forget(&h("a1"), &h("f1"), 100.0, 200.0)?;
    s.w.commit()?;
    let p1 = s.r.posts(&PostQuery {
        hashes: hash_texts(&["p1"]),
        ..Default::default()
    })?;
    assert_eq!(post_hashes(&p1), vec![("p1".to_owned(), "a2".to_owned())]);
    assert_eq!((p1[0].last_updated, p1[0].amended), (25.0, true));
    s.w.begin()?;
    s.w.forget(&h("a2"), &h("f1"), 100.0, 200.0)?;
    s.w.commit()?;
    let p1 = s.r.posts(&PostQuery {
        hashes: hash_texts(&["p1"]),
        ..Default::default()
    })?;
    assert_eq!(post_hashes(&p1), vec![("p1".to_owned(), "p1".to_owned())]);
    assert_eq!((p1[0].last_updated, p1[0].amended), (10.0, false));
    assert!(s.w.amends_of(&h("p1"))?.is_empty());
    // Forgetting an original removes the post, from the totals by type too.
    let of_type = |post_type: &str| PostQuery {
        types: strings(&[post_type]),
        ..Default::default()
    };
    assert_eq!(s.r.count_posts(&of_type("blog"))?, 1);
    s.w.begin()?;
    s.w.forget(&h("p2"), &h("f1"), 100.0, 200.0)?;
    s.w.commit()?;
    assert_eq!(s.r.count_posts(&PostQuery::default())?, 2);
    assert_eq!(s.r.count_posts(&of_type("blog"))?, 0);
    assert_eq!(s.r.count_posts(&of_type("note"))?, 2);
    Ok(())
}

fn add_element(
    s: &mut Store,
    hash: &str,
    owner: &str,
    key: &str,
    time: f64,
    content: Value,
) -> Result<()> {
    let mut m = message(hash, "AGGREGATE", owner, time);
    m.content_key = Some(key.to_owned());
    s.w.begin()?;
    s.w.insert_message(&m)?;
    s.w.add_aggregate_element(&NewAggregateElement {
        item_hash: h(hash),
        owner: owner.into(),
        key: key.into(),
        content: content.to_string(),
        creation_time: time,
    })?;
    s.w.set_status(&h(hash), MessageStatus::Processed, time)?;
    s.w.commit()
}

fn aggregates_merge(s: &mut Store) -> Result<()> {
    assert_eq!(s.w.aggregate_value("0xA", "profile")?, None);
    // Out of order: the merge follows content time, not arrival.
    add_element(
        s,
        "e3",
        "0xA",
        "profile",
        3.0,
        json!({"d": 4, "a": {"z": 0}}),
    )?;
    add_element(
        s,
        "e2",
        "0xA",
        "profile",
        2.0,
        json!({"a": {"y": 2}, "b": null}),
    )?;
    add_element(
        s,
        "e1",
        "0xA",
        "profile",
        1.0,
        json!({"a": {"x": 1}, "b": 1, "c": 1}),
    )?;
    // Not an object: kept as an element, ignored by the merge.
    add_element(s, "e4", "0xA", "profile", 4.0, json!([1, 2]))?;
    let aggs = s.r.aggregates_of("0xA", &[])?;
    assert_eq!(aggs.len(), 1);
    // Shallow, later wins, null kept, keys in order of first appearance.
    assert_eq!(aggs[0].content, r#"{"a":{"z":0},"b":null,"c":1,"d":4}"#);
    assert_eq!((aggs[0].created, aggs[0].last_updated), (1.0, 4.0));
    assert_eq!(
        (
            name(&aggs[0].original_item_hash).as_str(),
            name(&aggs[0].last_update_item_hash).as_str()
        ),
        ("e1", "e4")
    );
    assert_eq!(
        s.w.aggregate_value("0xA", "profile")?,
        Some(json!({"a": {"z": 0}, "b": null, "c": 1, "d": 4}))
    );
    assert_eq!(
        names(&s.w.aggregate_element_hashes("0xA", "profile")?),
        strings(&["e1", "e2", "e3", "e4"])
    );
    // Forgetting an element rebuilds from those left; the last one deletes the aggregate.
    s.w.begin()?;
    s.w.forget(&h("e3"), &h("f"), 10.0, 20.0)?;
    s.w.commit()?;
    assert_eq!(
        s.r.aggregates_of("0xA", &[])?[0].content,
        r#"{"a":{"y":2},"b":null,"c":1}"#
    );
    let with_key = AggregateQuery {
        keys: strings(&["profile"]),
        ..Default::default()
    };
    assert_eq!(s.r.count_aggregates(&with_key)?, 1);
    for hash in ["e1", "e2", "e4"] {
        s.w.begin()?;
        s.w.forget(&h(hash), &h("f"), 10.0, 20.0)?;
        s.w.commit()?;
    }
    assert!(s.r.aggregates_of("0xA", &[])?.is_empty());
    assert_eq!(s.r.count_aggregates(&with_key)?, 0);
    assert!(s.w.aggregate_element_hashes("0xA", "profile")?.is_empty());
    assert_eq!(s.w.aggregate_value("0xA", "profile")?, None);
    // Rebuilding a key with no elements is harmless.
    s.w.begin()?;
    s.w.rebuild_aggregate("0xA", "none")?;
    s.w.commit()?;
    Ok(())
}

fn aggregate_listing(s: &mut Store) -> Result<()> {
    add_element(s, "a1", "0xA", "profile", 1.0, json!({"n": 1}))?;
    add_element(s, "a2", "0xA", "settings", 5.0, json!({"n": 2}))?;
    add_element(s, "b1", "0xB", "profile", 3.0, json!({"n": 3}))?;
    add_element(s, "a3", "0xA", "profile", 7.0, json!({"m": 4}))?;
    let keys = |v: Vec<AggregateRecord>| -> Vec<(String, String)> {
        v.into_iter().map(|a| (a.owner, a.key)).collect()
    };
    let pair = |o: &str, k: &str| (o.to_owned(), k.to_owned());
    assert_eq!(
        keys(s.r.aggregates_of("0xA", &[])?),
        vec![pair("0xA", "profile"), pair("0xA", "settings")]
    );
    assert_eq!(
        keys(s.r.aggregates_of("0xA", &strings(&["settings", "nope"]))?),
        vec![pair("0xA", "settings")]
    );
    assert!(s.r.aggregates_of("0xC", &[])?.is_empty());
    // By last update (default) or creation, either way.
    assert_eq!(
        keys(s.r.aggregates(&AggregateQuery::default())?),
        vec![
            pair("0xA", "profile"),
            pair("0xA", "settings"),
            pair("0xB", "profile")
        ]
    );
    assert_eq!(
        keys(s.r.aggregates(&AggregateQuery {
            sort_order: SortOrder::Ascending,
            ..Default::default()
        })?),
        vec![
            pair("0xB", "profile"),
            pair("0xA", "settings"),
            pair("0xA", "profile")
        ]
    );
    assert_eq!(
        keys(s.r.aggregates(&AggregateQuery {
            sort_by_creation: true,
            sort_order: SortOrder::Ascending,
            ..Default::default()
        })?),
        vec![
            pair("0xA", "profile"),
            pair("0xB", "profile"),
            pair("0xA", "settings")
        ]
    );
    let profiles = AggregateQuery {
        keys: strings(&["profile"]),
        limit: 1,
        offset: 1,
        ..Default::default()
    };
    assert_eq!(
        keys(s.r.aggregates(&profiles)?),
        vec![pair("0xB", "profile")]
    );
    assert_eq!(s.r.count_aggregates(&profiles)?, 2);
    let of_a = AggregateQuery {
        addresses: strings(&["0xA"]),
        ..Default::default()
    };
    assert_eq!(s.r.count_aggregates(&of_a)?, 2);
    assert_eq!(s.r.count_aggregates(&AggregateQuery::default())?, 3);
    let profile = &s.r.aggregates_of("0xA", &strings(&["profile"]))?[0];
    assert_eq!(profile.content, r#"{"n":1,"m":4}"#);
    assert_eq!((profile.created, profile.last_updated), (1.0, 7.0));
    Ok(())
}

fn journal_position_commits_with_its_transaction(s: &mut Store) -> Result<()> {
    assert_eq!(s.w.journal_position()?, 0, "none before the first record");
    s.w.begin()?;
    s.w.set_journal_position(41)?;
    s.w.rollback()?;
    assert_eq!(
        s.w.journal_position()?,
        0,
        "rolled back with its transaction"
    );
    let m = message("journaled", "POST", "0xA", 1.0);
    s.w.begin()?;
    s.w.insert_message(&m)?;
    s.w.set_status(
        &m.record.envelope.item_hash,
        MessageStatus::Processed,
        m.record.reception_time,
    )?;
    s.w.set_journal_position(42)?;
    s.w.commit()?;
    s.reopen();
    assert_eq!(s.w.journal_position()?, 42);
    s.w.begin()?;
    s.w.set_journal_position(u64::MAX - 1)?;
    s.w.commit()?;
    assert_eq!(s.w.journal_position()?, u64::MAX - 1);
    Ok(())
}

fn sync_log_order_and_epoch(s: &mut Store) -> Result<()> {
    let empty = s.r.sync_log(0, 10, usize::MAX)?;
    assert!(empty.messages.is_empty());
    assert!(!empty.epoch.is_empty());
    // Reception order, not message time: "late" was received first.
    for (hash, time) in [("late", 9.0), ("early", 1.0), ("mid", 5.0)] {
        add(s, &message(hash, "POST", "0xA", time))?;
    }
    let page = s.r.sync_log(0, 10, usize::MAX)?;
    assert_eq!(page.epoch, empty.epoch);
    let seqs: Vec<u64> = page.messages.iter().map(|(seq, _)| *seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let order: Vec<String> = page
        .messages
        .iter()
        .map(|(_, m)| name(&m.envelope.item_hash))
        .collect();
    assert_eq!(order, ["late", "early", "mid"]);
    // A byte budget ends the page early, after at least one message.
    let size = |m: &raleph_db::MessageRecord| {
        m.envelope.item_content.as_ref().map_or(0, String::len) + m.content.len()
    };
    assert_eq!(s.r.sync_log(0, 10, 1)?.messages.len(), 1);
    let two = size(&page.messages[0].1) + size(&page.messages[1].1);
    assert_eq!(s.r.sync_log(0, 10, two)?.messages.len(), 2);
    assert_eq!(s.r.sync_log(0, 10, two + 1)?.messages.len(), 2);
    // Paging resumes after the last sequence number seen.
    let first = s.r.sync_log(0, 2, usize::MAX)?;
    assert_eq!(first.messages.len(), 2);
    let rest = s.r.sync_log(first.messages[1].0, 10, usize::MAX)?;
    assert_eq!(
        hashes(
            &rest
                .messages
                .iter()
                .map(|(_, m)| m.clone())
                .collect::<Vec<_>>()
        ),
        ["mid"]
    );
    // A forgotten newest message leaves a gap: its number is never given again, so a peer
    // that saw it still sees what comes next.
    let last_seq = seqs[2];
    s.w.begin()?;
    s.w.forget(&h("mid"), &h("f"), 10.0, 10.0)?;
    s.w.commit()?;
    s.reopen();
    add(s, &message("next", "POST", "0xA", 2.0))?;
    let after = s.r.sync_log(last_seq, 10, usize::MAX)?;
    assert_eq!(after.messages.len(), 1);
    assert_eq!(after.messages[0].1.envelope.item_hash, h("next"));
    assert!(after.messages[0].0 > last_seq);
    assert_eq!(after.epoch, empty.epoch, "the epoch survives a reopen");
    // The forgotten message takes a new place in the log, before "next".
    assert_eq!(after.forgotten.len(), 1);
    let (forgotten_seq, skeleton) = &after.forgotten[0];
    assert_eq!(skeleton.envelope.item_hash, h("mid"));
    assert_eq!(names(&skeleton.forgotten_by), ["f"]);
    assert!(*forgotten_seq > last_seq && *forgotten_seq < after.messages[0].0);
    // A page of one holds only the first of the two.
    let one = s.r.sync_log(last_seq, 1, usize::MAX)?;
    assert_eq!((one.messages.len(), one.forgotten.len()), (0, 1));

    // A skeleton synced from a peer: recorded once, and only for a message not held here.
    let mut foreign = skeleton.clone();
    foreign.envelope.item_hash = h("elsewhere");
    s.w.begin()?;
    assert!(s.w.record_forgotten(&foreign)?);
    assert!(!s.w.record_forgotten(&foreign)?);
    let mut held = skeleton.clone();
    held.envelope.item_hash = h("next");
    assert!(!s.w.record_forgotten(&held)?);
    s.w.commit()?;
    assert_eq!(s.w.status(&h("elsewhere"))?, Some(MessageStatus::Forgotten));
    assert_eq!(s.w.status(&h("next"))?, Some(MessageStatus::Processed));
    let recorded = s.r.forgotten(&h("elsewhere"))?.expect("skeleton");
    assert_eq!(names(&recorded.forgotten_by), ["f"]);
    // And it is passed on, further down the log.
    let tail = s.r.sync_log(after.messages[0].0, 10, usize::MAX)?;
    assert_eq!(tail.forgotten.len(), 1);
    assert_eq!(tail.forgotten[0].1.envelope.item_hash, h("elsewhere"));

    // What a key FORGET and a disproved skeleton ask of the store.
    assert_eq!(names(&s.w.forgotten_by(&h("elsewhere"))?), ["f"]);
    assert!(s.w.forgotten_by(&h("next"))?.is_empty());
    assert_eq!(
        s.w.message_content(&h("next"))?
            .map(|c| c["address"].clone()),
        Some(json!("0xA"))
    );
    assert_eq!(s.w.message_content(&h("elsewhere"))?, None);
    let mut element = skeleton.clone();
    element.envelope.item_hash = h("element");
    element.envelope.message_type = MessageType::Aggregate;
    element.owner = "0xOwner".into();
    element.forgotten_by = vec![h("fk")];
    s.w.begin()?;
    assert!(s.w.record_forgotten(&element)?);
    s.w.commit()?;
    assert!(s.w.forgot_aggregates_of("0xOwner", &h("fk"))?);
    assert!(!s.w.forgot_aggregates_of("0xOwner", &h("f"))?, "a POST was");
    assert!(!s.w.forgot_aggregates_of("0xOther", &h("fk"))?);
    assert!(
        !s.w.forgot_aggregates_of("0xOwner", &h("k"))?,
        "whole hashes only"
    );
    s.w.begin()?;
    s.w.unforget(&h("element"))?;
    s.w.commit()?;
    assert_eq!(s.w.status(&h("element"))?, None);
    assert!(s.r.forgotten(&h("element"))?.is_none());
    assert!(!s.w.forgot_aggregates_of("0xOwner", &h("fk"))?);
    Ok(())
}

fn forget_messages(s: &mut Store) -> Result<()> {
    let mut m1 = message("m1", "POST", "0xA", 1.0);
    m1.owner = "0xO".into();
    m1.payment_type = Some("hold".into());
    m1.tags = strings(&["t"]);
    m1.record.size = 42;
    add(s, &m1)?;
    let mut m2 = message("m2", "STORE", "0xB", 2.0);
    m2.record.envelope.chain = Chain::Sol;
    m2.record.envelope.channel = None;
    m2.record.envelope.signature = None;
    add(s, &m2)?;
    add(s, &message("m3", "POST", "0xA", 3.0))?;
    let in_channel = MessageQuery {
        channels: strings(&["TEST"]),
        ..Default::default()
    };
    assert_eq!(s.r.count_messages(&in_channel)?, 2);
    s.w.begin()?;
    s.w.forget(&h("m1"), &h("f1"), 100.0, 200.0)?;
    s.w.forget(&h("m2"), &h("f2"), 50.0, 200.0)?;
    s.w.commit()?;
    // Totals follow: m1 was in the channel, m2 in none.
    assert_eq!(s.r.count_messages(&in_channel)?, 1);

    assert!(s.r.message(&h("m1"))?.is_none());
    assert_eq!(s.w.status(&h("m1"))?, Some(MessageStatus::Forgotten));
    assert_eq!(
        s.r.status(&h("m1"))?.map(|r| (r.status, r.reception_time)),
        Some((MessageStatus::Forgotten, 1.25))
    );
    let tagged = MessageQuery {
        tags: strings(&["t"]),
        ..Default::default()
    };
    assert_eq!(s.r.count_messages(&tagged)?, 0);
    let f = s.r.forgotten(&h("m1"))?.expect("skeleton");
    assert_eq!(
        (
            name(&f.envelope.item_hash).as_str(),
            f.envelope.message_type.as_str(),
            f.envelope.chain.as_str()
        ),
        ("m1", "POST", "ETH")
    );
    assert_eq!(
        (
            f.envelope.sender.as_str(),
            f.owner.as_str(),
            f.envelope.signature.as_deref()
        ),
        ("0xA", "0xO", Some("sig-m1"))
    );
    assert_eq!(
        (f.envelope.item_type.as_str(), f.envelope.time, f.size),
        ("inline", 1.0, 42)
    );
    assert_eq!(
        (f.envelope.channel.as_deref(), f.payment_type.as_deref()),
        (Some("TEST"), Some("hold"))
    );
    assert_eq!((f.forgotten_at, f.reception_time), (100.0, 1.25));
    assert_eq!(names(&f.forgotten_by), strings(&["f1"]));
    let f2 = s.r.forgotten(&h("m2"))?.expect("skeleton");
    assert_eq!((f2.envelope.signature, f2.envelope.channel), (None, None));
    assert!(s.r.forgotten(&h("m3"))?.is_none());

    // Forgotten again by another FORGET: appended once.
    s.w.begin()?;
    s.w.append_forgotten_by(&h("m1"), &h("f3"))?;
    s.w.append_forgotten_by(&h("m1"), &h("f3"))?;
    s.w.append_forgotten_by(&h("m1"), &h("f1"))?;
    s.w.append_forgotten_by(&h("nope"), &h("f3"))?;
    s.w.commit()?;
    assert_eq!(
        s.r.forgotten(&h("m1"))?.map(|f| names(&f.forgotten_by)),
        Some(strings(&["f1", "f3"]))
    );

    // The list of forgotten messages: sorted by when they were forgotten.
    let list = |q: &MessageQuery| -> Result<Vec<String>> {
        Ok(s.r
            .forgotten_messages(q)?
            .into_iter()
            .map(|f| name(&f.envelope.item_hash))
            .collect())
    };
    assert_eq!(list(&MessageQuery::default())?, strings(&["m1", "m2"]));
    assert_eq!(list(&asc())?, strings(&["m2", "m1"]));
    let cases: Vec<(MessageQuery, Vec<&str>)> = vec![
        (
            MessageQuery {
                addresses: strings(&["0xB"]),
                ..asc()
            },
            vec!["m2"],
        ),
        (
            MessageQuery {
                owners: strings(&["0xO"]),
                ..asc()
            },
            vec!["m1"],
        ),
        (
            MessageQuery {
                hashes: hash_texts(&["m1", "m3"]),
                ..asc()
            },
            vec!["m1"],
        ),
        (
            MessageQuery {
                chains: strings(&["SOL"]),
                ..asc()
            },
            vec!["m2"],
        ),
        (
            MessageQuery {
                channels: strings(&["TEST"]),
                ..asc()
            },
            vec!["m1"],
        ),
        (
            MessageQuery {
                message_types: strings(&["STORE"]),
                ..asc()
            },
            vec!["m2"],
        ),
        (
            MessageQuery {
                start_date: Some(60.0),
                ..asc()
            },
            vec!["m1"],
        ),
        (
            MessageQuery {
                end_date: Some(100.0),
                ..asc()
            },
            vec!["m2"],
        ),
        (
            MessageQuery {
                limit: 1,
                offset: 1,
                ..asc()
            },
            vec!["m1"],
        ),
    ];
    for (query, expected) in &cases {
        assert_eq!(list(query)?, strings(expected), "{query:?}");
        let unpaged = MessageQuery {
            limit: 0,
            offset: 0,
            ..query.clone()
        };
        assert_eq!(
            s.r.count_forgotten_messages(query)?,
            list(&unpaged)?.len() as u64
        );
    }
    // A forgotten message cannot be queued again.
    s.w.begin()?;
    assert_eq!(
        s.w.enqueue_pending(&pending("m1", Some("s"), 1.0))?,
        EnqueueOutcome::Known(MessageStatus::Forgotten)
    );
    s.w.commit()?;
    Ok(())
}

fn file(sha256: &str, size: u64, cid_v1: Option<&str>) -> FileRecord {
    FileRecord {
        sha256: sha256.into(),
        size,
        cid_v0: format!("Qm{sha256}"),
        cid_v1: cid_v1.map(str::to_owned),
        created: 1.0,
    }
}

fn store_message(
    s: &mut Store,
    hash: &str,
    owner: &str,
    file_hash: &str,
    tag: Option<&str>,
    time: f64,
) -> Result<()> {
    let mut m = message(hash, "STORE", owner, time);
    m.content_item_hash = Some(file_hash.to_owned());
    m.content_ref = tag.map(str::to_owned);
    s.w.begin()?;
    s.w.insert_message(&m)?;
    s.w.insert_file_pin(&NewFilePin {
        message_hash: h(hash),
        file_hash: file_hash.into(),
        owner: owner.into(),
        // A STORE's tag is its own item hash, or the one of the STORE it updates.
        tag: h(tag.unwrap_or(hash)).to_string(),
        created: time,
    })?;
    s.w.set_status(&h(hash), MessageStatus::Processed, time)?;
    s.w.commit()
}

/// Far in the future, so that a grace pin holds whatever the clock says.
const FUTURE: f64 = 1e12;
/// The time pin counts are asked at: before `FUTURE`.
const NOW: f64 = 1e9;

fn files_pins_and_tags(s: &mut Store) -> Result<()> {
    s.w.begin()?;
    s.w.record_file(&file("s1", 100, None), Some(FUTURE))?;
    // Recorded again with its CIDv1: kept; recorded again without: still kept.
    s.w.record_file(&file("s1", 100, Some("bafy1")), None)?;
    s.w.record_file(&file("s1", 100, None), None)?;
    s.w.record_file(&file("s2", 7, None), None)?;
    s.w.commit()?;
    // Each file once, however often recorded.
    assert_eq!(s.r.stored_file_bytes()?, 107);
    let s1 = file("s1", 100, Some("bafy1"));
    for id in ["s1", "Qms1", "bafy1"] {
        assert_eq!(s.r.file(id)?, Some(s1.clone()), "{id}");
    }
    assert_eq!(s.r.file("nope")?, None);
    assert!(s.w.file_known("s1")?);
    assert!(!s.w.file_known("Qms1")?);
    // The grace pin counts as a pin while it lasts, and no longer.
    assert_eq!(s.r.file_pin_count(&s1, NOW)?, 1);
    assert_eq!(s.r.file_pin_count(&s1, FUTURE)?, 0);
    assert_eq!(s.r.file_pin_count(&file("s2", 7, None), NOW)?, 0);

    // A STORE pins by CID: its grace pin has done its job.
    store_message(s, "st1", "0xA", "Qms1", None, 10.0)?;
    assert_eq!(s.r.file_pin_count(&s1, NOW)?, 1);
    assert_eq!(
        s.w.file_pin(&h("st1"))?,
        Some(FilePinFacts {
            file_hash: "Qms1".into(),
            owner: "0xA".into(),
            tag: h("st1").to_string(),
            is_update: false,
        })
    );
    assert_eq!(s.w.file_pin(&h("nope"))?, None);
    assert!(s.w.file_tag_exists(h("st1").as_str())?);
    assert!(!s.w.file_tag_exists(h("nope").as_str())?);
    // An update of st1's tag points the tag to another file.
    store_message(s, "st2", "0xA", "s2", Some("st1"), 20.0)?;
    store_message(s, "st3", "0xB", "unknown-file", None, 30.0)?;
    assert!(s.w.file_pin(&h("st2"))?.is_some_and(|p| p.is_update));
    assert_eq!(
        s.r.file_of_message(&h("st1"))?,
        Some(PinnedFile {
            message_hash: h("st1"),
            file_hash: "Qms1".into(),
            owner: "0xA".into(),
            tag: h("st1").to_string(),
            size: Some(100),
        })
    );
    assert_eq!(
        s.r.file_of_tag(h("st1").as_str())?
            .map(|f| (f.message_hash, f.file_hash, f.size)),
        Some((h("st2"), "s2".into(), Some(7)))
    );
    assert_eq!(s.r.file_of_message(&h("st3"))?.map(|f| f.size), Some(None));
    assert_eq!(s.r.file_of_message(&h("nope"))?, None);
    assert_eq!(s.r.file_of_tag(h("nope").as_str())?, None);

    // Volumes: by STORE message, or by tag when use_latest.
    assert_eq!(s.w.volume_file_size(h("st1").as_str(), false)?, Some(100));
    assert_eq!(s.w.volume_file_size(h("st1").as_str(), true)?, Some(7));
    assert_eq!(s.w.volume_file_size(h("st2").as_str(), true)?, Some(7));
    assert_eq!(s.w.volume_file_size(h("st3").as_str(), false)?, None);
    assert_eq!(s.w.volume_file_size(h("nope").as_str(), true)?, None);

    // An address's files, newest first by default, with totals.
    let (files, total, size) = s.r.address_files("0xA", 0, 0, SortOrder::Descending)?;
    let listed: Vec<_> = files
        .iter()
        .map(|f| (f.item_hash.clone(), f.file_hash.as_str(), f.size, f.created))
        .collect();
    assert_eq!(
        listed,
        [(h("st2"), "s2", 7, 20.0), (h("st1"), "Qms1", 100, 10.0)]
    );
    assert_eq!((total, size), (2, 107));
    let (files, total, size) = s.r.address_files("0xA", 1, 1, SortOrder::Descending)?;
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].item_hash, h("st1"));
    assert_eq!((total, size), (2, 107));
    let (files, _, _) = s.r.address_files("0xA", 1, 0, SortOrder::Ascending)?;
    assert_eq!(files[0].item_hash, h("st1"));
    let (files, total, size) = s.r.address_files("0xB", 10, 0, SortOrder::Descending)?;
    assert_eq!((files.len(), files[0].size, total, size), (1, 0, 1, 0));
    let (files, total, size) = s.r.address_files("0xNone", 10, 0, SortOrder::Descending)?;
    assert_eq!((files.len(), total, size), (0, 0, 0));

    // Forgetting a STORE: the tag falls back, the file gets a grace pin.
    s.w.begin()?;
    s.w.forget(&h("st2"), &h("f"), 100.0, 500.0)?;
    s.w.commit()?;
    assert_eq!(
        s.r.file_of_tag(h("st1").as_str())?.map(|f| f.message_hash),
        Some(h("st1"))
    );
    assert_eq!(s.w.file_pin(&h("st2"))?, None);
    Ok(())
}

fn garbage_collection(s: &mut Store) -> Result<()> {
    s.w.begin()?;
    // Unclaimed uploads with grace pins until 150 and 250; a file never pinned.
    s.w.record_file(&file("g1", 1, None), Some(150.0))?;
    s.w.record_file(&file("g2", 2, None), Some(250.0))?;
    // Recorded again with an earlier grace: the later one holds.
    s.w.record_file(&file("g2", 2, None), Some(140.0))?;
    s.w.record_file(&file("g0", 3, None), None)?;
    // A file held as a message's content, one held by a STORE (by its CIDv1).
    // (A message's content file is named by the message's item hash.)
    s.w.record_file(&file(h("c1").as_str(), 4, None), None)?;
    s.w.record_file(&file("p1", 5, Some("bafyp1")), Some(120.0))?;
    s.w.commit()?;
    let mut content = message("c1", "POST", "0xA", 1.0);
    content.record.envelope.item_type = ItemType::Storage;
    content.record.envelope.item_content = None;
    add(s, &content)?;
    store_message(s, "st", "0xA", "bafyp1", None, 2.0)?;
    // Pins of every kind keep a file; the grace pin of a claimed file is gone.
    assert_eq!(s.r.file_pin_count(&file("p1", 5, Some("bafyp1")), NOW)?, 1);
    assert_eq!(
        s.r.file_pin_count(&file(h("c1").as_str(), 4, None), NOW)?,
        1
    );

    s.w.begin()?;
    assert_eq!(s.w.collect_unpinned_files(100.0)?, strings(&["g0"]));
    s.w.commit()?;
    assert!(!s.w.file_known("g0")?);
    assert!(s.r.file("Qmg0")?.is_none());
    s.w.begin()?;
    assert!(s.w.collect_unpinned_files(100.0)?.is_empty());
    // A grace pin is exclusive of its end.
    assert_eq!(s.w.collect_unpinned_files(150.0)?, strings(&["g1"]));
    s.w.commit()?;

    // Forgetting what pinned a file gives it a grace pin, then it goes with the others.
    s.w.begin()?;
    s.w.forget(&h("st"), &h("f"), 200.0, 300.0)?;
    s.w.forget(&h("c1"), &h("f"), 200.0, 300.0)?;
    s.w.commit()?;
    s.w.begin()?;
    assert_eq!(s.w.collect_unpinned_files(260.0)?, strings(&["g2"]));
    assert!(s.w.collect_unpinned_files(299.0)?.is_empty());
    assert_eq!(
        s.w.collect_unpinned_files(300.0)?,
        [h("c1").to_string(), "p1".to_owned()]
    );
    s.w.commit()?;
    // A longer grace pin wins over a shorter one.
    s.w.begin()?;
    s.w.record_file(&file("g3", 1, None), Some(500.0))?;
    s.w.record_file(&file("g3", 1, None), Some(400.0))?;
    assert!(s.w.collect_unpinned_files(450.0)?.is_empty());
    assert_eq!(s.w.collect_unpinned_files(500.0)?, strings(&["g3"]));
    s.w.commit()?;

    // A file two STOREs pin: releasing one pin gives no grace pin while the other holds it;
    // an upload of a file a message already holds gets none either.
    s.w.begin()?;
    s.w.record_file(&file("two", 2, None), None)?;
    s.w.commit()?;
    store_message(s, "sa", "0xA", "two", None, 1.0)?;
    store_message(s, "sb", "0xB", "Qmtwo", None, 2.0)?;
    s.w.begin()?;
    s.w.record_file(&file("two", 2, None), Some(FUTURE))?;
    s.w.forget(&h("sa"), &h("f"), 600.0, FUTURE)?;
    s.w.commit()?;
    assert_eq!(s.r.file_pin_count(&file("two", 2, None), NOW)?, 1);
    s.w.begin()?;
    s.w.forget(&h("sb"), &h("f"), 600.0, FUTURE)?;
    s.w.commit()?;
    // The last pin released: a grace pin now counts.
    assert_eq!(s.r.file_pin_count(&file("two", 2, None), NOW)?, 1);
    s.w.begin()?;
    assert!(s.w.collect_unpinned_files(FUTURE - 1.0)?.is_empty());
    assert_eq!(s.w.collect_unpinned_files(FUTURE)?, strings(&["two"]));
    s.w.commit()?;
    Ok(())
}

fn vms_and_volumes(s: &mut Store) -> Result<()> {
    store_message(s, "st1", "0xA", "f1", None, 1.0)?;
    store_message(s, "st2", "0xA", "f2", Some("st1"), 2.0)?;
    store_message(s, "st3", "0xA", "f3", None, 3.0)?;
    let vm = |hash: &str, replaces: Option<&str>, refs: &[&str]| NewVm {
        item_hash: h(hash),
        owner: "0xA".into(),
        vm_type: "PROGRAM".into(),
        allow_amend: replaces.is_none(),
        replaces: replaces.map(|r| h(r).to_string()),
        created: 5.0,
        volume_refs: refs.iter().map(|r| h(r).to_string()).collect(),
    };
    for (hash, replaces, refs) in [
        ("vm1", None, &["st1", "st1", "other"][..]),
        ("vm2", Some("vm1"), &[][..]),
    ] {
        let mut m = message(hash, "PROGRAM", "0xA", 5.0);
        m.content_ref = replaces.map(str::to_owned);
        s.w.begin()?;
        s.w.insert_message(&m)?;
        s.w.insert_vm(&vm(hash, replaces, refs))?;
        s.w.set_status(&h(hash), MessageStatus::Processed, 5.0)?;
        s.w.commit()?;
    }
    assert_eq!(
        s.w.vm_facts(&h("vm1"))?,
        Some(VmFacts {
            owner: "0xA".into(),
            allow_amend: true,
            replaces: None,
        })
    );
    assert_eq!(
        s.w.vm_facts(&h("vm2"))?,
        Some(VmFacts {
            owner: "0xA".into(),
            allow_amend: false,
            replaces: Some(h("vm1").to_string()),
        })
    );
    assert_eq!(s.w.vm_facts(&h("nope"))?, None);
    // Used directly, or through the tag it updates.
    assert!(s.w.store_used_by_vm(h("st1").as_str())?);
    assert!(s.w.store_used_by_vm(h("st2").as_str())?);
    assert!(!s.w.store_used_by_vm(h("st3").as_str())?);
    assert!(s.w.store_used_by_vm(h("other").as_str())?);
    assert!(!s.w.store_used_by_vm(h("nope").as_str())?);
    s.w.begin()?;
    s.w.forget(&h("vm1"), &h("f"), 10.0, 20.0)?;
    s.w.commit()?;
    assert_eq!(s.w.vm_facts(&h("vm1"))?, None);
    assert!(!s.w.store_used_by_vm(h("st1").as_str())?);
    assert!(!s.w.store_used_by_vm(h("st2").as_str())?);
    // A duplicate VM is an error, not a panic.
    s.w.begin()?;
    assert!(s.w.insert_vm(&vm("vm2", None, &[])).is_err());
    s.w.rollback()?;
    Ok(())
}

fn address_stats_and_channels(s: &mut Store) -> Result<()> {
    assert!(s.r.address_stats(&[])?.is_empty());
    assert!(s.r.channels()?.is_empty());
    let messages = [
        ("1", "POST", "0xb", Some("c1")),
        ("2", "POST", "0xb", Some("C1")),
        ("3", "STORE", "0xb", None),
        ("4", "AGGREGATE", "0xA", Some("_x")),
        ("5", "FORGET", "0xA", Some("C1")),
        ("6", "PROGRAM", "0xC", Some("Z")),
        ("7", "INSTANCE", "0xC", Some("a")),
    ];
    for (hash, kind, sender, channel) in messages {
        let mut m = message(hash, kind, sender, 1.0);
        m.record.envelope.channel = channel.map(str::to_owned);
        add(s, &m)?;
    }
    let stats = s.r.address_stats(&[])?;
    // Sorted bytewise by address.
    let addresses: Vec<_> = stats.iter().map(|a| a.address.as_str()).collect();
    assert_eq!(addresses, ["0xA", "0xC", "0xb"]);
    assert_eq!(
        stats[2],
        AddressStats {
            address: "0xb".into(),
            post: 2,
            store: 1,
            ..Default::default()
        }
    );
    assert_eq!(
        (stats[0].aggregate, stats[0].forget, stats[0].total()),
        (1, 1, 2)
    );
    assert_eq!((stats[1].program, stats[1].instance), (1, 1));
    let some = s.r.address_stats(&strings(&["0xC", "0xnone"]))?;
    assert_eq!(some.len(), 1);
    assert_eq!(some[0].total(), 2);
    // Distinct, sorted bytewise, no null.
    assert_eq!(s.r.channels()?, strings(&["C1", "Z", "_x", "a", "c1"]));
    Ok(())
}

fn transactions_and_savepoints(s: &mut Store) -> Result<()> {
    // A rolled back transaction leaves nothing.
    s.w.begin()?;
    s.w.insert_message(&message("gone", "POST", "0xA", 1.0))?;
    s.w.rollback()?;
    assert!(s.r.message(&h("gone"))?.is_none());
    // Rollback outside a transaction is harmless.
    s.w.rollback()?;

    s.w.begin()?;
    s.w.savepoint()?;
    s.w.insert_message(&message("undone", "POST", "0xA", 1.0))?;
    s.w.rollback_savepoint()?;
    s.w.savepoint()?;
    s.w.insert_message(&message("kept", "POST", "0xA", 1.0))?;
    s.w.release_savepoint()?;
    // A failed statement is undone by the savepoint; the transaction goes on.
    s.w.savepoint()?;
    assert!(
        s.w.insert_message(&message("kept", "POST", "0xA", 1.0))
            .is_err()
    );
    s.w.rollback_savepoint()?;
    s.w.savepoint()?;
    s.w.insert_message(&message("after", "POST", "0xA", 1.0))?;
    s.w.release_savepoint()?;
    s.w.commit()?;
    assert!(s.r.message(&h("undone"))?.is_none());
    assert!(s.r.message(&h("kept"))?.is_some());
    assert!(s.r.message(&h("after"))?.is_some());

    // Reads outside a transaction see only committed data.
    s.w.begin()?;
    s.w.insert_message(&message("uncommitted", "POST", "0xA", 1.0))?;
    assert!(s.r.message(&h("uncommitted"))?.is_none());
    s.w.commit()?;
    assert!(s.r.message(&h("uncommitted"))?.is_some());
    // Commit without a transaction is an error.
    assert!(s.w.commit().is_err());
    Ok(())
}

fn reopen_keeps_data(s: &mut Store) -> Result<()> {
    add(s, &message("m1", "POST", "0xA", 1.0))?;
    s.w.begin()?;
    s.w.enqueue_pending(&pending("p", Some("s"), 1.0))?;
    s.w.commit()?;
    s.reopen();
    s.reopen();
    assert!(s.r.message(&h("m1"))?.is_some());
    assert_eq!(s.w.due_pending(10.0, 10)?.len(), 1);
    add(s, &message("m2", "POST", "0xA", 2.0))?;
    assert_eq!(s.r.count_messages(&MessageQuery::default())?, 2);
    Ok(())
}

fn forget_derived_state(s: &mut Store) -> Result<()> {
    // A message whose content is a file: the file is held, then released with a grace pin.
    s.w.begin()?;
    s.w.record_file(&file(h("big").as_str(), 9, None), None)?;
    s.w.commit()?;
    let mut m = message("big", "POST", "0xA", 1.0);
    m.record.envelope.item_type = ItemType::Storage;
    m.record.envelope.item_content = None;
    add(s, &m)?;
    s.w.begin()?;
    assert!(s.w.collect_unpinned_files(10.0)?.is_empty());
    s.w.forget(&h("big"), &h("f"), 20.0, 30.0)?;
    assert!(s.w.collect_unpinned_files(29.0)?.is_empty());
    assert_eq!(s.w.collect_unpinned_files(30.0)?, [h("big").to_string()]);
    s.w.commit()?;
    // Forgetting an unknown hash changes nothing.
    s.w.begin()?;
    s.w.forget(&h("unknown"), &h("f"), 20.0, 30.0)?;
    s.w.commit()?;
    assert!(s.r.forgotten(&h("unknown"))?.is_none());
    assert!(s.r.status(&h("unknown"))?.is_none());
    Ok(())
}

/// Tags: several per message (listed once), with other filters, statuses, dates, cursors
/// and pages in both orders; totals.
fn tags_lists_and_totals(s: &mut Store) -> Result<()> {
    // (hash, time, sender, type, tags): ties on time, repeated tags in one message.
    let rows: &[(&str, f64, &str, &str, &[&str])] = &[
        ("a1", 1.0, "0xA", "POST", &["x", "y"]),
        ("a2", 2.0, "0xB", "POST", &["y"]),
        ("a3", 2.0, "0xA", "AGGREGATE", &["x", "x", "z"]),
        ("A4", 2.0, "0xB", "POST", &["x"]),
        ("a5", 3.0, "0xA", "POST", &[]),
        ("a6", 4.0, "0xB", "STORE", &["z", "y", "x"]),
        ("a7", 5.0, "0xA", "POST", &["y"]),
    ];
    for (hash, time, sender, kind, tags) in rows {
        let mut m = message(hash, kind, sender, *time);
        m.tags = strings(tags);
        m.record.envelope.channel = Some(if *sender == "0xA" { "CA" } else { "CB" }.into());
        add(s, &m)?;
    }
    let check = |s: &Store, q: MessageQuery, expected: &[&str]| -> Result<()> {
        assert_eq!(listed(s, &q)?, strings(expected), "{q:?}");
        let unpaged = MessageQuery {
            limit: 0,
            offset: 0,
            cursor: None,
            ..q.clone()
        };
        let total = listed(s, &unpaged)?.len() as u64;
        assert_eq!(s.r.count_messages(&unpaged)?, total, "{q:?}");
        Ok(())
    };
    let tagged = |tags: &[&str]| MessageQuery {
        tags: strings(tags),
        ..asc()
    };
    check(s, tagged(&["x"]), &["a1", "A4", "a3", "a6"])?;
    check(
        s,
        tagged(&["x", "y"]),
        &["a1", "A4", "a2", "a3", "a6", "a7"],
    )?;
    check(
        s,
        tagged(&["y", "x", "y"]),
        &["a1", "A4", "a2", "a3", "a6", "a7"],
    )?;
    check(s, tagged(&["z", "nope"]), &["a3", "a6"])?;
    check(s, tagged(&["nope"]), &[])?;
    check(
        s,
        MessageQuery {
            sort_order: SortOrder::Descending,
            ..tagged(&["x", "y"])
        },
        &["a7", "a6", "A4", "a2", "a3", "a1"],
    )?;
    // With the filters that go first and those applied to the tag's rows.
    check(
        s,
        MessageQuery {
            addresses: strings(&["0xA"]),
            ..tagged(&["x", "y"])
        },
        &["a1", "a3", "a7"],
    )?;
    check(
        s,
        MessageQuery {
            channels: strings(&["CB"]),
            ..tagged(&["y"])
        },
        &["a2", "a6"],
    )?;
    check(
        s,
        MessageQuery {
            message_types: strings(&["POST"]),
            ..tagged(&["x", "y"])
        },
        &["a1", "A4", "a2", "a7"],
    )?;
    check(
        s,
        MessageQuery {
            start_date: Some(2.0),
            end_date: Some(5.0),
            ..tagged(&["x", "y"])
        },
        &["A4", "a2", "a3", "a6"],
    )?;
    // Pages by offset and by cursor walk the same list, in both orders.
    for order in [SortOrder::Ascending, SortOrder::Descending] {
        for tags in [&["x", "y", "z"][..], &["x"][..], &["y", "z"][..]] {
            for extra in [None, Some("0xB")] {
                let base = MessageQuery {
                    tags: strings(tags),
                    addresses: extra.map(|a| vec![a.to_owned()]).unwrap_or_default(),
                    sort_order: order,
                    ..Default::default()
                };
                let all = listed(s, &base)?;
                for size in 1..=3 {
                    let mut by_offset = Vec::new();
                    let mut by_cursor = Vec::new();
                    let mut cursor = None;
                    for n in 0..10 {
                        by_offset.extend(listed(
                            s,
                            &MessageQuery {
                                limit: size,
                                offset: n * size,
                                ..base.clone()
                            },
                        )?);
                        let rows = s.r.messages(&MessageQuery {
                            limit: size,
                            cursor: cursor.clone(),
                            ..base.clone()
                        })?;
                        if let Some(last) = rows.last() {
                            cursor = Some(Cursor {
                                time: last.envelope.time,
                                item_hash: last.envelope.item_hash.to_string(),
                            });
                        }
                        by_cursor.extend(hashes(&rows));
                    }
                    assert_eq!(by_offset, all, "{base:?} by {size}");
                    assert_eq!(by_cursor, all, "{base:?} by {size}");
                }
            }
        }
    }
    // Statuses: `removing` alone, and with `processed`.
    s.w.begin()?;
    s.w.set_status(&h("a3"), MessageStatus::Removing, 9.0)?;
    s.w.commit()?;
    check(s, tagged(&["x", "z"]), &["a1", "A4", "a3", "a6"])?;
    check(
        s,
        MessageQuery {
            statuses: vec![MessageStatus::Processed],
            ..tagged(&["x", "z"])
        },
        &["a1", "A4", "a6"],
    )?;
    check(
        s,
        MessageQuery {
            statuses: vec![MessageStatus::Removing],
            ..tagged(&["x", "z"])
        },
        &["a3"],
    )?;
    check(
        s,
        MessageQuery {
            statuses: vec![MessageStatus::Processed, MessageStatus::Removing],
            ..tagged(&["x"])
        },
        &["a1", "A4", "a3", "a6"],
    )?;
    Ok(())
}

/// Forgetting a message removes its tag rows (and only its own); a copy with an earlier
/// time moves the message, and its place in tag lists, to that time.
fn tags_follow_forget_and_time(s: &mut Store) -> Result<()> {
    for (hash, time, tags) in [
        ("m1", 1.0, &["t", "u"][..]),
        ("m2", 2.0, &["t"][..]),
        ("m3", 3.0, &["u", "t", "t"][..]),
    ] {
        let mut m = message(hash, "POST", "0xA", time);
        m.tags = strings(tags);
        add(s, &m)?;
    }
    let tag = |t: &str| MessageQuery {
        tags: strings(&[t]),
        ..asc()
    };
    // A later time changes nothing; an earlier one moves the message and its tags.
    s.w.begin()?;
    s.w.keep_earliest_time(&h("m3"), 7.0)?;
    s.w.keep_earliest_time(&h("m3"), 0.5)?;
    s.w.keep_earliest_time(&h("unknown"), 0.1)?;
    s.w.commit()?;
    assert_eq!(s.r.message(&h("m3"))?.map(|m| m.envelope.time), Some(0.5));
    assert_eq!(listed(s, &tag("t"))?, strings(&["m3", "m1", "m2"]));
    assert_eq!(listed(s, &tag("u"))?, strings(&["m3", "m1"]));
    let after = MessageQuery {
        cursor: Some(Cursor {
            time: 0.5,
            item_hash: h("m3").to_string(),
        }),
        ..tag("t")
    };
    assert_eq!(listed(s, &after)?, strings(&["m1", "m2"]));
    assert_eq!(
        listed(
            s,
            &MessageQuery {
                end_date: Some(1.0),
                ..tag("t")
            }
        )?,
        strings(&["m3"])
    );

    s.w.begin()?;
    s.w.forget(&h("m1"), &h("f"), 10.0, 20.0)?;
    s.w.commit()?;
    assert_eq!(listed(s, &tag("t"))?, strings(&["m3", "m2"]));
    assert_eq!(listed(s, &tag("u"))?, strings(&["m3"]));
    assert_eq!(s.r.count_messages(&tag("t"))?, 2);
    assert_eq!(s.r.count_messages(&tag("u"))?, 1);
    s.w.begin()?;
    s.w.forget(&h("m3"), &h("f"), 10.0, 20.0)?;
    s.w.forget(&h("m2"), &h("f"), 10.0, 20.0)?;
    s.w.commit()?;
    for t in ["t", "u"] {
        assert!(listed(s, &tag(t))?.is_empty());
        assert_eq!(s.r.count_messages(&tag(t))?, 0);
        assert_eq!(
            s.r.count_messages(&MessageQuery {
                tags: strings(&[t, "v"]),
                ..Default::default()
            })?,
            0
        );
    }
    // The same hash indexed again (say, after a rollback) gets its tags back.
    let mut again = message("m2", "POST", "0xA", 2.0);
    again.tags = strings(&["t"]);
    s.w.begin()?;
    s.w.savepoint()?;
    s.w.insert_message(&again)?;
    s.w.rollback_savepoint()?;
    s.w.commit()?;
    assert!(listed(s, &tag("t"))?.is_empty());
    Ok(())
}

/// Random messages, tags, statuses, time moves and forgets, checked against a plain model of
/// the list: filters, both orders, pages by offset and by cursor, totals.
fn tags_against_a_model(s: &mut Store) -> Result<()> {
    struct Model {
        hash: String,
        time: f64,
        sender: &'static str,
        channel: &'static str,
        kind: &'static str,
        tags: Vec<String>,
        status: MessageStatus,
    }
    let mut seed: u64 = 0x7a95_0001_c0ff_ee11;
    let mut below = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let tag_names = ["t0", "t1", "T1", "t2", "t3"];
    let senders = ["0xA", "0xB", "0xC"];
    let channels = ["C1", "C2"];
    let kinds = ["POST", "AGGREGATE", "STORE"];
    let mut model: Vec<Model> = Vec::new();
    s.w.begin()?;
    for i in 0..160 {
        let hash = format!("{}{i:03}", ["h", "H", "_"][below(3) as usize]);
        let time = below(30) as f64 + if below(3) == 0 { 0.5 } else { 0.0 };
        let sender = senders[below(3) as usize];
        let channel = channels[below(2) as usize];
        let kind = kinds[below(3) as usize];
        let tags: Vec<String> = (0..below(4))
            .map(|_| tag_names[below(5) as usize].to_owned())
            .collect();
        let mut m = message(&hash, kind, sender, time);
        m.record.envelope.channel = Some(channel.into());
        m.tags = tags.clone();
        s.w.insert_message(&m)?;
        s.w.set_status(&h(&hash), MessageStatus::Processed, time)?;
        model.push(Model {
            hash,
            time,
            sender,
            channel,
            kind,
            tags,
            status: MessageStatus::Processed,
        });
    }
    let mut kept = Vec::new();
    for mut m in model {
        match below(10) {
            0 => {
                s.w.forget(&h(&m.hash), &h("f"), 100.0, 200.0)?;
                continue;
            }
            1 => {
                s.w.set_status(&h(&m.hash), MessageStatus::Removing, 50.0)?;
                m.status = MessageStatus::Removing;
            }
            2 => {
                let earlier = m.time - 1.0 - below(5) as f64;
                s.w.keep_earliest_time(&h(&m.hash), earlier)?;
                m.time = earlier;
            }
            _ => {}
        }
        kept.push(m);
    }
    s.w.commit()?;
    let model = kept;
    let mut cursor_checks = 0;
    for round in 0..400 {
        let pick = |below: &mut dyn FnMut(u64) -> u64, values: &[&str]| -> Vec<String> {
            values
                .iter()
                .filter(|_| below(3) == 0)
                .map(|v| (*v).to_owned())
                .collect()
        };
        let order = if below(2) == 0 {
            SortOrder::Ascending
        } else {
            SortOrder::Descending
        };
        let mut tags = pick(&mut below, &tag_names);
        if tags.is_empty() {
            tags.push(tag_names[below(5) as usize].to_owned());
        }
        if below(4) == 0 {
            tags.push(tags[0].clone());
        }
        let q = MessageQuery {
            tags,
            addresses: if below(4) == 0 {
                pick(&mut below, &senders)
            } else {
                vec![]
            },
            channels: if below(5) == 0 {
                pick(&mut below, &channels)
            } else {
                vec![]
            },
            message_types: if below(4) == 0 {
                pick(&mut below, &kinds)
            } else {
                vec![]
            },
            statuses: match below(5) {
                0 => vec![MessageStatus::Removing],
                1 => vec![MessageStatus::Processed],
                2 => vec![MessageStatus::Processed, MessageStatus::Removing],
                _ => vec![],
            },
            start_date: (below(4) == 0).then(|| below(30) as f64),
            end_date: (below(4) == 0).then(|| 5.0 + below(30) as f64),
            sort_order: order,
            ..Default::default()
        };
        let mut expected: Vec<&Model> = model
            .iter()
            .filter(|m| {
                q.tags.iter().any(|t| m.tags.contains(t))
                    && (q.addresses.is_empty() || q.addresses.iter().any(|a| a == m.sender))
                    && (q.channels.is_empty() || q.channels.iter().any(|c| c == m.channel))
                    && (q.message_types.is_empty() || q.message_types.iter().any(|k| k == m.kind))
                    && (q.statuses.is_empty() || q.statuses.contains(&m.status))
                    && q.start_date.is_none_or(|d| m.time >= d)
                    && q.end_date.is_none_or(|d| m.time < d)
            })
            .collect();
        expected.sort_by(|a, b| {
            let by_time = a.time.total_cmp(&b.time);
            let by_time = match order {
                SortOrder::Ascending => by_time,
                SortOrder::Descending => by_time.reverse(),
            };
            by_time.then_with(|| a.hash.as_bytes().cmp(b.hash.as_bytes()))
        });
        let expected: Vec<String> = expected.iter().map(|m| m.hash.clone()).collect();
        let what = format!("round {round}: {q:?}");
        assert_eq!(listed(s, &q)?, expected, "{what}");
        assert_eq!(s.r.count_messages(&q)?, expected.len() as u64, "{what}");
        let size = 1 + below(6);
        let offset = below(8) * size;
        assert_eq!(
            listed(
                s,
                &MessageQuery {
                    limit: size,
                    offset,
                    ..q.clone()
                }
            )?,
            expected
                .iter()
                .skip(offset as usize)
                .take(size as usize)
                .cloned()
                .collect::<Vec<_>>(),
            "{what} offset {offset} size {size}"
        );
        if let Some(from) = (!expected.is_empty()).then(|| below(expected.len() as u64) as usize) {
            let at = model
                .iter()
                .find(|m| m.hash == expected[from])
                .expect("listed");
            let cursor = Some(Cursor {
                time: at.time,
                item_hash: h(&at.hash).to_string(),
            });
            assert_eq!(
                listed(
                    s,
                    &MessageQuery {
                        limit: size,
                        cursor,
                        ..q.clone()
                    }
                )?,
                expected
                    .iter()
                    .skip(from + 1)
                    .take(size as usize)
                    .cloned()
                    .collect::<Vec<_>>(),
                "{what} after {} size {size}",
                expected[from]
            );
            cursor_checks += 1;
        }
    }
    // Most random queries list something, so most rounds check a cursor too.
    assert!(cursor_checks > 200, "{cursor_checks} cursor checks");
    Ok(())
}

/// List totals are counted on the filter's index and corrected for the messages whose status
/// is not `processed`: they must match the lists for every filter and status set.
fn totals_with_rare_statuses(s: &mut Store) -> Result<()> {
    seed_messages(s)?;
    s.w.begin()?;
    s.w.set_status(&h("h4"), MessageStatus::Removing, 9.0)?;
    s.w.set_status(&h("h2"), MessageStatus::Removing, 9.0)?;
    s.w.commit()?;
    let status_sets = [
        vec![],
        vec![MessageStatus::Processed],
        vec![MessageStatus::Removing],
        vec![MessageStatus::Processed, MessageStatus::Removing],
        vec![MessageStatus::Pending],
    ];
    let filters = [
        MessageQuery::default(),
        MessageQuery {
            addresses: strings(&["0xB"]),
            ..Default::default()
        },
        MessageQuery {
            channels: strings(&["C1", "C2"]),
            ..Default::default()
        },
        MessageQuery {
            content_types: strings(&["blog", "note"]),
            ..Default::default()
        },
        MessageQuery {
            tags: strings(&["x", "y"]),
            ..Default::default()
        },
        MessageQuery {
            tags: strings(&["y"]),
            chains: strings(&["ETH"]),
            ..Default::default()
        },
        MessageQuery {
            start_date: Some(2.0),
            ..Default::default()
        },
    ];
    let mut removing_listed = 0;
    for filter in &filters {
        for statuses in &status_sets {
            let q = MessageQuery {
                statuses: statuses.clone(),
                ..filter.clone()
            };
            let listed = listed(s, &q)?;
            assert_eq!(s.r.count_messages(&q)?, listed.len() as u64, "{q:?}");
            // Pages past the first check statuses their own way.
            for order in [SortOrder::Ascending, SortOrder::Descending] {
                let all = self::listed(
                    s,
                    &MessageQuery {
                        sort_order: order,
                        ..q.clone()
                    },
                )?;
                for offset in 1..4 {
                    let page = self::listed(
                        s,
                        &MessageQuery {
                            sort_order: order,
                            limit: 2,
                            offset,
                            ..q.clone()
                        },
                    )?;
                    let want: Vec<String> =
                        all.iter().skip(offset as usize).take(2).cloned().collect();
                    assert_eq!(page, want, "{q:?} {order:?} offset {offset}");
                }
            }
            if statuses == &[MessageStatus::Removing] {
                assert!(listed.iter().all(|h| h == "h4" || h == "h2"), "{q:?}");
                removing_listed += listed.len();
            }
        }
    }
    // The check above saw the removing messages, not only empty lists.
    assert!(removing_listed >= 2, "{removing_listed}");
    // Post totals read the posts index alone unless a filter needs the joins.
    add_post(s, "p1", "0xA", "note", None, None, Some("C1"), 10.0, &["t"])?;
    add_post(s, "p2", "0xB", "note", None, None, Some("C1"), 11.0, &[])?;
    add_post(s, "p3", "0xA", "blog", None, None, None, 12.0, &["t"])?;
    add_post(
        s,
        "p4",
        "0xA",
        "amend",
        Some("p2"),
        Some("p2"),
        None,
        13.0,
        &["t"],
    )?;
    for q in [
        PostQuery::default(),
        PostQuery {
            types: strings(&["note"]),
            ..Default::default()
        },
        PostQuery {
            tags: strings(&["t"]),
            ..Default::default()
        },
        PostQuery {
            chains: strings(&["SOL"]),
            ..Default::default()
        },
        PostQuery {
            tags: strings(&["t", "t"]),
            types: strings(&["note"]),
            ..Default::default()
        },
    ] {
        let listed = s.r.posts(&q)?.len() as u64;
        assert_eq!(s.r.count_posts(&q)?, listed, "{q:?}");
    }
    Ok(())
}

/// Post lists by tag: the tags of the latest version count, whether the list starts from a
/// rare tag's versions or scans originals for a common tag (past 2 048 tag rows).
fn posts_by_tags_common_and_rare(s: &mut Store) -> Result<()> {
    struct Post {
        hash: String,
        owner: &'static str,
        last_updated: f64,
        latest_tags: Vec<String>,
    }
    let mut model: Vec<Post> = Vec::new();
    s.w.begin()?;
    let index = |s: &mut Store,
                 hash: &str,
                 owner: &str,
                 amends: Option<&str>,
                 time: f64,
                 tags: &[&str]|
     -> Result<()> {
        let mut m = message(hash, "POST", owner, time);
        m.content_type = Some(if amends.is_some() { "amend" } else { "note" }.into());
        m.tags = strings(tags);
        s.w.insert_message(&m)?;
        s.w.insert_post(&NewPost {
            item_hash: h(hash),
            owner: owner.into(),
            post_type: "note".into(),
            reference: None,
            amends: amends.map(h),
            channel: None,
            content: Some("{}".into()),
            creation_time: time,
            tags: strings(tags),
        })?;
        if let Some(original) = amends {
            s.w.refresh_latest_amend(&h(original))?;
        }
        s.w.set_status(&h(hash), MessageStatus::Processed, time)
    };
    for i in 0..2200u32 {
        let hash = format!("p{i:04}");
        let owner = if i % 3 == 0 { "0xA" } else { "0xB" };
        // Ties on time every few posts.
        let time = f64::from(i / 2);
        let mut tags = vec!["big"];
        if i % 97 == 0 {
            tags.push("rare");
        }
        index(s, &hash, owner, None, time, &tags)?;
        let mut post = Post {
            hash: hash.clone(),
            owner,
            last_updated: time,
            latest_tags: strings(&tags),
        };
        // Some are amended later: the amend's tags replace the original's.
        if i % 10 == 0 {
            let amend_tags: &[&str] = match i % 30 {
                0 => &["other"],
                10 => &["big", "rare"],
                _ => &["big"],
            };
            let amend_time = 5000.0 + f64::from(i);
            index(
                s,
                &format!("a{i:04}"),
                owner,
                Some(&hash),
                amend_time,
                amend_tags,
            )?;
            post.last_updated = amend_time;
            post.latest_tags = strings(amend_tags);
        }
        model.push(post);
    }
    s.w.commit()?;
    let mut cursor_checks = 0;
    for tags in [
        &["big"][..],
        &["rare"][..],
        &["rare", "other"][..],
        &["big", "rare"][..],
    ] {
        for owner in [None, Some("0xA")] {
            for order in [SortOrder::Descending, SortOrder::Ascending] {
                let mut expected: Vec<&Post> = model
                    .iter()
                    .filter(|p| tags.iter().any(|t| p.latest_tags.iter().any(|l| l == t)))
                    .filter(|p| owner.is_none_or(|o| p.owner == o))
                    .collect();
                expected.sort_by(|a, b| {
                    let by_time = a.last_updated.total_cmp(&b.last_updated);
                    let by_time = match order {
                        SortOrder::Ascending => by_time,
                        SortOrder::Descending => by_time.reverse(),
                    };
                    by_time.then_with(|| a.hash.cmp(&b.hash))
                });
                let expected: Vec<String> = expected.iter().map(|p| p.hash.clone()).collect();
                let q = PostQuery {
                    tags: strings(tags),
                    addresses: owner.map(|o| vec![o.to_owned()]).unwrap_or_default(),
                    sort_order: order,
                    limit: 20,
                    ..Default::default()
                };
                assert_eq!(s.r.count_posts(&q)?, expected.len() as u64, "{q:?}");
                let originals = |q: &PostQuery| -> Result<Vec<String>> {
                    Ok(s.r
                        .posts(q)?
                        .into_iter()
                        .map(|p| name(&p.original_item_hash))
                        .collect())
                };
                for offset in [0, 20, 340] {
                    let page = originals(&PostQuery {
                        offset,
                        ..q.clone()
                    })?;
                    let want: Vec<String> = expected
                        .iter()
                        .skip(offset as usize)
                        .take(20)
                        .cloned()
                        .collect();
                    assert_eq!(page, want, "{q:?} offset {offset}");
                }
                if let Some(at) = expected.get(30) {
                    let post = model.iter().find(|p| &p.hash == at).expect("listed");
                    let page = originals(&PostQuery {
                        cursor: Some(Cursor {
                            time: post.last_updated,
                            item_hash: h(&post.hash).to_string(),
                        }),
                        ..q.clone()
                    })?;
                    let want: Vec<String> = expected.iter().skip(31).take(20).cloned().collect();
                    assert_eq!(page, want, "{q:?} after {at}");
                    cursor_checks += 1;
                }
            }
        }
    }
    // Enough lists are longer than 30 for the cursor check to run.
    assert!(cursor_checks > 0, "no cursor check ran");
    Ok(())
}

// ---- both backends side by side ----

/// A small deterministic generator (xorshift), so both stores get the same data.
#[cfg(all(feature = "sqlite", feature = "postgres"))]
struct Rng(u64);

#[cfg(all(feature = "sqlite", feature = "postgres"))]
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, values: &[&'a str]) -> &'a str {
        values[self.below(values.len())]
    }
    fn some(&mut self, values: &[&str]) -> Vec<String> {
        values
            .iter()
            .filter(|_| self.below(3) == 0)
            .map(|v| (*v).to_owned())
            .collect()
    }
}

#[cfg(all(feature = "sqlite", feature = "postgres"))]
const SENDERS: &[&str] = &["0xA", "0xa", "0xB", "0x_", "0xZZ"];
#[cfg(all(feature = "sqlite", feature = "postgres"))]
const CHANNELS: &[&str] = &["C1", "c1", "TEST", "_", "Ω"];
#[cfg(all(feature = "sqlite", feature = "postgres"))]
const TAGS: &[&str] = &["t1", "T1", "t2", "é"];

/// The same random history written into a store: messages, posts and amends, aggregates,
/// forgets, statuses.
#[cfg(all(feature = "sqlite", feature = "postgres"))]
fn populate(s: &mut Store, seed: u64) -> Result<()> {
    let mut rng = Rng(seed);
    let mut originals: Vec<String> = Vec::new();
    let mut all: Vec<String> = Vec::new();
    s.w.begin()?;
    for i in 0..400 {
        // Hashes of mixed case and length; many ties on time.
        let hash = format!(
            "{}{i:03}{}",
            rng.pick(&["h", "H", "_", "a", "Z"]),
            rng.pick(&["", "x", "X"])
        );
        let time = rng.below(40) as f64 + if rng.below(4) == 0 { 0.5 } else { 0.0 };
        let sender = rng.pick(SENDERS);
        let kind = rng.pick(&["POST", "POST", "POST", "AGGREGATE", "STORE", "PROGRAM"]);
        let mut m = message(&hash, kind, sender, time);
        m.record.envelope.chain = rng.pick(&["ETH", "SOL", "DOT"]).parse().expect("a chain");
        m.record.envelope.channel = (rng.below(5) != 0).then(|| rng.pick(CHANNELS).to_owned());
        m.owner = if rng.below(4) == 0 {
            rng.pick(SENDERS).to_owned()
        } else {
            sender.to_owned()
        };
        m.tags = rng.some(TAGS);
        m.payment_type = (rng.below(3) == 0).then(|| rng.pick(&["hold", "superfluid"]).to_owned());
        m.record.envelope.signature = (rng.below(6) != 0).then(|| format!("sig{i}"));
        m.record.reception_time = time + rng.below(100) as f64 / 7.0;
        s.w.savepoint()?;
        match kind {
            "POST" => {
                let amends = (!originals.is_empty() && rng.below(3) == 0)
                    .then(|| originals[rng.below(originals.len())].clone());
                let post_type = rng.pick(&["note", "blog", "Note"]);
                m.content_type = Some(if amends.is_some() { "amend" } else { post_type }.into());
                let reference =
                    (rng.below(3) == 0).then(|| rng.pick(&["r1", "R1", "r2"]).to_owned());
                m.content_ref = amends.clone().or(reference.clone());
                s.w.insert_message(&m)?;
                s.w.insert_post(&NewPost {
                    item_hash: h(&hash),
                    owner: m.owner.clone(),
                    post_type: post_type.into(),
                    reference,
                    amends: amends.as_deref().map(h),
                    channel: m.record.envelope.channel.clone(),
                    content: Some(format!(r#"{{"i":{i},"text":"{hash}"}}"#)),
                    creation_time: time,
                    tags: m.tags.clone(),
                })?;
                match &amends {
                    Some(original) => s.w.refresh_latest_amend(&h(original))?,
                    None => originals.push(hash.clone()),
                }
            }
            "AGGREGATE" => {
                let key = rng.pick(&["profile", "Profile", "settings"]);
                m.content_key = Some(key.into());
                s.w.insert_message(&m)?;
                let mut value = serde_json::Map::new();
                value.insert(rng.pick(&["a", "b", "c"]).into(), json!(rng.below(10)));
                let nested = if rng.below(4) == 0 {
                    Value::Null
                } else {
                    json!({"n": i})
                };
                value.insert(rng.pick(&["a", "d"]).into(), nested);
                let value = Value::Object(value);
                s.w.add_aggregate_element(&NewAggregateElement {
                    item_hash: h(&hash),
                    owner: m.owner.clone(),
                    key: key.into(),
                    content: value.to_string(),
                    // Distinct times per aggregate, so its order is fully specified.
                    creation_time: time + i as f64 / 1000.0,
                })?;
            }
            "STORE" => {
                let file_hash = format!("file{}", rng.below(20));
                m.content_item_hash = Some(file_hash.clone());
                s.w.insert_message(&m)?;
                s.w.insert_file_pin(&NewFilePin {
                    message_hash: h(&hash),
                    file_hash,
                    owner: m.owner.clone(),
                    tag: h(&hash).to_string(),
                    created: time,
                })?;
            }
            _ => {
                m.content_type = None;
                s.w.insert_message(&m)?;
            }
        }
        s.w.set_status(&h(&hash), MessageStatus::Processed, m.record.reception_time)?;
        s.w.release_savepoint()?;
        all.push(hash);
    }
    for i in 0..20 {
        s.w.record_file(&file(&format!("file{i}"), i * 10, None), None)?;
    }
    // Forget some, mark others removing.
    for (n, hash) in all.iter().enumerate() {
        match rng.below(12) {
            0 => s.w.forget(
                &h(hash),
                &h(&format!("forget{}", n % 3)),
                50.0 + (n % 7) as f64,
                99.0,
            )?,
            1 => s.w.set_status(&h(hash), MessageStatus::Removing, 60.0)?,
            _ => {}
        }
    }
    // Anchoring: batches, anchors over random items (held or not, forgotten, listed twice),
    // one closing a batch, then a reorg and an abandoned batch.
    let mut batches = Vec::new();
    for b in 0..4 {
        let items: Vec<ItemHash> = (0..1 + rng.below(8))
            .map(|_| h(&all[rng.below(all.len())]))
            .collect();
        let id =
            s.w.create_batch(Chain::Eth, &format!("cid{b}"), "0xroot", &items, b as f64)?;
        batches.push(id);
    }
    for a in 0..16u64 {
        let chain = if rng.below(3) == 0 {
            Chain::Bsc
        } else {
            Chain::Eth
        };
        let archive = (a % 5 == 0).then(|| format!("cid{}", a / 5));
        let mut items: Vec<ItemHash> = (0..rng.below(30))
            .map(|_| h(&all[rng.below(all.len())]))
            .collect();
        if rng.below(3) == 0 {
            items.push(h(&format!("gone{a}")));
        }
        let mut anchor = anchor(
            chain,
            &format!("tx{a}"),
            rng.below(10) as u64,
            archive.as_deref(),
        );
        anchor.time += rng.below(5) as f64;
        s.w.record_anchor(&anchor, &items)?;
    }
    s.w.drop_anchors_from(Chain::Eth, 7)?;
    s.w.abandon_batch(batches[3])?;
    s.w.commit()
}

/// Everything the anchoring reads answer about a store `populate` wrote, as text.
#[cfg(all(feature = "sqlite", feature = "postgres"))]
fn anchoring_answers(s: &Store) -> Result<String> {
    let mut names: Vec<String> = (0..16).map(|a| format!("gone{a}")).collect();
    for i in 0..400 {
        for first in ["h", "H", "_", "a", "Z"] {
            for last in ["", "x", "X"] {
                names.push(format!("{first}{i:03}{last}"));
            }
        }
    }
    let hashes: Vec<ItemHash> = names.iter().map(|n| h(n)).collect();
    let mut out = format!("{:?}\n", s.r.confirmations(&hashes)?);
    out += &format!("{:?}\n", s.r.unanchored(1000)?);
    out += &format!("{:?}\n", s.r.unanchored(7)?);
    for chain in [Chain::Eth, Chain::Bsc] {
        out += &format!("{:?}\n", s.r.open_batches(chain)?);
        for a in 0..16 {
            let tx = anchor(chain, &format!("tx{a}"), 0, None).tx_hash;
            out += &format!("{:?}\n", s.r.anchor_items(chain, &tx, 0)?);
        }
    }
    for hash in hashes.iter().step_by(7) {
        let at = s.r.anchored_at(hash)?;
        if !at.is_empty() {
            out += &format!("{hash} {at:?}\n");
        }
    }
    Ok(out)
}

/// Random queries of every kind, answered by both stores, must match exactly.
#[cfg(all(feature = "sqlite", feature = "postgres"))]
#[test]
fn both_backends_answer_alike() -> Result<()> {
    let Some(mut pg) = pg::store() else {
        return Ok(());
    };
    let mut lite = sqlite_store().expect("sqlite");
    let seed = 0x5eed_1234_abcd_0001;
    populate(&mut lite, seed)?;
    populate(&mut pg, seed)?;
    let mut rng = Rng(seed ^ 0xffff);
    let same = |what: &str, a: String, b: String| {
        assert!(
            a == b,
            "{what}: sqlite and postgres differ\nsqlite:   {a}\npostgres: {b}"
        );
    };
    let anchoring = anchoring_answers(&lite)?;
    // Not vacuous: the history has confirmations, messages left to anchor and open batches.
    assert!(anchoring.contains("Confirmation {"), "{anchoring}");
    assert!(anchoring.contains("MessageRecord {"), "{anchoring}");
    assert!(anchoring.contains("Batch {"), "{anchoring}");
    same("anchoring", anchoring, anchoring_answers(&pg)?);
    let orders = [SortOrder::Ascending, SortOrder::Descending];
    for round in 0..300 {
        let order = orders[rng.below(2)];
        let limit = [0, 1, 5, 20][rng.below(4)];
        let offset = if limit == 0 { 0 } else { rng.below(10) as u64 };
        let q = MessageQuery {
            addresses: if rng.below(3) == 0 {
                rng.some(SENDERS)
            } else {
                vec![]
            },
            owners: if rng.below(5) == 0 {
                rng.some(SENDERS)
            } else {
                vec![]
            },
            channels: if rng.below(3) == 0 {
                rng.some(CHANNELS)
            } else {
                vec![]
            },
            tags: if rng.below(4) == 0 {
                rng.some(TAGS)
            } else {
                vec![]
            },
            chains: if rng.below(5) == 0 {
                rng.some(&["ETH", "SOL"])
            } else {
                vec![]
            },
            message_types: if rng.below(4) == 0 {
                rng.some(&["POST", "AGGREGATE", "STORE", "PROGRAM"])
            } else {
                vec![]
            },
            content_types: if rng.below(5) == 0 {
                rng.some(&["note", "Note", "amend"])
            } else {
                vec![]
            },
            refs: if rng.below(6) == 0 {
                rng.some(&["r1", "R1", "r2"])
            } else {
                vec![]
            },
            content_keys: if rng.below(6) == 0 {
                rng.some(&["profile", "Profile"])
            } else {
                vec![]
            },
            payment_types: if rng.below(6) == 0 {
                rng.some(&["hold"])
            } else {
                vec![]
            },
            statuses: if rng.below(5) == 0 {
                vec![MessageStatus::Removing]
            } else {
                vec![]
            },
            start_date: (rng.below(4) == 0).then(|| rng.below(40) as f64),
            end_date: (rng.below(4) == 0).then(|| 10.0 + rng.below(40) as f64),
            start_block: (rng.below(6) == 0).then(|| rng.below(10) as u64),
            end_block: (rng.below(6) == 0).then(|| rng.below(10) as u64),
            sort_by_tx_time: rng.below(5) == 0,
            cursor: (rng.below(3) == 0).then(|| Cursor {
                time: rng.below(40) as f64,
                item_hash: h(rng.pick(&["h100", "H2", "_", "a", "Z999"])).to_string(),
            }),
            sort_order: order,
            limit,
            offset,
            ..Default::default()
        };
        let what = format!("round {round}: {q:?}");
        same(
            &what,
            format!("{:?}", lite.r.messages(&q)?),
            format!("{:?}", pg.r.messages(&q)?),
        );
        same(
            &what,
            format!("{}", lite.r.count_messages(&q)?),
            format!("{}", pg.r.count_messages(&q)?),
        );
        same(
            &what,
            format!("{:?}", lite.r.forgotten_messages(&q)?),
            format!("{:?}", pg.r.forgotten_messages(&q)?),
        );
        same(
            &what,
            format!("{}", lite.r.count_forgotten_messages(&q)?),
            format!("{}", pg.r.count_forgotten_messages(&q)?),
        );
        let pq = PostQuery {
            addresses: q.addresses.clone(),
            channels: q.channels.clone(),
            tags: q.tags.clone(),
            chains: q.chains.clone(),
            types: if rng.below(4) == 0 {
                rng.some(&["note", "blog", "Note"])
            } else {
                vec![]
            },
            refs: q.refs.clone(),
            start_date: q.start_date,
            end_date: q.end_date,
            cursor: q.cursor.clone(),
            sort_order: order,
            limit,
            offset,
            ..Default::default()
        };
        let what = format!("round {round}: {pq:?}");
        same(
            &what,
            format!("{:?}", lite.r.posts(&pq)?),
            format!("{:?}", pg.r.posts(&pq)?),
        );
        same(
            &what,
            format!("{}", lite.r.count_posts(&pq)?),
            format!("{}", pg.r.count_posts(&pq)?),
        );
        let aq = AggregateQuery {
            keys: if rng.below(2) == 0 {
                rng.some(&["profile", "Profile", "settings"])
            } else {
                vec![]
            },
            addresses: if rng.below(2) == 0 {
                rng.some(SENDERS)
            } else {
                vec![]
            },
            sort_by_creation: rng.below(2) == 0,
            sort_order: order,
            limit,
            offset,
            max_bytes: 0,
        };
        let what = format!("round {round}: {aq:?}");
        same(
            &what,
            format!("{:?}", lite.r.aggregates(&aq)?),
            format!("{:?}", pg.r.aggregates(&aq)?),
        );
        same(
            &what,
            format!("{}", lite.r.count_aggregates(&aq)?),
            format!("{}", pg.r.count_aggregates(&aq)?),
        );
        let address = rng.pick(SENDERS);
        same(
            address,
            format!("{:?}", lite.r.aggregates_of(address, &aq.keys)?),
            format!("{:?}", pg.r.aggregates_of(address, &aq.keys)?),
        );
        same(
            address,
            format!("{:?}", lite.r.address_files(address, limit, offset, order)?),
            format!("{:?}", pg.r.address_files(address, limit, offset, order)?),
        );
    }
    same(
        "stats",
        format!("{:?}", lite.r.address_stats(&[])?),
        format!("{:?}", pg.r.address_stats(&[])?),
    );
    same(
        "channels",
        format!("{:?}", lite.r.channels()?),
        format!("{:?}", pg.r.channels()?),
    );
    same(
        "counts",
        format!("{:?}", lite.r.counts()?),
        format!("{:?}", pg.r.counts()?),
    );
    for hash in ["h000", "H001", "_002", "a003", "Z004", "h010x", "nope"] {
        same(
            hash,
            format!("{:?}", lite.r.message(&h(hash))?),
            format!("{:?}", pg.r.message(&h(hash))?),
        );
        same(
            hash,
            format!("{:?}", lite.r.forgotten(&h(hash))?),
            format!("{:?}", pg.r.forgotten(&h(hash))?),
        );
        same(
            hash,
            format!("{:?}", lite.r.status(&h(hash))?),
            format!("{:?}", pg.r.status(&h(hash))?),
        );
    }
    // The garbage collector picks the same files in the same order.
    lite.w.begin()?;
    pg.w.begin()?;
    same(
        "gc",
        format!("{:?}", lite.w.collect_unpinned_files(1000.0)?),
        format!("{:?}", pg.w.collect_unpinned_files(1000.0)?),
    );
    lite.w.commit()?;
    pg.w.commit()?;
    Ok(())
}

// ---- PostgreSQL only ----

#[cfg(feature = "postgres")]
mod postgres_only {
    use raleph_db::postgres::{PgOptions, open, open_reader};

    use super::pg::{SchemaGuard, admin, fresh_schema, options, url};
    use super::*;

    /// One writer per schema: a second node cannot open it for writing; readers can.
    #[test]
    fn one_writer_per_schema() -> Result<()> {
        let Some(url) = url() else { return Ok(()) };
        let schema = fresh_schema();
        let _guard = SchemaGuard {
            url: url.clone(),
            schema: schema.clone(),
        };
        // Before the writer migrated it, a reader refuses the schema.
        assert!(open_reader(&url, &options(&schema)).is_err());
        let (mut w, r) = open(&url, &options(&schema))?;
        let second = open(&url, &options(&schema));
        assert!(second.is_err(), "a second writer must be refused");
        let reader = open_reader(&url, &options(&schema))?;
        w.begin()?;
        w.insert_message(&message("m", "POST", "0xA", 1.0))?;
        w.commit()?;
        assert!(reader.message(&h("m"))?.is_some());
        assert!(r.message(&h("m"))?.is_some());
        drop(w);
        // The lock goes with the writer.
        let (_w, _r) = open(&url, &options(&schema))?;
        Ok(())
    }

    /// A lost write connection is reopened at the next operation outside a transaction; a
    /// transaction it broke fails and rolls back.
    #[test]
    fn writer_reconnects() -> Result<()> {
        let Some(url) = url() else { return Ok(()) };
        let schema = fresh_schema();
        let _guard = SchemaGuard {
            url: url.clone(),
            schema: schema.clone(),
        };
        let tagged = format!(
            "{url}{}application_name={schema}",
            if url.contains('?') { '&' } else { '?' }
        );
        let (mut w, r) = open(&tagged, &options(&schema))?;
        // Terminates the store's connections, and waits until they are gone.
        let kill = || {
            let mut admin = admin(&url);
            let killed = admin
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE application_name = $1 AND pid != pg_backend_pid()",
                    &[&schema],
                )
                .expect("terminate");
            for _ in 0..500 {
                let left: i64 = admin
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                        &[&schema],
                    )
                    .and_then(|row| row.try_get(0))
                    .expect("count");
                if left == 0 {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            killed
        };
        w.begin()?;
        w.insert_message(&message("lost", "POST", "0xA", 1.0))?;
        assert!(kill() >= 1);
        assert!(w.commit().is_err());
        w.rollback()?;
        assert!(r.message(&h("lost"))?.is_none());
        // The next transaction reconnects.
        add_to(&mut w, "back")?;
        assert!(kill() >= 2);
        // Readers too: a lost pooled connection is replaced, the read repeated.
        assert!(r.message(&h("back"))?.is_some());
        assert_eq!(w.status(&h("back"))?, Some(MessageStatus::Processed));
        Ok(())
    }

    fn add_to(w: &mut dyn WriteStore, hash: &str) -> Result<()> {
        w.begin()?;
        w.insert_message(&message(hash, "POST", "0xA", 1.0))?;
        w.set_status(&h(hash), MessageStatus::Processed, 1.0)?;
        w.commit()
    }

    /// A failed statement aborts a PostgreSQL transaction: commit must then fail, never
    /// report success for a transaction the server rolled back.
    #[test]
    fn commit_after_an_error_fails() -> Result<()> {
        let Some(mut s) = super::pg::store() else {
            return Ok(());
        };
        add(&mut s, &message("m", "POST", "0xA", 1.0))?;
        s.w.begin()?;
        s.w.insert_message(&message("n", "POST", "0xA", 1.0))?;
        assert!(
            s.w.insert_message(&message("m", "POST", "0xA", 1.0))
                .is_err()
        );
        assert!(s.w.commit().is_err());
        assert!(s.r.message(&h("n"))?.is_none());
        // And the writer is usable again.
        add(&mut s, &message("o", "POST", "0xA", 1.0))?;
        Ok(())
    }

    /// The kept totals are written at commit: when that write fails, the commit fails, the
    /// transaction is rolled back, and the writer is usable again.
    #[test]
    fn a_failed_totals_write_fails_the_commit() -> Result<()> {
        let Some(url) = url() else { return Ok(()) };
        let schema = fresh_schema();
        let _guard = SchemaGuard {
            url: url.clone(),
            schema: schema.clone(),
        };
        let (mut w, r) = open(&url, &options(&schema))?;
        let mut admin = admin(&url);
        let rename = |admin: &mut ::postgres::Client, from: &str, to: &str| {
            admin
                .batch_execute(&format!("ALTER TABLE \"{schema}\".{from} RENAME TO {to}"))
                .expect("rename list_totals");
        };
        w.begin()?;
        let mut m = message("n", "POST", "0xA", 1.0);
        m.record.envelope.channel = Some("C".into());
        w.insert_message(&m)?;
        rename(&mut admin, "list_totals", "list_totals_away");
        assert!(w.commit().is_err());
        rename(&mut admin, "list_totals_away", "list_totals");
        assert!(r.message(&h("n"))?.is_none());
        add_to(&mut w, "o")?;
        assert!(r.message(&h("o"))?.is_some());
        Ok(())
    }

    /// The read pool never opens more connections than allowed, and readers share it.
    #[test]
    fn read_pool_is_bounded() -> Result<()> {
        let Some(url) = url() else { return Ok(()) };
        let schema = fresh_schema();
        let _guard = SchemaGuard {
            url: url.clone(),
            schema: schema.clone(),
        };
        let tagged = format!(
            "{url}{}application_name={schema}",
            if url.contains('?') { '&' } else { '?' }
        );
        let opts = PgOptions {
            max_read_connections: 2,
            ..options(&schema)
        };
        let (mut w, r) = open(&tagged, &opts)?;
        add_to(&mut w, "m")?;
        let r = std::sync::Arc::new(r);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let r = r.clone();
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        assert!(r.message(&h("m")).expect("read").is_some());
                        r.counts().expect("counts");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("reader thread");
        }
        let open_now: i64 = admin(&url)
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                &[&schema],
            )
            .and_then(|row| row.try_get(0))
            .expect("count connections");
        // The writer and at most two readers.
        assert!(open_now <= 3, "{open_now} connections");
        Ok(())
    }
}

/// Every total a backend keeps instead of counting (per message type, sender, content type,
/// channel, content key, tag, post type, post channel, aggregate key, and per span of time,
/// of all messages or of some types) equals the length of its list after inserts,
/// rolled-back savepoints, forgets, moves to an earlier time and writes outside a
/// transaction, and the store says it keeps them (`kept_*_total`), so the API serves them
/// without a cache.
fn kept_totals_follow_writes(s: &mut Store) -> Result<()> {
    let channels = ["C1", "c1", "C2"];
    let types = ["note", "blog"];
    let keys = ["profile", "settings"];
    let tag_names = ["t1", "t2", "T1"];
    let time_of = |i: usize| match i % 9 {
        0 => -3.5 - i as f64,
        1 => 2e12 + i as f64,
        2 => (1u64 << 40) as f64 - 0.25,
        _ => (i * 37 % 500) as f64 + [0.0, 0.5, 0.75][i % 3],
    };
    let mut n = 0;
    s.w.begin()?;
    for i in 0..120 {
        let hash = format!("m{i:03}");
        let kind = ["POST", "POST", "AGGREGATE", "STORE"][i % 4];
        let mut m = message(&hash, kind, ["0xA", "0xB"][i % 2], time_of(i));
        m.record.envelope.channel = (i % 5 != 0).then(|| channels[i % 3].to_owned());
        if i % 3 == 0 {
            m.tags = strings(&[tag_names[i % 3], tag_names[(i / 3) % 3]]);
        }
        s.w.savepoint()?;
        match kind {
            "POST" => {
                m.content_type = Some(types[i % 2].to_owned());
                s.w.insert_message(&m)?;
                s.w.insert_post(&NewPost {
                    item_hash: h(&hash),
                    owner: m.owner.clone(),
                    post_type: types[i % 2].into(),
                    reference: None,
                    amends: None,
                    channel: m.record.envelope.channel.clone(),
                    content: Some("{}".into()),
                    creation_time: m.record.envelope.time,
                    tags: m.tags.clone(),
                })?;
            }
            "AGGREGATE" => {
                m.content_key = Some(keys[(i / 4) % 2].to_owned());
                s.w.insert_message(&m)?;
                s.w.add_aggregate_element(&NewAggregateElement {
                    item_hash: h(&hash),
                    owner: m.owner.clone(),
                    key: keys[(i / 4) % 2].into(),
                    content: r#"{"a":1}"#.into(),
                    creation_time: m.record.envelope.time,
                })?;
            }
            _ => s.w.insert_message(&m)?,
        }
        s.w.set_status(&h(&hash), MessageStatus::Processed, 1.0)?;
        if i % 7 == 6 {
            s.w.rollback_savepoint()?;
        } else {
            s.w.release_savepoint()?;
            n += 1;
        }
    }
    s.w.commit()?;
    s.w.begin()?;
    for i in (0..120).step_by(8) {
        s.w.forget(&h(&format!("m{i:03}")), &h("f"), 1.0, 2.0)?;
    }
    for i in (3..120).step_by(10) {
        s.w.keep_earliest_time(&h(&format!("m{i:03}")), time_of(i) - 250.5)?;
    }
    s.w.commit()?;
    // Outside a transaction, each write commits alone.
    s.w.forget(&h("m009"), &h("f"), 1.0, 2.0)?;
    s.w.keep_earliest_time(&h("m013"), -1.0)?;
    let mut late = message("late", "POST", "0xA", 77.25);
    late.record.envelope.channel = Some("C1".into());
    s.w.insert_message(&late)?;
    assert!(n > 90);

    // The total, the list's length, and the kept total (which must be there and agree).
    let all = |q: MessageQuery| -> Result<(u64, u64)> {
        let q = MessageQuery { limit: 0, ..q };
        let total = s.r.count_messages(&q)?;
        assert_eq!(s.r.kept_message_total(&q)?, Some(total), "kept: {q:?}");
        Ok((total, listed(s, &q)?.len() as u64))
    };
    let mut bounds = vec![None, Some(-100.0), Some(0.0), Some(2.5e12)];
    bounds.extend((0..12).map(|i| Some((i * 47) as f64 + [0.0, 0.5, 0.3][i % 3])));
    let type_sets = [vec![], strings(&["POST"]), strings(&["AGGREGATE", "STORE"])];
    for start in &bounds {
        for end in &bounds {
            for message_types in &type_sets {
                let (total, listed) = all(MessageQuery {
                    start_date: *start,
                    end_date: *end,
                    message_types: message_types.clone(),
                    ..Default::default()
                })?;
                assert_eq!(total, listed, "{message_types:?} in {start:?}..{end:?}");
            }
        }
    }
    let one = |v: &str| vec![v.to_owned()];
    let statuses = vec![MessageStatus::Processed, MessageStatus::Removing];
    for q in ["POST", "AGGREGATE", "STORE"]
        .iter()
        .map(|t| MessageQuery {
            message_types: one(t),
            ..Default::default()
        })
        .chain(["0xA", "0xB"].iter().map(|a| MessageQuery {
            addresses: one(a),
            statuses: statuses.clone(),
            ..Default::default()
        }))
        .chain([MessageQuery {
            addresses: strings(&["0xA", "0xB"]),
            ..Default::default()
        }])
    {
        let (total, listed) = all(q.clone())?;
        assert!(listed > 0, "{q:?}");
        assert_eq!(total, listed, "{q:?}");
    }
    // A total the writer does not keep is counted, and said so.
    let counted = MessageQuery {
        channels: one("C1"),
        start_date: Some(0.0),
        ..Default::default()
    };
    assert_eq!(s.r.kept_message_total(&counted)?, None);
    for q in channels
        .iter()
        .map(|c| MessageQuery {
            channels: one(c),
            ..Default::default()
        })
        .chain(types.iter().map(|t| MessageQuery {
            content_types: one(t),
            ..Default::default()
        }))
        .chain(keys.iter().map(|k| MessageQuery {
            content_keys: one(k),
            ..Default::default()
        }))
        .chain(tag_names.iter().map(|t| MessageQuery {
            tags: one(t),
            ..Default::default()
        }))
    {
        let (total, listed) = all(q.clone())?;
        assert!(listed > 0, "{q:?}");
        assert_eq!(total, listed, "{q:?}");
    }
    for q in channels
        .iter()
        .map(|c| PostQuery {
            channels: one(c),
            ..Default::default()
        })
        .chain(types.iter().map(|t| PostQuery {
            types: one(t),
            ..Default::default()
        }))
    {
        let q = PostQuery { limit: 0, ..q };
        let total = s.r.count_posts(&q)?;
        assert_eq!(total, s.r.posts(&q)?.len() as u64, "{q:?}");
        assert_eq!(s.r.kept_post_total(&q)?, Some(total), "{q:?}");
    }
    for key in keys {
        let q = AggregateQuery {
            keys: one(key),
            limit: 0,
            ..Default::default()
        };
        let total = s.r.count_aggregates(&q)?;
        assert_eq!(total, s.r.aggregates(&q)?.len() as u64, "{key}");
        assert_eq!(s.r.kept_aggregate_total(&q)?, Some(total), "{key}");
    }
    // All posts and all aggregates: the sums of every type's and every key's kept rows.
    let all_posts = PostQuery::default();
    let listed_posts = s.r.posts(&all_posts)?.len() as u64;
    assert!(listed_posts > 0);
    assert_eq!(s.r.kept_post_total(&all_posts)?, Some(listed_posts));
    let all_aggregates = AggregateQuery::default();
    let listed_aggregates = s.r.aggregates(&all_aggregates)?.len() as u64;
    assert!(listed_aggregates > 0);
    assert_eq!(
        s.r.kept_aggregate_total(&all_aggregates)?,
        Some(listed_aggregates)
    );
    let by_owner = PostQuery {
        addresses: one("0xA"),
        ..Default::default()
    };
    assert_eq!(s.r.kept_post_total(&by_owner)?, None);
    Ok(())
}

fn message_lists_stop_at_their_byte_bound(s: &mut Store) -> Result<()> {
    for (hash, time) in [("b1", 1.0), ("b2", 2.0), ("b3", 3.0)] {
        add(s, &message(hash, "POST", "0xB", time))?;
    }
    let all = s.r.messages(&MessageQuery::default())?;
    assert_eq!(all.len(), 3);
    let size = |m: &raleph_db::MessageRecord| {
        m.envelope.item_content.as_ref().map_or(0, String::len) + m.content.len()
    };
    let total: usize = all.iter().map(size).sum();
    let bounded = |max_bytes| MessageQuery {
        max_bytes,
        ..Default::default()
    };
    assert_eq!(s.r.messages(&bounded(total))?.len(), 3);
    assert!(matches!(
        s.r.messages(&bounded(total - 1)),
        Err(raleph_db::StoreError::TooLarge { .. })
    ));
    // Post lists are bounded the same way.
    let post_lists = |max_bytes| PostQuery {
        max_bytes,
        ..Default::default()
    };
    s.w.begin()?;
    for (hash, time) in [("p1", 1.0), ("p2", 2.0)] {
        let m = message(hash, "POST", "0xB", time);
        s.w.insert_message(&m)?;
        s.w.set_status(&h(hash), MessageStatus::Processed, time)?;
        s.w.insert_post(&NewPost {
            item_hash: h(hash),
            owner: "0xB".into(),
            post_type: "note".into(),
            reference: None,
            amends: None,
            channel: None,
            content: Some(r#"{"body":"a post body"}"#.into()),
            creation_time: time,
            tags: Vec::new(),
        })?;
    }
    s.w.commit()?;
    let posts = s.r.posts(&post_lists(0))?;
    assert_eq!(posts.len(), 2);
    let post_bytes: usize = posts
        .iter()
        .map(|p| {
            p.latest_content.as_ref().map_or(0, String::len)
                + p.latest
                    .as_ref()
                    .and_then(|l| l.item_content.as_ref())
                    .map_or(0, String::len)
        })
        .sum();
    assert_eq!(s.r.posts(&post_lists(post_bytes))?.len(), 2);
    assert!(matches!(
        s.r.posts(&post_lists(post_bytes - 1)),
        Err(raleph_db::StoreError::TooLarge { .. })
    ));
    // An aggregate's size is known without reading its value.
    assert_eq!(s.w.aggregate_size("0xB", "none")?, 0);
    s.w.begin()?;
    s.w.add_aggregate_element(&NewAggregateElement {
        item_hash: h("agg1"),
        owner: "0xB".into(),
        key: "k".into(),
        content: r#"{"a":1}"#.into(),
        creation_time: 1.0,
    })?;
    s.w.commit()?;
    assert_eq!(s.w.aggregate_size("0xB", "k")?, 7);
    // Bytes, not characters: "é" is two bytes of UTF-8.
    s.w.begin()?;
    s.w.add_aggregate_element(&NewAggregateElement {
        item_hash: h("agg2"),
        owner: "0xU".into(),
        key: "utf8".into(),
        content: r#"{"é":1}"#.into(),
        creation_time: 1.0,
    })?;
    s.w.commit()?;
    assert_eq!(s.w.aggregate_size("0xU", "utf8")?, 8);
    // Aggregate reads are bounded like the other lists.
    assert_eq!(s.r.aggregates_of_bounded("0xB", &[], 7)?.len(), 1);
    assert!(matches!(
        s.r.aggregates_of_bounded("0xB", &[], 6),
        Err(raleph_db::StoreError::TooLarge { .. })
    ));
    let of_b = |max_bytes| AggregateQuery {
        addresses: vec!["0xB".into()],
        max_bytes,
        ..Default::default()
    };
    assert_eq!(s.r.aggregates(&of_b(7))?.len(), 1);
    assert!(matches!(
        s.r.aggregates(&of_b(6)),
        Err(raleph_db::StoreError::TooLarge { .. })
    ));
    // The bound counts only the rows a page reads.
    let first = MessageQuery {
        limit: 1,
        ..bounded(size(&all[0]))
    };
    assert_eq!(s.r.messages(&first)?.len(), 1);
    Ok(())
}

// ---- blockchain anchoring ----

/// An anchoring transaction `tx` (a name, as [`h`] makes hashes) at `height` of `chain`.
fn anchor(chain: Chain, tx: &str, height: u64, archive: Option<&str>) -> Anchor {
    Anchor {
        chain,
        tx_hash: format!("0x{}", h(tx)),
        log_index: 0,
        height,
        block_hash: format!("0x{}", h(&format!("block{height}"))),
        time: 1_700_000_000.0 + height as f64,
        publisher: format!("0x{}", "ab".repeat(20)),
        protocol: "aleph-offchain".into(),
        archive: archive.map(str::to_owned),
        merkle_root: Some(format!("0x{}", h(&format!("root-{tx}")))),
    }
}

fn record(s: &mut Store, a: &Anchor, items: &[&str]) -> Result<bool> {
    let items: Vec<ItemHash> = items.iter().map(|n| h(n)).collect();
    s.w.begin()?;
    let recorded = s.w.record_anchor(a, &items)?;
    s.w.commit()?;
    Ok(recorded)
}

/// Confirmations by item name, as `(item, chain, height, tx name)`.
fn confirmed(s: &Store, items: &[&str]) -> Result<Vec<(String, String, u64, String)>> {
    let hashes: Vec<ItemHash> = items.iter().map(|n| h(n)).collect();
    Ok(s.r
        .confirmations(&hashes)?
        .into_iter()
        .map(|(item, c)| {
            let tx = ItemHash::parse(c.tx_hash.trim_start_matches("0x")).expect("a tx hash");
            (
                name(&item),
                c.chain.as_str().to_owned(),
                c.height,
                name(&tx),
            )
        })
        .collect())
}

fn unanchored_names(s: &Store) -> Result<Vec<String>> {
    Ok(hashes(&s.r.unanchored(100)?))
}

fn c(item: &str, chain: &str, height: u64, tx: &str) -> (String, String, u64, String) {
    (item.into(), chain.into(), height, tx.into())
}

fn anchors_and_confirmations(s: &mut Store) -> Result<()> {
    add(s, &message("m1", "POST", "0xA", 1.0))?;
    add(s, &message("m2", "POST", "0xA", 2.0))?;
    let a = anchor(Chain::Eth, "txa", 10, None);
    // Items need not be held here: "x9" is no message of this store.
    assert!(record(s, &a, &["m2", "m1", "x9"])?);
    // Known already: nothing changes, whatever the items.
    assert!(!record(s, &a, &["m3"])?);
    let b = anchor(Chain::Bsc, "txb", 5, None);
    assert!(record(s, &b, &["m1"])?);
    assert_eq!(
        confirmed(s, &["x9", "m3", "m2", "m1"])?,
        vec![
            c("m1", "BSC", 5, "txb"),
            c("m1", "ETH", 10, "txa"),
            c("m2", "ETH", 10, "txa"),
            c("x9", "ETH", 10, "txa"),
        ]
    );
    assert!(s.r.confirmations(&[])?.is_empty());
    let full = s.r.confirmations(&[h("m2")])?;
    assert_eq!(
        full,
        vec![(
            h("m2"),
            Confirmation {
                chain: Chain::Eth,
                height: 10,
                tx_hash: a.tx_hash.clone(),
                time: a.time,
                publisher: a.publisher.clone(),
            }
        )]
    );
    // Every anchor of a message, lowest height first, with its position there.
    let at = s.r.anchored_at(&h("m1"))?;
    assert_eq!(
        at,
        vec![
            AnchoredAt {
                anchor: b.clone(),
                position: 0
            },
            AnchoredAt {
                anchor: a.clone(),
                position: 1
            },
        ]
    );
    assert!(s.r.anchored_at(&h("m3"))?.is_empty());
    assert_eq!(
        names(&s.r.anchor_items(Chain::Eth, &a.tx_hash, 0)?),
        ["m2", "m1", "x9"]
    );
    assert!(s.r.anchor_items(Chain::Eth, &a.tx_hash, 1)?.is_empty());
    assert!(s.r.anchor_items(Chain::Bsc, &a.tx_hash, 0)?.is_empty());
    // Another log of the same transaction is another anchor.
    let mut second_log = a.clone();
    second_log.log_index = 1;
    assert!(record(s, &second_log, &["m3"])?);
    assert_eq!(names(&s.r.anchor_items(Chain::Eth, &a.tx_hash, 1)?), ["m3"]);

    // A reader's position, one per chain.
    assert_eq!(s.r.chain_position(Chain::Eth)?, None);
    s.w.begin()?;
    s.w.set_chain_position(Chain::Eth, r#"{"height":10}"#)?;
    s.w.set_chain_position(Chain::Eth, r#"{"height":12}"#)?;
    s.w.set_chain_position(Chain::Bsc, r#"{"height":3}"#)?;
    s.w.commit()?;
    assert_eq!(
        s.r.chain_position(Chain::Eth)?.as_deref(),
        Some(r#"{"height":12}"#)
    );
    assert_eq!(
        s.r.chain_position(Chain::Bsc)?.as_deref(),
        Some(r#"{"height":3}"#)
    );
    assert_eq!(
        s.r.chain_positions()?,
        [
            (Chain::Bsc, r#"{"height":3}"#.to_owned()),
            (Chain::Eth, r#"{"height":12}"#.to_owned())
        ]
    );
    // All of it survives a reopen.
    s.reopen();
    assert_eq!(confirmed(s, &["m2"])?, vec![c("m2", "ETH", 10, "txa")]);
    assert_eq!(
        s.r.chain_position(Chain::Eth)?.as_deref(),
        Some(r#"{"height":12}"#)
    );
    Ok(())
}

fn anchor_reorg_drops_confirmations(s: &mut Store) -> Result<()> {
    for (i, n) in ["m1", "m2", "m3", "m4"].iter().enumerate() {
        add(s, &message(n, "POST", "0xA", i as f64 + 1.0))?;
    }
    record(s, &anchor(Chain::Eth, "t10", 10, None), &["m1"])?;
    record(s, &anchor(Chain::Eth, "t11", 11, None), &["m2", "m1"])?;
    record(s, &anchor(Chain::Eth, "t12", 12, None), &["m3"])?;
    record(s, &anchor(Chain::Bsc, "u11", 11, None), &["m4"])?;
    assert!(unanchored_names(s)?.is_empty());
    s.w.begin()?;
    assert_eq!(s.w.drop_anchors_from(Chain::Eth, 11)?, 2);
    s.w.commit()?;
    assert_eq!(
        confirmed(s, &["m1", "m2", "m3", "m4"])?,
        vec![c("m1", "ETH", 10, "t10"), c("m4", "BSC", 11, "u11")]
    );
    assert!(
        s.r.anchor_items(Chain::Eth, &format!("0x{}", h("t11")), 0)?
            .is_empty()
    );
    assert_eq!(s.r.anchored_at(&h("m1"))?.len(), 1);
    // Their messages are left to anchor again; m1 keeps its older confirmation.
    assert_eq!(unanchored_names(s)?, ["m2", "m3"]);
    // The same transactions mined again are new anchors.
    assert!(record(s, &anchor(Chain::Eth, "t11", 11, None), &["m2"])?);
    assert_eq!(unanchored_names(s)?, ["m3"]);
    s.w.begin()?;
    assert_eq!(s.w.drop_anchors_from(Chain::Eth, 100)?, 0);
    s.w.commit()?;
    Ok(())
}

fn missing_archives_wait_until_found(s: &mut Store) -> Result<()> {
    for (i, n) in ["m1", "m2"].iter().enumerate() {
        add(s, &message(n, "POST", "0xA", i as f64 + 1.0))?;
    }
    let missing = |s: &mut Store, a: &Anchor, root: Option<&str>| -> Result<bool> {
        s.w.begin()?;
        let recorded = s.w.record_anchor_missing_archive(a, root)?;
        s.w.commit()?;
        Ok(recorded)
    };
    let complete = |s: &mut Store, a: &Anchor, items: &[&str], root: Option<&str>| {
        let items: Vec<ItemHash> = items.iter().map(|n| h(n)).collect();
        s.w.begin()?;
        let done = s.w.complete_anchor(a, &items, root)?;
        s.w.commit()?;
        Ok::<_, StoreError>(done)
    };
    let mut a12 = anchor(Chain::Eth, "t12", 12, Some("cid-12"));
    a12.merkle_root = None;
    let mut a11 = anchor(Chain::Eth, "t11", 11, Some("cid-11"));
    a11.merkle_root = None;
    let b11 = anchor(Chain::Bsc, "u11", 11, Some("cid-u"));
    assert!(missing(s, &a12, Some("0xclaimed"))?);
    assert!(missing(s, &a11, None)?);
    assert!(missing(s, &b11, None)?);
    // Known already: nothing changes.
    assert!(!missing(s, &a12, None)?);
    let shown = |list: Vec<MissingArchive>| -> Vec<(Anchor, Option<String>)> {
        list.into_iter()
            .map(|m| (m.anchor, m.claimed_root))
            .collect()
    };
    // In the order they were recorded, paged by id.
    let eth = s.r.missing_archives(Chain::Eth, 0, 10)?;
    assert_eq!(
        shown(eth.clone()),
        vec![(a12.clone(), Some("0xclaimed".into())), (a11.clone(), None)]
    );
    assert_eq!(
        shown(s.r.missing_archives(Chain::Eth, 0, 1)?),
        shown(eth[..1].to_vec())
    );
    assert_eq!(
        shown(s.r.missing_archives(Chain::Eth, eth[0].id, 10)?),
        vec![(a11.clone(), None)]
    );
    assert!(s.r.missing_archives(Chain::Eth, eth[1].id, 10)?.is_empty());
    assert_eq!(s.r.missing_archives(Chain::Bsc, 0, 10)?.len(), 1);
    assert_eq!(s.r.count_missing_archives()?, 3);
    // Recorded without items: the messages are still left to anchor.
    assert!(confirmed(s, &["m1", "m2"])?.is_empty());
    assert_eq!(unanchored_names(s)?, ["m1", "m2"]);

    // Found: the anchor confirms its items, in order, with the root that was checked, at
    // the stored anchor's block (not at a stale copy's).
    let mut stale = a12.clone();
    stale.height = 99;
    stale.time += 1000.0;
    assert!(complete(s, &stale, &["m2", "m1"], Some("0xroot"))?);
    let first_confirmed_below_13 = MessageQuery {
        end_block: Some(13),
        ..asc()
    };
    assert_eq!(
        listed(s, &first_confirmed_below_13)?,
        strings(&["m1", "m2"])
    );
    assert!(!complete(s, &a12, &["m2"], None)?, "completed once");
    assert_eq!(
        s.r.anchor_items(Chain::Eth, &a12.tx_hash, 0)?,
        vec![h("m2"), h("m1")]
    );
    let at = s.r.anchored_at(&h("m1"))?;
    assert_eq!(at.len(), 1);
    assert_eq!(at[0].position, 1);
    assert_eq!(at[0].anchor.merkle_root.as_deref(), Some("0xroot"));
    assert!(unanchored_names(s)?.is_empty());
    assert_eq!(
        shown(s.r.missing_archives(Chain::Eth, 0, 10)?),
        vec![(a11.clone(), None)]
    );

    // A reorganisation takes the still missing one away with its anchor.
    s.w.begin()?;
    assert_eq!(s.w.drop_anchors_from(Chain::Eth, 11)?, 2);
    s.w.commit()?;
    assert!(s.r.missing_archives(Chain::Eth, 0, 10)?.is_empty());
    assert!(!complete(s, &a11, &["m1"], None)?, "dropped");
    assert_eq!(s.r.missing_archives(Chain::Bsc, 0, 10)?.len(), 1);
    assert_eq!(s.r.count_missing_archives()?, 1);
    Ok(())
}

fn batch_life(s: &mut Store) -> Result<()> {
    for (i, n) in ["m1", "m2", "m3", "m4"].iter().enumerate() {
        add(s, &message(n, "POST", "0xA", i as f64 + 1.0))?;
    }
    assert_eq!(unanchored_names(s)?, ["m1", "m2", "m3", "m4"]);
    let root = format!("0x{}", h("root"));
    s.w.begin()?;
    let id =
        s.w.create_batch(Chain::Eth, "cid-a", &root, &[h("m2"), h("m1")], 50.0)?;
    s.w.commit()?;
    // Batched: no longer left to anchor.
    assert_eq!(unanchored_names(s)?, ["m3", "m4"]);
    let open = s.r.open_batches(Chain::Eth)?;
    assert_eq!(
        open,
        vec![Batch {
            id,
            chain: Chain::Eth,
            archive: "cid-a".into(),
            merkle_root: root.clone(),
            items: vec![h("m2"), h("m1")],
            created: 50.0,
            submitted: None,
        }]
    );
    assert!(s.r.open_batches(Chain::Bsc)?.is_empty());
    let tx = format!("0x{}", h("txa"));
    s.w.begin()?;
    s.w.batch_submitted(id, "0xdead", 6, 51.0)?;
    // Sent again (a replaced transaction): the last one counts.
    s.w.batch_submitted(id, &tx, 7, 52.0)?;
    s.w.commit()?;
    assert_eq!(
        s.r.open_batches(Chain::Eth)?[0].submitted,
        Some(SubmittedTx {
            tx_hash: tx.clone(),
            nonce: 7,
            submitted_at: 52.0
        })
    );
    // A second batch, on the same chain.
    s.w.begin()?;
    let second =
        s.w.create_batch(Chain::Eth, "cid-b", &root, &[h("m3")], 60.0)?;
    s.w.commit()?;
    assert!(second > id);
    assert_eq!(
        s.r.open_batches(Chain::Eth)?
            .iter()
            .map(|b| b.id)
            .collect::<Vec<_>>(),
        [id, second]
    );
    // An anchor of another chain with the same archive does not close it.
    record(s, &anchor(Chain::Bsc, "other", 3, Some("cid-a")), &["m4"])?;
    assert_eq!(s.r.open_batches(Chain::Eth)?.len(), 2);
    // Its anchor confirms it: no longer open, and its items are anchored.
    assert!(record(
        s,
        &anchor(Chain::Eth, "txa", 20, Some("cid-a")),
        &["m2", "m1"]
    )?);
    assert_eq!(
        s.r.open_batches(Chain::Eth)?
            .iter()
            .map(|b| b.id)
            .collect::<Vec<_>>(),
        [second]
    );
    assert!(unanchored_names(s)?.is_empty());
    // A reorg takes the anchor away: the batch is open again, its items still batched.
    s.w.begin()?;
    assert_eq!(s.w.drop_anchors_from(Chain::Eth, 20)?, 1);
    s.w.commit()?;
    assert_eq!(
        s.r.open_batches(Chain::Eth)?
            .iter()
            .map(|b| b.id)
            .collect::<Vec<_>>(),
        [id, second]
    );
    assert!(unanchored_names(s)?.is_empty());
    // Abandoned: deleted, its items left to anchor again.
    s.w.begin()?;
    s.w.abandon_batch(id)?;
    s.w.commit()?;
    assert_eq!(
        s.r.open_batches(Chain::Eth)?
            .iter()
            .map(|b| b.id)
            .collect::<Vec<_>>(),
        [second]
    );
    assert_eq!(unanchored_names(s)?, ["m1", "m2"]);
    // Abandoning a confirmed batch leaves its items anchored.
    assert!(record(
        s,
        &anchor(Chain::Eth, "txb", 21, Some("cid-b")),
        &["m3"]
    )?);
    s.w.begin()?;
    s.w.abandon_batch(second)?;
    s.w.abandon_batch(12345)?;
    s.w.batch_submitted(12345, &tx, 1, 70.0)?;
    s.w.commit()?;
    assert_eq!(unanchored_names(s)?, ["m1", "m2"]);
    assert!(s.r.open_batches(Chain::Eth)?.is_empty());
    Ok(())
}

fn unanchored_messages(s: &mut Store) -> Result<()> {
    // Oldest reception first, then item hash.
    let mut late = message("a-late", "POST", "0xA", 1.0);
    late.record.reception_time = 9.0;
    add(s, &late)?;
    let mut tie = message("z-tie", "POST", "0xA", 1.0);
    tie.record.reception_time = 5.0;
    add(s, &tie)?;
    let mut tie2 = message("b-tie", "POST", "0xA", 1.0);
    tie2.record.reception_time = 5.0;
    add(s, &tie2)?;
    // Unsigned (from a smart contract): never anchored by a packer.
    let mut unsigned = message("unsigned", "POST", "0xA", 2.0);
    unsigned.record.envelope.signature = None;
    add(s, &unsigned)?;
    // Confirmed before it came here (read from the chain first).
    record(s, &anchor(Chain::Eth, "early", 3, None), &["early"])?;
    add(s, &message("early", "POST", "0xA", 3.0))?;
    // Forgotten: its confirmations stay.
    add(s, &message("forgotten", "POST", "0xA", 4.0))?;
    add(s, &message("gone", "POST", "0xA", 4.5))?;
    record(s, &anchor(Chain::Eth, "tf", 4, None), &["forgotten"])?;
    s.w.begin()?;
    s.w.forget(&h("forgotten"), &h("f"), 10.0, 20.0)?;
    s.w.forget(&h("gone"), &h("f"), 10.0, 20.0)?;
    s.w.commit()?;
    assert_eq!(
        confirmed(s, &["forgotten"])?,
        vec![c("forgotten", "ETH", 4, "tf")]
    );
    // Removing is still served (and anchored); removed is not.
    add(s, &message("removing", "POST", "0xA", 6.0))?;
    add(s, &message("removed", "POST", "0xA", 7.0))?;
    s.w.begin()?;
    s.w.set_status(&h("removing"), MessageStatus::Removing, 6.25)?;
    s.w.set_status(&h("removed"), MessageStatus::Removed, 7.25)?;
    s.w.commit()?;
    assert_eq!(
        unanchored_names(s)?,
        ["b-tie", "z-tie", "removing", "a-late"]
    );
    assert_eq!(hashes(&s.r.unanchored(2)?), ["b-tie", "z-tie"]);
    assert!(s.r.unanchored(0)?.is_empty());
    // The records are the messages, whole.
    let first = s.r.unanchored(1)?.remove(0);
    let held = s.r.message(&h("b-tie"))?.expect("held");
    assert_eq!(
        (
            first.envelope.signature,
            first.content,
            first.reception_time
        ),
        (held.envelope.signature, held.content, held.reception_time)
    );
    // Work in a rolled-back transaction leaves nothing behind.
    s.w.begin()?;
    s.w.create_batch(Chain::Eth, "cid", "0x00", &[h("b-tie")], 1.0)?;
    s.w.record_anchor(&anchor(Chain::Eth, "rolled", 9, None), &[h("z-tie")])?;
    s.w.rollback()?;
    assert_eq!(
        unanchored_names(s)?,
        ["b-tie", "z-tie", "removing", "a-late"]
    );
    assert!(s.r.open_batches(Chain::Eth)?.is_empty());
    Ok(())
}

fn first_confirmation_filters_and_order(s: &mut Store) -> Result<()> {
    // m1..m5 a second apart; m6 comes after its anchor (read from a chain first).
    for (i, n) in ["m1", "m2", "m3", "m4", "m5"].iter().enumerate() {
        add(s, &message(n, "POST", "0xA", i as f64 + 1.0))?;
    }
    let at = |chain, tx: &str, height: u64, time: f64| {
        let mut a = anchor(chain, tx, height, None);
        a.time = time;
        a
    };
    record(s, &at(Chain::Eth, "t20", 20, 200.0), &["m1", "m2"])?;
    // An earlier confirmation on another chain is m2's first: by time, whatever the height.
    record(s, &at(Chain::Bsc, "u50", 50, 150.0), &["m2", "m6"])?;
    record(s, &at(Chain::Eth, "t30", 30, 300.0), &["m3", "m1"])?;
    add(s, &message("m6", "POST", "0xA", 6.0))?;
    // m4, m5 unconfirmed.
    let list = |s: &Store, q: MessageQuery| -> Result<(Vec<String>, u64)> {
        Ok((listed(s, &q)?, s.r.count_messages(&q)?))
    };
    let blocks = |start: Option<u64>, end: Option<u64>| MessageQuery {
        start_block: start,
        end_block: end,
        ..asc()
    };
    // First heights: m1 20, m2 50, m3 30, m6 50.
    assert_eq!(
        list(s, blocks(None, Some(31)))?,
        (strings(&["m1", "m3"]), 2)
    );
    assert_eq!(
        list(s, blocks(Some(30), None))?,
        (strings(&["m2", "m3", "m4", "m5", "m6"]), 5)
    );
    assert_eq!(list(s, blocks(Some(21), Some(50)))?, (strings(&["m3"]), 1));
    let tx_time = |order: SortOrder| MessageQuery {
        sort_by_tx_time: true,
        sort_order: order,
        ..Default::default()
    };
    // Descending: unconfirmed first (newest first), then latest first confirmation first.
    assert_eq!(
        listed(s, &tx_time(SortOrder::Descending))?,
        ["m5", "m4", "m3", "m1", "m6", "m2"]
    );
    // Ascending: earliest first confirmation first (ties by time), unconfirmed last.
    assert_eq!(
        listed(s, &tx_time(SortOrder::Ascending))?,
        ["m2", "m6", "m1", "m3", "m4", "m5"]
    );
    let mut paged = tx_time(SortOrder::Descending);
    paged.limit = 2;
    paged.offset = 2;
    assert_eq!(listed(s, &paged)?, ["m3", "m1"]);
    let mut typed = tx_time(SortOrder::Ascending);
    typed.message_types = strings(&["POST"]);
    typed.end_block = Some(40);
    assert_eq!(listed(s, &typed)?, ["m1", "m3"]);
    // A reorg takes ETH's anchors: m2 and m6 keep BSC's.
    s.w.begin()?;
    s.w.drop_anchors_from(Chain::Eth, 20)?;
    s.w.commit()?;
    assert_eq!(
        list(s, blocks(None, Some(100)))?,
        (strings(&["m2", "m6"]), 2)
    );
    // m1 and m3 are unconfirmed again.
    assert_eq!(
        listed(s, &tx_time(SortOrder::Ascending))?,
        ["m2", "m6", "m1", "m3", "m4", "m5"]
    );
    Ok(())
}

// ---- the rest of the reference's read API ----

fn message_hashes_by_reception(s: &mut Store) -> Result<()> {
    let all = HashQuery::default();
    assert!(s.r.message_hashes(&all)?.is_empty());
    assert_eq!(s.r.count_message_hashes(&all)?, 0);
    // Received at 1.25, 2.25, 3.25 (`message` adds 0.25 to the time).
    for (name, time) in [("m1", 1.0), ("m2", 2.0), ("m3", 3.0)] {
        add(s, &message(name, "POST", "0xA", time))?;
    }
    s.w.begin()?;
    s.w.enqueue_pending(&pending("p1", Some("s"), 1.0))?; // received at 10
    s.w.set_status(&h("r1"), MessageStatus::Rejected, 3.25)?; // ties with m3
    s.w.set_status(&h("m2"), MessageStatus::Removing, 2.25)?;
    s.w.commit()?;
    let mut expected: Vec<(&str, MessageStatus, f64)> = vec![
        ("m1", MessageStatus::Processed, 1.25),
        ("m2", MessageStatus::Removing, 2.25),
        ("m3", MessageStatus::Processed, 3.25),
        ("r1", MessageStatus::Rejected, 3.25),
        ("p1", MessageStatus::Pending, 10.0),
    ];
    // Newest first, ties by item hash ascending, both ways (as the reference).
    expected.sort_by(|a, b| {
        b.2.total_cmp(&a.2)
            .then_with(|| h(a.0).as_str().cmp(h(b.0).as_str()))
    });
    let shown = |q: &HashQuery| -> Result<Vec<(String, MessageStatus, f64)>> {
        Ok(s.r
            .message_hashes(q)?
            .into_iter()
            .map(|r| (name(&r.item_hash), r.status, r.reception_time))
            .collect())
    };
    let want = |rows: &[(&str, MessageStatus, f64)]| -> Vec<(String, MessageStatus, f64)> {
        rows.iter()
            .map(|(n, st, t)| ((*n).to_owned(), *st, *t))
            .collect()
    };
    assert_eq!(shown(&all)?, want(&expected));
    assert_eq!(s.r.count_message_hashes(&all)?, 5);
    let mut ascending = expected.clone();
    ascending.sort_by(|a, b| {
        a.2.total_cmp(&b.2)
            .then_with(|| h(a.0).as_str().cmp(h(b.0).as_str()))
    });
    let asc = HashQuery {
        order: SortOrder::Ascending,
        ..Default::default()
    };
    assert_eq!(shown(&asc)?, want(&ascending));
    // A page.
    let page = HashQuery {
        limit: 2,
        offset: 1,
        ..Default::default()
    };
    assert_eq!(shown(&page)?, want(&expected[1..3]));
    assert_eq!(s.r.count_message_hashes(&page)?, 5);
    // By status: processed ones are not those being removed.
    for (status, names) in [
        (MessageStatus::Processed, vec!["m3", "m1"]),
        (MessageStatus::Removing, vec!["m2"]),
        (MessageStatus::Rejected, vec!["r1"]),
        (MessageStatus::Pending, vec!["p1"]),
        (MessageStatus::Forgotten, vec![]),
    ] {
        let q = HashQuery {
            status: Some(status),
            ..Default::default()
        };
        let got: Vec<String> = shown(&q)?.into_iter().map(|r| r.0).collect();
        assert_eq!(got, names, "{status:?}");
        assert_eq!(s.r.count_message_hashes(&q)?, names.len() as u64);
    }
    // Reception at or after the start, before the end.
    let range = HashQuery {
        start: Some(2.25),
        end: Some(3.25),
        ..Default::default()
    };
    assert_eq!(
        shown(&range)?,
        want(&[("m2", MessageStatus::Removing, 2.25)])
    );
    assert_eq!(s.r.count_message_hashes(&range)?, 1);
    let processed_since = HashQuery {
        status: Some(MessageStatus::Processed),
        start: Some(2.0),
        ..Default::default()
    };
    assert_eq!(
        shown(&processed_since)?,
        want(&[("m3", MessageStatus::Processed, 3.25)])
    );
    Ok(())
}

fn address_channels_and_post_types(s: &mut Store) -> Result<()> {
    assert_eq!(s.r.stored_file_bytes()?, 0);
    assert!(s.r.address_channels("0xA")?.is_empty());
    assert!(s.r.address_post_types("0xA")?.is_empty());
    let messages = [
        ("1", "POST", "0xA", Some("c2"), Some("blog")),
        ("2", "POST", "0xA", Some("c1"), Some("amend")),
        ("3", "POST", "0xA", Some("c1"), Some("blog")),
        ("4", "STORE", "0xA", None, None),
        // Not a POST: its content type is no post type.
        ("5", "AGGREGATE", "0xA", Some("c3"), Some("x")),
        // Another address, and one the first is a prefix of.
        ("6", "POST", "0xB", Some("other"), Some("chat")),
        ("7", "POST", "0xAB", Some("long"), Some("long")),
    ];
    for (hash, kind, sender, channel, content_type) in messages {
        let mut m = message(hash, kind, sender, 1.0);
        m.record.envelope.channel = channel.map(str::to_owned);
        m.content_type = content_type.map(str::to_owned);
        add(s, &m)?;
    }
    assert_eq!(s.r.address_channels("0xA")?, ["c1", "c2", "c3"]);
    assert_eq!(s.r.address_post_types("0xA")?, ["amend", "blog"]);
    assert_eq!(s.r.address_channels("0xAB")?, ["long"]);
    assert_eq!(s.r.address_post_types("0xB")?, ["chat"]);
    assert!(s.r.address_channels("0x")?.is_empty());
    // A value goes when its last message does.
    for hash in ["1", "5"] {
        s.w.begin()?;
        s.w.forget(&h(hash), &h("f"), 10.0, 20.0)?;
        s.w.commit()?;
    }
    assert_eq!(s.r.address_channels("0xA")?, ["c1"]);
    assert_eq!(s.r.address_post_types("0xA")?, ["amend", "blog"]);
    s.w.begin()?;
    s.w.forget(&h("3"), &h("f"), 10.0, 20.0)?;
    s.w.commit()?;
    assert_eq!(s.r.address_post_types("0xA")?, ["amend"]);
    Ok(())
}

/// Every grant to `grantee`, gathered.
fn grants_to(s: &Store, grantee: &str) -> Result<Vec<Grant>> {
    let mut grants = Vec::new();
    s.r.each_grant_to(grantee, &mut |grant| {
        grants.push(grant);
        Ok(())
    })?;
    Ok(grants)
}

fn security_grants_follow_the_aggregate(s: &mut Store) -> Result<()> {
    let owners = |s: &Store, grantee: &str| -> Result<Vec<String>> {
        Ok(grants_to(s, grantee)?
            .into_iter()
            .map(|g| g.owner)
            .collect())
    };
    assert!(owners(s, "0xD")?.is_empty());
    add_element(
        s,
        "s1",
        "0xB",
        "security",
        1.0,
        json!({"authorizations": [{"address": "0xD", "types": ["POST"]}, {"address": "0xE"}]}),
    )?;
    add_element(
        s,
        "s2",
        "0xA",
        "security",
        2.0,
        json!({"authorizations": [{"address": "0xD"}, {"address": "0xD", "chain": "ETH"}]}),
    )?;
    // Another key grants nothing.
    add_element(
        s,
        "p1",
        "0xC",
        "profile",
        3.0,
        json!({"authorizations": [{"address": "0xD"}]}),
    )?;
    assert_eq!(owners(s, "0xD")?, ["0xA", "0xB"]);
    assert_eq!(owners(s, "0xE")?, ["0xB"]);
    let grants = grants_to(s, "0xE")?;
    assert_eq!(
        serde_json::from_str::<Value>(&grants[0].content).expect("json"),
        json!({"authorizations": [{"address": "0xD", "types": ["POST"]}, {"address": "0xE"}]})
    );
    // An error from the visitor ends the read there, and is what the read returns.
    let mut visited = 0;
    let stopped = s.r.each_grant_to("0xD", &mut |_| {
        visited += 1;
        Err(StoreError::Corrupt("enough".into()))
    });
    assert!(
        matches!(stopped, Err(StoreError::Corrupt(_))),
        "{stopped:?}"
    );
    assert_eq!(visited, 1);
    // A newer element replaces the list: 0xE loses its grant.
    add_element(
        s,
        "s3",
        "0xB",
        "security",
        5.0,
        json!({"authorizations": [{"address": "0xF"}]}),
    )?;
    assert!(owners(s, "0xE")?.is_empty());
    assert_eq!(owners(s, "0xD")?, ["0xA"]);
    assert_eq!(owners(s, "0xF")?, ["0xB"]);
    // Forgetting it rebuilds from the older element; forgetting that too removes them all.
    s.w.begin()?;
    s.w.forget(&h("s3"), &h("f"), 10.0, 20.0)?;
    s.w.commit()?;
    assert_eq!(owners(s, "0xE")?, ["0xB"]);
    assert!(owners(s, "0xF")?.is_empty());
    s.w.begin()?;
    s.w.forget(&h("s1"), &h("f"), 10.0, 20.0)?;
    s.w.commit()?;
    assert!(owners(s, "0xE")?.is_empty());
    assert_eq!(owners(s, "0xD")?, ["0xA"]);
    Ok(())
}

/// Random histories (statuses, reception times with ties, forgets) against a plain model:
/// every page of item hashes, its total, and each address's channels and post types.
fn hashes_and_facets_against_a_model(s: &mut Store) -> Result<()> {
    struct Model {
        hash: ItemHash,
        status: MessageStatus,
        reception: f64,
        /// `(sender, channel, post type)` while its `messages` row exists.
        row: Option<(&'static str, Option<&'static str>, Option<&'static str>)>,
    }
    let mut seed: u64 = 0x5eed_0019_ab1e_cafe;
    let mut below = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let senders = ["0xA", "0xAB", "0xB"];
    let channels = [Some("c1"), Some("C1"), None];
    let kinds = ["POST", "POST", "AGGREGATE", "STORE"];
    let post_types = ["blog", "amend", "note"];
    let mut model: Vec<Model> = Vec::new();
    for i in 0..120 {
        let name = format!("m{i:03}");
        let time = below(20) as f64;
        let reception = time + 0.25;
        match below(6) {
            // A status alone: rejected or pending, no message row.
            0 => {
                let status = [MessageStatus::Rejected, MessageStatus::Pending][below(2) as usize];
                s.w.begin()?;
                s.w.set_status(&h(&name), status, reception)?;
                s.w.commit()?;
                model.push(Model {
                    hash: h(&name),
                    status,
                    reception,
                    row: None,
                });
            }
            _ => {
                let sender = senders[below(3) as usize];
                let channel = channels[below(3) as usize];
                let kind = kinds[below(4) as usize];
                let post_type = (kind == "POST").then(|| post_types[below(3) as usize]);
                let mut m = message(&name, kind, sender, time);
                m.record.envelope.channel = channel.map(str::to_owned);
                m.content_type = post_type.map(str::to_owned);
                add(s, &m)?;
                let mut entry = Model {
                    hash: h(&name),
                    status: MessageStatus::Processed,
                    reception,
                    row: Some((sender, channel, post_type)),
                };
                match below(5) {
                    0 => {
                        s.w.begin()?;
                        s.w.forget(&h(&name), &h("forget"), 100.0, 200.0)?;
                        s.w.commit()?;
                        entry.status = MessageStatus::Forgotten;
                        entry.row = None;
                    }
                    1 => {
                        s.w.begin()?;
                        s.w.set_status(&h(&name), MessageStatus::Removing, reception)?;
                        s.w.commit()?;
                        entry.status = MessageStatus::Removing;
                    }
                    _ => {}
                }
                model.push(entry);
            }
        }
    }
    let mut checks = 0;
    for _ in 0..150 {
        let q = HashQuery {
            status: match below(4) {
                0 => Some(MessageStatus::ALL[below(6) as usize]),
                _ => None,
            },
            start: (below(3) == 0).then(|| below(20) as f64),
            end: (below(3) == 0).then(|| below(22) as f64 + 0.25),
            order: [SortOrder::Ascending, SortOrder::Descending][below(2) as usize],
            limit: [0, 1, 7, 30][below(4) as usize],
            offset: below(40),
        };
        let mut want: Vec<&Model> = model
            .iter()
            .filter(|m| q.status.is_none_or(|st| st == m.status))
            .filter(|m| q.start.is_none_or(|t| m.reception >= t))
            .filter(|m| q.end.is_none_or(|t| m.reception < t))
            .collect();
        want.sort_by(|a, b| {
            let by_time = a.reception.total_cmp(&b.reception);
            let by_time = match q.order {
                SortOrder::Ascending => by_time,
                SortOrder::Descending => by_time.reverse(),
            };
            by_time.then_with(|| a.hash.as_str().cmp(b.hash.as_str()))
        });
        let total = want.len() as u64;
        let page: Vec<(String, MessageStatus, f64)> = want
            .into_iter()
            .skip(if q.limit == 0 { 0 } else { q.offset as usize })
            .take(if q.limit == 0 {
                usize::MAX
            } else {
                q.limit as usize
            })
            .map(|m| (m.hash.to_string(), m.status, m.reception))
            .collect();
        let got: Vec<(String, MessageStatus, f64)> =
            s.r.message_hashes(&q)?
                .into_iter()
                .map(|r| (r.item_hash.to_string(), r.status, r.reception_time))
                .collect();
        assert_eq!(got, page, "{q:?}");
        assert_eq!(s.r.count_message_hashes(&q)?, total, "{q:?}");
        checks += 1;
    }
    assert_eq!(checks, 150);
    for sender in senders.into_iter().chain(["0x", "0xAC"]) {
        let rows = model.iter().filter_map(|m| m.row).filter(|r| r.0 == sender);
        let mut channels: Vec<String> = rows
            .clone()
            .filter_map(|r| r.1.map(str::to_owned))
            .collect();
        let mut types: Vec<String> = rows.filter_map(|r| r.2.map(str::to_owned)).collect();
        for values in [&mut channels, &mut types] {
            values.sort();
            values.dedup();
        }
        assert_eq!(s.r.address_channels(sender)?, channels, "{sender}");
        assert_eq!(s.r.address_post_types(sender)?, types, "{sender}");
    }
    Ok(())
}
