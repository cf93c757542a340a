//! Files and non-inline content the pipeline asked for but the node does not hold.
//!
//! The pipeline's content source reports a miss ([`FetchRequests::request`]); the message waits
//! in the pending queue meanwhile, and its next attempt finds the file. A fetch tries raleph
//! peers first (`FetchFile`, raw chunks), then other nodes' HTTP APIs
//! (`GET /api/v0/storage/{hash}`, base64 JSON, the reference nodes' node-to-node call). Bytes are
//! streamed into the file store's writer, which computes the sha256 and CIDs on the way; the
//! file is kept only if the identifier asked for is among them. A peer that serves wrong bytes
//! is skipped for `sync.bad_peer_penalty_secs`.
//!
//! An HTTP answer is decoded as it arrives ([`super::base64_json`]) and written by one blocking
//! task through a short queue, so memory stays flat whatever the file's size; past the size
//! limit the fetch stops at once. Redirects are not followed. [`HttpPeers`] is the bounded list
//! of HTTP peers: one that fails `sync.http_peer_max_failures` times in a row (no answer, a
//! timeout, a redirect, a server error, a malformed answer; not a 404) is dropped, or, if it
//! was configured, rested for `sync.http_peer_rest_secs` ([`HttpPeerRules`]).

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use raleph_p2p::{RalephRequest, RalephResponse};
use raleph_storage::{FileWriter, PendingFile};
use tokio::sync::{Semaphore, mpsc};

use super::base64_json::{ContentExtractor, MAX_OTHER_BYTES};
use super::{Shared, SyncConfig};

/// Largest piece handed to the file writer at once (see `from_raleph_peer`).
const WRITE_SLICE: usize = 64 * 1024;
/// Smallest chunk asked for in one `FetchFile`: fewer bytes per round trip only cost time.
pub(crate) const MIN_CHUNK: u32 = 64 * 1024;
/// Decoded bytes handed to the writing task at once.
const WRITE_BATCH: usize = 64 * 1024;
/// Answer bytes decoded at once: a batch overshoots [`WRITE_BATCH`] by at most 3/4 of it.
const DECODE_SLICE: usize = 16 * 1024;
/// Batches waiting for the writing task.
const WRITE_QUEUE: usize = 4;

/// Where the pipeline's content source reports what it misses. Cheap to clone; never blocks.
#[derive(Clone)]
pub struct FetchRequests {
    queue: mpsc::Sender<String>,
    /// `sync.max_remembered_fetches`.
    remember: usize,
    /// `sync.fetch_retry_after_secs`.
    retry_after: Duration,
    /// Files being fetched, or that failed recently (with when).
    seen: Arc<Mutex<HashMap<String, Option<Instant>>>>,
}

impl FetchRequests {
    /// Asks for a file by sha256 or CID; repeated asks while it is being fetched are no-ops.
    pub fn request(&self, id: &str) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        match seen.get(id) {
            Some(None) => return,
            Some(Some(failed)) if failed.elapsed() < self.retry_after => return,
            _ => {}
        }
        if seen.len() > self.remember {
            seen.retain(|_, failed| failed.is_none_or(|t| t.elapsed() < self.retry_after));
        }
        if self.queue.try_send(id.to_owned()).is_ok() {
            seen.insert(id.to_owned(), None);
        }
    }

    fn done(&self, id: &str, fetched: bool) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if fetched {
            seen.remove(id);
        } else {
            seen.insert(id.to_owned(), Some(Instant::now()));
        }
    }
}

pub(super) fn spawn(shared: Arc<Shared>) -> FetchRequests {
    let (queue, mut requests) = mpsc::channel::<String>(shared.config.max_queued_fetches.max(1));
    let fetches = FetchRequests {
        queue,
        remember: shared.config.max_remembered_fetches,
        retry_after: shared.config.fetch_retry_after(),
        seen: Arc::default(),
    };
    let handle = fetches.clone();
    tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(shared.config.max_concurrent_fetches.max(1)));
        let penalized: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let Ok(http) = http_client(shared.config.http_fetch_timeout_secs) else {
            tracing::error!("fetch: no HTTP client; files will only come from raleph peers");
            return;
        };
        while let Some(id) = requests.recv().await {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let (shared, handle, http, penalized) = (
                shared.clone(),
                handle.clone(),
                http.clone(),
                penalized.clone(),
            );
            tokio::spawn(async move {
                let fetched = fetch(&shared, &http, &penalized, &id).await;
                handle.done(&id, fetched);
                drop(slot);
            });
        }
    });
    fetches
}

/// The client files are fetched from HTTP peers with: the whole answer within `timeout_secs`,
/// redirects refused.
fn http_client(timeout_secs: f64) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs_f64(timeout_secs.max(0.1)))
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// Other nodes' HTTP APIs files are fetched from: configured (`sync.http_peers`), announced on
/// ALIVE or told in Hello. Bounded; failing peers are dropped (announced) or rested
/// (configured). Cheap to share; never blocks for long.
pub(super) struct HttpPeers {
    /// This node's own API, never listed.
    own: Option<String>,
    rules: HttpPeerRules,
    state: Mutex<PeersState>,
}

/// How many HTTP peers are kept and how failing ones are treated: from `[sync]`.
#[derive(Debug, Clone, Copy)]
pub(super) struct HttpPeerRules {
    /// Most peers announced (`max_http_peers`); the configured ones are all kept.
    pub max: usize,
    /// Failures in a row after which a peer is dropped, or rested if configured.
    pub max_failures: u32,
    /// How long a configured peer that keeps failing is not asked.
    pub rest: Duration,
    /// How long the announcements of a dropped peer are ignored.
    pub dropped_for: Duration,
}

impl HttpPeerRules {
    pub(super) fn of(config: &SyncConfig) -> Self {
        HttpPeerRules {
            max: config.max_http_peers,
            max_failures: config.http_peer_max_failures,
            rest: config.http_peer_rest(),
            dropped_for: config.http_peer_dropped_for(),
        }
    }
}

#[derive(Default)]
struct PeersState {
    peers: HashMap<String, HttpPeer>,
    /// Announced peers dropped, and when: their announcements are ignored for a while.
    dropped: HashMap<String, Instant>,
}

struct HttpPeer {
    configured: bool,
    /// Failures in a row.
    failures: u32,
    /// A configured peer that kept failing is not asked before then.
    resting_until: Option<Instant>,
}

fn normalized(url: &str) -> String {
    url.trim_end_matches('/').to_owned()
}

impl HttpPeers {
    pub(super) fn new(configured: &[String], own: Option<String>, rules: HttpPeerRules) -> Self {
        let own = own.map(|u| normalized(&u));
        let peers = configured
            .iter()
            .map(|u| normalized(u))
            .filter(|u| Some(u) != own.as_ref())
            .map(|u| {
                let peer = HttpPeer {
                    configured: true,
                    failures: 0,
                    resting_until: None,
                };
                (u, peer)
            })
            .collect();
        HttpPeers {
            own,
            rules,
            state: Mutex::new(PeersState {
                peers,
                dropped: HashMap::new(),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, PeersState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An announced peer: kept if there is room and it was not dropped lately.
    pub(super) fn add(&self, url: &str) {
        let url = normalized(url);
        if Some(&url) == self.own.as_ref() {
            return;
        }
        let mut state = self.state();
        if state.peers.contains_key(&url) || state.peers.len() >= self.rules.max {
            return;
        }
        if let Some(dropped) = state.dropped.get(&url) {
            if dropped.elapsed() < self.rules.dropped_for {
                return;
            }
            state.dropped.remove(&url);
        }
        let peer = HttpPeer {
            configured: false,
            failures: 0,
            resting_until: None,
        };
        state.peers.insert(url, peer);
    }

    /// The peers to ask now, those that failed least first.
    pub(super) fn list(&self) -> Vec<String> {
        let now = Instant::now();
        let state = self.state();
        let mut peers: Vec<(u32, &String)> = state
            .peers
            .iter()
            .filter(|(_, p)| p.resting_until.is_none_or(|t| t <= now))
            .map(|(url, p)| (p.failures, url))
            .collect();
        peers.sort_unstable();
        peers.into_iter().map(|(_, url)| url.clone()).collect()
    }

    /// How a peer answered: a failure counts towards dropping it, an answer clears its count.
    pub(super) fn record(&self, url: &str, verdict: Verdict) {
        let mut state = self.state();
        let Some(peer) = state.peers.get_mut(url) else {
            return;
        };
        match verdict {
            Verdict::Neither => {}
            Verdict::Answered => {
                peer.failures = 0;
                peer.resting_until = None;
            }
            Verdict::Failed => {
                peer.failures += 1;
                if peer.failures < self.rules.max_failures {
                    return;
                }
                if peer.configured {
                    tracing::info!(%url, "fetch: a configured HTTP peer keeps failing; resting it");
                    peer.resting_until = Instant::now().checked_add(self.rules.rest);
                    return;
                }
                tracing::info!(%url, "fetch: dropping an HTTP peer that keeps failing");
                state.peers.remove(url);
                let dropped_for = self.rules.dropped_for;
                if state.dropped.len() >= self.rules.max {
                    state.dropped.retain(|_, t| t.elapsed() < dropped_for);
                }
                if state.dropped.len() >= self.rules.max {
                    let oldest = state.dropped.iter().min_by_key(|(_, t)| **t);
                    if let Some(oldest) = oldest.map(|(u, _)| u.clone()) {
                        state.dropped.remove(&oldest);
                    }
                }
                state.dropped.insert(url.to_owned(), Instant::now());
            }
        }
    }
}

/// Tries every source in turn; true once the file is stored.
async fn fetch(
    shared: &Shared,
    http: &reqwest::Client,
    penalized: &Mutex<HashMap<String, Instant>>,
    id: &str,
) -> bool {
    if shared.files.contains(id) {
        return true;
    }
    let Some(kind) = raleph_storage::file_id_kind(id) else {
        return false;
    };
    let with_cid_v1 = matches!(kind, raleph_message::ItemHashKind::Cid) && id.starts_with('b');
    let penalty = shared.config.bad_peer_penalty();
    let is_penalized = |source: &str| {
        penalized
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(source)
            .is_some_and(|t| t.elapsed() < penalty)
    };
    let penalize = |source: &str| {
        tracing::warn!(%source, %id, "fetch: a peer served bytes that do not match the hash");
        penalized
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(source.to_owned(), Instant::now());
    };
    for peer in shared.raleph_peers().await {
        let source = peer.to_string();
        if is_penalized(&source) {
            continue;
        }
        match from_raleph_peer(shared, peer, id, with_cid_v1).await {
            Ok(Some(file)) => match keep_if_matching(shared, file, id).await {
                Ok(true) => return true,
                Ok(false) => penalize(&source),
                Err(e) => tracing::debug!(%source, %id, "fetch: storing failed: {e}"),
            },
            Ok(None) => {}
            Err(e) => tracing::debug!(%source, %id, "fetch: {e}"),
        }
    }
    let limit = max_file_bytes(shared);
    for url in shared.http_peers() {
        if is_penalized(&url) {
            continue;
        }
        let writer = match shared.files.writer(limit, with_cid_v1) {
            Ok(writer) => writer,
            Err(e) => {
                tracing::warn!(%id, "fetch: no file writer: {e}");
                return false;
            }
        };
        match ask_http_peer(&shared.http_peers, http, &url, id, limit, writer).await {
            Ok(Some(file)) => match keep_if_matching(shared, file, id).await {
                Ok(true) => return true,
                Ok(false) => penalize(&url),
                Err(e) => tracing::debug!(%url, %id, "fetch: storing failed: {e}"),
            },
            Ok(None) => {}
            Err(e) => tracing::debug!(%url, %id, "fetch: {e}"),
        }
    }
    tracing::debug!(%id, "fetch: no peer has the file");
    false
}

/// The largest file fetched from a peer: the largest the node accepts by upload.
fn max_file_bytes(shared: &Shared) -> u64 {
    let s = &shared.storage;
    s.max_upload_bytes
        .max(s.max_ipfs_upload_bytes)
        .max(s.max_unauthenticated_upload_bytes)
}

async fn from_raleph_peer(
    shared: &Shared,
    peer: raleph_p2p::PeerId,
    id: &str,
    with_cid_v1: bool,
) -> anyhow::Result<Option<PendingFile>> {
    let limit = max_file_bytes(shared);
    // Never more than this node would serve (`sync.max_served_chunk_bytes`).
    let chunk = shared
        .config
        .fetch_chunk_bytes
        .min(shared.config.max_served_chunk_bytes)
        .max(MIN_CHUNK);
    let mut writer = Some(shared.files.writer(limit, with_cid_v1)?);
    let mut offset = 0u64;
    loop {
        let request = RalephRequest::FetchFile {
            hash: id.to_owned(),
            offset,
            len: chunk,
        };
        let (total, bytes) = match shared.handle.request(peer, request).await? {
            RalephResponse::FileChunk { total, bytes } => (total, bytes),
            RalephResponse::NotFound => return Ok(None),
            RalephResponse::Error { message } => anyhow::bail!("peer answered: {message}"),
            other => anyhow::bail!("unexpected answer {other:?}"),
        };
        if total > limit {
            anyhow::bail!("the file is {total} bytes, over the {limit}-byte limit");
        }
        if bytes.is_empty() && offset < total {
            anyhow::bail!("the peer sent an empty chunk");
        }
        offset += bytes.len() as u64;
        if offset > total {
            anyhow::bail!("the peer sent more bytes than the file has");
        }
        let mut w = writer
            .take()
            .ok_or_else(|| anyhow::anyhow!("writer gone"))?;
        // In slices: the writer's hashing thread queues each write it is given (up to 32),
        // so one 4 MiB write would let that queue hold 128 MiB.
        let w = tokio::task::spawn_blocking(
            move || -> Result<FileWriter, raleph_storage::StorageError> {
                for slice in bytes.chunks(WRITE_SLICE) {
                    w.write(slice)?;
                }
                Ok(w)
            },
        )
        .await??;
        writer = Some(w);
        if offset == total {
            break;
        }
    }
    finish(writer).await.map(Some)
}

/// Why a file did not come from an HTTP peer.
#[derive(Debug)]
pub(super) enum HttpFetchError {
    /// The peer failed: no connection, a timeout, a redirect, a server error, a malformed or
    /// truncated answer.
    Peer(anyhow::Error),
    /// The peer answered a client error other than 404 (the file too large for it, say): it
    /// works, it just does not serve this file.
    Refused(reqwest::StatusCode),
    /// The file is larger than this node accepts.
    TooLarge { limit: u64 },
    /// Writing the file here failed.
    Local(anyhow::Error),
}

impl std::fmt::Display for HttpFetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpFetchError::Peer(e) => write!(f, "the peer failed: {e:#}"),
            HttpFetchError::Refused(status) => write!(f, "the peer answered {status}"),
            HttpFetchError::TooLarge { limit } => {
                write!(f, "the file is larger than the limit of {limit} bytes")
            }
            HttpFetchError::Local(e) => write!(f, "writing the file failed: {e:#}"),
        }
    }
}

/// What an HTTP peer's answer says of the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// It answered as a node does (the file, a 404, another client error).
    Answered,
    /// It failed.
    Failed,
    /// Nothing either way (the file too large here, a local error).
    Neither,
}

impl Verdict {
    fn of(fetched: &Result<Option<PendingFile>, HttpFetchError>) -> Self {
        match fetched {
            Ok(_) | Err(HttpFetchError::Refused(_)) => Verdict::Answered,
            Err(HttpFetchError::Peer(_)) => Verdict::Failed,
            Err(HttpFetchError::TooLarge { .. } | HttpFetchError::Local(_)) => Verdict::Neither,
        }
    }
}

/// Asks one HTTP peer for a file, and records in `peers` how it answered.
async fn ask_http_peer(
    peers: &HttpPeers,
    http: &reqwest::Client,
    url: &str,
    id: &str,
    limit: u64,
    writer: FileWriter,
) -> Result<Option<PendingFile>, HttpFetchError> {
    let fetched = from_http_peer(http, url, id, limit, writer).await;
    peers.record(url, Verdict::of(&fetched));
    fetched
}

/// The longest answer a file of `limit` bytes can come in: base64 is 4/3 of the bytes, with a
/// line break after every 76 characters (`\n`, 2 bytes, as the reference sends it; room is
/// left for `\u000a` or `\r\n` escapes, 6 or 4 bytes), plus the other fields.
fn max_answer_bytes(limit: u64) -> u64 {
    (limit / 57 + 1).saturating_mul(76 + 12) + MAX_OTHER_BYTES + 64
}

/// What the writing task is sent.
enum Batch {
    Bytes(Vec<u8>),
    /// The answer was whole: finish the file.
    Finish,
}

/// Writes batches until told to finish; `None` if the queue closed before (the fetch failed).
fn write_batches(
    mut writer: FileWriter,
    mut queue: mpsc::Receiver<Batch>,
) -> Result<Option<PendingFile>, raleph_storage::StorageError> {
    while let Some(batch) = queue.blocking_recv() {
        match batch {
            Batch::Bytes(bytes) => writer.write(&bytes)?,
            Batch::Finish => return writer.finish().map(Some),
        }
    }
    Ok(None)
}

/// Fetches `GET {url}/api/v0/storage/{id}` into `writer`, decoding the answer as it arrives
/// and stopping as soon as it is more than `limit` bytes of file. `Ok(None)`: a 404.
pub(super) async fn from_http_peer(
    http: &reqwest::Client,
    url: &str,
    id: &str,
    limit: u64,
    writer: FileWriter,
) -> Result<Option<PendingFile>, HttpFetchError> {
    use HttpFetchError::{Local, Peer, TooLarge};
    let mut response = http
        .get(format!("{url}/api/v0/storage/{id}"))
        .send()
        .await
        .map_err(|e| Peer(e.into()))?;
    let status = response.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if status.is_client_error() {
        return Err(HttpFetchError::Refused(status));
    }
    if !status.is_success() {
        // 3xx included: redirects are not followed.
        return Err(Peer(anyhow::anyhow!("HTTP {status}")));
    }
    let max_answer = max_answer_bytes(limit);
    if response.content_length().is_some_and(|n| n > max_answer) {
        return Err(TooLarge { limit });
    }
    let (batches, queue) = mpsc::channel(WRITE_QUEUE);
    let writing = tokio::task::spawn_blocking(move || write_batches(writer, queue));
    // `Err(None)`: the writing task stopped, its own error says why.
    let streamed: Result<(), Option<HttpFetchError>> = async {
        let mut extractor = ContentExtractor::new();
        let new_batch = || Vec::with_capacity(WRITE_BATCH + DECODE_SLICE);
        let mut batch = new_batch();
        let (mut answered, mut decoded) = (0u64, 0u64);
        while let Some(chunk) = response.chunk().await.map_err(|e| Peer(e.into()))? {
            answered += chunk.len() as u64;
            if answered > max_answer {
                let e = anyhow::anyhow!("the answer is longer than a {limit}-byte file's");
                return Err(Some(Peer(e)));
            }
            for slice in chunk.chunks(DECODE_SLICE) {
                let before = batch.len();
                extractor
                    .feed(slice, &mut batch)
                    .map_err(|e| Peer(e.into()))?;
                decoded += (batch.len() - before) as u64;
                if decoded > limit {
                    return Err(Some(TooLarge { limit }));
                }
                if batch.len() >= WRITE_BATCH {
                    let full = std::mem::replace(&mut batch, new_batch());
                    batches.send(Batch::Bytes(full)).await.map_err(|_| None)?;
                }
            }
        }
        extractor.finish().map_err(|e| Peer(e.into()))?;
        if !batch.is_empty() {
            batches.send(Batch::Bytes(batch)).await.map_err(|_| None)?;
        }
        batches.send(Batch::Finish).await.map_err(|_| None)?;
        Ok(())
    }
    .await;
    // Closing the queue ends the writing task; unfinished, its file is discarded.
    drop(batches);
    if let Err(Some(e)) = streamed {
        // The writing task discards its file as it sees the queue closed: wait for it, so
        // nothing is left behind once the error is returned.
        let _ = writing.await;
        return Err(e);
    }
    match writing.await {
        Ok(Ok(Some(file))) => Ok(Some(file)),
        Ok(Ok(None)) => Err(Local(anyhow::anyhow!("the writing task stopped"))),
        Ok(Err(raleph_storage::StorageError::TooLarge { limit })) => Err(TooLarge { limit }),
        Ok(Err(e)) => Err(Local(e.into())),
        Err(e) => Err(Local(e.into())),
    }
}

async fn finish(writer: Option<FileWriter>) -> anyhow::Result<PendingFile> {
    let writer = writer.ok_or_else(|| anyhow::anyhow!("writer gone"))?;
    Ok(tokio::task::spawn_blocking(move || writer.finish()).await??)
}

/// Stores the file if `id` is one of its identifiers; false means the bytes were wrong.
async fn keep_if_matching(shared: &Shared, file: PendingFile, id: &str) -> anyhow::Result<bool> {
    if !file.info().ids().any(|known| known == id) {
        return Ok(false);
    }
    // A grace pin keeps it until the message that needs it claims it.
    shared
        .pipeline
        .store_file(
            Box::new(raleph_api::files::store_adapter::Upload(file)),
            true,
        )
        .await?;
    tracing::debug!(%id, "fetch: file stored");
    Ok(true)
}

/// Answers a peer's `FetchFile` from the local store.
pub(super) async fn answer(shared: &Shared, id: &str, offset: u64, len: u32) -> RalephResponse {
    let files = shared.files.clone();
    let id = id.to_owned();
    let len = len.min(shared.config.max_served_chunk_bytes) as usize;
    let read = tokio::task::spawn_blocking(move || -> std::io::Result<Option<(u64, Vec<u8>)>> {
        let Some((path, info)) = files.path_of(&id).map_err(std::io::Error::other)? else {
            return Ok(None);
        };
        let mut file = std::fs::File::open(path)?;
        let start = offset.min(info.size);
        file.seek(SeekFrom::Start(start))?;
        let want = (info.size - start).min(len as u64) as usize;
        let mut bytes = vec![0; want];
        file.read_exact(&mut bytes)?;
        Ok(Some((info.size, bytes)))
    })
    .await;
    match read {
        Ok(Ok(Some((total, bytes)))) => RalephResponse::FileChunk { total, bytes },
        Ok(Ok(None)) => RalephResponse::NotFound,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => RalephResponse::NotFound,
        Ok(Err(e)) => RalephResponse::Error {
            message: format!("reading the file failed: {e}"),
        },
        Err(e) => RalephResponse::Error {
            message: format!("reading the file failed: {e}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use raleph_storage::FileStore;
    use sha2::{Digest, Sha256};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::network::base64_json::reference;

    /// The rules of the default `[sync]`, with `max` announced peers.
    fn default_rules(max: usize) -> HttpPeerRules {
        HttpPeerRules {
            max,
            ..HttpPeerRules::of(&SyncConfig::default())
        }
    }

    /// Failures in a row before a peer is dropped or rested, by default.
    const MAX_FAILURES: u32 = 3;

    const MIB: usize = 1024 * 1024;

    /// Held by the tests that stream answers, so that the one measuring memory runs alone.
    static STREAMING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    type Fetched = Result<Option<PendingFile>, HttpFetchError>;

    fn shown(fetched: &Fetched) -> String {
        match fetched {
            Ok(Some(file)) => format!("fetched {:?}", file.info()),
            Ok(None) => "not found".to_owned(),
            Err(e) => format!("{e:?}"),
        }
    }

    /// Fetches into a new writer of `files` (computing the CIDv1 too).
    async fn get(
        http: &reqwest::Client,
        url: &str,
        id: &str,
        limit: u64,
        files: &FileStore,
    ) -> Fetched {
        let writer = files.writer(limit, true).expect("writer");
        from_http_peer(http, url, id, limit, writer).await
    }

    fn found(fetched: Fetched) -> PendingFile {
        match fetched {
            Ok(Some(file)) => file,
            other => panic!("not fetched: {}", shown(&other)),
        }
    }

    /// The bytes of a test file from `offset`: cheap, and not compressible.
    fn file_bytes(offset: usize, len: usize) -> Vec<u8> {
        (offset..offset + len)
            .map(|i| ((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
            .collect()
    }

    fn sha256_of_file(len: usize) -> String {
        let mut sha = Sha256::new();
        for start in (0..len).step_by(MIB) {
            sha.update(file_bytes(start, MIB.min(len - start)));
        }
        hex::encode(sha.finalize())
    }

    /// A reference node's answer for a file of `len` bytes (`None`: endless), in pieces.
    fn answer_pieces(hash: &str, len: Option<usize>) -> impl Iterator<Item = Vec<u8>> + Send {
        const BLOCK: usize = 57 * 1024;
        let end = len.unwrap_or(usize::MAX);
        let body = (0..end).step_by(BLOCK).map(move |start| {
            let mut out = Vec::new();
            reference::encoded_lines(&file_bytes(start, BLOCK.min(end - start)), &mut out);
            out
        });
        let tail = len.map(|_| reference::TAIL.to_vec());
        std::iter::once(reference::head(hash))
            .chain(body)
            .chain(tail)
    }

    /// Reads a request's head and returns its path.
    async fn read_request(stream: &mut TcpStream) -> Option<String> {
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.ok()?;
            if n == 0 || head.len() > 16 * 1024 {
                return None;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let line = head.split(|&b| b == b'\r').next()?;
        let line = std::str::from_utf8(line).ok()?;
        line.split(' ').nth(1).map(str::to_owned)
    }

    /// A loopback HTTP server: each connection's request path and stream go to `answer`.
    async fn serve<F, Fut>(answer: F) -> String
    where
        F: Fn(String, TcpStream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let answer = Arc::new(answer);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let answer = answer.clone();
                tokio::spawn(async move {
                    if let Some(path) = read_request(&mut stream).await {
                        answer(path, stream).await;
                    }
                });
            }
        });
        url
    }

    /// Writes a 200 whose chunked body is `pieces` cut in odd-sized chunks.
    async fn write_chunked(
        stream: &mut TcpStream,
        pieces: impl Iterator<Item = Vec<u8>>,
    ) -> std::io::Result<()> {
        const SIZES: [usize; 7] = [1, 7, 4093, 10_007, 65_537, 3, 31];
        stream
            .write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n\
                  Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            )
            .await?;
        let mut pending = Vec::new();
        let mut k = 0;
        for piece in pieces {
            pending.extend_from_slice(&piece);
            while pending.len() >= SIZES[k % SIZES.len()] {
                let n = SIZES[k % SIZES.len()];
                k += 1;
                write_chunk(stream, &pending[..n]).await?;
                pending.drain(..n);
            }
        }
        if !pending.is_empty() {
            write_chunk(stream, &pending).await?;
        }
        stream.write_all(b"0\r\n\r\n").await
    }

    async fn write_chunk(stream: &mut TcpStream, bytes: &[u8]) -> std::io::Result<()> {
        stream
            .write_all(format!("{:x}\r\n", bytes.len()).as_bytes())
            .await?;
        stream.write_all(bytes).await?;
        stream.write_all(b"\r\n").await
    }

    async fn write_status(stream: &mut TcpStream, status: &str, headers: &str) {
        let head =
            format!("HTTP/1.1 {status}\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n");
        let _ = stream.write_all(head.as_bytes()).await;
    }

    /// The process's peak resident memory, in KiB.
    fn peak_rss_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM")
    }

    fn store() -> (tempfile::TempDir, FileStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = FileStore::open(dir.path()).expect("store");
        (dir, files)
    }

    /// Serves the reference answer of a `len`-byte file (`len` from the path's last segment,
    /// `endless` for no end) in odd-sized chunks.
    async fn reference_node() -> String {
        serve(|path, mut stream| async move {
            let last = path.rsplit('/').next().unwrap_or_default().to_owned();
            let len = last.parse::<usize>().ok();
            if len.is_none() && last != "endless" {
                write_status(&mut stream, "404 Not Found", "").await;
                return;
            }
            let _ = write_chunked(&mut stream, answer_pieces(&last, len)).await;
        })
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reference_answer_is_streamed_into_the_store() {
        let _alone = STREAMING.lock().await;
        const LEN: usize = 3 * MIB;
        let expected = sha256_of_file(LEN);
        let url = reference_node().await;
        let (_dir, files) = store();
        let http = http_client(30.0).expect("client");
        let limit = 10 * MIB as u64;
        // Warm up with a smaller file: the client, the runtime's threads, their allocators'
        // arenas, the buffers that grow to their working size.
        let small = found(get(&http, &url, "1000000", limit, &files).await);
        assert_eq!(small.info().size, 1_000_000);
        drop(small);
        let before = peak_rss_kib();
        let started = Instant::now();
        let file = found(get(&http, &url, &LEN.to_string(), limit, &files).await);
        let elapsed = started.elapsed();
        let growth = peak_rss_kib().saturating_sub(before);
        assert_eq!(file.info().size, LEN as u64);
        assert_eq!(file.info().sha256, expected);
        assert!(file.info().cid_v1.is_some());
        eprintln!("3 MiB fetched in {elapsed:?}; peak resident memory grew by {growth} KiB");
        assert!(
            growth < (LEN / 1024) as u64,
            "memory grew by {growth} KiB fetching a {} KiB file",
            LEN / 1024
        );
        // Absent: a 404, not an error.
        let absent = get(&http, &url, "nothing", limit, &files).await;
        assert!(matches!(absent, Ok(None)));
        assert_eq!(Verdict::of(&absent), Verdict::Answered);
    }

    #[tokio::test]
    async fn the_size_limit_holds_to_the_byte() {
        let _alone = STREAMING.lock().await;
        let url = reference_node().await;
        let (_dir, files) = store();
        let http = http_client(30.0).expect("client");
        let limit = 100_000;
        let exact = get(&http, &url, "100000", limit, &files).await;
        assert_eq!(found(exact).info().size, limit);
        let over = get(&http, &url, "100001", limit, &files).await;
        assert!(
            matches!(over, Err(HttpFetchError::TooLarge { limit: 100_000 })),
            "{}",
            shown(&over)
        );
        assert_eq!(Verdict::of(&over), Verdict::Neither);
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        let _alone = STREAMING.lock().await;
        let followed = Arc::new(AtomicUsize::new(0));
        let seen = followed.clone();
        let url = serve(move |path, mut stream| {
            let seen = seen.clone();
            async move {
                if path.starts_with("/elsewhere") {
                    seen.fetch_add(1, Ordering::SeqCst);
                    let _ = write_chunked(&mut stream, answer_pieces("h", Some(100))).await;
                } else {
                    let location = format!("Location: /elsewhere{path}\r\n");
                    write_status(&mut stream, "302 Found", &location).await;
                }
            }
        })
        .await;
        let (_dir, files) = store();
        let http = http_client(30.0).expect("client");
        let fetched = get(&http, &url, "h", 1000, &files).await;
        assert!(
            matches!(fetched, Err(HttpFetchError::Peer(_))),
            "{}",
            shown(&fetched)
        );
        assert_eq!(Verdict::of(&fetched), Verdict::Failed);
        assert_eq!(
            followed.load(Ordering::SeqCst),
            0,
            "the redirect was followed"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_answer_past_the_limit_is_cut_short() {
        let _alone = STREAMING.lock().await;
        let url = reference_node().await;
        let (_dir, files) = store();
        let http = http_client(60.0).expect("client");
        let limit = MIB as u64;
        // An endless answer: without the limit, only the timeout would end it.
        let started = Instant::now();
        let fetched = get(&http, &url, "endless", limit, &files).await;
        let elapsed = started.elapsed();
        assert!(
            matches!(fetched, Err(HttpFetchError::TooLarge { .. })),
            "{}",
            shown(&fetched)
        );
        eprintln!("an endless answer was cut after {elapsed:?}");
        assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
        // A length announced past what the limit allows: refused before the body.
        let url = serve(|_, mut stream| async move {
            let _ = stream
                .write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 10000000000\r\n\r\n{\"content\": \"",
                )
                .await;
            tokio::time::sleep(Duration::from_secs(60)).await;
        })
        .await;
        let started = Instant::now();
        let fetched = get(&http, &url, "h", limit, &files).await;
        assert!(
            matches!(fetched, Err(HttpFetchError::TooLarge { .. })),
            "{}",
            shown(&fetched)
        );
        assert!(started.elapsed() < Duration::from_secs(20));
        // Nothing was left in the store's temporary directory.
        let tmp = std::fs::read_dir(_dir.path().join("tmp"))
            .expect("tmp")
            .count();
        assert_eq!(tmp, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn peers_that_keep_failing_are_dropped() {
        let _alone = STREAMING.lock().await;
        let server_error = serve(|_, mut stream| async move {
            write_status(&mut stream, "500 Internal Server Error", "").await;
        })
        .await;
        let bad_body = serve(|_, mut stream| async move {
            let body = b"{\"status\": \"success\", \"content\": \"QUJD";
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(body).await;
        })
        .await;
        let hanging = serve(|_, stream| async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            drop(stream);
        })
        .await;
        let refused = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            format!("http://{}", listener.local_addr().expect("address"))
        };
        let not_found = serve(|_, mut stream| async move {
            write_status(&mut stream, "404 Not Found", "").await;
        })
        .await;
        let too_large_there = serve(|_, mut stream| async move {
            write_status(&mut stream, "413 Payload Too Large", "").await;
        })
        .await;

        let peers = HttpPeers::new(
            &[format!("{hanging}/")],
            Some(format!("{not_found}/")),
            default_rules(100),
        );
        for url in [
            &server_error,
            &bad_body,
            &refused,
            &not_found,
            &too_large_there,
        ] {
            peers.add(url);
        }
        let mut listed = peers.list();
        listed.sort();
        let mut expected = vec![
            server_error.clone(),
            bad_body.clone(),
            hanging.clone(),
            refused.clone(),
            too_large_there.clone(),
        ];
        expected.sort();
        assert_eq!(listed, expected, "this node's own API is not listed");

        let (_dir, files) = store();
        let http = http_client(0.5).expect("client");
        for round in 1..=MAX_FAILURES {
            for url in peers.list() {
                let writer = files.writer(1000, false).expect("w");
                let fetched = ask_http_peer(&peers, &http, &url, "h", 1000, writer).await;
                let expected = if url == too_large_there {
                    Verdict::Answered
                } else {
                    Verdict::Failed
                };
                assert_eq!(
                    Verdict::of(&fetched),
                    expected,
                    "{url}: {}",
                    shown(&fetched)
                );
            }
            if round < MAX_FAILURES {
                assert_eq!(peers.list().len(), 5, "round {round}");
            }
        }
        assert_eq!(peers.list(), vec![too_large_there.clone()]);
        // Announced again: ignored for a while.
        peers.add(&server_error);
        assert_eq!(peers.list(), vec![too_large_there.clone()]);
        // The configured peer is resting, not forgotten.
        let state = peers.state();
        assert!(state.peers[&hanging].resting_until.is_some());
        assert_eq!(state.dropped.len(), 3);
    }

    #[test]
    fn http_peers_are_bounded_and_an_answer_clears_failures() {
        let peers = HttpPeers::new(&["http://configured".to_owned()], None, default_rules(3));
        for i in 0..10 {
            peers.add(&format!("http://announced-{i}"));
        }
        assert_eq!(peers.list().len(), 3);
        peers.add("http://configured/");
        assert_eq!(peers.list().len(), 3);
        let url = "http://announced-0";
        for _ in 0..5 {
            for _ in 1..MAX_FAILURES {
                peers.record(url, Verdict::Failed);
            }
            peers.record(url, Verdict::Neither);
            peers.record(url, Verdict::Answered);
        }
        assert!(peers.list().iter().any(|u| u == url));
        // The healthiest first.
        peers.record(url, Verdict::Failed);
        assert_eq!(peers.list().last().map(String::as_str), Some(url));
        for _ in 1..MAX_FAILURES {
            peers.record(url, Verdict::Failed);
        }
        assert!(!peers.list().iter().any(|u| u == url));
        // Its place is free for another.
        peers.add("http://announced-9");
        assert!(peers.list().iter().any(|u| u == "http://announced-9"));
        // A configured peer rests, then is asked again.
        for _ in 0..MAX_FAILURES {
            peers.record("http://configured", Verdict::Failed);
        }
        assert!(!peers.list().iter().any(|u| u == "http://configured"));
        peers
            .state()
            .peers
            .get_mut("http://configured")
            .expect("kept")
            .resting_until = Some(Instant::now());
        assert!(peers.list().iter().any(|u| u == "http://configured"));
        // Records for peers no longer listed are ignored.
        peers.record("http://unknown", Verdict::Failed);
    }

    #[test]
    fn the_fetch_limits_default_to_their_former_values() {
        let rules = HttpPeerRules::of(&SyncConfig::default());
        assert_eq!(rules.max_failures, MAX_FAILURES);
        assert_eq!(rules.rest, Duration::from_secs(600));
        assert_eq!(rules.dropped_for, Duration::from_secs(3600));
        let config = SyncConfig::default();
        assert_eq!(config.bad_peer_penalty(), Duration::from_secs(3600));
        assert_eq!(config.fetch_retry_after(), Duration::from_secs(2));
        assert_eq!(config.max_served_chunk_bytes, 4 * 1024 * 1024);
    }

    #[test]
    fn the_configured_rules_decide_when_a_peer_is_dropped_and_for_how_long() {
        let mut layers = crate::config::Layers::new().expect("layers");
        for set in [
            "sync.http_peer_max_failures=1",
            "sync.http_peer_dropped_secs=0",
            "sync.http_peer_rest_secs=0",
        ] {
            layers.set_flag(set).expect("a setting");
        }
        let config = layers.resolve().expect("a configuration");
        let peers = HttpPeers::new(
            &["http://configured".to_owned()],
            None,
            HttpPeerRules::of(&config.sync),
        );
        peers.add("http://announced");
        // One failure is enough to drop an announced peer...
        peers.record("http://announced", Verdict::Failed);
        assert_eq!(peers.list(), ["http://configured"]);
        // ...whose announcements are not ignored at all when dropped for 0 seconds.
        peers.add("http://announced");
        assert_eq!(peers.list().len(), 2);
        // A configured peer rests 0 seconds: listed again at once.
        peers.record("http://configured", Verdict::Failed);
        assert!(peers.list().iter().any(|u| u == "http://configured"));
    }
}
