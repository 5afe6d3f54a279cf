//! What every Ferry binary does before its own work: start logging, read the one
//! configuration, and — for the long-running processes — take the shutdown signals and
//! bind the listener. Binaries stay thin `main`s that apply their command-line
//! overrides between [`configure`] and [`serve_on`], then hand over to `lib::run`.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Role};

/// Starts logging (`FERRY_LOG`, `FERRY_LOG_FORMAT`) and loads the configuration:
/// defaults, then the TOML file at `path`, then `FERRY_*` environment variables,
/// checked for `role` ([`Config::load`]). Errors name what could not be read or parsed.
pub fn configure(path: Option<&Path>, role: Role) -> anyhow::Result<Config> {
    crate::telemetry::init();
    Config::load(path, role).context("loading configuration")
}

/// The shutdown token (cancelled on the first SIGTERM or SIGINT) and a listener bound
/// to `addr`; a failed bind names the address.
pub async fn serve_on(addr: SocketAddr) -> anyhow::Result<(TcpListener, CancellationToken)> {
    let shutdown = crate::shutdown::on_signals().context("installing signal handlers")?;
    let listener = TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    Ok((listener, shutdown))
}
