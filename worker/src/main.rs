//! `ferry-worker` binary: parses the command line and hands over to the library.

use std::path::PathBuf;

use clap::Parser;

/// Ferry job worker: assembles and verifies uploads, replicates them to storage nodes
/// with rsync over SSH, deletes removed files.
///
/// Configuration comes from the TOML file given with --config, then FERRY_* environment
/// variables (FERRY_<SECTION>__<KEY>, e.g. FERRY_WORKER__SSH_KEY).
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, env = "FERRY_CONFIG")]
    config: Option<PathBuf>,
    /// Queues to consume, comma-separated: assemble, replicate, delete, scrub, drop (default: all).
    #[arg(long, value_delimiter = ',')]
    queues: Option<Vec<String>>,
    /// Jobs handled at once per queue (the consumer prefetch).
    #[arg(long)]
    concurrency: Option<u16>,
    /// Address of the operations endpoint (/healthz, /readyz).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut config = ferry_shared::startup::configure(cli.config.as_deref(), ferry_shared::config::Role::Worker)?;
    if let Some(queues) = cli.queues {
        config.worker.queues = queues;
    }
    if let Some(concurrency) = cli.concurrency {
        anyhow::ensure!(concurrency > 0, "--concurrency must be at least 1");
        config.worker.concurrency = concurrency;
    }
    if let Some(listen) = cli.listen {
        config.worker.listen = listen;
    }
    let (listener, shutdown) = ferry_shared::startup::serve_on(config.worker.listen).await?;
    ferry_worker::run(config, listener, shutdown).await?;
    Ok(())
}
