//! `/raleph/1`: the request-response protocol spoken only between raleph nodes.
//!
//! Reference nodes answer `na` to it, and every refused stream costs one of the five inbound
//! stream attempts they allow per connection (p2p.md §3), so the swarm opens it only towards
//! peers known to be raleph nodes.
//!
//! Frames (all lengths big-endian `u32`):
//! - request: `len ‖ JSON(RalephRequest)`, at most `max_request_bytes`;
//! - response: `header_len ‖ JSON(header) ‖ blob_len ‖ blob`, at most `max_response_bytes` in
//!   all. File chunks travel in `blob` as raw bytes; every other response has an empty blob.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::{Multiaddr, StreamProtocol};
use serde::{Deserialize, Serialize};

/// The protocol id.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/raleph/1");

/// Most addresses read from one Hello answer; the rest are ignored.
pub const MAX_HELLO_ADDRS: usize = 64;

/// A request from one raleph node to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RalephRequest {
    /// "Who are you and whom do you know?" Answered by the swarm itself.
    Hello,
    /// Messages the responder received after its own reception sequence number `after`.
    /// With `hashes_only`, the answer lists their item hashes instead of the messages: a node
    /// that holds them all (the usual case, gossip delivered them) moves on without
    /// transferring or parsing them again.
    SyncMessages {
        after: u64,
        limit: u32,
        #[serde(default)]
        hashes_only: bool,
    },
    /// Up to `len` bytes of the file `hash`, from `offset`.
    FetchFile { hash: String, offset: u64, len: u32 },
}

/// The answer to a [`RalephRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RalephResponse {
    Hello(HelloResponse),
    Sync(SyncResponse),
    /// A part of a file; `total` is the file's full size.
    FileChunk {
        total: u64,
        bytes: Vec<u8>,
    },
    NotFound,
    Error {
        message: String,
    },
}

/// What a raleph node says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HelloResponse {
    /// Its HTTP API base URL, if it serves one.
    pub http_base_url: Option<String>,
    /// Addresses it can be dialed at, ending in `/p2p/<its peer id>`.
    pub listen_addrs: Vec<Multiaddr>,
    /// Addresses of other nodes it knows, ending in `/p2p/<peer id>`.
    pub known_peers: Vec<Multiaddr>,
    pub node_version: String,
}

/// A page of the responder's messages in its own reception order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SyncResponse {
    /// Identifies the responder's sequence numbering; a new epoch means "start again from 0".
    pub epoch: String,
    /// Raw message envelopes, as JSON text.
    pub messages: Vec<String>,
    /// Skeletons of messages forgotten on the responder, as JSON text: what a FORGET removed,
    /// for peers that never held it. Absent from older answers.
    #[serde(default)]
    pub forgotten: Vec<String>,
    /// For `hashes_only` requests: the item hashes of the page's messages and of its
    /// forgotten entries, instead of `messages` and `forgotten`.
    #[serde(default)]
    pub message_hashes: Vec<String>,
    #[serde(default)]
    pub forgotten_hashes: Vec<String>,
    /// The `after` to ask for next.
    pub next: u64,
    /// Whether more messages follow `next`.
    pub more: bool,
}

/// The JSON part of a response frame: a [`RalephResponse`] without its raw bytes.
#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ResponseHeader {
    Hello(HelloResponse),
    Sync(SyncResponse),
    FileChunk { total: u64 },
    NotFound,
    Error { message: String },
}

impl RalephResponse {
    fn into_parts(self) -> (ResponseHeader, Vec<u8>) {
        match self {
            RalephResponse::Hello(h) => (ResponseHeader::Hello(h), Vec::new()),
            RalephResponse::Sync(s) => (ResponseHeader::Sync(s), Vec::new()),
            RalephResponse::FileChunk { total, bytes } => {
                (ResponseHeader::FileChunk { total }, bytes)
            }
            RalephResponse::NotFound => (ResponseHeader::NotFound, Vec::new()),
            RalephResponse::Error { message } => (ResponseHeader::Error { message }, Vec::new()),
        }
    }

    fn from_parts(header: ResponseHeader, blob: Vec<u8>) -> io::Result<Self> {
        let no_blob = |r: RalephResponse| {
            if blob.is_empty() {
                Ok(r)
            } else {
                Err(invalid("unexpected bytes after a response without a body"))
            }
        };
        match header {
            ResponseHeader::Hello(h) => no_blob(RalephResponse::Hello(h)),
            ResponseHeader::Sync(s) => no_blob(RalephResponse::Sync(s)),
            ResponseHeader::FileChunk { total } => {
                Ok(RalephResponse::FileChunk { total, bytes: blob })
            }
            ResponseHeader::NotFound => no_blob(RalephResponse::NotFound),
            ResponseHeader::Error { message } => no_blob(RalephResponse::Error { message }),
        }
    }

    /// The size of this response on the wire, bytes.
    pub fn encoded_len(&self) -> usize {
        let header_len = |h: &ResponseHeader| {
            serde_json::to_vec(h)
                .map(|h| h.len())
                .unwrap_or(usize::MAX / 2)
        };
        match self {
            // Do not copy a large chunk just to measure it.
            RalephResponse::FileChunk { total, bytes } => {
                8 + header_len(&ResponseHeader::FileChunk { total: *total }) + bytes.len()
            }
            other => 8 + header_len(&other.clone().into_parts().0),
        }
    }
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// The `/raleph/1` codec, with the size limits it enforces in both directions.
#[derive(Debug, Clone)]
pub struct Codec {
    pub max_request_bytes: usize,
    pub max_response_bytes: usize,
}

async fn read_u32<T: AsyncRead + Unpin>(io: &mut T) -> io::Result<usize> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    Ok(u32::from_be_bytes(len) as usize)
}

/// Reads `len` bytes, after checking `len` against what is left of the frame budget.
async fn read_bounded<T: AsyncRead + Unpin>(
    io: &mut T,
    len: usize,
    budget: &mut usize,
) -> io::Result<Vec<u8>> {
    if len > *budget {
        return Err(invalid(format!(
            "frame exceeds the limit by {} bytes",
            len - *budget
        )));
    }
    *budget -= len;
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    Ok(buf)
}

fn len_prefix(len: usize, limit: usize) -> io::Result<[u8; 4]> {
    if len > limit {
        return Err(invalid(format!(
            "frame of {len} bytes exceeds the limit of {limit}"
        )));
    }
    u32::try_from(len)
        .map(u32::to_be_bytes)
        .map_err(|_| invalid("frame too large"))
}

impl libp2p::request_response::Codec for Codec {
    type Protocol = StreamProtocol;
    type Request = RalephRequest;
    type Response = RalephResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<RalephRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut budget = self.max_request_bytes;
        let len = read_u32(io).await?;
        let body = read_bounded(io, len, &mut budget).await?;
        serde_json::from_slice(&body).map_err(|e| invalid(format!("bad request: {e}")))
    }

    async fn read_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<RalephResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut budget = self.max_response_bytes.saturating_sub(8);
        let header_len = read_u32(io).await?;
        let header = read_bounded(io, header_len, &mut budget).await?;
        let header: ResponseHeader =
            serde_json::from_slice(&header).map_err(|e| invalid(format!("bad response: {e}")))?;
        let blob_len = read_u32(io).await?;
        let blob = read_bounded(io, blob_len, &mut budget).await?;
        RalephResponse::from_parts(header, blob)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: RalephRequest,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let body = serde_json::to_vec(&request).map_err(io::Error::other)?;
        io.write_all(&len_prefix(body.len(), self.max_request_bytes)?)
            .await?;
        io.write_all(&body).await?;
        io.close().await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: RalephResponse,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let (header, blob) = response.into_parts();
        let header = serde_json::to_vec(&header).map_err(io::Error::other)?;
        let limit = self.max_response_bytes.saturating_sub(8);
        io.write_all(&len_prefix(header.len(), limit)?).await?;
        io.write_all(&header).await?;
        io.write_all(&len_prefix(blob.len(), limit.saturating_sub(header.len()))?)
            .await?;
        io.write_all(&blob).await?;
        io.close().await
    }
}

#[cfg(test)]
mod tests {
    use futures::io::Cursor;
    use libp2p::request_response::Codec as _;

    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn codec(max_response_bytes: usize) -> Codec {
        Codec {
            max_request_bytes: 64 * 1024,
            max_response_bytes,
        }
    }

    fn round_trip_response(response: RalephResponse) -> io::Result<RalephResponse> {
        block_on(async {
            let mut buf = Cursor::new(Vec::new());
            codec(1 << 20)
                .write_response(&PROTOCOL, &mut buf, response.clone())
                .await?;
            let bytes = buf.into_inner();
            assert_eq!(bytes.len(), response.encoded_len());
            codec(1 << 20)
                .read_response(&PROTOCOL, &mut Cursor::new(bytes))
                .await
        })
    }

    #[test]
    fn requests_round_trip() {
        for request in [
            RalephRequest::Hello,
            RalephRequest::SyncMessages {
                after: 7,
                limit: 100,
                hashes_only: true,
            },
            RalephRequest::FetchFile {
                hash: "ab".into(),
                offset: 3,
                len: 9,
            },
        ] {
            let got = block_on(async {
                let mut buf = Cursor::new(Vec::new());
                codec(1024)
                    .write_request(&PROTOCOL, &mut buf, request.clone())
                    .await?;
                codec(1024)
                    .read_request(&PROTOCOL, &mut Cursor::new(buf.into_inner()))
                    .await
            })
            .unwrap();
            assert_eq!(got, request);
        }
    }

    #[test]
    fn responses_round_trip_with_raw_file_bytes() {
        let chunk = RalephResponse::FileChunk {
            total: 1000,
            bytes: (0..=255).collect(),
        };
        assert_eq!(round_trip_response(chunk.clone()).unwrap(), chunk);
        // The chunk is carried raw: 256 bytes plus a small header, not base64.
        assert!(chunk.encoded_len() < 256 + 64);
        for response in [
            RalephResponse::Hello(HelloResponse {
                http_base_url: Some("http://192.0.2.1:4024".into()),
                listen_addrs: vec!["/ip4/192.0.2.1/tcp/4025".parse().unwrap()],
                known_peers: vec![],
                node_version: "x".into(),
            }),
            RalephResponse::Sync(SyncResponse {
                epoch: "e".into(),
                messages: vec![r#"{"a":"\u00e9"}"#.into()],
                forgotten: vec![r#"{"item_hash":"h"}"#.into()],
                message_hashes: vec!["m".into()],
                forgotten_hashes: vec!["f".into()],
                next: 5,
                more: true,
            }),
            RalephResponse::NotFound,
            RalephResponse::Error {
                message: "no".into(),
            },
        ] {
            assert_eq!(round_trip_response(response.clone()).unwrap(), response);
        }
    }

    #[test]
    fn oversize_frames_are_refused_both_ways() {
        let big = RalephResponse::FileChunk {
            total: 0,
            bytes: vec![0; 2000],
        };
        // The writer refuses to send more than its limit.
        let mut buf = Cursor::new(Vec::new());
        assert!(block_on(codec(1000).write_response(&PROTOCOL, &mut buf, big.clone())).is_err());
        // The reader refuses a frame above its limit without allocating it.
        let mut buf = Cursor::new(Vec::new());
        block_on(codec(1 << 20).write_response(&PROTOCOL, &mut buf, big)).unwrap();
        let err =
            block_on(codec(1000).read_response(&PROTOCOL, &mut Cursor::new(buf.into_inner())))
                .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        // A length prefix claiming 4 GiB is refused, not allocated.
        let bogus = [0xff, 0xff, 0xff, 0xff];
        assert!(block_on(codec(1000).read_request(&PROTOCOL, &mut Cursor::new(bogus))).is_err());
        // Garbage JSON is an error, not a panic.
        let mut junk = 3u32.to_be_bytes().to_vec();
        junk.extend_from_slice(b"{{{");
        assert!(block_on(codec(1000).read_request(&PROTOCOL, &mut Cursor::new(junk))).is_err());
    }
}
