//! `raleph`: runs a node (`raleph node`) and is also its command-line client.

mod anchoring;
mod cli;
mod compute;
mod config;
mod network;
mod node;
mod program;

use clap::{CommandFactory, Parser, Subcommand};

use cli::settings::Settings;

#[derive(Parser)]
#[command(
    name = "raleph",
    version,
    about = "An Aleph network node, and a client for it",
    after_help = "Client settings: --api, --key, --chain, --channel, else RALEPH_API, RALEPH_KEY, RALEPH_CHAIN, RALEPH_CHANNEL, else the profile (`raleph config`), else the defaults."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    client: cli::ClientArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node (`raleph node [FLAGS]`), or ask a running one (`raleph node status|peers`).
    Node(cli::node::NodeCommand),
    /// Create, import and show signing keys (ETH, SOL).
    #[command(subcommand)]
    Key(cli::keys::KeyCommand),
    /// Publish, amend and list posts.
    #[command(subcommand)]
    Post(cli::posts::PostCommand),
    /// Set and read aggregates (key-value documents per address).
    #[command(subcommand)]
    Aggregate(cli::aggregate::AggregateCommand),
    /// Forget messages you sent.
    Forget(cli::forget::ForgetArgs),
    /// Read messages: one, lists, live; check anchoring.
    #[command(subcommand)]
    Message(cli::messages::MessageCommand),
    /// Upload and download files.
    #[command(subcommand)]
    File(cli::files::FileCommand),
    /// Deploy and call programs.
    #[command(subcommand)]
    Program(program::ProgramCommand),
    /// Client profiles: named node URL, key, chain and channel (not the node's config).
    #[command(subcommand)]
    Config(cli::profile::ConfigCommand),
    /// Print a shell completion script (bash, zsh, fish, ...).
    Completions(cli::completions::CompletionsArgs),
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // The error and its causes, one line each, and no backtrace: a user reads this
            // (`RUST_BACKTRACE` set in their shell would otherwise print one, as anyhow does).
            eprintln!("Error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RALEPH_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let args = cli.client;
    match cli.command {
        // No node, no settings, no runtime.
        Command::Completions(completions) => {
            cli::completions::run(completions, &mut Cli::command());
            Ok(())
        }
        Command::Config(cmd) => cli::profile::run(cmd, &args),
        // Running a node reads the node's configuration only, never the client's profile.
        Command::Node(cli::node::NodeCommand { action: None, run }) => {
            runtime()?.block_on(node::run(run))
        }
        command => {
            let settings = Settings::resolve(&args)?;
            runtime()?.block_on(client(command, &settings))
        }
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

/// A client verb (every command but those `main` handles itself).
async fn client(command: Command, settings: &Settings) -> anyhow::Result<()> {
    match command {
        Command::Node(cli::node::NodeCommand {
            action: Some(action),
            ..
        }) => cli::node::run(action, settings).await,
        Command::Key(cmd) => cli::keys::run(cmd, settings),
        Command::Post(cmd) => cli::posts::run(cmd, settings).await,
        Command::Aggregate(cmd) => cli::aggregate::run(cmd, settings).await,
        Command::Forget(args) => cli::forget::run(args, settings).await,
        Command::Message(cmd) => cli::messages::run(cmd, settings).await,
        Command::File(cmd) => cli::files::run(cmd, settings).await,
        Command::Program(cmd) => program::run(cmd, settings).await,
        Command::Node(_) | Command::Config(_) | Command::Completions(_) => {
            anyhow::bail!("not a client verb")
        }
    }
}
