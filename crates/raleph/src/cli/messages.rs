//! `raleph message`: one message and its status, lists with filters, following them live,
//! and checking a message's anchoring on a chain.

use futures::StreamExt;
use raleph_sdk::{Chain, MessageFilter, MessageType, SortBy, SortOrder};
use serde_json::{Value, json};

use super::output::{self, out};
use super::settings::Settings;

/// The filters `list` and `watch` share; lists are comma-separated.
#[derive(clap::Args, Debug, Default)]
pub struct FilterArgs {
    /// Senders.
    #[arg(long, value_delimiter = ',')]
    addresses: Vec<String>,
    /// Owners (`content.address`).
    #[arg(long, value_delimiter = ',')]
    owners: Vec<String>,
    /// Message types: POST, AGGREGATE, STORE, PROGRAM, INSTANCE, FORGET.
    #[arg(long, value_delimiter = ',', value_parser = parse_type)]
    types: Vec<MessageType>,
    /// Channels (not the --channel messages are sent on).
    #[arg(long = "channels", value_delimiter = ',')]
    channels: Vec<String>,
    /// Senders' chains.
    #[arg(long, value_delimiter = ',', value_parser = parse_any_chain)]
    chains: Vec<Chain>,
    #[arg(long, value_delimiter = ',')]
    tags: Vec<String>,
    #[arg(long, value_delimiter = ',')]
    refs: Vec<String>,
    /// Item hashes.
    #[arg(long, value_delimiter = ',')]
    hashes: Vec<String>,
    /// STORE file hashes.
    #[arg(long, value_delimiter = ',')]
    content_hashes: Vec<String>,
    /// AGGREGATE keys.
    #[arg(long, value_delimiter = ',')]
    content_keys: Vec<String>,
    /// POST types.
    #[arg(long, value_delimiter = ',')]
    post_types: Vec<String>,
    /// Statuses (processed, pending, rejected, forgotten, removing, removed).
    #[arg(long, value_delimiter = ',')]
    statuses: Vec<String>,
    /// From this time on (seconds since the epoch).
    #[arg(long, value_name = "SECONDS")]
    start: Option<f64>,
    /// Before this time.
    #[arg(long, value_name = "SECONDS")]
    end: Option<f64>,
}

fn parse_type(text: &str) -> Result<MessageType, String> {
    text.to_ascii_uppercase().parse()
}

fn parse_any_chain(text: &str) -> Result<Chain, String> {
    text.to_ascii_uppercase()
        .parse()
        .map_err(|e| format!("{e}"))
}

impl FilterArgs {
    fn filter(self) -> MessageFilter {
        MessageFilter {
            hashes: self.hashes,
            addresses: self.addresses,
            owners: self.owners,
            types: self.types,
            channels: self.channels,
            chains: self.chains,
            tags: self.tags,
            refs: self.refs,
            content_hashes: self.content_hashes,
            content_keys: self.content_keys,
            post_types: self.post_types,
            statuses: self.statuses,
            start_date: self.start,
            end_date: self.end,
            ..Default::default()
        }
    }
}

#[derive(clap::Subcommand)]
pub enum MessageCommand {
    /// Show one message and its status (`--json`: the node's answer as is).
    Get { item_hash: String },
    /// List messages, newest first (`--json`: `{messages, pagination_page,
    /// pagination_per_page, pagination_total}`).
    List {
        #[command(flatten)]
        filter: FilterArgs,
        /// Oldest first.
        #[arg(long)]
        oldest_first: bool,
        /// Sort by first confirmation on a chain instead of the message's time.
        #[arg(long)]
        by_tx_time: bool,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long, default_value_t = 1)]
        page: u32,
    },
    /// Follow messages as the node processes them, until ctrl-c (`--json`: one message per
    /// line).
    Watch {
        #[command(flatten)]
        filter: FilterArgs,
        /// Show this many recent matching messages first (at most 199).
        #[arg(long, default_value_t = 0)]
        history: u32,
        /// Stop after this many messages.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Check that a message was anchored, against a chain RPC of your choice and trusting no
    /// node: the anchoring transaction's receipt, its sync event, the archive and Merkle root
    /// the event names, and the path from the message to that root.
    Verify {
        item_hash: String,
        /// The chain's JSON-RPC endpoint the check is made against.
        #[arg(long, env = "RALEPH_RPC")]
        rpc: String,
        /// The sync contract the event must come from (recommended: any contract could emit
        /// an event of the same shape).
        #[arg(long)]
        contract: Option<String>,
    },
}

const TIME_FORMAT: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");

/// `time type item_hash sender channel`, one line; the time in UTC, to the second.
fn summary(message: &Value) -> String {
    let time = message["time"]
        .as_f64()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t as i64).ok())
        .and_then(|t| t.format(TIME_FORMAT).ok())
        .unwrap_or_else(|| message["time"].to_string());
    format!(
        "{time} {:9} {} {} {}",
        message["type"].as_str().unwrap_or("?"),
        message["item_hash"].as_str().unwrap_or("?"),
        message["sender"].as_str().unwrap_or("?"),
        message["channel"].as_str().unwrap_or("-"),
    )
}

pub async fn run(cmd: MessageCommand, settings: &Settings) -> anyhow::Result<()> {
    let client = settings.client();
    match cmd {
        MessageCommand::Get { item_hash } => {
            output::item_hash(&item_hash)?;
            let value = client
                .message(&item_hash)
                .await
                .map_err(|e| settings.explain(e))?;
            output::print(settings.json, &value, || {
                out!("status: {}", value["status"].as_str().unwrap_or("?"));
                if let Some(code) = value.get("error_code") {
                    out!("error code: {code}");
                    out!("details: {}", value["details"]);
                }
                let message = value.get("message").unwrap_or(&value["messages"]);
                out!(
                    "{}",
                    serde_json::to_string_pretty(message).unwrap_or_default()
                );
            })
        }
        MessageCommand::List {
            filter,
            oldest_first,
            by_tx_time,
            limit,
            page,
        } => {
            let filter = MessageFilter {
                sort_order: oldest_first.then_some(SortOrder::Ascending),
                sort_by: by_tx_time.then_some(SortBy::TxTime),
                pagination: Some(limit),
                page: Some(page),
                ..filter.filter()
            };
            let page = client
                .list_messages(&filter)
                .await
                .map_err(|e| settings.explain(e))?;
            let value = json!({
                "messages": page.messages,
                "pagination_page": page.pagination_page,
                "pagination_per_page": page.pagination_per_page,
                "pagination_total": page.pagination_total,
            });
            output::print(settings.json, &value, || {
                for message in &page.messages {
                    out!("{}", summary(message));
                }
                eprintln!(
                    "{} of {} message(s)",
                    page.messages.len(),
                    page.pagination_total
                );
            })
        }
        MessageCommand::Watch {
            filter,
            history,
            count,
        } => watch(settings, filter.filter(), history, count).await,
        MessageCommand::Verify {
            item_hash,
            rpc,
            contract,
        } => super::verify::run(settings, &item_hash, &rpc, contract.as_deref()).await,
    }
}

async fn watch(
    settings: &Settings,
    filter: MessageFilter,
    history: u32,
    count: Option<u64>,
) -> anyhow::Result<()> {
    anyhow::ensure!(history <= 199, "--history is at most 199");
    let client = settings.client();
    let stream = client
        .watch(&filter, Some(history))
        .await
        .map_err(|e| settings.explain(e))?;
    let mut stream = std::pin::pin!(stream);
    // Listening for ctrl-c from here on (not from the first poll), so that an interrupt
    // after the line below always ends the watch cleanly.
    let mut interrupt = Interrupt::new()?;
    eprintln!(
        "following messages at {} (ctrl-c to stop)",
        settings.api.value
    );
    let mut seen = 0u64;
    while count.is_none_or(|count| seen < count) {
        let message = tokio::select! {
            _ = interrupt.recv() => break,
            next = stream.next() => match next {
                Some(message) => message.map_err(|e| settings.explain(e))?,
                None => anyhow::bail!("the node at {} closed the websocket", settings.api.value),
            },
        };
        seen += 1;
        if settings.json {
            output::line(&message)?;
        } else {
            out!("{}", summary(&message));
        }
    }
    Ok(())
}

/// Ctrl-c (SIGINT), listened for from the moment it is made.
struct Interrupt {
    #[cfg(unix)]
    signal: tokio::signal::unix::Signal,
}

impl Interrupt {
    fn new() -> anyhow::Result<Self> {
        Ok(Interrupt {
            #[cfg(unix)]
            signal: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?,
        })
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        self.signal.recv().await;
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
