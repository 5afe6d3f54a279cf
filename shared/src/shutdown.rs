//! One shutdown token per process, cancelled by SIGTERM or SIGINT and passed to every
//! loop. Loops stop taking new work when it fires and drain within their deadline.

use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
pub use tokio_util::sync::CancellationToken;

/// How long a process waits for in-flight work after SIGTERM before it gives up.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(25);

/// Returns a token cancelled on the first SIGTERM or SIGINT.
pub fn on_signals() -> std::io::Result<CancellationToken> {
    let token = CancellationToken::new();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let trigger = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!(signal = "SIGTERM", "shutting down"),
            _ = int.recv() => tracing::info!(signal = "SIGINT", "shutting down"),
        }
        trigger.cancel();
    });
    Ok(token)
}
