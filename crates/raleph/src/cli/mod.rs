//! The client verbs of the `raleph` binary, built on `raleph-sdk`: each module one group of
//! verbs; `settings` resolves what they share (node URL, key, chain, channel) from flags,
//! the environment and the profile file; `output` prints human text or `--json`.

pub mod aggregate;
pub mod completions;
pub mod files;
pub mod forget;
pub mod keys;
pub mod messages;
pub mod node;
pub mod output;
pub mod posts;
pub mod profile;
pub mod publish;
pub mod settings;
pub mod verify;

use std::path::PathBuf;

/// Options every client verb takes (their ids are prefixed so that no verb's own argument,
/// such as `aggregate get`'s KEY, collides with them) (anywhere on the command line). Each falls back to its
/// environment variable, then to the profile, then to a built-in default.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ClientArgs {
    /// The node's API URL [env: RALEPH_API] [default: the profile's, else
    /// http://127.0.0.1:4024].
    #[arg(long = "api", id = "client_api", global = true, value_name = "URL")]
    pub api: Option<String>,
    /// The key file [env: RALEPH_KEY] [default: the profile's, else ./raleph-key.hex].
    #[arg(long = "key", id = "client_key", global = true, value_name = "PATH")]
    pub key: Option<PathBuf>,
    /// The key's chain, ETH or SOL [env: RALEPH_CHAIN] [default: the profile's, else ETH;
    /// a SOL keypair file (a JSON array) is SOL whatever this says].
    #[arg(
        long = "chain",
        id = "client_chain",
        global = true,
        value_name = "CHAIN"
    )]
    pub chain: Option<String>,
    /// The channel messages are sent on [env: RALEPH_CHANNEL] [default: the profile's, else
    /// TEST].
    #[arg(long = "channel", id = "client_channel", global = true)]
    pub channel: Option<String>,
    /// The client profile to use [env: RALEPH_PROFILE] [default: the profile file's
    /// `default`]. See `raleph config`.
    #[arg(long = "profile", id = "client_profile", global = true)]
    pub profile: Option<String>,
    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long = "json", id = "client_json", global = true)]
    pub json: bool,
}
