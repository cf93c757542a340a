//! `raleph node`: the composition root. Chooses the implementations, wires them, supervises.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use raleph_api::AppState;
use raleph_db::{FileRecord, ReadStore, WriteStore};
use raleph_message::ItemType;
use raleph_pipeline::{ContentSource, NoPayments, PaymentPolicy, PipelineHandle, SubmitError};
use raleph_storage::FileStore;

use crate::config::{Layers, NodeConfig};
use crate::network::{self, FetchRequests};

/// The flags of `raleph node`. The named ones set top-level settings and are also read from
/// the environment, under the names of every setting (`RALEPH_DATA_DIR`...; see `config`).
#[derive(clap::Args)]
pub struct NodeArgs {
    /// TOML configuration file.
    #[arg(long, env = "RALEPH_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (index database and files) [env: RALEPH_DATA_DIR].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// HTTP API address, e.g. 127.0.0.1:4024; port 0 picks a free port [env: RALEPH_API_ADDR].
    #[arg(long)]
    api_addr: Option<SocketAddr>,
    /// Peer-to-peer TCP address, e.g. 127.0.0.1:4025; port 0 picks a free port
    /// [env: RALEPH_P2P_ADDR].
    #[arg(long)]
    p2p_addr: Option<SocketAddr>,
    /// A peer to dial, as a multiaddr ending in /p2p/<peer id>; repeatable. Given, these are
    /// the peers (the file's `peers` are replaced, as any setting a flag gives).
    #[arg(long = "peer")]
    peers: Vec<String>,
    /// The node's p2p identity key file (default <data-dir>/node-key, created if missing)
    /// [env: RALEPH_NODE_KEY].
    #[arg(long)]
    node_key: Option<PathBuf>,
    /// The index database: a SQLite file path (default <data-dir>/index.sqlite), or a
    /// PostgreSQL URL such as postgres://user:password@host/database [env: RALEPH_DATABASE].
    #[arg(long)]
    database: Option<String>,
    /// Keep the SQLite index file's pages in memory (see `database_resident`)
    /// [env: RALEPH_DATABASE_RESIDENT].
    #[arg(long)]
    database_resident: bool,
    /// Any setting, as section.field=value (a TOML value; `data_dir=...` for a top-level
    /// one), over the file and the environment; repeatable. E.g. --set api.max_body_bytes=2097152.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Print the effective configuration (defaults < file < environment < flags) and exit.
    #[arg(long)]
    print_config: bool,
}

impl NodeArgs {
    /// The configuration its layers give: defaults, the file, the environment, the flags.
    fn into_config(self) -> anyhow::Result<(NodeConfig, bool)> {
        let mut layers = Layers::new()?;
        if let Some(file) = &self.config {
            layers.file(file)?;
        }
        layers.environment(std::env::vars_os())?;
        let path = |flag: &str, path: PathBuf| {
            path.into_os_string()
                .into_string()
                .map(toml::Value::String)
                .map_err(|_| anyhow::anyhow!("{flag}: the path is not UTF-8"))
        };
        if let Some(dir) = self.data_dir {
            layers.flag("--data-dir", "data_dir", path("--data-dir", dir)?)?;
        }
        if let Some(addr) = self.api_addr {
            layers.flag("--api-addr", "api_addr", addr.to_string().into())?;
        }
        if let Some(addr) = self.p2p_addr {
            layers.flag("--p2p-addr", "p2p_addr", addr.to_string().into())?;
        }
        if !self.peers.is_empty() {
            let peers = self.peers.into_iter().map(toml::Value::String).collect();
            layers.flag("--peer", "peers", toml::Value::Array(peers))?;
        }
        if let Some(key) = self.node_key {
            layers.flag("--node-key", "node_key", path("--node-key", key)?)?;
        }
        if let Some(database) = self.database {
            layers.flag("--database", "database", database.into())?;
        }
        if self.database_resident {
            layers.flag("--database-resident", "database_resident", true.into())?;
        }
        for assignment in &self.set {
            layers.set_flag(assignment)?;
        }
        Ok((layers.resolve()?, self.print_config))
    }
}

/// Message content and files, read from the node's own file store; what is missing is asked
/// of peers (once the network runs), and the waiting message finds it on a later attempt.
struct LocalContent {
    files: FileStore,
    fetches: Arc<OnceLock<FetchRequests>>,
}

impl LocalContent {
    fn missing(&self, id: &str) {
        if let Some(fetches) = self.fetches.get() {
            fetches.request(id);
        }
    }
}

impl ContentSource for LocalContent {
    fn load(&self, _: ItemType, hash: &str) -> std::io::Result<Option<Vec<u8>>> {
        // The store finds a file by its sha256 or by any CID it computed for it.
        let bytes = self.files.get(hash).map_err(std::io::Error::other)?;
        if bytes.is_none() {
            self.missing(hash);
        }
        Ok(bytes)
    }

    fn file(&self, id: &str) -> std::io::Result<Option<FileRecord>> {
        let info = self.files.info(id).map_err(std::io::Error::other)?;
        if info.is_none() {
            self.missing(id);
        }
        Ok(info
            .as_ref()
            .map(raleph_api::files::store_adapter::file_record))
    }

    fn delete_file(&self, sha256: &str) -> std::io::Result<()> {
        self.files.delete(sha256).map_err(std::io::Error::other)
    }

    fn list_files(&self) -> std::io::Result<Vec<(String, SystemTime)>> {
        let mut files = Vec::new();
        for sha256 in self.files.list().map_err(std::io::Error::other)? {
            if let Some(stored_at) = self
                .files
                .stored_at(&sha256)
                .map_err(std::io::Error::other)?
            {
                files.push((sha256, stored_at));
            }
        }
        Ok(files)
    }
}

/// Runs the garbage collector every `interval`, for the life of the node.
fn spawn_garbage_collector(pipeline: PipelineHandle, interval: Duration) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match pipeline.collect_garbage().await {
                Ok(_) => {}
                Err(SubmitError::Stopped) => return,
                Err(e) => tracing::warn!("garbage collection failed: {e}"),
            }
        }
    });
}

pub async fn run(args: NodeArgs) -> anyhow::Result<()> {
    let (config, print_config) = args.into_config()?;
    if print_config {
        println!(
            "{}",
            config.to_printable_toml().context("serialize config")?
        );
        return Ok(());
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("create data directory {}", config.data_dir.display()))?;
    let (writer, reader, database) = open_database(&config).await?;
    let _resident = keep_resident(&config)?;
    let files = FileStore::open(config.data_dir.join("files")).context("open file store")?;
    // Uploads a stop interrupted: nothing will finish them.
    match files.sweep_temporary() {
        Ok(0) => {}
        Ok(swept) => tracing::info!(swept, "deleted uploads the last stop interrupted"),
        Err(e) => tracing::warn!("sweeping interrupted uploads failed: {e}"),
    }
    let payments: Arc<dyn PaymentPolicy> = Arc::new(NoPayments);
    tracing::info!("{}", payments.describe());
    let pipeline_config = config.pipeline_config();
    let fetches = Arc::new(OnceLock::new());
    let content = Arc::new(LocalContent {
        files: files.clone(),
        fetches: fetches.clone(),
    });
    let journal_dir = config.data_dir.join("intake");
    // The one clock the pipeline and sync decide by.
    let clock: Arc<dyn raleph_pipeline::Clock> = Arc::new(raleph_pipeline::SystemClock);
    let pipeline_clock = clock.clone();
    // Starting reads the store (the journal position): off the async threads, as the
    // PostgreSQL client blocks on a runtime of its own.
    let (pipeline, writer_thread) = tokio::task::spawn_blocking(move || {
        let (config, dir) = (pipeline_config, &journal_dir);
        raleph_pipeline::spawn(writer, content, payments, config, dir, pipeline_clock)
    })
    .await
    .context("start pipeline")?
    .context("start pipeline")?;
    // Watched for a dead thread (see the end of this function).
    let watched = pipeline.clone();
    spawn_garbage_collector(pipeline.clone(), config.gc_interval());
    let api_config = config.api_config();
    let listener = tokio::net::TcpListener::bind(config.api_addr)
        .await
        .with_context(|| format!("bind API address {}", config.api_addr))?;
    let bound = listener.local_addr().context("read bound API address")?;
    // `config.p2p` already holds the listen address, the peers and the key (the settings
    // `[p2p]`'s `listen`, `peers` and `key` are other names of): no peer to add here.
    let p2p = network::p2p_config(
        config.p2p.clone(),
        config.p2p_addr,
        &[],
        config.node_key_path(),
        format!("http://{bound}"),
    )?;
    let started = network::start(
        p2p,
        config.sync.clone(),
        pipeline.clone(),
        reader.clone(),
        files.clone(),
        config.storage.clone(),
        config.data_dir.clone(),
        clock.clone(),
    )
    .await?;
    crate::anchoring::start(
        &config.anchoring,
        pipeline.clone(),
        reader.clone(),
        files.clone(),
        started.fetches.clone(),
    )
    .context("start anchoring")?;
    let _ = fetches.set(started.fetches);
    let p2p_addrs = raleph_api::p2p::Network::addresses(started.network.as_ref());
    let mut state = AppState::new(
        reader.clone(),
        pipeline.clone(),
        files.clone(),
        api_config,
        config.storage.clone(),
    )
    .with_clock(clock);
    state.network = Some(started.network);
    let proofs = crate::anchoring::proof::router(reader.clone());
    let compute = raleph_compute::Compute::start(
        config.compute.clone(),
        &config.data_dir,
        Arc::new(crate::compute::NodeSource { reader, files }),
        Some(crate::compute::guest_api(
            raleph_api::router(state.clone()),
            config.compute.max_guest_api_answer_bytes,
        )),
        Some(bound),
    )
    .context("start compute")?;
    crate::compute::forward_events(&pipeline, compute.clone());
    tracing::info!(data_dir = %config.data_dir.display(), %database, "node started");
    // Tests and scripts read these lines back to learn the ports and the peer id.
    println!("api listening on http://{bound}");
    for addr in p2p_addrs {
        println!("p2p listening on {addr}");
    }
    std::io::stdout().flush().ok();
    // With the connection limits and timeouts of `[api]`, and TCP_NODELAY on every connection.
    let limits = raleph_api::ConnectionLimits::from_config(&state.config);
    // The node stops on a signal, or when a pipeline thread dies: it never goes on serving
    // reads while submissions wait on a writer that is gone.
    let (death_sender, mut death) = tokio::sync::oneshot::channel();
    let stop = async move {
        tokio::select! {
            () = shutdown_signal() => {}
            reason = watched.failed() => {
                tracing::error!("{reason}: the node stops");
                let _ = death_sender.send(reason);
            }
        }
    };
    // The status history and the status websockets' readings, for as long as the server runs.
    let monitor = raleph_api::StatusMonitor::start(&state);
    let app = raleph_api::router(state)
        .merge(proofs)
        .merge(raleph_compute::http::router(compute.clone()))
        .layer(axum::middleware::from_fn_with_state(
            compute,
            raleph_compute::http::route_by_host,
        ));
    raleph_api::serve(listener, app, limits, stop).await;
    drop(monitor);
    if let Ok(reason) = death.try_recv() {
        anyhow::bail!("{reason}");
    }
    tracing::info!("shutting down");
    drop(writer_thread);
    Ok(())
}

/// With `database_resident`, keeps the SQLite file's pages in memory for the life of the
/// returned guard.
fn keep_resident(config: &NodeConfig) -> anyhow::Result<Option<raleph_db::sqlite::Resident>> {
    if !config.database_resident {
        return Ok(None);
    }
    if config.database_is_postgres() {
        tracing::warn!("database_resident applies to a SQLite index only: ignored");
        return Ok(None);
    }
    let resident = raleph_db::sqlite::Resident::start(&config.database_path())
        .context("start the thread that keeps the index in memory")?;
    Ok(Some(resident))
}

/// Opens the index the configuration names: a SQLite file, or a PostgreSQL database. Returns
/// the two sides and how to name the database in logs (without a password).
async fn open_database(
    config: &NodeConfig,
) -> anyhow::Result<(Box<dyn WriteStore>, Arc<dyn ReadStore>, String)> {
    let durability = config.durability;
    if config.database_is_postgres() {
        let url = config.database.clone();
        let shown = raleph_db::postgres::redact(&url);
        let options = raleph_db::postgres::PgOptions {
            durability,
            schema: None,
            max_read_connections: config.database_read_connections.max(1),
        };
        // The PostgreSQL client runs a runtime of its own: open it off the async threads.
        let (writer, reader) =
            tokio::task::spawn_blocking(move || raleph_db::postgres::open(&url, &options))
                .await
                .context("open database")?
                .with_context(|| format!("open database {shown}"))?;
        return Ok((Box::new(writer), Arc::new(reader), shown));
    }
    let db_path = config.database_path();
    let (writer, reader) = raleph_db::sqlite::open(&db_path, durability)
        .with_context(|| format!("open database {}", db_path.display()))?;
    Ok((
        Box::new(writer),
        Arc::new(reader),
        db_path.display().to_string(),
    ))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
