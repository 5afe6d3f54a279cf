//! The scrub stays bounded: the monitor never queues more re-checks than the workers
//! get through, so a repair sharing the replicate queue never waits behind a backlog.

use std::time::Duration;

use ferry_tests::{random_bytes, Cluster, Options};

/// With the only worker gone, scrubs fall due every second but at most
/// `monitor.scrub_max_queued` are queued, never two for one replica; once a worker is
/// back every replica is re-verified.
#[tokio::test]
async fn scrubs_are_bounded_and_never_queued_twice_for_one_replica() -> anyhow::Result<()> {
    let mut cluster = Cluster::start_with(Options {
        nodes: 2,
        replication: 2,
        workers: 1,
        env: vec![
            ("FERRY_MONITOR__SCRUB_INTERVAL_SECS".into(), "1".into()),
            ("FERRY_MONITOR__SCRUB_MAX_QUEUED".into(), "3".into()),
        ],
        ..Default::default()
    })
    .await?;
    let api = cluster.client("alice", "alicealice").await?;
    let mut ids = Vec::new();
    for i in 0..4 {
        let body = api.upload(&format!("s{i}"), &random_bytes(10_000 + i), 1 << 20, None).await?.json();
        ids.push(body["id"].as_str().unwrap_or_default().to_owned());
    }
    for id in &ids {
        cluster.wait_replicas(id, 2).await?;
    }
    cluster.kill("worker1");
    let db = cluster.db().await?;
    let outstanding = async || -> anyhow::Result<i64> {
        Ok(db.query_one("SELECT count(*) FROM replicas WHERE scrub_queued_at IS NOT NULL", &[]).await?.get(0))
    };
    // Eight replicas fall due every second; several sweeps (every 1.5 s in tests) later
    // exactly the bound is outstanding, not a sweep's worth per round.
    ferry_tests::eventually("the bound reached", Duration::from_secs(20), || async {
        Ok((outstanding().await? == 3).then_some(()))
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(outstanding().await?, 3, "scrubs queued beyond monitor.scrub_max_queued");
    let since: chrono::DateTime<chrono::Utc> = db.query_one("SELECT now()", &[]).await?.get(0);

    cluster.add_worker()?;
    ferry_tests::eventually("every replica re-verified", Duration::from_secs(60), || async {
        let stale: i64 = db
            .query_one("SELECT count(*) FROM replicas WHERE state <> 'present' OR verified_at <= $1", &[&since])
            .await?
            .get(0);
        Ok((stale == 0).then_some(()))
    })
    .await?;
    Ok(())
}
