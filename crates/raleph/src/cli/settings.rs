//! What the client verbs share, each resolved by one rule: the flag, else its environment
//! variable, else the profile, else the built-in default. Also loading the key those settings
//! name, and turning the SDK's errors into ones that say what to do.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use raleph_sdk::{Chain, Client, ClientError, Signer};
use serde_json::{Value, json};

use super::ClientArgs;
use super::profile::{self, Profile, ProfileFile};

pub const DEFAULT_API: &str = "http://127.0.0.1:4024";
pub const DEFAULT_KEY: &str = "raleph-key.hex";
pub const DEFAULT_CHANNEL: &str = "TEST";

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env(&'static str),
    Profile(String),
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag => f.write_str("flag"),
            Source::Env(name) => write!(f, "env {name}"),
            Source::Profile(name) => write!(f, "profile {name}"),
            Source::Default => f.write_str("default"),
        }
    }
}

/// A value and where it came from.
#[derive(Debug, Clone)]
pub struct Sourced<T> {
    pub value: T,
    pub source: Source,
}

/// The settings in effect.
#[derive(Debug, Clone)]
pub struct Settings {
    pub api: Sourced<String>,
    pub key: Sourced<PathBuf>,
    pub chain: Sourced<Chain>,
    pub channel: Sourced<String>,
    /// The profile in use, if any.
    pub profile: Option<String>,
    pub json: bool,
}

/// ETH or SOL, the chains raleph signs for.
pub fn parse_chain(text: &str) -> anyhow::Result<Chain> {
    match text.to_ascii_uppercase().as_str() {
        "ETH" => Ok(Chain::Eth),
        "SOL" => Ok(Chain::Sol),
        _ => anyhow::bail!("chain {text:?}: raleph signs with ETH or SOL keys"),
    }
}

fn env(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// flag > environment > profile > default.
fn pick<T>(
    flag: Option<T>,
    env_name: &'static str,
    from_env: impl FnOnce(String) -> T,
    profile: Option<(&str, T)>,
    default: T,
) -> Sourced<T> {
    if let Some(value) = flag {
        return Sourced {
            value,
            source: Source::Flag,
        };
    }
    if let Some(value) = env(env_name) {
        return Sourced {
            value: from_env(value),
            source: Source::Env(env_name),
        };
    }
    if let Some((name, value)) = profile {
        return Sourced {
            value,
            source: Source::Profile(name.to_owned()),
        };
    }
    Sourced {
        value: default,
        source: Source::Default,
    }
}

impl Settings {
    pub fn resolve(args: &ClientArgs) -> anyhow::Result<Settings> {
        let file_path = profile::path();
        let file = ProfileFile::load(&file_path)?;
        let named = args.profile.clone().or_else(|| env("RALEPH_PROFILE"));
        let profile_name = named.clone().or_else(|| file.default.clone());
        let profile: Profile = match &profile_name {
            Some(name) => match file.profiles.get(name) {
                Some(profile) => profile.clone(),
                None => anyhow::bail!(
                    "no profile {name:?} in {}: create it with `raleph --profile {name} config set api URL`, or list them with `raleph config show`",
                    file_path.display()
                ),
            },
            None => Profile::default(),
        };
        let name = profile_name.as_deref().unwrap_or_default();
        let api = pick(
            args.api.clone(),
            "RALEPH_API",
            |v| v,
            profile.api.clone().map(|v| (name, v)),
            DEFAULT_API.to_owned(),
        );
        let key = pick(
            args.key.clone(),
            "RALEPH_KEY",
            PathBuf::from,
            profile.key.clone().map(|v| (name, v)),
            PathBuf::from(DEFAULT_KEY),
        );
        let chain_text = pick(
            args.chain.clone(),
            "RALEPH_CHAIN",
            |v| v,
            profile.chain.clone().map(|v| (name, v)),
            "ETH".to_owned(),
        );
        let chain = Sourced {
            value: parse_chain(&chain_text.value)
                .with_context(|| format!("the chain set by {}", chain_text.source))?,
            source: chain_text.source,
        };
        let channel = pick(
            args.channel.clone(),
            "RALEPH_CHANNEL",
            |v| v,
            profile.channel.clone().map(|v| (name, v)),
            DEFAULT_CHANNEL.to_owned(),
        );
        let api_url = api.value.trim_end_matches('/').to_owned();
        anyhow::ensure!(
            api_url.starts_with("http://") || api_url.starts_with("https://"),
            "the node URL {api_url:?} (from {}) is not an http:// URL",
            api.source
        );
        Ok(Settings {
            api: Sourced {
                value: api_url,
                source: api.source,
            },
            key,
            chain,
            channel,
            profile: profile_name,
            json: args.json,
        })
    }

    /// `name → (value, source)`, for `config show`.
    pub fn describe_rows(&self) -> Vec<(&'static str, (String, String))> {
        vec![
            ("api", (self.api.value.clone(), self.api.source.to_string())),
            (
                "key",
                (
                    self.key.value.display().to_string(),
                    self.key.source.to_string(),
                ),
            ),
            (
                "chain",
                (self.chain.value.to_string(), self.chain.source.to_string()),
            ),
            (
                "channel",
                (self.channel.value.clone(), self.channel.source.to_string()),
            ),
        ]
    }

    /// The same as JSON: `{name: {"value", "source"}}`.
    pub fn describe(&self) -> Value {
        let mut out = serde_json::Map::new();
        for (name, (value, source)) in self.describe_rows() {
            out.insert(name.into(), json!({"value": value, "source": source}));
        }
        Value::Object(out)
    }

    pub fn client(&self) -> Client {
        Client::new(&self.api.value)
    }

    /// The key the settings name.
    pub fn signer(&self) -> anyhow::Result<Signer> {
        load_key(&self.key.value, self.chain.value)
    }

    /// An SDK error, said so that the user knows what to do next.
    pub fn explain(&self, error: ClientError) -> anyhow::Error {
        explain(error, &self.api)
    }
}

/// Reads a key file: a JSON array of bytes (a SOL keypair, as `solana-keygen` writes them)
/// is SOL; hex is a key of `chain`.
pub fn load_key(path: &Path, chain: Chain) -> anyhow::Result<Signer> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "no key at {}: create one with `raleph key new`, import one with `raleph key import`, or pass --key PATH",
            path.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("read the key file {}", path.display())),
    };
    warn_if_readable(path);
    parse_key(&text, chain).with_context(|| format!("the key file {}", path.display()))
}

/// A key's text: a JSON array of bytes (SOL keypair) or hex.
pub fn parse_key(text: &str, chain: Chain) -> anyhow::Result<Signer> {
    let text = text.trim();
    if text.starts_with('[') {
        let bytes: Vec<u8> =
            serde_json::from_str(text).context("a JSON key must be an array of bytes")?;
        return Ok(Signer::from_bytes(Chain::Sol, &bytes)?);
    }
    Ok(Signer::from_hex(chain, text)?)
}

/// Keys others can read are not secret: say so, as ssh does.
fn warn_if_readable(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            eprintln!(
                "warning: the key file {} can be read by others; `chmod 600` it",
                path.display()
            );
        }
    }
}

/// Writes a new key file readable by its owner only; refuses to overwrite one.
pub fn write_key(path: &Path, contents: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = match options.open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => anyhow::bail!(
            "{} exists already: a key is never overwritten; choose another path with --key (or --out)",
            path.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("create the key file {}", path.display())),
    };
    std::io::Write::write_all(&mut file, contents.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("write the key file {}", path.display()))
}

/// What the node said, without the JSON around it (`{"error": "..."}`).
fn node_message(body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Object(map)) => ["error", "message", "detail", "details"]
            .iter()
            .find_map(|k| map.get(*k))
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .unwrap_or_else(|| body.to_owned()),
        _ => body.trim().to_owned(),
    }
}

pub fn explain(error: ClientError, api: &Sourced<String>) -> anyhow::Error {
    match error {
        ClientError::Unreachable { url, source } => anyhow::anyhow!(
            "no node answers at {url} (set by {}): {source}\n  start one with `raleph node`, or point elsewhere with --api URL, RALEPH_API or `raleph config set api URL`",
            api.source
        ),
        ClientError::Status { status, body } => {
            anyhow::anyhow!(
                "the node at {} answered {status}: {}",
                api.value,
                node_message(&body)
            )
        }
        ClientError::Rejected { item_hash, body } => anyhow::anyhow!(
            "the node rejected {item_hash}: {}\n  `raleph message get {item_hash}` shows why",
            node_message(&body)
        ),
        other => anyhow::Error::new(other),
    }
}
