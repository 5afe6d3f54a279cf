//! A node agent running in-process on a loopback port 0 over its own temporary root,
//! with helpers to place files and sign links the way the API does.

#![allow(dead_code)] // Each test binary uses a different subset.

use std::path::{Path, PathBuf};

use ferry_node_agent::RunError;
use ferry_shared::config::{Config, Secret};
use ferry_shared::signing;
use ferry_shared::types::{FileId, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const SECRET: &str = "node-agent-test-secret-0123456789abcdef";

/// A directory under the system temp dir, removed on drop. It holds the node's `root`
/// and, beside it, files a traversal attempt would like to reach.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!("ferry-node-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct TestNode {
    pub base: String,
    pub addr: std::net::SocketAddr,
    pub root: PathBuf,
    pub client: reqwest::Client,
    pub dir: TempDir,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), RunError>>,
}

impl TestNode {
    /// Starts `run` with a root that does not exist yet (run creates it).
    pub async fn start() -> TestNode {
        TestNode::start_with(ferry_node_agent::Options::default()).await
    }

    /// Starts `run_with` these options.
    pub async fn start_with(options: ferry_node_agent::Options) -> TestNode {
        let dir = TempDir::new();
        let root = dir.0.join("root");
        let mut config = Config::default();
        config.node.root = root.clone();
        config.signing.secret = Secret::new(SECRET);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let addr = listener.local_addr().expect("local addr");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(ferry_node_agent::run_with(config, options, listener, shutdown.clone()));
        // The root exists once run has started; wait for it so tests can write files.
        for _ in 0..500 {
            if root.is_dir() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(root.is_dir(), "run() did not create the root");
        let client = reqwest::Client::builder().no_proxy().build().expect("http client");
        TestNode { base: format!("http://{addr}"), addr, root, client, dir, shutdown, task }
    }

    /// Writes `bytes` where the node keeps `id`: `<root>/<2 hex>/<uuid>`.
    pub fn put(&self, id: FileId, bytes: &[u8]) -> PathBuf {
        let path = self.root.join(id.node_relpath());
        std::fs::create_dir_all(path.parent().expect("relpath has a parent")).expect("create shard dir");
        std::fs::write(&path, bytes).expect("write file");
        path
    }

    /// A fresh file with `bytes`; its id.
    pub fn new_file(&self, bytes: &[u8]) -> FileId {
        let id = FileId::new();
        self.put(id, bytes);
        id
    }

    /// A link valid for ten minutes, as the API would issue it.
    pub fn link(&self, id: FileId) -> String {
        self.link_with(SECRET.as_bytes(), id, now() + 600, None)
    }

    pub fn link_with(&self, secret: &[u8], id: FileId, exp: i64, sha: Option<&Sha256>) -> String {
        format!("{}{}", self.base, signing::signed_path(secret, id, exp, sha, None))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops the node as SIGTERM would and returns what `run` returned.
    pub async fn stop(self) -> Result<(), RunError> {
        self.shutdown.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(10), self.task)
            .await
            .expect("run returns promptly once idle")
            .expect("run task did not panic")
    }
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// `len` bytes in which neighbouring positions differ, so a range served from the
/// wrong offset is caught.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8).collect()
}

/// The JSON body of an error response, checked to have the house shape.
pub async fn error_body(response: reqwest::Response) -> serde_json::Value {
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(content_type.as_deref(), Some("application/json"), "error bodies are JSON");
    let body: serde_json::Value = response.json().await.expect("JSON error body");
    assert!(body["detail"].is_string(), "error body has a detail: {body}");
    assert!(body["code"].is_string(), "error body has a code: {body}");
    body
}

/// Sends `target` verbatim as the request target (clients normalise `..` and `%2e`
/// away, attackers do not) and returns the status code and the raw response.
pub async fn raw_get(addr: std::net::SocketAddr, target: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send request");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read response");
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"));
    (status, response)
}

pub fn exists(path: &Path) -> bool {
    path.try_exists().expect("stat")
}
