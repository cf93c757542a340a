//! `raleph file`: upload a file (pinned by a signed STORE) and download one, with progress
//! bars on a terminal.

use std::path::PathBuf;

use anyhow::Context;
use raleph_sdk::Draft;
use serde_json::json;

use super::output::{self, out};
use super::settings::Settings;

#[derive(clap::Subcommand)]
pub enum FileCommand {
    /// Upload a file and pin it with a signed STORE message; prints the file's sha256 and
    /// the STORE's item hash (`--json`: `{file_hash, item_hash, size, status}`).
    Upload {
        path: PathBuf,
        /// Upload without a STORE message: the node keeps the file for its grace period only.
        #[arg(long)]
        no_store: bool,
        /// The STORE's `ref`: the file it is a new version of, or a name of yours.
        #[arg(long = "ref")]
        reference: Option<String>,
    },
    /// Download a file by its hash (`--json`: `{file_hash, path, bytes}`).
    Download {
        hash: String,
        /// Where to write it (default: the hash, in the current directory).
        #[arg(long, short)]
        output: Option<PathBuf>,
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

pub async fn run(cmd: FileCommand, settings: &Settings) -> anyhow::Result<()> {
    let client = settings.client();
    match cmd {
        FileCommand::Upload {
            path,
            no_store,
            reference,
        } => {
            let size = std::fs::metadata(&path)
                .with_context(|| format!("read {}", path.display()))?
                .len();
            let store = if no_store {
                None
            } else {
                let signer = settings.signer()?;
                let bar = progress_bar(Some(size), "hashing");
                let hash = {
                    let bar = bar.clone();
                    raleph_sdk::sha256_file(&path, move |n| bar.inc(n)).await?
                };
                bar.finish_and_clear();
                let mut draft = Draft::store(&hash).channel(&settings.channel.value);
                if let Some(reference) = &reference {
                    draft = draft.reference(reference);
                }
                Some(draft.sign(&signer))
            };
            let bar = progress_bar(Some(size), "uploading");
            let tick = bar.clone();
            let (status, body) = client
                .upload_file(&path, store.as_ref().map(|m| m.json()), move |n| {
                    tick.inc(n)
                })
                .await
                .map_err(|e| settings.explain(e))?;
            bar.finish_and_clear();
            if status >= 400 {
                return Err(settings.explain(raleph_sdk::ClientError::Status {
                    status,
                    body: body.to_string(),
                }));
            }
            let file_hash = body["hash"].as_str().unwrap_or_default();
            let item_hash = store.as_ref().map(|m| m.item_hash().to_owned());
            let value = json!({
                "file_hash": file_hash,
                "item_hash": item_hash,
                "size": size,
                "status": if status == 200 { "processed" } else { "pending" },
            });
            output::print(settings.json, &value, || match &item_hash {
                Some(item_hash) => out!("{file_hash} {item_hash}"),
                None => out!("{file_hash}"),
            })
        }
        FileCommand::Download { hash, output: path } => {
            let path = path.unwrap_or_else(|| PathBuf::from(&hash));
            let bar = progress_bar(None, "downloading");
            let sized = bar.clone();
            let tick = bar.clone();
            let written = client
                .download_file(
                    &hash,
                    &path,
                    move |total| {
                        if let Some(total) = total {
                            sized.set_length(total);
                        }
                    },
                    move |n| tick.inc(n),
                )
                .await
                .map_err(|e| settings.explain(e))?;
            bar.finish_and_clear();
            let value = json!({"file_hash": hash, "path": path, "bytes": written});
            output::print(settings.json, &value, || {
                eprintln!("{written} bytes written to {}", path.display())
            })
        }
    }
}
