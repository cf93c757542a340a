//! Client verbs: keys, publishing a post, reading messages.

use std::path::PathBuf;

use anyhow::Context;
use raleph_crypto::EthSigner;
use raleph_message::MessageType;
use raleph_sdk::Client;
use serde_json::{Map, Value};

pub const DEFAULT_API: &str = "http://127.0.0.1:4024";

#[derive(clap::Subcommand)]
pub enum KeyCommand {
    /// Create a new Ethereum key and print its address.
    New {
        /// Where to write the key (hex); refuses to overwrite.
        #[arg(long, default_value = "raleph-key.hex")]
        out: PathBuf,
    },
}

#[derive(clap::Args)]
pub struct PostArgs {
    /// The post's content, a JSON object.
    content: String,
    /// The post type (`amend` to amend `--ref`).
    #[arg(long = "type", default_value = "note")]
    post_type: String,
    #[arg(long = "ref")]
    reference: Option<String>,
    #[arg(long, default_value = "TEST")]
    channel: String,
    /// Key file written by `raleph key new`.
    #[arg(long, env = "RALEPH_KEY", default_value = "raleph-key.hex")]
    key: PathBuf,
    #[arg(long, env = "RALEPH_API", default_value = DEFAULT_API)]
    api: String,
}

#[derive(clap::Subcommand)]
pub enum MessageCommand {
    /// Show one message and its status.
    Get {
        item_hash: String,
        #[arg(long, env = "RALEPH_API", default_value = DEFAULT_API)]
        api: String,
    },
    /// List messages, newest first.
    List {
        #[arg(long)]
        addresses: Option<String>,
        #[arg(long)]
        channels: Option<String>,
        /// Message types, comma-separated (POST, AGGREGATE, ...).
        #[arg(long)]
        types: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u64,
        #[arg(long, env = "RALEPH_API", default_value = DEFAULT_API)]
        api: String,
    },
    /// Check that a message was anchored, against a chain RPC of your choice and trusting no
    /// node: the anchoring transaction's receipt, its sync event, the archive and Merkle root
    /// the event names, and the path from the message to that root.
    Verify {
        item_hash: String,
        /// The chain's JSON-RPC endpoint the check is made against.
        #[arg(long, env = "RALEPH_RPC")]
        rpc: String,
        /// The sync contract the event must come from (recommended: any contract could emit
        /// an event of the same shape).
        #[arg(long)]
        contract: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        /// The node the proof is asked of (it is checked, not trusted).
        #[arg(long, env = "RALEPH_API", default_value = DEFAULT_API)]
        api: String,
    },
}

#[derive(clap::Subcommand)]
pub enum FileCommand {
    /// Upload a file and pin it with a signed STORE message.
    Upload {
        path: PathBuf,
        #[arg(long, default_value = "TEST")]
        channel: String,
        /// Upload without a STORE message: the node keeps the file for its grace period only.
        #[arg(long)]
        no_store: bool,
        #[arg(long, env = "RALEPH_KEY", default_value = "raleph-key.hex")]
        key: PathBuf,
        #[arg(long, env = "RALEPH_API", default_value = DEFAULT_API)]
        api: String,
    },
    /// Download a file by its hash.
    Download {
        hash: String,
        /// Where to write it (default: the hash, in the current directory).
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[arg(long, env = "RALEPH_API", default_value = DEFAULT_API)]
        api: String,
    },
}

/// A byte progress bar on stderr; drawn only when stderr is a terminal.
fn progress_bar(total: Option<u64>, action: &str) -> indicatif::ProgressBar {
    let bar = match total {
        Some(total) => indicatif::ProgressBar::new(total),
        None => indicatif::ProgressBar::no_length(),
    };
    let style = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
    )
    .map(|s| s.progress_chars("=> "));
    if let Ok(style) = style {
        bar.set_style(style);
    }
    bar.set_message(action.to_owned());
    bar
}

pub async fn file(cmd: FileCommand) -> anyhow::Result<()> {
    match cmd {
        FileCommand::Upload {
            path,
            channel,
            no_store,
            key,
            api,
        } => {
            let size = std::fs::metadata(&path)
                .with_context(|| format!("read {}", path.display()))?
                .len();
            let store = if no_store {
                None
            } else {
                let signer = load_key(&key)?;
                let bar = progress_bar(Some(size), "hashing");
                let hash = {
                    let bar = bar.clone();
                    raleph_sdk::sha256_file(&path, move |n| bar.inc(n)).await?
                };
                bar.finish_and_clear();
                Some(raleph_sdk::store_message(
                    &signer,
                    &hash,
                    Some(&channel),
                    now(),
                ))
            };
            let bar = progress_bar(Some(size), "uploading");
            let tick = bar.clone();
            let (status, body) = Client::new(&api)
                .upload_file(&path, store.as_ref(), move |n| tick.inc(n))
                .await?;
            bar.finish_and_clear();
            if status >= 400 {
                anyhow::bail!("the node answered {status}: {body}");
            }
            let hash = body["hash"].as_str().unwrap_or_default();
            match store {
                Some(message) => println!(
                    "{hash} {}",
                    message["item_hash"].as_str().unwrap_or_default()
                ),
                None => println!("{hash}"),
            }
            Ok(())
        }
        FileCommand::Download { hash, output, api } => {
            let output = output.unwrap_or_else(|| PathBuf::from(&hash));
            let bar = progress_bar(None, "downloading");
            let sized = bar.clone();
            let tick = bar.clone();
            let written = Client::new(&api)
                .download_file(
                    &hash,
                    &output,
                    move |total| {
                        if let Some(total) = total {
                            sized.set_length(total);
                        }
                    },
                    move |n| tick.inc(n),
                )
                .await?;
            bar.finish_and_clear();
            eprintln!("{written} bytes written to {}", output.display());
            Ok(())
        }
    }
}

pub fn key(cmd: KeyCommand) -> anyhow::Result<()> {
    match cmd {
        KeyCommand::New { out } => {
            let signer = EthSigner::new_random();
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&out)
                .with_context(|| format!("create key file {}", out.display()))?;
            std::io::Write::write_all(&mut file, hex::encode(signer.secret_bytes()).as_bytes())?;
            println!("{}", signer.address());
            eprintln!("key written to {}", out.display());
            Ok(())
        }
    }
}

pub fn load_key(path: &PathBuf) -> anyhow::Result<EthSigner> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("read key file {}", path.display()))?;
    let bytes = hex::decode(text.trim().trim_start_matches("0x")).context("key file is not hex")?;
    let secret: [u8; 32] = bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("a key is 32 bytes"))?;
    EthSigner::from_secret_bytes(&secret).map_err(|_| anyhow::anyhow!("invalid secret key"))
}

pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

pub async fn post(args: PostArgs) -> anyhow::Result<()> {
    let signer = load_key(&args.key)?;
    let payload: Value =
        serde_json::from_str(&args.content).context("content is not valid JSON")?;
    let mut content = Map::new();
    content.insert("type".into(), args.post_type.into());
    content.insert("content".into(), payload);
    if let Some(reference) = args.reference {
        content.insert("ref".into(), reference.into());
    }
    let message = raleph_sdk::signed_message(
        &signer,
        MessageType::Post,
        content,
        Some(&args.channel),
        now(),
    );
    let (status, body) = Client::new(&args.api).submit(&message, true).await?;
    let item_hash = message["item_hash"].as_str().unwrap_or_default();
    let state = body["message_status"].as_str().unwrap_or("unknown");
    println!("{item_hash} {state}");
    if status >= 400 {
        anyhow::bail!("the node answered {status}: {body}");
    }
    Ok(())
}

pub async fn message(cmd: MessageCommand) -> anyhow::Result<()> {
    let value = match cmd {
        MessageCommand::Verify {
            item_hash,
            rpc,
            contract,
            json,
            api,
        } => return verify(&item_hash, &rpc, contract.as_deref(), json, &api).await,
        MessageCommand::Get { item_hash, api } => Client::new(&api).message(&item_hash).await?,
        MessageCommand::List {
            addresses,
            channels,
            types,
            limit,
            api,
        } => {
            let mut query = form_query(&[
                ("addresses", addresses),
                ("channels", channels),
                ("msgTypes", types),
            ]);
            query.push_str(&format!("pagination={limit}"));
            Client::new(&api).messages(&query).await?
        }
    };
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(())
}

fn form_query(pairs: &[(&str, Option<String>)]) -> String {
    pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}&", encode(v))))
        .collect()
}

fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b',' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `raleph message verify`: every anchor of the message with a Merkle root is checked on
/// chain; fails unless at least one holds.
async fn verify(
    item_hash: &str,
    rpc: &str,
    contract: Option<&str>,
    json: bool,
    api: &str,
) -> anyhow::Result<()> {
    use raleph_chain::verify::{Claim, check};
    let contract = contract
        .map(|c| c.parse::<raleph_chain::Address>())
        .transpose()
        .context("--contract is not an address")?;
    let url = format!(
        "{}/api/v0/messages/{item_hash}/proof",
        api.trim_end_matches('/')
    );
    let response = reqwest::get(&url)
        .await
        .with_context(|| format!("ask {api} for the proof"))?;
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
                    println!(
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
                    println!("not verified: {} tx {}: {e}", anchor.chain, anchor.tx_hash);
                }
                results.push(serde_json::json!({
                    "chain": anchor.chain, "tx_hash": anchor.tx_hash,
                    "verified": false, "reason": e.to_string(),
                }));
            }
        }
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "item_hash": item_hash, "verified": holds, "anchors": results,
            }))?
        );
    }
    anyhow::ensure!(holds, "no anchor of {item_hash} could be verified");
    Ok(())
}
