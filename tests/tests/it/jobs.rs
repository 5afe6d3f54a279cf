//! Jobs an operator can see and steer: job records (which worker ran what, how long,
//! why it failed), the worker inventory, dead letters listed with their reason and
//! replayed, and the reconciler healing a purged queue. Everything through the real
//! `ferry` CLI against real processes.

use std::time::Duration;

use ferry_tests::{eventually, random_bytes, Cluster, Options};
use serde_json::{json, Value};

use crate::admin_page::{attrs, csrf, AdminPage};

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// Data rows of a `ferry ... ls` table (the header line dropped).
fn rows(table: &str) -> Vec<&str> {
    table.lines().skip(1).filter(|l| !l.trim_start().starts_with("in flight")).collect()
}

#[tokio::test]
async fn job_records_show_the_worker_and_duration_and_workers_ls_lists_both_workers() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(Options { workers: 2, ..Default::default() }).await?;
    let api = cluster.client("alice", "alicealice").await?;
    let res = api.upload("timeline.bin", &random_bytes(50_000), 20_000, None).await?;
    assert_eq!(res.status, 200, "{}", res.text());
    let id = res.json()["id"].as_str().unwrap_or_default().to_owned();
    cluster.wait_replicas(&id, 2).await?;
    // The start of an upload's id names it, as a job's does (the operator trial of stop
    // 30: `files show` and `jobs ls --upload` took whole ids only); a wrong one is one
    // line, without a stack trace even when RUST_BACKTRACE asks for one.
    let shown: Value = serde_json::from_str(&cluster.ferry(&["files", "show", &id[..8]])?)?;
    assert_eq!(shown["id"].as_str(), Some(id.as_str()), "{shown}");
    let timeline = cluster.ferry(&["jobs", "ls", "--upload", &id[..8]])?;
    assert_eq!(rows(&timeline).len(), 2, "its two replicate jobs:\n{timeline}");
    // `files show` lists the same jobs (the operator trial of stop 30: the file said
    // nothing of its jobs), each with its node, state and worker.
    let listed = shown["jobs"].as_array().map_or(&[][..], Vec::as_slice);
    assert_eq!((listed.len(), shown["jobs_total"].as_i64()), (2, Some(2)), "{shown}");
    for job in listed {
        let job_id = job["id"].as_str().unwrap_or_default();
        assert!(timeline.contains(job_id), "{job_id} is in jobs ls --upload:\n{timeline}");
        assert_eq!(job["kind"].as_str(), Some("replicate"), "{job}");
        assert!(job["node"].is_i64() && job["worker"].is_string() && job["state"].is_string(), "{job}");
    }
    let (ok, said) = cluster.ferry_cli_with(&["files", "show", "0000"], "", &[("RUST_BACKTRACE", "1")])?;
    assert!(!ok && said.trim() == "error: no upload or file id starts with 0000", "{said}");

    // Both workers registered, with their queues and concurrency.
    let workers = eventually("both workers in the inventory", Duration::from_secs(30), || async {
        let out = cluster.ferry(&["workers", "ls"])?;
        Ok((rows(&out).iter().filter(|r| r.contains(" running ")).count() == 2).then_some(out))
    })
    .await?;
    println!("$ ferry workers ls\n{workers}");
    let ids: Vec<&str> = rows(&workers).iter().filter_map(|r| r.split_whitespace().next()).collect();
    assert!(workers.lines().next().is_some_and(|header| header.contains(" version ")), "{workers}");
    // The admin JSON API lists the same inventory as `ferry workers ls --json`.
    let cli: Vec<Value> = serde_json::from_str(&cluster.ferry(&["workers", "ls", "--json"])?)?;
    let admin = cluster.client("admin", "adminadmin").await?;
    let api_listed = admin.get("/admin/api/workers").await?.json();
    let worker_ids = |v: &[Value]| v.iter().filter_map(|w| w["id"].as_str().map(str::to_owned)).collect::<Vec<_>>();
    assert_eq!(worker_ids(api_listed.as_array().map_or(&[][..], Vec::as_slice)), worker_ids(&cli), "{api_listed}");
    // A worker stopped two hours ago (a replica scaled down) is left out of the listings
    // unless all are asked for, and counted where it is left out.
    let db = cluster.db().await?;
    db.execute(
        "INSERT INTO workers (id, host, pid, version, queues, concurrency, started_at, heartbeat_at, stopped_at)
         VALUES ('gone:1', 'gone', 1, '0.0.0', '{replicate}', 1, now() - interval '3 hours',
                 now() - interval '2 hours', now() - interval '2 hours')",
        &[],
    )
    .await?;
    let (ok, out) = cluster.ferry_cli(&["workers", "ls"], "")?;
    assert!(ok && !out.contains("gone:1") && out.contains("1 worker(s) stopped or silent for over an hour"), "{out}");
    assert!(cluster.ferry(&["workers", "ls", "--all"])?.contains("gone:1 "));
    assert!(!admin.get("/admin/api/workers").await?.text().contains("gone:1"));
    let all = admin.get("/admin/api/workers?all=true").await?.json();
    assert_eq!(all.as_array().map(Vec::len), Some(3), "{all}");
    let res = admin.get("/admin/api/workers?all=maybe").await?;
    assert_eq!((res.status, res.code().as_str()), (400, "invalid_query"), "{}", res.text());
    db.execute("DELETE FROM workers WHERE id = 'gone:1'", &[]).await?;
    for row in rows(&workers) {
        assert!(row.contains("assemble,replicate,delete,scrub,drop"), "{row}");
        assert!(row.contains(env!("CARGO_PKG_VERSION")), "the worker's version: {row}");
        let id = row.split_whitespace().next().unwrap_or_default();
        assert!(id.contains(':'), "worker id is <host>:<pid>: {id}");
    }

    // The upload's timeline: two replicate jobs, done, each with the worker that ran it
    // and its wait and duration (the API verified and recorded the file itself: no
    // assemble job). The last replica's record may be written a moment after its row.
    let timeline = eventually("the upload's jobs done", Duration::from_secs(30), || async {
        let out = cluster.ferry(&["jobs", "ls", "--upload", &id])?;
        let lines = rows(&out);
        Ok((lines.len() == 2 && lines.iter().all(|l| l.contains(" done "))).then_some(out))
    })
    .await?;
    println!("$ ferry jobs ls --upload {id}\n{timeline}");
    let lines = rows(&timeline);
    assert_eq!(lines.iter().filter(|l| l.contains(" replicate ")).count(), 2, "{timeline}");
    for line in &lines {
        assert!(ids.iter().any(|w| line.contains(w)), "ran by a listed worker: {line}");
    }

    // Filtered and paged as on the Jobs page: by the uploads' owner, one row at a time.
    let (ok, out) = cluster
        .ferry_cli(&["jobs", "ls", "--user", "alice", "--kind", "replicate", "--limit", "1", "--offset", "1"], "")?;
    assert!(ok && out.lines().filter(|l| l.contains(" replicate ")).count() == 1 && out.contains("2-2 of 2"), "{out}");
    let (ok, out) = cluster.ferry_cli(&["jobs", "ls", "--user", "nosuch"], "")?;
    assert!(!ok && out.contains("no user named"), "{out}");

    let job_id = lines[0].split_whitespace().nth(2).unwrap_or_default();
    let shown: Value = serde_json::from_str(&cluster.ferry(&["jobs", "show", job_id])?)?;
    assert_eq!(shown["state"], "done");
    assert_eq!(shown["kind"], "replicate");
    assert_eq!(shown["file"], json!(id));
    assert!(shown["node"].as_i64().is_some(), "a replicate job names its node: {shown}");
    assert!(ids.contains(&shown["worker"].as_str().unwrap_or_default()), "{shown}");
    assert!(shown["duration_ms"].as_i64().is_some_and(|ms| ms >= 0), "{shown}");
    assert!(shown["wait_ms"].as_i64().is_some_and(|ms| ms >= 0), "{shown}");
    // The worker's log lines of that job carry its id and the worker's.
    let logs = cluster.log_tail("worker1", 10_000) + &cluster.log_tail("worker2", 10_000);
    let job_line = logs.lines().find(|l| l.contains(job_id) && l.contains("job done")).unwrap_or_default();
    assert!(job_line.contains("worker.id="), "job log lines carry the worker id: {job_line:?}");
    Ok(())
}

/// The operator trial of stop 27: `ferry dlq discard --all` (and `replay --all`) acts
/// on every dead letter matching the filters, not on the first `--limit` of them (with
/// 3 dead letters, `--all --limit 1` discarded 1 and said nothing of the others); a
/// reason of several lines stays in its row of `ferry dlq ls`; and the admin JSON API
/// lists, shows, replays and discards job records as the CLI does (it had no job
/// routes at all).
#[tokio::test]
async fn dlq_all_acts_on_every_match_and_the_admin_api_steers_dead_letters() -> anyhow::Result<()> {
    let cluster =
        Cluster::start_with(Options { nodes: 0, register_nodes: false, workers: 0, ..Default::default() }).await?;
    let admin = cluster.client("admin", "adminadmin").await?;
    let db = cluster.db().await?;
    // Four dead letters as a worker records them (no worker runs: nothing else moves
    // them), each with rsync's two-line error.
    for _ in 0..4 {
        db.execute(
            "INSERT INTO jobs (id, kind, queue, payload, file_id, state, attempt, error)
             VALUES (gen_random_uuid(), 'delete', 'delete', '{}', gen_random_uuid(), 'dead', 7,
                     E'rsync: [receiver] mkstemp failed: Is a directory (21)\\nrsync error: code 23')",
            &[],
        )
        .await?;
    }
    let listing = cluster.ferry(&["dlq", "ls", "--kind", "delete"])?;
    assert_eq!(rows(&listing).len(), 4, "one row per dead letter:\n{listing}");
    for row in rows(&listing) {
        assert!(row.contains("Is a directory (21) | rsync error: code 23"), "{row}");
    }

    // The admin JSON API lists what `ferry dlq ls --json` lists, and shows one as
    // `ferry dlq show` does.
    let cli: Vec<Value> = serde_json::from_str(&cluster.ferry(&["dlq", "ls", "--kind", "delete", "--json"])?)?;
    let res = admin.get("/admin/api/jobs?state=dead&kind=delete").await?;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json()["total"], 4, "{}", res.text());
    let items = res.json()["items"].as_array().cloned().unwrap_or_default();
    let ids = |jobs: &[Value]| jobs.iter().filter_map(|j| j["id"].as_str().map(str::to_owned)).collect::<Vec<_>>();
    assert_eq!(ids(&items), ids(&cli));
    let first = ids(&items).into_iter().next().unwrap_or_default();
    let shown: Value = serde_json::from_str(&cluster.ferry(&["dlq", "show", &first])?)?;
    assert_eq!(admin.get(&format!("/admin/api/jobs/{first}")).await?.json(), shown);
    // One discarded through the API (a replay through it is in
    // `dead_letters_are_listed_with_their_reason_replayed_and_complete`, where a worker
    // runs it); it is no dead letter then.
    let res = admin.post_json(&format!("/admin/api/jobs/{first}/discard"), &json!({})).await?;
    assert_eq!((res.status, res.json()["state"].as_str()), (200, Some("cancelled")), "{}", res.text());
    let res = admin.post_json(&format!("/admin/api/jobs/{first}/replay"), &json!({})).await?;
    assert_eq!((res.status, res.code().as_str()), (409, "not_dead_letter"), "{}", res.text());
    let res = admin.get(&format!("/admin/api/jobs/{}", uuid::Uuid::new_v4())).await?;
    assert_eq!((res.status, res.code().as_str()), (404, "not_found"), "{}", res.text());
    let res = admin.get("/admin/api/jobs?state=running").await?;
    assert_eq!((res.status, res.code().as_str()), (400, "invalid_query"), "{}", res.text());

    // A copy of a file deleted since it died is not replayed (the operator trial of
    // stop 30: the replay ended `done` with nothing done, which looked like success),
    // through the admin API or the CLI; it is discarded instead.
    let copy: uuid::Uuid = db
        .query_one(
            "INSERT INTO jobs (id, kind, queue, payload, file_id, node_id, state, attempt, error)
             VALUES (gen_random_uuid(), 'replicate', 'replicate', '{}', gen_random_uuid(), 1, 'dead', 7, 'ssh: down')
             RETURNING id",
            &[],
        )
        .await?
        .get(0);
    let res = admin.post_json(&format!("/admin/api/jobs/{copy}/replay"), &json!({})).await?;
    assert_eq!((res.status, res.code().as_str()), (409, "file_deleted"), "{}", res.text());
    let (ok, said) = cluster.ferry_cli(&["dlq", "replay", &copy.to_string()], "")?;
    assert!(!ok, "a refused replay exits non-zero: {said}");
    assert!(said.contains("its file was deleted after it died") && said.contains("discard it"), "{said}");
    let state: String = db.query_one("SELECT state FROM jobs WHERE id = $1", &[&copy]).await?.get(0);
    assert_eq!(state, "dead");
    cluster.ferry(&["dlq", "discard", &copy.to_string()])?;

    // The three left, whatever --limit says.
    let out = cluster.ferry(&["dlq", "discard", "--all", "--limit", "1", "--kind", "delete"])?;
    assert!(out.contains("3 dead letter(s) discarded"), "{out}");
    let cancelled: i64 = db
        .query_one("SELECT count(*) FROM jobs WHERE state = 'cancelled' AND discarded_at IS NOT NULL", &[])
        .await?
        .get(0);
    assert_eq!(cancelled, 5);
    Ok(())
}

/// Replicate jobs for a node disabled while they were queued are given up: dead
/// letters with their reason. Once the node is back, one is replayed with `ferry dlq
/// replay`, another from the admin Jobs page, a fourth through the admin JSON API,
/// each under its own id, and all complete; the third is discarded from its page
/// (cancelled, never run; the monitor's repair makes the copy).
#[tokio::test]
async fn dead_letters_are_listed_with_their_reason_replayed_and_complete() -> anyhow::Result<()> {
    let mut cluster = Cluster::start_with(Options {
        nodes: 2,
        replication: 2,
        workers: 0,
        env: env(&[("FERRY_API__COMPLETE_WAIT_SECS", "1")]),
        ..Default::default()
    })
    .await?;
    let admin = cluster.client("admin", "adminadmin").await?;
    let api = cluster.client("alice", "alicealice").await?;
    // Assembly only: the replicate jobs wait in ferry.replicate.
    cluster.add_worker_for("assemble")?;
    let mut ids = Vec::new();
    for name in ["dead-1.bin", "dead-2.bin", "dead-3.bin", "dead-4.bin"] {
        let res = api.upload(name, &random_bytes(30_000), 30_000, None).await?;
        let id = res.json()["id"].as_str().unwrap_or_default().to_owned();
        assert!(!id.is_empty(), "{} {}", res.status, res.text());
        ids.push(id);
    }
    eventually("eight replicate jobs queued", Duration::from_secs(30), || async {
        Ok((cluster.queue_messages("ferry.replicate").await? == 8).then_some(()))
    })
    .await?;
    let node2 = cluster.nodes[1].id.unwrap_or_default();
    let res = admin.patch_json(&format!("/admin/api/nodes/{node2}"), &json!({"state": "disabled"})).await?;
    assert_eq!(res.status, 200, "{}", res.text());
    cluster.add_worker_for("replicate")?;

    // Listed with its reason, kind and upload; shown with the worker that gave it up.
    let listing = eventually("the dead letter listed", Duration::from_secs(60), || async {
        let out = cluster.ferry(&["dlq", "ls", "--kind", "replicate", "--upload", &ids[0]])?;
        Ok((rows(&out).len() == 1).then_some(out))
    })
    .await?;
    println!("$ ferry dlq ls --kind replicate --upload {}\n{listing}", ids[0]);
    assert!(listing.contains(&format!("node {node2} is disabled")), "{listing}");
    let dead_id = rows(&listing)[0].split_whitespace().nth(2).unwrap_or_default().to_owned();
    // The start of the id is enough, among the dead letters (the trial of this stop:
    // `dlq show` took a prefix as ambiguous when jobs that are no dead letter shared it).
    let shown: Value = serde_json::from_str(&cluster.ferry(&["dlq", "show", &dead_id[..6]])?)?;
    assert_eq!(shown["id"].as_str(), Some(dead_id.as_str()), "{shown}");
    assert_eq!((shown["state"].as_str(), shown["node"].as_i64()), (Some("dead"), Some(node2)));
    assert!(shown["worker"].as_str().is_some_and(|w| w.contains(':')), "{shown}");
    // The dead-letter queue was only the way in: the record is where it is kept.
    eventually("the four dead letters recorded, the queue drained", Duration::from_secs(60), || async {
        let dead = rows(&cluster.ferry(&["dlq", "ls"])?).len();
        Ok((dead == 4 && cluster.queue_messages("ferry.replicate.dead").await? == 0).then_some(()))
    })
    .await?;
    assert!(rows(&cluster.ferry(&["dlq", "ls", "--kind", "assemble"])?).is_empty());
    assert!(rows(&cluster.ferry(&["dlq", "ls", "--older-than", "1h"])?).is_empty());
    // `ferry dlq ls --json` lists what the Jobs page lists as dead, with the same reason.
    let pages = AdminPage::new(&cluster, &admin)?;
    let dead_page = pages.get("/admin/jobs?state=dead").await?;
    let listed: Vec<Value> = serde_json::from_str(&cluster.ferry(&["dlq", "ls", "--json"])?)?;
    let listed_ids: Vec<String> = listed.iter().filter_map(|j| j["id"].as_str().map(str::to_owned)).collect();
    assert_eq!(listed_ids, attrs(&dead_page, "data-job"));
    for job in &listed {
        let reason = job["error"].as_str().unwrap_or_default();
        assert!(reason.contains("is disabled") && dead_page.contains(reason), "{job}");
    }

    // Node back: one dead letter replayed through the CLI under its own id.
    let res = admin.patch_json(&format!("/admin/api/nodes/{node2}"), &json!({"state": "active"})).await?;
    assert_eq!(res.status, 200, "{}", res.text());
    let out = cluster.ferry(&["dlq", "replay", &dead_id[..8]])?;
    assert!(out.contains("1 dead letter(s) replayed") && out.contains(&dead_id), "{out}");
    // The fourth through the admin JSON API, found there by its upload.
    let res = admin.get(&format!("/admin/api/jobs?state=dead&upload={}", ids[3])).await?;
    let api_id = res.json()["items"][0]["id"].as_str().unwrap_or_default().to_owned();
    assert!(!api_id.is_empty(), "{}", res.text());
    let res = admin.post_json(&format!("/admin/api/jobs/{api_id}/replay"), &json!({})).await?;
    assert_eq!((res.status, res.json()["state"].as_str()), (200, Some("queued")), "{}", res.text());

    // The other from the admin Jobs page: listed there with its reason, replayed with
    // the page's CSRF token.
    let page = pages.get(&format!("/admin/jobs?state=dead&upload={}", ids[1])).await?;
    assert!(page.contains(&format!("node {node2} is disabled")), "the Jobs page shows the reason");
    let other_id = attrs(&page, "data-job").into_iter().next().unwrap_or_default();
    let csrf = csrf(&page);
    assert_eq!(pages.post(&format!("/admin/jobs/{other_id}/replay"), &csrf).await?, 303, "replay from the page");

    // The third is discarded from its own page (behind its id on the Jobs page).
    let listed = pages.get(&format!("/admin/jobs?state=dead&upload={}", ids[2])).await?;
    let third = attrs(&listed, "data-job").into_iter().next().unwrap_or_default();
    assert!(listed.contains(&format!("href=\"/admin/jobs/{third}\"")), "the id links to the job's page");
    let job_page = pages.get(&format!("/admin/jobs/{third}")).await?;
    assert!(job_page.contains(&format!("node {node2} is disabled")) && job_page.contains("/discard"), "{job_page}");
    assert_eq!(pages.post(&format!("/admin/jobs/{third}/discard"), &csrf).await?, 303, "discard from its page");
    let shown: Value = serde_json::from_str(&cluster.ferry(&["jobs", "show", &third])?)?;
    assert_eq!(shown["state"], "cancelled", "{shown}");
    assert!(shown["discarded_at"].is_string(), "{shown}");
    assert_eq!(pages.post(&format!("/admin/jobs/{third}/discard"), &csrf).await?, 409, "discarding it twice");
    // Discarded means never run: a replay, from the page or the CLI, is refused (the CLI
    // exits non-zero) and the record stays discarded.
    assert_eq!(pages.post(&format!("/admin/jobs/{third}/replay"), &csrf).await?, 409, "replaying a discarded job");
    let (ok, out) = cluster.ferry_cli(&["dlq", "replay", &third], "")?;
    assert!(
        !ok && out.contains("is not a dead letter (it is cancelled: discarded); skipped"),
        "the CLI replayed a discarded job: {out}"
    );
    let shown: Value = serde_json::from_str(&cluster.ferry(&["jobs", "show", &third])?)?;
    assert!(shown["state"] == "cancelled" && shown["discarded_at"].is_string(), "{shown}");
    cluster.wait_replicas(&ids[2], 2).await?;

    for (job, file) in [(&dead_id, &ids[0]), (&other_id, &ids[1]), (&api_id, &ids[3])] {
        let shown = eventually("the replayed job done", Duration::from_secs(60), || async {
            let shown: Value = serde_json::from_str(&cluster.ferry(&["jobs", "show", job])?)?;
            Ok((shown["state"] == "done").then_some(shown))
        })
        .await?;
        assert_eq!(shown["replays"], 1, "{shown}");
        assert!(shown["replayed_at"].is_string(), "{shown}");
        // The attempt that died before the replay is kept, with its worker and reason;
        // the record, done since, carries no error.
        assert!(shown["error"].is_null(), "{shown}");
        let attempts = shown["attempts"].as_array().cloned().unwrap_or_default();
        assert_eq!(attempts.len(), 1, "{shown}");
        let died = &attempts[0];
        assert_eq!((died["outcome"].as_str(), died["replay"].as_i64()), (Some("dead"), Some(0)), "{died}");
        assert!(died["worker"].as_str().is_some_and(|w| w.contains(':')), "{died}");
        assert!(died["error"].as_str().is_some_and(|e| e.contains("is disabled")), "{died}");
        cluster.wait_replicas(file, 2).await?;
    }
    assert!(rows(&cluster.ferry(&["dlq", "ls"])?).is_empty());
    // Replaying it again is refused (non-zero exit): it is no dead letter any more.
    let (ok, out) = cluster.ferry_cli(&["dlq", "replay", &dead_id], "")?;
    assert!(!ok && out.contains("0 dead letter(s) replayed"), "{out}");
    assert!(out.contains("is not a dead letter (it is done, replayed 1× already); skipped"), "{out}");
    // By the start of its id too (the operator trial of stop 30: "no dead letter's job
    // id starts with ..."), which then says the same.
    let (ok, out) = cluster.ferry_cli(&["dlq", "replay", &dead_id[..8]], "")?;
    assert!(!ok && out.contains("(it is done, replayed 1× already); skipped"), "{out}");
    Ok(())
}

/// Purging ferry.replicate (as an operator might in the RabbitMQ UI) loses the messages
/// but not the work: their job records stay open, and once they are overdue the
/// monitor re-enqueues them through the outbox under their own ids.
#[tokio::test]
async fn a_purged_replicate_queue_heals() -> anyhow::Result<()> {
    let mut cluster = Cluster::start_with(Options {
        nodes: 2,
        replication: 2,
        workers: 0,
        env: env(&[
            ("FERRY_API__COMPLETE_WAIT_SECS", "1"),
            ("FERRY_WORKER__JOB_TIMEOUT_SECS", "10"),
            ("FERRY_MONITOR__RECONCILE_MARGIN_SECS", "2"),
        ]),
        ..Default::default()
    })
    .await?;
    let api = cluster.client("alice", "alicealice").await?;
    cluster.add_worker_for("assemble")?;
    let mut ids = Vec::new();
    for i in 0..5 {
        let res = api.upload(&format!("purged-{i}"), &random_bytes(20_000 + i), 20_000, None).await?;
        ids.push(res.json()["id"].as_str().unwrap_or_default().to_owned());
    }
    eventually("ten replicate jobs queued", Duration::from_secs(60), || async {
        Ok((cluster.queue_messages("ferry.replicate").await? == 10).then_some(()))
    })
    .await?;
    cluster.purge_queue("ferry.replicate").await?;
    // The burst goes on with a replicating worker; the purged jobs come back.
    cluster.add_worker_for("replicate,delete")?;
    for i in 5..8 {
        let res = api.upload(&format!("purged-{i}"), &random_bytes(20_000 + i), 20_000, None).await?;
        ids.push(res.json()["id"].as_str().unwrap_or_default().to_owned());
    }
    for id in &ids {
        cluster.wait_replicas(id, 2).await?;
    }
    let db = cluster.db().await?;
    let requeued: i64 = db
        .query_one("SELECT count(*) FROM jobs WHERE kind = 'replicate' AND requeues > 0 AND state = 'done'", &[])
        .await?
        .get(0);
    assert_eq!(requeued, 10, "every purged job re-enqueued by the reconciler, then done");
    Ok(())
}

/// A paused queue keeps its jobs and no worker takes them until it is resumed; the
/// per-kind policy is read from the environment like any setting.
#[tokio::test]
async fn a_paused_queue_waits_until_resumed() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(Options {
        env: env(&[
            ("FERRY_API__COMPLETE_WAIT_SECS", "1"),
            ("FERRY_WORKER__POLICY__REPLICATE__TIME_LIMIT_SECS", "300"),
            ("FERRY_WORKER__POLICY__REPLICATE__MAX_ATTEMPTS", "5"),
        ]),
        ..Default::default()
    })
    .await?;
    let api = cluster.client("alice", "alicealice").await?;
    let out = cluster.ferry(&["queues", "pause", "replicate"])?;
    assert!(out.contains("ferry.replicate paused"), "{out}");
    eventually("the worker stopped consuming ferry.replicate", Duration::from_secs(30), || async {
        Ok(cluster.log_tail("worker1", 200).contains("queue paused by an operator").then_some(()))
    })
    .await?;
    let res = api.upload("paused.bin", &random_bytes(20_000), 20_000, None).await?;
    let id = res.json()["id"].as_str().unwrap_or_default().to_owned();
    let listing = eventually("two jobs waiting in the paused queue", Duration::from_secs(30), || async {
        let out = cluster.ferry(&["queues", "ls"])?;
        let line = out.lines().find(|l| l.starts_with("ferry.replicate ")).unwrap_or_default().to_owned();
        let ready = line.split_whitespace().nth(1).unwrap_or_default().to_owned();
        Ok((ready == "2" && line.contains("since")).then_some(out))
    })
    .await?;
    println!("$ ferry queues ls\n{listing}");
    assert!(listing.lines().any(|l| l.starts_with("ferry.assemble ") && l.ends_with(" no")), "{listing}");
    let jobs = cluster.ferry(&["jobs", "ls", "--upload", &id, "--kind", "replicate", "--state", "queued"])?;
    assert_eq!(rows(&jobs).len(), 2, "both replicate jobs still queued: {jobs}");

    assert!(cluster.ferry(&["queues", "resume", "replicate"])?.contains("ferry.replicate resumed"));
    cluster.wait_replicas(&id, 2).await?;
    assert!(cluster.ferry(&["queues", "resume", "replicate"]).is_err(), "resuming twice is refused");
    Ok(())
}

/// A copy that waits (here in a paused queue; as well between attempts, retrying
/// against a broken node) is revoked, as Celery's `revoke` (the operator trial of stop
/// 31: no way to stop one job short of cancelling its whole upload): from the CLI, the
/// admin page and the admin API. Each job becomes `cancelled` with the reason, its
/// replica `failed` with it, and the repair places the copies again under new jobs; on
/// resume the revoked messages are acked unrun (no worker, no attempt) and the file ends
/// with R present copies. Revoking a job that has ended, or twice, is refused with why.
#[tokio::test]
async fn a_waiting_copy_is_revoked_and_the_repair_places_it_again() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(Options { nodes: 3, replication: 2, ..Default::default() }).await?;
    let admin = cluster.client("admin", "adminadmin").await?;
    let api = cluster.client("alice", "alicealice").await?;
    assert!(cluster.ferry(&["queues", "pause", "replicate"])?.contains("ferry.replicate paused"));
    eventually("the worker stopped consuming ferry.replicate", Duration::from_secs(30), || async {
        Ok(cluster.log_tail("worker1", 200).contains("queue paused by an operator").then_some(()))
    })
    .await?;
    let res = api.upload("revoked.bin", &random_bytes(30_000), 30_000, None).await?;
    assert_eq!(res.status, 200, "{}", res.text());
    let id = res.json()["id"].as_str().unwrap_or_default().to_owned();
    let queued = |table: String| {
        rows(&table).iter().filter_map(|r| r.split_whitespace().nth(2)).map(str::to_owned).collect::<Vec<_>>()
    };
    let first_jobs =
        queued(cluster.ferry(&["jobs", "ls", "--upload", &id, "--kind", "replicate", "--state", "queued"])?);
    assert_eq!(first_jobs.len(), 2, "both copies wait: {first_jobs:?}");
    let (cli_job, page_job) = (&first_jobs[0], &first_jobs[1]);

    // From the CLI, by the start of its id.
    let out = cluster.ferry(&["jobs", "revoke", &cli_job[..8], "--reason", "node being replaced"])?;
    assert_eq!(out.trim(), format!("job {cli_job} revoked"));
    let shown: Value = serde_json::from_str(&cluster.ferry(&["jobs", "show", cli_job])?)?;
    assert_eq!(shown["state"], "cancelled", "{shown}");
    assert_eq!(shown["error"], "revoked by an operator: node being replaced", "{shown}");
    let node = shown["node"].as_i64().unwrap_or_default();
    let db = cluster.db().await?;
    let replica = db
        .query_one(
            "SELECT state, last_error FROM replicas WHERE file_id = $1::text::uuid AND node_id = $2",
            &[&id, &(node as i32)],
        )
        .await?;
    assert_eq!(replica.get::<_, String>(0), "failed");
    assert_eq!(replica.get::<_, Option<String>>(1).as_deref(), Some("revoked by an operator: node being replaced"));
    // Twice is refused, saying why, and the CLI exits non-zero.
    let (ok, out) = cluster.ferry_cli(&["jobs", "revoke", cli_job], "")?;
    assert!(!ok && out.contains("skipped: That job is cancelled: only a job that waits is revoked."), "{out}");
    // Every id is looked up first: one that names no job, by its start or whole, stops
    // the command before anything is revoked; a blank reason is refused.
    let unknown = uuid::Uuid::new_v4().to_string();
    for typo in ["ffff0000", unknown.as_str()] {
        let (ok, out) = cluster.ferry_cli(&["jobs", "revoke", page_job, typo], "")?;
        assert!(!ok && out.contains("no job"), "{out}");
    }
    let (ok, out) = cluster.ferry_cli(&["jobs", "revoke", page_job, "--reason", "  "], "")?;
    assert!(!ok && out.contains("give a reason"), "{out}");
    let shown: Value = serde_json::from_str(&cluster.ferry(&["jobs", "show", page_job])?)?;
    assert_eq!(shown["state"], "queued", "nothing revoked: {shown}");

    // From the job's page: its Revoke button.
    let pages = AdminPage::new(&cluster, &admin)?;
    let page = pages.get(&format!("/admin/jobs/{page_job}")).await?;
    assert!(page.contains(&format!("action=\"/admin/jobs/{page_job}/revoke\"")), "the page offers Revoke");
    assert_eq!(pages.post(&format!("/admin/jobs/{page_job}/revoke"), &csrf(&page)).await?, 303);
    let page = pages.get(&format!("/admin/jobs/{page_job}?done=revoked")).await?;
    assert!(
        page.contains("Revoked: the job is cancelled")
            && page.contains("revoked by an operator: admin, from the admin page"),
        "{page}"
    );
    assert!(!page.contains("/revoke\""), "no Revoke for a cancelled job");

    // The repair places both copies again under new jobs, which wait in the paused queue.
    let new_jobs = eventually("the repair's new copies", Duration::from_secs(60), || async {
        let jobs =
            queued(cluster.ferry(&["jobs", "ls", "--upload", &id, "--kind", "replicate", "--state", "queued"])?);
        Ok((jobs.len() == 2).then_some(jobs))
    })
    .await?;
    assert!(new_jobs.iter().all(|j| !first_jobs.contains(j)), "{new_jobs:?} {first_jobs:?}");

    assert!(cluster.ferry(&["queues", "resume", "replicate"])?.contains("ferry.replicate resumed"));
    cluster.wait_replicas(&id, 2).await?;
    // The revoked messages, ahead of the new ones in the queue, are acked unrun: still
    // cancelled, never started by a worker.
    for job in &first_jobs {
        let shown: Value = serde_json::from_str(&cluster.ferry(&["jobs", "show", job])?)?;
        assert_eq!((shown["state"].as_str(), shown["worker"].as_str()), (Some("cancelled"), None), "{shown}");
        assert_eq!(shown["attempts"], json!([]), "{shown}");
    }
    // The revoked copy's failed row is forgotten once the file has its R copies again.
    cluster.wait_failed_forgotten(&id).await?;
    // A job that has ended is not revoked: the admin API says why.
    let done_job = &new_jobs[0];
    eventually("the new copy done", Duration::from_secs(30), || async {
        let shown: Value = serde_json::from_str(&cluster.ferry(&["jobs", "show", done_job])?)?;
        Ok((shown["state"] == "done").then_some(()))
    })
    .await?;
    let res = admin.post_json(&format!("/admin/api/jobs/{done_job}/revoke"), &json!({})).await?;
    assert_eq!((res.status, res.json()["code"].as_str()), (409, Some("not_revocable")), "{}", res.text());
    assert!(res.json()["detail"].as_str().is_some_and(|d| d.contains("That job is done")), "{}", res.text());
    let unknown = uuid::Uuid::new_v4();
    assert_eq!(admin.post_json(&format!("/admin/api/jobs/{unknown}/revoke"), &json!({})).await?.status, 404);
    // A retrying job keeps its last attempt's duration when revoked (the operator trial
    // of stop 32: a 330 ms attempt read 5.8 s, the wait for its retry counted as run
    // time). The done job is put back to retrying by hand, its attempt one second long.
    db.execute(
        "UPDATE jobs SET state = 'retrying', started_at = now() - interval '60 s', \
         finished_at = now() - interval '59 s' WHERE id = $1::text::uuid",
        &[&done_job.as_str()],
    )
    .await?;
    // The admin API records a reason after who revoked (and refuses one for a replay).
    let res = admin.post_json(&format!("/admin/api/jobs/{done_job}/replay"), &json!({"reason": "x"})).await?;
    assert_eq!((res.status, res.json()["code"].as_str()), (400, Some("reason_not_recorded")), "{}", res.text());
    let res = admin.post_json(&format!("/admin/api/jobs/{done_job}/revoke"), &json!({"reason": ""})).await?;
    assert_eq!((res.status, res.json()["code"].as_str()), (400, Some("invalid_reason")), "{}", res.text());
    let res = admin.post_json(&format!("/admin/api/jobs/{done_job}/revoke"), &json!({"reason": "disk swap"})).await?;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json()["error"], "revoked by an operator: admin, through the admin API: disk swap");
    let shown: Value = serde_json::from_str(&cluster.ferry(&["jobs", "show", done_job])?)?;
    assert_eq!((shown["state"].as_str(), shown["duration_ms"].as_i64()), (Some("cancelled"), Some(1000)), "{shown}");
    Ok(())
}

/// Issue 11 (control): an operator cancels an unfinished upload and its pending jobs.
/// The waiting client is told the upload failed (409 `upload_failed`, "an operator
/// cancelled"), the queued assemble job is recorded `cancelled`, and when a worker
/// finally gets its message it acks it without running it: no file appears, and a
/// delete job reclaims the staging bytes. A second cancel, and one of an unknown id,
/// fail with a clear message.
#[tokio::test]
async fn an_operator_cancels_an_unfinished_upload_and_its_pending_jobs() -> anyhow::Result<()> {
    let mut cluster = Cluster::start_with(Options {
        nodes: 1,
        replication: 1,
        workers: 0,
        env: env(&[("FERRY_API__COMPLETE_WAIT_SECS", "1")]),
        ..Default::default()
    })
    .await?;
    let api = cluster.client("alice", "alicealice").await?;
    let bytes = random_bytes(40_000);
    let res = api.put_raw("/storage/tmp-upload/?filename=cancel-me.bin", "bytes 0-39999/40000", bytes.clone()).await?;
    assert_eq!(res.status, 200, "{}", res.text());
    let id = res.json()["id"].as_str().unwrap_or_default().to_owned();
    // The API records a file itself when staging holds exactly the bytes it hashed; a
    // staging copy of another length goes to the worker's assemble job (which trims
    // it). A stray byte beyond the end stands in for that here, so the upload waits,
    // `assembling`, for a worker.
    {
        use std::io::Write;
        let data = cluster.staging.join(&id).join("data");
        std::fs::OpenOptions::new().append(true).open(&data)?.write_all(b"x")?;
    }
    let res = api.complete(&format!("/storage/tmp-upload/{id}/"), &ferry_tests::md5_hex(&bytes)).await?;
    assert_eq!(res.status, 202, "no worker yet: {}", res.text());
    eventually("the assemble job queued", Duration::from_secs(30), || async {
        Ok((cluster.queue_messages("ferry.assemble").await? == 1).then_some(()))
    })
    .await?;

    let out = cluster.ferry(&["jobs", "cancel", "--upload", &id, "--reason", "wrong customer"])?;
    assert!(out.contains("1 pending job(s) cancelled"), "{out}");
    let status = api.get(&format!("/storage/tmp-upload/{id}/")).await?;
    assert_eq!(status.json()["state"], "failed", "{}", status.text());
    // The operator's reason is for operators: the client reads only the public text
    // (the operator trial of stop 31 found "cancelled: wrong customer" in its upload).
    assert_eq!(
        status.json()["error"].as_str(),
        Some("An operator cancelled this upload; upload the file again."),
        "{}",
        status.text()
    );
    assert!(!api.get("/storage/tmp-upload/").await?.text().contains("wrong customer"), "the listing neither");
    let again = api.complete(&format!("/storage/tmp-upload/{id}/"), &ferry_tests::md5_hex(&bytes)).await?;
    assert_eq!((again.status, again.code().as_str()), (409, "upload_failed"), "{}", again.text());
    assert!(again.text().contains("An operator cancelled"), "{}", again.text());

    // The message is still queued; a worker takes it, sees the record, does nothing.
    cluster.add_worker()?;
    eventually("the cancelled job's message consumed", Duration::from_secs(60), || async {
        Ok((cluster.queue_messages("ferry.assemble").await? == 0).then_some(()))
    })
    .await?;
    // Its timeline: the cancelled assembly, then the delete job that reclaimed staging.
    let jobs = eventually("the staging bytes reclaimed", Duration::from_secs(60), || async {
        let jobs: Value = serde_json::from_str(&cluster.ferry(&["jobs", "ls", "--upload", &id, "--json"])?)?;
        let done = jobs.as_array().is_some_and(|j| j.len() == 2 && j[1]["state"] == "done");
        Ok((done && !cluster.staging.join(&id).exists()).then_some(jobs))
    })
    .await?;
    let timeline: Vec<(&str, &str)> = jobs
        .as_array()
        .into_iter()
        .flatten()
        .map(|j| (j["kind"].as_str().unwrap_or_default(), j["state"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(timeline, [("assemble", "cancelled"), ("delete", "done")], "{jobs}");
    assert!(jobs[0]["error"].as_str().is_some_and(|e| e.contains("wrong customer")), "{jobs}");
    let files = api.get("/storage/files/").await?;
    assert!(!files.text().contains(&id), "no file for a cancelled upload: {}", files.text());

    let (ok, text) = cluster.ferry_cli(&["jobs", "cancel", "--upload", &id], "")?;
    assert!(!ok && text.contains("already failed"), "{text}");
    let unknown = uuid::Uuid::new_v4().to_string();
    let (ok, text) = cluster.ferry_cli(&["jobs", "cancel", "--upload", &unknown], "")?;
    assert!(!ok && text.contains(&format!("no upload {unknown}")), "{text}");
    Ok(())
}

/// A worker killed while it runs a job: the broker gives the delivery to the other
/// worker, which finishes it, and the killed worker's attempt is kept as `lost` (the
/// trial of stop 29 found it gone without a trace: the record only named the second
/// worker, and the killed run counted as queue wait).
#[tokio::test]
async fn a_job_whose_worker_is_killed_keeps_the_lost_attempt() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(Options { workers: 2, ..Default::default() }).await?;
    let api = cluster.client("alice", "alicealice").await?;
    // Large enough that its copies take a while (the worker hashes the source beside
    // rsync; a debug build here), small enough for a debug API's body pace.
    let bytes = random_bytes(48 << 20);
    let res = api.upload("killed.bin", &bytes, 8 << 20, None).await?;
    assert_eq!(res.status, 200, "{}", res.text());
    let id = res.json()["id"].as_str().unwrap_or_default().to_owned();
    let db = cluster.db().await?;
    // A replicate job running on a worker: kill that worker outright.
    let (job, worker): (uuid::Uuid, String) = eventually("a replicate job running", Duration::from_secs(30), || async {
        let row = db
            .query_opt(
                "SELECT id, worker_id FROM jobs
                 WHERE file_id::text = $1 AND kind = 'replicate' AND state = 'active' AND worker_id IS NOT NULL LIMIT 1",
                &[&id],
            )
            .await?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    })
    .await?;
    let pid = worker.rsplit(':').next().unwrap_or_default().to_owned();
    let killed = std::process::Command::new("kill").args(["-KILL", &pid]).status()?;
    assert!(killed.success(), "kill -KILL {pid}");

    cluster.wait_replicas(&id, 2).await?;
    let shown = eventually("the job done with its lost attempt", Duration::from_secs(60), || async {
        let shown: Value = serde_json::from_str(&cluster.ferry(&["jobs", "show", &job.to_string()])?)?;
        Ok((shown["state"] == "done").then_some(shown))
    })
    .await?;
    let attempts = shown["attempts"].as_array().cloned().unwrap_or_default();
    assert!(
        attempts.iter().any(|a| a["outcome"] == "lost"
            && a["worker"] == worker.as_str()
            && a["error"].as_str().is_some_and(|e| e.contains("delivered the job again"))),
        "{shown}"
    );
    assert_ne!(shown["worker"], worker.as_str(), "another worker finished it: {shown}");
    let downloaded = api.download(&id, None).await?;
    assert!(downloaded.body == bytes, "the copy differs");
    Ok(())
}

/// A run that ends after the broker gave its job to a later delivery changes nothing
/// (the operator trial of stop 30: a worker SIGSTOPped past its connection's heartbeat
/// woke after another worker had finished the job and rewrote the record's end and
/// duration). Ending, retrying and giving up apply only to a record `active` on the
/// worker that ends it; the monitor's dead letters leave `done` records alone.
#[tokio::test]
async fn a_superseded_run_does_not_rewrite_the_job_record() -> anyhow::Result<()> {
    use anyhow::Context;
    use ferry_store::jobs::{self, DeadLetter, NewJob, Retry, Start};
    let cluster =
        Cluster::start_with(Options { nodes: 0, register_nodes: false, workers: 0, ..Default::default() }).await?;
    let c = ferry_tests::store_client(&cluster.db_url).await?;
    let payload = json!({});
    let job = NewJob {
        id: uuid::Uuid::new_v4(),
        kind: "delete",
        queue: "delete",
        file: ferry_shared::types::FileId(uuid::Uuid::new_v4()),
        node: None,
        payload: &payload,
    };
    type Record = (String, Option<String>, Option<chrono::DateTime<chrono::Utc>>, i32, Option<String>);
    async fn record(c: &ferry_store::Client, id: uuid::Uuid) -> anyhow::Result<Record> {
        let row =
            c.query_one("SELECT state, worker_id, finished_at, attempt, error FROM jobs WHERE id = $1", &[&id]).await?;
        Ok((row.get(0), row.get(1), row.get(2), row.get(3), row.get(4)))
    }
    // Worker "old" starts it, stalls; the broker gives it to "new", which starts it
    // (old's run becomes a lost attempt) and finishes it.
    jobs::start(&c, &[Start::new(&job, 0)], "old").await?;
    jobs::start(&c, &[Start::new(&job, 0)], "new").await?;
    assert_eq!(jobs::finish(&c, &[job.id], "new").await?, vec![job.id]);
    let finished = record(&c, job.id).await?;
    assert_eq!((finished.0.as_str(), finished.1.as_deref()), ("done", Some("new")));

    // Old wakes: whatever it ends with, nothing changes.
    assert!(jobs::finish(&c, &[job.id], "old").await?.is_empty(), "a superseded run ended the record");
    let retry = |id, worker| Retry {
        id,
        attempt: 1,
        error: "ssh: down",
        worker,
        delay: Duration::from_secs(30),
        max_attempts: 8,
    };
    assert!(!jobs::retrying(&c, &retry(job.id, "old")).await?, "a superseded run scheduled a retry");
    let late = DeadLetter {
        job: job.clone(),
        reason: "late give-up",
        attempt: 0,
        worker: Some("old"),
        by_worker: true,
        max_attempts: Some(8),
    };
    assert!(!jobs::dead(&c, &late).await?, "a superseded run dead-lettered the job");
    assert_eq!(record(&c, job.id).await?, finished);
    // Nor does a broker-made dead letter taken in by the monitor.
    let broker = DeadLetter {
        job: job.clone(),
        reason: "delivery-limit",
        attempt: 0,
        worker: None,
        by_worker: false,
        max_attempts: None,
    };
    assert!(!jobs::dead(&c, &broker).await?);
    assert_eq!(record(&c, job.id).await?, finished);
    let attempts = jobs::attempts(&c, job.id).await?;
    assert_eq!(attempts.len(), 1, "only old's lost attempt: {attempts:?}");
    assert_eq!(attempts[0].worker.as_deref(), Some("old"));

    // While a run is its record's own, it ends it: a failure on "new" is recorded with
    // when the next attempt is due and how many there are, and a give-up is recorded.
    let next = NewJob { id: uuid::Uuid::new_v4(), ..job.clone() };
    jobs::start(&c, &[Start::new(&next, 0)], "new").await?;
    assert!(jobs::retrying(&c, &retry(next.id, "new")).await?);
    let shown = jobs::get(&c, next.id).await?.context("the record")?;
    let due = shown.retry_at.context("retry_at while retrying")? - chrono::Utc::now();
    assert!((25..=30).contains(&due.num_seconds()), "next attempt due in {due}");
    assert_eq!((shown.attempt, shown.max_attempts), (1, Some(8)));
    jobs::start(&c, &[Start::new(&next, 1)], "new").await?;
    assert!(jobs::get(&c, next.id).await?.context("the record")?.retry_at.is_none(), "retry_at once running");
    let gave_up = DeadLetter {
        job: next.clone(),
        reason: "gave up after 2 attempts: ssh: down",
        attempt: 1,
        worker: Some("new"),
        by_worker: true,
        max_attempts: Some(8),
    };
    assert!(jobs::dead(&c, &gave_up).await?);
    let state: String = c.query_one("SELECT state FROM jobs WHERE id = $1", &[&next.id]).await?.get(0);
    assert_eq!(state, "dead");
    c.execute("DELETE FROM jobs WHERE id = ANY($1)", &[&vec![job.id, next.id]]).await?;
    Ok(())
}
