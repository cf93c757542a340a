//! When a batch becomes confirmed on each node, and in which transaction.
//!
//! "Confirmed" is read from `GET /api/v0/messages/{hash}/proof` answering 200 (the node
//! recorded an anchor of the message at the configured depth), which works whether or not the
//! message shape sets `confirmed` yet (when this was written it was always `false`; the API
//! change that sets it was under way): the report shows what the field said at the end.
//!
//! While waiting, only two probes per node are polled every 100 ms (the first and the last
//! message submitted), so that polling does not take CPU from the nodes while B ingests the
//! archive; once both nodes show them anchored and B has pushed every message on its
//! websocket, every message is checked on both nodes. Messages a first check misses (a batch
//! split in two, say) are checked again every second, and the time becomes that check's.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::Value;

use super::chain::Chain;
use super::nodes::Pair;
use crate::http::{Conn, Target};
use crate::stats::{Latencies, Summary};
use crate::ws::unix_now;

const PROBE_EVERY: Duration = Duration::from_millis(100);
const RECHECK_EVERY: Duration = Duration::from_secs(1);
/// Concurrent connections of a full check.
pub(super) const CHECKERS: usize = 4;

/// What the watch saw, in Unix seconds.
pub struct Confirmed {
    /// When every message was seen anchored on A, and on B.
    pub a_anchored: f64,
    pub b_anchored: f64,
    /// The anchoring transaction of each message on A and on B (`None`: not anchored).
    pub a_tx: Vec<Option<String>>,
    pub b_tx: Vec<Option<String>>,
    /// Latency of the proof route on A and B during the full checks (CHECKERS connections).
    pub a_proof_latency: Summary,
    pub b_proof_latency: Summary,
    /// Transactions with a `SyncEvent`: block, when first seen.
    pub txs: BTreeMap<String, (u64, f64)>,
    /// The message shape's `confirmed` on A and B for the first message, at the end.
    pub a_field: Option<bool>,
    pub b_field: Option<bool>,
}

/// Waits until every message in `hashes` is anchored on A and B and processed on B, or the
/// deadline.
pub async fn watch(
    chain: &Chain,
    pair: &Pair,
    hashes: &[String],
    deadline: Instant,
) -> anyhow::Result<Confirmed> {
    let Some((first, last)) = hashes.first().zip(hashes.last()) else {
        bail!("no messages to watch");
    };
    let probes = [first.clone(), last.clone()];
    let mut rpc = chain.conn();
    let (mut conn_a, mut conn_b) = (Conn::new(&pair.target_a), Conn::new(&pair.target_b));
    let mut txs = BTreeMap::new();
    let (mut a_probe, mut b_probe) = (None, None);
    loop {
        let now = unix_now();
        chain.poll_sync_txs(&mut rpc, &mut txs).await?;
        if a_probe.is_none() && all_anchored(&mut conn_a, &probes).await {
            a_probe = Some(now);
        }
        if b_probe.is_none() && all_anchored(&mut conn_b, &probes).await {
            b_probe = Some(now);
        }
        let pushed = pair.arrivals_b.count_of(hashes.iter().map(String::as_str));
        if a_probe.is_some() && b_probe.is_some() && pushed == hashes.len() {
            break;
        }
        if Instant::now() >= deadline {
            bail!(
                "not confirmed in time: probes anchored on A {}, on B {}; B processed {pushed} of {}; {} anchoring transaction(s) on chain",
                a_probe.is_some(),
                b_probe.is_some(),
                hashes.len(),
                txs.len()
            );
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
    let (a_anchored, a_tx, mut a_latency) =
        check_all(&pair.target_a, hashes, a_probe, deadline).await?;
    let (b_anchored, b_tx, mut b_latency) =
        check_all(&pair.target_b, hashes, b_probe, deadline).await?;
    // Late transactions (a split batch) are seen by the last look.
    chain.poll_sync_txs(&mut rpc, &mut txs).await?;
    Ok(Confirmed {
        a_anchored,
        b_anchored,
        a_tx,
        b_tx,
        a_proof_latency: a_latency.summary(),
        b_proof_latency: b_latency.summary(),
        txs,
        a_field: confirmed_field(&mut conn_a, first).await,
        b_field: confirmed_field(&mut conn_b, first).await,
    })
}

async fn all_anchored(conn: &mut Conn, hashes: &[String]) -> bool {
    for hash in hashes {
        match conn.get(&format!("/api/v0/messages/{hash}/proof")).await {
            Ok(r) if r.status == 200 => {}
            _ => return false,
        }
    }
    true
}

/// Checks every message; those not anchored yet are checked again every second until the
/// deadline. The time: the probes' when the first check finds them all, else the start of
/// the check that found the last ones.
async fn check_all(
    target: &Target,
    hashes: &[String],
    probed: Option<f64>,
    deadline: Instant,
) -> anyhow::Result<(f64, Vec<Option<String>>, Latencies)> {
    let mut txs: Vec<Option<String>> = vec![None; hashes.len()];
    let mut at = probed.unwrap_or_else(unix_now);
    let mut latencies = Latencies::with_capacity(hashes.len());
    loop {
        let missing: Vec<usize> = (0..hashes.len()).filter(|&i| txs[i].is_none()).collect();
        if missing.is_empty() {
            return Ok((at, txs, latencies));
        }
        if Instant::now() >= deadline {
            bail!(
                "{} of {} messages never anchored on {}",
                missing.len(),
                hashes.len(),
                target.host
            );
        }
        if missing.len() < hashes.len() {
            tokio::time::sleep(RECHECK_EVERY).await;
            at = unix_now();
        }
        let subset: Vec<String> = missing.iter().map(|&i| hashes[i].clone()).collect();
        let (found, took) = anchoring_txs(target, &subset).await;
        latencies.merge(took);
        for (k, tx) in found.into_iter().enumerate() {
            txs[missing[k]] = tx;
        }
    }
}

/// The first anchor's transaction of each hash on a node (`None`: no proof), and how long
/// each request took.
async fn anchoring_txs(target: &Target, hashes: &[String]) -> (Vec<Option<String>>, Latencies) {
    let hashes = Arc::new(hashes.to_vec());
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CHECKERS {
        let (target, hashes, next) = (target.clone(), hashes.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(&target);
            let mut out = Vec::new();
            let mut took = Latencies::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= hashes.len() {
                    break;
                }
                let started = Instant::now();
                let tx = match conn
                    .get_json(&format!("/api/v0/messages/{}/proof", hashes[i]))
                    .await
                {
                    Ok(v) => v["anchors"][0]["tx_hash"].as_str().map(str::to_owned),
                    Err(_) => None,
                };
                took.record(started.elapsed());
                out.push((i, tx));
            }
            (out, took)
        }));
    }
    let mut all = vec![None; hashes.len()];
    let mut latencies = Latencies::default();
    for t in tasks {
        if let Ok((part, took)) = t.await {
            latencies.merge(took);
            for (i, tx) in part {
                all[i] = tx;
            }
        }
    }
    (all, latencies)
}

/// `message.confirmed` of `GET /api/v0/messages/{hash}`.
async fn confirmed_field(conn: &mut Conn, hash: &str) -> Option<bool> {
    let v: Value = conn
        .get_json(&format!("/api/v0/messages/{hash}"))
        .await
        .ok()?;
    v["message"]["confirmed"].as_bool()
}
