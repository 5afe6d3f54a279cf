//! The one HTTP server loop every Ferry listener runs (API, node agent, and the
//! worker's and monitor's operations listeners), with the limits that keep a hostile
//! client from holding it: a header-read timeout that also ends idle keep-alive
//! connections, a cap on open connections and a smaller one per client address,
//! `TCP_USER_TIMEOUT` for peers that stop acknowledging, and a write timeout for those
//! that acknowledge but never read. Each request head is checked before hyper reads it,
//! so a head hyper would refuse with an empty body gets the JSON error of every other
//! refusal ([`crate::request_heads`]). See docs/SECURITY.md.
//!
//! `axum::serve` exposes none of hyper's connection settings, so this loop builds each
//! connection with hyper's own HTTP/1.1 server (`header_read_timeout` with a Tokio
//! timer), hyper-util's graceful shutdown and tokio-io-timeout's write timeout; the
//! only code of ours is the two connection caps: a semaphore permit and a per-address
//! slot ([`KeyedSlots`]) held by each connection's task.

use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_io_timeout::TimeoutStream;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::config::HttpConfig;
use crate::metrics;
use crate::request_heads::{self, Refusals, RequestHeads};
use crate::slots::KeyedSlots;

/// How long bytes a process sent may stay unacknowledged before the kernel drops the
/// connection (`TCP_USER_TIMEOUT`), including a peer that keeps its receive window shut:
/// a client that stops reading a download would otherwise hold its response buffers
/// (and, many of them, every download's) forever. A slow reader that keeps acknowledging
/// is never cut off.
pub const STALLED_PEER_TIMEOUT: Duration = Duration::from_secs(60);

/// The limits one listener enforces on its connections.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// From a connection's start, or the end of its previous response, until the next
    /// request's header is complete; past it hyper closes the connection.
    pub header_read_timeout: Duration,
    /// Connections served at once; more wait in the accept queue.
    pub max_connections: usize,
    /// Connections one client address may hold at once; its next one is answered `503`
    /// and closed at once, without waiting, so one address cannot take every connection.
    pub max_connections_per_address: usize,
    /// `TCP_USER_TIMEOUT` of every connection.
    pub stalled_peer_timeout: Duration,
    /// How long one write may stay blocked before the connection is closed.
    pub write_timeout: Duration,
}

impl Limits {
    /// The configured limits, with `max_connections` lowered to three quarters of the
    /// process's open-file limit when that is smaller.
    pub fn from_config(http: &HttpConfig) -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(http.header_read_timeout_secs),
            max_connections: http.max_connections.min(descriptor_budget()).max(1),
            max_connections_per_address: http.max_connections_per_address.max(1),
            stalled_peer_timeout: STALLED_PEER_TIMEOUT,
            write_timeout: Duration::from_secs(http.write_timeout_secs),
        }
    }
}

/// Three quarters of the soft `RLIMIT_NOFILE`: the rest stays for the process's own
/// files, pools and broker connections.
fn descriptor_budget() -> usize {
    match nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE) {
        Ok((soft, _)) => usize::try_from(soft / 4 * 3).unwrap_or(usize::MAX),
        Err(_) => usize::MAX,
    }
}

/// Serves `router` on `listener` until `shutdown` fires, then stops accepting and lets
/// in-flight requests finish (hyper's graceful shutdown). Handlers see the peer's
/// address as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    limits: Limits,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    // The total is `slots`; this only counts each address's share.
    let per_address = KeyedSlots::<IpAddr>::new(Semaphore::MAX_PERMITS, limits.max_connections_per_address);
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    let user_timeout_ms = u32::try_from(limits.stalled_peer_timeout.as_millis()).unwrap_or(u32::MAX);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = shutdown.cancelled() => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let Ok(address_slot) = per_address.try_acquire(peer.ip()) else {
            refuse(tcp, peer);
            continue;
        };
        if let Err(error) =
            nix::sys::socket::setsockopt(&tcp, nix::sys::socket::sockopt::TcpUserTimeout, &user_timeout_ms)
        {
            tracing::debug!(%error, "cannot set TCP_USER_TIMEOUT on a connection");
        }
        let router = router.clone();
        let refusals = Refusals::new();
        let seen = refusals.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            // Called in hyper's order of requests; the stand-in for a refused head is
            // answered here, never routed.
            let dispatched = seen.on_request();
            request.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            let routed = router.clone().oneshot(request);
            let seen = seen.clone();
            async move {
                match dispatched.refused {
                    Some(status) => Ok::<_, std::convert::Infallible>(request_heads::refusal_response(status)),
                    None => {
                        let Ok(mut response) = routed.await;
                        seen.announce_close(dispatched.number, &mut response);
                        Ok(response)
                    }
                }
            }
        });
        // A write blocked past the timeout fails the connection (tokio-io-timeout), so a
        // client that stops reading frees its response buffers.
        let mut io = TimeoutStream::new(tcp);
        io.set_write_timeout(Some(limits.write_timeout));
        let io = RequestHeads::new(Box::pin(io), refusals);
        let connection = graceful.watch(http.serve_connection(TokioIo::new(io), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
            drop(address_slot);
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// The answer to a connection over its address's share (docs/SECURITY.md).
const TOO_MANY_CONNECTIONS: &str =
    r#"{"detail":"Too many connections from your address; retry when one closes.","code":"too_many_connections"}"#;

/// Answers a connection over its address's share with `503 too_many_connections` and
/// closes it, without waiting for anything: the request bytes already received are read
/// and dropped (closing with unread bytes would reset the connection and could lose the
/// answer), the answer is written once (a fresh socket's send buffer takes it whole),
/// and whatever does not fit in one non-blocking call is given up.
fn refuse(tcp: TcpStream, peer: SocketAddr) {
    metrics::HTTP_CONNECTIONS_REFUSED.inc();
    tracing::debug!(%peer, "connection over the address's share refused");
    // `into_std` leaves the socket non-blocking, so no call below waits.
    let Ok(mut socket) = tcp.into_std() else { return };
    let mut buf = [0u8; 4096];
    for _ in 0..16 {
        match socket.read(&mut buf) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{TOO_MANY_CONNECTIONS}",
        TOO_MANY_CONNECTIONS.len()
    );
    let _ = socket.write(answer.as_bytes());
    let _ = socket.shutdown(Shutdown::Write);
}

/// An accept error is about one connection or a passing shortage (`EMFILE`, `ENFILE`,
/// `ENOBUFS`): log it and pause briefly instead of spinning, as hyper's own server did.
async fn accept_failed(error: std::io::Error) {
    tracing::warn!(%error, "accepting a connection failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
}
