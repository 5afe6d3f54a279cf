//! `ferry`: the operator's command line. It talks to the same PostgreSQL as the
//! services and applies the same rules as the admin API (node validation and user
//! handling live in `ferry-store`, expiry in `ferry-queue`), so anything done here is
//! what the admin page would have done.
//!
//! Every line of output goes through `ferry_stdout::outln!`: a reader that goes away
//! (`ferry jobs ls --json | head`) ends the program quietly with status 0, not a panic.

mod jobs;
mod nodes;
mod output;
mod queues;
mod storage;
mod users;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ferry_shared::config::{Config, Role};
use ferry_stdout::outln;

/// Ferry's operator command line: users, storage nodes, files, uploads, jobs, dead letters,
/// workers, queues, config.
///
/// Reads the same configuration as the services: --config FILE, then FERRY_* environment
/// variables (FERRY_DATABASE__URL, ...).
#[derive(Parser)]
#[command(name = "ferry", version)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, env = "FERRY_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Manage user accounts: add, passwd, disable, enable, delete, quota, list.
    #[command(subcommand)]
    Users(users::UsersCmd),
    /// Manage storage nodes: add, list, drain, disable, activate, rm.
    #[command(subcommand)]
    Nodes(nodes::NodesCmd),
    /// Every user's stored files: ls (filtered, paged), show.
    #[command(subcommand)]
    Files(storage::FilesCmd),
    /// Every user's uploads: ls (filtered, paged), gc.
    #[command(subcommand)]
    Uploads(storage::UploadsCmd),
    /// Job records: what ran where, when, how long, and why it failed.
    #[command(subcommand)]
    Jobs(jobs::JobsCmd),
    /// Dead letters (jobs given up): list, show, replay, discard.
    #[command(subcommand)]
    Dlq(jobs::DlqCmd),
    /// The worker inventory.
    #[command(subcommand)]
    Workers(jobs::WorkersCmd),
    /// Job queues: depth, consumers, message rates, pause and resume.
    #[command(subcommand)]
    Queues(queues::QueuesCmd),
    /// Configuration.
    #[command(subcommand)]
    Config(ConfigCmd),
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Validate the configuration and print the effective values, secrets masked.
    /// Unknown keys are errors; `--for` checks the secrets that program uses in
    /// production mode (api: auth.jwt_secret and signing.secret; worker, node:
    /// signing.secret; monitor: none).
    Check {
        /// The program the configuration is for.
        #[arg(long = "for", value_enum, default_value = "cli")]
        role: RoleArg,
    },
}

/// `ferry config check --for`: a program's [`Role`].
#[derive(Clone, Copy, clap::ValueEnum)]
enum RoleArg {
    Api,
    Worker,
    Monitor,
    Node,
    Cli,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Role {
        match role {
            RoleArg::Api => Role::Api,
            RoleArg::Worker => Role::Worker,
            RoleArg::Monitor => Role::Monitor,
            RoleArg::Node => Role::Node,
            RoleArg::Cli => Role::Cli,
        }
    }
}

/// Runs the command; an error is printed as one line, its causes after colons
/// (`error: PostgreSQL at ...: connection refused`), and the exit status is 1. Not
/// anyhow's `Debug` form, which `main` returning the error would print: that adds a
/// stack trace whenever `RUST_BACKTRACE` is set, as it often is on operators' shells.
fn main() -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let role = match &cli.command {
        Command::Config(ConfigCmd::Check { role }) => Role::from(*role),
        _ => Role::Cli,
    };
    let config = Config::load(cli.config.as_deref(), role)?;
    if let Command::Config(ConfigCmd::Check { .. }) = cli.command {
        outln!("{}", toml::to_string_pretty(&config).context("rendering the configuration")?);
        eprintln!("configuration is valid");
        return Ok(());
    }
    let pool = ferry_store::pool(&config.database)?;
    let address = ferry_store::pool::address(&config.database);
    ferry_store::migrate(&pool).await.with_context(|| format!("PostgreSQL at {address} (database.url)"))?;
    let mut client = pool.get().await.with_context(|| format!("PostgreSQL at {address} (database.url)"))?;
    match cli.command {
        Command::Config(_) => {}
        Command::Users(cmd) => users::users(&client, cmd).await?,
        Command::Nodes(cmd) => nodes::nodes(&client, cmd).await?,
        Command::Files(cmd) => storage::files(&client, cmd).await?,
        Command::Uploads(cmd) => storage::uploads(&pool, &client, cmd).await?,
        Command::Jobs(cmd) => jobs::jobs(&mut client, cmd).await?,
        Command::Dlq(cmd) => jobs::dlq(&mut client, cmd).await?,
        Command::Workers(cmd) => jobs::workers(&client, cmd).await?,
        Command::Queues(cmd) => queues::queues(&client, &config, cmd).await?,
    }
    Ok(())
}
