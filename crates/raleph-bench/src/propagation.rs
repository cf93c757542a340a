//! `propagation`: how long a message accepted by node A takes to be processed by node C, with
//! three node processes on loopback.
//!
//! For each topology (`line`: A–B–C exactly, discovery off, so A→C is two hops; `discovery`:
//! the default configuration, where C learns A's address through B and connects to it), the
//! benchmark starts three fresh nodes, waits until they are connected and gossip flows end to
//! end (probe messages), then for each rate replays pre-signed POST messages to A's
//! `POST /api/v0/messages` at that rate for the given duration, waits until C (and B) have
//! processed every acknowledged message, and reports latency percentiles.
//!
//! Times, all on the machine's one wall clock (Unix seconds):
//! - `reception_time` on A, B and C: stamped by each node's writer when it records the
//!   message, inside the transaction that also processes it (read back afterwards from
//!   `GET /api/v0/messages/{hash}/status`, microsecond resolution);
//! - processed on A, B and C: when the node's websocket (`/api/ws0/messages`) push of the
//!   message reached this benchmark; the node pushes right after the commit (the client
//!   answers each push with a pong, so delayed ACKs do not hold the next push back);
//! - acknowledged by A: when this benchmark had A's answer to the POST (A answers after its
//!   commit; it hands the message to gossip just before answering).
//!
//! The headline latency is A's `reception_time` → C processed (websocket push received).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use hyper::Method;
use serde_json::Value;

use crate::corpus::{self, Posts as Corpus};
use crate::http::{Conn, Target};
use crate::procfs::{CpuUsage, Memory, RssSampler, Snapshot};
use crate::runall::Node;
use crate::stats::{Latencies, Summary, thousands};
use crate::ws::{self, Arrivals, unix_now};

/// Probe messages reserved at the front of the corpus for the warm-up of each topology.
const WARMUP: usize = 60;
/// Highest rate and longest phase accepted, so every run stays bounded.
const MAX_RATE: f64 = 20_000.0;
const MAX_DURATION: f64 = 600.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Topology {
    /// A–B–C and nothing else (`[p2p] dial_discovered = false`): A→C is two hops.
    Line,
    /// The default configuration: C is told B's address only and discovers A through B.
    Discovery,
}

impl Topology {
    fn describe(self) -> &'static str {
        match self {
            Topology::Line => "line A–B–C (dial_discovered = false)",
            Topology::Discovery => "default discovery (C dials A itself)",
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct PropagationArgs {
    /// The node binary (built with `cargo build --release -p raleph`).
    #[arg(
        long,
        env = "RALEPH_BIN",
        default_value = "/root/.cache/raleph/target/release/raleph"
    )]
    pub bin: PathBuf,
    /// Offered rates to A, messages per second (repeatable or comma-separated).
    #[arg(long = "rate", value_delimiter = ',', default_values_t = [100.0, 1000.0])]
    pub rates: Vec<f64>,
    /// Seconds of sending at each rate.
    #[arg(long, default_value_t = 20.0)]
    pub duration: f64,
    /// Topologies to measure, in order (repeatable or comma-separated).
    #[arg(long = "topology", value_enum, value_delimiter = ',', default_values = ["line", "discovery"])]
    pub topologies: Vec<Topology>,
    /// Concurrent keep-alive connections sending to A.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// After the last send, wait at most this long for B and C to process everything.
    #[arg(long, default_value_t = 30.0)]
    pub drain_timeout: f64,
    /// Wait at most this long for the nodes to connect and for a probe to cross.
    #[arg(long, default_value_t = 60.0)]
    pub connect_timeout: f64,
    /// Messages in the POST corpus the phases take their messages from (by default the
    /// corpus `run-all` uses, so it is signed once); must cover every phase.
    #[arg(long, default_value_t = 100_000)]
    pub corpus_count: usize,
    /// Signing threads if the corpus is not cached yet.
    #[arg(long, default_value_t = corpus::default_threads())]
    pub threads: usize,
    /// Keep the nodes' data directories and logs.
    #[arg(long)]
    pub keep_data: bool,
    /// TOML for every node's configuration file, e.g. `durability = "normal"` (the line
    /// topology adds `dial_discovered = false` to its `[p2p]` table).
    #[arg(long)]
    pub node_toml: Option<String>,
    /// Extra argument for every `raleph node` (repeatable).
    #[arg(long = "node-arg", allow_hyphen_values = true)]
    pub node_args: Vec<String>,
}

fn load_corpus(args: &PropagationArgs, needed: usize) -> anyhow::Result<Corpus> {
    corpus::posts(args.corpus_count.max(needed), needed, args.threads)
}

/// Three running nodes and their websockets.
struct Trio {
    nodes: [Node; 3],
    targets: [Target; 3],
    /// Websocket arrivals on A, B and C.
    arrivals: [Arc<Arrivals>; 3],
    sockets: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Trio {
    fn pids(&self) -> [u32; 3] {
        [
            self.nodes[0].pid(),
            self.nodes[1].pid(),
            self.nodes[2].pid(),
        ]
    }

    fn stop(&mut self) {
        for s in &self.sockets {
            s.abort();
        }
        for n in &mut self.nodes {
            n.stop();
        }
    }
}

const NAMES: [&str; 3] = ["A", "B", "C"];

async fn start_trio(
    args: &PropagationArgs,
    topology: Topology,
    dir: &Path,
) -> anyhow::Result<Trio> {
    std::fs::create_dir_all(dir)?;
    let mut extra: Vec<String> = Vec::new();
    let toml = node_toml(args.node_toml.as_deref().unwrap_or(""), topology);
    if !toml.trim().is_empty() {
        let config = dir.join("node.toml");
        std::fs::write(&config, toml)?;
        extra.push("--config".into());
        extra.push(config.display().to_string());
    }
    extra.extend(args.node_args.iter().cloned());
    let mut nodes: Vec<Node> = Vec::new();
    for name in NAMES {
        let mut node_extra = extra.clone();
        if let Some(previous) = nodes.last() {
            let peer = previous
                .p2p
                .clone()
                .context("a node did not print `p2p listening on …`")?;
            node_extra.push("--peer".into());
            node_extra.push(peer);
        }
        let lower = name.to_lowercase();
        let node = Node::start(
            &args.bin,
            &dir.join(&lower),
            &dir.join(format!("{lower}.log")),
            &node_extra,
        )?;
        eprintln!(
            "propagation: node {name} (pid {}) api {} p2p {}",
            node.pid(),
            node.url,
            node.p2p.as_deref().unwrap_or("?")
        );
        nodes.push(node);
    }
    let targets = [
        Target::parse(&nodes[0].url)?,
        Target::parse(&nodes[1].url)?,
        Target::parse(&nodes[2].url)?,
    ];
    let Ok(nodes): Result<[Node; 3], _> = nodes.try_into() else {
        bail!("three nodes expected");
    };
    let arrivals = [
        Arc::new(Arrivals::default()),
        Arc::new(Arrivals::default()),
        Arc::new(Arrivals::default()),
    ];
    let mut trio = Trio {
        nodes,
        targets,
        arrivals,
        sockets: Vec::new(),
    };
    for (i, name) in NAMES.iter().enumerate() {
        let socket = ws::subscribe(
            &trio.targets[i],
            "/api/ws0/messages?history=0",
            trio.arrivals[i].clone(),
        )
        .await
        .with_context(|| format!("websocket on {name}"))?;
        trio.sockets.push(socket);
    }
    Ok(trio)
}

/// The configuration file of every node: `extra`, with `dial_discovered = false` in `[p2p]`
/// for the line topology.
fn node_toml(extra: &str, topology: Topology) -> String {
    if topology != Topology::Line {
        return extra.to_owned();
    }
    let mut out = String::new();
    let mut done = false;
    for line in extra.lines() {
        out.push_str(line);
        out.push('\n');
        if line.trim() == "[p2p]" {
            out.push_str("dial_discovered = false\n");
            done = true;
        }
    }
    if !done {
        out.push_str("[p2p]\ndial_discovered = false\n");
    }
    out
}

/// Connected raleph peers of a node.
async fn raleph_peers(conn: &mut Conn) -> usize {
    match conn.get_json("/api/v0/p2p/peers").await {
        Ok(v) => v["peers"]
            .as_array()
            .map_or(0, |p| p.iter().filter(|p| p["is_raleph"] == true).count()),
        Err(_) => 0,
    }
}

/// Waits until every node has at least `wanted[i]` raleph peers; the counts reached.
async fn wait_peers(trio: &Trio, wanted: [usize; 3], timeout: Duration) -> [usize; 3] {
    let deadline = Instant::now() + timeout;
    let mut conns: Vec<Conn> = trio.targets.iter().map(Conn::new).collect();
    loop {
        let mut counts = [0; 3];
        for (i, c) in conns.iter_mut().enumerate() {
            counts[i] = raleph_peers(c).await;
        }
        if counts.iter().zip(wanted).all(|(c, w)| *c >= w) || Instant::now() >= deadline {
            return counts;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Posts one message; `(HTTP status, when the answer came)`.
async fn post(conn: &mut Conn, body: &Bytes) -> anyhow::Result<(u16, f64)> {
    let r = conn
        .request(Method::POST, "/api/v0/messages", Some(body.clone()))
        .await?;
    Ok((r.status, unix_now()))
}

/// Sends probes one at a time until three in a row reach C within a second: the gossipsub
/// meshes are formed (their first heartbeat comes 5 s after start) and gossip flows A→C.
async fn warm_up(trio: &Trio, corpus: &Corpus, timeout: Duration) -> anyhow::Result<String> {
    let deadline = Instant::now() + timeout;
    let mut conn = Conn::new(&trio.targets[0]);
    let mut in_a_row = 0;
    let mut sent = 0;
    let started = Instant::now();
    while sent < WARMUP && Instant::now() < deadline {
        let (status, _) = post(&mut conn, &corpus.lines[sent]).await?;
        if !matches!(status, 200 | 202) {
            bail!("probe {sent}: A answered HTTP {status}");
        }
        let hash = &corpus.hashes[sent];
        sent += 1;
        let posted = Instant::now();
        let mut arrived = false;
        while posted.elapsed() < Duration::from_secs(1) {
            if trio.arrivals[2].get(hash).is_some() {
                arrived = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        in_a_row = if arrived { in_a_row + 1 } else { 0 };
        if in_a_row >= 3 {
            return Ok(format!(
                "gossip A→C flowing after {sent} probes, {:.1} s",
                started.elapsed().as_secs_f64()
            ));
        }
    }
    Ok(format!(
        "WARNING: probes did not reach C within 1 s three times in a row ({sent} probes, {:.1} s)",
        started.elapsed().as_secs_f64()
    ))
}

/// One sent message: its corpus index, A's HTTP status, when it was due by the schedule,
/// when its (last) request was sent and when the answer came (Unix seconds).
struct Sent {
    index: usize,
    status: u16,
    due_at: f64,
    sent_at: f64,
    acked_at: f64,
}

async fn sender(
    target: Target,
    lines: Arc<Vec<Bytes>>,
    next: Arc<AtomicUsize>,
    first: usize,
    start: Instant,
    rate: f64,
    deadline: Instant,
) -> (Vec<Sent>, Option<String>) {
    // The schedule on the wall clock, to compare with the nodes' times.
    let start_unix = unix_now() - start.elapsed().as_secs_f64();
    let mut conn = Conn::new(&target);
    let mut out = Vec::new();
    let mut first_error = None;
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= lines.len() || Instant::now() >= deadline {
            break;
        }
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let mut backoff = Duration::from_millis(5);
        let mut sent_at;
        let status = loop {
            sent_at = unix_now();
            match post(&mut conn, &lines[i]).await {
                Ok((429 | 503, _)) if Instant::now() < deadline => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(200));
                }
                Ok((s, at)) => break Some((s, at)),
                Err(e) => {
                    first_error.get_or_insert_with(|| format!("message {}: {e:#}", first + i));
                    break None;
                }
            }
        };
        if let Some((status, acked_at)) = status {
            if !matches!(status, 200 | 202) {
                first_error.get_or_insert_with(|| format!("message {}: HTTP {status}", first + i));
            }
            out.push(Sent {
                index: first + i,
                status,
                due_at: start_unix + i as f64 / rate,
                sent_at,
                acked_at,
            });
        }
    }
    (out, first_error)
}

/// `reception_time` and status of each hash on one node (`None`: unknown to the node).
pub(crate) async fn reception_times(
    target: &Target,
    hashes: &[String],
) -> Vec<Option<(String, f64)>> {
    let hashes = Arc::new(hashes.to_vec());
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (target, hashes, next) = (target.clone(), hashes.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(&target);
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= hashes.len() {
                    break;
                }
                let path = format!("/api/v0/messages/{}/status", hashes[i]);
                let found = match conn.get(&path).await {
                    Ok(r) if r.status == 200 => {
                        serde_json::from_slice::<Value>(&r.body).ok().and_then(|v| {
                            let status = v["status"].as_str()?.to_owned();
                            let t = ws::parse_iso_utc(v["reception_time"].as_str()?)?;
                            Some((status, t))
                        })
                    }
                    _ => None,
                };
                out.push((i, found));
            }
            out
        }));
    }
    let mut all = vec![None; hashes.len()];
    for t in tasks {
        if let Ok(part) = t.await {
            for (i, found) in part {
                all[i] = found;
            }
        }
    }
    all
}

/// Per-peer p2p counters of a node, summed over its peers.
async fn p2p_counters(target: &Target) -> BTreeMap<String, u64> {
    let mut conn = Conn::new(target);
    let mut out = BTreeMap::new();
    if let Ok(v) = conn.get_json("/api/v0/p2p/peers").await {
        for p in v["peers"].as_array().into_iter().flatten() {
            for (k, n) in p["counters"].as_object().into_iter().flatten() {
                *out.entry(k.clone()).or_insert(0) += n.as_u64().unwrap_or(0);
            }
        }
    }
    out
}

/// Latencies from differences of Unix times, with how many were negative (clamped to 0).
#[derive(Default)]
struct Diffs {
    lat: Latencies,
    negative: usize,
}

impl Diffs {
    fn add(&mut self, from: Option<f64>, to: Option<f64>) {
        if let (Some(a), Some(b)) = (from, to) {
            let d = b - a;
            if d < 0.0 {
                self.negative += 1;
            }
            self.lat.record(Duration::from_secs_f64(d.max(0.0)));
        }
    }

    fn summary(&mut self) -> Summary {
        self.lat.summary()
    }
}

pub struct PhaseReport {
    topology: Topology,
    rate: f64,
    sent: usize,
    acked: usize,
    errors: usize,
    first_error: Option<String>,
    send_secs: f64,
    /// Request sent → answer.
    ack: Summary,
    /// Due by the schedule → answer (includes waiting for a free connection).
    ack_behind: Summary,
    missing_b: usize,
    missing_c: usize,
    /// Processed on the node but never pushed on its websocket (lagging subscriber).
    not_pushed: [usize; 2],
    drain_secs: f64,
    /// Headline: A's reception_time → C processed (websocket push).
    a_to_c: Summary,
    a_to_c_recv: Summary,
    ack_to_c: Summary,
    ack_to_c_negative: usize,
    a_to_b: Summary,
    a_to_b_recv: Summary,
    /// Hops: (label, summary).
    hops: Vec<(&'static str, Summary)>,
    /// Messages that took longer than the sync interval to reach C (likely through sync).
    slow_c: usize,
    /// Slowest A→C (A received → C processed) among the messages A received in each second
    /// of the phase, ms: periodic spikes show up here.
    worst_by_second: Vec<f64>,
    cpu: [CpuUsage; 3],
    memory: [Option<Memory>; 3],
    counters: [BTreeMap<String, u64>; 3],
}

fn fmt(s: &Summary) -> String {
    format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, mean {:.1} ms (n = {})",
        s.p50, s.p99, s.max, s.mean, s.count
    )
}

impl PhaseReport {
    /// Machine CPU not used by the three nodes or this benchmark, percent of one core.
    fn others(&self) -> Option<f64> {
        let mut rest = self.cpu[0].machine? - self.cpu[0].own?;
        for c in &self.cpu {
            rest -= c.node?;
        }
        Some(rest.max(0.0))
    }

    fn print(&self) {
        println!(
            "## propagation: {}, {} messages/s for {:.0} s",
            self.topology.describe(),
            thousands(self.rate),
            self.send_secs
        );
        println!(
            "sent {} to A, acknowledged {} ({} errors{}); achieved {:.0} messages/s",
            self.sent,
            self.acked,
            self.errors,
            self.first_error
                .as_deref()
                .map_or(String::new(), |e| format!("; first: {e}")),
            self.acked as f64 / self.send_secs.max(1e-9)
        );
        println!(
            "A's answer: {} from the request; {} from when the schedule had it due",
            fmt(&self.ack),
            fmt(&self.ack_behind)
        );
        println!(
            "missing after {:.1} s of draining: B {}, C {}; processed but not pushed on the websocket: B {}, C {}",
            self.drain_secs, self.missing_b, self.missing_c, self.not_pushed[0], self.not_pushed[1]
        );
        println!(
            "A→C  A reception_time → C processed (websocket): {}",
            fmt(&self.a_to_c)
        );
        println!(
            "A→C  A reception_time → C reception_time:         {}",
            fmt(&self.a_to_c_recv)
        );
        println!(
            "A→C  A acknowledged (bench) → C processed:        {}{}",
            fmt(&self.ack_to_c),
            if self.ack_to_c_negative > 0 {
                format!(
                    " ({} processed on C before the bench had A's answer)",
                    self.ack_to_c_negative
                )
            } else {
                String::new()
            }
        );
        println!(
            "A→B  A reception_time → B processed (websocket): {}",
            fmt(&self.a_to_b)
        );
        println!(
            "A→B  A reception_time → B reception_time:         {}",
            fmt(&self.a_to_b_recv)
        );
        println!("hops (p50 / p99 / max ms):");
        for (label, s) in &self.hops {
            println!(
                "  {label:<44} {:>8.1} / {:>8.1} / {:>8.1}",
                s.p50, s.p99, s.max
            );
        }
        if !self.worst_by_second.is_empty() {
            let worst: Vec<String> = self
                .worst_by_second
                .iter()
                .map(|w| format!("{w:.0}"))
                .collect();
            println!(
                "slowest A→C (processed) by second of the phase, ms: {}",
                worst.join(" ")
            );
        }
        if self.slow_c > 0 {
            println!(
                "{} messages took over 4 s to reach C (probably through sync rather than gossip)",
                self.slow_c
            );
        }
        for (i, name) in NAMES.iter().enumerate() {
            println!(
                "node {}: {}; {}",
                name,
                self.cpu[i].describe(),
                self.memory[i]
                    .as_ref()
                    .map_or("-".to_owned(), Memory::describe)
            );
        }
        println!(
            "machine: {} of {} cores busy; this benchmark {}; other processes {}",
            self.cpu[0]
                .machine
                .map_or("-".into(), |m| format!("{m:.0} %")),
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            self.cpu[0].own.map_or("-".into(), |m| format!("{m:.0} %")),
            self.others().map_or("-".into(), |m| format!("{m:.0} %")),
        );
        for (name, c) in NAMES.iter().zip(&self.counters) {
            let get = |k: &str| c.get(k).copied().unwrap_or(0);
            println!(
                "p2p counters on {} (all peers, since start): received {}, accepted {}, ignored {}, throttled {}, dropped {}, rejected {}",
                name,
                get("messages_received"),
                get("messages_accepted"),
                get("messages_ignored"),
                get("messages_throttled"),
                get("messages_dropped"),
                get("messages_rejected"),
            );
        }
        println!();
    }
}

async fn phase(
    args: &PropagationArgs,
    trio: &Trio,
    topology: Topology,
    corpus: &Corpus,
    first: usize,
    count: usize,
    rate: f64,
) -> anyhow::Result<PhaseReport> {
    let lines = Arc::new(corpus.lines[first..first + count].to_vec());
    let pids = trio.pids();
    eprintln!(
        "propagation: {} at {rate} messages/s: {count} messages over {} connections",
        topology.describe(),
        args.connections
    );
    let rss = pids.map(|p| RssSampler::start(p, Duration::from_millis(200)));
    let snap_start = pids.map(|p| Snapshot::take(Some(p)));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(count as f64 / rate + 30.0);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..args.connections.max(1) {
        tasks.push(tokio::spawn(sender(
            trio.targets[0].clone(),
            lines.clone(),
            next.clone(),
            first,
            start,
            rate,
            deadline,
        )));
    }
    let progress = {
        let arrivals = trio.arrivals.clone();
        let next = next.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                eprintln!(
                    "  {:>5.1} s: sent {}, pushed by B {}, by C {} (unreadable pushes {})",
                    start.elapsed().as_secs_f64(),
                    next.load(Ordering::Relaxed).min(count),
                    arrivals[1].len(),
                    arrivals[2].len(),
                    arrivals.iter().map(|a| a.unparsed()).sum::<usize>()
                );
            }
        })
    };
    let mut sent: Vec<Sent> = Vec::with_capacity(count);
    let mut first_error = None;
    for t in tasks {
        let (part, error) = t.await?;
        sent.extend(part);
        if first_error.is_none() {
            first_error = error;
        }
    }
    let send_secs = start.elapsed().as_secs_f64();
    sent.sort_by_key(|s| s.index);
    let acked: Vec<&Sent> = sent
        .iter()
        .filter(|s| matches!(s.status, 200 | 202))
        .collect();
    let acked_hashes: Vec<String> = acked
        .iter()
        .map(|s| corpus.hashes[s.index].clone())
        .collect();
    // Drain: until B and C have pushed every acknowledged message, or the timeout.
    let drained = Instant::now();
    let drain_deadline = drained + Duration::from_secs_f64(args.drain_timeout);
    loop {
        let b = trio.arrivals[1].count_of(acked_hashes.iter().map(String::as_str));
        let c = trio.arrivals[2].count_of(acked_hashes.iter().map(String::as_str));
        if (b == acked_hashes.len() && c == acked_hashes.len()) || Instant::now() >= drain_deadline
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drain_secs = drained.elapsed().as_secs_f64();
    progress.abort();
    let snap_end = pids.map(|p| Snapshot::take(Some(p)));
    let memory = rss.map(|r| Some(r.finish()));
    let cpu = [
        snap_start[0].usage_until(&snap_end[0]),
        snap_start[1].usage_until(&snap_end[1]),
        snap_start[2].usage_until(&snap_end[2]),
    ];
    let counters = [
        p2p_counters(&trio.targets[0]).await,
        p2p_counters(&trio.targets[1]).await,
        p2p_counters(&trio.targets[2]).await,
    ];
    eprintln!(
        "propagation: reading reception times of {} messages on A, B and C",
        acked_hashes.len()
    );
    let on_a = reception_times(&trio.targets[0], &acked_hashes).await;
    let on_b = reception_times(&trio.targets[1], &acked_hashes).await;
    let on_c = reception_times(&trio.targets[2], &acked_hashes).await;
    let processed = |x: &Option<(String, f64)>| x.as_ref().is_some_and(|(s, _)| s == "processed");
    let time = |x: &Option<(String, f64)>| x.as_ref().map(|(_, t)| *t);
    let missing_b = on_b.iter().filter(|x| !processed(x)).count();
    let missing_c = on_c.iter().filter(|x| !processed(x)).count();
    let mut not_pushed = [0; 2];
    let mut a_to_c = Diffs::default();
    let mut a_to_c_recv = Diffs::default();
    let mut ack_to_c = Diffs::default();
    let mut a_to_b = Diffs::default();
    let mut a_to_b_recv = Diffs::default();
    let mut hop_diffs: Vec<(&'static str, Diffs)> = [
        "due (schedule) → sent to A (bench)",
        "sent to A (bench) → A received",
        "A received → A acknowledged (bench)",
        "A received → A processed (websocket)",
        "A received → B received",
        "B received → B processed (websocket)",
        "B processed (websocket) → C received",
        "A received → C received",
        "C received → C processed (websocket)",
    ]
    .into_iter()
    .map(|l| (l, Diffs::default()))
    .collect();
    let mut slow_c = 0;
    let phase_start = acked
        .iter()
        .enumerate()
        .filter_map(|(k, _)| time(&on_a[k]))
        .fold(f64::INFINITY, f64::min);
    let mut worst_by_second: Vec<f64> = Vec::new();
    for (k, s) in acked.iter().enumerate() {
        let hash = acked_hashes[k].as_str();
        let a_recv = time(&on_a[k]);
        let b_recv = time(&on_b[k]).filter(|_| processed(&on_b[k]));
        let c_recv = time(&on_c[k]).filter(|_| processed(&on_c[k]));
        let a_ws = trio.arrivals[0].get(hash);
        let b_ws = trio.arrivals[1].get(hash);
        let c_ws = trio.arrivals[2].get(hash);
        if processed(&on_b[k]) && b_ws.is_none() {
            not_pushed[0] += 1;
        }
        if processed(&on_c[k]) && c_ws.is_none() {
            not_pushed[1] += 1;
        }
        if let (Some(a), Some(c)) = (a_recv, c_recv)
            && c - a > 4.0
        {
            slow_c += 1;
        }
        a_to_c.add(a_recv, c_ws);
        if let (Some(a), Some(c)) = (a_recv, c_ws) {
            let second = (a - phase_start).max(0.0) as usize;
            if second < 3_600 {
                if worst_by_second.len() <= second {
                    worst_by_second.resize(second + 1, 0.0);
                }
                worst_by_second[second] = worst_by_second[second].max((c - a) * 1000.0);
            }
        }
        a_to_c_recv.add(a_recv, c_recv);
        ack_to_c.add(Some(s.acked_at), c_ws);
        a_to_b.add(a_recv, b_ws);
        a_to_b_recv.add(a_recv, b_recv);
        let pairs = [
            (Some(s.due_at), Some(s.sent_at)),
            (Some(s.sent_at), a_recv),
            (a_recv, Some(s.acked_at)),
            (a_recv, a_ws),
            (a_recv, b_recv),
            (b_recv, b_ws),
            (b_ws, c_recv),
            (a_recv, c_recv),
            (c_recv, c_ws),
        ];
        for (d, (from, to)) in hop_diffs.iter_mut().zip(pairs) {
            d.1.add(from, to);
        }
    }
    let mut ack = Diffs::default();
    let mut behind = Diffs::default();
    for s in &acked {
        ack.add(Some(s.sent_at), Some(s.acked_at));
        behind.add(Some(s.due_at), Some(s.acked_at));
    }
    Ok(PhaseReport {
        topology,
        rate,
        sent: sent.len(),
        acked: acked.len(),
        errors: count - acked.len(),
        first_error,
        send_secs,
        ack: ack.summary(),
        ack_behind: behind.summary(),
        missing_b,
        missing_c,
        not_pushed,
        drain_secs,
        a_to_c: a_to_c.summary(),
        a_to_c_recv: a_to_c_recv.summary(),
        ack_to_c_negative: ack_to_c.negative,
        ack_to_c: ack_to_c.summary(),
        a_to_b: a_to_b.summary(),
        a_to_b_recv: a_to_b_recv.summary(),
        hops: hop_diffs
            .into_iter()
            .map(|(l, mut d)| (l, d.summary()))
            .collect(),
        slow_c,
        worst_by_second,
        cpu,
        memory,
        counters,
    })
}

async fn run_topology(
    args: &PropagationArgs,
    topology: Topology,
    corpus: &Corpus,
    dir: &Path,
) -> anyhow::Result<Vec<PhaseReport>> {
    let mut trio = start_trio(args, topology, dir).await?;
    let result = async {
        let timeout = Duration::from_secs_f64(args.connect_timeout);
        let counts = wait_peers(&trio, [1, 2, 1], timeout).await;
        if counts[1] < 2 || counts[2] < 1 {
            bail!(
                "the nodes did not connect within {timeout:?}: raleph peers A {}, B {}, C {}",
                counts[0],
                counts[1],
                counts[2]
            );
        }
        let counts = if topology == Topology::Discovery {
            // C learns A's address from B and dials it.
            wait_peers(&trio, [2, 2, 2], timeout).await
        } else {
            // Give a wrong direct A–C link the time to show up, if discovery were on.
            tokio::time::sleep(Duration::from_secs(2)).await;
            wait_peers(&trio, [1, 2, 1], timeout).await
        };
        eprintln!(
            "propagation: raleph peers: A {}, B {}, C {}",
            counts[0], counts[1], counts[2]
        );
        let warm = warm_up(&trio, corpus, timeout).await?;
        println!(
            "# {}: raleph peers A {}, B {}, C {}; {warm}",
            topology.describe(),
            counts[0],
            counts[1],
            counts[2]
        );
        println!();
        let mut first = WARMUP;
        let mut reports = Vec::new();
        for &rate in &args.rates {
            let count = (rate * args.duration).round() as usize;
            let report = phase(args, &trio, topology, corpus, first, count, rate).await?;
            first += count;
            report.print();
            reports.push(report);
        }
        anyhow::Ok(reports)
    }
    .await;
    trio.stop();
    result
}

pub async fn run(args: &PropagationArgs) -> anyhow::Result<()> {
    if args.rates.is_empty() || args.topologies.is_empty() {
        bail!("nothing to measure: give at least one --rate and one --topology");
    }
    if args
        .rates
        .iter()
        .any(|r| !(r.is_finite() && *r > 0.0 && *r <= MAX_RATE))
    {
        bail!("every --rate must be in (0, {MAX_RATE}]");
    }
    if !(args.duration > 0.0 && args.duration <= MAX_DURATION) {
        bail!("--duration must be in (0, {MAX_DURATION}]");
    }
    let needed = WARMUP
        + args
            .rates
            .iter()
            .map(|r| (r * args.duration).round() as usize)
            .sum::<usize>();
    let corpus = load_corpus(args, needed)?;
    let idle = Snapshot::take(None);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let machine = idle.usage_until(&Snapshot::take(None)).machine;
    println!(
        "machine before the run (2 s, {} cores): {} busy (100 % = one core)",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        machine.map_or("-".into(), |m| format!("{m:.0} %"))
    );
    let root = std::env::temp_dir().join(format!("raleph-propagation-{}", std::process::id()));
    let started = Instant::now();
    let mut all = Vec::new();
    let mut failure = None;
    for &topology in &args.topologies {
        let dir = root.join(match topology {
            Topology::Line => "line",
            Topology::Discovery => "discovery",
        });
        match run_topology(args, topology, &corpus, &dir).await {
            Ok(reports) => all.extend(reports),
            Err(e) => {
                eprintln!(
                    "propagation: {} failed: {e:#} (logs in {})",
                    topology.describe(),
                    dir.display()
                );
                failure = Some(e);
            }
        }
    }
    print_summary(&all);
    if args.keep_data || failure.is_some() {
        eprintln!("propagation: data and logs kept in {}", root.display());
    } else {
        let _ = std::fs::remove_dir_all(&root);
    }
    eprintln!(
        "propagation: done in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn print_summary(reports: &[PhaseReport]) {
    if reports.is_empty() {
        return;
    }
    let mut out = String::new();
    let _ = writeln!(out, "# summary");
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| topology | rate /s | sent (acked) | A→C p50 / p99 / max ms | A→C received p50 / p99 ms | A→B p50 / p99 / max ms | missing B / C | CPU A / B / C | peak RSS A / B / C | machine CPU (other processes) |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in reports {
        let cpu = |i: usize| r.cpu[i].node.map_or("-".into(), |c| format!("{c:.0} %"));
        let rss = |i: usize| {
            r.memory[i].as_ref().map_or("-".into(), |m| {
                format!("{:.0}", m.peak_rss_kib as f64 / 1024.0)
            })
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} ({}) | {:.1} / {:.1} / {:.1} | {:.1} / {:.1} | {:.1} / {:.1} / {:.1} | {} / {} | {} / {} / {} | {} / {} / {} MiB | {} |",
            match r.topology {
                Topology::Line => "line (2 hops)",
                Topology::Discovery => "discovery",
            },
            thousands(r.rate),
            thousands(r.sent as f64),
            thousands(r.acked as f64),
            r.a_to_c.p50,
            r.a_to_c.p99,
            r.a_to_c.max,
            r.a_to_c_recv.p50,
            r.a_to_c_recv.p99,
            r.a_to_b.p50,
            r.a_to_b.p99,
            r.a_to_b.max,
            r.missing_b,
            r.missing_c,
            cpu(0),
            cpu(1),
            cpu(2),
            rss(0),
            rss(1),
            rss(2),
            r.cpu[0].machine.map_or("-".into(), |m| format!(
                "{m:.0} % ({:.0} %)",
                r.others().unwrap_or(0.0)
            )),
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "A→C: A's reception_time → C's websocket push of the processed message reaching the benchmark (one wall clock); \"received\": A's → C's reception_time."
    );
    print!("{out}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_topology_turns_discovery_off() {
        assert_eq!(
            node_toml("", Topology::Line),
            "[p2p]\ndial_discovered = false\n"
        );
        assert_eq!(node_toml("", Topology::Discovery), "");
        assert_eq!(
            node_toml("durability = \"normal\"", Topology::Line),
            "durability = \"normal\"\n[p2p]\ndial_discovered = false\n"
        );
        assert_eq!(
            node_toml("[p2p]\nflood_burst = 5", Topology::Line),
            "[p2p]\ndial_discovered = false\nflood_burst = 5\n"
        );
    }
}
