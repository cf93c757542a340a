//! `run-all`: starts a node on a loopback port with a fresh data directory, ingests a POST
//! corpus, an AGGREGATE corpus, then a large mixed corpus, runs the query benchmark, prints a
//! summary and stops the node.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::corpus::{self, Kind, Params};
use crate::ingest::{self, IngestArgs, IngestReport};
use crate::query::{self, QueryArgs, QueryReport};
use crate::stats::thousands;

#[derive(Debug, Clone, clap::Args)]
pub struct RunAllArgs {
    /// The node binary (built with `cargo build --release -p raleph`).
    #[arg(
        long,
        env = "RALEPH_BIN",
        default_value = "/root/.cache/raleph/target/release/raleph"
    )]
    pub bin: PathBuf,
    /// Messages in each of the POST and AGGREGATE ingest corpora.
    #[arg(long, default_value_t = 100_000)]
    pub count: usize,
    /// Messages in the mixed store loaded for the query benchmark (0: query what is there).
    #[arg(long, default_value_t = 1_000_000)]
    pub query_store_size: usize,
    /// Sending addresses in every corpus.
    #[arg(long, default_value_t = 10_000)]
    pub addresses: usize,
    /// Channels in every corpus.
    #[arg(long, default_value_t = 200)]
    pub channels: usize,
    /// Concurrent connections for ingest.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Offered ingest rate, messages per second (as fast as possible when absent).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Requests per query kind on the sequential client.
    #[arg(long, default_value_t = 300)]
    pub query_requests: usize,
    /// Connections in the concurrent query phase.
    #[arg(long, default_value_t = 16)]
    pub query_connections: usize,
    /// Seconds of the concurrent query phase with an even mix of kinds.
    #[arg(long, default_value_t = 20.0)]
    pub query_duration: f64,
    /// Seconds of concurrent load on each query kind alone.
    #[arg(long, default_value_t = 3.0)]
    pub query_kind_duration: f64,
    /// Signing threads for corpora that are not cached yet.
    #[arg(long, default_value_t = corpus::default_threads())]
    pub threads: usize,
    /// The node's data directory (default: a new directory under the system temp dir,
    /// removed at the end unless --keep-data).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Keep the data directory (and the node log) at the end.
    #[arg(long)]
    pub keep_data: bool,
    /// Extra argument for `raleph node` (repeatable), e.g. `--node-arg=--config=node.toml`.
    #[arg(long = "node-arg", allow_hyphen_values = true)]
    pub node_args: Vec<String>,
    /// Give up on the whole run after this many seconds.
    #[arg(long, default_value_t = 7200.0)]
    pub max_secs: f64,
}

/// A node started by this benchmark; stopped (SIGTERM, then SIGKILL) when dropped.
pub(crate) struct Node {
    child: Child,
    pub(crate) url: String,
    /// The first `p2p listening on …` multiaddr (ends in `/p2p/<peer id>`), if printed.
    pub(crate) p2p: Option<String>,
}

impl Node {
    pub(crate) fn start(
        bin: &Path,
        data_dir: &Path,
        log: &Path,
        extra: &[String],
    ) -> anyhow::Result<Self> {
        if !bin.is_file() {
            bail!(
                "{}: no node binary (build it with `cargo build --release -p raleph`, or set RALEPH_BIN)",
                bin.display()
            );
        }
        let log_file = std::fs::File::create(log)?;
        let mut child = Command::new(bin)
            .arg("node")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--api-addr", "127.0.0.1:0", "--p2p-addr", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child.stdout.take().context("node stdout")?;
        let (tx, rx) = mpsc::channel();
        let log = log.to_owned();
        std::thread::spawn(move || {
            let mut out = std::fs::OpenOptions::new().append(true).open(&log).ok();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("api listening on ") {
                    let _ = tx.send((true, url.trim().to_owned()));
                } else if let Some(addr) = line.strip_prefix("p2p listening on ") {
                    let _ = tx.send((false, addr.trim().to_owned()));
                }
                if let Some(f) = out.as_mut() {
                    let _ = writeln!(f, "[stdout] {line}");
                }
            }
        });
        let mut node = Node {
            child,
            url: String::new(),
            p2p: None,
        };
        // The node prints its API URL, then its p2p addresses at once.
        let deadline = Instant::now() + Duration::from_secs(60);
        while node.url.is_empty() || node.p2p.is_none() {
            let wait = if node.url.is_empty() {
                deadline.saturating_duration_since(Instant::now())
            } else {
                Duration::from_secs(2)
            };
            match rx.recv_timeout(wait) {
                Ok((true, url)) => node.url = url,
                Ok((false, addr)) => {
                    node.p2p.get_or_insert(addr);
                }
                Err(_) if !node.url.is_empty() => break,
                Err(_) => {
                    let status = node.child.try_wait().ok().flatten();
                    bail!(
                        "the node did not print `api listening on …` within 60 s (exit status {status:?}); see its log"
                    );
                }
            }
        }
        Ok(node)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn stop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

async fn ingest_corpus(
    args: &RunAllArgs,
    url: &str,
    pid: u32,
    params: Params,
    label: &str,
    remaining: Duration,
) -> anyhow::Result<IngestReport> {
    let path = corpus::ensure(&params, None, args.threads)?;
    let lines = corpus::load(&path)?;
    let ingest_args = IngestArgs {
        url: url.to_owned(),
        corpus: path,
        rate: args.rate,
        connections: args.connections,
        limit: None,
        pid: Some(pid),
        max_send_secs: remaining.as_secs_f64().max(1.0),
        drain_timeout_secs: remaining.as_secs_f64().max(1.0),
    };
    let report = ingest::run(&ingest_args, lines, label).await?;
    report.print();
    Ok(report)
}

pub async fn run(args: &RunAllArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let budget = Duration::from_secs_f64(args.max_secs);
    let remaining = || budget.saturating_sub(started.elapsed());
    let (data_dir, temporary) = match &args.data_dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("raleph-bench-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&data_dir)?;
    let log = data_dir.with_extension("log");
    let mut node = Node::start(&args.bin, &data_dir, &log, &args.node_args)?;
    let pid = node.pid();
    eprintln!(
        "run-all: node {} (pid {pid}) at {}, data in {}, log in {}",
        args.bin.display(),
        node.url,
        data_dir.display(),
        log.display()
    );
    let url = node.url.clone();
    let result = async {
        let mut ingests = Vec::new();
        let base = |kind, count, seed| Params {
            kind,
            count,
            addresses: args.addresses,
            channels: args.channels,
            seed,
        };
        if args.count > 0 {
            ingests.push(
                ingest_corpus(
                    args,
                    &url,
                    pid,
                    base(Kind::Post, args.count, 1),
                    "POST",
                    remaining(),
                )
                .await?,
            );
            ingests.push(
                ingest_corpus(
                    args,
                    &url,
                    pid,
                    base(Kind::Aggregate, args.count, 2),
                    "AGGREGATE",
                    remaining(),
                )
                .await?,
            );
        }
        if args.query_store_size > 0 {
            ingests.push(
                ingest_corpus(
                    args,
                    &url,
                    pid,
                    base(Kind::Mixed, args.query_store_size, 3),
                    "mixed store for queries (85 % POST, 15 % AGGREGATE)",
                    remaining(),
                )
                .await?,
            );
        }
        let query_args = QueryArgs {
            url: url.clone(),
            requests: args.query_requests,
            kind_secs: 20.0,
            duration: args.query_duration,
            kind_duration: args.query_kind_duration,
            connections: args.query_connections,
            page_size: 20,
            pid: Some(pid),
            only: Vec::new(),
        };
        let queries = query::run(&query_args).await?;
        anyhow::Ok((ingests, queries))
    }
    .await;
    let rss = crate::procfs::memory_kib(pid);
    node.stop();
    let size = dir_size(&data_dir);
    let (ingests, queries) = result?;
    print_summary(&ingests, &queries, rss.map(|(_, hwm)| hwm), size);
    if temporary && !args.keep_data {
        let _ = std::fs::remove_dir_all(&data_dir);
        let _ = std::fs::remove_file(&log);
    }
    eprintln!("run-all: done in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn print_summary(
    ingests: &[IngestReport],
    queries: &QueryReport,
    hwm_kib: Option<u64>,
    data_bytes: u64,
) {
    println!("# summary");
    println!();
    println!(
        "| ingest | messages | acks/s | ack p50 / p99 ms | first send → all processed | end to end msg/s | 429/503 retries | errors | node peak RSS | node CPU | machine CPU |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in ingests {
        let errors = r.rejected_at_intake
            + r.transport_errors
            + r.other_errors.values().sum::<u64>()
            + r.rejected;
        println!(
            "| {} | {} | {} | {:.1} / {:.1} | {:.1} s{} | {} | {} | {} | {} | {} | {} |",
            r.label,
            thousands(r.sent as f64),
            thousands(r.acks_per_sec()),
            r.ack.p50,
            r.ack.p99,
            r.end_to_end_secs,
            if r.all_processed { "" } else { " (timeout)" },
            thousands(r.end_to_end_rate()),
            r.retries,
            errors,
            r.memory.map_or("-".into(), |m| format!(
                "{:.0} MiB",
                m.peak_rss_kib as f64 / 1024.0
            )),
            r.cpu_total.node.map_or("-".into(), |c| format!("{c:.0} %")),
            r.cpu_total
                .machine
                .map_or("-".into(), |c| format!("{c:.0} %")),
        );
    }
    println!();
    queries.print();
    if let Some(h) = hwm_kib {
        println!(
            "node VmHWM over the whole run: {:.0} MiB",
            h as f64 / 1024.0
        );
    }
    println!(
        "data directory at the end: {:.0} MiB",
        data_bytes as f64 / 1048576.0
    );
}
