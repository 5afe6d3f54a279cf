//! The real `ferry-node` binary: command line, start-up on port 0, SIGTERM.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{pattern, TempDir, SECRET};
use ferry_shared::signing;
use ferry_shared::types::FileId;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn ferry_node() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry-node"));
    cmd.env_remove("FERRY_CONFIG")
        .env_remove("FERRY_NODE__LISTEN")
        .env_remove("FERRY_NODE__ROOT")
        .env_remove("FERRY_SIGNING__SECRET_FILE")
        .env("FERRY_SIGNING__SECRET", SECRET)
        .env("FERRY_LOG", "info")
        .env("FERRY_LOG_FORMAT", "json")
        .kill_on_drop(true);
    cmd
}

#[tokio::test]
async fn help_names_every_option() {
    let output = ferry_node().arg("--help").output().await.expect("run --help");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for needle in
        ["--config", "FERRY_CONFIG", "--listen", "--root", "--reverify-secs", "FERRY_SIGNING__SECRET", "SIGTERM"]
    {
        assert!(help.contains(needle), "--help mentions {needle}:\n{help}");
    }
}

#[tokio::test]
async fn a_missing_config_file_is_an_error() {
    let dir = TempDir::new();
    let output =
        ferry_node().arg("--config").arg(dir.0.join("absent.toml")).output().await.expect("run with a bad config");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("configuration"));
}

#[tokio::test]
async fn a_malformed_reverify_interval_in_the_config_file_is_an_error() {
    let dir = TempDir::new();
    let config = dir.0.join("node.toml");
    std::fs::write(&config, "[node]\nreverify_secs = \"a day\"\n").expect("write config");
    let output = ferry_node().arg("--config").arg(&config).output().await.expect("run with a bad config");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("node.reverify_secs"), "names the key: {stderr}");
}

#[tokio::test]
async fn serves_from_the_given_root_and_stops_on_sigterm() {
    let dir = TempDir::new();
    let root = dir.0.join("fresh").join("root");
    let mut child = ferry_node()
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--root")
        .arg(&root)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ferry-node");

    // The bound port is only known from the start-up log line.
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("read stderr") {
            let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
            if event["fields"]["message"] == "ferry-node serving" {
                return event["fields"]["listen"].as_str().map(str::to_owned);
            }
        }
        None
    })
    .await
    .expect("start-up within 30 s")
    .expect("a listen address in the start-up log");
    // Keep draining the log so the child never blocks on a full pipe.
    let drain = tokio::spawn(async move {
        let mut rest = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            rest.push(line);
        }
        rest
    });

    assert!(root.is_dir(), "the root is created at start-up");
    let data = pattern(5000);
    let id = FileId::new();
    let path = root.join(id.node_relpath());
    std::fs::create_dir_all(path.parent().expect("shard")).expect("mkdir");
    std::fs::write(&path, &data).expect("write");

    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    let exp = chrono::Utc::now().timestamp() + 600;
    let url = format!("http://{addr}{}", signing::signed_path(SECRET.as_bytes(), id, exp, None, None));
    let response = client.get(&url).header("range", "bytes=4990-").send().await.expect("request");
    assert_eq!(response.status(), reqwest::StatusCode::PARTIAL_CONTENT);
    assert_eq!(response.bytes().await.expect("body").as_ref(), &data[4990..]);

    let pid = child.id().expect("running child has a pid");
    kill(Pid::from_raw(i32::try_from(pid).expect("pid fits i32")), Signal::SIGTERM).expect("SIGTERM");
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits within 10 s of SIGTERM")
        .expect("wait");
    assert!(status.success(), "graceful exit: {status}");
    let log = drain.await.expect("drain task");
    assert!(log.iter().any(|l| l.contains("ferry-node stopped")), "log: {log:?}");
}
