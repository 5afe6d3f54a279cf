//! `ferry`: the operator's command line. It talks to the same PostgreSQL as the
//! services and applies the same rules as the admin API (node validation and user
//! handling are the API crate's own code), so anything done here is what the admin
//! page would have done.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use ferry_api::nodes::{self, NodeInput};
use ferry_shared::config::Config;

/// Ferry's operator command line: users, storage nodes, files, uploads, config.
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
    /// Set a user's password (read from the first line of stdin).
    Passwd { username: String },
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
    Check,
}

fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("reading the password from stdin")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref())?;
    if let Command::Config(ConfigCmd::Check) = cli.command {
        println!("{}", toml::to_string_pretty(&config).context("rendering the configuration")?);
        eprintln!("configuration is valid");
        return Ok(());
    }
    let pool = ferry_store::pool(&config.database)?;
    ferry_store::migrate(&pool).await?;
    let client = pool.get().await?;
    match cli.command {
        Command::Config(_) => {}
        Command::Users(UsersCmd::Add { username, admin }) => {
            if client.query_opt("SELECT 1 FROM users WHERE username = $1", &[&username]).await?.is_some() {
                bail!("user {username} already exists (use `ferry users passwd`)");
            }
            let id = ferry_api::users::upsert(&pool, &username, &read_password()?, admin).await?;
            println!("created user {username} (id {id})");
        }
        Command::Users(UsersCmd::Passwd { username }) => {
            if !ferry_api::users::set_password(&pool, &username, &read_password()?).await? {
                bail!("no user named {username}");
            }
            println!("password of {username} changed");
        }
        Command::Users(UsersCmd::List) => {
            println!("{:>6}  {:<24} {:<6} created", "id", "username", "admin");
            for row in client.query("SELECT id, username, is_admin, created_at FROM users ORDER BY id", &[]).await? {
                let created: chrono::DateTime<chrono::Utc> = row.get(3);
                println!(
                    "{:>6}  {:<24} {:<6} {}",
                    row.get::<_, i64>(0),
                    row.get::<_, String>(1),
                    row.get::<_, bool>(2),
                    created.format("%F %T")
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
            let rows = client
                .query(
                    "SELECT n.id, n.name, n.state, s.up, s.free_bytes, s.total_bytes, n.public_url
                     FROM nodes n LEFT JOIN node_status s ON s.node_id = n.id ORDER BY n.id",
                    &[],
                )
                .await?;
            for row in rows {
                println!(
                    "{:>4}  {:<16} {:<9} {:<5} {:>14} {:>14}  {}",
                    row.get::<_, i32>(0),
                    row.get::<_, String>(1),
                    row.get::<_, String>(2),
                    row.get::<_, Option<bool>>(3).map_or("?".into(), |u| u.to_string()),
                    row.get::<_, Option<i64>>(4).unwrap_or(0),
                    row.get::<_, Option<i64>>(5).unwrap_or(0),
                    row.get::<_, String>(6),
                );
            }
        }
        Command::Nodes(NodesCmd::Drain { node }) => set_state(&client, &node, "draining").await?,
        Command::Nodes(NodesCmd::Disable { node }) => set_state(&client, &node, "disabled").await?,
        Command::Nodes(NodesCmd::Activate { node }) => set_state(&client, &node, "active").await?,
        Command::Files(FilesCmd::Ls { user, limit }) => {
            let rows = client
                .query(
                    "SELECT f.id, u.username, f.filename, f.size, f.created_at,
                            (SELECT count(*) FROM replicas r WHERE r.file_id = f.id AND r.state = 'present')
                     FROM files f JOIN users u ON u.id = f.user_id
                     WHERE f.deleted_at IS NULL AND ($1::text IS NULL OR u.username = $1)
                     ORDER BY f.created_at DESC LIMIT $2",
                    &[&user, &limit],
                )
                .await?;
            for row in rows {
                let created: chrono::DateTime<chrono::Utc> = row.get(4);
                println!(
                    "{}  {:<12} {:>12} B  {} replicas  {}  {}",
                    row.get::<_, uuid::Uuid>(0),
                    row.get::<_, String>(1),
                    row.get::<_, i64>(3),
                    row.get::<_, i64>(5),
                    created.format("%F %T"),
                    row.get::<_, String>(2)
                );
            }
        }
        Command::Files(FilesCmd::Show { id }) => {
            let Some(file) = client
                .query_opt(
                    "SELECT f.filename, u.username, f.size, f.md5, f.sha256, f.created_at, f.deleted_at
                     FROM files f JOIN users u ON u.id = f.user_id WHERE f.id = $1",
                    &[&id],
                )
                .await?
            else {
                bail!("no file {id}");
            };
            let replicas = client
                .query(
                    "SELECT n.name, r.state, r.attempts, r.last_error FROM replicas r JOIN nodes n ON n.id = r.node_id
                     WHERE r.file_id = $1 ORDER BY n.name",
                    &[&id],
                )
                .await?;
            let view = serde_json::json!({
                "id": id,
                "filename": file.get::<_, String>(0),
                "user": file.get::<_, String>(1),
                "size": file.get::<_, i64>(2),
                "md5": file.get::<_, String>(3),
                "sha256": file.get::<_, String>(4),
                "created_at": file.get::<_, chrono::DateTime<chrono::Utc>>(5),
                "deleted_at": file.get::<_, Option<chrono::DateTime<chrono::Utc>>>(6),
                "replicas": replicas.iter().map(|r| serde_json::json!({
                    "node": r.get::<_, String>(0),
                    "state": r.get::<_, String>(1),
                    "attempts": r.get::<_, i32>(2),
                    "last_error": r.get::<_, Option<String>>(3),
                })).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&view)?);
        }
        Command::Uploads(UploadsCmd::Gc) => {
            let expired = ferry_monitor::sweep::expire_uploads(&pool).await?;
            println!("expired {expired} uploads; their staging bytes are queued for removal");
        }
    }
    Ok(())
}

/// Sets a node's state; `node` is its name or numeric id.
async fn set_state(client: &deadpool_postgres::Client, node: &str, state: &str) -> anyhow::Result<()> {
    let id: i32 = match node.parse() {
        Ok(id) => id,
        Err(_) => client
            .query_opt("SELECT id FROM nodes WHERE name = $1", &[&node])
            .await?
            .map(|r| r.get(0))
            .with_context(|| format!("no node named {node}"))?,
    };
    let input = NodeInput { state: Some(state.to_owned()), ..NodeInput::default() };
    nodes::update(client, id, &input).await?;
    println!("node {node} is now {state}");
    Ok(())
}
