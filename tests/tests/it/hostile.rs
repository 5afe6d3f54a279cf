//! Hostile clients (issue 15): what an attacker with an ordinary account, or none, must
//! not be able to do to a cluster. Each test drives the real processes over loopback
//! with a bounded number of connections; a timeout is asserted as "the server closed
//! the connection" within a generous bound, never as a speed.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use ferry_tests::{free_port, Cluster, Options};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a test waits for the server to close a connection it should close; far
/// beyond the configured timeouts, so a loaded machine never fails a test.
const CLOSE_BOUND: Duration = Duration::from_secs(40);

/// Reads until the server closes `socket` (EOF or reset); fails if it is still open
/// after [`CLOSE_BOUND`]. Returns what was read.
async fn until_closed(socket: &mut TcpStream, what: &str) -> Result<Vec<u8>> {
    let mut seen = Vec::new();
    let read = tokio::time::timeout(CLOSE_BOUND, async {
        let mut buf = [0u8; 4096];
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    if read.is_err() {
        bail!("{what}: the server still holds the connection after {CLOSE_BOUND:?}");
    }
    Ok(seen)
}

/// Writes `head`, then `piece` every `every` until the server answers or closes the
/// connection; returns what it said (empty if it closed without a word). Fails if the
/// connection is still open after [`CLOSE_BOUND`]. Reading between writes lets the
/// answer arrive before the rest of a body is sent, so it is not lost to a reset.
async fn send_slowly(port: u16, head: &[u8], piece: &[u8], every: Duration, what: &str) -> Result<String> {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).await?;
    socket.write_all(head).await?;
    let deadline = tokio::time::Instant::now() + CLOSE_BOUND;
    let mut said = Vec::new();
    let mut buf = [0u8; 4096];
    while tokio::time::Instant::now() < deadline {
        if said.is_empty() && socket.write_all(piece).await.is_err() {
            break;
        }
        match tokio::time::timeout(every, socket.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return Ok(String::from_utf8_lossy(&said).into_owned()),
            Ok(Ok(n)) => said.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    if said.is_empty() {
        bail!("{what}: the server neither answered nor closed the connection within {CLOSE_BOUND:?}");
    }
    Ok(String::from_utf8_lossy(&said).into_owned())
}

/// Sends a request header one line every 500 ms (slowloris) until the server closes the
/// connection; fails if it is still open after [`CLOSE_BOUND`].
async fn trickle_until_closed(port: u16, what: &str) -> Result<()> {
    let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n";
    let said = send_slowly(port, head, b"X-Slow: 1\r\n", Duration::from_millis(500), what).await?;
    anyhow::ensure!(!said.contains(" 200 "), "{what}: a header that never ended was answered: {said}");
    Ok(())
}

/// The head of a raw chunk PUT starting a new upload of `total` bytes as `token`'s user.
fn chunk_head(port: u16, token: &str, content_type: &str, content_length: usize, total: usize) -> Vec<u8> {
    format!(
        "PUT /storage/tmp-upload/?filename=slow.bin HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Authorization: JWT {token}\r\nContent-Type: {content_type}\r\n\
         Content-Range: bytes 0-{last}/{total}\r\nContent-Length: {content_length}\r\n\r\n",
        last = content_length - 1,
    )
    .into_bytes()
}

/// The JSON body of a raw HTTP answer.
fn json_of(answer: &str) -> serde_json::Value {
    let body = answer.split_once("\r\n\r\n").map(|(_, body)| body).unwrap_or_default();
    serde_json::from_str(body.trim()).unwrap_or_default()
}

/// Item 3: every listener (API, node agent, worker and monitor operations) closes a
/// connection that sends nothing, one that trickles its header, and a keep-alive
/// connection left idle after its response. Before, all three stayed open for good.
#[tokio::test]
async fn every_listener_closes_idle_and_slow_header_connections() -> Result<()> {
    let cluster = Cluster::start_with(Options {
        nodes: 1,
        replication: 1,
        env: vec![("FERRY_HTTP__HEADER_READ_TIMEOUT_SECS".into(), "2".into())],
        ..Options::default()
    })
    .await?;
    let listeners = [
        ("api", cluster.api_port),
        ("node agent", cluster.nodes[0].agent_port),
        ("monitor", cluster.monitor_port),
        ("worker", cluster.worker_ports()[0]),
    ];
    for (name, port) in listeners {
        let mut idle = TcpStream::connect(("127.0.0.1", port)).await?;
        let mut kept_alive = TcpStream::connect(("127.0.0.1", port)).await?;
        kept_alive.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await?;
        let (slow_what, idle_what, kept_what) =
            (format!("{name}: slow header"), format!("{name}: idle"), format!("{name}: idle keep-alive"));
        let (slow, idle_read, kept_read) = tokio::join!(
            trickle_until_closed(port, &slow_what),
            until_closed(&mut idle, &idle_what),
            until_closed(&mut kept_alive, &kept_what),
        );
        slow?;
        idle_read?;
        let answered = String::from_utf8_lossy(&kept_read?).into_owned();
        anyhow::ensure!(answered.starts_with("HTTP/1.1 200"), "{name}: /healthz answered {answered:?}");
    }
    Ok(())
}

/// Item 3: a listener holds at most `http.max_connections` connections; the next one
/// waits until a slot frees instead of taking a descriptor. Shown on a node agent of
/// its own (cap 4, long header timeout), so nothing else connects to it.
#[tokio::test]
async fn a_listener_serves_at_most_its_connection_cap() -> Result<()> {
    let mut cluster = Cluster::start_with(Options { nodes: 1, replication: 1, ..Options::default() }).await?;
    let port = free_port();
    let root = cluster.dir.join("capped-node");
    cluster.spawn(
        "capped-node",
        "ferry-node",
        &[],
        &[
            ("FERRY_NODE__LISTEN", format!("127.0.0.1:{port}")),
            ("FERRY_NODE__ROOT", root.display().to_string()),
            ("FERRY_HTTP__MAX_CONNECTIONS", "4".into()),
            ("FERRY_HTTP__HEADER_READ_TIMEOUT_SECS", "120".into()),
        ],
    )?;
    let http = reqwest::Client::new();
    ferry_tests::eventually("the capped node agent to answer", Duration::from_secs(30), || {
        let req = http.get(format!("http://127.0.0.1:{port}/healthz")).timeout(Duration::from_secs(2)).send();
        async move { Ok(req.await.ok().filter(|r| r.status().is_success()).map(|_| ())) }
    })
    .await?;
    // reqwest's pooled connection is one of the four until dropped.
    drop(http);

    let mut holders = Vec::new();
    for _ in 0..4 {
        let mut holder = TcpStream::connect(("127.0.0.1", port)).await?;
        // A complete request proves the connection was accepted (and keeps it open).
        holder.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await?;
        let mut buf = [0u8; 512];
        let n = tokio::time::timeout(CLOSE_BOUND, holder.read(&mut buf)).await.context("holder answered")??;
        anyhow::ensure!(buf[..n].starts_with(b"HTTP/1.1 200"), "holder: {:?}", String::from_utf8_lossy(&buf[..n]));
        holders.push(holder);
    }
    let mut fifth = TcpStream::connect(("127.0.0.1", port)).await?;
    fifth.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await?;
    let mut buf = [0u8; 512];
    let early = tokio::time::timeout(Duration::from_secs(2), fifth.read(&mut buf)).await;
    anyhow::ensure!(early.is_err(), "a fifth connection was served while four held the cap of 4: {early:?}");
    drop(holders.pop());
    let answered = String::from_utf8_lossy(&until_closed(&mut fifth, "fifth connection").await?).into_owned();
    anyhow::ensure!(answered.starts_with("HTTP/1.1 200"), "fifth connection, once a slot freed: {answered:?}");
    Ok(())
}

/// Item 1: one user cannot take the upload intake. Alice holds her share (4 of the 8
/// slots) with chunk bodies trickled a byte every 500 ms: a fifth chunk of hers gets
/// 429 `too_many_uploads` with `Retry-After`, Bob still uploads, and each trickled body
/// is cut off with 408 `body_too_slow` once it falls below the floor (3 s, then
/// 1000 B/s), which frees the slots. Before, Alice's fifth was taken, and the trickles
/// held their slots for as long as she liked.
#[tokio::test]
async fn one_user_cannot_hold_the_upload_intake() -> Result<()> {
    let cluster = Cluster::start_with(Options {
        nodes: 1,
        replication: 1,
        env: vec![
            ("FERRY_API__MAX_CONCURRENT_UPLOADS".into(), "8".into()),
            ("FERRY_API__MAX_CONCURRENT_UPLOADS_PER_USER".into(), "4".into()),
            ("FERRY_API__BODY_READ_TIMEOUT_SECS".into(), "3".into()),
            ("FERRY_API__BODY_MIN_RATE_BYTES_PER_SEC".into(), "1000".into()),
        ],
        ..Options::default()
    })
    .await?;
    let alice = cluster.client("alice", "alicealice").await?;
    let bob = cluster.client("bob", "bobbobbob").await?;
    let token = alice.token.clone().context("alice's token")?;
    let port = cluster.api_port;
    let trickles: Vec<_> = (0..4)
        .map(|i| {
            let head = chunk_head(port, &token, "application/octet-stream", 100_000, 100_000);
            tokio::spawn(async move {
                send_slowly(port, &head, b"x", Duration::from_millis(500), &format!("trickle {i}")).await
            })
        })
        .collect();

    // Alice's fifth chunk, once her four hold their slots: 429 with Retry-After.
    let refused = ferry_tests::eventually("alice's fifth chunk to be refused", Duration::from_secs(3), || {
        let alice = alice.clone();
        async move {
            let res = alice.put_raw("/storage/tmp-upload/?filename=fifth.bin", "bytes 0-9/10", vec![7; 10]).await?;
            Ok((res.status == 429).then_some(res))
        }
    })
    .await?;
    assert_eq!(refused.code(), "too_many_uploads", "{}", refused.text());
    assert!(refused.json()["detail"].is_string(), "{}", refused.text());
    assert!(refused.header("retry-after").is_some(), "429 without Retry-After");
    // Bob is not turned away while Alice holds her share.
    let res = bob.upload("bob.bin", &ferry_tests::random_bytes(1000), 1000, None).await?;
    assert_eq!(res.status, 200, "{}", res.text());

    for trickle in trickles {
        let answer = trickle.await??;
        assert!(answer.starts_with("HTTP/1.1 408"), "a trickled body: {answer}");
        assert_eq!(json_of(&answer)["code"], "body_too_slow", "{answer}");
    }
    // Her slots are free again.
    let res = alice.upload("after.bin", &ferry_tests::random_bytes(1000), 1000, None).await?;
    assert_eq!(res.status, 200, "{}", res.text());
    Ok(())
}

/// Item 4: a multipart chunk whose preamble, or whose first part's header, never ends
/// is refused with 400 `multipart_limit` after a few KiB instead of being buffered.
/// Before, ferry-api kept reading it into memory (a 256 MiB header took it from 48 to
/// 529 MiB) and never answered.
#[tokio::test]
async fn an_endless_multipart_preamble_or_part_header_is_refused() -> Result<()> {
    let cluster = Cluster::start_with(Options {
        nodes: 1,
        replication: 1,
        // The body floor must not be what ends these bodies.
        env: vec![("FERRY_API__BODY_READ_TIMEOUT_SECS".into(), "600".into())],
        ..Options::default()
    })
    .await?;
    let alice = cluster.client("alice", "alicealice").await?;
    let token = alice.token.clone().context("alice's token")?;
    let port = cluster.api_port;
    let declared = 64 << 20;
    let content_type = "multipart/form-data; boundary=xyz";
    for (what, start) in [
        ("an endless part header", b"--xyz\r\nContent-Disposition: form-data; name=\"file\"\r\nX-Pad: ".to_vec()),
        ("an endless preamble", b"no boundary here ".to_vec()),
    ] {
        let mut head = chunk_head(port, &token, content_type, declared, declared);
        head.extend_from_slice(&start);
        let answer = send_slowly(port, &head, &[b'a'; 1024], Duration::from_millis(20), what).await?;
        assert!(answer.starts_with("HTTP/1.1 400"), "{what}: {answer}");
        assert_eq!(json_of(&answer)["code"], "multipart_limit", "{what}: {answer}");
    }
    let db = cluster.db().await?;
    let uploads: i64 = db.query_one("SELECT count(*) FROM uploads", &[]).await?.get(0);
    assert_eq!(uploads, 0, "a refused body recorded an upload");
    Ok(())
}
