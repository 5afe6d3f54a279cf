//! Downloads through a signed link: full bodies, ranges, `If-Range`, HEAD.

mod common;

use common::{error_body, pattern, TestNode};
use ferry_node_agent::body::READ_STEP;
use reqwest::header::{ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_RANGE, RANGE};
use reqwest::{Response, StatusCode};

fn header(response: &Response, name: reqwest::header::HeaderName) -> Option<String> {
    response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

async fn get_range(node: &TestNode, url: &str, range: &str) -> Response {
    node.client.get(url).header(RANGE, range).send().await.expect("request")
}

#[tokio::test]
async fn whole_file_with_its_headers() {
    let node = TestNode::start().await;
    let data = pattern(10_000);
    let id = node.new_file(&data);

    let response = node.client.get(node.link(id)).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, CONTENT_LENGTH).as_deref(), Some("10000"));
    assert_eq!(header(&response, CONTENT_TYPE).as_deref(), Some("application/octet-stream"));
    assert_eq!(header(&response, ACCEPT_RANGES).as_deref(), Some("bytes"));
    assert_eq!(header(&response, CONTENT_RANGE), None);
    let etag = header(&response, ETAG).expect("an ETag");
    assert!(etag.starts_with('"') && !etag.starts_with("W/"), "a strong ETag: {etag}");
    assert_eq!(response.bytes().await.expect("body").as_ref(), &data[..]);

    // The same bytes get the same tag.
    let again = node.client.get(node.link(id)).send().await.expect("request");
    assert_eq!(header(&again, ETAG), Some(etag));
    node.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_file_larger_than_several_read_steps_streams_intact() {
    let node = TestNode::start().await;
    let len = 2 * READ_STEP as usize + 12_345;
    let data = pattern(len);
    let id = node.new_file(&data);

    let body = node.client.get(node.link(id)).send().await.expect("request").bytes().await.expect("body");
    assert_eq!(body.len(), len);
    assert!(body.as_ref() == &data[..], "streamed bytes differ from the file");

    // A range straddling a step boundary.
    let (a, b) = (READ_STEP as usize - 10, READ_STEP as usize + 10);
    let response = get_range(&node, &node.link(id), &format!("bytes={a}-{b}")).await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(response.bytes().await.expect("body").as_ref(), &data[a..=b]);
}

#[tokio::test]
async fn single_ranges_in_every_form() {
    let node = TestNode::start().await;
    let data = pattern(1000);
    let id = node.new_file(&data);
    let url = node.link(id);

    for (range, start, end) in [
        ("bytes=0-0", 0, 0),          // first byte
        ("bytes=999-999", 999, 999),  // last byte
        ("bytes=100-199", 100, 199),  // a middle slice
        ("bytes=-10", 990, 999),      // suffix
        ("bytes=-5000", 0, 999),      // suffix longer than the file
        ("bytes=900-", 900, 999),     // open-ended
        ("bytes=950-5000", 950, 999), // end clamped to the file
    ] {
        let response = get_range(&node, &url, range).await;
        assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(header(&response, CONTENT_RANGE), Some(format!("bytes {start}-{end}/1000")), "{range}");
        assert_eq!(header(&response, CONTENT_LENGTH), Some((end - start + 1).to_string()), "{range}");
        assert_eq!(header(&response, ACCEPT_RANGES).as_deref(), Some("bytes"));
        assert!(header(&response, ETAG).is_some());
        assert_eq!(response.bytes().await.expect("body").as_ref(), &data[start..=end], "{range}");
    }
}

#[tokio::test]
async fn unsatisfiable_ranges_get_416_with_the_length() {
    let node = TestNode::start().await;
    let id = node.new_file(&pattern(1000));
    let url = node.link(id);

    for range in ["bytes=1000-", "bytes=1000-2000", "bytes=5000-5001", "bytes=-0"] {
        let response = get_range(&node, &url, range).await;
        assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(header(&response, CONTENT_RANGE).as_deref(), Some("bytes */1000"), "{range}");
        assert_eq!(error_body(response).await["code"], "range_not_satisfiable");
    }
}

#[tokio::test]
async fn invalid_and_multiple_ranges_get_the_whole_file() {
    let node = TestNode::start().await;
    let data = pattern(1000);
    let id = node.new_file(&data);
    let url = node.link(id);

    for range in ["bytes=5-3", "bytes=abc", "items=0-10", "bytes=0-1,5-6", "bytes=-", "0-10"] {
        let response = get_range(&node, &url, range).await;
        assert_eq!(response.status(), StatusCode::OK, "{range}");
        assert_eq!(header(&response, CONTENT_RANGE), None, "{range}");
        assert_eq!(response.bytes().await.expect("body").len(), data.len(), "{range}");
    }
}

#[tokio::test]
async fn if_range_honours_the_range_only_for_the_current_etag() {
    let node = TestNode::start().await;
    let data = pattern(1000);
    let id = node.new_file(&data);
    let url = node.link(id);
    let etag = header(&node.client.head(&url).send().await.expect("HEAD"), ETAG).expect("an ETag");

    let matching = node.client.get(&url).header(RANGE, "bytes=10-19").header(IF_RANGE, &etag).send().await;
    let matching = matching.expect("request");
    assert_eq!(matching.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(matching.bytes().await.expect("body").as_ref(), &data[10..20]);

    for stale in ["\"some-other-tag\"", &format!("W/{etag}"), "Tue, 15 Nov 1994 08:12:31 GMT"] {
        let response = node.client.get(&url).header(RANGE, "bytes=10-19").header(IF_RANGE, stale).send().await;
        let response = response.expect("request");
        assert_eq!(response.status(), StatusCode::OK, "If-Range: {stale}");
        assert_eq!(header(&response, CONTENT_RANGE), None);
        assert_eq!(response.bytes().await.expect("body").as_ref(), &data[..], "If-Range: {stale}");
    }

    // A file replaced under the same id (repair) gets a new tag, so a client resuming
    // with the old one starts over instead of splicing two copies.
    std::thread::sleep(std::time::Duration::from_millis(20));
    node.put(id, &pattern(1001));
    let response = node.client.get(&url).header(RANGE, "bytes=10-19").header(IF_RANGE, &etag).send().await;
    let response = response.expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert_ne!(header(&response, ETAG), Some(etag));
}

#[tokio::test]
async fn head_has_the_headers_and_no_body() {
    let node = TestNode::start().await;
    let id = node.new_file(&pattern(4321));
    let url = node.link(id);

    let response = node.client.head(&url).send().await.expect("HEAD");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, CONTENT_LENGTH).as_deref(), Some("4321"));
    assert_eq!(header(&response, ACCEPT_RANGES).as_deref(), Some("bytes"));
    assert_eq!(header(&response, CONTENT_TYPE).as_deref(), Some("application/octet-stream"));
    assert!(header(&response, ETAG).is_some());
    assert!(response.bytes().await.expect("body").is_empty());

    let response = node.client.head(&url).header(RANGE, "bytes=-21").send().await.expect("HEAD");
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&response, CONTENT_RANGE).as_deref(), Some("bytes 4300-4320/4321"));
    assert_eq!(header(&response, CONTENT_LENGTH).as_deref(), Some("21"));
}

#[tokio::test]
async fn an_empty_file_has_no_satisfiable_range() {
    let node = TestNode::start().await;
    let id = node.new_file(b"");
    let url = node.link(id);

    let response = node.client.get(&url).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, CONTENT_LENGTH).as_deref(), Some("0"));
    assert!(response.bytes().await.expect("body").is_empty());

    let response = get_range(&node, &url, "bytes=0-").await;
    assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&response, CONTENT_RANGE).as_deref(), Some("bytes */0"));
}

#[tokio::test]
async fn a_file_truncated_while_served_ends_short_instead_of_padding() {
    let node = TestNode::start().await;
    let len = 8 * READ_STEP as usize;
    let data = pattern(len);
    let id = node.new_file(&data);
    let path = node.root.join(id.node_relpath());

    let response = node.client.get(node.link(id)).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    // Headers are out (Content-Length = the old size); now the file loses its tail.
    std::fs::OpenOptions::new().write(true).open(&path).expect("open").set_len(READ_STEP).expect("truncate");
    match response.bytes().await {
        Err(_) => {}
        Ok(body) => {
            assert!(body.len() < len, "the body ends short of Content-Length");
            assert!(body.as_ref() == &data[..body.len()], "and never carries stale buffer bytes");
        }
    }
}

/// A client that asks for a big file and then stops reading is dropped once the bytes
/// sent to it stay unacknowledged past the stalled-peer timeout (TCP_USER_TIMEOUT, which
/// also covers a receive window kept shut), so it cannot hold the node's read buffers
/// forever: reading on afterwards ends short of the body.
#[tokio::test]
async fn a_client_that_stops_reading_is_dropped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let options = ferry_node_agent::Options {
        stalled_peer_timeout: std::time::Duration::from_millis(500),
        ..ferry_node_agent::Options::default()
    };
    let node = TestNode::start_with(options).await;
    // Far more than the socket buffers on both sides and the agent's read-ahead hold.
    let size = 64 << 20;
    let id = node.new_file(&vec![7u8; size]);
    let path = node.link(id).trim_start_matches(&node.base).to_owned();

    let mut tcp = tokio::net::TcpStream::connect(node.addr).await.expect("connect");
    tcp.write_all(format!("GET {path} HTTP/1.1\r\nHost: node\r\n\r\n").as_bytes()).await.expect("send request");
    // Stop reading long enough for the window to close and the timeout to pass.
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;

    // Read what is left until the connection ends, or until more than the body came
    // (head + body: served in full) or nothing came for a while (kept alive after it).
    let mut received = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    while received <= size {
        match tokio::time::timeout(std::time::Duration::from_secs(10), tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => received += n,
        }
    }
    assert!(received < size, "the stalled connection was served in full ({received} bytes with the head)");

    // The node still serves others (its buffers came back).
    let response = node.client.get(node.link(id)).send().await.expect("request");
    assert_eq!(response.bytes().await.expect("body").len(), size);
}

/// RFC 9110 §13: a current ETag or date answers 304 with the validators and no body; a
/// failed `If-Match` or `If-Unmodified-Since` answers 412; an old ETag gets the file.
#[tokio::test]
async fn conditional_requests_get_304_and_412() {
    use reqwest::header::{IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_UNMODIFIED_SINCE, LAST_MODIFIED};
    let node = TestNode::start().await;
    let data = pattern(5_000);
    let id = node.new_file(&data);
    let url = node.link(id);
    let first = node.client.get(&url).send().await.expect("request");
    let etag = header(&first, ETAG).expect("an ETag");
    let last_modified = header(&first, LAST_MODIFIED).expect("a Last-Modified date");

    for (name, value) in [(IF_NONE_MATCH, etag.as_str()), (IF_NONE_MATCH, "*"), (IF_MODIFIED_SINCE, &last_modified)] {
        let response = node.client.get(&url).header(name.clone(), value).send().await.expect("request");
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED, "{name}: {value}");
        assert_eq!(header(&response, ETAG).as_deref(), Some(etag.as_str()));
        assert_eq!(header(&response, LAST_MODIFIED).as_deref(), Some(last_modified.as_str()));
        assert!(response.bytes().await.expect("body").is_empty(), "a 304 has no body");
    }
    let head = node.client.head(&url).header(IF_NONE_MATCH, &etag).send().await.expect("request");
    assert_eq!(head.status(), StatusCode::NOT_MODIFIED);

    for (name, value) in [(IF_MATCH, "\"another\""), (IF_UNMODIFIED_SINCE, "Thu, 01 Jan 1970 00:00:01 GMT")] {
        let response = node.client.get(&url).header(name.clone(), value).send().await.expect("request");
        assert_eq!(response.status(), StatusCode::PRECONDITION_FAILED, "{name}: {value}");
        assert_eq!(error_body(response).await["code"], "precondition_failed");
    }
    // Conditions that hold serve the file (a range too).
    let response = node.client.get(&url).header(IF_NONE_MATCH, "\"stale\"").send().await.expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.bytes().await.expect("body").as_ref(), &data[..]);
    let response =
        node.client.get(&url).header(IF_MATCH, &etag).header(RANGE, "bytes=0-9").send().await.expect("request");
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    node.stop().await.expect("clean stop");
}

/// The stored name travels in the signed link and comes back as `Content-Disposition`
/// (RFC 6266, `filename*` per RFC 8187) with a `Content-Type` from its extension; a
/// link whose name was changed is refused.
#[tokio::test]
async fn the_signed_name_comes_back_as_content_disposition() {
    use reqwest::header::CONTENT_DISPOSITION;
    let node = TestNode::start().await;
    let data = pattern(3_000);
    let id = node.new_file(&data);
    let name = "résumé 2024 (final).pdf";
    let path = ferry_shared::signing::signed_path(common::SECRET.as_bytes(), id, common::now() + 60, None, Some(name));
    let response = node.client.get(node.url(&path)).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, CONTENT_TYPE).as_deref(), Some("application/pdf"));
    assert_eq!(
        response.headers().get(CONTENT_DISPOSITION).map(|v| v.as_bytes()),
        Some("attachment; filename=\"résumé 2024 (final).pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%202024%20%28final%29.pdf".as_bytes())
    );
    assert_eq!(response.bytes().await.expect("body").as_ref(), &data[..]);

    let renamed = path.replace("name=r%C3%A9sum%C3%A9", "name=evil");
    let response = node.client.get(node.url(&renamed)).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    node.stop().await.expect("clean stop");
}
