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

use raleph_db::MessageRecord;
use raleph_message::{Envelope, time_value};
use raleph_p2p::{PeerId, RalephRequest, RalephResponse, SyncResponse};
use raleph_pipeline::SubmitError;
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
        RalephRequest::SyncMessages { after, limit } => {
            let limit = limit.clamp(1, MAX_BATCH) as usize;
            let max_bytes = shared.config.max_answer_bytes;
            let reader = shared.reader.clone();
            let page = tokio::task::spawn_blocking(move || reader.sync_log(after, limit)).await;
            match page {
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
    let total = page.messages.len();
    let mut messages = Vec::with_capacity(total);
    let mut next = after;
    let mut bytes = 0;
    for (seq, record) in page.messages {
        let json = envelope_json(&record);
        // Always at least one message, so a page can never stall on one large message.
        if !messages.is_empty() && bytes + json.len() > max_bytes {
            break;
        }
        bytes += json.len();
        messages.push(json);
        next = seq;
    }
    let more = messages.len() < total || total == limit;
    SyncResponse {
        epoch: page.epoch,
        messages,
        next,
        more,
    }
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
    loop {
        let request = RalephRequest::SyncMessages {
            after: cursor.after,
            limit: shared.config.batch.clamp(1, MAX_BATCH),
        };
        let page = match shared.handle.request(peer, request).await? {
            RalephResponse::Sync(page) => page,
            RalephResponse::Error { message } => anyhow::bail!("peer answered: {message}"),
            other => anyhow::bail!("unexpected answer {other:?}"),
        };
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
        let received = page.messages.len();
        submit_all(shared, page.messages).await?;
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

/// Submits a page's messages side by side; fails if any could not be recorded (the page is
/// then asked for again later). Invalid messages are simply rejected, as from any client.
async fn submit_all(shared: &Shared, messages: Vec<String>) -> anyhow::Result<()> {
    let submissions = messages.into_iter().filter_map(|json| {
        let envelope = serde_json::from_str::<Value>(&json)
            .ok()
            .and_then(|v| Envelope::from_json(&v).ok());
        if envelope.is_none() {
            tracing::debug!("sync: a peer sent an unreadable message");
        }
        envelope.map(|e| shared.pipeline.submit(e, "sync"))
    });
    for outcome in futures::future::join_all(submissions).await {
        match outcome {
            Ok(_) => {}
            Err(e @ (SubmitError::Busy | SubmitError::Stopped | SubmitError::Store(_))) => {
                anyhow::bail!("recording synced messages failed: {e}")
            }
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
        let answer = sync_answer(page(0), 7, 5, usize::MAX);
        assert_eq!(
            (answer.messages.len(), answer.next, answer.more),
            (0, 7, false)
        );
    }
}
