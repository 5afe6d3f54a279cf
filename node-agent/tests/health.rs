//! `/health` (the monitor's probe), `/healthz`, `/readyz`, `/metrics`, and shutdown.

mod common;

use common::{error_body, TestNode};
use reqwest::StatusCode;

#[tokio::test]
async fn health_reports_the_roots_filesystem() {
    let node = TestNode::start().await;
    let response = node.client.get(node.url("/health")).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(body["status"], "ok");
    let free = body["free_bytes"].as_u64().expect("free_bytes is a number");
    let total = body["total_bytes"].as_u64().expect("total_bytes is a number");
    assert_eq!(body["corrupt"], serde_json::json!([]));

    // The same numbers statvfs gives for the root (free space moves as other
    // processes write, so it is compared loosely).
    let stats = nix::sys::statvfs::statvfs(&node.root).expect("statvfs of the root");
    let unit = stats.fragment_size();
    assert_eq!(total, stats.blocks() * unit);
    let expected_free = stats.blocks_available() * unit;
    assert!(free <= total);
    assert!(free.abs_diff(expected_free) <= total / 50 + (64 << 20), "free {free} vs statvfs {expected_free}");
    node.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_vanished_root_makes_the_node_unhealthy_and_unready() {
    let node = TestNode::start().await;
    let response = node.client.get(node.url("/readyz")).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::OK);

    std::fs::remove_dir_all(&node.root).expect("remove the root");
    let response = node.client.get(node.url("/health")).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_body(response).await["code"], "root_unavailable");
    let response = node.client.get(node.url("/readyz")).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    // The process itself is still up.
    let response = node.client.get(node.url("/healthz")).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::OK);

    // A file where the root should be is not a usable root either.
    std::fs::write(&node.root, b"not a directory").expect("write");
    let response = node.client.get(node.url("/readyz")).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn metrics_are_served() {
    let node = TestNode::start().await;
    let response = node.client.get(node.url("/metrics")).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn shutdown_lets_an_idle_node_stop_at_once() {
    let node = TestNode::start().await;
    let addr = node.addr;
    let started = std::time::Instant::now();
    node.stop().await.expect("clean stop");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "the listener is closed");
}
