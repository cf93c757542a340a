//! The client's profile file: named profiles (node URL, key file, chain, channel) and which
//! one is the default. It lives at `$RALEPH_CLIENT_CONFIG`, else
//! `$XDG_CONFIG_HOME/raleph/client.toml`, else `~/.config/raleph/client.toml`; apart from
//! the node's own configuration (`raleph node --config`), which it never reads.
//!
//! ```toml
//! default = "local"
//!
//! [profiles.local]
//! api = "http://127.0.0.1:4024"
//! key = "/home/me/.config/raleph/local.key"
//! chain = "ETH"
//! channel = "TEST"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::ClientArgs;
use super::output::{self, out};
use super::settings::{Settings, parse_chain};

/// One named profile; every field optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The node's API URL.
    pub api: Option<String>,
    /// The key file.
    pub key: Option<PathBuf>,
    /// ETH or SOL.
    pub chain: Option<String>,
    /// The channel messages go on.
    pub channel: Option<String>,
}

/// The file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileFile {
    /// The profile used when none is named.
    pub default: Option<String>,
    /// The profiles by name.
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// Where the profile file is.
pub fn path() -> PathBuf {
    if let Some(path) = std::env::var_os("RALEPH_CLIENT_CONFIG").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("raleph").join("client.toml")
}

impl ProfileFile {
    /// The file at `path`, or an empty one if there is none.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
        };
        toml::from_str(&text).with_context(|| {
            format!(
                "{} is not a valid client profile file (fix it, or see `raleph config --help`)",
                path.display()
            )
        })
    }

    fn save(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        }
        let text = toml::to_string_pretty(self)?;
        // Written beside and renamed, so a crash never leaves half a file.
        let temporary = path.with_extension("toml.tmp");
        std::fs::write(&temporary, text)
            .with_context(|| format!("write {}", temporary.display()))?;
        std::fs::rename(&temporary, path).with_context(|| format!("write {}", path.display()))
    }
}

#[derive(clap::Subcommand)]
pub enum ConfigCommand {
    /// Show the settings in effect, where each comes from, and the profiles.
    Show,
    /// Set a field of a profile (the one --profile or RALEPH_PROFILE names, else the
    /// default one, else a new one named `default`).
    Set {
        /// api, key, chain or channel.
        #[arg(value_parser = ["api", "key", "chain", "channel"])]
        field: String,
        value: String,
    },
    /// Make a profile the default.
    Use { name: String },
}

pub fn run(cmd: ConfigCommand, args: &ClientArgs) -> anyhow::Result<()> {
    let file_path = path();
    let mut file = ProfileFile::load(&file_path)?;
    match cmd {
        ConfigCommand::Show => {
            let settings = Settings::resolve(args)?;
            let value = json!({
                "file": file_path,
                "profile": settings.profile,
                "default_profile": file.default,
                "profiles": file.profiles,
                "settings": settings.describe(),
            });
            output::print(args.json, &value, || {
                out!("profile file: {}", file_path.display());
                out!(
                    "profile: {}",
                    settings.profile.as_deref().unwrap_or("(none)")
                );
                for (name, (value, source)) in settings.describe_rows() {
                    out!("  {name:8} {value}  ({source})");
                }
                let names: Vec<&str> = file.profiles.keys().map(String::as_str).collect();
                out!(
                    "profiles: {}",
                    if names.is_empty() {
                        "(none)".into()
                    } else {
                        names.join(", ")
                    }
                );
            })
        }
        ConfigCommand::Set { field, value } => {
            let name = args
                .profile
                .clone()
                .or_else(|| {
                    std::env::var("RALEPH_PROFILE")
                        .ok()
                        .filter(|p| !p.is_empty())
                })
                .or_else(|| file.default.clone())
                .unwrap_or_else(|| "default".into());
            let profile = file.profiles.entry(name.clone()).or_default();
            match field.as_str() {
                "api" => {
                    anyhow::ensure!(
                        value.starts_with("http://") || value.starts_with("https://"),
                        "api: {value:?} is not an http:// or https:// URL"
                    );
                    profile.api = Some(value.trim_end_matches('/').to_owned());
                }
                "key" => {
                    let path = PathBuf::from(&value);
                    // Relative to where it was set, not to wherever the client runs later.
                    let path = if path.is_absolute() {
                        path
                    } else {
                        std::env::current_dir()?.join(path)
                    };
                    profile.key = Some(path);
                }
                "chain" => profile.chain = Some(parse_chain(&value)?.as_str().to_owned()),
                _ => profile.channel = Some(value.clone()),
            }
            if file.default.is_none() {
                file.default = Some(name.clone());
            }
            file.save(&file_path)?;
            output::print(
                args.json,
                &json!({"profile": name, "field": field, "file": file_path}),
                || eprintln!("{field} set in profile {name} ({})", file_path.display()),
            )
        }
        ConfigCommand::Use { name } => {
            anyhow::ensure!(
                file.profiles.contains_key(&name),
                "no profile {name:?} in {}: create it with `raleph --profile {name} config set api URL`",
                file_path.display()
            );
            file.default = Some(name.clone());
            file.save(&file_path)?;
            output::print(args.json, &json!({"default_profile": name}), || {
                eprintln!("{name} is now the default profile")
            })
        }
    }
}
