//! Joins compute to the node: programs and files read from the index and the file store,
//! the node's API lent to programs, and the pipeline's events forwarded.

use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use http_body_util::BodyExt;
use raleph_compute::{Compute, ProcessedMessage, ProgramSource, ResolvedFile, StoredProgram};
use raleph_db::{ItemHash, MessageQuery, MessageStatus, MessageType, ReadStore, SortOrder};
use raleph_pipeline::{Event, PipelineHandle};
use raleph_storage::FileStore;
use tower::ServiceExt;

/// Programs and files as the node holds them.
pub struct NodeSource {
    pub reader: Arc<dyn ReadStore>,
    pub files: FileStore,
}

fn io_error(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl ProgramSource for NodeSource {
    fn program(&self, item_hash: &str) -> std::io::Result<Option<StoredProgram>> {
        // A name that is no item hash names no program.
        let Ok(item_hash) = ItemHash::parse(item_hash) else {
            return Ok(None);
        };
        let Some(message) = self.reader.message(&item_hash).map_err(io_error)? else {
            return Ok(None);
        };
        if message.envelope.message_type != MessageType::Program
            || message.status != MessageStatus::Processed
        {
            return Ok(None);
        }
        Ok(Some(StoredProgram {
            item_hash: message.envelope.item_hash.into(),
            sender: message.envelope.sender,
            time: message.envelope.time,
            content: message.content,
        }))
    }

    fn programs(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> std::io::Result<(Vec<StoredProgram>, Option<String>)> {
        let offset: u64 = after.and_then(|a| a.parse().ok()).unwrap_or(0);
        let query = MessageQuery {
            message_types: vec!["PROGRAM".to_owned()],
            statuses: vec![MessageStatus::Processed],
            sort_order: SortOrder::Ascending,
            limit: limit as u64,
            offset,
            ..MessageQuery::default()
        };
        let page = self.reader.messages(&query).map_err(io_error)?;
        let next = (page.len() == limit).then(|| (offset + limit as u64).to_string());
        let programs = page
            .into_iter()
            .map(|m| StoredProgram {
                item_hash: m.envelope.item_hash.into(),
                sender: m.envelope.sender,
                time: m.envelope.time,
                content: m.content,
            })
            .collect();
        Ok((programs, next))
    }

    fn resolve(&self, reference: &str, use_latest: bool) -> std::io::Result<Option<ResolvedFile>> {
        let Ok(message_hash) = ItemHash::parse(reference) else {
            return Ok(None);
        };
        let Some(original) = self
            .reader
            .file_of_message(&message_hash)
            .map_err(io_error)?
        else {
            return Ok(None);
        };
        let mut pinned = original.clone();
        if use_latest
            && let Some(latest) = self.reader.file_of_tag(reference).map_err(io_error)?
            && latest.owner == original.owner
        {
            pinned = latest;
        }
        let Some(file) = self.reader.file(&pinned.file_hash).map_err(io_error)? else {
            return Ok(None);
        };
        Ok(Some(ResolvedFile {
            store_hash: pinned.message_hash.into(),
            sha256: file.sha256,
            size: file.size,
        }))
    }

    fn read(&self, sha256: &str, max_bytes: u64) -> std::io::Result<Option<Vec<u8>>> {
        let Some(info) = self.files.info(sha256).map_err(io_error)? else {
            return Ok(None);
        };
        if info.size > max_bytes {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} bytes, more than {max_bytes}", info.size),
            ));
        }
        self.files.get(sha256).map_err(io_error)
    }
}

/// The node's read API as programs reach it at the reserved authority: served in-process by
/// the same router as the public API (and with its limits), answers of at most `max_answer`
/// bytes (`compute.max_guest_api_answer_bytes`).
pub fn guest_api(api: axum::Router, max_answer: usize) -> raleph_compute::wasm::GuestApi {
    Arc::new(move |request: http::Request<Bytes>| {
        let api = api.clone();
        Box::pin(async move {
            let response = match api.oneshot(request.map(Body::from)).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            let (parts, body) = response.into_parts();
            let body = match http_body_util::Limited::new(body, max_answer)
                .collect()
                .await
            {
                Ok(collected) => collected.to_bytes(),
                Err(_) => Bytes::from_static(b"{\"error\":\"answer too large\"}"),
            };
            http::Response::from_parts(parts, body)
        })
    })
}

/// Forwards what the pipeline decides to compute, for the life of the node.
pub fn forward_events(pipeline: &PipelineHandle, compute: Compute) {
    let mut events = pipeline.subscribe();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(Event::Processed(message)) => {
                    let json = raleph_api::message_json(&message);
                    compute.on_processed(&ProcessedMessage {
                        item_hash: message.envelope.item_hash.as_str(),
                        message_type: message.envelope.message_type.as_str(),
                        sender: &message.envelope.sender,
                        time: message.envelope.time,
                        content: &message.content,
                        json: &json,
                    });
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "compute missed processed messages (too many at once): reading programs again"
                    );
                    compute.resync();
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a program reads at `/answer` of a router answering `bytes` bytes there, with
    /// answers bounded to `max_answer` bytes.
    async fn read_answer(bytes: usize, max_answer: usize) -> (u16, Bytes) {
        let router = axum::Router::new().route(
            "/answer",
            axum::routing::get(move || async move { "x".repeat(bytes) }),
        );
        let api = guest_api(router, max_answer);
        let request = http::Request::get("/answer")
            .body(Bytes::new())
            .expect("request");
        let response = api(request).await;
        (response.status().as_u16(), response.into_body())
    }

    #[tokio::test]
    async fn a_guest_api_answer_is_bounded_by_its_setting() {
        let (status, body) = read_answer(100, 100).await;
        assert_eq!((status, body.len()), (200, 100));
        let (status, body) = read_answer(101, 100).await;
        assert_eq!(status, 200);
        assert_eq!(
            body,
            Bytes::from_static(b"{\"error\":\"answer too large\"}")
        );
    }
}
