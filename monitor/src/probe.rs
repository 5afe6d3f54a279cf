//! Probing node agents: `GET <public_url>/health` with a timeout, no redirects
//! followed (the monitor's client has none) and at most [`MAX_HEALTH_BYTES`] read.

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
    let body = match read_bounded(response, MAX_HEALTH_BYTES).await {
        Ok(body) => body,
        Err(e) => return down(e),
    };
    match serde_json::from_slice::<NodeHealth>(&body) {
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

/// The most of a `/health` answer a probe reads: a real one is a few hundred bytes (a
/// hundred corrupt-copy ids at most); anything longer is not an agent's answer, and
/// reading it whole let a hostile `public_url` take the monitor from 18 to 411 MB.
pub const MAX_HEALTH_BYTES: usize = 64 * 1024;

/// The response body, or why not: longer than `limit`, or cut off.
async fn read_bounded(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    if response.content_length().is_some_and(|len| len > limit as u64) {
        return Err(format!("health answer longer than {limit} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| format!("health answer cut off: {e}"))? {
        if body.len() + chunk.len() > limit {
            return Err(format!("health answer longer than {limit} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
