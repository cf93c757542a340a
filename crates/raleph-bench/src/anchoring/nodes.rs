//! The two nodes of the anchoring benchmark: A packs on the chain, B only reads it and
//! fetches archives from A's raw file route (as from a gateway). They have no p2p link: B
//! learns A's messages only from the chain.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use super::chain::Chain;
use crate::http::Target;
use crate::runall::Node;
use crate::ws::{self, Arrivals};

/// The chain's settings both nodes share.
pub struct ChainSettings {
    /// Blocks on top of the anchoring block before a reader takes it.
    pub confirmations: u64,
    pub poll_interval_secs: u64,
    /// Most messages in one archive (the packer's `max_messages` and both readers' limit).
    pub max_messages: usize,
}

/// The packer's settings (A only).
pub struct Packing<'a> {
    pub key_file: &'a Path,
    pub commit_delay_secs: u64,
}

/// The `[[anchoring.evm]]` table for `chain`, with `[anchoring.evm.packing]` when packing.
pub fn chain_table(chain: &Chain, s: &ChainSettings, packing: Option<&Packing<'_>>) -> String {
    // The readers' archive limit is raised with the batch size: the default (10 000) is the
    // reference's, and a larger batch would be refused by both readers.
    let limit = s
        .max_messages
        .max(raleph_chain::payload::DEFAULT_MAX_ARCHIVE_MESSAGES);
    let mut table = format!(
        "[[anchoring.evm]]\nchain = \"ETH\"\nrpc_url = \"{}\"\nsync_contract = \"{}\"\n\
         authorized_emitters = [\"{}\"]\nconfirmations = {}\npoll_interval_secs = {}\n\
         [anchoring.evm.limits]\nmax_archive_messages = {limit}\n",
        chain.url, chain.contract, chain.packer, s.confirmations, s.poll_interval_secs,
    );
    if let Some(p) = packing {
        table.push_str(&format!(
            "[anchoring.evm.packing]\nkey_file = \"{}\"\ncommit_delay_secs = {}\nmax_messages = {}\n",
            p.key_file.display(),
            p.commit_delay_secs,
            s.max_messages
        ));
    }
    table
}

/// B's `[anchoring]` table: A's raw file route as its only archive source.
pub fn gateway_table(a_url: &str) -> String {
    format!(
        "[anchoring]\narchive_gateways = [\"{}/api/v0/storage/raw/\"]\n",
        a_url.trim_end_matches('/')
    )
}

/// A and B running, with B's websocket recording when each message is processed there.
pub struct Pair {
    pub a: Node,
    pub b: Node,
    pub target_a: Target,
    pub target_b: Target,
    pub arrivals_b: Arc<Arrivals>,
    socket_b: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// When A was started (Unix seconds): its packer's first round is then, the next
    /// `commit_delay_secs` later.
    pub a_started: f64,
}

impl Pair {
    pub async fn start(
        bin: &Path,
        dir: &Path,
        chain: &Chain,
        settings: &ChainSettings,
        commit_delay_secs: u64,
    ) -> anyhow::Result<Pair> {
        std::fs::create_dir_all(dir)?;
        let key_file = dir.join("packer.key");
        std::fs::write(&key_file, &chain.packer_key).context("writing the packer's key file")?;
        let packing = Packing {
            key_file: &key_file,
            commit_delay_secs,
        };
        let a_config = dir.join("a.toml");
        std::fs::write(&a_config, chain_table(chain, settings, Some(&packing)))?;
        let a_started = ws::unix_now();
        let a = start_node(bin, dir, "a", &a_config)?;
        let b_config = dir.join("b.toml");
        std::fs::write(
            &b_config,
            format!(
                "{}{}",
                gateway_table(&a.url),
                chain_table(chain, settings, None)
            ),
        )?;
        let b = start_node(bin, dir, "b", &b_config)?;
        eprintln!(
            "anchoring: node A (packer, pid {}) {}; node B (reader, pid {}) {}",
            a.pid(),
            a.url,
            b.pid(),
            b.url
        );
        let (target_a, target_b) = (Target::parse(&a.url)?, Target::parse(&b.url)?);
        let arrivals_b = Arc::new(Arrivals::default());
        let socket_b = ws::subscribe(&target_b, "/api/ws0/messages?history=0", arrivals_b.clone())
            .await
            .context("websocket on B")?;
        Ok(Pair {
            a,
            b,
            target_a,
            target_b,
            arrivals_b,
            socket_b,
            a_started,
        })
    }

    pub fn stop(&mut self) {
        self.socket_b.abort();
        self.a.stop();
        self.b.stop();
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        self.socket_b.abort();
    }
}

fn start_node(bin: &Path, dir: &Path, name: &str, config: &Path) -> anyhow::Result<Node> {
    Node::start(
        bin,
        &dir.join(name),
        &dir.join(format!("{name}.log")),
        &["--config".to_owned(), config.display().to_string()],
    )
    .with_context(|| {
        format!(
            "starting node {} (log in {})",
            name.to_uppercase(),
            dir.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_is_the_raw_file_route() {
        assert_eq!(
            gateway_table("http://127.0.0.1:5000/"),
            "[anchoring]\narchive_gateways = [\"http://127.0.0.1:5000/api/v0/storage/raw/\"]\n"
        );
    }
}
