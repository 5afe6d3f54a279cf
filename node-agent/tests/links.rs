//! Who may download what: signatures, expiry, unknown and malformed ids, and attempts
//! to name a path outside the root.

mod common;

use common::{error_body, now, pattern, raw_get, TestNode, SECRET};
use ferry_shared::signing;
use ferry_shared::types::{FileId, Sha256};
use reqwest::StatusCode;

#[tokio::test]
async fn forged_expired_and_missing_signatures_get_403() {
    let node = TestNode::start().await;
    let id = node.new_file(&pattern(100));
    let path = format!("/files/{id}");
    let exp = now() + 600;
    let good_sig = signing::sign(SECRET.as_bytes(), id, exp, None, None);

    let cases = [
        // Signed with another key.
        (node.link_with(b"not-the-secret", id, exp, None), "invalid_signature"),
        // Expiry pushed back by the client.
        (node.url(&format!("{path}?exp={}&sig={good_sig}", exp + 3600)), "invalid_signature"),
        // Another file's signature.
        (node.url(&format!("/files/{}?exp={exp}&sig={good_sig}", FileId::new())), "invalid_signature"),
        // A checksum the API did not sign.
        (node.url(&format!("{path}?exp={exp}&sha={}&sig={good_sig}", Sha256([3; 32]))), "invalid_signature"),
        (node.url(&format!("{path}?exp={exp}&sig=")), "invalid_signature"),
        (node.url(&format!("{path}?exp={exp}&sig=zz")), "invalid_signature"),
        // Missing parts.
        (node.url(&path), "invalid_signature"),
        (node.url(&format!("{path}?exp={exp}")), "invalid_signature"),
        (node.url(&format!("{path}?sig={good_sig}")), "invalid_signature"),
        // Malformed parts: answered in the house format, not the framework's.
        (node.url(&format!("{path}?exp=tomorrow&sig={good_sig}")), "invalid_signature"),
        (node.url(&format!("{path}?exp={exp}&sig={good_sig}&sig={good_sig}")), "invalid_signature"),
        // A genuine link that has run out.
        (node.link_with(SECRET.as_bytes(), id, now() - 10, None), "link_expired"),
    ];
    for (url, code) in cases {
        let response = node.client.get(&url).send().await.expect("request");
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{url}");
        assert_eq!(error_body(response).await["code"], code, "{url}");
        let response = node.client.head(&url).send().await.expect("HEAD");
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "HEAD {url}");
    }

    // The genuine link still works.
    let response = node.client.get(node.link(id)).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn unknown_and_malformed_ids_get_404() {
    let node = TestNode::start().await;

    // Well signed, but this node holds no copy.
    let response = node.client.get(node.link(FileId::new())).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_body(response).await["code"], "not_found");

    for path in ["/files/not-a-uuid?exp=1&sig=00", "/files/123", "/files/%00", "/nowhere", "/files/"] {
        let response = node.client.get(node.url(path)).send().await.expect("request");
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(error_body(response).await["code"], "not_found", "{path}");
    }
}

#[tokio::test]
async fn a_directory_in_place_of_a_file_is_not_found() {
    let node = TestNode::start().await;
    let id = FileId::new();
    std::fs::create_dir_all(node.root.join(id.node_relpath())).expect("mkdir");
    let response = node.client.get(node.link(id)).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn other_methods_get_405_in_the_house_format() {
    let node = TestNode::start().await;
    let id = node.new_file(&pattern(10));
    for method in [reqwest::Method::POST, reqwest::Method::PUT, reqwest::Method::DELETE] {
        let response = node.client.request(method.clone(), node.link(id)).send().await.expect("request");
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(error_body(response).await["code"], "method_not_allowed");
    }
    assert!(common::exists(&node.root.join(id.node_relpath())), "nothing was deleted");
}

#[tokio::test]
async fn traversal_never_reaches_outside_the_root() {
    let node = TestNode::start().await;
    // A file beside the root, and one in the root under a non-id name: neither may be
    // served, whatever the encoding.
    let marker = "ferry-secret-marker";
    std::fs::write(node.dir.0.join("outside"), marker).expect("write outside file");
    std::fs::write(node.root.join("inside"), marker).expect("write inside file");
    let exp = now() + 600;
    let any_sig = signing::sign(SECRET.as_bytes(), FileId::new(), exp, None, None);

    let targets = [
        "/files/..%2foutside".to_owned(),
        "/files/..%2f..%2fetc%2fpasswd".to_owned(),
        "/files/..%2F..%2F..%2F..%2Fetc%2Fpasswd".to_owned(),
        "/files/%2e%2e%2foutside".to_owned(),
        "/files/%2e%2e%2f%2e%2e%2fetc%2fpasswd".to_owned(),
        "/files/..%252foutside".to_owned(),
        "/files/%2fetc%2fpasswd".to_owned(),
        "/files/inside".to_owned(),
        "/files/..".to_owned(),
        "/files/../outside".to_owned(),
        "/files/../../etc/passwd".to_owned(),
        "/files/../../../../../../etc/passwd".to_owned(),
        "/files/..\\..\\etc\\passwd".to_owned(),
        "/../outside".to_owned(),
        format!("/files/..%2foutside?exp={exp}&sig={any_sig}"),
        format!("/files/..%2f..%2fetc%2fpasswd?exp={exp}&sig={any_sig}"),
    ];
    for target in &targets {
        let (status, response) = raw_get(node.addr, target).await;
        assert!(status == 404 || status == 400, "{target}: status {status}");
        assert!(!response.contains(marker), "{target} leaked a file");
        assert!(!response.contains("root:"), "{target} leaked /etc/passwd");
    }
}
