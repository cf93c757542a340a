//! Query latency and throughput: sample values are discovered from the node, then each kind
//! of query runs on one sequential client, then a mix runs on K concurrent connections.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::corpus::Rng;
use crate::http::{Conn, Target, encode};
use crate::procfs::{CpuUsage, Memory, RssSampler, Snapshot};
use crate::stats::{Latencies, Summary, thousands};

#[derive(Debug, Clone, clap::Args)]
pub struct QueryArgs {
    /// The node's base URL (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:4024")]
    pub url: String,
    /// Requests per query kind on the sequential client (after 5 warm-up requests).
    #[arg(long, default_value_t = 300)]
    pub requests: usize,
    /// Longest time spent on one query kind on the sequential client, in seconds.
    #[arg(long, default_value_t = 20.0)]
    pub kind_secs: f64,
    /// Seconds of the concurrent phase with an even mix of every kind (0 skips it).
    #[arg(long, default_value_t = 20.0)]
    pub duration: f64,
    /// Seconds of concurrent load on each kind alone (0 skips it).
    #[arg(long, default_value_t = 3.0)]
    pub kind_duration: f64,
    /// Connections in the concurrent phases.
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Items per page (`pagination`).
    #[arg(long, default_value_t = 20)]
    pub page_size: usize,
    /// The node's process id, to sample its memory and CPU time.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Run only the kinds whose names contain one of these (comma-separated) substrings.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
}

impl QueryArgs {
    fn wanted(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| name.contains(o.as_str()))
    }
}

/// Values seen in the store, to build queries that match something.
#[derive(Debug, Default)]
pub struct Samples {
    pub addresses: BTreeSet<String>,
    pub post_addresses: BTreeSet<String>,
    pub aggregates: BTreeSet<(String, String)>,
    pub channels: BTreeSet<String>,
    pub hashes: BTreeSet<String>,
    pub refs: BTreeSet<String>,
    pub content_types: BTreeSet<String>,
    pub keys: BTreeSet<String>,
    pub tags: BTreeSet<String>,
    pub min_time: f64,
    pub max_time: f64,
    pub seen: usize,
}

impl Samples {
    fn add(&mut self, m: &Value) {
        self.seen += 1;
        let s = |v: &Value| v.as_str().map(str::to_owned);
        let sender = s(&m["sender"]);
        let kind = m["type"].as_str().unwrap_or("");
        if let Some(a) = &sender {
            self.addresses.insert(a.clone());
        }
        if let Some(c) = s(&m["channel"]) {
            self.channels.insert(c);
        }
        if let Some(h) = s(&m["item_hash"]) {
            self.hashes.insert(h);
        }
        let content = &m["content"];
        if let Some(r) = s(&content["ref"]) {
            self.refs.insert(r);
        }
        if kind == "POST" {
            if let Some(t) = s(&content["type"]) {
                self.content_types.insert(t);
            }
            if let Some(a) = &sender {
                self.post_addresses.insert(a.clone());
            }
        }
        if kind == "AGGREGATE"
            && let (Some(k), Some(a)) = (s(&content["key"]), &sender)
        {
            self.keys.insert(k.clone());
            self.aggregates.insert((a.clone(), k));
        }
        if let Some(tags) = content["content"]["tags"].as_array() {
            self.tags.extend(tags.iter().filter_map(s));
        }
        if let Some(t) = m["time"].as_f64() {
            if self.min_time == 0.0 || t < self.min_time {
                self.min_time = t;
            }
            self.max_time = self.max_time.max(t);
        }
    }
}

async fn page(conn: &mut Conn, query: &str, samples: &mut Samples) -> anyhow::Result<usize> {
    let v = conn
        .get_json(&format!("/api/v0/messages.json?pagination=200&{query}"))
        .await?;
    let messages = v["messages"].as_array().context("no messages array")?;
    for m in messages {
        samples.add(m);
    }
    Ok(messages.len())
}

/// Reads a few pages of messages (newest, oldest, and three points in between).
pub async fn discover(target: &Target) -> anyhow::Result<Samples> {
    let mut conn = Conn::new(target);
    let mut samples = Samples::default();
    page(&mut conn, "sortOrder=-1", &mut samples).await?;
    page(&mut conn, "sortOrder=1", &mut samples).await?;
    if samples.seen == 0 {
        bail!("the node holds no processed messages to query");
    }
    let (lo, hi) = (samples.min_time, samples.max_time);
    for f in [0.25, 0.5, 0.75] {
        let t = lo + (hi - lo) * f;
        page(
            &mut conn,
            &format!("sortOrder=1&startDate={t}"),
            &mut samples,
        )
        .await?;
    }
    Ok(samples)
}

/// One kind of request, with the paths it cycles through.
struct QueryKind {
    name: String,
    paths: Vec<String>,
}

fn pick<T: Clone>(set: &BTreeSet<T>, n: usize) -> Vec<T> {
    // Spread over the sorted set rather than the first n.
    let v: Vec<T> = set.iter().cloned().collect();
    if v.len() <= n {
        return v;
    }
    (0..n).map(|i| v[i * v.len() / n].clone()).collect()
}

fn kinds(s: &Samples, page_size: usize) -> Vec<QueryKind> {
    const N: usize = 64;
    let m = |q: String| {
        if q.is_empty() {
            format!("/api/v0/messages.json?pagination={page_size}")
        } else {
            format!("/api/v0/messages.json?pagination={page_size}&{q}")
        }
    };
    let mut r = Rng::new(7);
    let span = (s.max_time - s.min_time).max(1.0);
    let windows: Vec<(f64, f64)> = (0..N)
        .map(|_| {
            let start = s.min_time + span * (r.below(1000) as f64 / 1000.0);
            (start, start + (span / 100.0).max(1.0))
        })
        .collect();
    let mut out = vec![
        QueryKind {
            name: "messages, no filter".into(),
            paths: vec![m(String::new())],
        },
        QueryKind {
            name: "messages by address".into(),
            paths: pick(&s.addresses, N)
                .iter()
                .map(|a| m(format!("addresses={}", encode(a))))
                .collect(),
        },
        QueryKind {
            name: "messages by channel".into(),
            paths: pick(&s.channels, N)
                .iter()
                .map(|c| m(format!("channels={}", encode(c))))
                .collect(),
        },
        QueryKind {
            name: "messages by type".into(),
            paths: vec![m("msgType=POST".into()), m("msgType=AGGREGATE".into())],
        },
        QueryKind {
            name: "messages by ref".into(),
            paths: pick(&s.refs, N)
                .iter()
                .map(|x| m(format!("refs={}", encode(x))))
                .collect(),
        },
        QueryKind {
            name: "messages by content type".into(),
            paths: pick(&s.content_types, N)
                .iter()
                .map(|x| m(format!("contentTypes={}", encode(x))))
                .collect(),
        },
        QueryKind {
            name: "messages by content key".into(),
            paths: pick(&s.keys, N)
                .iter()
                .map(|x| m(format!("contentKeys={}", encode(x))))
                .collect(),
        },
        QueryKind {
            name: "messages by tag".into(),
            paths: pick(&s.tags, N)
                .iter()
                .map(|x| m(format!("tags={}", encode(x))))
                .collect(),
        },
        QueryKind {
            name: "messages by hash".into(),
            paths: pick(&s.hashes, N)
                .iter()
                .map(|x| m(format!("hashes={x}")))
                .collect(),
        },
        QueryKind {
            name: "messages by time range".into(),
            paths: windows
                .iter()
                .map(|(a, b)| m(format!("startDate={a:.3}&endDate={b:.3}")))
                .collect(),
        },
        QueryKind {
            name: "messages by chain".into(),
            paths: vec![m("chains=ETH".into())],
        },
        QueryKind {
            name: "messages by address + type".into(),
            paths: pick(&s.addresses, N)
                .iter()
                .map(|a| m(format!("addresses={}&msgType=POST", encode(a))))
                .collect(),
        },
        QueryKind {
            name: "messages by channel + time range".into(),
            paths: pick(&s.channels, N)
                .iter()
                .zip(&windows)
                .map(|(c, (a, b))| {
                    m(format!(
                        "channels={}&startDate={a:.3}&endDate={b:.3}",
                        encode(c)
                    ))
                })
                .collect(),
        },
        QueryKind {
            // A type and a one-minute window: the type's rows are most of the store, so the
            // page is read from the time index and each row's type checked.
            name: "messages by type + time range".into(),
            paths: windows
                .iter()
                .map(|(a, _)| {
                    m(format!(
                        "msgType=POST&startDate={a:.3}&endDate={:.3}",
                        a + 60.0
                    ))
                })
                .collect(),
        },
        QueryKind {
            name: "one message by hash".into(),
            paths: pick(&s.hashes, N)
                .iter()
                .map(|h| format!("/api/v0/messages/{h}"))
                .collect(),
        },
        QueryKind {
            name: "posts.json by address".into(),
            paths: pick(&s.post_addresses, N)
                .iter()
                .map(|a| {
                    format!(
                        "/api/v0/posts.json?pagination={page_size}&addresses={}",
                        encode(a)
                    )
                })
                .collect(),
        },
        QueryKind {
            name: "posts.json by type".into(),
            paths: pick(&s.content_types, N)
                .iter()
                .map(|t| {
                    format!(
                        "/api/v0/posts.json?pagination={page_size}&types={}",
                        encode(t)
                    )
                })
                .collect(),
        },
        QueryKind {
            name: "posts v1 by channel".into(),
            paths: pick(&s.channels, N)
                .iter()
                .map(|c| {
                    format!(
                        "/api/v1/posts.json?pagination={page_size}&channels={}",
                        encode(c)
                    )
                })
                .collect(),
        },
        QueryKind {
            name: "aggregates of an address".into(),
            paths: pick(&s.aggregates, N)
                .iter()
                .map(|(a, _)| format!("/api/v0/aggregates/{a}.json"))
                .collect(),
        },
        QueryKind {
            name: "aggregates of an address, one key".into(),
            paths: pick(&s.aggregates, N)
                .iter()
                .map(|(a, k)| format!("/api/v0/aggregates/{a}.json?keys={}", encode(k)))
                .collect(),
        },
        QueryKind {
            name: "aggregates.json by key".into(),
            paths: pick(&s.keys, N)
                .iter()
                .map(|k| {
                    format!(
                        "/api/v0/aggregates.json?pagination={page_size}&keys={}",
                        encode(k)
                    )
                })
                .collect(),
        },
    ];
    out.extend(more_reads(s, page_size));
    out.retain(|k| !k.paths.is_empty());
    out
}

/// The rest of the reference's read API (issue 17): item hashes by reception, an address's
/// channels, post types and authorizations, the metrics and the status history.
fn more_reads(s: &Samples, page_size: usize) -> Vec<QueryKind> {
    const N: usize = 64;
    let per_address = |name: &str, path: fn(&str) -> String| QueryKind {
        name: name.into(),
        paths: pick(&s.addresses, N)
            .iter()
            .map(|a| path(&encode(a)))
            .collect(),
    };
    let fixed = |name: &str, path: String| QueryKind {
        name: name.into(),
        paths: vec![path],
    };
    vec![
        fixed(
            "messages/hashes",
            format!("/api/v0/messages/hashes?pagination={page_size}"),
        ),
        fixed(
            "messages/hashes, with status and time",
            format!("/api/v0/messages/hashes?pagination={page_size}&hash_only=false"),
        ),
        fixed(
            "messages/hashes, rejected",
            format!("/api/v0/messages/hashes?pagination={page_size}&status=rejected"),
        ),
        per_address("an address's channels", |a| {
            format!("/api/v0/addresses/{a}/channels")
        }),
        per_address("an address's post types", |a| {
            format!("/api/v0/addresses/{a}/post_types")
        }),
        per_address("authorizations granted", |a| {
            format!("/api/v0/authorizations/granted/{a}.json")
        }),
        per_address("authorizations received", |a| {
            format!("/api/v0/authorizations/received/{a}.json")
        }),
        fixed("metrics.json", "/metrics.json".into()),
        fixed("status history", "/api/v0/status/history".into()),
    ]
}

/// Sequential results of one kind.
#[derive(Debug, Clone)]
pub struct KindResult {
    pub name: String,
    pub example: String,
    pub latency: Summary,
    /// The timed requests for a path the kind had not asked for before in this run (its
    /// total is counted, its rows may have to be read back from disk or from memory the host
    /// reclaimed), and the others.
    pub first_requests: Summary,
    pub repeats: Summary,
    pub errors: u64,
    pub first_error: Option<String>,
    pub mean_items: f64,
    /// This kind alone on K connections.
    pub concurrent: Option<ConcurrentResult>,
}

#[derive(Debug, Clone, Default)]
pub struct ConcurrentResult {
    pub connections: usize,
    pub secs: f64,
    pub requests: u64,
    pub errors: u64,
    /// Requests still unanswered 2 s after the end.
    pub abandoned: u64,
    pub latency: Summary,
    pub cpu: CpuUsage,
}

impl ConcurrentResult {
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.secs.max(1e-9)
    }
}

#[derive(Debug, Clone, Default)]
pub struct QueryReport {
    pub store_messages: u64,
    pub kinds: Vec<KindResult>,
    pub concurrent: Option<ConcurrentResult>,
    pub memory: Option<Memory>,
}

impl QueryReport {
    pub fn print(&self) {
        let conns = self
            .kinds
            .iter()
            .find_map(|k| k.concurrent.as_ref().map(|c| c.connections));
        println!(
            "## queries ({} messages in the store)",
            thousands(self.store_messages as f64)
        );
        println!();
        println!(
            "Latency: one sequential keep-alive client.{}",
            conns.map_or(String::new(), |c| format!(
                " Throughput: {c} connections on that kind alone."
            ))
        );
        println!();
        println!(
            "| query | requests | p50 ms | p99 ms | max ms | first requests: n, p50, max ms | repeats: p99 ms | items/page | errors | requests/s | p99 ms under load |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for k in &self.kinds {
            let (rate, p99) = match &k.concurrent {
                Some(c) => (
                    format!(
                        "{}{}",
                        thousands(c.rate()),
                        if c.abandoned > 0 { " (timeouts)" } else { "" }
                    ),
                    format!("{:.1}", c.latency.p99),
                ),
                None => ("-".into(), "-".into()),
            };
            let first = match k.first_requests.count {
                0 => "-".to_owned(),
                n => format!(
                    "{n}, {:.2}, {:.2}",
                    k.first_requests.p50, k.first_requests.max
                ),
            };
            let repeats = match k.repeats.count {
                0 => "-".to_owned(),
                _ => format!("{:.2}", k.repeats.p99),
            };
            println!(
                "| {} | {} | {:.2} | {:.2} | {:.2} | {} | {} | {:.1} | {} | {} | {} |",
                k.name,
                k.latency.count,
                k.latency.p50,
                k.latency.p99,
                k.latency.max,
                first,
                repeats,
                k.mean_items,
                k.errors,
                rate,
                p99
            );
        }
        println!();
        println!("Example requests:");
        println!();
        for k in &self.kinds {
            println!("- {}: `{}`", k.name, k.example);
        }
        println!();
        for k in self.kinds.iter().filter(|k| k.first_error.is_some()) {
            println!(
                "first error for {}: {}",
                k.name,
                k.first_error.as_deref().unwrap_or("")
            );
        }
        if let Some(c) = &self.concurrent {
            println!(
                "Even mix of every kind (deep page-number pages excepted) on {} connections for {:.0} s: {} requests = {} requests/s; latency mean {:.2} ms, p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms; errors {}, abandoned {}.",
                c.connections,
                c.secs,
                c.requests,
                thousands(c.rate()),
                c.latency.mean,
                c.latency.p50,
                c.latency.p99,
                c.latency.max,
                c.errors,
                c.abandoned
            );
            println!("CPU during the mix: {}", c.cpu.describe());
        }
        if let Some(m) = &self.memory {
            println!("node memory during queries: {}", m.describe());
        }
        println!();
    }
}

fn items(body: &[u8]) -> Option<usize> {
    let v: Value = serde_json::from_slice(body).ok()?;
    for key in ["messages", "posts", "aggregates"] {
        if let Some(a) = v.get(key).and_then(Value::as_array) {
            return Some(a.len());
        }
    }
    match v.get("data") {
        Some(Value::Object(o)) => Some(o.len()),
        _ => v.get("item_hash").map(|_| 1),
    }
}

async fn run_kind(
    conn: &mut Conn,
    kind: &QueryKind,
    requests: usize,
    limit: Duration,
) -> KindResult {
    let mut latencies = Latencies::with_capacity(requests);
    let mut first_requests = Latencies::with_capacity(kind.paths.len());
    let mut repeats = Latencies::with_capacity(requests);
    let mut errors = 0;
    let mut first_error = None;
    let mut total_items = 0usize;
    let started = Instant::now();
    for i in 0..requests + 5 {
        if started.elapsed() >= limit {
            break;
        }
        let path = &kind.paths[i % kind.paths.len()];
        let t0 = Instant::now();
        let result = conn.get(path).await;
        let elapsed = t0.elapsed();
        match result {
            Ok(r) if r.status == 200 => {
                if i >= 5 {
                    latencies.record(elapsed);
                    if i < kind.paths.len() {
                        first_requests.record(elapsed);
                    } else {
                        repeats.record(elapsed);
                    }
                    total_items += items(&r.body).unwrap_or(0);
                }
            }
            Ok(r) => {
                errors += 1;
                first_error.get_or_insert_with(|| {
                    format!(
                        "GET {path}: HTTP {}: {}",
                        r.status,
                        String::from_utf8_lossy(&r.body)
                    )
                });
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert_with(|| format!("GET {path}: {e:#}"));
            }
        }
    }
    let n = latencies.len().max(1);
    KindResult {
        name: kind.name.clone(),
        example: kind.paths[0].clone(),
        latency: latencies.summary(),
        first_requests: first_requests.summary(),
        repeats: repeats.summary(),
        errors,
        first_error,
        mean_items: total_items as f64 / n as f64,
        concurrent: None,
    }
}

/// Walks `pages` cursor pages from the first, `walks` times; returns per-page latencies for
/// all pages and for the last ten, and the URLs of the pages it saw.
async fn cursor_walks(
    conn: &mut Conn,
    first: &[String],
    pages: usize,
    walks: usize,
    limit: Duration,
) -> (KindResult, KindResult, Vec<String>) {
    let mut all = Latencies::default();
    let mut deep = Latencies::default();
    let (mut first_requests, mut repeats) = (Latencies::default(), Latencies::default());
    let (mut deep_first, mut deep_repeats) = (Latencies::default(), Latencies::default());
    let mut urls = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    let mut total_items = 0;
    let started = Instant::now();
    'walks: for w in 0..walks {
        let base = &first[w % first.len()];
        let mut path = format!("{base}&cursor=");
        for p in 0..pages {
            if started.elapsed() >= limit {
                break 'walks;
            }
            let t0 = Instant::now();
            let result = conn.get_json(&path).await;
            let elapsed = t0.elapsed();
            match result {
                Ok(v) => {
                    // The first walk from each start reads pages nobody asked for before.
                    let new_walk = w < first.len();
                    all.record(elapsed);
                    if new_walk {
                        &mut first_requests
                    } else {
                        &mut repeats
                    }
                    .record(elapsed);
                    if p + 10 >= pages {
                        deep.record(elapsed);
                        if new_walk {
                            &mut deep_first
                        } else {
                            &mut deep_repeats
                        }
                        .record(elapsed);
                    }
                    total_items += v["messages"].as_array().map_or(0, Vec::len);
                    urls.push(path.clone());
                    match v["next_cursor"].as_str() {
                        Some(c) => path = format!("{base}&cursor={}", encode(c)),
                        None => break,
                    }
                }
                Err(e) => {
                    errors += 1;
                    first_error.get_or_insert_with(|| format!("{e:#}"));
                    break;
                }
            }
        }
    }
    let n = all.len().max(1);
    let mean_items = total_items as f64 / n as f64;
    (
        KindResult {
            name: format!("cursor pages 1–{pages}"),
            example: first[0].clone(),
            latency: all.summary(),
            first_requests: first_requests.summary(),
            repeats: repeats.summary(),
            errors,
            first_error,
            mean_items,
            concurrent: None,
        },
        KindResult {
            name: format!("cursor pages {}–{pages}", pages.saturating_sub(9)),
            example: first[0].clone(),
            latency: deep.summary(),
            first_requests: deep_first.summary(),
            repeats: deep_repeats.summary(),
            errors: 0,
            first_error: None,
            mean_items,
            concurrent: None,
        },
        urls,
    )
}

/// `connections` connections for `duration`, each picking a group at random, then a path of
/// that group. A request still running at the end (plus 2 s) is abandoned and counted.
async fn concurrent(
    target: &Target,
    groups: Arc<Vec<Vec<String>>>,
    connections: usize,
    duration: Duration,
    pid: Option<u32>,
) -> ConcurrentResult {
    let before = Snapshot::take(pid);
    let started = Instant::now();
    let deadline = started + duration;
    let hard_stop = deadline + Duration::from_secs(2);
    let mut tasks = Vec::new();
    for c in 0..connections.max(1) {
        let (target, groups) = (target.clone(), groups.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(&target);
            let mut rng = Rng::new(1000 + c as u64);
            let mut latencies = Latencies::default();
            let (mut errors, mut abandoned) = (0u64, 0u64);
            while Instant::now() < deadline {
                let group = &groups[rng.below(groups.len())];
                let path = &group[rng.below(group.len())];
                let t0 = Instant::now();
                match tokio::time::timeout_at(hard_stop.into(), conn.get(path)).await {
                    Ok(Ok(r)) if r.status == 200 => latencies.record(t0.elapsed()),
                    Ok(_) => errors += 1,
                    Err(_) => {
                        abandoned += 1;
                        break;
                    }
                }
            }
            (latencies, errors, abandoned)
        }));
    }
    let mut latencies = Latencies::default();
    let (mut errors, mut abandoned) = (0, 0);
    for t in tasks {
        if let Ok((l, e, a)) = t.await {
            latencies.merge(l);
            errors += e;
            abandoned += a;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let after = Snapshot::take(pid);
    ConcurrentResult {
        connections,
        secs,
        requests: latencies.len() as u64,
        errors,
        abandoned,
        latency: latencies.summary(),
        cpu: before.usage_until(&after),
    }
}

/// Waits until the node is idle (below 10 % of a core over 250 ms, at most 120 s), so that
/// requests a previous phase abandoned do not weigh on the next one.
async fn settle(pid: Option<u32>) {
    let Some(pid) = pid else {
        tokio::time::sleep(Duration::from_secs(1)).await;
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let Some(before) = crate::procfs::cpu_ticks(pid) else {
            return;
        };
        tokio::time::sleep(Duration::from_millis(250)).await;
        let Some(after) = crate::procfs::cpu_ticks(pid) else {
            return;
        };
        let busy = (after - before) as f64 / crate::procfs::clock_ticks() / 0.25;
        if busy < 0.10 {
            return;
        }
    }
}

fn log_kind(r: &KindResult) {
    eprintln!(
        "  {:<40} p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  ({} requests, {:.1} items, {} errors; {} first requests p50 {:.2} ms; repeats p99 {:.2} ms)",
        r.name,
        r.latency.p50,
        r.latency.p99,
        r.latency.max,
        r.latency.count,
        r.mean_items,
        r.errors,
        r.first_requests.count,
        r.first_requests.p50,
        r.repeats.p99,
    );
}

pub async fn run(args: &QueryArgs) -> anyhow::Result<QueryReport> {
    let target = Target::parse(&args.url)?;
    let mut conn = Conn::new(&target);
    let store_messages = crate::http::node_counts(&mut conn).await?.messages;
    let samples = discover(&target).await?;
    eprintln!(
        "query: {} messages in the store; sampled {} messages: {} addresses, {} channels, {} refs, {} content types, {} keys, {} tags, time {:.0}–{:.0}",
        store_messages,
        samples.seen,
        samples.addresses.len(),
        samples.channels.len(),
        samples.refs.len(),
        samples.content_types.len(),
        samples.keys.len(),
        samples.tags.len(),
        samples.min_time,
        samples.max_time
    );
    let rss = args
        .pid
        .map(|p| RssSampler::start(p, Duration::from_millis(100)));
    let limit = Duration::from_secs_f64(args.kind_secs);
    let page_size = args.page_size;
    // (result, the requests a concurrent client of this kind sends)
    let mut measured: Vec<(KindResult, Vec<String>)> = Vec::new();
    eprintln!("query: one sequential client, kind by kind");
    for kind in kinds(&samples, page_size) {
        if !args.wanted(&kind.name) {
            continue;
        }
        let r = run_kind(&mut conn, &kind, args.requests, limit).await;
        log_kind(&r);
        measured.push((r, kind.paths));
    }
    // Cursor pagination, 50 pages deep: unfiltered, then by channel.
    let list = format!("/api/v0/messages.json?pagination={page_size}");
    let walks: [(&str, Vec<String>); 2] = [
        (", no filter", vec![list.clone()]),
        (
            ", by channel",
            pick(&samples.channels, 8)
                .iter()
                .map(|c| format!("{list}&channels={}", encode(c)))
                .collect(),
        ),
    ];
    for (what, starts) in walks {
        if !args.wanted(&format!("cursor pages{what}")) {
            continue;
        }
        let n = (args.requests / 50).max(starts.len()).max(2);
        let (mut all, mut deep, urls) = cursor_walks(&mut conn, &starts, 50, n, limit).await;
        all.name = format!("{}{what}", all.name);
        deep.name = format!("{}{what}", deep.name);
        for r in [&all, &deep] {
            log_kind(r);
        }
        measured.push((all, urls.clone()));
        // Deep pages only: the URLs of pages 41–50 of each walk.
        let deep_urls: Vec<String> = urls
            .chunks(50)
            .flat_map(|w| w.iter().skip(40).cloned())
            .collect();
        measured.push((deep, deep_urls));
    }
    // Page-number pagination far from the start (an OFFSET scan), for comparison.
    let deep_page = QueryKind {
        name: "page-number page 100 (an offset of 99 pages)".into(),
        paths: vec![format!("{list}&page=100")],
    };
    if args.wanted(&deep_page.name) {
        let r = run_kind(&mut conn, &deep_page, args.requests.min(50), limit).await;
        log_kind(&r);
        measured.push((r, deep_page.paths));
    }
    // Throughput of each kind alone, then of an even mix of kinds.
    let kind_duration = Duration::from_secs_f64(args.kind_duration);
    if args.kind_duration > 0.0 {
        eprintln!(
            "query: {} connections, {:.0} s per kind",
            args.connections, args.kind_duration
        );
        for (r, paths) in measured.iter_mut() {
            if paths.is_empty() {
                continue;
            }
            // Fill the node's count cache first (one request per distinct path), so this
            // measures the steady state rather than a herd of identical cold counts.
            let warm_until = Instant::now() + limit;
            let mut distinct = paths.clone();
            distinct.sort();
            distinct.dedup();
            for path in distinct.iter().take(64) {
                if Instant::now() >= warm_until {
                    break;
                }
                let _ = conn.get(path).await;
            }
            settle(args.pid).await;
            let c = concurrent(
                &target,
                Arc::new(vec![paths.clone()]),
                args.connections,
                kind_duration,
                args.pid,
            )
            .await;
            // Node CPU per request (user + system, all threads), when the node is watched.
            let cpu = c
                .cpu
                .node
                .filter(|_| c.requests > 0)
                .map_or(String::new(), |pct| {
                    format!("  node CPU {:.0} µs/request", pct / 100.0 * 1e6 / c.rate())
                });
            eprintln!(
                "  {:<40} {:>7} requests/s  p50 {:>7.2} ms  p99 {:>7.2} ms{cpu}",
                r.name,
                thousands(c.rate()),
                c.latency.p50,
                c.latency.p99
            );
            r.concurrent = Some(c);
        }
    }
    let mix = if args.duration > 0.0 {
        let groups: Vec<Vec<String>> = measured
            .iter()
            .filter(|(r, p)| !p.is_empty() && !r.name.starts_with("page-number"))
            .map(|(_, p)| p.clone())
            .collect();
        eprintln!(
            "query: {} connections for {:.0} s, an even mix of {} kinds…",
            args.connections,
            args.duration,
            groups.len()
        );
        settle(args.pid).await;
        Some(
            concurrent(
                &target,
                Arc::new(groups),
                args.connections,
                Duration::from_secs_f64(args.duration),
                args.pid,
            )
            .await,
        )
    } else {
        None
    };
    Ok(QueryReport {
        store_messages,
        kinds: measured.into_iter().map(|(r, _)| r).collect(),
        concurrent: mix,
        memory: rss.map(RssSampler::finish),
    })
}
