//! `raleph node`: run a node (no subcommand, as always), or ask a running one how it is
//! (`status`) and whom it is connected to (`peers`).

use serde_json::{Value, json};

use super::output::{self, out};
use super::settings::Settings;

/// `raleph node [FLAGS]` runs a node; `raleph node status|peers` asks one. The node's flags
/// and the subcommands exclude each other, so the running form is exactly as it was.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct NodeCommand {
    #[command(subcommand)]
    pub action: Option<NodeAction>,
    #[command(flatten)]
    pub run: crate::node::NodeArgs,
}

#[derive(clap::Subcommand)]
pub enum NodeAction {
    /// A running node's version, message counts, pending work, peers and addresses
    /// (`--json`: `{api, version, messages, pending, journal_unapplied, by_status, peers,
    /// raleph_peers, websockets, addresses}`).
    Status,
    /// The peers a running node is connected to (`--json`: the node's list as is).
    Peers,
}

/// The value of the sample named exactly `name` (no labels).
fn metric(samples: &[(String, f64)], name: &str) -> Option<u64> {
    samples
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| *v as u64)
}

pub async fn run(action: NodeAction, settings: &Settings) -> anyhow::Result<()> {
    let client = settings.client();
    let explain = |e| settings.explain(e);
    match action {
        NodeAction::Status => {
            let version = client.version().await.map_err(explain)?;
            let samples = client.metrics().await.map_err(explain)?;
            let peers = client.peers().await.map_err(explain)?;
            let addresses = client.public_addresses().await.map_err(explain)?;
            let peer_list = peers["peers"].as_array().cloned().unwrap_or_default();
            let raleph_peers = peer_list
                .iter()
                .filter(|p| p["is_raleph"].as_bool() == Some(true))
                .count();
            let mut by_status = serde_json::Map::new();
            for (name, value) in &samples {
                if let Some(status) = name
                    .strip_prefix("raleph_messages_by_status{status=\"")
                    .and_then(|rest| rest.strip_suffix("\"}"))
                {
                    by_status.insert(status.to_owned(), json!(*value as u64));
                }
            }
            let value = json!({
                "api": settings.api.value,
                "version": version,
                "messages": metric(&samples, "pyaleph_status_sync_messages_total"),
                "pending": metric(&samples, "pyaleph_status_sync_pending_messages_total"),
                "journal_unapplied": metric(&samples, "raleph_intake_journal_unapplied"),
                "by_status": by_status,
                "peers": peer_list.len(),
                "raleph_peers": raleph_peers,
                "websockets": metric(&samples, "raleph_websocket_connections"),
                "addresses": addresses,
            });
            output::print(settings.json, &value, || {
                let show = |v: &Value| match v {
                    Value::Null => "?".to_owned(),
                    other => other.to_string(),
                };
                out!("node:      {} ({version})", settings.api.value);
                out!("messages:  {}", show(&value["messages"]));
                out!(
                    "pending:   {} (journal not yet applied: {})",
                    show(&value["pending"]),
                    show(&value["journal_unapplied"])
                );
                let statuses: Vec<String> =
                    by_status.iter().map(|(s, n)| format!("{s} {n}")).collect();
                out!("statuses:  {}", statuses.join(", "));
                out!("peers:     {} ({raleph_peers} raleph)", peer_list.len());
                for address in &addresses {
                    out!("address:   {address}");
                }
            })
        }
        NodeAction::Peers => {
            let peers = client.peers().await.map_err(explain)?;
            output::print(settings.json, &peers, || {
                let list = peers["peers"].as_array().cloned().unwrap_or_default();
                if list.is_empty() {
                    eprintln!("no peers connected");
                }
                for peer in list {
                    out!(
                        "{} {} {}{}",
                        peer["peer_id"].as_str().unwrap_or("?"),
                        if peer["is_raleph"].as_bool() == Some(true) {
                            "raleph"
                        } else {
                            "other"
                        },
                        peer["addresses"]
                            .as_array()
                            .and_then(|a| a.first())
                            .and_then(Value::as_str)
                            .unwrap_or("-"),
                        if peer["throttled"].as_bool() == Some(true) {
                            " (throttled)"
                        } else {
                            ""
                        },
                    );
                }
            })
        }
    }
}
