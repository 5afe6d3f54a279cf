//! `ferry`: the operator's command line. It talks to the same PostgreSQL as the
//! services and applies the same rules as the admin API (node validation and user
//! handling live in `ferry-store`, expiry in `ferry-queue`), so anything done here is
//! what the admin page would have done.

mod jobs;
mod queues;

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use ferry_shared::config::{Config, Role};
use ferry_shared::types::{FileId, NodeId};
use ferry_store::nodes::{self, NodeInput};
use ferry_store::{files, replicas, users, Client, NodeState};

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
    /// Manage user accounts.
    #[command(subcommand)]
    Users(UsersCmd),
    /// Manage storage nodes.
    #[command(subcommand)]
    Nodes(NodesCmd),
    /// Inspect stored files.
    #[command(subcommand)]
    Files(FilesCmd),
    /// Upload housekeeping.
    #[command(subcommand)]
    Uploads(UploadsCmd),
    /// Job records: what ran where, when, how long, and why it failed.
    #[command(subcommand)]
    Jobs(jobs::JobsCmd),
    /// Dead letters (jobs given up): list, show, replay, discard.
    #[command(subcommand)]
    Dlq(jobs::DlqCmd),
    /// The worker inventory.
    #[command(subcommand)]
    Workers(jobs::WorkersCmd),
    /// Job queues: depth, consumers, pause and resume.
    #[command(subcommand)]
    Queues(queues::QueuesCmd),
    /// Configuration.
    #[command(subcommand)]
    Config(ConfigCmd),
}

#[derive(Subcommand)]
enum UsersCmd {
    /// Create a user (password read from the first line of stdin).
    Add {
        username: String,
        #[arg(long)]
        admin: bool,
    },
    /// Set a user's password (read from the first line of stdin); the user's tokens and
    /// admin sessions stop working.
    Passwd { username: String },
    /// Disable a user: no more logins, and every token and admin session of theirs stops
    /// working at once. Their files stay.
    Disable { username: String },
    /// Enable a disabled user again (they log in anew).
    Enable { username: String },
    /// Delete a user that owns no file or upload (else disable it); their tokens die
    /// with the account.
    Delete { username: String },
    /// List users.
    List,
}

#[derive(Subcommand)]
enum NodesCmd {
    /// Register a storage node; the next upload can use it.
    Add {
        #[arg(long)]
        name: String,
        #[arg(long)]
        ssh_host: String,
        #[arg(long, default_value_t = 22)]
        ssh_port: i32,
        #[arg(long)]
        ssh_user: String,
        #[arg(long)]
        root_path: String,
        #[arg(long)]
        public_url: String,
        #[arg(long, default_value = "")]
        region: String,
        #[arg(long, default_value_t = 0.0)]
        lat: f64,
        #[arg(long, default_value_t = 0.0)]
        lon: f64,
    },
    /// List nodes with their last probe.
    List,
    /// Stop placing new replicas on a node and move its replicas away.
    Drain { node: String },
    /// Stop using a node at all (no downloads, no new replicas).
    Disable { node: String },
    /// Put a drained or disabled node back in service.
    Activate { node: String },
}

#[derive(Subcommand)]
enum FilesCmd {
    /// List files, newest first.
    Ls {
        /// Only this user's files.
        #[arg(long)]
        user: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Show a file with its checksums and replicas.
    Show { id: uuid::Uuid },
}

#[derive(Subcommand)]
enum UploadsCmd {
    /// Expire uploads past their expiry now and queue their staging bytes for removal.
    Gc,
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

fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("reading the password from stdin")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let role = match &cli.command {
        Command::Config(ConfigCmd::Check { role }) => Role::from(*role),
        _ => Role::Cli,
    };
    let config = Config::load(cli.config.as_deref(), role)?;
    if let Command::Config(ConfigCmd::Check { .. }) = cli.command {
        println!("{}", toml::to_string_pretty(&config).context("rendering the configuration")?);
        eprintln!("configuration is valid");
        return Ok(());
    }
    let pool = ferry_store::pool(&config.database)?;
    ferry_store::migrate(&pool).await?;
    let mut client = pool.get().await?;
    match cli.command {
        Command::Config(_) => {}
        Command::Users(UsersCmd::Add { username, admin }) => {
            if users::exists(&client, &username).await? {
                bail!("user {username} already exists (use `ferry users passwd`)");
            }
            let id = users::upsert(&client, &username, &read_password()?, admin).await?;
            println!("created user {username} (id {id})");
        }
        Command::Users(UsersCmd::Passwd { username }) => {
            if !users::set_password(&client, &username, &read_password()?).await? {
                bail!("no user named {username}");
            }
            println!("password of {username} changed");
        }
        Command::Users(UsersCmd::Disable { username }) => {
            if !users::set_disabled(&client, &username, true).await? {
                bail!("no user named {username}");
            }
            println!("user {username} disabled; their tokens and sessions no longer work");
        }
        Command::Users(UsersCmd::Enable { username }) => {
            if !users::set_disabled(&client, &username, false).await? {
                bail!("no user named {username}");
            }
            println!("user {username} enabled");
        }
        Command::Users(UsersCmd::Delete { username }) => {
            if !users::delete(&client, &username).await? {
                bail!("no user named {username}");
            }
            println!("user {username} deleted");
        }
        Command::Users(UsersCmd::List) => {
            println!("{:>6}  {:<24} {:<6} {:<9} created", "id", "username", "admin", "disabled");
            for user in users::list(&client).await? {
                println!(
                    "{:>6}  {:<24} {:<6} {:<9} {}",
                    user.id,
                    user.username,
                    user.is_admin,
                    user.disabled,
                    user.created_at.format("%F %T")
                );
            }
        }
        Command::Nodes(NodesCmd::Add {
            name,
            ssh_host,
            ssh_port,
            ssh_user,
            root_path,
            public_url,
            region,
            lat,
            lon,
        }) => {
            let input = NodeInput {
                name: Some(name.clone()),
                ssh_host: Some(ssh_host),
                ssh_port: Some(ssh_port),
                ssh_user: Some(ssh_user),
                root_path: Some(root_path),
                public_url: Some(public_url),
                region: Some(region),
                lat: Some(lat),
                lon: Some(lon),
                state: None,
            };
            let id = nodes::insert(&client, &input).await?;
            println!("added node {name} (id {id})");
        }
        Command::Nodes(NodesCmd::List) => {
            println!(
                "{:>4}  {:<16} {:<9} {:<5} {:>14} {:>14}  public_url",
                "id", "name", "state", "up", "free", "total"
            );
            for o in nodes::overview(&client, None).await? {
                println!(
                    "{:>4}  {:<16} {:<9} {:<5} {:>14} {:>14}  {}",
                    o.node.id,
                    o.node.name,
                    o.node.state,
                    o.probe.up.map_or("?".into(), |u| u.to_string()),
                    o.probe.free.unwrap_or_default().bytes(),
                    o.probe.total.unwrap_or_default().bytes(),
                    o.node.public_url,
                );
            }
        }
        Command::Nodes(NodesCmd::Drain { node }) => set_state(&client, &node, NodeState::Draining).await?,
        Command::Nodes(NodesCmd::Disable { node }) => set_state(&client, &node, NodeState::Disabled).await?,
        Command::Nodes(NodesCmd::Activate { node }) => set_state(&client, &node, NodeState::Active).await?,
        Command::Files(FilesCmd::Ls { user, limit }) => {
            for o in files::list_live(&client, user.as_deref(), limit).await? {
                println!(
                    "{}  {:<12} {:>12} B  {} replicas  {}  {}",
                    o.file.id,
                    o.username,
                    o.file.size.bytes(),
                    o.present,
                    o.file.created_at.format("%F %T"),
                    o.file.filename
                );
            }
        }
        Command::Files(FilesCmd::Show { id }) => {
            let id = FileId(id);
            let Some(owned) = files::get_any(&client, id).await? else {
                bail!("no file {id}");
            };
            let file = owned.file;
            let replicas = replicas::of_files(&client, &[id]).await?;
            let view = serde_json::json!({
                "id": id,
                "filename": file.filename,
                "user": owned.username,
                "size": file.size,
                "md5": file.md5,
                "sha256": file.sha256,
                "created_at": file.created_at,
                "deleted_at": file.deleted_at,
                "replicas": replicas.iter().map(|r| serde_json::json!({
                    "node": r.node_name,
                    "state": r.state.as_str(),
                    "attempts": r.attempts,
                    "last_error": r.last_error,
                })).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&view)?);
        }
        Command::Jobs(cmd) => jobs::jobs(&client, cmd).await?,
        Command::Dlq(cmd) => jobs::dlq(&mut client, cmd).await?,
        Command::Workers(cmd) => jobs::workers(&client, cmd).await?,
        Command::Queues(cmd) => queues::queues(&client, &config, cmd).await?,
        Command::Uploads(UploadsCmd::Gc) => {
            let expired = ferry_queue::expiry::expire_uploads(&pool).await?;
            println!("expired {expired} uploads; their staging bytes are queued for removal");
        }
    }
    Ok(())
}

/// Sets a node's state; `node` is its name or numeric id.
async fn set_state(client: &Client, node: &str, state: NodeState) -> anyhow::Result<()> {
    let id = match node.parse() {
        Ok(id) => NodeId(id),
        Err(_) => nodes::id_by_name(client, node).await?.with_context(|| format!("no node named {node}"))?,
    };
    let input = NodeInput { state: Some(state.as_str().to_owned()), ..NodeInput::default() };
    nodes::update(client, id, &input).await?;
    println!("node {node} is now {state}");
    Ok(())
}
