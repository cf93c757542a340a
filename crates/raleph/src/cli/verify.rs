//! `raleph message verify`: a message's anchoring checked against a chain RPC.

use anyhow::Context;

use super::output::{self, out};
use super::settings::Settings;

/// `raleph message verify`: every anchor of the message with a Merkle root is checked on
/// chain; fails unless at least one holds.
pub async fn run(
    settings: &Settings,
    item_hash: &str,
    rpc: &str,
    contract: Option<&str>,
) -> anyhow::Result<()> {
    let json = settings.json;
    let api = settings.api.value.as_str();
    output::item_hash(item_hash)?;
    use raleph_chain::verify::{Claim, check};
    let contract = contract
        .map(|c| c.parse::<raleph_chain::Address>())
        .transpose()
        .context("--contract is not an address")?;
    let url = format!(
        "{}/api/v0/messages/{item_hash}/proof",
        api.trim_end_matches('/')
    );
    let response = reqwest::get(&url).await.map_err(|e| {
        if e.is_connect() {
            settings.explain(raleph_sdk::ClientError::Unreachable {
                url: api.to_owned(),
                source: e,
            })
        } else {
            anyhow::Error::new(e).context(format!("ask {api} for the proof"))
        }
    })?;
    let status = response.status();
    if !status.is_success() {
        anyhow::bail!(
            "the node answered {status}: {}",
            response.text().await.unwrap_or_default()
        );
    }
    let proofs: crate::anchoring::proof::Proofs =
        response.json().await.context("read the node's proof")?;
    let mut results = Vec::new();
    let mut holds = false;
    for anchor in &proofs.anchors {
        let Some(root) = &anchor.merkle_root else {
            results.push(serde_json::json!({
                "chain": anchor.chain, "tx_hash": anchor.tx_hash,
                "verified": false, "reason": "the anchor carries no Merkle root",
            }));
            continue;
        };
        let parsed = (|| -> anyhow::Result<_> {
            let path = anchor
                .proof
                .iter()
                .map(|h| h.parse())
                .collect::<Result<Vec<raleph_chain::B256>, _>>()?;
            Ok((
                anchor
                    .chain
                    .parse::<raleph_message::Chain>()
                    .map_err(anyhow::Error::msg)?,
                anchor.tx_hash.parse::<raleph_chain::B256>()?,
                root.parse::<raleph_chain::B256>()?,
                path,
            ))
        })();
        let (chain, tx_hash, merkle_root, path) =
            parsed.context("the node's proof is malformed")?;
        let claim = Claim {
            chain,
            item_hash,
            tx_hash,
            log_index: anchor.log_index,
            archive: anchor.archive.as_deref().unwrap_or_default(),
            merkle_root,
            proof: &path,
        };
        match check(rpc, &claim, contract).await {
            Ok(verified) => {
                holds = true;
                if !json {
                    out!(
                        "verified: {item_hash} is anchored on {} at height {} (block {:#x}, tx {}), {} confirmation(s)",
                        anchor.chain,
                        verified.height,
                        verified.block_hash,
                        anchor.tx_hash,
                        verified.confirmations
                    );
                }
                results.push(serde_json::json!({
                    "chain": anchor.chain, "tx_hash": anchor.tx_hash, "verified": true,
                    "height": verified.height,
                    "block_hash": format!("{:#x}", verified.block_hash),
                    "contract": format!("{:#x}", verified.contract),
                    "emitter": format!("{:#x}", verified.emitter),
                    "confirmations": verified.confirmations,
                }));
            }
            Err(e) => {
                if !json {
                    out!("not verified: {} tx {}: {e}", anchor.chain, anchor.tx_hash);
                }
                results.push(serde_json::json!({
                    "chain": anchor.chain, "tx_hash": anchor.tx_hash,
                    "verified": false, "reason": e.to_string(),
                }));
            }
        }
    }
    if json {
        out!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "item_hash": item_hash, "verified": holds, "anchors": results,
            }))?
        );
    }
    anyhow::ensure!(holds, "no anchor of {item_hash} could be verified");
    Ok(())
}
