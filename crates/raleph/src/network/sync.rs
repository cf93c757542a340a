//! Catch-up between raleph nodes.
//!
//! Every store keeps a sync log: each processed message gets the next sequence number, never
//! reused (raleph-db `sync_log`). A node asks each raleph peer for the messages after the last
//! number it saw from that peer, in bounded pages, submits them to its own pipeline (signatures
//! are checked as for any submission), and moves its cursor on only once every message of the
//! page was durably recorded. Cursors are kept per peer, with the peer's log epoch, in
//! `<data dir>/sync-cursors.json`; losing that file only costs a full, idempotent re-sync.
//!
//! Order does not have to be right: a message that arrives before what it depends on (an
//! amend before its original, a FORGET before its target) waits in the pending queue, so
//! every node ends in the same state whatever order its peers' logs come in.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raleph_db::{ForgottenRecord, MessageRecord};
use raleph_message::{Envelope, time_value};
use raleph_p2p::{PeerId, RalephRequest, RalephResponse, SyncResponse};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::Shared;

/// Largest page a peer may ask for.
const MAX_BATCH: u32 = 2_000;

/// Answers a `/raleph/1` request from a peer.
pub(super) async fn answer(
    shared: &Arc<Shared>,
    peer: PeerId,
    request: RalephRequest,
) -> RalephResponse {
    match request {
        RalephRequest::SyncMessages {
            after,
            limit,
            hashes_only,
        } => {
            let limit = limit.clamp(1, MAX_BATCH) as usize;
            let max_bytes = shared.config.max_answer_bytes;
            let reader = shared.reader.clone();
            // Hashes only are small whatever the messages' size; full messages are read no further
            // than the answer can carry.
            let read_bytes = if hashes_only { usize::MAX } else { max_bytes };
            let page =
                tokio::task::spawn_blocking(move || reader.sync_log(after, limit, read_bytes))
                    .await;
            match page {
                Ok(Ok(page)) if hashes_only => RalephResponse::Sync(hashes_answer(page, limit)),
                Ok(Ok(page)) => RalephResponse::Sync(sync_answer(page, after, limit, max_bytes)),
                Ok(Err(e)) => error(format!("reading the sync log failed: {e}")),
                Err(e) => error(format!("reading the sync log failed: {e}")),
            }
        }
        RalephRequest::FetchFile { hash, offset, len } => {
            super::fetch::answer(shared, &hash, offset, len).await
        }
        other => {
            tracing::debug!(%peer, ?other, "p2p: unexpected request");
            error("unsupported request".into())
        }
    }
}

fn error(message: String) -> RalephResponse {
    RalephResponse::Error { message }
}

fn sync_answer(
    page: raleph_db::SyncPage,
    after: u64,
    limit: usize,
    max_bytes: usize,
) -> SyncResponse {
    // The two logs share one numbering: merge them in sequence order.
    let mut entries: Vec<(u64, Entry)> = page
        .messages
        .into_iter()
        .map(|(seq, m)| (seq, Entry::Message(envelope_json(&m))))
        .chain(
            page.forgotten
                .into_iter()
                .map(|(seq, f)| (seq, Entry::Forgotten(skeleton_json(&f)))),
        )
        .collect();
    entries.sort_by_key(|(seq, _)| *seq);
    let total = entries.len();
    let (mut messages, mut forgotten) = (Vec::new(), Vec::new());
    let (mut next, mut bytes, mut taken) = (after, 0, 0);
    for (seq, entry) in entries {
        let len = match &entry {
            Entry::Message(json) | Entry::Forgotten(json) => json.len(),
        };
        // Always at least one entry, so a page can never stall on one large message.
        if taken > 0 && bytes + len > max_bytes {
            break;
        }
        bytes += len;
        taken += 1;
        match entry {
            Entry::Message(json) => messages.push(json),
            Entry::Forgotten(json) => forgotten.push(json),
        }
        next = seq;
    }
    let more = taken < total || total == limit || page.cut_short;
    SyncResponse {
        epoch: page.epoch,
        messages,
        forgotten,
        next,
        more,
        ..SyncResponse::default()
    }
}

enum Entry {
    Message(String),
    Forgotten(String),
}

/// A page of item hashes only: small whatever the messages' size, so never cut short.
fn hashes_answer(page: raleph_db::SyncPage, limit: usize) -> SyncResponse {
    let seqs = page.messages.iter().map(|(seq, _)| *seq);
    let next = seqs
        .chain(page.forgotten.iter().map(|(seq, _)| *seq))
        .max()
        .unwrap_or_default();
    let total = page.messages.len() + page.forgotten.len();
    SyncResponse {
        epoch: page.epoch,
        message_hashes: page
            .messages
            .into_iter()
            .map(|(_, m)| m.item_hash)
            .collect(),
        forgotten_hashes: page
            .forgotten
            .into_iter()
            .map(|(_, f)| f.item_hash)
            .collect(),
        next,
        more: total == limit,
        ..SyncResponse::default()
    }
}

/// What is kept of a forgotten message, as JSON: the signed fields (chain, sender, type,
/// item hash, time, signature) and the FORGETs that removed it.
fn skeleton_json(f: &ForgottenRecord) -> String {
    serde_json::json!({
        "item_hash": f.item_hash,
        "type": f.message_type,
        "chain": f.chain,
        "sender": f.sender,
        "signature": f.signature,
        "item_type": f.item_type,
        "time": time_value(f.time),
        "channel": f.channel,
        "owner": f.owner,
        "payment_type": f.payment_type,
        "size": f.size,
        "forgotten_by": f.forgotten_by,
        "forgotten_at": f.forgotten_at,
    })
    .to_string()
}

fn parse_skeleton(json: &str) -> Option<ForgottenRecord> {
    let v: Value = serde_json::from_str(json).ok()?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    Some(ForgottenRecord {
        item_hash: text("item_hash")?,
        message_type: text("type")?,
        chain: text("chain")?,
        sender: text("sender")?,
        signature: text("signature"),
        item_type: text("item_type")?,
        time: v.get("time")?.as_f64()?,
        channel: text("channel"),
        owner: text("owner")?,
        payment_type: text("payment_type"),
        size: v.get("size").and_then(Value::as_u64).unwrap_or(0),
        forgotten_by: v
            .get("forgotten_by")?
            .as_array()?
            .iter()
            .filter_map(|h| h.as_str().map(str::to_owned))
            .collect(),
        forgotten_at: v.get("forgotten_at").and_then(Value::as_f64).unwrap_or(0.0),
        reception_time: unix_now(),
    })
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A stored message as the envelope its sender signed: compact JSON with sorted keys.
fn envelope_json(m: &MessageRecord) -> String {
    let mut fields = Map::new();
    fields.insert("chain".into(), m.chain.clone().into());
    fields.insert("channel".into(), m.channel.clone().into());
    fields.insert("item_content".into(), m.item_content.clone().into());
    fields.insert("item_hash".into(), m.item_hash.clone().into());
    fields.insert("item_type".into(), m.item_type.clone().into());
    fields.insert("sender".into(), m.sender.clone().into());
    fields.insert("signature".into(), m.signature.clone().into());
    fields.insert("time".into(), time_value(m.time));
    fields.insert("type".into(), m.message_type.clone().into());
    Value::Object(fields).to_string()
}

/// Where a peer's log was read up to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Cursor {
    epoch: String,
    after: u64,
}

/// Cursors per peer id, persisted as JSON.
struct Cursors {
    path: PathBuf,
    cursors: Mutex<BTreeMap<String, Cursor>>,
}

impl Cursors {
    fn load(path: PathBuf) -> Cursors {
        let cursors = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Cursors {
            path,
            cursors: Mutex::new(cursors),
        }
    }

    fn get(&self, peer: &PeerId) -> Cursor {
        self.lock()
            .get(&peer.to_string())
            .cloned()
            .unwrap_or_default()
    }

    fn set(&self, peer: &PeerId, cursor: Cursor) -> std::io::Result<()> {
        let json = {
            let mut cursors = self.lock();
            cursors.insert(peer.to_string(), cursor);
            serde_json::to_vec_pretty(&*cursors).map_err(std::io::Error::other)?
        };
        // Written whole then renamed, so a crash leaves the old file or the new one.
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, &self.path)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Cursor>> {
        self.cursors.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Pulls raleph peers' logs: every `interval_secs`, and at once for a newly identified peer.
#[derive(Clone)]
pub(super) struct Syncer {
    wake: mpsc::Sender<PeerId>,
}

impl Syncer {
    pub(super) fn spawn(shared: Arc<Shared>) -> Syncer {
        let (wake, woken) = mpsc::channel(256);
        let cursors = Arc::new(Cursors::load(shared.data_dir.join("sync-cursors.json")));
        tokio::spawn(run(shared, cursors, woken));
        Syncer { wake }
    }

    pub(super) fn sync_now(&self, peer: PeerId) {
        let _ = self.wake.try_send(peer);
    }
}

async fn run(shared: Arc<Shared>, cursors: Arc<Cursors>, mut woken: mpsc::Receiver<PeerId>) {
    let busy: Arc<Mutex<HashSet<PeerId>>> = Arc::default();
    let interval = Duration::from_secs_f64(shared.config.interval_secs.max(0.1));
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let peers = tokio::select! {
            _ = ticks.tick() => shared.raleph_peers().await,
            peer = woken.recv() => match peer {
                Some(peer) => vec![peer],
                None => return,
            },
        };
        for peer in peers {
            // One pull per peer at a time; pulls of different peers run side by side.
            if !busy.lock().unwrap_or_else(|p| p.into_inner()).insert(peer) {
                continue;
            }
            let (shared, cursors, busy) = (shared.clone(), cursors.clone(), busy.clone());
            tokio::spawn(async move {
                if let Err(e) = pull(&shared, &cursors, peer).await {
                    tracing::debug!(%peer, "sync: {e}");
                }
                busy.lock().unwrap_or_else(|p| p.into_inner()).remove(&peer);
            });
        }
    }
}

/// Pulls one peer's log until it has nothing more.
async fn pull(shared: &Shared, cursors: &Cursors, peer: PeerId) -> anyhow::Result<()> {
    let mut cursor = cursors.get(&peer);
    // Skeletons whose FORGET was not seen yet: it usually follows within a few entries.
    let mut carried: Vec<ForgottenRecord> = Vec::new();
    loop {
        let limit = shared.config.batch.clamp(1, MAX_BATCH);
        // First only the hashes: when every one is held here, the page costs a few bytes
        // per message and no parsing; otherwise the messages themselves are asked for.
        let hashes = sync_request(shared, peer, cursor.after, limit, true).await?;
        if hashes.epoch == cursor.epoch
            && hashes.messages.is_empty()
            && hashes.forgotten.is_empty()
            && all_held(shared, &hashes).await?
        {
            let received = hashes.message_hashes.len() + hashes.forgotten_hashes.len();
            if received == 0 || hashes.next <= cursor.after {
                return Ok(());
            }
            cursor.after = hashes.next;
            cursors.set(&peer, cursor.clone())?;
            if !hashes.more {
                return Ok(());
            }
            continue;
        }
        let page = sync_request(shared, peer, cursor.after, limit, false).await?;
        if page.epoch != cursor.epoch {
            // Numbers from another epoch mean nothing: read the new log from the start.
            let asked_from_start = cursor.after == 0;
            cursor = Cursor {
                epoch: page.epoch.clone(),
                after: 0,
            };
            if !asked_from_start {
                tracing::info!(%peer, "sync: the peer's log was renewed, reading it from the start");
                cursors.set(&peer, cursor.clone())?;
                continue;
            }
        }
        let received = page.messages.len() + page.forgotten.len();
        let envelopes = parse_all(page.messages);
        carried.extend(page.forgotten.iter().filter_map(|j| parse_skeleton(j)));
        carried = apply_forgotten(shared, carried, &envelopes).await?;
        submit_all(shared, envelopes).await?;
        if page.next <= cursor.after && received > 0 {
            anyhow::bail!("the peer's cursor did not advance");
        }
        cursor.after = page.next.max(cursor.after);
        cursors.set(&peer, cursor.clone())?;
        if received > 0 {
            tracing::debug!(%peer, received, after = cursor.after, "sync: page recorded");
        }
        if !page.more || received == 0 {
            return Ok(());
        }
    }
}

async fn sync_request(
    shared: &Shared,
    peer: PeerId,
    after: u64,
    limit: u32,
    hashes_only: bool,
) -> anyhow::Result<SyncResponse> {
    let request = RalephRequest::SyncMessages {
        after,
        limit,
        hashes_only,
    };
    match shared.handle.request(peer, request).await? {
        RalephResponse::Sync(page) => Ok(page),
        RalephResponse::Error { message } => anyhow::bail!("peer answered: {message}"),
        other => anyhow::bail!("unexpected answer {other:?}"),
    }
}

/// Whether this node holds every message of a hash page in its final state: processed
/// (or removed since), and forgotten for the page's forgotten entries.
///
/// A message the peer holds but this node knows forgotten is asked for: its copy settles a
/// skeleton recorded on a peer's word (see `proven`). Usually the peer simply has not
/// processed the FORGET yet.
async fn all_held(shared: &Shared, page: &SyncResponse) -> anyhow::Result<bool> {
    let reader = shared.reader.clone();
    let messages = page.message_hashes.clone();
    let forgotten = page.forgotten_hashes.clone();
    let held = tokio::task::spawn_blocking(move || -> raleph_db::Result<bool> {
        use raleph_db::MessageStatus as S;
        for hash in &messages {
            let status = reader.status(hash)?.map(|s| s.status);
            if !matches!(status, Some(S::Processed | S::Removing | S::Removed)) {
                return Ok(false);
            }
        }
        for hash in &forgotten {
            if reader.status(hash)?.map(|s| s.status) != Some(S::Forgotten) {
                return Ok(false);
            }
        }
        Ok(true)
    })
    .await??;
    Ok(held)
}

fn parse_all(messages: Vec<String>) -> Vec<Envelope> {
    messages
        .into_iter()
        .filter_map(|json| {
            let envelope = serde_json::from_str::<Value>(&json)
                .ok()
                .and_then(|v| Envelope::from_json(&v).ok());
            if envelope.is_none() {
                tracing::debug!("sync: a peer sent an unreadable message");
            }
            envelope
        })
        .collect()
}

/// Most skeletons kept waiting for their FORGET across pages.
const MAX_CARRIED: usize = 10_000;

/// Records the skeletons that are proven: signed by their sender, and named by a FORGET from
/// that sender or a delegate it allowed, signed too, found in this page or already on this
/// node. A peer cannot make a node drop someone else's message this way; an aggregate element
/// forgotten by key rests on the peer's word until the element is seen (see `names`).
/// Returns the skeletons still unproven.
async fn apply_forgotten(
    shared: &Shared,
    skeletons: Vec<ForgottenRecord>,
    page: &[Envelope],
) -> anyhow::Result<Vec<ForgottenRecord>> {
    let mut unproven = Vec::new();
    for skeleton in skeletons {
        match proven(shared, &skeleton, page).await {
            Some(true) => {
                shared.pipeline.record_forgotten(skeleton).await?;
            }
            Some(false) => {
                tracing::debug!(item_hash = %skeleton.item_hash, "sync: a forgotten-message record failed its checks");
            }
            None if unproven.len() < MAX_CARRIED => unproven.push(skeleton),
            None => {}
        }
    }
    Ok(unproven)
}

/// `Some(true)` proven, `Some(false)` disproven, `None` if its FORGET is not known yet.
async fn proven(shared: &Shared, skeleton: &ForgottenRecord, page: &[Envelope]) -> Option<bool> {
    let Ok(chain) = skeleton.chain.parse::<raleph_message::Chain>() else {
        return Some(false);
    };
    let Some(signature) = skeleton.signature.as_deref() else {
        return Some(false);
    };
    let fields = raleph_crypto::SignedFields {
        chain,
        sender: &skeleton.sender,
        message_type: &skeleton.message_type,
        item_hash: &skeleton.item_hash,
        time: skeleton.time,
    };
    if raleph_crypto::verify(&fields, signature).is_err() {
        return Some(false);
    }
    for forget_hash in &skeleton.forgotten_by {
        let forget = match page.iter().find(|e| e.item_hash.as_str() == forget_hash) {
            Some(envelope) => Some(envelope.clone()),
            None => held_forget(shared, forget_hash).await,
        };
        let Some(forget) = forget else { continue };
        if !names(&forget, skeleton)
            || !raleph_pipeline::may_forget(&forget.sender, &skeleton.sender)
            || raleph_pipeline::verify_signature(&forget).is_err()
        {
            continue;
        }
        let security = match forget_address(&forget) {
            Some(address) if !address.eq_ignore_ascii_case(&forget.sender) => {
                security_of(shared, &address).await
            }
            _ => None,
        };
        if sent_for_its_address(&forget, security.as_ref()) {
            return Some(true);
        }
    }
    None
}

/// Whether `forget` is a FORGET that names the skeleton's message, or, for an aggregate
/// element, forgets aggregates of the skeleton's owner by key.
///
/// The second is the serving peer's word: the element's key went with its forgotten content.
/// It is taken, or nodes that synced after the FORGET would never converge, and settled by
/// the writer where the element itself is seen: forgotten if held here and its key is
/// targeted, and restored if a copy arrives whose key is not (`raleph_pipeline`'s
/// `forgotten`).
fn names(forget: &Envelope, skeleton: &ForgottenRecord) -> bool {
    let lists = |content: &Value, field: &str, value: &str| {
        content[field]
            .as_array()
            .is_some_and(|list| list.iter().any(|v| v == value))
    };
    forget.message_type == raleph_message::MessageType::Forget
        && forget.item_content.as_deref().is_some_and(|content| {
            serde_json::from_str::<Value>(content).is_ok_and(|v| {
                lists(&v, "hashes", &skeleton.item_hash)
                    || (skeleton.message_type == "AGGREGATE"
                        && v["aggregates"].as_array().is_some_and(|a| !a.is_empty())
                        && v["address"]
                            .as_str()
                            .is_some_and(|a| a.eq_ignore_ascii_case(&skeleton.owner)))
            })
        })
}

/// Whether `forget` passes the check every message passes, as the FORGET handler makes it:
/// its sender is its `content.address`, or a delegate that address's `security` aggregate
/// (`security`, as held here) allows to send FORGETs. With [`raleph_pipeline::may_forget`] on
/// the skeleton's signed sender, this is the handler's whole rule, and it rests on signed
/// fields only.
fn sent_for_its_address(forget: &Envelope, security: Option<&Value>) -> bool {
    let Some(address) = forget_address(forget) else {
        return false;
    };
    if address.eq_ignore_ascii_case(&forget.sender) {
        return true;
    }
    let action = raleph_pipeline::Action {
        sender: &forget.sender,
        owner: &address,
        chain: forget.chain.as_str(),
        message_type: forget.message_type.as_str(),
        channel: forget.channel.as_deref(),
        post_type: None,
        aggregate_key: None,
    };
    security.is_some_and(|security| raleph_pipeline::delegation_allows(security, &action))
}

/// The `content.address` of an inline FORGET (its sender when absent, as content parsing
/// coerces it).
fn forget_address(forget: &Envelope) -> Option<String> {
    let content: Value = serde_json::from_str(forget.item_content.as_deref()?).ok()?;
    match content.get("address") {
        None | Some(Value::Null) => Some(forget.sender.clone()),
        Some(address) => address.as_str().map(str::to_owned),
    }
}

/// The `security` aggregate of `owner`, as this node holds it.
async fn security_of(shared: &Shared, owner: &str) -> Option<Value> {
    let reader = shared.reader.clone();
    let owner = owner.to_owned();
    let records =
        tokio::task::spawn_blocking(move || reader.aggregates_of(&owner, &["security".to_owned()]))
            .await
            .ok()?
            .ok()?;
    let record = records.into_iter().find(|r| r.key == "security")?;
    serde_json::from_str(&record.content).ok()
}

/// A FORGET this node holds but could not process: waiting in its pending queue, or rejected.
async fn held_forget(shared: &Shared, item_hash: &str) -> Option<Envelope> {
    let reader = shared.reader.clone();
    let hash = item_hash.to_owned();
    let found = tokio::task::spawn_blocking(move || -> Option<Value> {
        if let Ok(copies) = reader.pending_copies(&hash)
            && let Some(copy) = copies.into_iter().next()
        {
            return Some(copy.message);
        }
        reader.rejection(&hash).ok().flatten().map(|r| r.message)
    })
    .await
    .ok()??;
    Envelope::from_json(&found).ok()
}

/// Submits a page's messages side by side; fails if any could not be recorded (the page is
/// then asked for again later). Invalid messages are simply rejected, as from any client.
/// Messages the node already holds or has queued (most of them, when gossip works) are left
/// out first: a status lookup costs far less than the signature check a submission starts with.
async fn submit_all(shared: &Shared, envelopes: Vec<Envelope>) -> anyhow::Result<()> {
    use raleph_db::MessageStatus as S;
    let reader = shared.reader.clone();
    let envelopes = tokio::task::spawn_blocking(move || {
        envelopes
            .into_iter()
            .filter(|e| match reader.status(e.item_hash.as_str()) {
                // A rejected copy may be retried by a valid one.
                Ok(Some(s)) if s.status == S::Rejected => true,
                // A forgotten aggregate element may have been recorded on a peer's word,
                // which its copy settles (see `proven`).
                Ok(Some(s)) if s.status == S::Forgotten => {
                    e.message_type == raleph_message::MessageType::Aggregate
                }
                Ok(Some(_)) => false,
                // A lookup error decides nothing.
                Ok(None) | Err(_) => true,
            })
            .collect::<Vec<_>>()
    })
    .await?;
    let submissions = envelopes
        .into_iter()
        .map(|e| shared.pipeline.accept(e, "sync"));
    for outcome in futures::future::join_all(submissions).await {
        match outcome {
            Ok(_) => {}
            Err(e) => anyhow::bail!("recording synced messages failed: {e}"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(hash: &str) -> MessageRecord {
        MessageRecord {
            item_hash: hash.into(),
            message_type: "POST".into(),
            chain: "ETH".into(),
            sender: "0xA".into(),
            signature: Some("0xsig".into()),
            item_type: "inline".into(),
            item_content: Some(r#"{"a":1}"#.into()),
            content: r#"{"a":1}"#.into(),
            channel: Some("TEST".into()),
            time: 1.5,
            size: 7,
            reception_time: 2.0,
            status: raleph_db::MessageStatus::Processed,
        }
    }

    fn forget_by(signer: &raleph_crypto::EthSigner, hashes: &[&str]) -> Envelope {
        forget_with(signer, "hashes", hashes)
    }

    /// A FORGET signed by `signer` whose content lists `targets` under `field`.
    fn forget_with(signer: &raleph_crypto::EthSigner, field: &str, targets: &[&str]) -> Envelope {
        let mut content = Map::new();
        content.insert(field.into(), serde_json::json!(targets));
        let json = raleph_sdk::signed_message(
            signer,
            raleph_message::MessageType::Forget,
            content,
            Some("T"),
            1.0,
        );
        Envelope::from_json(&json).expect("envelope")
    }

    #[test]
    fn a_key_forget_names_its_owners_aggregate_elements_only() {
        let owner = raleph_crypto::EthSigner::new_random();
        let mut element = skeleton_of(&owner);
        element.message_type = "AGGREGATE".into();
        let by_key = forget_with(&owner, "aggregates", &["profile"]);
        assert!(names(&by_key, &element));
        // Not a message of another kind, nor an element of another owner.
        assert!(!names(&by_key, &skeleton_of(&owner)));
        let mut others = element.clone();
        others.owner = raleph_crypto::EthSigner::new_random().address();
        assert!(!names(&by_key, &others));
        // Nor a FORGET by hash of something else, or one that lists no key.
        assert!(!names(
            &forget_by(&owner, &["cd".repeat(32).as_str()]),
            &element
        ));
        assert!(!names(&forget_with(&owner, "aggregates", &[]), &element));
        // The sender rule is the same as for a FORGET by hash.
        let stranger = raleph_crypto::EthSigner::new_random();
        let theirs = forget_with(&stranger, "aggregates", &["profile"]);
        assert!(!proves(&theirs, &element, None));
        assert!(proves(&by_key, &element, None));
    }

    /// The checks `proven` makes on a FORGET found for a skeleton, but the signatures.
    fn proves(forget: &Envelope, skeleton: &ForgottenRecord, security: Option<&Value>) -> bool {
        names(forget, skeleton)
            && raleph_pipeline::may_forget(&forget.sender, &skeleton.sender)
            && sent_for_its_address(forget, security)
    }

    /// A FORGET signed by `signer` for `address`, naming `target`.
    fn forget_for(signer: &raleph_crypto::EthSigner, address: &str, target: &str) -> Envelope {
        let mut content = Map::new();
        content.insert("hashes".into(), serde_json::json!([target]));
        content.insert("address".into(), address.into());
        let json = raleph_sdk::signed_message(
            signer,
            raleph_message::MessageType::Forget,
            content,
            Some("T"),
            1.0,
        );
        Envelope::from_json(&json).expect("envelope")
    }

    /// A POST of `owner`'s, forgotten.
    fn skeleton_of(owner: &raleph_crypto::EthSigner) -> ForgottenRecord {
        ForgottenRecord {
            item_hash: "ab".repeat(32),
            message_type: "POST".into(),
            chain: "ETH".into(),
            sender: owner.address(),
            signature: None,
            item_type: "inline".into(),
            time: 1.0,
            channel: None,
            owner: owner.address(),
            payment_type: None,
            size: 1,
            forgotten_by: vec![],
            forgotten_at: 2.0,
            reception_time: 2.0,
        }
    }

    #[test]
    fn only_a_forget_from_the_messages_own_sender_proves_a_skeleton() {
        let owner = raleph_crypto::EthSigner::new_random();
        let delegate = raleph_crypto::EthSigner::new_random();
        let skeleton = skeleton_of(&owner);
        let target = skeleton.item_hash.as_str();
        let grant = |grant: Value| serde_json::json!({"authorizations": [grant]});
        let everything = grant(serde_json::json!({"address": delegate.address()}));
        assert!(proves(&forget_by(&owner, &[target]), &skeleton, None));
        assert!(!proves(
            &forget_by(&owner, &["cd".repeat(32).as_str()]),
            &skeleton,
            None
        ));
        // A delegate never forgets the owner's message, whatever its grant.
        assert!(!proves(
            &forget_by(&delegate, &[target]),
            &skeleton,
            Some(&everything)
        ));
        assert!(!proves(
            &forget_for(&delegate, &owner.address(), target),
            &skeleton,
            Some(&everything)
        ));
        // A message a delegate sent for the owner: the delegate forgets it, sending the FORGET
        // for itself or, with a grant of FORGET, for the owner; the owner cannot.
        let mut delegated = skeleton_of(&delegate);
        delegated.owner = owner.address();
        let mine = delegated.item_hash.clone();
        assert!(proves(&forget_by(&delegate, &[&mine]), &delegated, None));
        assert!(!proves(&forget_by(&owner, &[&mine]), &delegated, None));
        let on_behalf = forget_for(&delegate, &owner.address(), &mine);
        assert!(proves(&on_behalf, &delegated, Some(&everything)));
        let forgets =
            grant(serde_json::json!({"address": delegate.address(), "types": ["FORGET"]}));
        assert!(proves(&on_behalf, &delegated, Some(&forgets)));
        // A FORGET naming an address that gave its sender no grant of FORGET proves nothing.
        let posts_only =
            grant(serde_json::json!({"address": delegate.address(), "types": ["POST"]}));
        assert!(!proves(&on_behalf, &delegated, Some(&posts_only)));
        assert!(!proves(&on_behalf, &delegated, None));
        let stranger = raleph_crypto::EthSigner::new_random();
        assert!(!proves(
            &forget_for(&delegate, &stranger.address(), &mine),
            &delegated,
            None
        ));
        // A skeleton survives a round trip through its JSON.
        let back = parse_skeleton(&skeleton_json(&skeleton)).expect("parse");
        assert_eq!(back.item_hash, skeleton.item_hash);
        assert_eq!(back.sender, skeleton.sender);
        assert!(parse_skeleton("{}").is_none());
    }

    #[test]
    fn envelope_json_is_sorted_and_complete() {
        assert_eq!(
            envelope_json(&record("h")),
            r#"{"chain":"ETH","channel":"TEST","item_content":"{\"a\":1}","item_hash":"h","item_type":"inline","sender":"0xA","signature":"0xsig","time":1.5,"type":"POST"}"#
        );
    }

    #[test]
    fn answers_are_bounded_in_bytes_but_never_empty() {
        let page = |n: u64| raleph_db::SyncPage {
            epoch: "e".into(),
            messages: (1..=n)
                .map(|i| (i * 10, record(&format!("h{i}"))))
                .collect(),
            forgotten: Vec::new(),
            cut_short: false,
        };
        let one = envelope_json(&record("h1")).len();
        let answer = sync_answer(page(5), 0, 5, one * 2);
        assert_eq!(
            (answer.messages.len(), answer.next, answer.more),
            (2, 20, true)
        );
        let answer = sync_answer(page(5), 0, 5, 1);
        assert_eq!((answer.messages.len(), answer.next), (1, 10));
        let answer = sync_answer(page(3), 7, 5, usize::MAX);
        assert_eq!(
            (answer.messages.len(), answer.next, answer.more),
            (3, 30, false)
        );
        // A page the store ended early by its byte budget is followed by more.
        let cut = raleph_db::SyncPage {
            cut_short: true,
            ..page(3)
        };
        assert!(sync_answer(cut, 7, 5, usize::MAX).more);
        let answer = sync_answer(page(0), 7, 5, usize::MAX);
        assert_eq!(
            (answer.messages.len(), answer.next, answer.more),
            (0, 7, false)
        );
    }

    #[test]
    fn hash_pages_list_both_logs_and_where_to_go_next() {
        let forgotten = ForgottenRecord {
            item_hash: "gone".into(),
            message_type: "POST".into(),
            chain: "ETH".into(),
            sender: "0xA".into(),
            signature: None,
            item_type: "inline".into(),
            time: 1.0,
            channel: None,
            owner: "0xA".into(),
            payment_type: None,
            size: 1,
            forgotten_by: vec![],
            forgotten_at: 2.0,
            reception_time: 2.0,
        };
        let page = raleph_db::SyncPage {
            epoch: "e".into(),
            messages: vec![(10, record("h1")), (30, record("h3"))],
            forgotten: vec![(20, forgotten)],
            cut_short: false,
        };
        let answer = hashes_answer(page, 3);
        assert_eq!(answer.message_hashes, ["h1", "h3"]);
        assert_eq!(answer.forgotten_hashes, ["gone"]);
        assert!(answer.messages.is_empty() && answer.forgotten.is_empty());
        assert_eq!((answer.next, answer.more), (30, true));
        let empty = raleph_db::SyncPage {
            epoch: "e".into(),
            messages: Vec::new(),
            forgotten: Vec::new(),
            cut_short: false,
        };
        let answer = hashes_answer(empty, 3);
        assert_eq!((answer.next, answer.more), (0, false));
    }
}
