//! Pulling from peers: every raleph peer's log read page by page from its cursor, the
//! messages submitted to this node's pipeline and the skeletons handed to `skeleton`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raleph_db::ForgottenRecord;
use raleph_message::{Envelope, ItemHash};
use raleph_p2p::{PeerId, RalephRequest, RalephResponse, SyncResponse};
use serde_json::Value;
use tokio::sync::mpsc;

use super::cursors::{Cursor, Cursors};
use super::skeleton::{apply_forgotten, parse_skeleton};
use crate::network::Shared;

/// Pulls raleph peers' logs: every `interval_secs`, and at once for a newly identified peer.
#[derive(Clone)]
pub(crate) struct Syncer {
    wake: mpsc::Sender<PeerId>,
}

impl Syncer {
    pub(crate) fn spawn(shared: Arc<Shared>) -> Syncer {
        let (wake, woken) = mpsc::channel(256);
        let cursors = Arc::new(Cursors::load(shared.data_dir.join("sync-cursors.json")));
        tokio::spawn(run(shared, cursors, woken));
        Syncer { wake }
    }

    pub(crate) fn sync_now(&self, peer: PeerId) {
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
        // Never more than this node would serve (`sync.max_served_batch`).
        let limit = shared
            .config
            .batch
            .min(shared.config.max_served_batch)
            .max(1);
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
        let now = shared.clock.now();
        carried.extend(page.forgotten.iter().filter_map(|j| parse_skeleton(j, now)));
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
        // A hash that is no item hash names nothing this node holds.
        let status_of = |hash: &str| -> raleph_db::Result<Option<S>> {
            match ItemHash::parse(hash) {
                Ok(hash) => Ok(reader.status(&hash)?.map(|s| s.status)),
                Err(_) => Ok(None),
            }
        };
        for hash in &messages {
            let status = status_of(hash)?;
            if !matches!(status, Some(S::Processed | S::Removing | S::Removed)) {
                return Ok(false);
            }
        }
        for hash in &forgotten {
            if status_of(hash)? != Some(S::Forgotten) {
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

/// The envelopes worth submitting: those this node does not hold in a final state. A status
/// lookup costs far less than the signature check a submission starts with, so the copies a
/// node already has (most of them, when gossip works) are left out first. Sync and the chain
/// readers use it.
pub(crate) async fn not_held(
    reader: Arc<dyn raleph_db::ReadStore>,
    envelopes: Vec<Envelope>,
) -> anyhow::Result<Vec<Envelope>> {
    use raleph_db::MessageStatus as S;
    Ok(tokio::task::spawn_blocking(move || {
        envelopes
            .into_iter()
            .filter(|e| match reader.status(&e.item_hash) {
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
    .await?)
}

/// Submits a page's messages side by side, those not held here already ([`not_held`]);
/// fails if any could not be recorded (the page is then asked for again later). Invalid
/// messages are simply rejected, as from any client.
async fn submit_all(shared: &Shared, envelopes: Vec<Envelope>) -> anyhow::Result<()> {
    let envelopes = not_held(shared.reader.clone(), envelopes).await?;
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
