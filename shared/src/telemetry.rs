//! Logging set-up shared by every binary: `tracing` with an env filter (`FERRY_LOG`,
//! falling back to `RUST_LOG`, then `info`), human-readable by default and JSON with
//! `FERRY_LOG_FORMAT=json`.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = std::env::var("FERRY_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info,tokio_postgres=warn".to_owned());
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("FERRY_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // A second init (tests calling run() twice in one process) is harmless.
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}
