//! Listing, pagination and deletion.

use ferry_tests::{random_bytes, Cluster};

#[tokio::test]
async fn delete_hides_at_once_and_removes_the_replicas() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(ferry_tests::Options {
        env: vec![("FERRY_API__PAGE_SIZE".into(), "2".into())],
        ..Default::default()
    })
    .await?;
    let api = cluster.client("alice", "alicealice").await?;
    let mut ids = Vec::new();
    for i in 0..3 {
        let res = api.upload(&format!("f{i}"), &random_bytes(2000 + i), 1024, None).await?;
        ids.push(res.json()["id"].as_str().unwrap_or_default().to_owned());
    }
    // Newest first, two per page.
    let page1 = api.get("/storage/files/").await?.json();
    assert_eq!(page1["count"], 3);
    assert_eq!(page1["results"].as_array().map(Vec::len), Some(2));
    assert_eq!(page1["results"][0]["id"], ids[2].as_str());
    assert!(page1["previous"].is_null());
    let next = page1["next"].as_str().unwrap_or_default().to_owned();
    let page2 = api.get(&next).await?.json();
    assert_eq!(page2["results"][0]["id"], ids[0].as_str());
    assert!(page2["next"].is_null());
    assert_eq!(api.get("/storage/files/?page=3").await?.status, 404);
    assert_eq!(api.get("/storage/files/?page=18446744073709551615").await?.status, 404);

    let victim = ids[1].clone();
    cluster.wait_replicas(&victim, 2).await?;
    assert_eq!(cluster.nodes_holding(&victim).len(), 2);
    assert_eq!(api.delete(&format!("/storage/files/{victim}/")).await?.status, 204);
    assert_eq!(api.get("/storage/files/").await?.json()["count"], 2);
    assert_eq!(api.get(&format!("/storage/files/{victim}/")).await?.status, 404);
    assert_eq!(api.get(&format!("/storage/download/{victim}/")).await?.status, 404);
    assert_eq!(api.delete(&format!("/storage/files/{victim}/")).await?.status, 404);
    ferry_tests::eventually("replicas removed from the nodes", std::time::Duration::from_secs(30), || {
        let holding = cluster.nodes_holding(&victim);
        async move { Ok(holding.is_empty().then_some(())) }
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn expiry_reclaims_abandoned_uploads_and_never_touches_files() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(ferry_tests::Options {
        nodes: 1,
        replication: 1,
        env: vec![("FERRY_STORAGE__UPLOAD_EXPIRY_SECS".into(), "2".into())],
        ..Default::default()
    })
    .await?;
    let api = cluster.client("alice", "alicealice").await?;
    let kept = random_bytes(3000);
    let file = api.upload("kept", &kept, 4096, None).await?.json()["id"].as_str().unwrap_or_default().to_owned();
    let res = api.put_raw("/storage/tmp-upload/?filename=abandoned", "bytes 0-9/20", random_bytes(10)).await?;
    let url = res.json()["url"].as_str().unwrap_or_default().to_owned();
    let abandoned = res.json()["id"].as_str().unwrap_or_default().to_owned();
    assert!(cluster.staging.join(&abandoned).exists());

    ferry_tests::eventually("the upload to expire", std::time::Duration::from_secs(30), || {
        let api = api.clone();
        let url = url.clone();
        async move { Ok((api.get(&url).await?.json()["state"] == "expired").then_some(())) }
    })
    .await?;
    let res = api.put_raw(&url, "bytes 10-19/20", random_bytes(10)).await?;
    assert_eq!((res.status, res.code().as_str()), (410, "upload_expired"));
    ferry_tests::eventually("its staging bytes reclaimed", std::time::Duration::from_secs(30), || {
        let gone = !cluster.staging.join(&abandoned).exists();
        async move { Ok(gone.then_some(())) }
    })
    .await?;
    // The completed file is untouched.
    api.wait_download(&file).await?;
    assert_eq!(api.download(&file, None).await?.body, kept);
    assert_eq!(api.get("/storage/files/").await?.json()["count"], 1);
    Ok(())
}

#[tokio::test]
async fn garbage_on_nodes_and_in_staging_is_reclaimed_after_the_grace() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(ferry_tests::Options {
        nodes: 1,
        replication: 1,
        env: vec![
            ("FERRY_WORKER__GC_INTERVAL_SECS".into(), "1".into()),
            ("FERRY_WORKER__GC_GRACE_SECS".into(), "120".into()),
        ],
        ..Default::default()
    })
    .await?;
    let api = cluster.client("alice", "alicealice").await?;
    let data = random_bytes(5000);
    let live = api.upload("live", &data, 4096, None).await?.json()["id"].as_str().unwrap_or_default().to_owned();
    cluster.wait_replicas(&live, 1).await?;
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    let plant = |path: &std::path::Path, age: Option<std::time::SystemTime>| -> anyhow::Result<()> {
        std::fs::create_dir_all(path.parent().unwrap_or(path))?;
        let file = std::fs::File::create(path)?;
        if let Some(at) = age {
            file.set_modified(at)?;
        }
        Ok(())
    };
    let node = &cluster.nodes[0];
    let orphan = uuid::Uuid::new_v4().to_string();
    let young = uuid::Uuid::new_v4().to_string();
    plant(&node.path_of(&orphan), Some(old))?;
    plant(&node.path_of(&young), None)?;
    // Make the live copy look old too: it has a row, so it must stay.
    std::fs::File::options().append(true).open(node.path_of(&live))?.set_modified(old)?;
    let stray = cluster.staging.join(uuid::Uuid::new_v4().to_string());
    std::fs::create_dir_all(&stray)?;
    std::fs::File::open(&stray)?.set_modified(old)?;

    ferry_tests::eventually("the old orphans removed", std::time::Duration::from_secs(30), || {
        let done = !node.path_of(&orphan).exists() && !stray.exists();
        async move { Ok(done.then_some(())) }
    })
    .await?;
    assert!(node.path_of(&young).exists(), "a young file is left alone");
    assert!(node.path_of(&live).exists(), "a file with a replica row is never touched");
    assert_eq!(api.download(&live, None).await?.body, data);
    Ok(())
}

/// `GET /storage/tmp-upload/` lists the caller's own uploads, newest first, paginated
/// like the files listing (the original serves it at the same URL).
#[tokio::test]
async fn the_callers_uploads_are_listed_newest_first() -> anyhow::Result<()> {
    let cluster = ferry_tests::Cluster::start_with(ferry_tests::Options {
        env: vec![("FERRY_API__PAGE_SIZE".into(), "2".into())],
        ..Default::default()
    })
    .await?;
    let alice = cluster.client("alice", "alicealice").await?;
    let bob = cluster.client("bob", "bobbobbob").await?;
    let data = ferry_tests::random_bytes(100);
    let mut ids = Vec::new();
    for name in ["a.bin", "b.bin", "c.bin"] {
        let res = alice
            .put_raw(&format!("/storage/tmp-upload/?filename={name}"), "bytes 0-9/100", data[..10].to_vec())
            .await?;
        ids.push(res.json()["id"].as_str().unwrap_or_default().to_owned());
    }
    bob.put_raw("/storage/tmp-upload/?filename=bob.bin", "bytes 0-9/100", data[..10].to_vec()).await?;

    let first = alice.get("/storage/tmp-upload/").await?;
    assert_eq!(first.status, 200, "{}", first.text());
    let body = first.json();
    assert_eq!(body["count"], 3, "only alice's uploads: {body}");
    let names: Vec<_> = body["results"].as_array().into_iter().flatten().map(|u| u["filename"].clone()).collect();
    assert_eq!(names, ["c.bin", "b.bin"]);
    assert_eq!(body["results"][0]["status"], 1);
    let next = body["next"].as_str().unwrap_or_default().to_owned();
    assert!(next.ends_with("/storage/tmp-upload/?page=2"), "{next}");
    let second = alice.get("/storage/tmp-upload/?page=2").await?.json();
    assert_eq!(second["results"][0]["id"], ids[0].as_str());
    assert_eq!(second["next"], serde_json::Value::Null);
    assert_eq!(alice.get("/storage/tmp-upload/?page=3").await?.status, 404);
    assert_eq!(bob.get("/storage/tmp-upload/").await?.json()["count"], 1);
    Ok(())
}
