//! Replication in batches: the replicate jobs bound for one node travel in one rsync
//! session, and a file that fails inside a batch fails only its own job.

use std::time::Duration;

use anyhow::Context;
use ferry_tests::{eventually, free_port, md5_hex, random_bytes, Cluster, Options};

/// Five files reach both nodes; on node2 the middle one (rsync sorts its list) finds
/// a directory where its copy must go, so its transfer fails inside the batch. The
/// other four are present after ONE attempt, the middle one's job retries and
/// succeeds once the obstacle is gone, and the bytes on both nodes are the uploads'.
#[tokio::test]
async fn a_failing_file_in_the_middle_of_a_batch_fails_only_its_own_job() -> anyhow::Result<()> {
    let mut cluster = Cluster::start_with(Options {
        nodes: 2,
        replication: 2,
        // Workers are started by hand below, so that every replicate job is queued
        // before the first is taken, and all five for a node meet in one batch.
        workers: 0,
        env: vec![("FERRY_WORKER__BATCH_WINDOW_MS".into(), "500".into())],
        ..Default::default()
    })
    .await?;
    let api = cluster.client("alice", "alicealice").await?;
    let mut files = Vec::new();
    for i in 0..5 {
        let bytes = random_bytes(20_000 + i * 1000);
        let range = format!("bytes 0-{}/{}", bytes.len() - 1, bytes.len());
        let res = api.put_multipart("/storage/tmp-upload/", Some(&range), &bytes, Some(&format!("b{i}")), None).await?;
        anyhow::ensure!(res.status == 200, "upload {i}: {} {}", res.status, res.text());
        let url = res.json()["url"].as_str().context("url")?.to_owned();
        // The API records the file itself and, with the default write quorum of 0,
        // answers 200 with no worker running (the staging copy serves downloads).
        let res = api.post_form(&format!("{url}?wait=0"), &[("md5", &md5_hex(&bytes))]).await?;
        anyhow::ensure!(res.status == 200, "completing POST without a worker: {} {}", res.status, res.text());
        files.push((res.json()["id"].as_str().context("id")?.to_owned(), bytes));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let ids: Vec<uuid::Uuid> = files.iter().map(|(id, _)| id.parse()).collect::<Result<_, _>>()?;

    spawn_worker(&mut cluster, "assembler", "assemble")?;
    let db = cluster.db().await?;
    eventually("ten pending replicas", Duration::from_secs(60), || {
        let (db, ids) = (&db, &ids);
        async move {
            let n: i64 = db
                .query_one("SELECT count(*) FROM replicas WHERE file_id = ANY($1) AND state = 'pending'", &[ids])
                .await?
                .get(0);
            Ok((n == 10).then_some(()))
        }
    })
    .await?;

    let (middle, _) = &files[2];
    let obstacle = cluster.nodes[1].path_of(middle);
    std::fs::create_dir_all(obstacle.join("in-the-way"))?;
    spawn_worker(&mut cluster, "replicator", "replicate")?;

    let node2 = cluster.nodes[1].id.context("node2 id")?;
    let others: Vec<uuid::Uuid> = ids.iter().enumerate().filter(|(i, _)| *i != 2).map(|(_, id)| *id).collect();
    eventually("the four other files present on node2", Duration::from_secs(60), || {
        let (db, others) = (&db, &others);
        async move {
            let n: i64 = db
                .query_one(
                    "SELECT count(*) FROM replicas WHERE file_id = ANY($1) AND node_id = $2 AND state = 'present'",
                    &[others, &(node2 as i32)],
                )
                .await?
                .get(0);
            Ok((n == 4).then_some(()))
        }
    })
    .await?;
    let state: String = db
        .query_one("SELECT state FROM replicas WHERE file_id = $1 AND node_id = $2", &[&ids[2], &(node2 as i32)])
        .await?
        .get(0);
    assert_ne!(state, "present", "the blocked copy is not counted");
    assert!(!cluster.nodes[1].path_of(middle).is_file(), "the blocked copy is not on node2");
    let log = cluster.log_tail("replicator", 400);
    assert!(log.contains("batch.files=5"), "the five files for node2 went in one rsync session:\n{log}");
    let retried = log.lines().filter(|l| l.contains("will retry")).collect::<Vec<_>>().join("\n");
    assert!(retried.contains(middle.as_str()), "the middle file's job is retried:\n{retried}");
    for (id, _) in files.iter().filter(|(id, _)| id != middle) {
        assert!(!retried.contains(id.as_str()), "{id} was not retried:\n{retried}");
    }
    // The copy that waits for its retry says why (the operator trial of stop 30: its
    // last_error stayed null while only the job knew).
    let middle_id: uuid::Uuid = middle.parse()?;
    let why = eventually("the blocked copy's last_error", Duration::from_secs(30), || {
        let db = &db;
        async move {
            let row = db
                .query_one(
                    "SELECT state, last_error FROM replicas WHERE file_id = $1 AND node_id = $2",
                    &[&middle_id, &(node2 as i32)],
                )
                .await?;
            let (state, error): (String, Option<String>) = (row.get(0), row.get(1));
            Ok(error.map(|e| (state, e)))
        }
    })
    .await?;
    assert!(matches!(why.0.as_str(), "pending" | "copying") && !why.1.is_empty(), "{why:?}");

    std::fs::remove_dir_all(&obstacle)?;
    cluster.wait_replicas(middle, 2).await?;
    let error: Option<String> = db
        .query_one(
            "SELECT last_error FROM replicas WHERE file_id = $1 AND node_id = $2",
            &[&middle_id, &(node2 as i32)],
        )
        .await?
        .get(0);
    assert_eq!(error, None, "the copy's success clears the reason");
    for (id, bytes) in &files {
        for node in &cluster.nodes {
            assert_eq!(&std::fs::read(node.path_of(id))?, bytes, "{id} on {}", node.name);
            // The gate imposes the receiver's modes (ferry_node_commands::rsync::RECEIVER_CHMOD).
            let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(node.path_of(id))?.permissions());
            assert_eq!(mode & 0o7777, 0o644, "{id} on {}", node.name);
        }
    }
    let attempts = db
        .query(
            "SELECT file_id, attempts FROM replicas WHERE file_id = ANY($1) AND node_id = $2 ORDER BY file_id",
            &[&ids, &(node2 as i32)],
        )
        .await?;
    let attempts: Vec<i32> = attempts.iter().map(|r| r.get(1)).collect();
    assert_eq!(attempts.iter().filter(|a| **a == 1).count(), 4, "only the middle job retried: {attempts:?}");
    assert!(attempts[2] >= 2, "the middle job retried: {attempts:?}");

    // The operator sees each failed attempt of the middle job (its worker, times and
    // rsync's error) while the record, now done, carries no error; `ferry jobs show`
    // takes the start of the id, and the admin JSON API shows the same. The other
    // jobs succeeded at once and have no failed attempt.
    let listed: Vec<serde_json::Value> =
        serde_json::from_str(&cluster.ferry(&["jobs", "ls", "--kind", "replicate", "--json"])?)?;
    let on_node2 =
        |file: &str| listed.iter().find(|j| j["file"] == file && j["node"] == node2).and_then(|j| j["id"].as_str());
    let job = on_node2(middle.as_str()).context("the middle file's job for node2")?.to_owned();
    let shown: serde_json::Value = serde_json::from_str(&cluster.ferry(&["jobs", "show", &job[..8]])?)?;
    assert_eq!((shown["id"].as_str(), shown["state"].as_str()), (Some(job.as_str()), Some("done")), "{shown}");
    assert!(shown["error"].is_null(), "a done job's record carries no error: {shown}");
    let failed = shown["attempts"].as_array().context("attempts")?;
    assert!(!failed.is_empty(), "{shown}");
    for (n, a) in failed.iter().enumerate() {
        assert_eq!(
            (a["outcome"].as_str(), a["replay"].as_i64(), a["attempt"].as_i64()),
            (Some("failed"), Some(0), Some(n as i64)),
            "{a}"
        );
        assert!(a["worker"].as_str().is_some_and(|w| w.contains(':')), "{a}");
        assert!(a["started_at"].is_string() && a["ended_at"].is_string(), "{a}");
        assert!(a["error"].as_str().is_some_and(|e| !e.is_empty()), "{a}");
    }
    assert_eq!(shown["attempt"].as_i64(), Some(failed.len() as i64), "the attempt that succeeded follows them");
    let admin = cluster.client("admin", "adminadmin").await?;
    assert_eq!(admin.get(&format!("/admin/api/jobs/{job}")).await?.json()["attempts"], shown["attempts"]);
    for (id, _) in files.iter().filter(|(id, _)| id != middle) {
        let job = on_node2(id).context("a job for node2")?;
        let shown: serde_json::Value = serde_json::from_str(&cluster.ferry(&["jobs", "show", job])?)?;
        assert_eq!(shown["attempts"], serde_json::json!([]), "{shown}");
    }
    let (ok, out) = cluster.ferry_cli(&["jobs", "show", "zz"], "")?;
    assert!(!ok && out.contains("not a job id"), "{out}");
    Ok(())
}

/// A staging copy that no longer holds the upload's bytes (one byte flipped after the
/// completing POST verified them, same size, so rsync's own transfer check passes) is
/// never counted as a replica: the push's check of the source against the upload's
/// sha256 fails the job with the reason, the copy is not `present`. Once the staging
/// copy holds the right bytes again, the retry copies and verifies it.
#[tokio::test]
async fn a_source_that_is_not_the_upload_is_never_counted_as_a_replica() -> anyhow::Result<()> {
    let mut cluster =
        Cluster::start_with(Options { nodes: 1, replication: 1, workers: 0, ..Default::default() }).await?;
    let api = cluster.client("alice", "alicealice").await?;
    let bytes = random_bytes(300_000);
    let range = format!("bytes 0-{}/{}", bytes.len() - 1, bytes.len());
    let res = api.put_multipart("/storage/tmp-upload/", Some(&range), &bytes, Some("rotten"), None).await?;
    anyhow::ensure!(res.status == 200, "upload: {} {}", res.status, res.text());
    let url = res.json()["url"].as_str().context("url")?.to_owned();
    let res = api.post_form(&format!("{url}?wait=0"), &[("md5", &md5_hex(&bytes))]).await?;
    anyhow::ensure!(res.status == 200, "completing POST: {} {}", res.status, res.text());
    let id = res.json()["id"].as_str().context("id")?.to_owned();
    let file: uuid::Uuid = id.parse()?;

    let data = cluster.staging.join(&id).join("data");
    let mut rotten = bytes.clone();
    rotten[123_456] ^= 0x40;
    std::fs::write(&data, &rotten)?;
    spawn_worker(&mut cluster, "replicator", "assemble,replicate")?;

    let db = cluster.db().await?;
    let node = cluster.nodes[0].id.context("node id")? as i32;
    eventually("the push refused the rotten source", Duration::from_secs(60), || {
        let log = cluster.log_tail("replicator", 400);
        let refused = log
            .lines()
            .find(|l| l.contains(&id) && l.contains("will retry") && l.contains("not the upload's bytes"))
            .map(str::to_owned);
        async move { Ok(refused) }
    })
    .await
    .map(|line| assert!(line.contains("the source's sha256 is"), "the reason names the check: {line}"))?;
    let state: String =
        db.query_one("SELECT state FROM replicas WHERE file_id = $1 AND node_id = $2", &[&file, &node]).await?.get(0);
    assert_ne!(state, "present", "a copy of the wrong bytes is not counted");

    std::fs::write(&data, &bytes)?;
    cluster.wait_replicas(&id, 1).await?;
    assert_eq!(std::fs::read(cluster.nodes[0].path_of(&id))?, bytes, "the retried copy is the upload");
    Ok(())
}

/// A worker process `name` consuming only `queues`.
fn spawn_worker(cluster: &mut Cluster, name: &str, queues: &str) -> anyhow::Result<()> {
    let listen = format!("127.0.0.1:{}", free_port());
    cluster.spawn(name, "ferry-worker", &["--queues", queues], &[("FERRY_WORKER__LISTEN", listen)]).map(drop)
}

/// At least once: a second delivery of a replicate job can run beside the first (a
/// redelivery after a broker restart). When the other delivery records the copy first,
/// this one finds the row already `present` at its own commit and must leave the file
/// alone: it IS the recorded copy. (It used to remove it, leaving a `present` row with
/// nothing on the node, which the fault suite caught after a RabbitMQ restart.)
///
/// The race is made deterministic with the lane's batching window: the job marks its
/// row `copying` and then waits 3 s in node2's lane, during which the test records the
/// row as `present`, as the other delivery would.
#[tokio::test]
async fn a_copy_recorded_by_another_delivery_meanwhile_is_kept() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(Options {
        nodes: 2,
        replication: 2,
        env: vec![("FERRY_WORKER__BATCH_WINDOW_MS".into(), "3000".into())],
        ..Default::default()
    })
    .await?;
    let api = cluster.client("alice", "alicealice").await?;
    let bytes = random_bytes(50_000);
    let range = format!("bytes 0-{}/{}", bytes.len() - 1, bytes.len());
    let res = api.put_multipart("/storage/tmp-upload/", Some(&range), &bytes, Some("twice"), None).await?;
    anyhow::ensure!(res.status == 200, "upload: {} {}", res.status, res.text());
    let url = res.json()["url"].as_str().context("url")?.to_owned();
    let res = api.post_form(&format!("{url}?wait=0"), &[("md5", &md5_hex(&bytes))]).await?;
    anyhow::ensure!(res.status == 202 || res.status == 200, "completing POST: {} {}", res.status, res.text());
    let id = res.json()["id"].as_str().context("id")?.to_owned();
    let file: uuid::Uuid = id.parse()?;
    let node2 = cluster.nodes[1].id.context("node2 id")? as i32;

    let db = cluster.db().await?;
    eventually("node2's copy in its lane (row copying)", Duration::from_secs(30), || {
        let db = &db;
        async move {
            let state: Option<String> = db
                .query_opt("SELECT state FROM replicas WHERE file_id = $1 AND node_id = $2", &[&file, &node2])
                .await?
                .map(|r| r.get(0));
            Ok((state.as_deref() == Some("copying")).then_some(()))
        }
    })
    .await?;
    // The other delivery's commit.
    let changed = db
        .execute(
            "UPDATE replicas SET state = 'present', verified_at = now() WHERE file_id = $1 AND node_id = $2 AND state = 'copying'",
            &[&file, &node2],
        )
        .await?;
    anyhow::ensure!(changed == 1, "the row left `copying` before the test could record it (window too short?)");

    let on_node2 = cluster.nodes[1].path_of(&id);
    let mut seen_on_node2 = false;
    eventually("the late delivery finished", Duration::from_secs(60), || {
        let log = cluster.log_tail("worker1", 400);
        let done = log.lines().any(|l| l.contains("copy already recorded by another delivery") && l.contains(&id));
        // Once the late push has put the file on node2, it must stay there.
        let there = on_node2.is_file();
        let removed = seen_on_node2 && !there;
        seen_on_node2 |= there;
        async move {
            anyhow::ensure!(!removed, "the late delivery removed the copy the row records as present");
            Ok(done.then_some(()))
        }
    })
    .await?;
    cluster.wait_replicas(&id, 2).await?;
    for node in &cluster.nodes {
        assert_eq!(std::fs::read(node.path_of(&id)).ok().as_deref(), Some(&bytes[..]), "{id} on {}", node.name);
    }
    Ok(())
}
