//! The pipeline end to end on a real SQLite store, with real signatures.

use std::sync::Arc;
use std::time::Duration;

use raleph_crypto::{EthSigner, SignedFields};
use raleph_db::sqlite::{Durability, SqliteReader, open};
use raleph_db::{ErrorCode, MessageQuery, MessageStatus, PostQuery, ReadStore};
use raleph_message::{Chain, Envelope, ItemType, MessageType, sha256_hex};
use raleph_storage::FileStore;
use serde_json::{Value, json};

use super::*;

struct Files(FileStore);

impl ContentSource for Files {
    fn load(&self, _: ItemType, hash: &str) -> std::io::Result<Option<Vec<u8>>> {
        self.0.get(hash).map_err(std::io::Error::other)
    }
    fn file(&self, id: &str) -> std::io::Result<Option<raleph_db::FileRecord>> {
        let info = self.0.info(id).map_err(std::io::Error::other)?;
        Ok(info.map(|i| raleph_db::FileRecord {
            sha256: i.sha256,
            size: i.size,
            cid_v0: i.cid_v0,
            cid_v1: i.cid_v1,
            created: crate::now(),
        }))
    }
    fn delete_file(&self, sha256: &str) -> std::io::Result<()> {
        self.0.delete(sha256).map_err(std::io::Error::other)
    }
    fn list_files(&self) -> std::io::Result<Vec<(String, std::time::SystemTime)>> {
        let mut files = Vec::new();
        for sha256 in self.0.list().map_err(std::io::Error::other)? {
            if let Some(at) = self.0.stored_at(&sha256).map_err(std::io::Error::other)? {
                files.push((sha256, at));
            }
        }
        Ok(files)
    }
}

/// An upload as the API hands it to the writer.
struct Upload(raleph_storage::PendingFile);

impl PendingUpload for Upload {
    fn commit(self: Box<Self>) -> std::io::Result<raleph_db::FileRecord> {
        let info = self.0.commit().map_err(std::io::Error::other)?;
        Ok(raleph_db::FileRecord {
            sha256: info.sha256,
            size: info.size,
            cid_v0: info.cid_v0,
            cid_v1: info.cid_v1,
            created: crate::now(),
        })
    }
}

async fn upload(node: &Node, bytes: &[u8], grace: bool) -> raleph_db::FileRecord {
    let mut writer = node.files.writer(u64::MAX, false).expect("writer");
    writer.write(bytes).expect("write");
    let pending = writer.finish().expect("finish");
    node.handle
        .store_file(Box::new(Upload(pending)), grace)
        .await
        .expect("store file")
}

struct Node {
    handle: PipelineHandle,
    /// The pipeline's clock: moved on by the tests of time rules, still otherwise.
    clock: ManualClock,
    reader: SqliteReader,
    files: FileStore,
    _dir: tempfile::TempDir,
}

fn node_with(config: PipelineConfig) -> Node {
    node_in(tempfile::tempdir().expect("tempdir"), config)
}

/// A pipeline over the store, files and journal in `dir` (reopened if they exist).
fn node_in(dir: tempfile::TempDir, config: PipelineConfig) -> Node {
    let (writer, reader) =
        open(&dir.path().join("index.sqlite"), Durability::Normal).expect("open");
    let files = FileStore::open(dir.path().join("files")).expect("files");
    let clock = ManualClock::starting_now();
    let (handle, _thread) = spawn(
        Box::new(writer),
        Arc::new(Files(files.clone())),
        Arc::new(NoPayments),
        config,
        &dir.path().join("intake"),
        Arc::new(clock.clone()),
    )
    .expect("spawn");
    Node {
        handle,
        clock,
        reader,
        files,
        _dir: dir,
    }
}

fn node() -> Node {
    node_with(PipelineConfig::default())
}

fn signed(
    signer: &EthSigner,
    message_type: MessageType,
    content: Value,
    channel: &str,
    time: f64,
) -> Envelope {
    let item_content = content.to_string();
    let item_hash = sha256_hex(item_content.as_bytes());
    sign(
        signer,
        message_type,
        Some(item_content),
        item_hash,
        channel,
        time,
    )
}

fn sign(
    signer: &EthSigner,
    message_type: MessageType,
    item_content: Option<String>,
    item_hash: String,
    channel: &str,
    time: f64,
) -> Envelope {
    let sender = signer.address();
    let fields = SignedFields {
        chain: Chain::Eth,
        sender: &sender,
        message_type: message_type.as_str(),
        item_hash: &item_hash,
        time,
    };
    let signature = signer.sign_message(&fields);
    Envelope::from_json(&json!({
        "sender": sender, "chain": "ETH", "signature": signature, "type": message_type.as_str(),
        "item_content": item_content, "item_hash": item_hash, "time": time, "channel": channel,
    }))
    .expect("valid envelope")
}

fn post(
    signer: &EthSigner,
    address: &str,
    post_type: &str,
    payload: Value,
    reference: Option<&str>,
    time: f64,
) -> Envelope {
    let mut content =
        json!({"address": address, "time": time, "type": post_type, "content": payload});
    if let Some(r) = reference {
        content["ref"] = r.into();
    }
    signed(signer, MessageType::Post, content, "TEST", time)
}

fn aggregate(signer: &EthSigner, address: &str, key: &str, payload: Value, time: f64) -> Envelope {
    let content = json!({"address": address, "time": time, "key": key, "content": payload});
    signed(signer, MessageType::Aggregate, content, "TEST", time)
}

/// An aggregate key a FORGET can name: the reference types FORGET `aggregates` as item hashes.
const KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn forget(signer: &EthSigner, hashes: &[&str], time: f64) -> Envelope {
    let content = json!({"address": signer.address(), "time": time, "hashes": hashes});
    signed(signer, MessageType::Forget, content, "TEST", time)
}

/// Submits and waits for the message's decisive event.
async fn run(node: &Node, envelope: Envelope) -> Event {
    let mut events = node.handle.subscribe();
    let hash = envelope.item_hash.clone();
    match node.handle.submit(envelope, "test").await.expect("submit") {
        SubmitOutcome::Queued => {}
        SubmitOutcome::Rejected(failure) => {
            return Event::Rejected {
                item_hash: hash,
                failure,
            };
        }
        SubmitOutcome::Known(_) => {
            // Processed at intake: its event was sent before the reply. A copy of a known
            // message sends none.
            while let Ok(event) = events.try_recv() {
                if *event.item_hash() == hash {
                    return event;
                }
            }
            return Event::Confirmed { item_hash: hash };
        }
    }
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let event = events.recv().await.expect("events");
            if *event.item_hash() == hash {
                return event;
            }
        }
    })
    .await
    .expect("an event in time")
}

fn processed(event: &Event) -> bool {
    matches!(event, Event::Processed(_))
}

fn rejected_with(event: &Event) -> Option<ErrorCode> {
    match event {
        Event::Rejected { failure, .. } | Event::Retrying { failure, .. } => Some(failure.code),
        _ => None,
    }
}

fn status(node: &Node, hash: &ItemHash) -> Option<MessageStatus> {
    node.reader.status(hash).expect("status").map(|s| s.status)
}

fn now_secs() -> f64 {
    crate::now()
}

#[tokio::test(flavor = "multi_thread")]
async fn posts_and_amends() {
    let node = node();
    let alice = EthSigner::new_random();
    let me = alice.address();
    let t = now_secs();
    let original = post(&alice, &me, "note", json!({"v": 1}), None, t);
    let original_hash = original.item_hash.clone();
    assert!(processed(&run(&node, original).await));
    let amend = post(
        &alice,
        &me,
        "amend",
        json!({"v": 2}),
        Some(original_hash.as_str()),
        t + 1.0,
    );
    let amend_hash = amend.item_hash.clone();
    assert!(processed(&run(&node, amend).await));
    let posts = node
        .reader
        .posts(&PostQuery {
            addresses: vec![me.clone()],
            ..Default::default()
        })
        .expect("posts");
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].original_item_hash, original_hash);
    assert_eq!(posts[0].latest_item_hash, amend_hash);
    assert_eq!(posts[0].latest_content.as_deref(), Some(r#"{"v":2}"#));
    // An amend of an amend is refused; so is an amend by someone else.
    let nested = post(
        &alice,
        &me,
        "amend",
        json!({"v": 3}),
        Some(amend_hash.as_str()),
        t + 2.0,
    );
    assert_eq!(
        rejected_with(&run(&node, nested).await),
        Some(ErrorCode::PostAmendAmend)
    );
    let mallory = EthSigner::new_random();
    let foreign = post(
        &mallory,
        &mallory.address(),
        "amend",
        json!({"v": 4}),
        Some(original_hash.as_str()),
        t + 3.0,
    );
    assert_eq!(
        rejected_with(&run(&node, foreign).await),
        Some(ErrorCode::PermissionDenied)
    );
    // An amend without a ref is malformed, as the reference's content model has it.
    let bare = post(&alice, &me, "amend", json!({}), None, t + 4.0);
    assert_eq!(
        rejected_with(&run(&node, bare).await),
        Some(ErrorCode::InvalidFormat)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn amend_waits_for_its_original() {
    let node = node_with(PipelineConfig {
        max_retries: 20,
        ..Default::default()
    });
    let alice = EthSigner::new_random();
    let me = alice.address();
    let t = now_secs();
    let original = post(&alice, &me, "note", json!({"v": 1}), None, t);
    let amend = post(
        &alice,
        &me,
        "amend",
        json!({"v": 2}),
        Some(original.item_hash.as_str()),
        t + 1.0,
    );
    let amend_hash = amend.item_hash.clone();
    // The amend arrives first: it is retried, not rejected.
    assert_eq!(
        rejected_with(&run(&node, amend).await),
        Some(ErrorCode::PostAmendTargetNotFound)
    );
    assert_eq!(status(&node, &amend_hash), Some(MessageStatus::Pending));
    assert!(processed(&run(&node, original).await));
    let mut events = node.handle.subscribe();
    // Its first retry is due within a second of the pipeline's clock.
    node.clock.advance(Duration::from_secs(1));
    tokio::time::timeout(Duration::from_secs(10), async {
        while status(&node, &amend_hash) != Some(MessageStatus::Processed) {
            let _ = tokio::time::timeout(Duration::from_millis(200), events.recv()).await;
        }
    })
    .await
    .expect("the amend is processed once its original is");
}

#[tokio::test(flavor = "multi_thread")]
async fn aggregates_merge_by_content_time() {
    let node = node();
    let alice = EthSigner::new_random();
    let me = alice.address();
    let t = now_secs();
    // Submitted newest first: the merge still follows content time.
    assert!(processed(
        &run(
            &node,
            aggregate(
                &alice,
                &me,
                "profile",
                json!({"a": {"y": 2}, "b": null}),
                t + 1.0
            )
        )
        .await
    ));
    assert!(processed(
        &run(
            &node,
            aggregate(
                &alice,
                &me,
                "profile",
                json!({"a": {"x": 1}, "b": 1, "c": 1}),
                t
            )
        )
        .await
    ));
    let aggs = node
        .reader
        .aggregates_of(&me, &["profile".to_owned()])
        .expect("aggregates");
    let value: Value = serde_json::from_str(&aggs[0].content).expect("json");
    assert_eq!(value, json!({"a": {"y": 2}, "b": null, "c": 1}));
}

#[tokio::test(flavor = "multi_thread")]
async fn delegation_through_the_security_aggregate() {
    let node = node();
    let owner = EthSigner::new_random();
    let delegate = EthSigner::new_random();
    let owner_address = owner.address();
    let t = now_secs();
    let grant = json!({"authorizations": [{
        "address": delegate.address().to_lowercase(), "types": ["POST"], "post_types": ["blog"], "channels": ["TEST"]
    }]});
    assert!(processed(
        &run(
            &node,
            aggregate(&owner, &owner_address, "security", grant, t)
        )
        .await
    ));
    let allowed = post(
        &delegate,
        &owner_address,
        "blog",
        json!({"by": "delegate"}),
        None,
        t + 1.0,
    );
    assert!(processed(&run(&node, allowed).await));
    let wrong_type = post(&delegate, &owner_address, "other", json!({}), None, t + 2.0);
    assert_eq!(
        rejected_with(&run(&node, wrong_type).await),
        Some(ErrorCode::PermissionDenied)
    );
    let stranger = EthSigner::new_random();
    let denied = post(&stranger, &owner_address, "blog", json!({}), None, t + 3.0);
    assert_eq!(
        rejected_with(&run(&node, denied).await),
        Some(ErrorCode::PermissionDenied)
    );
    let not_aggregates = aggregate(
        &delegate,
        &owner_address,
        "profile",
        json!({"x": 1}),
        t + 4.0,
    );
    assert_eq!(
        rejected_with(&run(&node, not_aggregates).await),
        Some(ErrorCode::PermissionDenied)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn forget_rules() {
    let node = node();
    let alice = EthSigner::new_random();
    let me = alice.address();
    let t = now_secs();
    let target = post(&alice, &me, "note", json!({"secret": true}), None, t);
    let target_hash = target.item_hash.clone();
    assert!(processed(&run(&node, target).await));
    let mallory = EthSigner::new_random();
    assert_eq!(
        rejected_with(&run(&node, forget(&mallory, &[target_hash.as_str()], t + 1.0)).await),
        Some(ErrorCode::PermissionDenied)
    );
    assert_eq!(
        rejected_with(&run(&node, forget(&alice, &[], t + 2.0)).await),
        Some(ErrorCode::ForgetNoTarget)
    );
    let forget_msg = forget(&alice, &[target_hash.as_str()], t + 3.0);
    let forget_hash = forget_msg.item_hash.clone();
    assert!(processed(&run(&node, forget_msg).await));
    assert_eq!(status(&node, &target_hash), Some(MessageStatus::Forgotten));
    let skeleton = node
        .reader
        .forgotten(&target_hash)
        .expect("read")
        .expect("skeleton");
    assert_eq!(skeleton.forgotten_by, vec![forget_hash.clone()]);
    assert!(node.reader.message(&target_hash).expect("read").is_none());
    let posts = node
        .reader
        .posts(&PostQuery {
            addresses: vec![me.clone()],
            ..Default::default()
        })
        .expect("posts");
    assert!(posts.is_empty());
    assert_eq!(
        rejected_with(&run(&node, forget(&alice, &[forget_hash.as_str()], t + 4.0)).await),
        Some(ErrorCode::ForgetForget)
    );
}

/// A FORGET signed by `signer` for `address`, naming `hashes` and aggregate `keys`.
fn forget_for(
    signer: &EthSigner,
    address: &str,
    hashes: &[&str],
    keys: &[&str],
    time: f64,
) -> Envelope {
    let content = json!({"address": address, "time": time, "hashes": hashes, "aggregates": keys});
    signed(signer, MessageType::Forget, content, "TEST", time)
}

/// The reference's rule (spec 2.7): a FORGET passes the check every message passes on its own
/// `content.address`, then forgets only messages its own sender sent.
#[tokio::test(flavor = "multi_thread")]
async fn forget_only_what_its_sender_sent() {
    let node = node();
    let owner = EthSigner::new_random();
    let delegate = EthSigner::new_random();
    let (me, them) = (owner.address(), delegate.address());
    let t = now_secs();
    // The delegate may do anything for the owner, FORGET included.
    let grant = json!({"authorizations": [{"address": them}]});
    assert!(processed(
        &run(&node, aggregate(&owner, &me, "security", grant, t)).await
    ));
    let post_of =
        |signer: &EthSigner, n: f64| post(signer, &me, "note", json!({"n": n}), None, t + n);
    let owners = post_of(&owner, 1.0);
    let delegates = post_of(&delegate, 2.0);
    let (owners_hash, delegates_hash) = (owners.item_hash.clone(), delegates.item_hash.clone());
    assert!(processed(&run(&node, owners).await));
    assert!(processed(&run(&node, delegates).await));
    let denied = Some(ErrorCode::PermissionDenied);

    // A delegate never forgets the owner's message, for itself or for the owner.
    let by_delegate = forget_for(&delegate, &them, &[owners_hash.as_str()], &[], t + 10.0);
    assert_eq!(rejected_with(&run(&node, by_delegate).await), denied);
    let for_owner = forget_for(&delegate, &me, &[owners_hash.as_str()], &[], t + 11.0);
    assert_eq!(rejected_with(&run(&node, for_owner).await), denied);
    // An owner cannot forget what its delegate sent for it.
    let by_owner = forget_for(&owner, &me, &[delegates_hash.as_str()], &[], t + 12.0);
    assert_eq!(rejected_with(&run(&node, by_owner).await), denied);
    // Nobody sends a FORGET for an address that granted it nothing, even to forget its own.
    let stranger = EthSigner::new_random();
    let named = forget_for(
        &owner,
        &stranger.address(),
        &[owners_hash.as_str()],
        &[],
        t + 13.0,
    );
    assert_eq!(rejected_with(&run(&node, named).await), denied);
    let granted_posts = json!({"authorizations": [{"address": me, "types": ["POST"]}]});
    let theirs = stranger.address();
    assert!(processed(
        &run(
            &node,
            aggregate(&stranger, &theirs, "security", granted_posts, t)
        )
        .await
    ));
    let named = forget_for(&owner, &theirs, &[owners_hash.as_str()], &[], t + 14.0);
    assert_eq!(rejected_with(&run(&node, named).await), denied);
    assert_eq!(status(&node, &owners_hash), Some(MessageStatus::Processed));
    assert_eq!(
        status(&node, &delegates_hash),
        Some(MessageStatus::Processed)
    );

    // The delegate forgets what it sent, sending the FORGET for the owner (its grant covers
    // FORGET)...
    let forget = forget_for(&delegate, &me, &[delegates_hash.as_str()], &[], t + 15.0);
    assert!(processed(&run(&node, forget).await));
    assert_eq!(
        status(&node, &delegates_hash),
        Some(MessageStatus::Forgotten)
    );
    // ... and the owner what it sent.
    let forget = forget_for(&owner, &me, &[owners_hash.as_str()], &[], t + 16.0);
    assert!(processed(&run(&node, forget).await));
    assert_eq!(status(&node, &owners_hash), Some(MessageStatus::Forgotten));

    // Aggregate keys: the elements of `content.address`'s key, each sent by the FORGET's
    // sender. An element the delegate sent stops a key forget by the owner.
    let element = |signer: &EthSigner, n: f64| aggregate(signer, &me, KEY, json!({"n": n}), t + n);
    let owners_element = element(&owner, 20.0);
    let owners_element_hash = owners_element.item_hash.clone();
    assert!(processed(&run(&node, owners_element).await));
    let by_delegate = forget_for(&delegate, &me, &[], &[KEY], t + 21.0);
    assert_eq!(rejected_with(&run(&node, by_delegate).await), denied);
    let delegates_element = element(&delegate, 22.0);
    assert!(processed(&run(&node, delegates_element).await));
    let by_owner = forget_for(&owner, &me, &[], &[KEY], t + 23.0);
    assert_eq!(rejected_with(&run(&node, by_owner).await), denied);
    assert!(
        !node
            .reader
            .aggregates_of(&me, &[KEY.to_owned()])
            .expect("read")
            .is_empty()
    );
    // Once the delegate forgot its element by hash, the owner's key forget goes through.
    let delegates_element_hash = element(&delegate, 22.0).item_hash.clone();
    let forget = forget_for(
        &delegate,
        &me,
        &[delegates_element_hash.as_str()],
        &[],
        t + 24.0,
    );
    assert!(processed(&run(&node, forget).await));
    let by_owner = forget_for(&owner, &me, &[], &[KEY], t + 25.0);
    assert!(processed(&run(&node, by_owner).await));
    assert_eq!(
        status(&node, &owners_element_hash),
        Some(MessageStatus::Forgotten)
    );
    assert!(
        node.reader
            .aggregates_of(&me, &[KEY.to_owned()])
            .expect("read")
            .is_empty()
    );
}

/// What a peer syncs of an aggregate element it forgot: its signed fields, and the FORGET.
fn skeleton(element: &Envelope, forgotten_by: &ItemHash) -> raleph_db::ForgottenRecord {
    raleph_db::ForgottenRecord {
        envelope: Envelope {
            item_content: None,
            ..element.clone()
        },
        owner: element.sender.clone(),
        payment_type: None,
        size: 10,
        forgotten_by: vec![forgotten_by.clone()],
        forgotten_at: element.time + 1.0,
        reception_time: element.time + 1.0,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn aggregate_keys_forgotten_on_a_peer() {
    let node = node();
    let alice = EthSigner::new_random();
    let me = alice.address();
    let t = now_secs();
    let forget_key = |time| {
        let content = json!({"address": me, "time": time, "hashes": [], "aggregates": [KEY]});
        signed(&alice, MessageType::Forget, content, "TEST", time)
    };
    let value = |key: &str| {
        node.reader
            .aggregates_of(&me, &[key.to_owned()])
            .expect("aggregates")
            .into_iter()
            .next()
    };
    // With neither elements nor skeletons of the key here, the FORGET waits, as before.
    assert_eq!(
        rejected_with(&run(&node, forget_key(t - 1.0)).await),
        Some(ErrorCode::ForgetTargetNotFound)
    );

    // A peer forgot `forgotten` (key KEY) by key before this node saw it: the skeleton is
    // recorded, and then the FORGET finds what it forgot.
    let forgotten = aggregate(&alice, &me, KEY, json!({"a": 1}), t);
    let forget = forget_key(t + 10.0);
    let forget_hash = forget.item_hash.clone();
    let recorded = node
        .handle
        .record_forgotten(skeleton(&forgotten, &forget_hash));
    assert!(recorded.await.expect("record"));
    assert!(processed(&run(&node, forget).await));
    // A copy that arrives later stays forgotten: its key is the one the FORGET targets.
    let forgotten_hash = forgotten.item_hash.clone();
    run(&node, forgotten).await;
    assert_eq!(
        status(&node, &forgotten_hash),
        Some(MessageStatus::Forgotten)
    );
    assert!(value(KEY).is_none());

    // A peer's false word: an element of another key, said forgotten by the same FORGET.
    let other = aggregate(&alice, &me, "other", json!({"b": 2}), t + 1.0);
    let other_hash = other.item_hash.clone();
    let recorded = node.handle.record_forgotten(skeleton(&other, &forget_hash));
    assert!(recorded.await.expect("record"));
    assert_eq!(status(&node, &other_hash), Some(MessageStatus::Forgotten));
    // Its copy disproves the word: the element is processed after all.
    assert!(processed(&run(&node, other).await));
    assert_eq!(status(&node, &other_hash), Some(MessageStatus::Processed));
    assert!(node.reader.forgotten(&other_hash).expect("read").is_none());
    assert_eq!(value("other").map(|a| a.content), Some(r#"{"b":2}"#.into()));

    // An element of the key that arrived here after the FORGET (from a peer that had not
    // processed it) is forgotten when the skeleton from a peer that forgot it comes.
    let late = aggregate(&alice, &me, KEY, json!({"c": 3}), t + 2.0);
    let late_hash = late.item_hash.clone();
    assert!(processed(&run(&node, late.clone()).await));
    assert!(value(KEY).is_some());
    let recorded = node.handle.record_forgotten(skeleton(&late, &forget_hash));
    assert!(recorded.await.expect("record"));
    assert_eq!(status(&node, &late_hash), Some(MessageStatus::Forgotten));
    assert!(value(KEY).is_none());
    // But a held element of another key is not, whatever the skeleton says.
    let recorded = node.handle.record_forgotten(skeleton(
        &aggregate(&alice, &me, "other", json!({"b": 2}), t + 1.0),
        &forget_hash,
    ));
    assert!(!recorded.await.expect("record"));
    assert_eq!(status(&node, &other_hash), Some(MessageStatus::Processed));
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicates_keep_the_earliest_time() {
    let node = node();
    let alice = EthSigner::new_random();
    let me = alice.address();
    let t = now_secs();
    let message = post(&alice, &me, "note", json!({}), None, t);
    let hash = message.item_hash.clone();
    assert!(processed(&run(&node, message.clone()).await));
    // Envelope time is not signed: a copy may carry another one, and the earliest is kept.
    let mut earlier = message.clone();
    earlier.time = t - 100.0;
    let outcome = node.handle.submit(earlier, "test").await.expect("submit");
    assert_eq!(outcome, SubmitOutcome::Known(MessageStatus::Processed));
    let stored = node.reader.message(&hash).expect("read").expect("stored");
    assert_eq!(stored.envelope.time, t - 100.0);
    let query = MessageQuery {
        addresses: vec![me],
        ..Default::default()
    };
    assert_eq!(node.reader.count_messages(&query).expect("count"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_signatures_are_rejected_and_do_not_block_the_real_message() {
    let node = node();
    let alice = EthSigner::new_random();
    let me = alice.address();
    let good = post(&alice, &me, "note", json!({}), None, now_secs());
    let hash = good.item_hash.clone();
    let mut forged = good.clone();
    forged.signature = Some(EthSigner::new_random().sign_message(&SignedFields {
        chain: Chain::Eth,
        sender: &me,
        message_type: "POST",
        item_hash: hash.as_str(),
        time: 0.0,
    }));
    assert_eq!(
        rejected_with(&run(&node, forged).await),
        Some(ErrorCode::InvalidSignature)
    );
    assert_eq!(status(&node, &hash), Some(MessageStatus::Rejected));
    assert!(processed(&run(&node, good).await));
    assert_eq!(status(&node, &hash), Some(MessageStatus::Processed));
}

#[tokio::test(flavor = "multi_thread")]
async fn storage_content_and_store_files() {
    let node = node();
    let alice = EthSigner::new_random();
    let me = alice.address();
    let t = now_secs();
    let content =
        json!({"address": me, "time": t, "type": "note", "content": {"big": "x".repeat(100)}});
    let hash = node
        .files
        .put_bytes(content.to_string().as_bytes(), false)
        .expect("put")
        .sha256;
    let message = sign(&alice, MessageType::Post, None, hash.clone(), "TEST", t);
    assert!(processed(&run(&node, message).await));
    // A STORE whose file the node lacks waits; once the file is there it is processed.
    let file = b"file bytes".to_vec();
    let file_hash = sha256_hex(&file);
    let store = signed(
        &alice,
        MessageType::Store,
        json!({"address": me, "time": t, "item_type": "storage", "item_hash": file_hash}),
        "TEST",
        t,
    );
    let store_hash = store.item_hash.clone();
    assert_eq!(
        rejected_with(&run(&node, store).await),
        Some(ErrorCode::FileUnavailable)
    );
    node.files.put_bytes(&file, false).expect("put file");
    // Its first retry is due within a second of the pipeline's clock, which is still.
    assert_eq!(status(&node, &store_hash), Some(MessageStatus::Pending));
    node.clock.advance(Duration::from_secs(1));
    // The writer looks at the pending queue at least twice a second.
    tokio::time::timeout(Duration::from_secs(10), async {
        while status(&node, &store_hash) != Some(MessageStatus::Processed) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the STORE is processed once its file is available and its retry is due");
}

#[tokio::test(flavor = "multi_thread")]
async fn pins_grace_periods_and_garbage_collection() {
    // Files on disk carry real times, the pipeline's clock starts at the real time: moving it
    // on by far more than the grace period makes the orphan below old enough too, however
    // long the test takes to get there.
    let grace = Duration::from_secs(100);
    let node = node_with(PipelineConfig {
        file_grace_period_secs: grace.as_secs_f64(),
        ..Default::default()
    });
    let alice = EthSigner::new_random();
    let me = alice.address();
    let t = now_secs();
    let pinned = upload(&node, b"pinned by a STORE", true).await;
    let store = signed(
        &alice,
        MessageType::Store,
        json!({"address": me, "time": t, "item_type": "storage", "item_hash": pinned.sha256}),
        "TEST",
        t,
    );
    let store_hash = store.item_hash.clone();
    assert!(processed(&run(&node, store).await));
    let unclaimed = upload(&node, b"never claimed", true).await;
    // A file written but never recorded (as after a crash between the two).
    let orphan = node.files.put_bytes(b"orphan", false).expect("put").sha256;

    // Nothing goes during the grace period...
    assert_eq!(node.handle.collect_garbage().await.expect("gc"), 0);
    node.clock.advance(grace * 10);
    // ... and after it, all but the pinned file.
    assert_eq!(node.handle.collect_garbage().await.expect("gc"), 2);
    assert!(
        node.files.contains(&pinned.sha256),
        "a pinned file is never collected"
    );
    assert!(!node.files.contains(&unclaimed.sha256));
    assert!(!node.files.contains(&orphan));

    // FORGET releases the pin; the file outlives the grace period, then goes.
    assert!(processed(
        &run(&node, forget(&alice, &[store_hash.as_str()], t + 1.0)).await
    ));
    assert_eq!(node.handle.collect_garbage().await.expect("gc"), 0);
    assert!(
        node.files.contains(&pinned.sha256),
        "kept during the grace period"
    );
    node.clock.advance(grace - Duration::from_secs(1));
    assert_eq!(node.handle.collect_garbage().await.expect("gc"), 0);
    node.clock.advance(Duration::from_secs(2));
    assert_eq!(node.handle.collect_garbage().await.expect("gc"), 1);
    assert!(!node.files.contains(&pinned.sha256));
}

#[tokio::test(flavor = "multi_thread")]
async fn store_versions_and_volume_sizes() {
    let node = node();
    let alice = EthSigner::new_random();
    let me = alice.address();
    let t = now_secs();
    let v1 = upload(&node, b"version 1", false).await;
    let v2 = upload(&node, &vec![7u8; 3 * 1024 * 1024], false).await;
    let store = |hash: &str, reference: Option<&str>, time: f64| {
        let mut content =
            json!({"address": me, "time": time, "item_type": "storage", "item_hash": hash});
        if let Some(r) = reference {
            content["ref"] = r.into();
        }
        signed(&alice, MessageType::Store, content, "TEST", time)
    };
    let original = store(&v1.sha256, None, t);
    let original_hash = original.item_hash.clone();
    assert!(processed(&run(&node, original).await));
    let update = store(&v2.sha256, Some(original_hash.as_str()), t + 1.0);
    let update_hash = update.item_hash.clone();
    assert!(processed(&run(&node, update).await));
    let nested = store(&v1.sha256, Some(update_hash.as_str()), t + 2.0);
    assert_eq!(
        rejected_with(&run(&node, nested).await),
        Some(ErrorCode::StoreUpdateUpdate)
    );
    let tagged = node
        .reader
        .file_of_tag(original_hash.as_str())
        .expect("read")
        .expect("tag");
    assert_eq!(
        tagged.file_hash, v2.sha256,
        "the tag follows the newest version"
    );

    // An instance whose rootfs (the tag, now 3 MiB) does not fit its 1 MiB disk is refused.
    let instance = json!({
        "address": me, "time": t + 3.0, "allow_amend": false,
        "rootfs": {"parent": {"ref": original_hash, "use_latest": true}, "persistence": "host", "size_mib": 1},
        "resources": {"vcpus": 1, "memory": 128, "seconds": 30},
        "environment": {"internet": true, "aleph_api": true, "hypervisor": "qemu", "reproducible": false, "shared_cache": false},
        "payment": {"type": "hold", "chain": "ETH"},
    });
    let too_small = signed(&alice, MessageType::Instance, instance, "TEST", t + 3.0);
    assert_eq!(
        rejected_with(&run(&node, too_small).await),
        Some(ErrorCode::VmVolumeTooSmall)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn relayed_messages_trickling_in_are_gathered_and_all_applied() {
    let node = node_with(PipelineConfig {
        gather_ms: 30.0,
        ..PipelineConfig::default()
    });
    let signer = EthSigner::new_random();
    let a = signer.address();
    let mut events = node.handle.subscribe();
    let mut hashes = std::collections::BTreeSet::new();
    for n in 0..5 {
        let message = post(
            &signer,
            &a,
            "blog",
            json!({ "n": n }),
            None,
            10.0 + n as f64,
        );
        hashes.insert(message.item_hash.clone());
        let outcome = node.handle.offer(message, "peer").await.expect("offer");
        assert_eq!(outcome, SubmitOutcome::Queued);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tokio::time::timeout(Duration::from_secs(10), async {
        while !hashes.is_empty() {
            let event = events.recv().await.expect("events");
            assert!(processed(&event), "{event:?}");
            hashes.remove(event.item_hash());
        }
    })
    .await
    .expect("every relayed message processed in time");
}

#[tokio::test(flavor = "multi_thread")]
async fn accepted_messages_are_journaled_then_applied_and_replayed_after_a_stop() {
    let signer = EthSigner::new_random();
    let a = signer.address();
    let node = node();
    // `accept` answers once durable; processing follows.
    let first = post(&signer, &a, "blog", json!({"n": 1}), None, 10.0);
    let hash = first.item_hash.clone();
    let mut events = node.handle.subscribe();
    assert_eq!(
        node.handle.accept(first, "test").await.expect("accept"),
        SubmitOutcome::Queued
    );
    let event = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let event = events.recv().await.expect("events");
            if *event.item_hash() == hash {
                return event;
            }
        }
    })
    .await
    .expect("processed in time");
    assert!(processed(&event), "{event:?}");
    // A bad signature is refused at once, and never journaled.
    let mut forged = post(&signer, &a, "blog", json!({"n": 2}), None, 11.0);
    forged.signature = Some(format!("0x{}", "11".repeat(65)));
    assert!(matches!(
        node.handle.accept(forged, "test").await.expect("accept"),
        SubmitOutcome::Rejected(_)
    ));

    // Submissions journaled by a node that stopped before applying them (as a kill would
    // leave them) are applied when the pipeline starts again, in journal order.
    let Node {
        handle, _dir: dir, ..
    } = node;
    drop(handle);
    let pending: Vec<Envelope> = (0..3)
        .map(|n| {
            post(
                &signer,
                &a,
                "blog",
                json!({"n": 10 + n}),
                None,
                20.0 + n as f64,
            )
        })
        .collect();
    {
        let position = {
            let (mut writer, _) =
                open(&dir.path().join("index.sqlite"), Durability::Normal).expect("open");
            raleph_db::WriteStore::journal_position(&mut writer).expect("position")
        };
        assert_eq!(position, 1, "the first message's record was applied");
        // The stopped pipeline's writer thread may still hold the store: wait for its journal
        // to be free by opening it only now, after the position read above.
        let (mut journal, unapplied) =
            journal::Journal::open(&dir.path().join("intake"), position, true).expect("journal");
        assert!(unapplied.is_empty());
        journal
            .append(pending.iter().map(|e| (e, "api", 30.0)))
            .expect("append");
    }
    let node = node_in(dir, PipelineConfig::default());
    for envelope in &pending {
        let hash = &envelope.item_hash;
        let applied = tokio::time::timeout(Duration::from_secs(10), async {
            while status(&node, hash) != Some(MessageStatus::Processed) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(applied.is_ok(), "journaled message {hash} applied at start");
        let stored = node.reader.message(hash).expect("message").expect("stored");
        assert_eq!(
            stored.reception_time, 30.0,
            "reception time kept from the journal"
        );
    }
    // Applied records are not replayed again.
    let Node {
        handle, _dir: dir, ..
    } = node;
    drop(handle);
    let (mut writer, _) = open(&dir.path().join("index.sqlite"), Durability::Normal).expect("open");
    assert_eq!(
        raleph_db::WriteStore::journal_position(&mut writer).expect("position"),
        4
    );
}

/// Inline content is checked when the message is submitted, as the reference's pending-message
/// model does: a bad one is refused at once (the API's 422), and it must carry its own address
/// and time. Stored content gets the sender and the envelope's time where they are missing.
#[tokio::test(flavor = "multi_thread")]
async fn inline_content_is_checked_at_submission() {
    let node = node();
    let alice = EthSigner::new_random();
    let me = alice.address();
    let t = now_secs();
    let refused = |content: Value| {
        let envelope = signed(&alice, MessageType::Post, content, "TEST", t);
        let handle = node.handle.clone();
        async move {
            // `accept` answers once the message is journaled, before it is processed: only a
            // check made at submission can refuse it.
            match handle.accept(envelope, "test").await.expect("accept") {
                SubmitOutcome::Rejected(failure) => Some(failure.code),
                _ => None,
            }
        }
    };
    let invalid = Some(ErrorCode::InvalidFormat);
    assert_eq!(refused(json!({"address": me, "time": t})).await, invalid);
    assert_eq!(refused(json!({"time": t, "type": "note"})).await, invalid);
    assert_eq!(
        refused(json!({"address": me, "type": "note"})).await,
        invalid
    );
    assert_eq!(
        refused(json!({"address": me, "time": null, "type": "note"})).await,
        invalid
    );
    assert_eq!(
        refused(json!({"address": me, "time": -1, "type": "note"})).await,
        invalid
    );
    assert_eq!(
        refused(json!({"address": me, "time": t, "type": "note"})).await,
        None
    );

    // The same content stored as a file, not inline: address and time are filled in.
    let content = json!({"type": "note", "content": {"stored": true}}).to_string();
    let file = upload(&node, content.as_bytes(), true).await;
    let envelope = sign(
        &alice,
        MessageType::Post,
        None,
        file.sha256.clone(),
        "TEST",
        t,
    );
    assert!(processed(&run(&node, envelope).await));
    let stored = node
        .reader
        .message(&ItemHash::parse(&file.sha256).expect("a sha256"))
        .expect("read")
        .expect("message");
    let value: Value = serde_json::from_str(&stored.content).expect("json");
    assert_eq!(value["address"], json!(me));
    assert_eq!(value["time"].as_f64(), Some(t));
}

/// A rejection is remembered for `rejected_retention_secs` of the pipeline's clock, then
/// forgotten by the garbage collector.
#[tokio::test(flavor = "multi_thread")]
async fn rejections_expire_after_their_retention_time() {
    let retention = Duration::from_secs(3600);
    let node = node_with(PipelineConfig {
        rejected_retention_secs: retention.as_secs_f64(),
        ..PipelineConfig::default()
    });
    let alice = EthSigner::new_random();
    let me = alice.address();
    let t = now_secs();
    let mut forged = post(&alice, &me, "note", json!({"n": 1}), None, t);
    forged.signature = Some(format!("0x{}", "ab".repeat(65)));
    let forged_hash = forged.item_hash.clone();
    let outcome = node.handle.accept(forged, "test").await.expect("accept");
    assert!(matches!(outcome, SubmitOutcome::Rejected(_)));
    // Flush the writer: a valid message behind it.
    assert!(processed(
        &run(&node, post(&alice, &me, "note", json!({"n": 2}), None, t)).await
    ));
    let remembered = |node: &Node| node.reader.rejection(&forged_hash).expect("read").is_some();
    assert!(remembered(&node));
    node.clock.advance(retention - Duration::from_secs(1));
    node.handle.collect_garbage().await.expect("gc");
    assert!(remembered(&node), "kept for its retention time");
    node.clock.advance(Duration::from_secs(2));
    node.handle.collect_garbage().await.expect("gc");
    assert!(!remembered(&node), "forgotten after it");
}

/// A rejected message is remembered with a bounded head of each field, and only so many are
/// remembered: a client with no key cannot store unbounded bytes by sending invalid messages.
#[tokio::test(flavor = "multi_thread")]
async fn rejections_are_bounded() {
    let node = node_with(PipelineConfig {
        rejected_head_bytes: 100,
        max_rejected_kept: 10,
        ..PipelineConfig::default()
    });
    let alice = EthSigner::new_random();
    let me = alice.address();
    let t = now_secs();
    let mut hashes = Vec::new();
    for i in 0..25 {
        // A large inline content under a signature that does not match it.
        let big = "x".repeat(150_000);
        let content =
            json!({"address": me, "time": t, "type": "note", "content": {"big": big, "i": i}});
        let mut envelope = signed(&alice, MessageType::Post, content, "TEST", t);
        envelope.signature = Some(format!("0x{}", "ab".repeat(65)));
        hashes.push(envelope.item_hash.clone());
        let outcome = node.handle.accept(envelope, "test").await.expect("accept");
        assert!(matches!(outcome, SubmitOutcome::Rejected(_)));
        // Each received at its own time, so that "the oldest" is one of them.
        node.clock.advance(Duration::from_millis(1));
    }
    // Flush the writer: a valid message behind them.
    assert!(processed(
        &run(&node, post(&alice, &me, "note", json!({}), None, t)).await
    ));
    let kept: Vec<_> = hashes
        .iter()
        .filter_map(|h| node.reader.rejection(h).expect("read"))
        .collect();
    assert!(
        !kept.is_empty() && kept.len() <= 10,
        "{} rejections kept",
        kept.len()
    );
    for rejection in &kept {
        let head = rejection.message["item_content"]
            .as_str()
            .expect("content head");
        assert_eq!(head.len(), 100);
        assert_eq!(rejection.error_code, ErrorCode::InvalidSignature.code());
    }
    // Error details that quote what was refused are bounded too.
    let field = "f".repeat(150_000);
    let mut content = json!({"address": me, "time": t, "type": "note"});
    content[&field] = json!(1);
    let quoting = signed(&alice, MessageType::Post, content, "TEST", t);
    let quoting_hash = quoting.item_hash.clone();
    node.clock.advance(Duration::from_millis(1));
    let outcome = node.handle.accept(quoting, "test").await.expect("accept");
    assert!(matches!(outcome, SubmitOutcome::Rejected(_)));
    assert!(processed(
        &run(&node, post(&alice, &me, "note", json!({"n": 2}), None, t)).await
    ));
    let rejection = node
        .reader
        .rejection(&quoting_hash)
        .expect("read")
        .expect("rejection");
    assert!(
        rejection.details.to_string().len() < 300,
        "{}",
        rejection.details
    );
    // The newest are the ones kept.
    assert!(node.reader.rejection(&hashes[24]).expect("read").is_some());
    assert!(node.reader.rejection(&hashes[0]).expect("read").is_none());
    assert_eq!(status(&node, &hashes[0]), None);
}

/// Stored content over `max_content_bytes` is rejected from its size, before it is read.
#[tokio::test(flavor = "multi_thread")]
async fn stored_content_over_the_limit_is_rejected() {
    let node = node_with(PipelineConfig {
        max_content_bytes: 200,
        ..PipelineConfig::default()
    });
    let alice = EthSigner::new_random();
    let me = alice.address();
    let t = now_secs();
    let stored = |padding: usize| {
        let content =
            json!({"address": me, "time": t, "type": "note", "content": "x".repeat(padding)});
        content.to_string()
    };
    for (padding, fits) in [(10, true), (300, false)] {
        let file = upload(&node, stored(padding).as_bytes(), true).await;
        let envelope = sign(&alice, MessageType::Post, None, file.sha256, "TEST", t);
        let event = run(&node, envelope).await;
        if fits {
            assert!(processed(&event));
        } else {
            assert_eq!(rejected_with(&event), Some(ErrorCode::InvalidFormat));
        }
    }
}

/// A content source with a bug that shows on the writer's thread: it panics there on any
/// file (the checkers, which look for contents to prepare, find none).
struct Panicking;

impl Panicking {
    fn on_the_writer() -> bool {
        std::thread::current().name() == Some("raleph-writer")
    }
}

impl ContentSource for Panicking {
    fn load(&self, _: ItemType, _: &str) -> std::io::Result<Option<Vec<u8>>> {
        assert!(!Self::on_the_writer(), "a bug in the content source");
        Ok(None)
    }
    fn file(&self, _: &str) -> std::io::Result<Option<raleph_db::FileRecord>> {
        assert!(!Self::on_the_writer(), "a bug in the content source");
        Ok(None)
    }
    fn delete_file(&self, _: &str) -> std::io::Result<()> {
        Ok(())
    }
    fn list_files(&self) -> std::io::Result<Vec<(String, std::time::SystemTime)>> {
        Ok(Vec::new())
    }
}

/// A pipeline thread that dies is reported, so the node stops instead of going on without it.
#[tokio::test(flavor = "multi_thread")]
async fn a_dead_writer_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (writer, _reader) =
        open(&dir.path().join("index.sqlite"), Durability::Normal).expect("open");
    let (handle, _thread) = spawn(
        Box::new(writer),
        Arc::new(Panicking),
        Arc::new(NoPayments),
        PipelineConfig::default(),
        &dir.path().join("intake"),
        Arc::new(crate::SystemClock),
    )
    .expect("spawn");
    // Alive: nothing is reported.
    let quiet = tokio::time::timeout(Duration::from_millis(200), handle.failed()).await;
    assert!(quiet.is_err());
    // A non-inline message makes the writer ask the content source for its file.
    let alice = EthSigner::new_random();
    let envelope = sign(
        &alice,
        MessageType::Post,
        None,
        "ab".repeat(32),
        "TEST",
        now_secs(),
    );
    let _ = handle.accept(envelope, "test").await;
    let death = tokio::time::timeout(Duration::from_secs(10), handle.failed())
        .await
        .expect("the writer's death is reported");
    assert!(death.contains("writer"), "{death}");
}

/// An aggregate cannot grow past `max_aggregate_bytes`: the element that would take it there
/// is rejected, and the value stays as it was.
#[tokio::test(flavor = "multi_thread")]
async fn aggregates_are_bounded() {
    let node = node_with(PipelineConfig {
        max_aggregate_bytes: 100,
        ..PipelineConfig::default()
    });
    let alice = EthSigner::new_random();
    let me = alice.address();
    let t = now_secs();
    let first = aggregate(&alice, &me, "big", json!({"a": "x".repeat(40)}), t);
    assert!(processed(&run(&node, first).await));
    let second = aggregate(&alice, &me, "big", json!({"b": "y".repeat(40)}), t + 1.0);
    assert!(processed(&run(&node, second).await));
    let third = aggregate(&alice, &me, "big", json!({"c": "z".repeat(40)}), t + 2.0);
    assert_eq!(
        rejected_with(&run(&node, third).await),
        Some(ErrorCode::InvalidFormat)
    );
    let value = node
        .reader
        .aggregates_of(&me, &["big".to_owned()])
        .expect("read");
    let value: Value = serde_json::from_str(&value[0].content).expect("json");
    assert!(value.get("b").is_some() && value.get("c").is_none());
}

// ---- blockchain anchoring ----

fn chain_anchor(tx: &str, height: u64, archive: Option<&str>) -> raleph_db::Anchor {
    raleph_db::Anchor {
        chain: Chain::Eth,
        tx_hash: format!("0x{}", sha256_hex(tx.as_bytes())),
        log_index: 0,
        height,
        block_hash: format!("0x{}", sha256_hex(format!("block {height}").as_bytes())),
        time: 1_700_000_000.0 + height as f64,
        publisher: format!("0x{}", "ab".repeat(20)),
        protocol: "aleph-offchain".into(),
        archive: archive.map(str::to_owned),
        merkle_root: None,
    }
}

fn unanchored(node: &Node) -> Vec<ItemHash> {
    node.reader
        .unanchored(100)
        .expect("unanchored")
        .into_iter()
        .map(|m| m.envelope.item_hash)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn anchors_and_batches_through_the_handle() {
    let node = node();
    let alice = EthSigner::new_random();
    let me = alice.address();
    let t = now_secs();
    let first = post(&alice, &me, "note", json!({"n": 1}), None, t);
    let second = post(&alice, &me, "note", json!({"n": 2}), None, t + 1.0);
    let (h1, h2) = (first.item_hash.clone(), second.item_hash.clone());
    assert!(processed(&run(&node, first).await));
    node.clock.advance(Duration::from_secs(1));
    assert!(processed(&run(&node, second).await));
    assert_eq!(unanchored(&node), [h1.clone(), h2.clone()]);

    // A packer's batch: created now (the pipeline's clock), then sent.
    node.clock.advance(Duration::from_secs(5));
    let created = node.clock.now();
    let root = format!("0x{}", sha256_hex(b"root"));
    let id = node
        .handle
        .create_batch(Chain::Eth, "cid-1".into(), root.clone(), vec![h1.clone()])
        .await
        .expect("create");
    node.clock.advance(Duration::from_secs(2));
    let tx = chain_anchor("tx", 10, Some("cid-1")).tx_hash;
    node.handle
        .batch_submitted(id, tx.clone(), 4)
        .await
        .expect("submitted");
    let open = node.reader.open_batches(Chain::Eth).expect("open");
    assert_eq!(open.len(), 1);
    assert_eq!(
        (open[0].id, open[0].created, &open[0].items),
        (id, created, &vec![h1.clone()])
    );
    assert_eq!(
        open[0].submitted,
        Some(raleph_db::SubmittedTx {
            tx_hash: tx.clone(),
            nonce: 4,
            submitted_at: created + 2.0
        })
    );
    assert_eq!(unanchored(&node), std::slice::from_ref(&h2));

    // The reader sees its anchor: recorded once, the batch closed, the message confirmed.
    let anchor = chain_anchor("tx", 10, Some("cid-1"));
    assert!(
        node.handle
            .record_anchor(anchor.clone(), vec![h1.clone()])
            .await
            .expect("record")
    );
    assert!(
        !node
            .handle
            .record_anchor(anchor.clone(), vec![h1.clone()])
            .await
            .expect("record again")
    );
    assert!(
        node.reader
            .open_batches(Chain::Eth)
            .expect("open")
            .is_empty()
    );
    let confirmations = node
        .reader
        .confirmations(&[h1.clone(), h2.clone()])
        .expect("read");
    assert_eq!(confirmations.len(), 1);
    assert_eq!((&confirmations[0].0, confirmations[0].1.height), (&h1, 10));
    node.handle
        .set_chain_position(Chain::Eth, r#"{"height":10}"#.into())
        .await
        .expect("position");
    assert_eq!(
        node.reader
            .chain_position(Chain::Eth)
            .expect("read")
            .as_deref(),
        Some(r#"{"height":10}"#)
    );

    // A reorg: the anchor goes, the batch is open again; abandoned, its item is left to
    // anchor again.
    assert_eq!(
        node.handle
            .drop_anchors_from(Chain::Eth, 10)
            .await
            .expect("drop"),
        1
    );
    assert!(
        node.reader
            .confirmations(std::slice::from_ref(&h1))
            .expect("read")
            .is_empty()
    );
    assert_eq!(node.reader.open_batches(Chain::Eth).expect("open").len(), 1);
    assert_eq!(unanchored(&node), std::slice::from_ref(&h2));
    node.handle.abandon_batch(id).await.expect("abandon");
    assert!(
        node.reader
            .open_batches(Chain::Eth)
            .expect("open")
            .is_empty()
    );
    assert_eq!(unanchored(&node), [h1, h2]);
}

#[tokio::test(flavor = "multi_thread")]
async fn unsigned_messages_only_from_the_chain() {
    let node = node();
    let alice = EthSigner::new_random();
    let me = alice.address();
    let t = now_secs();
    let mut unsigned = post(&alice, &me, "note", json!({"from": "contract"}), None, t);
    unsigned.signature = None;
    let hash = unsigned.item_hash.clone();

    // The API's and the peers' paths verify signatures: none is no good.
    assert_eq!(
        rejected_with(&run(&node, unsigned.clone()).await),
        Some(ErrorCode::InvalidSignature)
    );
    match node
        .handle
        .offer(unsigned.clone(), "p2p")
        .await
        .expect("offer")
    {
        SubmitOutcome::Rejected(failure) => assert_eq!(failure.code, ErrorCode::InvalidSignature),
        other => panic!("an unsigned relayed message was not refused: {other:?}"),
    }
    match node
        .handle
        .accept(unsigned.clone(), "api")
        .await
        .expect("accept")
    {
        SubmitOutcome::Rejected(failure) => assert_eq!(failure.code, ErrorCode::InvalidSignature),
        other => panic!("an unsigned message was accepted: {other:?}"),
    }
    assert_ne!(status(&node, &hash), Some(MessageStatus::Processed));

    // From the chain reader, whose chain authenticated the emitter: processed.
    let mut events = node.handle.subscribe();
    let outcome = node
        .handle
        .submit_from_chain(unsigned)
        .await
        .expect("submit from chain");
    if outcome == SubmitOutcome::Queued {
        tokio::time::timeout(Duration::from_secs(10), async {
            while *events.recv().await.expect("events").item_hash() != hash {}
        })
        .await
        .expect("an event in time");
    }
    assert_eq!(status(&node, &hash), Some(MessageStatus::Processed));
    let stored = node.reader.message(&hash).expect("read").expect("held");
    assert_eq!(stored.envelope.signature, None);
    // Unsigned, and on a chain already: nothing for a packer to anchor.
    assert!(unanchored(&node).is_empty());
    // Its content is still checked: a broken one is refused, from the chain too.
    let mut broken = sign(
        &alice,
        MessageType::Post,
        Some("{not json".into()),
        sha256_hex(b"{not json"),
        "TEST",
        t,
    );
    broken.signature = None;
    match node.handle.submit_from_chain(broken).await.expect("submit") {
        SubmitOutcome::Rejected(failure) => assert_eq!(failure.code, ErrorCode::InvalidFormat),
        other => panic!("broken content was accepted from the chain: {other:?}"),
    }
}
