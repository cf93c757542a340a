//! Uploads: multipart and raw bodies streamed to disk while hashed, checked against the signed
//! STORE message that may come with them, and JSON documents stored in the reference's form.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use raleph_message::content::TypedContent;
use raleph_message::{Content, Envelope, MessageType};
use raleph_pipeline::SubmitError;
use raleph_storage::{FileWriter, PendingFile, StorageError};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::store_adapter::Upload;
use super::{Engine, storage_error};
use crate::body::LimitedBody;
use crate::error::{ApiError, ApiResult};
use crate::multipart;
use crate::params::Params;
use crate::{AppState, messages};

fn pipeline_error(e: SubmitError) -> ApiError {
    match e {
        SubmitError::Busy | SubmitError::Unavailable(_) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
        other => ApiError::internal(other),
    }
}

/// Streams chunks into a new file on a blocking thread, so hashing never stalls the async
/// workers and memory stays bounded by the queue.
struct Sink {
    chunks: mpsc::Sender<Bytes>,
    done: tokio::task::JoinHandle<Result<PendingFile, StorageError>>,
}

impl Sink {
    /// `queue`: chunks in flight (`api.upload_queue_chunks`).
    fn start(mut writer: FileWriter, queue: usize) -> Sink {
        let (chunks, mut incoming) = mpsc::channel::<Bytes>(queue.max(1));
        let done = tokio::task::spawn_blocking(move || {
            while let Some(chunk) = incoming.blocking_recv() {
                writer.write(&chunk)?;
            }
            writer.finish()
        });
        Sink { chunks, done }
    }

    /// Feeds one chunk; `false` when the writer stopped (over the limit, or a disk error).
    async fn feed(&self, chunk: Bytes) -> bool {
        self.chunks.send(chunk).await.is_ok()
    }

    async fn finish(self) -> ApiResult<PendingFile> {
        drop(self.chunks);
        self.done
            .await
            .map_err(ApiError::internal)?
            .map_err(storage_error)
    }
}

fn new_writer(state: &AppState, limit: u64, with_cid_v1: bool) -> ApiResult<FileWriter> {
    state
        .files
        .writer(limit, with_cid_v1)
        .map_err(storage_error)
}

/// `metadata` of an authenticated upload: a signed STORE message.
struct StoreRequest {
    envelope: Envelope,
    /// The file the message names, and the engine it names it in.
    file_hash: String,
    item_type: raleph_message::ItemType,
    sync: bool,
}

fn parse_metadata(text: &[u8]) -> ApiResult<StoreRequest> {
    let metadata: Value = serde_json::from_slice(text)
        .map_err(|e| ApiError::unprocessable(format!("metadata is not valid JSON: {e}")))?;
    let message = metadata
        .get("message")
        .ok_or_else(|| ApiError::unprocessable("metadata needs a `message`"))?;
    let envelope =
        Envelope::from_json(message).map_err(|e| ApiError::unprocessable(e.to_string()))?;
    if envelope.message_type != MessageType::Store {
        return Err(ApiError::unprocessable(
            "the metadata message must be a STORE",
        ));
    }
    let raw = envelope
        .item_content
        .as_deref()
        .ok_or_else(|| ApiError::unprocessable("the STORE message must be inline"))?;
    let content = Content::parse(
        MessageType::Store,
        raw.as_bytes(),
        &envelope.sender,
        envelope.time,
    )
    .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let TypedContent::Store(store) = content.typed else {
        return Err(ApiError::unprocessable(
            "the metadata message must be a STORE",
        ));
    };
    let sync = metadata
        .get("sync")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(StoreRequest {
        envelope,
        file_hash: store.item_hash.into_string(),
        item_type: store.item_type,
        sync,
    })
}

/// The parts of an upload, read from a multipart body or a raw one.
struct Received {
    file: PendingFile,
    name: Option<String>,
    store: Option<StoreRequest>,
}

async fn receive(
    state: &AppState,
    request: Request,
    engine: Engine,
    with_cid_v1: bool,
) -> ApiResult<Received> {
    let limits = &state.storage;
    let authenticated_limit = match engine {
        Engine::Storage => limits.max_upload_bytes,
        Engine::Ipfs => limits.max_ipfs_upload_bytes,
    };
    let is_multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if !is_multipart && engine == Engine::Ipfs {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "ipfs/add_file takes a multipart/form-data body",
        ));
    }
    if !is_multipart {
        // A raw body is an unauthenticated upload.
        let limit = limits.max_unauthenticated_upload_bytes;
        let sink = Sink::start(
            new_writer(state, limit, with_cid_v1)?,
            state.config.upload_queue_chunks,
        );
        let mut body = request.into_body().into_data_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk
                .map_err(|e| ApiError::bad_request(format!("reading the body failed: {e}")))?;
            if !sink.feed(chunk).await {
                break;
            }
        }
        return Ok(Received {
            file: sink.finish().await?,
            name: None,
            store: None,
        });
    }
    // Our own parser (multipart.rs): preamble, part headers and part count are bounded.
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let parser = multipart::Parser::from_content_type(content_type, state.config.multipart)?;
    let mut parts = multipart::Reader::new(parser, request.into_body().into_data_stream());
    let mut store = None;
    let mut file = None;
    let mut name = None;
    while let Some(part) = parts.next_part().await? {
        match part.name.as_deref() {
            Some("metadata") => {
                let mut text = Vec::new();
                while let Some(chunk) = parts.chunk().await? {
                    if text.len() + chunk.len() > state.config.max_upload_metadata_bytes {
                        return Err(ApiError::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            format!(
                                "metadata is larger than {} bytes (api.max_upload_metadata_bytes)",
                                state.config.max_upload_metadata_bytes
                            ),
                        ));
                    }
                    text.extend_from_slice(&chunk);
                }
                // A refused metadata part is answered once the body is read: answering
                // mid-upload would cut the connection under a client still sending.
                store = Some(parse_metadata(&text));
            }
            Some("file") if file.is_none() => {
                name = part.filename;
                // Metadata may come after the file: until it is known, stream with the larger
                // limit, and check the right one once the body is read.
                let limit = match store {
                    Some(_) => authenticated_limit,
                    None => authenticated_limit.max(limits.max_unauthenticated_upload_bytes),
                };
                let sink = Sink::start(
                    new_writer(state, limit, with_cid_v1)?,
                    state.config.upload_queue_chunks,
                );
                while let Some(chunk) = parts.chunk().await? {
                    if !sink.feed(chunk).await {
                        break;
                    }
                }
                file = Some(sink.finish().await?);
            }
            // Unknown parts are read and ignored (`next_part` skips what is left of them).
            _ => {}
        }
    }
    let store = store.transpose()?;
    let file = file.ok_or_else(|| ApiError::unprocessable("the upload has no `file` part"))?;
    let limit = if store.is_some() {
        authenticated_limit
    } else {
        limits.max_unauthenticated_upload_bytes
    };
    if file.info().size > limit {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the file is larger than the limit of {limit} bytes"),
        ));
    }
    Ok(Received { file, name, store })
}

/// `POST /api/v0/storage/add_file`.
pub async fn storage_add_file(
    State(state): State<AppState>,
    request: Request,
) -> ApiResult<Response> {
    add_file(state, request, Engine::Storage, false).await
}

/// `POST /api/v0/ipfs/add_file`; `?cid_version=1` answers the CIDv1 (raw leaves).
pub async fn ipfs_add_file(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    request: Request,
) -> ApiResult<Response> {
    let params = Params::parse(query.as_deref(), &state.config)?;
    let with_cid_v1 = match params.get(&["cid_version", "cid-version"]) {
        None | Some("0") => false,
        Some("1") => true,
        Some(_) => return Err(ApiError::unprocessable("cid_version must be 0 or 1")),
    };
    add_file(state, request, Engine::Ipfs, with_cid_v1).await
}

async fn add_file(
    state: AppState,
    request: Request,
    engine: Engine,
    with_cid_v1: bool,
) -> ApiResult<Response> {
    let Received { file, name, store } = receive(&state, request, engine, with_cid_v1).await?;
    let info = file.info().clone();
    let answered_hash = match (engine, with_cid_v1) {
        (Engine::Storage, _) => info.sha256.clone(),
        (Engine::Ipfs, false) => info.cid_v0.clone(),
        (Engine::Ipfs, true) => info.cid_v1.clone().unwrap_or_else(|| info.cid_v0.clone()),
    };
    let Some(store) = store else {
        // Unauthenticated: the file lives for the grace period unless a STORE pins it.
        state
            .pipeline
            .store_file(Box::new(Upload(file)), true)
            .await
            .map_err(pipeline_error)?;
        return Ok(upload_answer(
            StatusCode::OK,
            engine,
            &answered_hash,
            name,
            info.size,
        ));
    };
    let envelope = store.envelope;
    let (envelope, verdict) = tokio::task::spawn_blocking(move || {
        let verdict = raleph_pipeline::verify_signature(&envelope);
        (envelope, verdict)
    })
    .await
    .map_err(ApiError::internal)?;
    if verdict.is_err() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "the STORE message's signature is invalid",
        ));
    }
    let expected_type = match engine {
        Engine::Storage => raleph_message::ItemType::Storage,
        Engine::Ipfs => raleph_message::ItemType::Ipfs,
    };
    if store.item_type != expected_type {
        return Err(ApiError::unprocessable(format!(
            "this endpoint stores item_type={expected_type} files, the STORE message says {}",
            store.item_type
        )));
    }
    if !info.ids().any(|id| id == store.file_hash) {
        return Err(ApiError::unprocessable(format!(
            "the STORE message names file {}, the upload is {}",
            store.file_hash, answered_hash
        )));
    }
    state
        .pipeline
        .store_file(Box::new(Upload(file)), true)
        .await
        .map_err(pipeline_error)?;
    let (status, _) = messages::publish(&state, envelope, store.sync).await?;
    Ok(upload_answer(
        status,
        engine,
        &answered_hash,
        name,
        info.size,
    ))
}

fn upload_answer(
    status: StatusCode,
    engine: Engine,
    hash: &str,
    name: Option<String>,
    size: u64,
) -> Response {
    let body = match engine {
        Engine::Storage => json!({"status": "success", "hash": hash}),
        Engine::Ipfs => {
            json!({"status": "success", "hash": hash, "name": name.unwrap_or_default(), "size": size})
        }
    };
    (status, Json(body)).into_response()
}

/// Serializes as the reference's `add_json` does: sorted keys, compact, UTF-8.
pub(crate) fn canonical_json(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&map[k])))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

async fn add_json(state: AppState, body: Bytes, engine: Engine) -> ApiResult<Json<Value>> {
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::unprocessable(format!("body is not valid JSON: {e}")))?;
    let bytes = canonical_json(&value).into_bytes();
    let mut writer = new_writer(&state, u64::MAX, false)?;
    let file = tokio::task::spawn_blocking(move || {
        writer.write(&bytes)?;
        writer.finish()
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(storage_error)?;
    let record = state
        .pipeline
        .store_file(Box::new(Upload(file)), true)
        .await
        .map_err(pipeline_error)?;
    let hash = match engine {
        Engine::Storage => record.sha256,
        Engine::Ipfs => record.cid_v0,
    };
    Ok(Json(json!({ "status": "success", "hash": hash })))
}

pub async fn storage_add_json(
    State(state): State<AppState>,
    LimitedBody(body): LimitedBody,
) -> ApiResult<Json<Value>> {
    add_json(state, body, Engine::Storage).await
}

pub async fn ipfs_add_json(
    State(state): State<AppState>,
    LimitedBody(body): LimitedBody,
) -> ApiResult<Json<Value>> {
    add_json(state, body, Engine::Ipfs).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys() {
        let v: Value =
            serde_json::from_str(r#"{"b":1,"a":{"d":"é","c":[{"z":1,"y":2}]}}"#).expect("json");
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"c":[{"y":2,"z":1}],"d":"é"},"b":1}"#
        );
    }
}
