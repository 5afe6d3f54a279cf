//! Probing node agents: `GET <public_url>/health` with a timeout.

use std::time::{Duration, Instant};

use ferry_shared::health::NodeHealth;
use ferry_shared::types::{ByteSize, FileId};

/// One probe's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeResult {
    pub up: bool,
    pub free_bytes: ByteSize,
    pub total_bytes: ByteSize,
    pub rtt_ms: Option<f64>,
    pub error: Option<String>,
    /// Files the agent found corrupt while serving them.
    pub corrupt: Vec<FileId>,
}

pub async fn probe(http: &reqwest::Client, public_url: &str, timeout: Duration) -> ProbeResult {
    let url = format!("{}/health", public_url.trim_end_matches('/'));
    let started = Instant::now();
    let down = |error: String| ProbeResult {
        up: false,
        free_bytes: ByteSize::ZERO,
        total_bytes: ByteSize::ZERO,
        rtt_ms: None,
        error: Some(error),
        corrupt: Vec::new(),
    };
    let response = match http.get(&url).timeout(timeout).send().await {
        Ok(r) => r,
        Err(e) => return down(format!("unreachable: {e}")),
    };
    let rtt_ms = started.elapsed().as_secs_f64() * 1000.0;
    if !response.status().is_success() {
        return down(format!("health answered {}", response.status()));
    }
    match response.json::<NodeHealth>().await {
        Ok(h) => ProbeResult {
            up: true,
            free_bytes: h.free_bytes,
            total_bytes: h.total_bytes,
            rtt_ms: Some(rtt_ms),
            error: None,
            corrupt: h.corrupt,
        },
        Err(e) => down(format!("malformed health answer: {e}")),
    }
}
