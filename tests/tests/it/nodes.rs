//! Nodes at runtime: added, drained and disabled through the admin API, no restart.

use ferry_tests::{random_bytes, Client, Cluster, Options};
use serde_json::json;

#[tokio::test]
async fn a_node_added_at_runtime_takes_the_next_upload_and_draining_moves_replicas() -> anyhow::Result<()> {
    let mut cluster = Cluster::start_with(Options { nodes: 1, replication: 1, ..Default::default() }).await?;
    let admin = cluster.client("admin", "adminadmin").await?;
    let api = cluster.client("alice", "alicealice").await?;
    let first = api.upload("before", &random_bytes(4000), 4096, None).await?.json()["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    cluster.wait_replicas(&first, 1).await?;
    assert_eq!(cluster.nodes_holding(&first), vec![0]);

    // Bad node definitions are refused.
    let mut bad = cluster.node_json(0);
    bad["root_path"] = json!("relative/../path");
    let res = admin.post_json("/admin/api/nodes", &bad).await?;
    assert_eq!((res.status, res.code().as_str()), (400, "invalid_node"));
    assert_eq!(admin.post_json("/admin/api/nodes", &cluster.node_json(0)).await?.status, 409);

    // A second node, then node1 drained: new files go to node2 only.
    let i = cluster.add_node("node2")?;
    let id2 = cluster.register_node(i).await?;
    cluster.wait_nodes_up().await?;
    let node1 = cluster.nodes[0].id.unwrap_or_default();
    let res = admin.patch_json(&format!("/admin/api/nodes/{node1}"), &json!({"state": "draining"})).await?;
    assert_eq!((res.status, res.json()["state"].as_str()), (200, Some("draining")));
    let second = api.upload("after", &random_bytes(4000), 4096, None).await?.json()["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(cluster.wait_replicas(&second, 1).await?, vec![id2]);
    assert_eq!(cluster.nodes_holding(&second), vec![1]);

    // Draining moves the old file's replica to node2 and then off node1.
    ferry_tests::eventually("the drained node emptied", std::time::Duration::from_secs(60), || {
        let holding = cluster.nodes_holding(&first);
        async move { Ok((holding == vec![1]).then_some(())) }
    })
    .await?;
    let location = api.wait_download(&first).await?;
    assert!(location.starts_with(&cluster.nodes[1].public_url()), "{location}");

    // The listing shows live status for the operator.
    let nodes = admin.get("/admin/api/nodes").await?.json();
    let n2 = nodes.as_array().into_iter().flatten().find(|n| n["id"] == id2).cloned().unwrap_or_default();
    assert_eq!(n2["up"], true);
    assert!(n2["free_bytes"].as_i64().unwrap_or(0) > 0);
    assert!(n2["total_bytes"].as_i64().unwrap_or(0) >= n2["free_bytes"].as_i64().unwrap_or(0));
    Ok(())
}

#[tokio::test]
async fn disabled_nodes_take_no_new_files_and_a_node_added_at_runtime_does() -> anyhow::Result<()> {
    let mut cluster = Cluster::start_with(Options { nodes: 3, replication: 1, ..Default::default() }).await?;
    // Disabling the third node leaves its files' only copies there (staging released,
    // R = 1): the monitor's repair onto node4 finds no enabled node to restore from and
    // keeps retrying. Found by the clean-end check; what disabling the last holder of a
    // copy should do is an open question (issue 13 report), not settled by this test.
    cluster.expect_leftovers(ferry_tests::Leftovers { stuck_repairs: true, ..Default::default() });
    let admin = cluster.client("admin", "adminadmin").await?;
    let api = cluster.client("alice", "alicealice").await?;
    let ids: Vec<i64> = cluster.nodes.iter().filter_map(|n| n.id).collect();
    assert_eq!(ids.len(), 3);

    // Two of three disabled: every new file goes to the third.
    for id in &ids[..2] {
        let res = admin.patch_json(&format!("/admin/api/nodes/{id}"), &json!({"state": "disabled"})).await?;
        assert_eq!((res.status, res.json()["state"].as_str()), (200, Some("disabled")), "{}", res.text());
    }
    let res = admin.patch_json(&format!("/admin/api/nodes/{}", ids[0]), &json!({"state": "asleep"})).await?;
    assert_eq!(res.status, 400, "an unknown state is refused: {}", res.text());
    let mut on_third = Vec::new();
    for n in 0..3 {
        let res = api.upload(&format!("third-{n}"), &random_bytes(3000 + n), 4096, None).await?;
        assert_eq!(res.status, 200, "{}", res.text());
        let id = res.json()["id"].as_str().unwrap_or_default().to_owned();
        assert_eq!(cluster.wait_replicas(&id, 1).await?, vec![ids[2]]);
        on_third.push(id);
    }
    for id in &on_third {
        assert_eq!(cluster.nodes_holding(id), vec![2]);
    }

    // A fourth node registered while everything runs, the third disabled: the next
    // upload lands on the newcomer, with no process restarted.
    let i = cluster.add_node("node4")?;
    let id4 = cluster.register_node(i).await?;
    cluster.wait_nodes_up().await?;
    let res = admin.patch_json(&format!("/admin/api/nodes/{}", ids[2]), &json!({"state": "disabled"})).await?;
    assert_eq!(res.status, 200, "{}", res.text());
    let data = random_bytes(5000);
    let res = api.upload("fourth", &data, 4096, None).await?;
    assert_eq!(res.status, 200, "{}", res.text());
    let id = res.json()["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(cluster.wait_replicas(&id, 1).await?, vec![id4]);
    assert_eq!(cluster.nodes_holding(&id), vec![i]);
    assert_eq!(ferry_tests::read(&cluster.nodes[i].path_of(&id)), data);
    let location = api.wait_download(&id).await?;
    assert!(location.starts_with(&cluster.nodes[i].public_url()), "{location}");

    // The operator's view shows the states as set; a node can be brought back.
    let res = admin.patch_json(&format!("/admin/api/nodes/{}", ids[0]), &json!({"state": "active"})).await?;
    assert_eq!((res.status, res.json()["state"].as_str()), (200, Some("active")));
    let nodes = admin.get("/admin/api/nodes").await?.json();
    let state_of = |id: i64| {
        nodes
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| n["id"] == id)
            .and_then(|n| n["state"].as_str())
            .map(str::to_owned)
    };
    assert_eq!(state_of(ids[0]).as_deref(), Some("active"));
    assert_eq!(state_of(ids[1]).as_deref(), Some("disabled"));
    assert_eq!(state_of(ids[2]).as_deref(), Some("disabled"));
    assert_eq!(state_of(id4).as_deref(), Some("active"));
    Ok(())
}

/// The monitor checks each node's sshd as well as its agent (the operator trial of stop
/// 27: a node whose sshd was down looked healthy while every copy to it failed). With
/// the node's sshd stopped it stays up (its agent still serves downloads) while `ssh_up`
/// turns false with the reason, in the admin API, `ferry nodes list`, the admin page and
/// the monitor's `ferry_node_ssh_up`, and no new copy is placed on it; started again,
/// it is reachable again and takes the copy the repair places.
#[tokio::test]
async fn a_node_whose_sshd_stops_is_shown_unreachable_while_its_agent_serves() -> anyhow::Result<()> {
    use anyhow::Context;
    use std::time::Duration;
    let mut cluster = Cluster::start_with(Options { nodes: 1, replication: 1, ..Default::default() }).await?;
    let admin = cluster.client("admin", "adminadmin").await?;
    let node = cluster.nodes[0].id.context("node id")?;
    let admin_ref = &admin;
    let ssh_state = |want: bool| move || node_when(admin_ref.clone(), node, "ssh_up", want);
    let n = ferry_tests::eventually("its sshd checked", Duration::from_secs(30), ssh_state(true)).await?;
    assert!(n["ssh_error"].is_null() && n["ssh_checked_at"].is_string(), "{n}");

    cluster.kill_sshd(0);
    let n = ferry_tests::eventually("its sshd found unreachable", Duration::from_secs(30), ssh_state(false)).await?;
    assert_eq!(n["up"], true, "the agent still serves: {n}");
    assert!(n["ssh_error"].as_str().is_some_and(|e| e.contains("cannot connect")), "{n}");
    let listing = cluster.ferry(&["nodes", "list"])?;
    assert!(listing.contains("sshd unreachable, no new copies; copies to it retry: cannot connect"), "{listing}");
    let pages = crate::admin_page::AdminPage::new(&cluster, &admin)?;
    let page = pages.get(&format!("/admin/nodes/{node}")).await?;
    assert!(page.contains("id=\"ssh-problem\"") && page.contains("sshd unreachable"), "the node's page says so");
    let metrics = reqwest::get(format!("http://127.0.0.1:{}/metrics", cluster.monitor_port)).await?.text().await?;
    assert!(metrics.contains(&format!("ferry_node_ssh_up{{node=\"{node}\"}} 0")), "{metrics}");
    // No new copy is placed on it (the operator trial of stop 30: each one retried for
    // minutes, then dead-lettered, while its file had a copy fewer): a file uploaded
    // now, with no other node, is served from staging and gets its copy from the
    // repair once the sshd is back.
    let api = cluster.client("alice", "alicealice").await?;
    let done = api.upload("while-sshd-down.bin", &random_bytes(100_000), 64 * 1024, None).await?;
    assert_eq!(done.status, 200, "{}", done.text());
    let id = done.json()["id"].as_str().unwrap_or_default().to_owned();
    let db = cluster.db().await?;
    let placed = db.query("SELECT node_id FROM replicas WHERE file_id = $1::text::uuid", &[&id]).await?;
    assert!(placed.is_empty(), "a copy was placed on a node whose sshd is down: {placed:?}");

    cluster.restart_sshd(0)?;
    let n = ferry_tests::eventually("its sshd reachable again", Duration::from_secs(30), ssh_state(true)).await?;
    assert!(n["ssh_error"].is_null(), "{n}");
    cluster.wait_replicas(&id, 1).await?;
    assert_eq!(cluster.nodes_holding(&id), vec![0]);
    Ok(())
}

/// Node `node`'s admin JSON once its `field` is `want` (a probe for
/// `ferry_tests::eventually`).
async fn node_when(admin: Client, node: i64, field: &str, want: bool) -> anyhow::Result<Option<serde_json::Value>> {
    let n = admin.get(&format!("/admin/api/nodes/{node}")).await?.json();
    Ok((n[field] == want).then_some(n))
}

/// Makes a directory tree immutable (`chattr -R +i`: no file is created, written or
/// removed in it, by root either) until dropped, as a filesystem remounted read-only
/// would be for every writer.
struct Immutable(std::path::PathBuf);

impl Immutable {
    fn set(dir: &std::path::Path) -> anyhow::Result<Immutable> {
        let out = std::process::Command::new("chattr").arg("-R").arg("+i").arg(dir).output()?;
        anyhow::ensure!(
            out.status.success(),
            "chattr -R +i {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(Immutable(dir.to_owned()))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        // The cluster's files must stay removable whatever the test did.
        let _ = std::process::Command::new("chattr").arg("-R").arg("-i").arg(&self.0).status();
    }
}

/// The operator trial of stop 31: a node whose storage root refused writes kept its
/// free space, so it looked healthy and kept taking new copies, each of which failed and
/// retried. Now its agent's write check (a file created, written, fdatasynced and
/// removed at the root) fails, and the node, still up and serving, is shown with the
/// reason (admin API, `ferry nodes list`, the admin page, `ferry_node_writable`) and
/// takes no new copy; writable again, it takes the copy the repair places.
#[tokio::test]
async fn a_node_whose_root_refuses_writes_takes_no_new_copy_until_it_accepts_them() -> anyhow::Result<()> {
    use anyhow::Context;
    use std::time::Duration;
    let cluster = Cluster::start_with(Options { nodes: 2, replication: 2, ..Default::default() }).await?;
    let admin = cluster.client("admin", "adminadmin").await?;
    let (first, node) = (cluster.nodes[0].id.context("node id")?, cluster.nodes[1].id.context("node id")?);
    let admin_ref = &admin;
    let writable = |want: bool| move || node_when(admin_ref.clone(), node, "writable", want);
    let n = ferry_tests::eventually("its root checked", Duration::from_secs(30), writable(true)).await?;
    assert!(n["write_error"].is_null() && n["write_checked_at"].is_string(), "{n}");

    let immutable = Immutable::set(&cluster.nodes[1].root)?;
    let n = ferry_tests::eventually("its root found unwritable", Duration::from_secs(30), writable(false)).await?;
    assert_eq!(n["up"], true, "the agent still serves: {n}");
    let error = n["write_error"].as_str().unwrap_or_default();
    assert!(error.starts_with("cannot create a file in the storage root: Operation not permitted"), "{n}");
    let listing = cluster.ferry(&["nodes", "list"])?;
    assert!(
        listing.contains("storage root not writable, no new copies; copies to it retry: cannot create"),
        "{listing}"
    );
    let pages = crate::admin_page::AdminPage::new(&cluster, &admin)?;
    let page = pages.get(&format!("/admin/nodes/{node}")).await?;
    assert!(
        page.contains("id=\"write-problem\"") && page.contains("storage root not writable"),
        "the node's page says so"
    );
    let metrics = reqwest::get(format!("http://127.0.0.1:{}/metrics", cluster.monitor_port)).await?.text().await?;
    assert!(metrics.contains(&format!("ferry_node_writable{{node=\"{node}\"}} 0")), "{metrics}");
    assert!(metrics.contains(&format!("ferry_node_writable{{node=\"{first}\"}} 1")), "{metrics}");

    // A file uploaded now gets its one copy on the other node, none on this one.
    let api = cluster.client("alice", "alicealice").await?;
    let done = api.upload("while-root-immutable.bin", &random_bytes(100_000), 64 * 1024, None).await?;
    assert_eq!(done.status, 200, "{}", done.text());
    let id = done.json()["id"].as_str().unwrap_or_default().to_owned();
    cluster.wait_replicas(&id, 1).await?;
    let db = cluster.db().await?;
    let placed: Vec<i32> = db
        .query("SELECT node_id FROM replicas WHERE file_id = $1::text::uuid", &[&id])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(placed, vec![i32::try_from(first)?], "a copy was placed on a node whose root refuses writes");

    drop(immutable);
    let n = ferry_tests::eventually("its root writable again", Duration::from_secs(30), writable(true)).await?;
    assert!(n["write_error"].is_null(), "{n}");
    cluster.wait_replicas(&id, 2).await?;
    assert_eq!(cluster.nodes_holding(&id), vec![0, 1]);
    Ok(())
}

/// The operator trial of stop 32: copies bound for a node whose root refuses writes
/// stayed `pending` while their jobs retried (8 attempts, minutes), and counted as live:
/// 148 files sat at one copy for 9 minutes with `ferry_under_replicated_files` at 0 and
/// no repair. Such a copy no longer counts while its node is known to refuse writes (nor
/// while its sshd is down); it counts again once the node can take it.
#[tokio::test]
async fn a_copy_bound_for_a_node_that_refuses_writes_does_not_count_as_live() -> anyhow::Result<()> {
    use anyhow::Context;
    use ferry_store::replicas::{self, FileRange};
    use std::time::Duration;
    let cluster = Cluster::start_with(Options { nodes: 2, replication: 2, ..Default::default() }).await?;
    let admin = cluster.client("admin", "adminadmin").await?;
    let node = cluster.nodes[1].id.context("node id")?;
    let admin_ref = &admin;
    let writable = |want: bool| move || node_when(admin_ref.clone(), node, "writable", want);
    ferry_tests::eventually("its root checked", Duration::from_secs(30), writable(true)).await?;
    // Both copies wait in the paused queue: pending, and live.
    assert!(cluster.ferry(&["queues", "pause", "replicate"])?.contains("ferry.replicate paused"));
    ferry_tests::eventually("the worker stopped consuming ferry.replicate", Duration::from_secs(30), || async {
        Ok(cluster.log_tail("worker1", 200).contains("queue paused by an operator").then_some(()))
    })
    .await?;
    let api = cluster.client("alice", "alicealice").await?;
    let done = api.upload("bound-for-a-sick-node.bin", &random_bytes(50_000), 50_000, None).await?;
    assert_eq!(done.status, 200, "{}", done.text());
    let id = done.json()["id"].as_str().unwrap_or_default().to_owned();
    let db = ferry_tests::store_client(&cluster.db_url).await?;
    let short = || async {
        let files = replicas::under_replicated(&db, 2, 300.0, FileRange::ALL, 100).await?;
        anyhow::Ok(files.iter().any(|f| f.file.0.to_string() == id))
    };
    assert!(!short().await?, "two pending copies on nodes that can take them count as live");

    let immutable = Immutable::set(&cluster.nodes[1].root)?;
    ferry_tests::eventually("its root found unwritable", Duration::from_secs(30), writable(false)).await?;
    assert!(short().await?, "a copy bound for a node that refuses writes counted as live");
    let metrics_url = format!("http://127.0.0.1:{}/metrics", cluster.monitor_port);
    ferry_tests::eventually("ferry_under_replicated_files says so", Duration::from_secs(30), || async {
        let metrics = reqwest::get(&metrics_url).await?.text().await?;
        Ok(metrics.lines().any(|l| l == "ferry_under_replicated_files 1").then_some(()))
    })
    .await?;

    drop(immutable);
    ferry_tests::eventually("its root writable again", Duration::from_secs(30), writable(true)).await?;
    assert!(!short().await?, "the copy counts again once its node can take it");
    assert!(cluster.ferry(&["queues", "resume", "replicate"])?.contains("ferry.replicate resumed"));
    cluster.wait_replicas(&id, 2).await?;
    Ok(())
}
