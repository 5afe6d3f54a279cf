//! Read-after-write: a `200` from the completing POST means the file can be
//! downloaded at once, byte-identical (`storage.write_quorum` verified copies on
//! healthy nodes), whatever the load or a slow first replica.

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
                anyhow::ensure!(got.status == 200 && got.body == data, "bytes of {id}: status {}", got.status);
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

/// No node can take a copy (every sshd stopped): the completing POST must not answer
/// `200` while the file is not downloadable. Once sshd is back it answers `200`, and
/// the download that follows at once is a `302` to the right bytes.
#[tokio::test]
async fn the_completing_post_waits_for_a_slow_first_replica() -> anyhow::Result<()> {
    let mut cluster = Cluster::start_with(Options { nodes: 2, ..Options::default() }).await?;
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
    assert!(!completing.is_finished(), "the completing POST answered while no copy could be served");
    let redirect = api.get(&format!("/storage/download/{id}/")).await?;
    assert_eq!(redirect.status, 503, "no copy yet: {}", redirect.text());

    cluster.restart_sshd(0)?;
    cluster.restart_sshd(1)?;
    let done = completing.await??;
    assert_eq!(done.status, 200, "{}", done.text());
    // The 503 above was not remembered: the first download after the 200 redirects.
    let got = api.download(&id, None).await?;
    assert_eq!(got.status, 200);
    assert!(got.body == data, "downloaded bytes differ");
    Ok(())
}
