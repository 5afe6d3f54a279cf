//! The fault suite: with 50 uploads of mixed sizes in flight, one fault per scenario,
//! then the durability invariants for every upload whose completing POST got a 2xx:
//! a complete file with exactly R present replicas whose bytes match its sha256 on the
//! nodes, no duplicate file or replica, no staging left behind.
//!
//! It restarts the run's PostgreSQL and RabbitMQ, so it lives in its own test binary
//! (cargo runs test binaries one after another) and runs its scenarios in sequence.
//! `deploy/dev test` runs it; `deploy/dev chaos` runs it alone with more load.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ferry_tests::{md5_hex, random_bytes, Client, Cluster, Options};
use sha2::Digest;

const REPLICATION: usize = 2;
const GRACE_SECS: u64 = 3;

/// Uploads in flight per scenario (`FERRY_CHAOS_UPLOADS` raises it for `deploy/dev chaos`).
fn uploads_per_scenario() -> usize {
    std::env::var("FERRY_CHAOS_UPLOADS").ok().and_then(|v| v.parse().ok()).unwrap_or(50)
}

struct Outcome {
    id: Option<String>,
    /// The completing POST answered 2xx.
    acked: bool,
    sha256: String,
}

/// Uploads like a well-behaved client: retries transport errors and 5xx with backoff,
/// resumes from the server's offset, retries the (idempotent) completing POST.
async fn upload(base: String, name: String, bytes: Arc<Vec<u8>>, chunk: usize) -> Outcome {
    let sha256 = hex::encode(sha2::Sha256::digest(&bytes[..]));
    let deadline = Instant::now() + Duration::from_secs(180);
    let pause = || tokio::time::sleep(Duration::from_millis(250));
    let failed = |id| Outcome { id, acked: false, sha256: sha256.clone() };
    let api = loop {
        match Client::login(&base, "alice", "alicealice").await {
            Ok(api) => break api,
            Err(_) if Instant::now() < deadline => pause().await,
            Err(_) => return failed(None),
        }
    };
    let total = bytes.len();
    let mut url: Option<String> = None;
    let mut start = 0;
    while start < total {
        if Instant::now() > deadline {
            return failed(None);
        }
        let end = (start + chunk).min(total);
        let range = format!("bytes {start}-{}/{total}", end - 1);
        let target = url.clone().unwrap_or_else(|| format!("/storage/tmp-upload/?filename={name}"));
        match api.put_raw(&target, &range, bytes[start..end].to_vec()).await {
            Ok(res) if res.status == 200 => {
                url = res.json()["url"].as_str().map(str::to_owned);
                start = end;
            }
            Ok(res) if res.code() == "offset_mismatch" && url.is_some() => {
                start = res.json()["offset"].as_u64().unwrap_or(0) as usize;
            }
            Ok(res) if res.status >= 500 || res.status == 401 => pause().await,
            Ok(_) => return failed(None),
            Err(_) => pause().await,
        }
    }
    let Some(url) = url else { return failed(None) };
    let id = url.trim_end_matches('/').rsplit('/').next().map(str::to_owned);
    let md5 = md5_hex(&bytes);
    while Instant::now() < deadline {
        match api.post_form(&format!("{url}?wait=20"), &[("md5", &md5)]).await {
            Ok(res) if res.status == 200 || res.status == 202 => return Outcome { id, acked: true, sha256 },
            Ok(res) if res.status >= 500 => pause().await,
            Ok(_) => return failed(id),
            Err(_) => pause().await,
        }
    }
    failed(id)
}

/// Starts `n` uploads of mixed sizes (4 KiB to 3 MiB, chunked by 1 MiB).
fn start_uploads(base: &str, n: usize) -> Vec<tokio::task::JoinHandle<Outcome>> {
    const SIZES: [usize; 6] = [4 << 10, 60 << 10, 300 << 10, 1 << 20, (2 << 20) + 17, 3 << 20];
    (0..n)
        .map(|i| {
            let bytes = Arc::new(random_bytes(SIZES[i % SIZES.len()]));
            tokio::spawn(upload(base.to_owned(), format!("chaos-{i}.bin"), bytes, 1 << 20))
        })
        .collect()
}

/// What is wrong with one acknowledged upload right now (None: all invariants hold).
async fn violations(cluster: &Cluster, db: &tokio_postgres::Client, outcome: &Outcome) -> Result<Option<String>> {
    let Some(id) = &outcome.id else { return Ok(Some("acknowledged without an id".into())) };
    let uuid: uuid::Uuid = id.parse()?;
    let row = db
        .query_opt(
            "SELECT u.status, f.sha256,
                    (SELECT count(*) FROM replicas r WHERE r.file_id = f.id AND r.state = 'present'),
                    (SELECT count(*) FROM replicas r WHERE r.file_id = f.id AND r.state IN ('pending', 'copying', 'deleting'))
             FROM uploads u LEFT JOIN files f ON f.id = u.id WHERE u.id = $1",
            &[&uuid],
        )
        .await?;
    let Some(row) = row else { return Ok(Some("no upload row".into())) };
    let (status, sha, present, unsettled): (String, Option<String>, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    if status != "complete" {
        return Ok(Some(format!("upload {status}")));
    }
    if sha.as_deref() != Some(outcome.sha256.as_str()) {
        return Ok(Some("recorded sha256 differs from the bytes sent".into()));
    }
    if present as usize != REPLICATION || unsettled != 0 {
        return Ok(Some(format!("{present} present replicas, {unsettled} still moving")));
    }
    let holders = cluster.nodes_holding(id);
    if holders.len() != REPLICATION {
        return Ok(Some(format!("on {} nodes", holders.len())));
    }
    for i in holders {
        let bytes = std::fs::read(cluster.nodes[i].path_of(id)).unwrap_or_default();
        if hex::encode(sha2::Sha256::digest(&bytes)) != outcome.sha256 {
            return Ok(Some(format!("copy on {} differs", cluster.nodes[i].name)));
        }
    }
    if cluster.staging.join(id).exists() {
        return Ok(Some("staging left behind".into()));
    }
    Ok(None)
}

/// Prints what the cluster knows about a file that did not heal: its replica rows and
/// every log line (worker, monitor, api, agents, sshd) that names it, so the cause of a
/// stall is on the console before the cluster and its logs are dropped.
async fn print_history(cluster: &Cluster, db: &tokio_postgres::Client, id: &str) {
    let uuid: uuid::Uuid = match id.parse() {
        Ok(uuid) => uuid,
        Err(_) => return,
    };
    eprintln!("==== history of {id} ====");
    if let Ok(rows) = db
        .query(
            "SELECT node_id, state, attempts, last_error, updated_at::text, verified_at::text
             FROM replicas WHERE file_id = $1 ORDER BY node_id",
            &[&uuid],
        )
        .await
    {
        for r in rows {
            let (node, state, attempts, error, updated, verified): (
                i32,
                String,
                i32,
                Option<String>,
                Option<String>,
                Option<String>,
            ) = (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
            eprintln!(
                "replica node {node}: {state} attempts={attempts} updated={updated:?} verified={verified:?} error={error:?}"
            );
        }
    }
    let mut logs: Vec<_> = std::fs::read_dir(&cluster.dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    for path in logs {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        for line in text.lines().filter(|l| l.contains(id)) {
            eprintln!("[{name}] {line}");
        }
    }
}

struct Row {
    scenario: &'static str,
    uploads: usize,
    acked: usize,
    lost: usize,
    duplicated: usize,
    heal_secs: f64,
}

/// Waits (bounded) until every acknowledged upload satisfies the invariants.
async fn heal(cluster: &Cluster, outcomes: &[Outcome], since: Instant) -> Result<(usize, usize, f64)> {
    let db = cluster.db().await?;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut bad = Vec::new();
        for outcome in outcomes.iter().filter(|o| o.acked) {
            if let Some(why) = violations(cluster, &db, outcome).await? {
                bad.push(format!("{}: {why}", outcome.id.as_deref().unwrap_or("?")));
            }
        }
        // A file row per upload, never two (ids are primary keys; count anyway).
        let duplicated: i64 = db
            .query_one("SELECT count(*) FROM (SELECT id FROM files GROUP BY id HAVING count(*) > 1) d", &[])
            .await?
            .get(0);
        if bad.is_empty() {
            return Ok((0, duplicated as usize, since.elapsed().as_secs_f64()));
        }
        if Instant::now() >= deadline {
            eprintln!("not healed: {bad:#?}");
            for outcome in outcomes.iter().filter(|o| o.acked) {
                if let Some(id) = &outcome.id {
                    if bad.iter().any(|b| b.starts_with(id.as_str())) {
                        print_history(cluster, &db, id).await;
                    }
                }
            }
            return Ok((bad.len(), duplicated as usize, since.elapsed().as_secs_f64()));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Whether scenario `name` runs: all of them unless `FERRY_CHAOS_ONLY` is set, then those
/// whose name contains it (to reproduce one scenario quickly).
fn selected(name: &str) -> bool {
    std::env::var("FERRY_CHAOS_ONLY").map_or(true, |only| name.contains(only.as_str()))
}

async fn scenario(
    name: &'static str,
    cluster: &mut Cluster,
    fault: impl AsyncFnOnce(&mut Cluster) -> Result<()>,
) -> Result<Option<Row>> {
    if !selected(name) {
        return Ok(None);
    }
    let n = uploads_per_scenario();
    let handles = start_uploads(&cluster.api, n);
    // Let the uploads get going, so the fault lands mid-flight.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let injected = Instant::now();
    fault(cluster).await.with_context(|| format!("injecting {name}"))?;
    let mut outcomes = Vec::with_capacity(n);
    for handle in handles {
        outcomes.push(handle.await?);
    }
    let acked = outcomes.iter().filter(|o| o.acked).count();
    let (lost, duplicated, heal_secs) = heal(cluster, &outcomes, injected).await?;
    Ok(Some(Row { scenario: name, uploads: n, acked, lost, duplicated, heal_secs }))
}

async fn fresh_cluster(extra: &[(&str, &str)]) -> Result<Cluster> {
    let mut env = vec![
        ("FERRY_MONITOR__NODE_GRACE_SECS".to_owned(), GRACE_SECS.to_string()),
        ("FERRY_DATABASE__ACQUIRE_TIMEOUT_MS".to_owned(), "2000".to_owned()),
        // Every upload of the load comes from 127.0.0.1, standing for many clients
        // (`deploy/dev chaos` raises it past the per-address cap of 128).
        ("FERRY_HTTP__MAX_CONNECTIONS_PER_ADDRESS".to_owned(), "1024".to_owned()),
    ];
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    Cluster::start_with(Options { nodes: 3, workers: 2, replication: REPLICATION as u32, env, register_nodes: true })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_suite() -> Result<()> {
    let mut rows: Vec<Option<Row>> = Vec::new();

    let mut c = fresh_cluster(&[]).await?;
    rows.push(
        scenario("kill -9 a worker as uploads complete", &mut c, async |c| {
            c.kill("worker1");
            c.add_worker()?;
            Ok(())
        })
        .await?,
    );
    rows.push(
        scenario("kill -9 a worker during rsync", &mut c, async |c| {
            tokio::time::sleep(Duration::from_millis(800)).await;
            c.kill("worker2");
            c.add_worker()?;
            Ok(())
        })
        .await?,
    );
    rows.push(scenario("restart RabbitMQ", &mut c, async |c| c.restart_rabbitmq()).await?);
    rows.push(scenario("restart PostgreSQL", &mut c, async |c| c.restart_postgres()).await?);
    rows.push(
        scenario("kill a node's sshd during replication", &mut c, async |c| {
            c.kill_sshd(0);
            tokio::time::sleep(Duration::from_secs(2)).await;
            c.restart_sshd(0)
        })
        .await?,
    );
    rows.push(
        scenario("SIGTERM every process, start again", &mut c, async |c| {
            let names = c.process_names();
            for name in &names {
                let code = c.terminate(name)?;
                anyhow::ensure!(code == Some(0), "{name} exited with {code:?} on SIGTERM");
            }
            for i in 0..c.nodes.len() {
                let code = c.terminate_agent(i)?;
                anyhow::ensure!(code == Some(0), "agent {i} exited with {code:?} on SIGTERM");
            }
            for name in &names {
                c.respawn(name)?;
            }
            for i in 0..c.nodes.len() {
                c.restart_agent(i)?;
            }
            Ok(())
        })
        .await?,
    );
    drop(c);

    // A whole node away for longer than the grace period: its files are repaired onto
    // the others, downloads meanwhile go only to live nodes; when it is back, the
    // surplus copies are trimmed to exactly R.
    let mut c = fresh_cluster(&[]).await?;
    let redirects_to_dead = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let probe_count = redirects_to_dead.clone();
    rows.push(
        scenario("stop a whole node past the grace period", &mut c, async |c| {
            c.stop_node(0);
            let killed = Instant::now();
            let dead = c.nodes[0].public_url();
            let api = c.client("alice", "alicealice").await?;
            // The API may still redirect to the node until its heartbeat is stale
            // (api.heartbeat_stale_secs = 3 in tests); after that, never.
            let stale = Duration::from_secs(4);
            while killed.elapsed() < Duration::from_secs(GRACE_SECS + 5) {
                let list = api.get("/storage/files/").await?.json();
                for file in list["results"].as_array().into_iter().flatten().take(10) {
                    let id = file["id"].as_str().unwrap_or_default();
                    let res = api.get(&format!("/storage/download/{id}/")).await?;
                    let to_dead = res.header("location").is_some_and(|l| l.starts_with(&dead));
                    if to_dead && killed.elapsed() > stale {
                        probe_count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            c.start_node(0)
        })
        .await?,
    );
    assert_eq!(redirects_to_dead.load(std::sync::atomic::Ordering::Relaxed), 0, "redirected to a dead node");
    drop(c);

    // Corrupt bytes of one replica on disk: the scrub finds it, moves it aside, and the
    // file is copied again from the good replica.
    let mut c = fresh_cluster(&[("FERRY_MONITOR__SCRUB_INTERVAL_SECS", "5")]).await?;
    // The corrupt copy's replica row is `failed` (with its reason) until the repair's
    // copy elsewhere is present and the sweep forgets it, which may come after the end.
    c.expect_leftovers(ferry_tests::Leftovers { failed_replicas: true, ..Default::default() });
    rows.push(
        scenario("corrupt bytes of a replica on disk", &mut c, async |c| {
            // The first upload in flight to have all its replicas. The scrub re-checks
            // the longest-unverified copies first, so this is the copy it reaches first;
            // how long a full scrub cycle takes under load (replicas / verify rate) is
            // not what this scenario measures, the detection and the repair are.
            let db = c.db().await?;
            let id: String = ferry_tests::eventually("a replicated upload", Duration::from_secs(60), || async {
                let row = db
                    .query_opt(
                        "SELECT file_id::text FROM replicas WHERE state = 'present'
                         GROUP BY file_id HAVING count(*) >= $1 ORDER BY max(updated_at) LIMIT 1",
                        &[&(REPLICATION as i64)],
                    )
                    .await?;
                Ok(row.map(|r| r.get(0)))
            })
            .await?;
            let i = c.nodes_holding(&id).first().copied().context("a holder")?;
            let path = c.nodes[i].path_of(&id);
            let mut bytes = std::fs::read(&path)?;
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0xff;
            std::fs::write(&path, bytes)?;
            Ok(())
        })
        .await?,
    );
    drop(c);

    let mut table = String::from(
        "| scenario | uploads | acknowledged (2xx) | lost | duplicated | seconds to heal |\n|---|---:|---:|---:|---:|---:|\n",
    );
    let rows: Vec<Row> = rows.into_iter().flatten().collect();
    for r in &rows {
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.1} |\n",
            r.scenario, r.uploads, r.acked, r.lost, r.duplicated, r.heal_secs
        ));
    }
    println!("\n{table}");
    if let Ok(dir) = std::env::var("FERRY_TEST_ARTIFACTS") {
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(std::path::Path::new(&dir).join("fault-suite.md"), &table);
    }
    for r in &rows {
        assert_eq!((r.lost, r.duplicated), (0, 0), "{}", r.scenario);
        assert!(r.acked > 0, "{}: no upload was acknowledged", r.scenario);
    }
    Ok(())
}
