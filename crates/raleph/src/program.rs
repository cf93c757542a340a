//! `raleph program`: deploy a program (a WebAssembly component, a bundle, or a Python
//! directory), call it, read its logs.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{Map, Value};

use raleph_sdk::{Draft, Signer};
use serde_json::json;

use crate::cli::output::{self, out};
use crate::cli::settings::Settings;

#[derive(clap::Subcommand)]
pub enum ProgramCommand {
    /// Upload code and publish a PROGRAM that runs it; prints the program's hash and URL.
    ///
    /// PATH is a WebAssembly component (`.wasm`, run by the node's wasm runtime), a directory
    /// with an `app.wasm` (a bundle: the other files are readable under /app), or a Python
    /// directory with an ASGI app (`--entrypoint main:app`, run in a microVM).
    Deploy(DeployArgs),
    /// Call a program over HTTP and print its answer.
    Call {
        item_hash: String,
        /// The path the program sees.
        #[arg(default_value = "/")]
        path: String,
        #[arg(long, short = 'X', default_value = "GET")]
        method: String,
        /// The request body.
        #[arg(long, short)]
        data: Option<String>,
        /// `Name: value`, repeatable.
        #[arg(long = "header", short = 'H')]
        headers: Vec<String>,
    },
    /// Print what a program wrote to stdout and stderr (its owner only: signed with your key
    /// as the published CLI signs `aleph program logs`).
    Logs { item_hash: String },
    /// Stop a program now (its owner only); the next request starts it again.
    Stop { item_hash: String },
}

#[derive(clap::Args)]
pub struct DeployArgs {
    path: PathBuf,
    /// For Python programs: `module:app`. For bundles: the component's path.
    #[arg(long)]
    entrypoint: Option<String>,
    /// The runtime ref (default: the wasm runtime for components, the SDK's default Python
    /// runtime for Python directories).
    #[arg(long)]
    runtime: Option<String>,
    /// Memory in MiB.
    #[arg(long, default_value_t = 128)]
    memory: u32,
    #[arg(long, default_value_t = 1)]
    vcpus: u32,
    /// Longest a request may run, in seconds.
    #[arg(long, default_value_t = 30)]
    seconds: u32,
    /// Allow outbound HTTP to the internet.
    #[arg(long)]
    internet: bool,
    /// `NAME=value`, repeatable: the program's environment.
    #[arg(long = "env")]
    variables: Vec<String>,
    /// An `on.message` subscription (a JSON object), repeatable.
    #[arg(long = "on-message")]
    on_message: Vec<String>,
    /// A persistent volume, `name:/mount:size_mib`, repeatable.
    #[arg(long = "volume")]
    volumes: Vec<String>,
    /// Publish as a new version of this program (it must allow amends).
    #[arg(long)]
    update: Option<String>,
    /// Refuse later versions (`--update`) of this program.
    #[arg(long)]
    immutable: bool,
}

/// What the code at PATH is, and how it is shipped.
struct Packaged {
    bytes: Vec<u8>,
    encoding: &'static str,
    entrypoint: String,
    runtime: String,
    runtime_comment: &'static str,
}

fn package(path: &Path, entrypoint: Option<String>) -> anyhow::Result<Packaged> {
    let wasm_runtime = raleph_compute::runtimes::WASM_RUNTIME.clone();
    if path.is_file() {
        let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
        anyhow::ensure!(
            bytes.starts_with(b"\0asm"),
            "{} is not a WebAssembly file; give a component or a directory",
            path.display()
        );
        return Ok(Packaged {
            bytes,
            encoding: "plain",
            entrypoint: entrypoint.unwrap_or_else(|| "wasi:http/proxy".into()),
            runtime: wasm_runtime,
            runtime_comment: "wasi:http/proxy",
        });
    }
    anyhow::ensure!(path.is_dir(), "{} does not exist", path.display());
    let bytes = zip_directory(path)?;
    if path.join("app.wasm").is_file() {
        return Ok(Packaged {
            bytes,
            encoding: "zip",
            entrypoint: entrypoint.unwrap_or_else(|| "app.wasm".into()),
            runtime: wasm_runtime,
            runtime_comment: "wasi:http/proxy",
        });
    }
    Ok(Packaged {
        bytes,
        encoding: "zip",
        entrypoint: entrypoint.unwrap_or_else(|| "main:app".into()),
        runtime: raleph_compute::runtimes::SDK_DEFAULT_RUNTIME.into(),
        runtime_comment: "Aleph Debian 12 Python",
    })
}

/// A zip of the directory's files, with paths relative to it (as the published CLI makes).
fn zip_directory(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut writer = zip::ZipWriter::new(&mut out);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let mut pending = vec![dir.to_owned()];
    while let Some(folder) = pending.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&folder)
            .with_context(|| format!("read {}", folder.display()))?
            .collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.path());
        for entry in entries {
            let path = entry.path();
            let name = path
                .strip_prefix(dir)
                .context("a file outside the directory")?
                .to_string_lossy()
                .replace('\\', "/");
            if entry.file_type()?.is_dir() {
                writer.add_directory(format!("{name}/"), options)?;
                pending.push(path);
            } else {
                writer.start_file(name, options)?;
                writer.write_all(&std::fs::read(&path)?)?;
            }
        }
    }
    writer.finish()?;
    Ok(out.into_inner())
}

fn pairs(items: &[String], separator: char, what: &str) -> anyhow::Result<Map<String, Value>> {
    let mut map = Map::new();
    for item in items {
        let (name, value) = item
            .split_once(separator)
            .with_context(|| format!("{what} {item:?}: expected NAME{separator}value"))?;
        map.insert(name.trim().to_owned(), value.trim().into());
    }
    Ok(map)
}

fn volume(spec: &str) -> anyhow::Result<Value> {
    let parts: Vec<&str> = spec.split(':').collect();
    let [name, mount, size] = parts[..] else {
        anyhow::bail!("volume {spec:?}: expected name:/mount:size_mib");
    };
    let size: u64 = size
        .parse()
        .with_context(|| format!("volume {spec:?}: size"))?;
    Ok(serde_json::json!({"name": name, "mount": mount, "persistence": "host", "size_mib": size}))
}

/// A request to the node's compute API signed by the owner: an ephemeral P-256 key, authorized
/// by the wallet for a day, signs this one operation (the reference's `X-SignedPubKey` and
/// `X-SignedOperation` headers).
async fn owner_request(
    method: reqwest::Method,
    settings: &Settings,
    path: &str,
) -> anyhow::Result<reqwest::Response> {
    use raleph_compute::control::client::{EphemeralKey, signed_pubkey_header, wallet_message};
    let Signer::Eth(signer) = settings.signer()? else {
        anyhow::bail!(
            "the compute API takes ETH wallets only: use an ETH key (--key, --chain ETH)"
        );
    };
    let api = &settings.api.value;
    let url = format!("{api}{path}");
    let parsed = reqwest::Url::parse(&url).context("invalid node URL")?;
    let domain = parsed
        .host_str()
        .context("the node URL has no host")?
        .to_owned();
    let mut secret = [0u8; 32];
    let ephemeral = loop {
        getrandom_fill(&mut secret);
        if let Some(key) = EphemeralKey::from_secret_bytes(&secret) {
            break key;
        }
    };
    let address = signer.address();
    let now = raleph_sdk::now();
    let expires = raleph_compute::control::time::format_iso_z(now + 24.0 * 3600.0);
    let payload = ephemeral.pubkey_payload(&address, "ETH", &domain, &expires);
    let signature = signer.sign_personal(&wallet_message("ETH", &payload));
    let pubkey = signed_pubkey_header(&payload, &signature, &address, &domain);
    let operation = ephemeral.signed_operation(method.as_str(), parsed.path(), &domain, now);
    reqwest::Client::new()
        .request(method, url)
        .header("X-SignedPubKey", pubkey)
        .header("X-SignedOperation", operation)
        .send()
        .await
        .map_err(|e| unreachable_or(settings, e))
}

/// A failed request, explained (an unreachable node says which URL and how to change it).
fn unreachable_or(settings: &Settings, e: reqwest::Error) -> anyhow::Error {
    if e.is_connect() {
        settings.explain(raleph_sdk::ClientError::Unreachable {
            url: settings.api.value.clone(),
            source: e,
        })
    } else {
        anyhow::Error::new(e).context("request the node")
    }
}

/// Random bytes for an ephemeral key: a fresh random wallet's secret (the OS generator).
fn getrandom_fill(out: &mut [u8; 32]) {
    *out = raleph_crypto::EthSigner::new_random().secret_bytes();
}

/// An error status from the compute API, with what the node said.
async fn checked(settings: &Settings, response: reqwest::Response) -> anyhow::Result<String> {
    let status = response.status();
    let body = response.text().await?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(settings.explain(raleph_sdk::ClientError::Status {
            status: status.as_u16(),
            body,
        }))
    }
}

pub async fn run(cmd: ProgramCommand, settings: &Settings) -> anyhow::Result<()> {
    match cmd {
        ProgramCommand::Logs { item_hash } => {
            output::item_hash(&item_hash)?;
            let path = format!("/control/machine/{item_hash}/logs");
            let response = owner_request(reqwest::Method::GET, settings, &path).await?;
            let body = checked(settings, response).await?;
            // `--json`: the node's log entries as it serves them.
            if settings.json {
                out!("{body}");
                return Ok(());
            }
            let entries: Vec<Value> = serde_json::from_str(&body).context("logs are not JSON")?;
            for entry in entries {
                let stream = entry["SYSLOG_IDENTIFIER"]
                    .as_str()
                    .and_then(|s| s.rsplit('-').next())
                    .unwrap_or("?");
                let time = entry["__REALTIME_TIMESTAMP"].as_str().unwrap_or_default();
                let message = entry["MESSAGE"].as_str().unwrap_or_default();
                out!("{time} {stream}: {message}");
            }
            Ok(())
        }
        ProgramCommand::Stop { item_hash } => {
            output::item_hash(&item_hash)?;
            let path = format!("/control/machine/{item_hash}/stop");
            let response = owner_request(reqwest::Method::POST, settings, &path).await?;
            let body = checked(settings, response).await?;
            output::print(
                settings.json,
                &json!({"item_hash": item_hash, "answer": body}),
                || out!("{body}"),
            )
        }
        ProgramCommand::Deploy(args) => deploy(args, settings).await,
        ProgramCommand::Call {
            item_hash,
            path,
            method,
            data,
            headers,
        } => {
            let path = if path.starts_with('/') {
                path
            } else {
                format!("/{path}")
            };
            let url = format!("{}/vm/{item_hash}{path}", settings.api.value);
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes())
                .context("invalid method")?;
            let mut request = reqwest::Client::new().request(method, &url);
            for header in &headers {
                let (name, value) = header
                    .split_once(':')
                    .with_context(|| format!("header {header:?}: expected Name: value"))?;
                request = request.header(name.trim(), value.trim());
            }
            if let Some(data) = data {
                request = request.body(data);
            }
            let response = request
                .send()
                .await
                .map_err(|e| unreachable_or(settings, e))?;
            let status = response.status();
            let body = response.bytes().await?;
            if settings.json {
                // `{status, body}`: the body as text (lossy if it is not UTF-8).
                let value = json!({
                    "status": status.as_u16(),
                    "body": String::from_utf8_lossy(&body),
                });
                out!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                std::io::stdout().write_all(&body)?;
            }
            if status.is_client_error() || status.is_server_error() {
                anyhow::bail!("the program answered {status}");
            }
            if !settings.json {
                eprintln!("{status}");
            }
            Ok(())
        }
    }
}

async fn deploy(args: DeployArgs, settings: &Settings) -> anyhow::Result<()> {
    let signer = settings.signer()?;
    let packaged = package(&args.path, args.entrypoint.clone())?;
    let client = settings.client();
    let channel = &settings.channel.value;
    // The code, pinned by a STORE message.
    let code_file = std::env::temp_dir().join(format!(
        "raleph-code-{}-{}",
        std::process::id(),
        raleph_message::sha256_hex(&packaged.bytes)
    ));
    std::fs::write(&code_file, &packaged.bytes).context("write the packaged code")?;
    let store = Draft::store(&raleph_message::sha256_hex(&packaged.bytes))
        .channel(channel)
        .sign(&signer);
    let uploaded = client
        .upload_file(&code_file, Some(store.json()), |_| {})
        .await;
    let _ = std::fs::remove_file(&code_file);
    let (status, body) = uploaded.map_err(|e| settings.explain(e))?;
    if status >= 400 {
        return Err(settings
            .explain(raleph_sdk::ClientError::Status {
                status,
                body: body.to_string(),
            })
            .context("uploading the code"));
    }
    let code_ref = store.item_hash().to_owned();
    let on_message = args
        .on_message
        .iter()
        .map(|s| serde_json::from_str(s).with_context(|| format!("--on-message {s:?}")))
        .collect::<anyhow::Result<Vec<Value>>>()?;
    let spec = raleph_sdk::ProgramSpec {
        code_ref: code_ref.clone(),
        encoding: packaged.encoding.into(),
        entrypoint: packaged.entrypoint,
        use_latest: false,
        runtime_ref: args.runtime.unwrap_or(packaged.runtime),
        runtime_comment: packaged.runtime_comment.into(),
        memory_mib: args.memory,
        vcpus: args.vcpus,
        seconds: args.seconds,
        internet: args.internet,
        variables: pairs(&args.variables, '=', "--env")?,
        on_message,
        volumes: args
            .volumes
            .iter()
            .map(|v| volume(v))
            .collect::<anyhow::Result<_>>()?,
        allow_amend: !args.immutable,
        replaces: args.update,
    };
    let message = Draft::program(&spec).channel(channel).sign(&signer);
    let publication = client
        .publish(&message, true)
        .await
        .map_err(|e| settings.explain(e))?;
    let item_hash = &publication.item_hash;
    let url = format!("{}/vm/{item_hash}", settings.api.value);
    // `--json`: `{item_hash, status, code_ref, url}`.
    let value = json!({
        "item_hash": item_hash,
        "status": publication.status,
        "code_ref": code_ref,
        "url": url,
    });
    output::print(settings.json, &value, || {
        out!("{item_hash} {}", publication.status);
        eprintln!("code: {code_ref}");
        eprintln!("url:  {url}");
    })
}
