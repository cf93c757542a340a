//! Test support (feature `testing`): a private anvil, with the AlephSync contract deployed
//! from the committed artifact. Never used by a node.
//!
//! anvil comes from `$RALEPH_ANVIL` (`scripts/evm-tools.sh` prints its path; `scripts/test.sh`
//! sets it). When it is unset, [`Anvil::start_or_skip`] returns `None` after printing why,
//! unless `RALEPH_REQUIRE_ANVIL=1`, where it panics: CI must not skip chain tests silently.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use alloy_network::{EthereumWallet, NetworkTransactionBuilder, TransactionBuilder};
use alloy_primitives::{Address, Bytes};
use alloy_provider::Provider as _;
use alloy_rpc_types_eth::{TransactionReceipt, TransactionRequest};
use raleph_message::Chain;

use crate::config::{EvmChainConfig, PackingConfig, PackingKey};
use crate::rpc::{Provider, provider};

/// The sync contract's artifact, checked against its source by `scripts/evm-tools.sh`.
pub const ARTIFACT: &str = include_str!("../../../contracts/AlephSync.json");
/// The Merkle proof verifier's artifact (`contracts/AlephMerkleVerifier.sol`).
pub const VERIFIER_ARTIFACT: &str = include_str!("../../../contracts/AlephMerkleVerifier.json");

/// How long anvil may take to print its listening address.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running anvil on 127.0.0.1, killed when dropped.
pub struct Anvil {
    child: Child,
    port: u16,
    /// The dev accounts' private keys, as anvil printed them.
    keys: Vec<String>,
}

impl Anvil {
    /// Starts anvil from `$RALEPH_ANVIL` (see the module doc), with `extra` arguments.
    pub fn start_or_skip(extra: &[&str]) -> Option<Anvil> {
        let Some(path) = std::env::var_os("RALEPH_ANVIL").filter(|p| !p.is_empty()) else {
            if std::env::var("RALEPH_REQUIRE_ANVIL").as_deref() == Ok("1") {
                panic!(
                    "RALEPH_REQUIRE_ANVIL=1 but RALEPH_ANVIL is unset: run scripts/evm-tools.sh"
                );
            }
            eprintln!(
                "skipped: RALEPH_ANVIL is unset (RALEPH_ANVIL=\"$(scripts/evm-tools.sh | tail -n 1)\" runs this test)"
            );
            return None;
        };
        let mut child = Command::new(&path)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start anvil at {}: {e}", path.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        // anvil logs every request on stdout: a thread reads it to the end so anvil never
        // blocks on a full pipe, and reports the start lines.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut keys = Vec::new();
            let mut in_keys = false;
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sent {
                    continue;
                }
                if line.starts_with("Private Keys") {
                    in_keys = true;
                } else if in_keys && line.trim().is_empty() && !keys.is_empty() {
                    in_keys = false;
                } else if in_keys && let Some((_, key)) = line.split_once(") ") {
                    keys.push(key.trim().to_owned());
                }
                if let Some(address) = line.strip_prefix("Listening on ") {
                    let port = address
                        .trim()
                        .rsplit(':')
                        .next()
                        .and_then(|p| p.parse().ok());
                    let _ = tx.send((port, std::mem::take(&mut keys)));
                    sent = true;
                }
            }
        });
        let (port, keys) = match rx.recv_timeout(START_TIMEOUT) {
            Ok((Some(port), keys)) => (port, keys),
            other => {
                let _ = child.kill();
                panic!("anvil did not print a listening address: {other:?}");
            }
        };
        assert!(!keys.is_empty(), "anvil printed no dev keys");
        Some(Anvil { child, port, keys })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Dev account `i`'s key.
    pub fn key(&self, i: usize) -> PackingKey {
        PackingKey::from_hex(&self.keys[i]).expect("anvil prints valid keys")
    }

    /// Dev account `i`'s key as text (for a key file).
    pub fn key_hex(&self, i: usize) -> &str {
        &self.keys[i]
    }

    /// A provider on this anvil.
    pub fn provider(&self) -> Provider {
        provider(&self.config(Address::ZERO, vec![Address::ZERO])).expect("provider")
    }

    /// Chain settings for this anvil: ETH, no confirmation depth, packing with no key file
    /// (tests pass keys directly), a 150 gwei ceiling.
    pub fn config(&self, contract: Address, authorized: Vec<Address>) -> EvmChainConfig {
        let mut config = EvmChainConfig::new(Chain::Eth, self.url(), contract, authorized);
        config.confirmations = 0;
        config.poll_interval_secs = 1;
        config.rpc_timeout_secs = 10;
        config.packing = Some(PackingConfig {
            key_file: "unused".into(),
            max_gas_price_gwei: 150,
            commit_delay_secs: 0,
            max_messages: 10_000,
            receipt_timeout_secs: 10,
        });
        config
    }

    /// Deploys AlephSync from the committed artifact with dev account `deployer`.
    pub async fn deploy(&self, deployer: usize) -> Address {
        self.deploy_artifact(ARTIFACT, deployer).await
    }

    /// Deploys the contract of a committed artifact (`contracts/<name>.json`) with dev account
    /// `deployer`, and checks that the code on chain is the artifact's runtime bytecode.
    pub async fn deploy_artifact(&self, artifact: &str, deployer: usize) -> Address {
        let artifact: serde_json::Value = serde_json::from_str(artifact).expect("artifact JSON");
        let code: Bytes = artifact["bytecode"]
            .as_str()
            .expect("artifact bytecode")
            .parse()
            .expect("hex bytecode");
        let key = self.key(deployer);
        let provider = self.provider();
        let from = key.address();
        let wallet = EthereumWallet::new(key.signer().clone());
        let nonce = provider
            .get_transaction_count(from)
            .pending()
            .await
            .expect("nonce");
        let gas_price = provider.get_gas_price().await.expect("gas price");
        let tx = TransactionRequest::default()
            .with_from(from)
            .with_deploy_code(code)
            .with_nonce(nonce)
            .with_chain_id(provider.get_chain_id().await.expect("chain id"))
            .with_gas_limit(1_000_000)
            .with_gas_price(gas_price * 2)
            .build(&wallet)
            .await
            .expect("sign");
        let pending = provider.send_tx_envelope(tx).await.expect("deploy");
        let receipt = pending.get_receipt().await.expect("deploy receipt");
        assert!(receipt.status(), "deployment reverted");
        let address = receipt.contract_address.expect("contract address");
        let runtime = provider.get_code_at(address).await.expect("code");
        let expected: Bytes = artifact["deployedBytecode"]
            .as_str()
            .expect("runtime bytecode")
            .parse()
            .expect("hex");
        assert_eq!(
            runtime, expected,
            "deployed code differs from the artifact's runtime bytecode"
        );
        address
    }

    /// Sends a transaction calling `to` with `input` from dev account `from`, and waits for
    /// its receipt (anvil mines it at once unless started with `--no-mining`).
    pub async fn call(&self, from: usize, to: Address, input: Vec<u8>) -> TransactionReceipt {
        let key = self.key(from);
        let provider = self.provider();
        let sender = key.address();
        let wallet = EthereumWallet::new(key.signer().clone());
        let nonce = provider
            .get_transaction_count(sender)
            .pending()
            .await
            .expect("nonce");
        let gas_price = provider.get_gas_price().await.expect("gas price");
        let tx = TransactionRequest::default()
            .with_from(sender)
            .with_to(to)
            .with_input(input)
            .with_nonce(nonce)
            .with_chain_id(provider.get_chain_id().await.expect("chain id"))
            .with_gas_limit(5_000_000)
            .with_gas_price(gas_price * 2)
            .build(&wallet)
            .await
            .expect("sign");
        let pending = provider.send_tx_envelope(tx).await.expect("send");
        pending.get_receipt().await.expect("receipt")
    }

    /// A raw JSON-RPC call (anvil_mine, evm_snapshot, evm_revert, ...).
    pub async fn rpc<R: alloy_json_rpc::RpcRecv>(
        &self,
        method: &'static str,
        params: serde_json::Value,
    ) -> R {
        self.provider()
            .raw_request(method.into(), params)
            .await
            .unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    /// Mines `blocks` empty blocks.
    pub async fn mine(&self, blocks: u64) {
        let _: serde_json::Value = self
            .rpc("anvil_mine", serde_json::json!([format!("{blocks:#x}")]))
            .await;
    }

    pub async fn head(&self) -> u64 {
        self.provider().get_block_number().await.expect("head")
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
