//! Scale-out on one machine: two API processes sharing the staging directory with the
//! chunks of each upload alternating between them, three workers, a worker added and
//! one removed while uploads run; every upload completes exactly once.

use std::time::Duration;

use ferry_tests::{free_port, md5_hex, random_bytes, Client, Cluster, Options};

#[tokio::test]
async fn two_apis_three_workers_and_worker_churn_complete_everything_exactly_once() -> anyhow::Result<()> {
    let mut cluster = Cluster::start_with(Options { workers: 3, ..Default::default() }).await?;
    let port = free_port();
    cluster.spawn("api2", "ferry-api", &[], &[("FERRY_API__LISTEN", format!("127.0.0.1:{port}"))])?;
    let api2_base = format!("http://127.0.0.1:{port}");
    ferry_tests::eventually("the second API", Duration::from_secs(30), || {
        let url = format!("{api2_base}/readyz");
        async move { Ok(reqwest::get(&url).await.ok().filter(|r| r.status().is_success()).map(|_| ())) }
    })
    .await?;
    let a = cluster.client("alice", "alicealice").await?;
    let b = Client::login(&api2_base, "alice", "alicealice").await?;

    // 20 uploads of 4 chunks, chunk i going to API (i % 2): both write into the same
    // staging file of the upload, one after the other.
    let uploads: Vec<Vec<u8>> = (0..20).map(|i| random_bytes(4 * 50_000 + i)).collect();
    let mut tasks = Vec::new();
    for (n, data) in uploads.iter().cloned().enumerate() {
        let (a, b) = (a.clone(), b.clone());
        tasks.push(tokio::spawn(async move {
            let total = data.len();
            let mut url = format!("/storage/tmp-upload/?filename=scale-{n}");
            let mut start = 0;
            let mut i = 0;
            while start < total {
                let end = (start + 50_000).min(total);
                let api = if i % 2 == 0 { &a } else { &b };
                let res =
                    api.put_raw(&url, &format!("bytes {start}-{}/{total}", end - 1), data[start..end].to_vec()).await?;
                anyhow::ensure!(res.status == 200, "chunk {i}: {} {}", res.status, res.text());
                // The next chunk goes to the other API: use the path, not its host.
                url = format!("/storage/tmp-upload/{}/", res.json()["id"].as_str().unwrap_or_default());
                start = end;
                i += 1;
            }
            let api = if i % 2 == 0 { &a } else { &b };
            let res = api.complete(&url, &md5_hex(&data)).await?;
            anyhow::ensure!(res.status == 200 || res.status == 202, "complete: {} {}", res.status, res.text());
            Ok::<_, anyhow::Error>((res.json()["id"].as_str().unwrap_or_default().to_owned(), data))
        }));
        if n == 7 {
            cluster.add_worker()?;
        }
        if n == 12 {
            cluster.kill("worker1");
        }
    }
    let mut done = Vec::new();
    for task in tasks {
        done.push(task.await??);
    }
    for (id, data) in &done {
        cluster.wait_replicas(id, 2).await?;
        assert_eq!(a.download(id, None).await?.body, *data);
    }
    // Exactly once: one file per upload, two replica rows each, two copies on disk.
    let db = cluster.db().await?;
    let files: i64 = db.query_one("SELECT count(*) FROM files", &[]).await?.get(0);
    let replicas: i64 = db.query_one("SELECT count(*) FROM replicas WHERE state = 'present'", &[]).await?.get(0);
    let others: i64 = db.query_one("SELECT count(*) FROM replicas WHERE state <> 'present'", &[]).await?.get(0);
    assert_eq!((files, replicas, others), (20, 40, 0));
    for (id, _) in &done {
        assert_eq!(cluster.nodes_holding(id).len(), 2, "{id}");
    }
    Ok(())
}
