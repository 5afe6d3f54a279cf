//! `ferry-node` binary: parses the command line and hands over to the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use ferry_node_agent::Options;

/// mimalloc, as in ferry-api (`no_thp`: see the workspace Cargo.toml). The big read
/// buffers are pooled by the agent itself (see `buffers`), so their reuse does not
/// depend on the allocator: with the pool, the download benchmarks measured no
/// difference between glibc malloc and mimalloc on this VM (within its noise). It
/// stays for parity with ferry-api and for the buffers freed beyond the retained
/// ones, which mimalloc can hand out again from its segments.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Ferry storage node agent: serves the files under its storage root to clients the
/// API redirected here (signed, expiring URLs; HTTP Range) and reports the root's free
/// space at /health.
///
/// Settings come from the TOML file given with --config, then FERRY_* environment
/// variables (FERRY_NODE__LISTEN, FERRY_NODE__ROOT, FERRY_NODE__REVERIFY_SECS,
/// FERRY_NODE__MAX_DOWNLOADS_PER_CLIENT, FERRY_NODE__MAX_DOWNLOADS_PER_LINK, FERRY_HTTP__*,
/// FERRY_SIGNING__SECRET or FERRY_SIGNING__SECRET_FILE), then the options below. Stops
/// gracefully on SIGTERM or SIGINT.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// TOML configuration file (the agent uses `mode`, [node], [http] and [signing]).
    #[arg(long, env = "FERRY_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
    /// Address to serve HTTP on, e.g. 0.0.0.0:9001 [overrides node.listen; default
    /// 127.0.0.1:9001].
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Storage root holding the files, created if missing [overrides node.root;
    /// default /srv/ferry].
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// After a whole-file read has proved a copy matches the sha256 signed into its
    /// link, serve whole reads of that unchanged copy (same inode, size, mtime, ctime)
    /// without hashing for this many seconds; 0 hashes every whole-file read. The
    /// monitor's periodic scrub re-checks every copy regardless [overrides
    /// node.reverify_secs; default 86400].
    #[arg(long, value_name = "SECS")]
    reverify_secs: Option<u64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut config = ferry_shared::startup::configure(cli.config.as_deref(), ferry_shared::config::Role::Node)?;
    if let Some(listen) = cli.listen {
        config.node.listen = listen;
    }
    if let Some(root) = cli.root {
        config.node.root = root;
    }
    if let Some(secs) = cli.reverify_secs {
        config.node.reverify_secs = secs;
    }
    let options = Options {
        reverify_after: Duration::from_secs(config.node.reverify_secs),
        max_downloads_per_client: config.node.max_downloads_per_client,
        max_downloads_per_link: config.node.max_downloads_per_link,
        ..Options::default()
    };
    let (listener, shutdown) = ferry_shared::startup::serve_on(config.node.listen).await?;
    ferry_node_agent::run_with(config, options, listener, shutdown).await?;
    Ok(())
}
