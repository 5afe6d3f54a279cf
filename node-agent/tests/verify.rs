//! Whole-file reads under a link that carries the file's sha256 are verified as they
//! are served; a rotten copy is withdrawn and reported to the monitor.

mod common;

use common::{exists, now, pattern, TestNode, SECRET};
use ferry_shared::types::Sha256;
use reqwest::header::RANGE;
use reqwest::StatusCode;
use sha2::Digest;

fn sha256(data: &[u8]) -> Sha256 {
    Sha256(sha2::Sha256::digest(data).into())
}

#[tokio::test]
async fn a_sound_copy_is_served_and_kept() {
    let node = TestNode::start().await;
    let data = pattern(3 << 20);
    let id = node.new_file(&data);
    let url = node.link_with(SECRET.as_bytes(), id, now() + 600, Some(&sha256(&data)));

    let body = node.client.get(&url).send().await.expect("request").bytes().await.expect("complete body");
    assert!(body.as_ref() == &data[..]);
    assert!(exists(&node.root.join(id.node_relpath())));
    let health: serde_json::Value =
        node.client.get(node.url("/health")).send().await.expect("request").json().await.expect("JSON");
    assert_eq!(health["corrupt"], serde_json::json!([]));
}

#[tokio::test]
async fn a_rotten_copy_is_cut_short_withdrawn_and_reported() {
    let node = TestNode::start().await;
    let data = pattern(3 << 20);
    let mut rotten = data.clone();
    rotten[2 << 20] ^= 0xff;
    let id = node.new_file(&rotten);
    let url = node.link_with(SECRET.as_bytes(), id, now() + 600, Some(&sha256(&data)));

    // A range is not checked (only whole reads are), and is served from the copy.
    let response = node.client.get(&url).header(RANGE, "bytes=0-9").send().await.expect("request");
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);

    // The whole read starts as a 200 but never completes.
    let response = node.client.get(&url).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.bytes().await.is_err(), "a corrupt copy must not arrive as a complete body");

    // The copy is moved aside, never served again, and reported.
    let path = node.root.join(id.node_relpath());
    assert!(!exists(&path));
    let shard = path.parent().expect("shard dir");
    let aside: Vec<String> = std::fs::read_dir(shard)
        .expect("list shard")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    assert!(aside.iter().any(|n| n.starts_with(&format!("{id}.corrupt-"))), "moved aside: {aside:?}");
    let response = node.client.get(&url).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let health: serde_json::Value =
        node.client.get(node.url("/health")).send().await.expect("request").json().await.expect("JSON");
    assert_eq!(health["corrupt"], serde_json::json!([id.to_string()]));
}

#[tokio::test]
async fn a_copy_changed_after_it_was_verified_is_verified_again() {
    let node = TestNode::start().await;
    let data = pattern(5 << 20);
    let id = node.new_file(&data);
    let url = node.link_with(SECRET.as_bytes(), id, now() + 600, Some(&sha256(&data)));

    // Verified on the first read; the second is served from the record of it.
    for _ in 0..2 {
        let body = node.client.get(&url).send().await.expect("request").bytes().await.expect("complete body");
        assert!(body.as_ref() == &data[..]);
    }

    // Rot written in place (same inode, same size) changes mtime and ctime, so the
    // record no longer vouches for the copy: the next whole read checks it again.
    let path = node.root.join(id.node_relpath());
    let mut rotten = data.clone();
    rotten[4 << 20] ^= 0x01;
    std::fs::write(&path, &rotten).expect("rewrite in place");
    let response = node.client.get(&url).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    match response.bytes().await {
        Err(_) => {}
        Ok(body) => assert!(body.len() < data.len(), "a corrupt copy must not arrive complete"),
    }
    assert!(!exists(&path), "withdrawn");
}

#[tokio::test]
async fn a_rotten_copy_of_one_step_is_cut_before_any_byte() {
    let node = TestNode::start().await;
    let data = pattern(1000);
    let mut rotten = data.clone();
    rotten[0] ^= 0xff;
    let id = node.new_file(&rotten);
    let url = node.link_with(SECRET.as_bytes(), id, now() + 600, Some(&sha256(&data)));

    // The verdict comes before the only step is sent, so hyper has nothing to send
    // but the head, which it may not flush before closing: either way no byte arrives.
    match node.client.get(&url).send().await {
        Err(_) => {}
        Ok(response) => {
            assert_eq!(response.status(), StatusCode::OK);
            match response.bytes().await {
                Err(_) => {}
                Ok(body) => assert!(body.is_empty(), "no byte of a one-step corrupt copy: got {}", body.len()),
            }
        }
    }
    assert!(!exists(&node.root.join(id.node_relpath())));
}

#[tokio::test]
async fn a_sound_copy_read_whole_many_times_at_once_stays() {
    let node = TestNode::start().await;
    let data = pattern((3 << 20) + 17);
    let id = node.new_file(&data);
    let url = node.link_with(SECRET.as_bytes(), id, now() + 600, Some(&sha256(&data)));
    let reads = (0..8).map(|_| {
        let (client, url) = (node.client.clone(), url.clone());
        tokio::spawn(async move { client.get(&url).send().await.expect("request").bytes().await.expect("body") })
    });
    for read in reads {
        assert!(read.await.expect("task").as_ref() == &data[..]);
    }
    assert!(exists(&node.root.join(id.node_relpath())));
}
