//! `run-all`: starts a node on a loopback port with a fresh data directory, ingests a POST
//! corpus, an AGGREGATE corpus, then a large mixed corpus, runs the query benchmark, prints a
//! summary and stops the node. With `--postgres`, then does it all again with the node on a
//! fresh PostgreSQL database, and prints the two side by side.

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
    /// Also run everything with the node on PostgreSQL: a server URL such as
    /// `postgres://postgres@127.0.0.1:54329/postgres` (`scripts/postgres.sh` starts one). A
    /// database is created there for the run and dropped at the end.
    #[arg(long)]
    pub postgres: Option<String>,
}

/// What one node (one backend) did in a run.
struct BackendRun {
    backend: &'static str,
    ingests: Vec<IngestReport>,
    queries: QueryReport,
    hwm_kib: Option<u64>,
    data_bytes: u64,
}

/// A database created on a PostgreSQL server for one run.
struct ScratchDatabase {
    server: String,
    name: String,
    url: String,
}

impl ScratchDatabase {
    /// Creates it. Blocking: the PostgreSQL client runs a runtime of its own.
    fn create(server: &str) -> anyhow::Result<Self> {
        let name = format!("raleph_bench_{}", std::process::id());
        let mut client = postgres::Client::connect(server, postgres::NoTls)
            .with_context(|| format!("connecting to {}", redacted(server)))?;
        // One statement per call: neither may run inside a transaction block.
        client.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))?;
        client.batch_execute(&format!("CREATE DATABASE {name}"))?;
        Ok(ScratchDatabase {
            url: with_database(server, &name)?,
            server: server.to_owned(),
            name,
        })
    }

    /// Drops it (blocking), with any connection a stopped node left.
    fn drop_now(self) -> anyhow::Result<()> {
        let mut client = postgres::Client::connect(&self.server, postgres::NoTls)?;
        client.batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))?;
        Ok(())
    }
}

/// `url` naming database `name` instead of its own.
fn with_database(url: &str, name: &str) -> anyhow::Result<String> {
    let scheme_end = url.find("://").context("not a postgres:// URL")? + 3;
    let (base, query) = match url.find('?') {
        Some(q) => (&url[..q], &url[q..]),
        None => (url, ""),
    };
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |slash| scheme_end + slash);
    Ok(format!("{}/{name}{query}", &base[..host_end]))
}

/// The URL without its password, for messages.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &credentials[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
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
    // Created first, so that a wrong URL fails before the long SQLite run.
    let database = match args.postgres.clone() {
        Some(server) => {
            Some(tokio::task::spawn_blocking(move || ScratchDatabase::create(&server)).await??)
        }
        None => None,
    };
    let sqlite = run_backend(args, started, "SQLite", None).await;
    let Some(database) = database else {
        print_summary(&sqlite?);
        eprintln!("run-all: done in {:.0} s", started.elapsed().as_secs_f64());
        return Ok(());
    };
    let sqlite = match sqlite {
        Ok(sqlite) => sqlite,
        Err(e) => {
            let _ = tokio::task::spawn_blocking(move || database.drop_now()).await;
            return Err(e);
        }
    };
    print_summary(&sqlite);
    let url = database.url.clone();
    let postgres = run_backend(args, started, "PostgreSQL", Some(&url)).await;
    if let Err(e) = tokio::task::spawn_blocking(move || database.drop_now()).await? {
        eprintln!("run-all: dropping the benchmark database failed: {e:#}");
    }
    let postgres = postgres?;
    print_summary(&postgres);
    print_comparison(&sqlite, &postgres);
    eprintln!("run-all: done in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Starts a node (on SQLite in its data directory, or on the PostgreSQL database `database`),
/// runs the ingests and queries against it, and stops it.
async fn run_backend(
    args: &RunAllArgs,
    started: Instant,
    backend: &'static str,
    database: Option<&str>,
) -> anyhow::Result<BackendRun> {
    let budget = Duration::from_secs_f64(args.max_secs);
    let remaining = || budget.saturating_sub(started.elapsed());
    let suffix = match database {
        Some(_) => "-postgres",
        None => "",
    };
    let (data_dir, temporary) = match &args.data_dir {
        Some(d) => (PathBuf::from(format!("{}{suffix}", d.display())), false),
        None => (
            std::env::temp_dir().join(format!("raleph-bench-{}{suffix}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&data_dir)?;
    let log = data_dir.with_extension("log");
    let mut node_args = args.node_args.clone();
    if let Some(url) = database {
        node_args.extend(["--database".to_owned(), url.to_owned()]);
    }
    let mut node = Node::start(&args.bin, &data_dir, &log, &node_args)?;
    let pid = node.pid();
    eprintln!(
        "run-all: {backend} node {} (pid {pid}) at {}, data in {}, log in {}",
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
    let data_bytes = dir_size(&data_dir);
    if temporary && !args.keep_data {
        let _ = std::fs::remove_dir_all(&data_dir);
        let _ = std::fs::remove_file(&log);
    }
    let (ingests, queries) = result?;
    Ok(BackendRun {
        backend,
        ingests,
        queries,
        hwm_kib: rss.map(|(_, hwm)| hwm),
        data_bytes,
    })
}

/// The two backends side by side: ingest rates, then each query kind's sequential latency and
/// concurrent rate.
fn print_comparison(a: &BackendRun, b: &BackendRun) {
    println!("# {} and {} side by side", a.backend, b.backend);
    println!();
    println!(
        "| ingest | {0} end to end msg/s | {1} end to end msg/s | {0} ack p99 ms | {1} ack p99 ms |",
        a.backend, b.backend
    );
    println!("|---|---:|---:|---:|---:|");
    for (x, y) in a.ingests.iter().zip(&b.ingests) {
        println!(
            "| {} | {} | {} | {:.1} | {:.1} |",
            x.label,
            thousands(x.end_to_end_rate()),
            thousands(y.end_to_end_rate()),
            x.ack.p99,
            y.ack.p99
        );
    }
    println!();
    println!(
        "| query kind | {0} p50 / p99 ms | {1} p50 / p99 ms | {0} req/s | {1} req/s |",
        a.backend, b.backend
    );
    println!("|---|---:|---:|---:|---:|");
    let rate = |k: &query::KindResult| {
        k.concurrent
            .as_ref()
            .map_or("-".to_owned(), |c| thousands(c.rate()))
    };
    for x in &a.queries.kinds {
        let Some(y) = b.queries.kinds.iter().find(|y| y.name == x.name) else {
            continue;
        };
        println!(
            "| {} | {:.2} / {:.2} | {:.2} / {:.2} | {} | {} |",
            x.name,
            x.latency.p50,
            x.latency.p99,
            y.latency.p50,
            y.latency.p99,
            rate(x),
            rate(y)
        );
    }
    let mix = |q: &QueryReport| {
        q.concurrent
            .as_ref()
            .map_or("-".to_owned(), |c| thousands(c.rate()))
    };
    println!(
        "| even mix of kinds | | | {} | {} |",
        mix(&a.queries),
        mix(&b.queries)
    );
    println!();
}

fn print_summary(run: &BackendRun) {
    let BackendRun {
        backend,
        ingests,
        queries,
        hwm_kib,
        data_bytes,
    } = run;
    let (hwm_kib, data_bytes) = (*hwm_kib, *data_bytes);
    println!("# summary ({backend})");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_names_another_database() {
        let cases = [
            ("postgres://u@h:1/db", "postgres://u@h:1/x"),
            (
                "postgres://u@h:1/db?sslmode=disable",
                "postgres://u@h:1/x?sslmode=disable",
            ),
            ("postgres://u@h", "postgres://u@h/x"),
            ("postgres://u:p@h/", "postgres://u:p@h/x"),
        ];
        for (url, want) in cases {
            assert_eq!(with_database(url, "x").expect(url), want);
        }
        assert!(with_database("not a url", "x").is_err());
    }

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redacted("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(redacted("postgres://u@h/db"), "postgres://u@h/db");
    }
}
