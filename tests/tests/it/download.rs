//! Downloads: the redirect, the node's Range handling, and its signature checks.

use ferry_tests::{random_bytes, Client, Cluster};

#[tokio::test]
async fn node_range_edge_cases_and_signatures() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let api = cluster.client("alice", "alicealice").await?;
    let data = random_bytes(10_000);
    let id = api.upload("r.bin", &data, 4096, None).await?.json()["id"].as_str().unwrap_or_default().to_owned();
    let location = api.wait_download(&id).await?;
    assert!(location.contains(&format!("/files/{id}?exp=")), "{location}");
    let node = Client::anonymous(&cluster.api);

    let full = node.get(&location).await?;
    assert_eq!(full.status, 200);
    assert_eq!(full.header("accept-ranges").as_deref(), Some("bytes"));
    assert_eq!(full.body, data);
    let etag = full.header("etag").unwrap_or_default();

    for (range, start, end) in [
        ("bytes=0-0", 0, 0),
        ("bytes=9999-9999", 9999, 9999),
        ("bytes=-10", 9990, 9999),
        ("bytes=100-", 100, 9999),
        ("bytes=5000-99999", 5000, 9999),
    ] {
        let res = node.get_with(&location, &[("Range", range)]).await?;
        assert_eq!(res.status, 206, "{range}");
        assert_eq!(res.header("content-range"), Some(format!("bytes {start}-{end}/10000")), "{range}");
        assert_eq!(res.body, &data[start..=end], "{range}");
    }
    for range in ["bytes=10000-", "bytes=20000-30000", "bytes=-0"] {
        let res = node.get_with(&location, &[("Range", range)]).await?;
        assert_eq!(res.status, 416, "{range}");
        assert_eq!(res.header("content-range").as_deref(), Some("bytes */10000"));
    }
    // If-Range: a matching ETag keeps the range, another one gets the whole file.
    let res = node.get_with(&location, &[("Range", "bytes=0-9"), ("If-Range", &etag)]).await?;
    assert_eq!((res.status, res.body.len()), (206, 10));
    let res = node.get_with(&location, &[("Range", "bytes=0-9"), ("If-Range", "\"other\"")]).await?;
    assert_eq!((res.status, res.body.len()), (200, 10_000));

    // Signatures: forged, missing, expired, for another file.
    let (path, _) = location.split_once('?').unwrap_or_default();
    let exp: i64 =
        location.split("exp=").nth(1).and_then(|s| s.split('&').next()).and_then(|s| s.parse().ok()).unwrap_or(0);
    let forged = format!("{path}?exp={exp}&sig={}", "0".repeat(64));
    let missing = path.to_owned();
    let later = location.replace(&format!("exp={exp}"), &format!("exp={}", exp + 1));
    for url in [forged, missing, later] {
        let res = node.get(&url).await?;
        assert_eq!(res.status, 403, "{url}");
    }
    let secret = cluster.signing_secret.as_bytes();
    let past = chrono::Utc::now().timestamp() - 10;
    let sig = sign(secret, &id, past, None);
    let expired = format!("{path}?exp={past}&sig={sig}");
    let res = node.get(&expired).await?;
    assert_eq!((res.status, res.code().as_str()), (403, "link_expired"));
    // Traversal attempts never leave the root.
    let base = path.rsplit_once("/files/").map(|(b, _)| b.to_owned()).unwrap_or_default();
    for evil in ["/files/..%2f..%2fetc%2fpasswd", "/files/../../etc/passwd", "/files/%2e%2e"] {
        let res = node.get(&format!("{base}{evil}?exp={exp}&sig=00")).await?;
        assert!(res.status == 404 || res.status == 403, "{evil}: {}", res.status);
        assert!(!res.text().contains("root:"), "{evil}");
    }
    Ok(())
}

/// The API's URL signature, recomputed (HMAC-SHA256 over the documented message).
fn sign(secret: &[u8], file: &str, exp: i64, sha256: Option<&str>) -> String {
    use sha2::Digest;
    // HMAC by hand (RFC 2104) to keep the test independent of the code under test.
    let mut key = [0u8; 64];
    if secret.len() > 64 {
        key[..32].copy_from_slice(&sha2::Sha256::digest(secret));
    } else {
        key[..secret.len()].copy_from_slice(secret);
    }
    let message = match sha256 {
        Some(sha) => format!("ferry-download-v1\n{file}\n{exp}\n{sha}"),
        None => format!("ferry-download-v1\n{file}\n{exp}"),
    };
    let inner = sha2::Sha256::new().chain_update(key.map(|b| b ^ 0x36)).chain_update(message.as_bytes()).finalize();
    hex::encode(sha2::Sha256::new().chain_update(key.map(|b| b ^ 0x5c)).chain_update(inner).finalize())
}

#[tokio::test]
async fn no_healthy_copy_means_503_and_a_still_assembling_file_409() -> anyhow::Result<()> {
    let mut cluster =
        Cluster::start_with(ferry_tests::Options { nodes: 1, replication: 1, ..Default::default() }).await?;
    let api = cluster.client("alice", "alicealice").await?;
    let data = random_bytes(3000);
    let id = api.upload("a.bin", &data, 4096, None).await?.json()["id"].as_str().unwrap_or_default().to_owned();
    api.wait_download(&id).await?;
    // An open upload is not a file yet.
    let res = api.put_raw("/storage/tmp-upload/?filename=b", "bytes 0-9/20", data[..10].to_vec()).await?;
    let open = res.json()["id"].as_str().unwrap_or_default().to_owned();
    let res = api.get(&format!("/storage/download/{open}/")).await?;
    assert_eq!((res.status, res.json()["state"].as_str()), (409, Some("uploading")));
    // The only node dies: once its heartbeat is stale, no redirect to it.
    cluster.stop_node(0);
    let res = ferry_tests::eventually("503 while the node is down", std::time::Duration::from_secs(20), || {
        let api = api.clone();
        let path = format!("/storage/download/{id}/");
        async move {
            let res = api.get(&path).await?;
            Ok((res.status == 503).then_some(res))
        }
    })
    .await?;
    assert!(res.header("retry-after").is_some());
    cluster.start_node(0)?;
    api.wait_download(&id).await?;
    assert_eq!(api.download(&id, None).await?.body, data);
    Ok(())
}

#[tokio::test]
async fn a_copy_found_corrupt_while_served_is_withdrawn_and_repaired() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let api = cluster.client("alice", "alicealice").await?;
    // Larger than the node's 1 MiB read step, so the status line is out before the
    // verdict on the last step (a one-step file fails before any byte, head included).
    let data = random_bytes((3 << 20) + 4321);
    let id = api.upload("v.bin", &data, 1 << 20, None).await?.json()["id"].as_str().unwrap_or_default().to_owned();
    cluster.wait_replicas(&id, 2).await?;
    let location = api.wait_download(&id).await?;
    assert!(location.contains("&sha="), "the checksum is signed into the URL: {location}");
    let victim = cluster.nodes_holding(&id)[0];
    let path = cluster.nodes[victim].path_of(&id);
    let mut bytes = std::fs::read(&path)?;
    bytes[12345] ^= 0x55;
    std::fs::write(&path, &bytes)?;

    // A whole-file read from that node, signed as the API signs it.
    use sha2::Digest;
    let sha = hex::encode(sha2::Sha256::digest(&data));
    let exp = chrono::Utc::now().timestamp() + 600;
    let url = format!(
        "{}/files/{id}?exp={exp}&sha={sha}&sig={}",
        cluster.nodes[victim].public_url(),
        sign(cluster.signing_secret.as_bytes(), &id, exp, Some(&sha))
    );
    // The whole read starts as a 200 (the verdict needs every byte) but must never
    // arrive complete: the node cuts the body short before its last bytes.
    let http = reqwest::Client::builder().no_proxy().timeout(std::time::Duration::from_secs(60)).build()?;
    let res = http.get(&url).send().await?;
    assert_eq!(res.status(), 200);
    assert_eq!(res.content_length(), Some(data.len() as u64));
    match res.bytes().await {
        Err(_) => {}
        Ok(body) => assert!(body.len() < data.len(), "a corrupt copy arrived complete ({} bytes)", body.len()),
    }
    let node = Client::anonymous(&cluster.api);
    // Never served again, and repaired to R verified copies.
    ferry_tests::eventually("the corrupt copy withdrawn", std::time::Duration::from_secs(10), || {
        let node = node.clone();
        let url = url.clone();
        async move { Ok((node.get(&url).await?.status == 404).then_some(())) }
    })
    .await?;
    ferry_tests::eventually("R good copies again", std::time::Duration::from_secs(60), || {
        let holders = cluster.nodes_holding(&id);
        let good = holders.len() == 2
            && holders.iter().all(|&i| std::fs::read(cluster.nodes[i].path_of(&id)).ok().as_deref() == Some(&data[..]));
        async move { Ok(good.then_some(())) }
    })
    .await?;
    cluster.wait_replicas(&id, 2).await?;
    // The withdrawn copy's replica was `failed` with its reason; with R present copies
    // again the monitor's sweep forgets it (the job records keep the history), so
    // whatever the fault left on that node is the orphan sweep's to reclaim.
    cluster.wait_failed_forgotten(&id).await?;
    Ok(())
}
