//! `raleph`: runs a node (`raleph node`) and is also its command-line client.

mod anchoring;
mod client;
mod compute;
mod config;
mod network;
mod node;
mod program;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "raleph",
    version,
    about = "An Aleph network node, and a client for it"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node.
    Node(node::NodeArgs),
    /// Manage signing keys.
    #[command(subcommand)]
    Key(client::KeyCommand),
    /// Publish a POST message.
    Post(client::PostArgs),
    /// Read messages from a node.
    #[command(subcommand)]
    Message(client::MessageCommand),
    /// Upload and download files.
    #[command(subcommand)]
    File(client::FileCommand),
    /// Deploy and call programs.
    #[command(subcommand)]
    Program(program::ProgramCommand),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RALEPH_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match cli.command {
            Command::Node(args) => node::run(args).await,
            Command::Key(cmd) => client::key(cmd),
            Command::Post(args) => client::post(args).await,
            Command::Message(cmd) => client::message(cmd).await,
            Command::File(cmd) => client::file(cmd).await,
            Command::Program(cmd) => program::run(cmd).await,
        }
    })
}
