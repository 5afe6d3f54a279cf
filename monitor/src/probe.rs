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
    /// Why the agent could not write a file at its storage root (`None`: it could, or
    /// did not check; always `None` for a node that is down).
    pub write_error: Option<String>,
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
        write_error: None,
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
            write_error: h.write_error,
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

/// The most of an sshd's first line the check reads: RFC 4253 §4.2 caps the
/// identification string at 255 characters with its CR LF (the server may send other
/// lines first, which the check does not accept).
const MAX_SSH_LINE: usize = 255;

/// Checks a node's sshd, which every copy to the node goes through: connects to
/// `host:port` and reads the identification string an SSH server sends first (RFC 4253
/// §4.2: `SSH-2.0-<software>`, or `SSH-1.99-` from a server that also speaks version 1,
/// §5.1), all within `timeout`. Returns that string, or why the check failed. It then
/// sends its own identification and closes, before any key exchange: the node's sshd
/// logs a connection closed before authentication, and nothing else happens.
pub async fn probe_ssh(host: &str, port: u16, timeout: Duration) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let check = async {
        let mut socket = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
        let mut line = Vec::with_capacity(64);
        let mut buf = [0u8; 64];
        while !line.ends_with(b"\n") {
            let n = socket.read(&mut buf).await.map_err(|e| format!("{host}:{port}: {e}"))?;
            if n == 0 {
                return Err(format!("{host}:{port} closed the connection without an SSH identification"));
            }
            line.extend_from_slice(&buf[..n]);
            if line.len() > MAX_SSH_LINE && !line[..MAX_SSH_LINE].contains(&b'\n') {
                return Err(format!("{host}:{port} sent no SSH identification in its first {MAX_SSH_LINE} bytes"));
            }
        }
        let end = line.iter().position(|&b| b == b'\n').unwrap_or(line.len());
        let ident = String::from_utf8_lossy(&line[..end]).trim_end_matches('\r').to_owned();
        if !(ident.starts_with("SSH-2.0-") || ident.starts_with("SSH-1.99-")) {
            return Err(format!(
                "{host}:{port} is not an SSH 2 server: it sent {:?}",
                ident.chars().take(80).collect::<String>()
            ));
        }
        let _ = socket.write_all(b"SSH-2.0-ferry-monitor-probe\r\n").await;
        let _ = socket.shutdown().await;
        Ok(ident)
    };
    match tokio::time::timeout(timeout, check).await {
        Ok(result) => result,
        Err(_) => Err(format!("{host}:{port} sent no SSH identification within {} ms", timeout.as_millis())),
    }
}

#[cfg(test)]
mod ssh_tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A listener that sends `greeting` to its first connection, then reads until EOF.
    async fn server(greeting: &'static [u8]) -> std::io::Result<u16> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        tokio::spawn(async move {
            if let Ok((mut socket, _)) = listener.accept().await {
                if greeting.is_empty() {
                    return;
                }
                let _ = socket.write_all(greeting).await;
                let mut sink = Vec::new();
                let _ = socket.read_to_end(&mut sink).await;
            }
        });
        Ok(port)
    }

    #[tokio::test]
    async fn an_ssh_server_passes_and_anything_else_says_why_not() -> std::io::Result<()> {
        let t = Duration::from_secs(5);
        let port = server(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10\r\n").await?;
        assert_eq!(probe_ssh("127.0.0.1", port, t).await, Ok("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10".into()));
        let port = server(b"HTTP/1.1 400 Bad Request\r\n\r\n").await?;
        let error = probe_ssh("127.0.0.1", port, t).await.err().unwrap_or_default();
        assert!(error.contains("not an SSH 2 server"), "{error}");
        let port = server(b"").await?;
        let error = probe_ssh("127.0.0.1", port, t).await.err().unwrap_or_default();
        assert!(error.contains("without an SSH identification"), "{error}");
        let port = server(&[b'x'; 300]).await?;
        let error = probe_ssh("127.0.0.1", port, t).await.err().unwrap_or_default();
        assert!(error.contains("first 255 bytes"), "{error}");
        // Nothing listening: refused.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            l.local_addr()?.port()
        };
        let error = probe_ssh("127.0.0.1", port, t).await.err().unwrap_or_default();
        assert!(error.contains("cannot connect"), "{error}");
        Ok(())
    }
}
