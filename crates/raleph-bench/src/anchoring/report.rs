//! What one batch size measured, and the table of all of them.

use std::fmt::Write as _;

use super::chain::AnchorTx;
use crate::stats::{Summary, thousands};

/// One batch size's figures; times are Unix seconds on the machine's one clock.
pub struct SizeReport {
    pub messages: usize,
    pub commit_delay_secs: u64,
    pub poll_interval_secs: u64,
    pub confirmations: u64,
    pub mine_interval_ms: u64,
    /// Acknowledgements per second while submitting to A.
    pub acks_per_sec: f64,
    pub last_ack: f64,
    /// When A had processed every message (nothing pending).
    pub a_processed: f64,
    pub a_started: f64,
    pub txs: Vec<AnchorTx>,
    /// Messages anchored by each transaction in `txs`, per A's proofs.
    pub per_tx: Vec<usize>,
    /// Every message anchored on A; on B, anchored and processed.
    pub a_confirmed: f64,
    pub b_confirmed: f64,
    /// B's websocket pushes of the batch: first and last.
    pub b_first_push: f64,
    pub b_last_push: f64,
    /// B's `reception_time` of the batch (stamped by its writer as it processes each):
    /// earliest and latest, and how many B holds processed.
    pub b_first_reception: Option<f64>,
    pub b_last_reception: Option<f64>,
    pub b_processed: usize,
    /// Proofs on A and B naming another transaction than A's for the same message.
    pub tx_mismatches: usize,
    /// The message shape's `confirmed` on A and B at the end (first message).
    pub a_field: Option<bool>,
    pub b_field: Option<bool>,
    pub b_peers: Option<usize>,
    /// `GET …/proof` latency on A and B while every message was checked.
    pub a_proof_latency: Summary,
    pub b_proof_latency: Summary,
}

impl SizeReport {
    /// The first anchoring transaction's time (seen in a block by this benchmark).
    pub fn tx_mined(&self) -> Option<f64> {
        self.txs.iter().map(|t| t.seen_at).reduce(f64::min)
    }

    pub fn gas_total(&self) -> u64 {
        self.txs.iter().map(|t| t.gas_used).sum()
    }

    /// B's reader rate while it processed the archive: its first reception to its last push.
    pub fn b_ingest_rate(&self) -> Option<f64> {
        let first = self.b_first_reception?.min(self.b_first_push);
        rate(self.messages, self.b_last_push - first)
    }

    /// From the anchoring transaction in a block to the last message processed on B: the
    /// confirmation block, B's poll, the archive fetch, and B's processing.
    pub fn b_from_chain_rate(&self) -> Option<f64> {
        rate(self.messages, self.b_last_push - self.tx_mined()?)
    }

    pub fn print(&self) {
        let r = self;
        println!("## {} messages", thousands(r.messages as f64));
        println!(
            "delays: packer commit_delay_secs = {} (rounds at A's start and every {} s after), poll_interval_secs = {}, confirmations = {}, a block mined every {} ms (anvil also mines each transaction on arrival)",
            r.commit_delay_secs,
            r.commit_delay_secs,
            r.poll_interval_secs,
            r.confirmations,
            r.mine_interval_ms
        );
        println!(
            "submitted to A at {} acks/s; A processed all {:.2} s after the last ack, {:.1} s after A started",
            thousands(r.acks_per_sec),
            r.a_processed - r.last_ack,
            r.a_processed - r.a_started
        );
        for (t, n) in r.txs.iter().zip(&r.per_tx) {
            println!(
                "tx {} block {}: {} messages, gas {} ({:.1} per message), calldata {} bytes, {} wei per gas, {}; seen {:.2} s after the last ack",
                t.tx_hash,
                t.block,
                thousands(*n as f64),
                thousands(t.gas_used as f64),
                t.gas_used as f64 / (*n).max(1) as f64,
                t.calldata_bytes,
                t.gas_price_wei,
                if t.succeeded { "succeeded" } else { "REVERTED" },
                t.seen_at - r.last_ack
            );
        }
        if r.txs.len() != 1 {
            println!(
                "WARNING: {} anchoring transactions for one batch of {} (raise --commit-delay-secs if A was still processing when the packer's round came)",
                r.txs.len(),
                r.messages
            );
        }
        if let Some(mined) = r.tx_mined()
            && mined < r.a_processed
        {
            println!(
                "WARNING: a transaction was mined before A had processed every message: the packer's round came during the submission"
            );
        }
        println!(
            "confirmed (proof route 200): A {:.2} s, B {:.2} s after the last ack; B processed its last message {:.2} s after it",
            r.a_confirmed - r.last_ack,
            r.b_confirmed - r.last_ack,
            r.b_last_push - r.last_ack
        );
        if let Some(mined) = r.tx_mined() {
            println!(
                "from the transaction in a block: A confirmed +{:.2} s; B first processed +{:.2} s, last processed +{:.2} s, confirmed +{:.2} s",
                r.a_confirmed - mined,
                r.b_first_push - mined,
                r.b_last_push - mined,
                r.b_confirmed - mined
            );
        }
        println!(
            "B processed {} of {} (reception_time {} → {}); reader rate {} msg/s (first reception → last push), {} msg/s from the transaction in a block",
            r.b_processed,
            r.messages,
            opt(r.b_first_reception.map(|t| t - r.last_ack), "s"),
            opt(r.b_last_reception.map(|t| t - r.last_ack), "s"),
            r.b_ingest_rate().map_or("-".into(), thousands),
            r.b_from_chain_rate().map_or("-".into(), thousands),
        );
        println!(
            "message shape `confirmed` at the end: A {:?}, B {:?}; proofs naming another transaction on B than on A: {}; B's p2p peers: {}",
            r.a_field,
            r.b_field,
            r.tx_mismatches,
            r.b_peers.map_or("?".into(), |p| p.to_string())
        );
        println!(
            "proof route during the full check ({} connections): A p50 {:.1} / p99 {:.1} / max {:.1} ms, B p50 {:.1} / p99 {:.1} / max {:.1} ms",
            super::confirm::CHECKERS,
            r.a_proof_latency.p50,
            r.a_proof_latency.p99,
            r.a_proof_latency.max,
            r.b_proof_latency.p50,
            r.b_proof_latency.p99,
            r.b_proof_latency.max
        );
        println!();
    }
}

fn rate(messages: usize, secs: f64) -> Option<f64> {
    (secs > 0.0).then(|| messages as f64 / secs)
}

fn opt(x: Option<f64>, unit: &str) -> String {
    x.map_or("-".into(), |v| format!("{v:+.2} {unit}"))
}

/// The summary table, one row per batch size.
pub fn table(reports: &[SizeReport]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# summary");
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| messages | commit delay s | txs | messages / tx | gas / tx | gas / message | last ack → tx mined s | tx mined → confirmed A / B s | last ack → confirmed A / B s | B reader msg/s (first reception → last processed) | B msg/s from tx mined | proof route p50 / p99 ms (A) |"
    );
    let _ = writeln!(
        out,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in reports {
        let mined = r.tx_mined();
        let since = |t: f64| mined.map_or("-".into(), |m| format!("{:.2}", t - m));
        let txs = r.txs.len().max(1) as f64;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {:.1} | {} | {} / {} | {:.2} / {:.2} | {} | {} | {:.1} / {:.1} |",
            thousands(r.messages as f64),
            r.commit_delay_secs,
            r.txs.len(),
            thousands(r.per_tx.iter().sum::<usize>() as f64 / txs),
            thousands(r.gas_total() as f64 / txs),
            r.gas_total() as f64 / r.messages.max(1) as f64,
            mined.map_or("-".into(), |m| format!("{:.2}", m - r.last_ack)),
            since(r.a_confirmed),
            since(r.b_confirmed),
            r.a_confirmed - r.last_ack,
            r.b_confirmed - r.last_ack,
            r.b_ingest_rate().map_or("-".into(), thousands),
            r.b_from_chain_rate().map_or("-".into(), thousands),
            r.a_proof_latency.p50,
            r.a_proof_latency.p99,
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "confirmed: GET /api/v0/messages/{{hash}}/proof answers 200 for every message (B: and B processed it). \"tx mined\": this benchmark saw the SyncEvent log (polled every 100 ms). B reader: B's first reception_time of the batch → B's websocket push of its last message."
    );
    out
}
