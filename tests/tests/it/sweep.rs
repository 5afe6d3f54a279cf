//! The monitor's replica sweeps examine a bounded slice of the files per round
//! (`monitor.sweep_files`), going on where the last round stopped, plus the files of the
//! copies that failed last: the statements against a real database, and the monitor
//! reaching every file a slice at a time.

use std::time::Duration;

use anyhow::{ensure, Result};
use ferry_store::replicas::{self, FileRange};
use ferry_tests::{random_bytes, Cluster, Options};
use uuid::Uuid;

async fn upload_files(cluster: &Cluster, n: usize) -> Result<Vec<Uuid>> {
    let api = cluster.client("alice", "alicealice").await?;
    let mut ids = Vec::new();
    for i in 0..n {
        let body = api.upload(&format!("s{i}"), &random_bytes(1000 + i), 1 << 20, None).await?.json();
        let id = body["id"].as_str().unwrap_or_default().to_owned();
        cluster.wait_replicas(&id, 2).await?;
        ids.push(id.parse()?);
    }
    ids.sort();
    Ok(ids)
}

/// `file_range` cuts the files into consecutive slices that end with the last file;
/// `under_replicated` finds a file short of copies only in the slice that holds it, in
/// id order and at most `limit`; `under_replicated_after_failure` finds the files of
/// failed copies wherever they are.
#[tokio::test]
async fn slices_cover_every_file_once_and_failed_copies_are_found_anywhere() -> Result<()> {
    let mut cluster = Cluster::start_with(Options { nodes: 2, replication: 2, ..Default::default() }).await?;
    let ids = upload_files(&cluster, 5).await?;
    // Nothing else changes the replicas from here on.
    cluster.kill("monitor");
    let db = ferry_tests::store_client(&cluster.db_url).await?;

    let mut slices = Vec::new();
    let mut after = Uuid::nil();
    loop {
        let range = replicas::file_range(&db, after, 2).await?;
        slices.push(range);
        if range.reaches_end() {
            break;
        }
        after = range.through;
    }
    let covered: Vec<Vec<Uuid>> =
        slices.iter().map(|r| ids.iter().copied().filter(|id| *id > r.after && *id <= r.through).collect()).collect();
    assert_eq!(covered, vec![ids[0..2].to_vec(), ids[2..4].to_vec(), ids[4..5].to_vec()], "{slices:?}");

    // Two files lose a copy each (as a failed copy or a corrupt one would).
    let node: i32 = db.query_one("SELECT min(node_id) FROM replicas", &[]).await?.get(0);
    for id in [ids[1], ids[3]] {
        db.execute(
            "UPDATE replicas SET state = 'failed', updated_at = now() WHERE file_id = $1 AND node_id = $2",
            &[&id, &node],
        )
        .await?;
    }
    let found = |files: Vec<replicas::UnderReplicated>| files.into_iter().map(|f| f.file.0).collect::<Vec<_>>();
    for (range, short) in slices.iter().zip([vec![ids[1]], vec![ids[3]], vec![]]) {
        assert_eq!(found(replicas::under_replicated(&db, 2, 300.0, *range, 200).await?), short, "{range:?}");
    }
    assert_eq!(found(replicas::under_replicated(&db, 2, 300.0, FileRange::ALL, 200).await?), vec![ids[1], ids[3]]);
    assert_eq!(found(replicas::under_replicated(&db, 2, 300.0, FileRange::ALL, 1).await?), vec![ids[1]]);
    assert_eq!(found(replicas::under_replicated_after_failure(&db, 2, 300.0, 100).await?), vec![ids[1], ids[3]]);
    // Only the newest failures are looked at; the sweep's slices find the rest.
    assert_eq!(found(replicas::under_replicated_after_failure(&db, 2, 300.0, 1).await?).len(), 1);
    // A file topped up again is no longer short, though its failed row stays.
    db.execute("UPDATE replicas SET state = 'present' WHERE file_id = $1 AND node_id = $2", &[&ids[1], &node]).await?;
    assert_eq!(found(replicas::under_replicated_after_failure(&db, 2, 300.0, 100).await?), vec![ids[3]]);
    // Left failed, the copy would keep the file's staging copy (and the clean-end check)
    // waiting for a repair that the stopped monitor never makes.
    db.execute("UPDATE replicas SET state = 'present' WHERE file_id = $1 AND node_id = $2", &[&ids[3], &node]).await?;
    Ok(())
}

/// With 2 files per round, the monitor still reaches every file: each of 7 files whose
/// second copy was on a node that is lost gets a new copy on the node added meanwhile;
/// once the lost node is back every file is trimmed to 2 copies again; and once the
/// node holding the most copies is drained, every file has its 2 copies on the other
/// two and the drained node holds none. A sweep that did not go on where it stopped, or did not start over
/// after the last file, would leave files with one copy or three, or copies on the
/// drained node.
#[tokio::test]
async fn repair_and_trim_reach_every_file_a_slice_per_round() -> Result<()> {
    let mut cluster = Cluster::start_with(Options {
        nodes: 2,
        replication: 2,
        env: vec![
            ("FERRY_MONITOR__SWEEP_FILES".into(), "2".into()),
            ("FERRY_MONITOR__NODE_GRACE_SECS".into(), "1".into()),
        ],
        ..Default::default()
    })
    .await?;
    let ids = upload_files(&cluster, 7).await?;
    let db = cluster.db().await?;
    let copies = async |node: &str| -> Result<Vec<Uuid>> {
        let rows = db
            .query(
                "SELECT r.file_id FROM replicas r JOIN nodes n ON n.id = r.node_id
                 WHERE n.name = $1 AND r.state = 'present' ORDER BY r.file_id",
                &[&node],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    };

    cluster.stop_node(1);
    let i = cluster.add_node("node3")?;
    cluster.register_node(i).await?;
    ferry_tests::eventually("every file copied to node3", Duration::from_secs(90), || async {
        Ok((copies("node3").await? == ids).then_some(()))
    })
    .await?;

    cluster.start_node(1)?;
    ferry_tests::eventually("every file back to 2 copies", Duration::from_secs(90), || async {
        let total: i64 = db.query_one("SELECT count(*) FROM replicas", &[]).await?.get(0);
        Ok((total == 2 * ids.len() as i64).then_some(()))
    })
    .await?;
    for id in &ids {
        let holding = cluster.nodes_holding(&id.to_string());
        ensure!(holding.len() == 2, "{id} is on nodes {holding:?}");
    }

    // The node that holds the most copies now (the trim keeps those with most room)
    // is drained: more copies than one round's slice, so a retirement that stayed in
    // one slice would leave some behind.
    let row = db
        .query_one(
            "SELECT n.id::int8, n.name, count(*) FROM replicas r JOIN nodes n ON n.id = r.node_id
             WHERE r.state = 'present' GROUP BY n.id, n.name ORDER BY count(*) DESC, n.id LIMIT 1",
            &[],
        )
        .await?;
    let (drained, name, held): (i64, String, i64) = (row.get(0), row.get(1), row.get(2));
    ensure!(held >= 3, "{name} holds {held} copies");
    let drained_id = i32::try_from(drained)?;
    let admin = cluster.client("admin", "adminadmin").await?;
    let res =
        admin.patch_json(&format!("/admin/api/nodes/{drained}"), &serde_json::json!({"state": "draining"})).await?;
    ensure!(res.status == 200, "drain: {} {}", res.status, res.text());
    ferry_tests::eventually(
        "the drained node emptied, every file on the other two",
        Duration::from_secs(120),
        || async {
            let left: i64 =
                db.query_one("SELECT count(*) FROM replicas WHERE node_id = $1", &[&drained_id]).await?.get(0);
            let present: i64 = db.query_one("SELECT count(*) FROM replicas WHERE state = 'present'", &[]).await?.get(0);
            Ok((left == 0 && present == 2 * ids.len() as i64).then_some(()))
        },
    )
    .await?;
    for id in &ids {
        let holding = cluster.nodes_holding(&id.to_string());
        ensure!(holding.len() == 2, "{id} is on nodes {holding:?} after {name} was drained");
    }
    Ok(())
}
