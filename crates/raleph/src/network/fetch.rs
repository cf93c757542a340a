//! Files and non-inline content the pipeline asked for but the node does not hold.
//!
//! The pipeline's content source reports a miss ([`FetchRequests::request`]); the message waits
//! in the pending queue meanwhile, and its next attempt finds the file. A fetch tries raleph
//! peers first (`FetchFile`, raw chunks), then other nodes' HTTP APIs
//! (`GET /api/v0/storage/{hash}`, base64 JSON, the reference nodes' node-to-node call). Bytes are
//! streamed into the file store's writer, which computes the sha256 and CIDs on the way; the
//! file is kept only if the identifier asked for is among them. A peer that serves wrong bytes
//! is skipped for an hour.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use raleph_p2p::{RalephRequest, RalephResponse};
use raleph_storage::{FileWriter, PendingFile};
use tokio::sync::{Semaphore, mpsc};

use super::Shared;

/// How long a peer that served wrong bytes is not asked again.
const PENALTY: Duration = Duration::from_secs(3600);
/// How long after a failed fetch the same file is not looked for again.
const RETRY_AFTER: Duration = Duration::from_secs(2);
/// Largest chunk answered to one `FetchFile`.
const MAX_CHUNK: u32 = 4 * 1024 * 1024;

/// Where the pipeline's content source reports what it misses. Cheap to clone; never blocks.
#[derive(Clone)]
pub struct FetchRequests {
    queue: mpsc::Sender<String>,
    /// Files being fetched, or that failed recently (with when).
    seen: Arc<Mutex<HashMap<String, Option<Instant>>>>,
}

impl FetchRequests {
    /// Asks for a file by sha256 or CID; repeated asks while it is being fetched are no-ops.
    pub fn request(&self, id: &str) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        match seen.get(id) {
            Some(None) => return,
            Some(Some(failed)) if failed.elapsed() < RETRY_AFTER => return,
            _ => {}
        }
        if seen.len() > 10_000 {
            seen.retain(|_, failed| failed.is_none_or(|t| t.elapsed() < RETRY_AFTER));
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
    let (queue, mut requests) = mpsc::channel::<String>(1024);
    let fetches = FetchRequests {
        queue,
        seen: Arc::default(),
    };
    let handle = fetches.clone();
    tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(shared.config.max_concurrent_fetches.max(1)));
        let penalized: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs_f64(
                shared.config.http_fetch_timeout_secs.max(0.1),
            ))
            .build();
        let Ok(http) = http else {
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
    let is_penalized = |source: &str| {
        penalized
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(source)
            .is_some_and(|t| t.elapsed() < PENALTY)
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
    for url in shared.http_peers() {
        if is_penalized(&url) {
            continue;
        }
        match from_http_peer(shared, http, &url, id, with_cid_v1).await {
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
    let chunk = shared.config.fetch_chunk_bytes.clamp(64 * 1024, MAX_CHUNK);
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
        let w = tokio::task::spawn_blocking(move || w.write(&bytes).map(|()| w)).await??;
        writer = Some(w);
        if offset == total {
            break;
        }
    }
    finish(writer).await.map(Some)
}

async fn from_http_peer(
    shared: &Shared,
    http: &reqwest::Client,
    url: &str,
    id: &str,
    with_cid_v1: bool,
) -> anyhow::Result<Option<PendingFile>> {
    let response = http
        .get(format!("{url}/api/v0/storage/{id}"))
        .send()
        .await?;
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !response.status().is_success() {
        anyhow::bail!("HTTP {}", response.status());
    }
    let limit = max_file_bytes(shared);
    // base64 is 4/3 of the bytes, plus a newline every 76 characters and the JSON around it.
    let max_body = limit / 3 * 4 + limit / 57 + 4096;
    if response.content_length().is_some_and(|n| n > max_body) {
        anyhow::bail!("the answer is larger than the file limit allows");
    }
    let body = read_bounded(response, max_body).await?;
    let answer: serde_json::Value = serde_json::from_slice(&body)?;
    let Some(content) = answer.get("content").and_then(|c| c.as_str()) else {
        return Ok(None);
    };
    let compact: String = content
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let bytes = base64::engine::general_purpose::STANDARD.decode(compact)?;
    let mut w = shared.files.writer(limit, with_cid_v1)?;
    let w = tokio::task::spawn_blocking(move || w.write(&bytes).map(|()| w)).await??;
    finish(Some(w)).await.map(Some)
}

async fn read_bounded(mut response: reqwest::Response, max: u64) -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() as u64 + chunk.len() as u64 > max {
            anyhow::bail!("the answer is larger than the file limit allows");
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
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
        .store_file(Box::new(raleph_api::files::Upload(file)), true)
        .await?;
    tracing::debug!(%id, "fetch: file stored");
    Ok(true)
}

/// Answers a peer's `FetchFile` from the local store.
pub(super) async fn answer(shared: &Shared, id: &str, offset: u64, len: u32) -> RalephResponse {
    let files = shared.files.clone();
    let id = id.to_owned();
    let len = len.min(MAX_CHUNK) as usize;
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
