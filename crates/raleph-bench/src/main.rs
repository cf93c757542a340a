//! `raleph-bench`: a load generator and benchmark suite for a raleph node.
//!
//! - `corpus`: pre-sign N messages once (real ETH signatures, deterministic keys) into a
//!   cached file, one request body per line;
//! - `ingest`: replay a corpus over keep-alive HTTP connections and wait until the node has
//!   processed everything;
//! - `query`: latency of each kind of query on one client, then throughput on K connections;
//! - `run-all`: start a node on a loopback port and do all of the above;
//! - `compute`: WebAssembly programs deployed on a fresh node: first answers, warm latency,
//!   throughput, memory per loaded program;
//! - `propagation`: three nodes on loopback, messages posted to A at a fixed rate, latency
//!   until C (and B) processed them;
//! - `anchoring`: anvil and two nodes (a packer, a reader without peers), batches of N
//!   messages anchored on the chain: time to confirmed on both, gas per message, reader rate.
//!
//! Every run is bounded in count and time, and only sends to loopback addresses.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod anchoring;
mod compute;
mod corpus;
mod http;
mod ingest;
mod procfs;
mod propagation;
mod query;
mod runall;
mod stats;
mod ws;

#[derive(Parser)]
#[command(
    name = "raleph-bench",
    version,
    about = "Load generator and benchmarks for a raleph node"
)]
struct Cli {
    /// Worker threads of this client's async runtime (the node shares the machine's cores).
    #[arg(long, global = true, default_value_t = 1)]
    client_threads: usize,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Pre-sign a corpus of messages (reused when it exists with the same parameters).
    Corpus(CorpusArgs),
    /// Replay a corpus through POST /api/v0/messages and wait until it is processed.
    Ingest(ingest::IngestArgs),
    /// Query latency per kind (one client) and throughput (K connections).
    Query(query::QueryArgs),
    /// Start a node, ingest POST and AGGREGATE corpora and a large store, query it, stop.
    RunAll(runall::RunAllArgs),
    /// Start three nodes (A–B–C) on loopback, post to A at fixed rates, measure how long
    /// messages take to be processed on C and B; stop.
    Propagation(propagation::PropagationArgs),
    /// Start a node, deploy a WebAssembly program N times, measure first answers, warm
    /// latency and throughput; stop.
    Compute(compute::ComputeArgs),
    /// Start anvil, a packing node and a reading node, anchor batches of N messages, measure
    /// time to confirmed, gas per message and the reader's rate; stop.
    Anchoring(anchoring::AnchoringArgs),
}

#[derive(clap::Args)]
struct CorpusArgs {
    #[arg(long, value_enum, default_value = "post")]
    kind: corpus::Kind,
    #[arg(long, default_value_t = 10_000)]
    count: usize,
    #[arg(long, default_value_t = 1_000)]
    addresses: usize,
    #[arg(long, default_value_t = 50)]
    channels: usize,
    /// Seed of the keys and contents.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output file (default: a file named after the parameters under
    /// ${RALEPH_CACHE_DIR:-~/.cache/raleph}/bench/).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Signing threads.
    #[arg(long, default_value_t = corpus::default_threads())]
    threads: usize,
    /// Sign again even when a matching corpus exists.
    #[arg(long)]
    force: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Cmd::Corpus(a) = &cli.command {
        let params = corpus::Params {
            kind: a.kind,
            count: a.count,
            addresses: a.addresses,
            channels: a.channels,
            seed: a.seed,
        };
        let path = a.out.clone().unwrap_or_else(|| params.default_path());
        if a.force || !corpus::is_cached(&params, &path) {
            corpus::generate(&params, &path, a.threads)?;
        } else {
            eprintln!("corpus: {} is up to date", path.display());
        }
        println!("{}", path.display());
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.client_threads.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match &cli.command {
            Cmd::Corpus(_) => Ok(()),
            Cmd::Ingest(args) => {
                let lines = corpus::load(&args.corpus)?;
                let label = args
                    .corpus
                    .file_name()
                    .map_or("corpus".into(), |n| n.to_string_lossy().into_owned());
                ingest::run(args, lines, &label).await?.print();
                Ok(())
            }
            Cmd::Query(args) => {
                query::run(args).await?.print();
                Ok(())
            }
            Cmd::RunAll(args) => runall::run(args).await,
            Cmd::Propagation(args) => propagation::run(args).await,
            Cmd::Compute(args) => compute::run(args).await,
            Cmd::Anchoring(args) => anchoring::run(args).await,
        }
    })
}
