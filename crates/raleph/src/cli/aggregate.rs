//! `raleph aggregate`: set keys of an aggregate, read an address's aggregates.

use raleph_sdk::Draft;
use serde_json::{Value, json};

use super::output::{self, json_argument, out};
use super::publish::publish;
use super::settings::Settings;

#[derive(clap::Subcommand)]
pub enum AggregateCommand {
    /// Merge a JSON object into your aggregate KEY (top-level keys replace theirs; `null`
    /// keeps a key with the value null).
    Set {
        key: String,
        /// A JSON object, or `-` to read it from stdin.
        content: String,
        /// Write the aggregate of this address (its `security` aggregate must allow you).
        #[arg(long, value_name = "ADDRESS")]
        on_behalf_of: Option<String>,
    },
    /// Print an address's aggregates (all, or one KEY's value).
    Get {
        address: String,
        key: Option<String>,
    },
}

pub async fn run(cmd: AggregateCommand, settings: &Settings) -> anyhow::Result<()> {
    match cmd {
        AggregateCommand::Set {
            key,
            content,
            on_behalf_of,
        } => {
            let Value::Object(content) = json_argument(&content, "the aggregate content")? else {
                anyhow::bail!(
                    "an aggregate's content must be a JSON object, e.g. '{{\"name\": \"Alice\"}}'"
                );
            };
            let mut draft = Draft::aggregate(&key, content);
            if let Some(owner) = on_behalf_of {
                draft = draft.on_behalf_of(&owner);
            }
            publish(settings, draft).await.map(drop)
        }
        AggregateCommand::Get { address, key } => {
            let client = settings.client();
            let keys: Vec<&str> = key.as_deref().into_iter().collect();
            let data = client
                .aggregates(&address, &keys)
                .await
                .map_err(|e| settings.explain(e))?;
            // `--json`: with KEY, `{"address", "key", "value"}`; without, `{"address", "data"}`.
            let value = match (&key, data) {
                (Some(key), data) => {
                    let found = data.and_then(|mut d| d.remove(key));
                    let Some(found) = found else {
                        anyhow::bail!(
                            "{address} has no aggregate {key:?} on {}",
                            settings.api.value
                        );
                    };
                    json!({"address": address, "key": key, "value": found})
                }
                (None, Some(data)) => json!({"address": address, "data": data}),
                (None, None) => json!({"address": address, "data": {}}),
            };
            output::print(settings.json, &value, || {
                let shown = value.get("value").unwrap_or(&value["data"]);
                out!(
                    "{}",
                    serde_json::to_string_pretty(shown).unwrap_or_default()
                );
            })
        }
    }
}
