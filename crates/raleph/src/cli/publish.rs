//! Signing a draft with the configured key, submitting it and reporting the outcome: what
//! every publishing verb ends with.

use raleph_sdk::{Draft, SignedMessage};
use serde_json::json;

use super::output::{self, out};
use super::settings::Settings;

/// Signs `draft` (on the configured channel unless it has one), submits it and waits for it
/// to be processed. Prints `<item_hash> <status>`, or with `--json`
/// `{"item_hash", "status", "type", "sender", "chain", "channel"}`.
pub async fn publish(settings: &Settings, draft: Draft) -> anyhow::Result<SignedMessage> {
    let signer = settings.signer()?;
    let message = draft.channel(&settings.channel.value).sign(&signer);
    let publication = settings
        .client()
        .publish(&message, true)
        .await
        .map_err(|e| settings.explain(e))?;
    let envelope = message.json();
    let value = json!({
        "item_hash": publication.item_hash,
        "status": publication.status,
        "type": envelope["type"],
        "sender": envelope["sender"],
        "chain": envelope["chain"],
        "channel": envelope["channel"],
    });
    output::print(settings.json, &value, || {
        out!("{} {}", publication.item_hash, publication.status)
    })?;
    Ok(message)
}
