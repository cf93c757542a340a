//! `raleph forget`: ask nodes to forget messages you sent (a FORGET message).

use raleph_sdk::Draft;

use super::output::item_hash;
use super::publish::publish;
use super::settings::Settings;

#[derive(clap::Args)]
pub struct ForgetArgs {
    /// Item hashes of the messages to forget.
    #[arg(required_unless_present = "aggregates")]
    hashes: Vec<String>,
    /// Why (kept in the FORGET).
    #[arg(long)]
    reason: Option<String>,
    /// Also forget every element of this aggregate key of yours; repeatable. Nodes take only
    /// keys that look like item hashes here (the reference's model types them so).
    #[arg(long = "aggregate", value_name = "KEY")]
    aggregates: Vec<String>,
}

pub async fn run(args: ForgetArgs, settings: &Settings) -> anyhow::Result<()> {
    for hash in &args.hashes {
        item_hash(hash)?;
    }
    let mut draft = Draft::forget(&args.hashes, args.reason.as_deref());
    if !args.aggregates.is_empty() {
        draft = draft.forget_aggregates(&args.aggregates);
    }
    publish(settings, draft).await.map(drop)
}
