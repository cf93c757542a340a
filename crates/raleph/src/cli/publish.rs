//! Signing a draft with the configured key, submitting it and reporting the outcome: what
//! every publishing verb ends with.

use raleph_sdk::{ClientError, Draft, SignedMessage};
use serde_json::json;

use super::output::{self, out};
use super::settings::Settings;

/// Signs `draft` on the configured channel, submits it and waits for it to be processed. Prints `<item_hash> <status>`, or with `--json`
/// `{"item_hash", "status", "type", "sender", "chain", "channel"}`.
pub async fn publish(settings: &Settings, draft: Draft) -> anyhow::Result<SignedMessage> {
    let signer = settings.signer()?;
    let draft = draft.channel(&settings.channel.value);
    let client = settings.client();
    // Large content is stored on the node first, as the Python SDK does.
    let (message, publication) = match client.sign_and_publish(draft, &signer, true).await {
        Ok(published) => published,
        Err(ClientError::Rejected { item_hash, .. }) => {
            // The node keeps why: say it rather than send the user to look it up.
            let why = match client.message_status(&item_hash).await {
                Ok(status) => format!(
                    "error code {}: {}",
                    status.error_code.unwrap_or_default(),
                    status.details.unwrap_or_default()
                ),
                Err(e) => format!("(and asking why failed: {e})"),
            };
            anyhow::bail!(
                "the node at {} rejected {item_hash}: {why}",
                settings.api.value
            );
        }
        Err(e) => return Err(settings.explain(e)),
    };
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
