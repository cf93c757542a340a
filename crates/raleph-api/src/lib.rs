//! The HTTP API: the routes of the reference node that the SDK and CLI use, with the same
//! JSON shapes, plus `/metrics`.
//!
//! Handlers reach the index through [`ReadStore`] (on the read threads, `read_pool`) and submit messages
//! through the pipeline's handle; they never see a concrete database.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]
// The OpenAPI schemas (`openapi/schemas.rs`) are one `json!` literal, deeper than the default.
#![recursion_limit = "256"]

mod addresses;
mod aggregates;
mod authorizations;
mod body;
mod confirmations;
mod count_cache;
mod cursor;
mod docs;
mod error;
mod explorer;
pub mod files;
mod hashes;
mod messages;
mod misc;
pub mod multipart;
mod openapi;
pub mod p2p;
mod params;
mod posts;
mod read_pool;
mod serve;
mod shapes;
pub mod status;
mod upgrade;
mod ws;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use raleph_db::ReadStore;
use raleph_pipeline::PipelineHandle;
use raleph_storage::{FileStore, StorageConfig};
use tower_http::cors::{Any, CorsLayer};

pub use error::{ApiError, ApiResult};

/// A processed message as the API and the websocket show it.
pub fn message_json(message: &raleph_db::MessageRecord) -> serde_json::Value {
    serde_json::to_value(shapes::message(message, false, shapes::ContentFormat::Full))
        .unwrap_or_default()
}
pub use serve::{ConnectionLimits, serve};
pub use status::monitor::StatusMonitor;

/// For the fuzz targets under `fuzz/` only; not part of the crate's API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::cursor::{decode as decode_cursor, encode as encode_cursor};
    pub use crate::messages::{content_format, message_query};
    pub use crate::params::Params;
}

/// Limits of the API. Every field is a documented config value.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Largest JSON request body, in bytes.
    pub max_body_bytes: usize,
    /// How long a `sync: true` submission waits for processing, in seconds.
    pub sync_timeout_secs: f64,
    /// Most websocket subscribers at once.
    pub max_websockets: usize,
    /// Most status websockets (`/api/ws0/status`) at once; past it, a new one is closed
    /// with code 1013. They share one reading of the counters every 2 s.
    pub max_status_websockets: usize,
    /// How long the total of a long list is reused before being counted again, seconds. Only
    /// totals the store does not keep are cached (see `count_cache`): the unfiltered list and
    /// lists filtered on one kept column are always exact.
    pub count_cache_secs: f64,
    /// Most reads of the index at once; further requests wait their turn. 0 = as many as the
    /// machine has cores (for a PostgreSQL index, its `database_read_connections`). With
    /// SQLite, more readers than cores only contend for the cores and SQLite's page-cache
    /// lock (BENCHMARKS.md). Counting a list's total does not hold a turn.
    pub max_concurrent_reads: usize,
    /// Most API connections open at once, websockets included. A connection past it is
    /// closed as soon as it is accepted, before anything is read. 0: no limit.
    pub max_connections: usize,
    /// Most API connections open at once from one client address (an IPv6 client counts by
    /// its /64). A connection past it is closed as soon as it is accepted. Loopback is not
    /// exempt: behind a reverse proxy on the same host every client shares the proxy's
    /// address, so raise it there, or set 0 (no per-address limit) and let the proxy limit.
    pub max_connections_per_ip: usize,
    /// A request's line and headers must all arrive within this many seconds of its first
    /// byte (of the connection's opening, for its first request), or the connection is
    /// closed. 0: no limit.
    pub header_timeout_secs: f64,
    /// A connection with no request in flight is closed after this many seconds. A request is
    /// in flight until its whole response has been sent, so a long download is not cut; a
    /// websocket is never closed by it. 0: never.
    pub idle_timeout_secs: f64,
    /// A connection with a request in flight that neither sends nor receives a byte for this
    /// many seconds is closed: a request body that stopped arriving, a client that stopped
    /// reading its answer. Longer than `sync_timeout_secs`, which a sync submission may wait
    /// in silence. 0: never.
    pub stall_timeout_secs: f64,
    /// Largest request head (request line and headers), bytes: past it, a 431. It also bounds
    /// what a connection buffers of its input at once. At least 8 192.
    pub max_header_bytes: usize,
    /// Most rows in one page of a list (`pagination`); `pagination=0`, which the reference
    /// reads as "no limit", gets this many. A larger page is refused with a 422.
    pub max_page_size: u64,
    /// Most bytes of messages (content and raw content) one list page may hold: a page past
    /// it is refused with a 422 asking for fewer rows, before more is read. A page's answer
    /// takes about 2.5 times this in memory while it is built.
    pub max_response_bytes: usize,
    /// Most values in one query string, every comma-separated item of every parameter
    /// counted (e.g. `addresses=a,b,c` is 3). Past it, a 422.
    pub max_query_values: usize,
    /// Largest websocket message or frame a client may send, in bytes (clients of the
    /// messages websocket only ever send pings and closes).
    pub max_websocket_message_bytes: usize,
    /// Bytes of messages queued for one websocket client and not yet written to it; past
    /// it, the client (which does not read what it is sent) is dropped.
    pub max_websocket_backlog_bytes: usize,
    /// The same, for all websocket clients together.
    pub max_websocket_backlog_total_bytes: usize,
    /// Most messages in one page of a list paged by cursor (`cursor=`): a larger
    /// `pagination` is served this many, with the cursor of the next page.
    pub max_cursor_page_size: u64,
    /// How often a websocket client is sent a ping, seconds (taken as at least 1 and at most
    /// 86 400): keeps the connection alive through proxies that close quiet ones.
    pub websocket_ping_secs: f64,
    /// Largest `metadata` part of a multipart upload (the signed STORE message), bytes; it
    /// is held in memory while the upload is read. Past it, a 413.
    pub max_upload_metadata_bytes: usize,
    /// Chunks of an upload's body in flight between the connection and the disk writer, per
    /// upload: more smooths a slow disk, at the cost of memory per upload. At least 1.
    pub upload_queue_chunks: usize,
    /// Limits of a multipart upload body (`[api.multipart]`): its preamble, each part's
    /// headers, the number of parts.
    pub multipart: multipart::Limits,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            max_body_bytes: 1024 * 1024,
            sync_timeout_secs: 30.0,
            max_websockets: 10_000,
            max_status_websockets: 256,
            count_cache_secs: 30.0,
            max_concurrent_reads: 0,
            // ~15 KB per idle connection (tests/connections.rs): 4 096 cost ~60 MB, plus at
            // most `max_header_bytes` each of a request head being received.
            max_connections: 4_096,
            max_connections_per_ip: 256,
            header_timeout_secs: 10.0,
            idle_timeout_secs: 60.0,
            stall_timeout_secs: 120.0,
            max_header_bytes: 64 * 1024,
            max_page_size: 1000,
            max_response_bytes: 32 * 1024 * 1024,
            max_query_values: 1000,
            max_websocket_message_bytes: 64 * 1024,
            max_websocket_backlog_bytes: 4 * 1024 * 1024,
            max_websocket_backlog_total_bytes: 256 * 1024 * 1024,
            max_cursor_page_size: 200,
            websocket_ping_secs: 30.0,
            max_upload_metadata_bytes: 1024 * 1024,
            upload_queue_chunks: 16,
            multipart: multipart::Limits::default(),
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub reader: Arc<dyn ReadStore>,
    pub pipeline: PipelineHandle,
    pub files: FileStore,
    pub config: Arc<ApiConfig>,
    pub storage: Arc<StorageConfig>,
    /// The peer-to-peer network, when the node runs one.
    pub network: Option<Arc<dyn p2p::Network>>,
    pub(crate) websockets: Arc<std::sync::atomic::AtomicUsize>,
    /// Bytes queued for all websocket clients and not yet written (see `ws`).
    pub(crate) websocket_backlog: Arc<std::sync::atomic::AtomicUsize>,
    pub(crate) counts: Arc<count_cache::CountCache>,
    /// The clock time rules are decided by (grace pins, the count cache's lifetimes): the
    /// node's one clock (see [`AppState::with_clock`]).
    pub(crate) clock: Arc<dyn raleph_pipeline::Clock>,
    /// The threads that run reads, `max_concurrent_reads` at once (see [`ApiConfig`]).
    pub(crate) reads: Arc<read_pool::ReadPool>,
    /// What the status monitor shares: the latest metrics, the history, status sockets.
    pub(crate) status: Arc<status::monitor::Hub>,
}

impl AppState {
    pub fn new(
        reader: Arc<dyn ReadStore>,
        pipeline: PipelineHandle,
        files: FileStore,
        config: ApiConfig,
        storage: StorageConfig,
    ) -> Self {
        let count_ttl = std::time::Duration::from_secs_f64(config.count_cache_secs.max(0.0));
        let reads = match config.max_concurrent_reads {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        AppState {
            reader,
            pipeline,
            files,
            config: Arc::new(config),
            storage: Arc::new(storage),
            network: None,
            websockets: Arc::default(),
            websocket_backlog: Arc::default(),
            counts: Arc::new(count_cache::CountCache::new(
                count_ttl,
                Arc::new(raleph_pipeline::SystemClock),
            )),
            clock: Arc::new(raleph_pipeline::SystemClock),
            reads: Arc::new(read_pool::ReadPool::new(reads)),
            status: Arc::default(),
        }
    }

    /// The same state deciding by `clock` (the one the pipeline was given), its count cache
    /// started anew on it.
    pub fn with_clock(mut self, clock: Arc<dyn raleph_pipeline::Clock>) -> Self {
        let count_ttl = std::time::Duration::from_secs_f64(self.config.count_cache_secs.max(0.0));
        self.counts = Arc::new(count_cache::CountCache::new(count_ttl, clock.clone()));
        self.clock = clock;
        self
    }

    /// Runs a read on one of the read threads, once one is free.
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn ReadStore) -> raleph_db::Result<T> + Send + 'static,
    ) -> ApiResult<T> {
        let reader = self.reader.clone();
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.reads.run(move || {
            // The request may be gone; then nobody wants the answer.
            let _ = reply.send(f(reader.as_ref()));
        });
        answer
            .await
            .map_err(|_| ApiError::internal("the read failed"))?
            .map_err(ApiError::from)
    }
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.max_body_bytes;
    Router::new()
        .route("/", get(explorer::page))
        .route("/explorer", get(explorer::page))
        .route("/explorer/{*page}", get(explorer::page))
        .route("/explorer/assets/{*path}", get(explorer::asset))
        .route("/version", get(misc::version))
        .route("/api/v0/version", get(misc::version))
        .route("/metrics", get(status::metrics))
        .route("/metrics.json", get(status::metrics_json))
        .route("/api/ws0/status", get(status::socket::status))
        .route("/api/v0/status/history", get(status::history))
        .route("/api/openapi.json", get(openapi::document))
        .route("/api/docs", get(docs::page))
        .route("/api/docs/{asset}", get(docs::asset))
        .route("/api/v0/messages/hashes", get(hashes::list))
        .route(
            "/api/v0/authorizations/granted/{address}",
            get(authorizations::granted),
        )
        .route(
            "/api/v0/authorizations/received/{address}",
            get(authorizations::received),
        )
        .route(
            "/api/v0/addresses/{address}/post_types",
            get(addresses::post_types),
        )
        .route(
            "/api/v0/addresses/{address}/channels",
            get(addresses::channels),
        )
        .route("/api/v0/info/public.json", get(misc::public_info))
        .route("/api/v0/channels/list.json", get(misc::channels))
        .route("/api/v0/addresses/stats.json", get(misc::address_stats_v0))
        .route("/api/v1/addresses/stats.json", get(misc::address_stats_v1))
        .route("/api/v0/addresses/{address}/balance", get(misc::balance))
        .route("/api/v0/price/estimate", post(misc::price_estimate))
        .route("/api/v0/storage/add_json", post(files::storage_add_json))
        .route("/api/v0/ipfs/add_json", post(files::ipfs_add_json))
        .route(
            "/api/v0/storage/add_file",
            post(files::storage_add_file).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/api/v0/ipfs/add_file",
            post(files::ipfs_add_file).layer(DefaultBodyLimit::disable()),
        )
        .route("/api/v0/storage/raw/{hash}", get(files::raw))
        .route("/ipfs/{cid}", get(files::raw))
        .route("/api/v0/storage/count/{hash}", get(files::pin_count))
        .route("/api/v0/storage/limits.json", get(files::limits))
        .route("/api/v0/storage/metadata/{hash}", get(files::metadata))
        .route(
            "/api/v0/storage/by-message-hash/{hash}",
            get(files::by_message),
        )
        .route("/api/v0/storage/by-ref/{tag}", get(files::by_ref))
        .route(
            "/api/v0/storage/by-ref/{address}/{tag}",
            get(files::by_owner_ref),
        )
        .route("/api/v0/storage/{hash}", get(files::base64_file))
        .route(
            "/api/v0/addresses/{address}/files",
            get(files::address_files),
        )
        .route(
            "/api/v0/messages",
            post(messages::submit).get(messages::list),
        )
        .route("/api/v0/messages.json", get(messages::list))
        .route("/api/v0/messages/page/{page}", get(messages::list_page))
        .route("/api/v0/messages/{item_hash}", get(messages::one))
        .route("/api/v0/messages/{item_hash}/status", get(messages::status))
        .route(
            "/api/v0/messages/{item_hash}/content",
            get(messages::content),
        )
        .route("/api/v0/posts.json", get(posts::list_v0))
        .route("/api/v0/posts/page/{page}", get(posts::page_v0))
        .route("/api/v1/posts.json", get(posts::list_v1))
        .route("/api/v1/posts/page/{page}", get(posts::page_v1))
        .route("/api/v0/aggregates", get(aggregates::list))
        .route("/api/v0/aggregates.json", get(aggregates::list))
        .route("/api/v0/aggregates/{address}", get(aggregates::of_address))
        .route("/api/ws0/messages", get(ws::messages))
        .route("/api/v0/p2p/identity", get(p2p::identity))
        .route("/api/v0/p2p/peers", get(p2p::peers))
        .route("/api/v0/p2p/pubsub/pub", post(p2p::pubsub_pub))
        .route("/api/v0/ipfs/pubsub/pub", post(p2p::pubsub_pub))
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(axum::middleware::map_response(
            upgrade::method_not_allowed_as_json,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(
            CorsLayer::new()
                .allow_origin(Any)
                .allow_methods(Any)
                .allow_headers(Any)
                .expose_headers(Any),
        )
        .with_state(state)
}
