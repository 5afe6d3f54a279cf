//! `ferry-monitor` binary: parses the command line and hands over to the library.

use std::path::PathBuf;

use clap::Parser;

/// Ferry monitor: probes storage nodes, records their status, publishes heartbeats,
/// expires abandoned uploads and tops up under-replicated files. Run one or two (the
/// second waits as a standby: leadership is a PostgreSQL advisory lock).
///
/// Configuration comes from the TOML file given with --config, then FERRY_* environment
/// variables (FERRY_<SECTION>__<KEY>, e.g. FERRY_MONITOR__INTERVAL_MS).
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, env = "FERRY_CONFIG")]
    config: Option<PathBuf>,
    /// Address of the operations endpoint (/healthz, /readyz).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut config = ferry_shared::startup::configure(cli.config.as_deref(), ferry_shared::config::Role::Monitor)?;
    if let Some(listen) = cli.listen {
        config.monitor.listen = listen;
    }
    let (listener, shutdown) = ferry_shared::startup::serve_on(config.monitor.listen).await?;
    ferry_monitor::run(config, listener, shutdown).await?;
    Ok(())
}
