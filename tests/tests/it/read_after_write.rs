//! Read-after-write: a `200` from the completing POST means the file can be
//! downloaded at once, byte-identical, whatever the load or a slow first replica:
//! from its verified staging copy until the first node copy (`storage.write_quorum`
//! = 0, the default), or from `storage.write_quorum` verified copies on healthy nodes.

use std::time::Duration;

use ferry_tests::{random_bytes, Cluster, Options};

/// 100 uploads from 16 parallel clients; each downloads its file right after its
/// `200`: every download is a `302` to identical bytes, none a `503` or `409`.
#[tokio::test]
async fn every_200_is_downloadable_at_once_under_a_burst() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(Options { workers: 2, ..Options::default() }).await?;
    let api = cluster.client("alice", "alicealice").await?;
    let clients = 16;
    let per_client = 100 / clients + 1;
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let api = api.clone();
        tasks.spawn(async move {
            let mut checked = 0;
            for i in 0..per_client {
                if c * per_client + i >= 100 {
                    break;
                }
                let data = random_bytes(1000 + 977 * (c * per_client + i));
                let mut done = api.upload(&format!("f{c}-{i}.bin"), &data, 64 * 1024, None).await?;
                if done.status == 202 {
                    // The wait ran out on a loaded machine: a 202 promises nothing about
                    // downloads yet, and the client repeats the POST until the 200 that does.
                    let url = done.json()["url"].as_str().unwrap_or_default().to_owned();
                    done = api.complete_patiently(&url, &ferry_tests::md5_hex(&data)).await?;
                }
                anyhow::ensure!(done.status == 200, "completing POST: {} {}", done.status, done.text());
                let id = done.json()["id"].as_str().unwrap_or_default().to_owned();
                let redirect = api.get(&format!("/storage/download/{id}/")).await?;
                anyhow::ensure!(
                    redirect.status == 302,
                    "download right after 200: {} {}",
                    redirect.status,
                    redirect.text()
                );
                let got = api.download(&id, None).await?;
                anyhow::ensure!(
                    got.status == 200 && got.body == data,
                    "bytes of {id}: status {} {} (the first redirect went to {:?})",
                    got.status,
                    got.text(),
                    redirect.header("location")
                );
                checked += 1;
            }
            Ok(checked)
        });
    }
    let mut checked = 0;
    while let Some(result) = tasks.join_next().await {
        checked += result??;
    }
    assert_eq!(checked, 100);
    Ok(())
}

/// With `storage.write_quorum` = 1 and no node able to take a copy (every sshd
/// stopped), the completing POST must not answer `200` before a node copy exists. Once
/// sshd is back it answers `200`, and the download that follows at once is a `302` to
/// the right bytes on a node.
#[tokio::test]
async fn the_completing_post_waits_for_a_slow_first_replica() -> anyhow::Result<()> {
    let mut cluster = Cluster::start_with(Options {
        nodes: 2,
        env: vec![("FERRY_STORAGE__WRITE_QUORUM".into(), "1".into())],
        ..Options::default()
    })
    .await?;
    let api = cluster.client("alice", "alicealice").await?;
    let data = random_bytes(300_000);
    let first =
        api.put_multipart("/storage/tmp-upload/", Some("bytes 0-299999/300000"), &data, Some("slow.bin"), None).await?;
    assert_eq!(first.status, 200, "{}", first.text());
    let url = first.json()["url"].as_str().unwrap_or_default().to_owned();
    let id = first.json()["id"].as_str().unwrap_or_default().to_owned();

    cluster.kill_sshd(0);
    cluster.kill_sshd(1);
    let md5 = ferry_tests::md5_hex(&data);
    let completing = tokio::spawn({
        let api = api.clone();
        async move { api.complete(&url, &md5).await }
    });
    // Assembled (md5 verified) but no copy can exist: still waiting.
    ferry_tests::eventually("the upload to be verified", Duration::from_secs(30), || {
        let db = cluster.db();
        let id = id.clone();
        async move {
            let db = db.await?;
            let row = db.query_one("SELECT status FROM uploads WHERE id = $1::text::uuid", &[&id]).await?;
            Ok((row.get::<_, String>(0) == "complete").then_some(()))
        }
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!completing.is_finished(), "the completing POST answered while no node copy existed");
    // Downloadable meanwhile from the staging copy, though the POST has not answered.
    let redirect = api.get(&format!("/storage/download/{id}/")).await?;
    assert_eq!(redirect.status, 302, "{}", redirect.text());
    assert!(redirect.header("location").is_some_and(|l| l.starts_with(&format!("{}/staging/", cluster.api))));

    cluster.restart_sshd(0)?;
    cluster.restart_sshd(1)?;
    let done = completing.await??;
    assert_eq!(done.status, 200, "{}", done.text());
    // The staging redirect above was not remembered: the first download after the 200
    // goes to a node copy.
    let redirect = api.get(&format!("/storage/download/{id}/")).await?;
    let location = redirect.header("location").unwrap_or_default();
    assert!(cluster.nodes.iter().any(|n| location.starts_with(&n.public_url())), "{location}");
    let got = api.download(&id, None).await?;
    assert_eq!(got.status, 200);
    assert!(got.body == data, "downloaded bytes differ");
    Ok(())
}

/// With the default write quorum of 0 and no node able to take a copy (every sshd
/// stopped), the completing POST answers `200` at once and the file is downloadable
/// from its staging copy on the API: whole, by Range, and only with a valid link.
/// Once the nodes hold it and staging is released, the same staging link redirects
/// to a node copy, so a link handed out before never breaks.
#[tokio::test]
async fn before_any_node_copy_the_staging_copy_serves_downloads() -> anyhow::Result<()> {
    let mut cluster = Cluster::start_with(Options { nodes: 2, ..Options::default() }).await?;
    let api = cluster.client("alice", "alicealice").await?;
    cluster.kill_sshd(0);
    cluster.kill_sshd(1);
    let data = random_bytes(300_000);
    let done = api.upload("early.bin", &data, 128 * 1024, None).await?;
    assert_eq!(done.status, 200, "{}", done.text());
    let id = done.json()["id"].as_str().unwrap_or_default().to_owned();
    assert!(cluster.nodes_holding(&id).is_empty(), "no node can hold a copy yet");

    let redirect = api.get(&format!("/storage/download/{id}/")).await?;
    assert_eq!(redirect.status, 302, "{}", redirect.text());
    let link = redirect.header("location").unwrap_or_default();
    assert!(link.starts_with(&format!("{}/staging/files/{id}?", cluster.api)), "{link}");
    let anonymous = ferry_tests::client::Client::anonymous(&cluster.api);
    let whole = anonymous.get(&link).await?;
    assert_eq!(whole.status, 200, "{}", whole.text());
    assert!(whole.body == data, "staging bytes differ");
    assert!(whole.header("content-disposition").is_some_and(|d| d.contains("early.bin")));
    let part = anonymous.get_with(&link, &[("Range", "bytes=1000-1999")]).await?;
    assert_eq!(part.status, 206);
    assert!(part.body == data[1000..2000], "range bytes differ");
    let forged = link.replace(&id, &uuid::Uuid::new_v4().to_string());
    assert_eq!(anonymous.get(&forged).await?.status, 403, "a link names one file");
    let unsigned = link.split('?').next().unwrap_or_default().to_owned();
    assert_eq!(anonymous.get(&unsigned).await?.status, 403);

    cluster.restart_sshd(0)?;
    cluster.restart_sshd(1)?;
    cluster.wait_replicas(&id, 2).await?;
    ferry_tests::eventually("staging released", Duration::from_secs(30), || {
        let gone = !cluster.staging.join(&id).exists();
        async move { Ok(gone.then_some(())) }
    })
    .await?;
    // The heartbeats must show the nodes up again before the API redirects to them.
    let node_link = api.wait_download(&id).await?;
    let moved = anonymous.get(&link).await?;
    assert_eq!(moved.status, 302, "a released staging copy's link moves on: {}", moved.text());
    let location = moved.header("location").unwrap_or_default();
    assert!(cluster.nodes.iter().any(|n| location.starts_with(&n.public_url())), "{location}");
    let exp = |url: &str| url.split(['?', '&']).find(|p| p.starts_with("exp=")).map(str::to_owned);
    assert_eq!(exp(&location), exp(&link), "the same expiry, signed for the node");
    assert!(anonymous.get(&location).await?.body == data, "node bytes differ");
    assert!(anonymous.get(&node_link).await?.body == data);
    Ok(())
}
