//! `anchoring`: messages anchored on an EVM chain (issue 16), end to end on a private anvil.
//!
//! For each batch size N, on a fresh chain and two fresh nodes (so sizes do not share a
//! store, a reader position or a packer round):
//! 1. anvil starts and the AlephSync contract is deployed (raleph-chain's `testing`
//!    feature); a block is mined every `--mine-interval-ms` for the confirmation depth;
//! 2. node A (a packer: `commit_delay_secs` = `--commit-delay-secs`, `max_messages` = N) and
//!    node B (a reader only, fetching archives from A's raw file route, no p2p peers) start;
//! 3. N pre-signed POSTs (the `corpus`) are sent to A on keep-alive connections as fast as it
//!    acknowledges (`ingest`), and the benchmark waits until A has processed them;
//! 4. the packer's next round takes them in one batch (its round comes `commit_delay_secs`
//!    after the one at A's start, so the delay must exceed the submission: checked, and
//!    reported otherwise), sends `doEmit`, and both nodes' readers take the event one block
//!    later;
//! 5. measured: last acknowledgement → confirmed on A and on B, the anchoring transactions
//!    (messages and gas per transaction and per message, from the logs and receipts), and
//!    B's reader rate (see `report`).
//!
//! Every run is bounded: sizes, delays and waits have ceilings, and the nodes and anvil are
//! stopped on every exit (errors and Ctrl-C included).

mod chain;
mod confirm;
mod nodes;
mod report;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::corpus::{self, Posts as Corpus};
use crate::http::Conn;
use crate::ingest::{self, IngestArgs};
use chain::Chain;
use nodes::{ChainSettings, Pair};
use report::SizeReport;

/// Largest batch: the Merkle tree and the readers' limits are sized for far less in practice.
const MAX_SIZE: usize = 100_000;
const MAX_COMMIT_DELAY_SECS: u64 = 600;
/// The confirmation depth and the readers' poll interval, as issue 16's benchmark asks: one
/// block on top of the anchoring block, and a poll every second.
const CONFIRMATIONS: u64 = 1;
const POLL_INTERVAL_SECS: u64 = 1;

#[derive(Debug, Clone, clap::Args)]
pub struct AnchoringArgs {
    /// The node binary (built with `cargo build --release -p raleph`).
    #[arg(
        long,
        env = "RALEPH_BIN",
        default_value = "/root/.cache/raleph/target/release/raleph"
    )]
    pub bin: PathBuf,
    /// Messages per batch, one run each (repeatable or comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [100, 1_000, 10_000])]
    pub sizes: Vec<usize>,
    /// The packer's `commit_delay_secs`; by default 8 s + 1 s per 500 messages, enough for
    /// the batch to be submitted and processed before the packer's second round.
    #[arg(long)]
    pub commit_delay_secs: Option<u64>,
    /// A block is mined this often (`anvil_mine`), for the confirmation depth of 1.
    #[arg(long, default_value_t = 200)]
    pub mine_interval_ms: u64,
    /// Concurrent keep-alive connections submitting to A.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// After the last acknowledgement, give up on confirmations after this many seconds
    /// (beyond the commit delay).
    #[arg(long, default_value_t = 120.0)]
    pub confirm_timeout: f64,
    /// Messages in the POST corpus (by default `run-all`'s, so it is signed once); each size
    /// takes its first N.
    #[arg(long, default_value_t = 100_000)]
    pub corpus_count: usize,
    /// Signing threads if the corpus is not cached yet.
    #[arg(long, default_value_t = corpus::default_threads())]
    pub threads: usize,
    /// Keep the nodes' data directories and logs.
    #[arg(long)]
    pub keep_data: bool,
}

impl AnchoringArgs {
    fn commit_delay(&self, n: usize) -> u64 {
        self.commit_delay_secs
            .unwrap_or(8 + (n as u64).div_ceil(500))
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.sizes.is_empty() {
            bail!("nothing to measure: give at least one --sizes");
        }
        if let Some(n) = self.sizes.iter().find(|&&n| n == 0 || n > MAX_SIZE) {
            bail!("--sizes: {n} is not in 1..={MAX_SIZE}");
        }
        if self.sizes.iter().any(|&n| n > self.corpus_count) {
            bail!("--corpus-count must cover the largest of --sizes");
        }
        if let Some(n) = self
            .sizes
            .iter()
            .find(|&&n| self.commit_delay(n) == 0 || self.commit_delay(n) > MAX_COMMIT_DELAY_SECS)
        {
            bail!("the commit delay for {n} messages must be in 1..={MAX_COMMIT_DELAY_SECS} s");
        }
        if !(50..=10_000).contains(&self.mine_interval_ms) {
            bail!("--mine-interval-ms must be in 50..=10000");
        }
        if !(self.confirm_timeout > 0.0 && self.confirm_timeout <= 1_800.0) {
            bail!("--confirm-timeout must be in (0, 1800]");
        }
        Ok(())
    }
}

fn load_corpus(args: &AnchoringArgs, needed: usize) -> anyhow::Result<Corpus> {
    corpus::posts(args.corpus_count, needed, args.threads)
}

pub async fn run(args: &AnchoringArgs) -> anyhow::Result<()> {
    args.check()?;
    chain::require_anvil()?;
    if !args.bin.is_file() {
        bail!(
            "{}: no node binary (build it with `cargo build --release -p raleph`, or set RALEPH_BIN)",
            args.bin.display()
        );
    }
    let root = std::env::temp_dir().join(format!("raleph-anchoring-{}", std::process::id()));
    // Dropping the run stops the nodes and anvil: an interrupt ends it the same way.
    let outcome = tokio::select! {
        r = run_sizes(args, &root) => r,
        signal = interrupted() => Err(anyhow::anyhow!("interrupted ({signal})")),
    };
    if args.keep_data || outcome.is_err() {
        eprintln!("anchoring: data and logs kept in {}", root.display());
    } else {
        let _ = std::fs::remove_dir_all(&root);
    }
    outcome
}

async fn interrupted() -> &'static str {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

async fn run_sizes(args: &AnchoringArgs, root: &Path) -> anyhow::Result<()> {
    let largest = args.sizes.iter().copied().max().unwrap_or(0);
    let corpus = load_corpus(args, largest)?;
    let started = Instant::now();
    let mut reports = Vec::new();
    for &n in &args.sizes {
        let dir = root.join(format!("n{n}"));
        let report = one_size(args, &corpus, n, &dir)
            .await
            .with_context(|| format!("{n} messages (logs in {})", dir.display()))?;
        report.print();
        reports.push(report);
    }
    print!("{}", report::table(&reports));
    eprintln!(
        "anchoring: done in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn one_size(
    args: &AnchoringArgs,
    corpus: &Corpus,
    n: usize,
    dir: &Path,
) -> anyhow::Result<SizeReport> {
    let delay = args.commit_delay(n);
    eprintln!("anchoring: {n} messages, commit delay {delay} s");
    let chain = Chain::start(Duration::from_millis(args.mine_interval_ms)).await?;
    let settings = ChainSettings {
        confirmations: CONFIRMATIONS,
        poll_interval_secs: POLL_INTERVAL_SECS,
        max_messages: n,
    };
    let mut pair = Pair::start(&args.bin, dir, &chain, &settings, delay).await?;
    let result = measure(args, &chain, &pair, corpus, n, delay).await;
    let stopping = Instant::now();
    pair.stop();
    eprintln!(
        "anchoring: A and B stopped in {:.1} s",
        stopping.elapsed().as_secs_f64()
    );
    if chain.mine_errors.load(std::sync::atomic::Ordering::Relaxed) > 0 {
        eprintln!("anchoring: WARNING: some anvil_mine calls failed");
    }
    result
}

async fn measure(
    args: &AnchoringArgs,
    chain: &Chain,
    pair: &Pair,
    corpus: &Corpus,
    n: usize,
    delay: u64,
) -> anyhow::Result<SizeReport> {
    let hashes = &corpus.hashes[..n];
    let ingest_args = IngestArgs {
        url: pair.a.url.clone(),
        corpus: PathBuf::new(),
        rate: None,
        connections: args.connections,
        limit: None,
        pid: Some(pair.a.pid()),
        max_send_secs: 300.0,
        drain_timeout_secs: 300.0,
    };
    let sent = ingest::run(
        &ingest_args,
        corpus.lines[..n].to_vec(),
        &format!("{n} POST to A"),
    )
    .await?;
    let acked = (sent.accepted + sent.known) as usize;
    if acked != n || !sent.all_processed {
        bail!(
            "A acknowledged {acked} of {n} messages (first error: {}), all processed: {}",
            sent.first_error.as_deref().unwrap_or("none"),
            sent.all_processed
        );
    }
    let last_ack = sent.started_unix + sent.send_secs;
    let a_processed = sent.started_unix + sent.end_to_end_secs;
    let deadline =
        Instant::now() + Duration::from_secs(delay) + Duration::from_secs_f64(args.confirm_timeout);
    let seen = confirm::watch(chain, pair, hashes, deadline).await?;
    let mut rpc = chain.conn();
    let mut txs = Vec::new();
    let mut per_tx = Vec::new();
    for (hash, &(block, seen_at)) in &seen.txs {
        txs.push(chain.anchor_tx(&mut rpc, hash, block, seen_at).await?);
        per_tx.push(
            seen.a_tx
                .iter()
                .filter(|t| t.as_deref() == Some(hash.as_str()))
                .count(),
        );
    }
    let pushes: Vec<f64> = hashes
        .iter()
        .filter_map(|h| pair.arrivals_b.get(h))
        .collect();
    let (b_first_push, b_last_push) = min_max(&pushes).context("B pushed none of the batch")?;
    let on_b = crate::propagation::reception_times(&pair.target_b, hashes).await;
    let processed_b: Vec<f64> = on_b
        .iter()
        .flatten()
        .filter(|(status, _)| status == "processed")
        .map(|(_, t)| *t)
        .collect();
    let (b_first_reception, b_last_reception) = match min_max(&processed_b) {
        Some((a, b)) => (Some(a), Some(b)),
        None => (None, None),
    };
    Ok(SizeReport {
        messages: n,
        commit_delay_secs: delay,
        poll_interval_secs: POLL_INTERVAL_SECS,
        confirmations: CONFIRMATIONS,
        mine_interval_ms: args.mine_interval_ms,
        acks_per_sec: sent.acks_per_sec(),
        last_ack,
        a_processed,
        a_started: pair.a_started,
        txs,
        per_tx,
        a_confirmed: seen.a_anchored,
        b_confirmed: seen.b_anchored.max(b_last_push),
        b_first_push,
        b_last_push,
        b_first_reception,
        b_last_reception,
        b_processed: processed_b.len(),
        tx_mismatches: seen
            .a_tx
            .iter()
            .zip(&seen.b_tx)
            .filter(|(a, b)| a != b)
            .count(),
        a_field: seen.a_field,
        b_field: seen.b_field,
        b_peers: peers(&pair.target_b).await,
        a_proof_latency: seen.a_proof_latency,
        b_proof_latency: seen.b_proof_latency,
    })
}

fn min_max(xs: &[f64]) -> Option<(f64, f64)> {
    let min = xs.iter().copied().reduce(f64::min)?;
    let max = xs.iter().copied().reduce(f64::max)?;
    Some((min, max))
}

/// The p2p peers a node is connected to (B must have none: it learns from the chain only).
async fn peers(target: &crate::http::Target) -> Option<usize> {
    let v = Conn::new(target).get_json("/api/v0/p2p/peers").await.ok()?;
    v["peers"].as_array().map(Vec::len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: AnchoringArgs,
    }

    #[test]
    fn defaults_and_bounds() {
        let cli = Cli::parse_from(["x"]);
        assert_eq!(cli.args.sizes, [100, 1_000, 10_000]);
        assert_eq!(cli.args.commit_delay(100), 9);
        assert_eq!(cli.args.commit_delay(10_000), 28);
        assert!(cli.args.check().is_ok());
        let cli = Cli::parse_from(["x", "--sizes", "0"]);
        assert!(cli.args.check().is_err());
        let cli = Cli::parse_from(["x", "--sizes", "200000", "--corpus-count", "200000"]);
        assert!(cli.args.check().is_err());
        let cli = Cli::parse_from(["x", "--commit-delay-secs", "0"]);
        assert!(cli.args.check().is_err());
        assert_eq!(min_max(&[3.0, 1.0, 2.0]), Some((1.0, 3.0)));
        assert_eq!(min_max(&[]), None);
    }
}
