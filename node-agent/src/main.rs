//! `ferry-node` binary: parses the command line and hands over to the library.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use ferry_shared::config::Config;

/// Ferry storage node agent: serves stored files to redirected clients (signed,
/// expiring URLs, HTTP Range) and reports the storage root's free space at /health.
///
/// Configuration comes from the TOML file given with --config, then FERRY_* environment
/// variables (FERRY_NODE__LISTEN, FERRY_NODE__ROOT, FERRY_SIGNING__SECRET[_FILE]).
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, env = "FERRY_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on (overrides node.listen).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Storage root (overrides node.root); created if missing.
    #[arg(long)]
    root: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ferry_shared::telemetry::init();
    let cli = Cli::parse();
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(listen) = cli.listen {
        config.node.listen = listen;
    }
    if let Some(root) = cli.root {
        config.node.root = root;
    }
    let shutdown = ferry_shared::shutdown::on_signals()?;
    let listener = tokio::net::TcpListener::bind(config.node.listen)
        .await
        .with_context(|| format!("binding {}", config.node.listen))?;
    ferry_node_agent::run(config, listener, shutdown).await?;
    Ok(())
}
