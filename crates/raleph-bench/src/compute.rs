//! `compute`: WebAssembly programs on a fresh node. Deploys the same component as several
//! programs with the node's own CLI, then measures the first answer of each (load from the
//! compiled cache), sequential request latency on one keep-alive connection, throughput on K
//! connections, and the node's memory per loaded program.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::http::{Conn, Target};
use crate::procfs;
use crate::runall::Node;
use crate::stats::{Latencies, thousands};

#[derive(Debug, Clone, clap::Args)]
pub struct ComputeArgs {
    /// The node binary (built with `cargo build --release -p raleph`).
    #[arg(
        long,
        env = "RALEPH_BIN",
        default_value = "/root/.cache/raleph/target/release/raleph"
    )]
    pub bin: PathBuf,
    /// A `wasi:http/proxy` component answering `GET /` (e.g. the test guest:
    /// `cargo build --release --target wasm32-wasip2 --manifest-path crates/raleph-compute/guest/Cargo.toml`).
    #[arg(long)]
    pub wasm: PathBuf,
    /// Programs deployed (the same code, different variables).
    #[arg(long, default_value_t = 20)]
    pub programs: usize,
    /// Requests on the sequential connection.
    #[arg(long, default_value_t = 2000)]
    pub requests: usize,
    /// Connections in the throughput phase.
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// Seconds of the throughput phase.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
}

pub async fn run(args: &ComputeArgs) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("raleph-bench-compute-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = run_in(args, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run_in(args: &ComputeArgs, dir: &std::path::Path) -> anyhow::Result<()> {
    let node = Node::start(&args.bin, &dir.join("data"), &dir.join("node.log"), &[])?;
    let pid = node.pid();
    let key = dir.join("key.hex");
    let signer = raleph_crypto::EthSigner::new_random();
    std::fs::write(&key, hex::encode(signer.secret_bytes()))?;
    let rss_before = procfs::memory_kib(pid).map_or(0, |m| m.0);

    // Deploy: upload, STORE, PROGRAM, processed (the CLI, end to end).
    let mut deploy = Latencies::with_capacity(args.programs);
    let mut programs = Vec::with_capacity(args.programs);
    for i in 0..args.programs {
        let started = Instant::now();
        let output = Command::new(&args.bin)
            .args(["program", "deploy"])
            .arg(&args.wasm)
            .args(["--vcpus", "8", "--seconds", "5", "--memory", "64"])
            .arg("--env")
            .arg(format!("INDEX={i}"))
            .arg("--key")
            .arg(&key)
            .args(["--api", &node.url])
            .output()
            .context("run raleph program deploy")?;
        if !output.status.success() {
            bail!("deploy failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        deploy.record(started.elapsed());
        let stdout = String::from_utf8_lossy(&output.stdout);
        programs.push(
            stdout
                .split_whitespace()
                .next()
                .context("no hash printed")?
                .to_owned(),
        );
    }
    let target = Target::parse(&node.url)?;
    let mut conn = Conn::new(&target);
    // The first program right away: compiled ahead, or compiled by this very request.
    let started = Instant::now();
    let first = conn.get(&format!("/vm/{}/", programs[0])).await?;
    let first_after_deploy = started.elapsed();
    if first.status != 200 {
        bail!("the program answered {}", first.status);
    }
    // The others, once compiled: each first answer loads the compiled code.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut cold = Latencies::with_capacity(args.programs);
    for program in &programs[1..] {
        let started = Instant::now();
        let answer = conn.get(&format!("/vm/{program}/")).await?;
        cold.record(started.elapsed());
        if answer.status != 200 {
            bail!("the program answered {}", answer.status);
        }
    }
    let rss_loaded = procfs::memory_kib(pid).map_or(0, |m| m.0);

    // Warm: one keep-alive connection, one program.
    let mut warm = Latencies::with_capacity(args.requests);
    let path = format!("/vm/{}/hello", programs[0]);
    for _ in 0..args.requests {
        let started = Instant::now();
        let answer = conn.get(&path).await?;
        warm.record(started.elapsed());
        if answer.status != 200 {
            bail!("the program answered {}", answer.status);
        }
    }

    // Throughput: K connections, spread over the programs.
    let deadline = Instant::now() + Duration::from_secs_f64(args.duration);
    let mut tasks = Vec::new();
    for c in 0..args.connections {
        let target = target.clone();
        let path = format!("/vm/{}/hello", programs[c % programs.len()]);
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(&target);
            let mut done = 0u64;
            let mut failed = 0u64;
            while Instant::now() < deadline {
                match conn.get(&path).await {
                    Ok(r) if r.status == 200 => done += 1,
                    _ => failed += 1,
                }
            }
            (done, failed)
        }));
    }
    let started = Instant::now();
    let mut done = 0;
    let mut failed = 0;
    for task in tasks {
        let (d, f) = task.await?;
        done += d;
        failed += f;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let rss_after = procfs::memory_kib(pid).map_or(0, |m| m.0);

    let deploy = deploy.summary();
    let cold = cold.summary();
    let warm = warm.summary();
    println!(
        "compute: {} programs of {} ({} bytes)",
        args.programs,
        args.wasm.display(),
        std::fs::metadata(&args.wasm)?.len()
    );
    println!(
        "  deploy (CLI: upload + STORE + PROGRAM, processed)  p50 {:.1} ms  p99 {:.1} ms",
        deploy.p50, deploy.p99
    );
    println!(
        "  first answer right after deploy                    {:.2} ms",
        first_after_deploy.as_secs_f64() * 1e3
    );
    println!(
        "  first answer of a compiled program (load + run)    p50 {:.2} ms  p99 {:.2} ms",
        cold.p50, cold.p99
    );
    println!(
        "  warm request, 1 connection                         p50 {:.3} ms  p99 {:.3} ms",
        warm.p50, warm.p99
    );
    println!(
        "  throughput, {} connections, {:.0} s                {} req/s ({} failed)",
        args.connections,
        args.duration,
        thousands(done as f64 / elapsed),
        failed
    );
    println!(
        "  node RSS: {} MiB before, {} MiB with {} programs loaded ({:.0} KiB each), {} MiB after the load",
        rss_before / 1024,
        rss_loaded / 1024,
        args.programs,
        (rss_loaded.saturating_sub(rss_before)) as f64 / args.programs.max(1) as f64,
        rss_after / 1024
    );
    drop(node);
    Ok(())
}
