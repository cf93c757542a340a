//! The chain side of the anchoring benchmark: a private anvil with the AlephSync contract
//! (raleph-chain's `testing` feature), a block mined on a timer, and the anchoring
//! transactions read back over JSON-RPC (`SyncEvent` logs, receipts, calldata).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use hyper::Method;
use raleph_chain::testing::Anvil;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::http::{Conn, Target};
use crate::ws::unix_now;

/// anvil's dev accounts: 0 deploys the contract, 1 is the packer's key.
const DEPLOYER: usize = 0;
const PACKER: usize = 1;

/// A running anvil with the sync contract, and blocks mined on a timer; anvil is killed when
/// this is dropped (an error or an interrupt included).
pub struct Chain {
    /// Held for its lifetime: anvil is killed when the last reference is dropped.
    _anvil: Arc<Anvil>,
    pub url: String,
    rpc: Target,
    /// The sync contract, `0x…`.
    pub contract: String,
    /// The packer's address, `0x…` (the only authorized emitter).
    pub packer: String,
    /// The packer's private key, for the node's key file (never printed).
    pub packer_key: String,
    miner: Option<JoinHandle<()>>,
    pub mined: Arc<AtomicU64>,
    pub mine_errors: Arc<AtomicU64>,
}

/// One anchoring transaction, as the chain shows it.
#[derive(Debug, Clone)]
pub struct AnchorTx {
    pub tx_hash: String,
    pub block: u64,
    /// When this benchmark first saw its `SyncEvent` log (Unix seconds, polled every 100 ms).
    pub seen_at: f64,
    pub gas_used: u64,
    pub gas_price_wei: u128,
    pub calldata_bytes: usize,
    pub succeeded: bool,
}

impl Chain {
    /// Starts anvil from `$RALEPH_ANVIL`, deploys AlephSync, and mines a block every
    /// `mine_every` (anvil also mines each transaction as it arrives: the timer gives the
    /// confirmation depth).
    pub async fn start(mine_every: Duration) -> anyhow::Result<Chain> {
        require_anvil()?;
        // The `testing` helpers are written for tests and panic on failure (their message is
        // printed by the panic hook): turned into errors here.
        let anvil = std::panic::catch_unwind(|| Anvil::start_or_skip(&[]))
            .map_err(|_| anyhow!("anvil did not start (see the message above)"))?
            .context("anvil did not start")?;
        let anvil = Arc::new(anvil);
        let deployer = anvil.clone();
        let contract = tokio::spawn(async move { deployer.deploy(DEPLOYER).await })
            .await
            .map_err(|_| anyhow!("deploying AlephSync on anvil failed (see the message above)"))?;
        let url = anvil.url();
        let mut chain = Chain {
            rpc: Target::parse(&url)?,
            contract: format!("{contract:#x}"),
            packer: format!("{:#x}", anvil.key(PACKER).address()),
            packer_key: anvil.key_hex(PACKER).to_owned(),
            url,
            _anvil: anvil,
            miner: None,
            mined: Arc::new(AtomicU64::new(0)),
            mine_errors: Arc::new(AtomicU64::new(0)),
        };
        chain.miner = Some(chain.spawn_miner(mine_every));
        Ok(chain)
    }

    fn spawn_miner(&self, every: Duration) -> JoinHandle<()> {
        let (target, mined, errors) = (
            self.rpc.clone(),
            self.mined.clone(),
            self.mine_errors.clone(),
        );
        tokio::spawn(async move {
            let mut conn = Conn::new(&target);
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match rpc(&mut conn, "anvil_mine", json!(["0x1"])).await {
                    Ok(_) => mined.fetch_add(1, Ordering::Relaxed),
                    Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                };
            }
        })
    }

    pub fn conn(&self) -> Conn {
        Conn::new(&self.rpc)
    }

    /// The transactions that emitted a `SyncEvent` on the contract so far, with the block
    /// each is in; those not in `seen` yet are added with the time now.
    pub async fn poll_sync_txs(
        &self,
        conn: &mut Conn,
        seen: &mut BTreeMap<String, (u64, f64)>,
    ) -> anyhow::Result<()> {
        let topic = format!("{:#x}", raleph_chain::events::SYNC_EVENT_TOPIC);
        let logs = rpc(
            conn,
            "eth_getLogs",
            json!([{"address": self.contract, "fromBlock": "0x0", "toBlock": "latest", "topics": [topic]}]),
        )
        .await?;
        let now = unix_now();
        for log in logs.as_array().context("eth_getLogs: not a list")? {
            let tx = log["transactionHash"]
                .as_str()
                .context("a log without transactionHash")?;
            let block = hex_u64(&log["blockNumber"]).context("a log without blockNumber")?;
            seen.entry(tx.to_owned()).or_insert((block, now));
        }
        Ok(())
    }

    /// The receipt and calldata of an anchoring transaction.
    pub async fn anchor_tx(
        &self,
        conn: &mut Conn,
        tx_hash: &str,
        block: u64,
        seen_at: f64,
    ) -> anyhow::Result<AnchorTx> {
        let receipt = rpc(conn, "eth_getTransactionReceipt", json!([tx_hash])).await?;
        let tx = rpc(conn, "eth_getTransactionByHash", json!([tx_hash])).await?;
        let input = tx["input"].as_str().unwrap_or("0x");
        Ok(AnchorTx {
            tx_hash: tx_hash.to_owned(),
            block,
            seen_at,
            gas_used: hex_u64(&receipt["gasUsed"]).context("a receipt without gasUsed")?,
            gas_price_wei: hex_u128(&receipt["effectiveGasPrice"]).unwrap_or(0),
            calldata_bytes: input.len().saturating_sub(2) / 2,
            succeeded: receipt["status"] == "0x1",
        })
    }
}

impl Drop for Chain {
    fn drop(&mut self) {
        // The miner holds no reference to anvil; `Anvil` kills its process when this last
        // reference to it is dropped, right after.
        if let Some(miner) = self.miner.take() {
            miner.abort();
        }
    }
}

/// Fails, saying how to set it, unless `$RALEPH_ANVIL` names anvil (checked before anything
/// is started, so that a run does not load its corpus for nothing).
pub fn require_anvil() -> anyhow::Result<()> {
    if std::env::var_os("RALEPH_ANVIL").is_none_or(|p| p.is_empty()) {
        bail!("RALEPH_ANVIL is unset: export RALEPH_ANVIL=\"$(scripts/evm-tools.sh | tail -n 1)\"");
    }
    Ok(())
}

/// One JSON-RPC call; an RPC error is an error.
pub async fn rpc(conn: &mut Conn, method: &str, params: Value) -> anyhow::Result<Value> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let r = conn
        .request(Method::POST, "/", Some(Bytes::from(body.to_string())))
        .await
        .with_context(|| method.to_owned())?;
    if r.status != 200 {
        bail!(
            "{method}: HTTP {}: {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
    }
    let mut v: Value =
        serde_json::from_slice(&r.body).with_context(|| format!("{method}: not JSON"))?;
    if let Some(e) = v.get("error") {
        bail!("{method}: {e}");
    }
    Ok(v["result"].take())
}

fn hex_u64(v: &Value) -> Option<u64> {
    u64::from_str_radix(v.as_str()?.strip_prefix("0x")?, 16).ok()
}

fn hex_u128(v: &Value) -> Option<u128> {
    u128::from_str_radix(v.as_str()?.strip_prefix("0x")?, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_quantities() {
        assert_eq!(hex_u64(&json!("0x1a")), Some(26));
        assert_eq!(hex_u64(&json!("1a")), None);
        assert_eq!(hex_u64(&json!(null)), None);
        assert_eq!(hex_u128(&json!("0x3b9aca00")), Some(1_000_000_000));
    }
}
