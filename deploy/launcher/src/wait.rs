//! Bounded waiting for things that settle asynchronously: a port that opens, an HTTP
//! endpoint that answers 200. A deadline, never a sleep used as an assertion.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};

/// Polls `probe` every 100 ms until it returns `Some`; fails after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await? {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// True when something accepts TCP connections on 127.0.0.1:`port`.
pub fn tcp_open(port: u16) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok()
}

/// True when `url` answers 200 within 3 s.
pub async fn http_ok(http: &reqwest::Client, url: &str) -> bool {
    let res = http.get(url).timeout(Duration::from_secs(3)).send().await;
    res.is_ok_and(|r| r.status().is_success())
}
