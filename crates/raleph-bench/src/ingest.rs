//! Replays a corpus through `POST /api/v0/messages` and waits until the node has processed
//! every message.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use hyper::Method;

use crate::http::{Conn, NodeCounts, Target, node_counts};
use crate::procfs::{CpuUsage, Memory, RssSampler, Snapshot};
use crate::stats::{Latencies, Summary, thousands};

#[derive(Debug, Clone, clap::Args)]
pub struct IngestArgs {
    /// The node's base URL (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:4024")]
    pub url: String,
    /// A corpus file (`raleph-bench corpus`).
    #[arg(long)]
    pub corpus: PathBuf,
    /// Messages per second to offer; as fast as the node acknowledges when absent.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Concurrent keep-alive connections sending.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Send only the first N messages of the corpus.
    #[arg(long)]
    pub limit: Option<usize>,
    /// The node's process id, to sample its memory and CPU time.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Stop sending after this many seconds.
    #[arg(long, default_value_t = 3600.0)]
    pub max_send_secs: f64,
    /// Give up waiting for processing this many seconds after the last send.
    #[arg(long, default_value_t = 1800.0)]
    pub drain_timeout_secs: f64,
}

#[derive(Debug, Clone, Default)]
pub struct IngestReport {
    pub label: String,
    pub sent: u64,
    /// Acknowledged with 202: recorded, processing pending.
    pub accepted: u64,
    /// Acknowledged with 200: processed at once (or known before).
    pub known: u64,
    pub rejected_at_intake: u64,
    pub other_errors: BTreeMap<u16, u64>,
    pub transport_errors: u64,
    pub retries: u64,
    pub first_error: Option<String>,
    pub send_secs: f64,
    pub ack: Summary,
    /// When sending started (Unix seconds): with `send_secs`, when the last acknowledgement
    /// came; with `end_to_end_secs`, when nothing was pending any more.
    pub started_unix: f64,
    /// From the first send until the node reported nothing pending (or the timeout).
    pub end_to_end_secs: f64,
    pub all_processed: bool,
    pub processed: u64,
    pub rejected: u64,
    pub pending_at_send_end: u64,
    pub node_messages_after: u64,
    pub memory: Option<Memory>,
    pub cpu_send: CpuUsage,
    pub cpu_drain: CpuUsage,
    pub cpu_total: CpuUsage,
    /// Acknowledgements per second over each tenth of the corpus (from 3-second samples),
    /// to see how intake slows as the store grows.
    pub ack_rate_by_tenth: Vec<f64>,
}

/// Rates over each tenth of `total`, from cumulative `(seconds, count, _)` samples.
pub fn rate_by_tenth(samples: &[(f64, u64, u64)], total: u64) -> Vec<f64> {
    let mut out = Vec::new();
    if total < 10 || samples.len() < 2 {
        return out;
    }
    // Time at which the cumulative count reached `target`, interpolated.
    let time_at = |target: f64| -> Option<f64> {
        samples.windows(2).find_map(|w| {
            let ((t0, c0, _), (t1, c1, _)) = (w[0], w[1]);
            let (c0, c1) = (c0 as f64, c1 as f64);
            (c1 >= target && c1 > c0).then(|| t0 + (t1 - t0) * (target - c0) / (c1 - c0))
        })
    };
    for k in 0..10 {
        let (a, b) = (
            total as f64 * k as f64 / 10.0,
            total as f64 * (k + 1) as f64 / 10.0,
        );
        match (if k == 0 { Some(0.0) } else { time_at(a) }, time_at(b)) {
            (Some(ta), Some(tb)) if tb > ta => out.push((b - a) / (tb - ta)),
            _ => break,
        }
    }
    out
}

impl IngestReport {
    pub fn acks_per_sec(&self) -> f64 {
        (self.accepted + self.known) as f64 / self.send_secs.max(1e-9)
    }

    pub fn end_to_end_rate(&self) -> f64 {
        self.processed as f64 / self.end_to_end_secs.max(1e-9)
    }

    pub fn print(&self) {
        let r = self;
        println!("## ingest: {}", r.label);
        println!(
            "sent {} messages: {} acknowledged pending (202), {} acknowledged processed or already known (200), {} rejected at intake (422), other HTTP errors {:?}, transport errors {}, retries after 429/503: {}",
            r.sent,
            r.accepted,
            r.known,
            r.rejected_at_intake,
            r.other_errors,
            r.transport_errors,
            r.retries
        );
        if let Some(e) = &r.first_error {
            println!("first error: {e}");
        }
        println!(
            "acknowledgements: {} /s over {:.1} s; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            thousands(r.acks_per_sec()),
            r.send_secs,
            r.ack.p50,
            r.ack.p99,
            r.ack.max
        );
        println!(
            "pending when the last acknowledgement came: {}",
            r.pending_at_send_end
        );
        println!(
            "end to end: {} processed + {} rejected in {:.1} s from the first send = {} messages/s{}",
            r.processed,
            r.rejected,
            r.end_to_end_secs,
            thousands(r.end_to_end_rate()),
            if r.all_processed {
                ""
            } else {
                " (TIMED OUT before everything was processed)"
            }
        );
        println!("node store now holds {} messages", r.node_messages_after);
        if !r.ack_rate_by_tenth.is_empty() {
            let rates: Vec<String> = r.ack_rate_by_tenth.iter().map(|x| thousands(*x)).collect();
            println!(
                "acknowledgements/s by tenth of the corpus: {}",
                rates.join(", ")
            );
        }
        if let Some(m) = &r.memory {
            println!("node memory: {}", m.describe());
        }
        println!("CPU while sending: {}", r.cpu_send.describe());
        if r.cpu_drain.node.is_some() || r.cpu_drain.machine.is_some() {
            println!("CPU while draining: {}", r.cpu_drain.describe());
        }
        println!("CPU overall: {}", r.cpu_total.describe());
        println!();
    }
}

#[derive(Default)]
struct Totals {
    sent: AtomicU64,
    accepted: AtomicU64,
    known: AtomicU64,
    rejected: AtomicU64,
    transport: AtomicU64,
    retries: AtomicU64,
    done_senders: AtomicUsize,
}

struct SenderResult {
    latencies: Latencies,
    errors: BTreeMap<u16, u64>,
    first_error: Option<String>,
}

async fn sender(
    target: Target,
    lines: Arc<Vec<Bytes>>,
    next: Arc<AtomicUsize>,
    totals: Arc<Totals>,
    start: Instant,
    rate: Option<f64>,
    deadline: Instant,
) -> SenderResult {
    let mut conn = Conn::new(&target);
    let mut out = SenderResult {
        latencies: Latencies::with_capacity(lines.len() / 16 + 16),
        errors: BTreeMap::new(),
        first_error: None,
    };
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= lines.len() || Instant::now() >= deadline {
            break;
        }
        if let Some(rate) = rate {
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        totals.sent.fetch_add(1, Ordering::Relaxed);
        let t0 = Instant::now();
        let mut backoff = Duration::from_millis(5);
        let mut transport_failures = 0;
        loop {
            match conn
                .request(Method::POST, "/api/v0/messages", Some(lines[i].clone()))
                .await
            {
                Ok(r) if r.status == 202 => {
                    totals.accepted.fetch_add(1, Ordering::Relaxed);
                }
                Ok(r) if r.status == 200 => {
                    totals.known.fetch_add(1, Ordering::Relaxed);
                }
                Ok(r) if (r.status == 429 || r.status == 503) && Instant::now() < deadline => {
                    totals.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(200));
                    continue;
                }
                Ok(r) => {
                    if r.status == 422 {
                        totals.rejected.fetch_add(1, Ordering::Relaxed);
                    } else {
                        *out.errors.entry(r.status).or_insert(0) += 1;
                    }
                    out.first_error.get_or_insert_with(|| {
                        format!(
                            "message {i}: HTTP {}: {}",
                            r.status,
                            String::from_utf8_lossy(&r.body)
                        )
                    });
                }
                Err(e) => {
                    transport_failures += 1;
                    if transport_failures < 5 && Instant::now() < deadline {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                    totals.transport.fetch_add(1, Ordering::Relaxed);
                    out.first_error
                        .get_or_insert_with(|| format!("message {i}: {e:#}"));
                }
            }
            break;
        }
        out.latencies.record(t0.elapsed());
    }
    totals.done_senders.fetch_add(1, Ordering::Relaxed);
    out
}

/// Replays `lines` and waits for processing. `label` names the run in reports.
pub async fn run(
    args: &IngestArgs,
    lines: Vec<Bytes>,
    label: &str,
) -> anyhow::Result<IngestReport> {
    let target = Target::parse(&args.url)?;
    let mut lines = lines;
    if let Some(limit) = args.limit {
        lines.truncate(limit);
    }
    let n = lines.len();
    let lines = Arc::new(lines);
    let mut monitor = Conn::new(&target);
    let before = node_counts(&mut monitor)
        .await
        .context("reading the node's /metrics before sending")?;
    eprintln!(
        "ingest {label}: {n} messages over {} connections{}; node holds {} messages, {} pending",
        args.connections,
        args.rate.map_or(String::new(), |r| format!(" at {r} /s")),
        before.messages,
        before.pending
    );
    let rss = args
        .pid
        .map(|p| RssSampler::start(p, Duration::from_millis(100)));
    let snap_start = Snapshot::take(args.pid);
    let started_unix = crate::ws::unix_now();
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(args.max_send_secs);
    let next = Arc::new(AtomicUsize::new(0));
    let totals = Arc::new(Totals::default());
    let mut tasks = Vec::new();
    for _ in 0..args.connections.max(1) {
        tasks.push(tokio::spawn(sender(
            target.clone(),
            lines.clone(),
            next.clone(),
            totals.clone(),
            start,
            args.rate,
            deadline,
        )));
    }
    // Progress while sending.
    let sending = Arc::new(AtomicBool::new(true));
    let progress = {
        let (totals, sending, target) = (totals.clone(), sending.clone(), target.clone());
        tokio::spawn(async move {
            let mut conn = Conn::new(&target);
            let mut last = (Instant::now(), 0u64, before.processed);
            // (seconds since the start, acknowledged, processed)
            let mut samples: Vec<(f64, u64, u64)> = vec![(0.0, 0, 0)];
            'outer: loop {
                for _ in 0..30 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if !sending.load(Ordering::Relaxed) {
                        break 'outer;
                    }
                }
                let acked =
                    totals.accepted.load(Ordering::Relaxed) + totals.known.load(Ordering::Relaxed);
                let counts = node_counts(&mut conn).await.unwrap_or_default();
                let dt = last.0.elapsed().as_secs_f64();
                let processed = counts.processed.saturating_sub(before.processed);
                eprintln!(
                    "  {:>6.1} s: acked {acked} ({:.0}/s), processed {processed} ({:.0}/s), pending {}, retries {}",
                    start.elapsed().as_secs_f64(),
                    (acked - last.1) as f64 / dt,
                    counts.processed.saturating_sub(last.2) as f64 / dt,
                    counts.pending,
                    totals.retries.load(Ordering::Relaxed)
                );
                samples.push((start.elapsed().as_secs_f64(), acked, processed));
                last = (Instant::now(), acked, counts.processed);
            }
            samples
        })
    };
    let mut latencies = Latencies::with_capacity(n);
    let mut errors: BTreeMap<u16, u64> = BTreeMap::new();
    let mut first_error = None;
    for t in tasks {
        let r = t.await?;
        latencies.merge(r.latencies);
        for (k, v) in r.errors {
            *errors.entry(k).or_insert(0) += v;
        }
        if first_error.is_none() {
            first_error = r.first_error;
        }
    }
    let send_secs = start.elapsed().as_secs_f64();
    sending.store(false, Ordering::Relaxed);
    let mut samples = progress.await.unwrap_or_default();
    samples.push((
        send_secs,
        totals.accepted.load(Ordering::Relaxed) + totals.known.load(Ordering::Relaxed),
        0,
    ));
    let snap_sent = Snapshot::take(args.pid);
    // Wait until nothing is pending. Each poll counts whole tables, so poll less often as
    // the store grows (at most ~10 % of the time spent polling).
    let drain_deadline = Instant::now() + Duration::from_secs_f64(args.drain_timeout_secs);
    let mut pending_at_send_end = None;
    let mut last_report = Instant::now();
    let (counts, all_processed, done_at) = loop {
        let polled_at = Instant::now();
        let counts: NodeCounts = node_counts(&mut monitor).await?;
        let poll_time = polled_at.elapsed();
        pending_at_send_end.get_or_insert(counts.pending);
        if counts.pending == 0 {
            break (counts, true, polled_at);
        }
        if Instant::now() >= drain_deadline {
            break (counts, false, polled_at);
        }
        if last_report.elapsed() >= Duration::from_secs(3) {
            last_report = Instant::now();
            eprintln!(
                "  {:>6.1} s: sending done, processed {}, pending {}",
                start.elapsed().as_secs_f64(),
                counts.processed.saturating_sub(before.processed),
                counts.pending
            );
        }
        let wait = (poll_time * 10).clamp(Duration::from_millis(100), Duration::from_secs(2));
        tokio::time::sleep(wait).await;
    };
    let snap_end = Snapshot::take(args.pid);
    // /metrics counts its tables one after the other, outside one transaction: read the
    // store's size again now that nothing moves.
    let settled = node_counts(&mut monitor).await.unwrap_or(counts);
    let memory = rss.map(RssSampler::finish);
    let report = IngestReport {
        label: label.to_owned(),
        sent: totals.sent.load(Ordering::Relaxed),
        accepted: totals.accepted.load(Ordering::Relaxed),
        known: totals.known.load(Ordering::Relaxed),
        rejected_at_intake: totals.rejected.load(Ordering::Relaxed),
        other_errors: errors,
        transport_errors: totals.transport.load(Ordering::Relaxed),
        retries: totals.retries.load(Ordering::Relaxed),
        first_error,
        send_secs,
        ack: latencies.summary(),
        started_unix,
        end_to_end_secs: done_at.duration_since(start).as_secs_f64(),
        all_processed,
        processed: counts.processed.saturating_sub(before.processed),
        rejected: counts.rejected.saturating_sub(before.rejected),
        pending_at_send_end: pending_at_send_end.unwrap_or(0),
        node_messages_after: settled.messages,
        memory,
        cpu_send: snap_start.usage_until(&snap_sent),
        cpu_drain: snap_sent.usage_until(&snap_end),
        cpu_total: snap_start.usage_until(&snap_end),
        ack_rate_by_tenth: rate_by_tenth(&samples, n as u64),
    };
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_by_tenth_of_the_corpus() {
        // 100 messages/s for the first half of 1000, then 50/s.
        let samples = [(0.0, 0, 0), (5.0, 500, 0), (15.0, 1000, 0)];
        let r = rate_by_tenth(&samples, 1000);
        assert_eq!(r.len(), 10);
        assert!(r[..5].iter().all(|x| (x - 100.0).abs() < 1e-6), "{r:?}");
        assert!(r[5..].iter().all(|x| (x - 50.0).abs() < 1e-6), "{r:?}");
        // Samples that stop early give the tenths they cover.
        assert_eq!(rate_by_tenth(&samples[..2], 1000).len(), 5);
        assert!(rate_by_tenth(&samples[..1], 1000).is_empty());
    }
}
