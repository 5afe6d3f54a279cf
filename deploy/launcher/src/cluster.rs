//! A Ferry cluster: storage nodes (sshd + `ferry-node`), `ferry-api`, workers and the
//! monitor, each a process with a pid file `DIR/run/NAME.pid` and a log `DIR/logs/NAME.log`.
//!
//! Process names: `sshd-<node>` and `<node>` (the agent) per node; services by the caller's
//! choice (`api`, `worker1`, `monitor`, ...). The program a name runs is told by its prefix
//! (see [`program_of`]), so a later invocation can find and stop it from the pid file alone.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;
use serde_json::{json, Value};

use crate::process::{Procs, Spawned, Stopped};
use crate::ssh::{self, SshMaterial, SshdFiles};
use crate::wait::{eventually, http_ok, tcp_open};

/// The program (command-line pattern) behind process `name`: `sshd-*` is sshd, `node*`
/// ferry-node, `api*` ferry-api, `worker*` ferry-worker, `monitor*` ferry-monitor.
pub fn program_of(name: &str) -> &'static str {
    if name.starts_with("sshd-") {
        "sshd"
    } else if name.starts_with("node") {
        "ferry-node"
    } else if name.starts_with("api") {
        "ferry-api"
    } else if name.starts_with("worker") {
        "ferry-worker"
    } else if name.starts_with("monitor") {
        "ferry-monitor"
    } else {
        "ferry-"
    }
}

/// A storage node: its name, ports and root, and where the admin API puts it.
#[derive(Debug, Clone)]
pub struct Node {
    /// The node's name (also its agent's process name); starts with `node`.
    pub name: String,
    /// Its id once registered through the admin API.
    pub id: Option<i64>,
    /// Its storage root (`node.root`, `root_path`, the gate's ROOT).
    pub root: PathBuf,
    /// Its sshd's port on 127.0.0.1.
    pub ssh_port: u16,
    /// Its agent's HTTP port on 127.0.0.1.
    pub agent_port: u16,
    /// Region as registered.
    pub region: String,
    /// Latitude as registered, degrees.
    pub lat: f64,
    /// Longitude as registered, degrees.
    pub lon: f64,
}

impl Node {
    /// The agent's base URL (`public_url` as registered).
    pub fn public_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.agent_port)
    }

    /// Where this node keeps `file` (a file id): `ROOT/<first 2 characters>/<id>`.
    pub fn path_of(&self, file: &str) -> PathBuf {
        self.root.join(file.get(..2).unwrap_or_default()).join(file)
    }
}

/// How to start a cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Everything of the cluster goes below: `run/`, `logs/`, `ssh/`, `nodes/<name>/`.
    pub dir: PathBuf,
    /// Where `ferry-api`, `ferry-worker`, `ferry-monitor` and `ferry-node` are.
    pub bin_dir: PathBuf,
    /// Processes outlive the launcher (the dev cluster) instead of dying with it (tests).
    pub detached: bool,
    /// `FERRY_*` settings every process gets (over the launcher's own environment, less
    /// its `FERRY_DEV_*`/`FERRY_TEST_*`).
    pub env: Vec<(String, String)>,
}

/// How a process was started, to start it again after a fault.
#[derive(Debug, Clone)]
struct Spec {
    binary: String,
    args: Vec<String>,
    extra: Vec<(String, String)>,
}

/// A running (or partly running) cluster.
pub struct Cluster {
    /// See [`ClusterConfig::dir`].
    pub dir: PathBuf,
    /// See [`ClusterConfig::bin_dir`].
    pub bin_dir: PathBuf,
    /// See [`ClusterConfig::env`].
    pub env: Vec<(String, String)>,
    /// The storage nodes, in the order they were added.
    pub nodes: Vec<Node>,
    /// Client key, host key, known_hosts.
    pub ssh: SshMaterial,
    gate: PathBuf,
    procs: Procs,
    specs: HashMap<String, Spec>,
}

impl Cluster {
    /// Creates the directories and the SSH material; starts nothing.
    pub fn new(config: ClusterConfig) -> Result<Cluster> {
        std::fs::create_dir_all(&config.dir)?;
        let procs = Procs::new(config.dir.join("run"), config.dir.join("logs"), config.detached)?;
        let ssh = SshMaterial::create(&config.dir.join("ssh"))?;
        let gate = config.bin_dir.join(ssh::GATE);
        Ok(Cluster {
            dir: config.dir,
            bin_dir: config.bin_dir,
            env: config.env,
            nodes: Vec::new(),
            ssh,
            gate,
            procs,
            specs: HashMap::new(),
        })
    }

    /// The value of setting `key` in the cluster's environment.
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.env.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// `binary` from the binary dir with the cluster's environment (and none of the
    /// launcher's own `FERRY_DEV_*`/`FERRY_TEST_*` variables, which are not the services').
    pub fn command(&self, binary: &str) -> Command {
        let mut cmd = Command::new(self.bin_dir.join(binary));
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if key.starts_with("FERRY_DEV_") || key.starts_with("FERRY_TEST_") {
                cmd.env_remove(key.as_ref());
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd
    }

    /// Starts `binary` as process `name` with the cluster's environment plus `extra`,
    /// unless it already runs.
    pub fn spawn(&mut self, name: &str, binary: &str, args: &[&str], extra: &[(&str, String)]) -> Result<Spawned> {
        let spec = Spec {
            binary: binary.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            extra: extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect(),
        };
        self.specs.insert(name.to_owned(), spec);
        self.respawn(name)
    }

    /// Starts process `name` again as it was first started (after a kill or SIGTERM).
    pub fn respawn(&mut self, name: &str) -> Result<Spawned> {
        let spec = self.specs.get(name).cloned().with_context(|| format!("no process {name}"))?;
        let mut cmd = self.command(&spec.binary);
        cmd.args(&spec.args).envs(spec.extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        self.procs.spawn(name, program_of(name), cmd)
    }

    /// The pid of process `name` while it runs.
    pub fn pid(&self, name: &str) -> Option<i32> {
        self.procs.pid(name, program_of(name))
    }

    /// True while process `name` runs.
    pub fn running(&mut self, name: &str) -> bool {
        self.procs.running(name, program_of(name))
    }

    /// Sends `signal` to `name`, waits up to `deadline`, then SIGKILL.
    pub fn stop(&mut self, name: &str, signal: Signal, deadline: Duration) -> Result<Stopped> {
        self.procs.stop(name, program_of(name), signal, deadline)
    }

    /// SIGKILL to every process this launcher is the parent of (not for detached).
    pub fn kill_all(&mut self) {
        for name in self.procs.children() {
            self.kill(&name);
        }
    }

    /// SIGKILL to process `name`.
    pub fn kill(&mut self, name: &str) {
        self.procs.kill(name, program_of(name));
    }

    /// Running processes started by this launcher other than the nodes' (api, workers,
    /// monitor), sorted; empty for a detached cluster.
    pub fn service_names(&mut self) -> Vec<String> {
        let nodes: Vec<String> = self.nodes.iter().map(|n| n.name.clone()).collect();
        let mut names = self.procs.children();
        names.retain(|n| !n.starts_with("sshd-") && !nodes.contains(n));
        names
    }

    /// `DIR/logs/NAME.log`.
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.procs.log_path(name)
    }

    /// The last `lines` lines of process `name`'s log.
    pub fn log_tail(&self, name: &str, lines: usize) -> String {
        self.procs.log_tail(name, lines)
    }

    /// The last `lines` lines of every process's log (`DIR/logs/*.log`, by name), each
    /// under a header: what a cluster that failed to start or a failed test shows.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.join("logs"))
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".log").map(str::to_owned))
            .collect();
        names.sort();
        names.iter().map(|name| format!("---- {name} (last lines) ----\n{}\n", self.log_tail(name, lines))).collect()
    }

    /// `DIR/nodes/<name>/`.
    pub fn node_dir(&self, name: &str) -> PathBuf {
        self.dir.join("nodes").join(name)
    }

    /// Adds `node`: its root, sshd (gate forced) and agent, started (not waited for, see
    /// [`Cluster::wait_node`]; not registered, see [`Cluster::register_node`]).
    pub fn add_node(&mut self, node: Node) -> Result<usize> {
        std::fs::create_dir_all(&node.root)?;
        self.nodes.push(node);
        let ports: Vec<u16> = self.nodes.iter().map(|n| n.ssh_port).collect();
        self.ssh.write_known_hosts(&ports)?;
        let i = self.nodes.len() - 1;
        self.start_sshd(i)?;
        self.start_agent(i)?;
        Ok(i)
    }

    /// Starts node `i`'s sshd (config and authorized_keys written afresh).
    pub fn start_sshd(&mut self, i: usize) -> Result<Spawned> {
        let spec = self.nodes[i].clone();
        let dir = self.node_dir(&spec.name);
        let name = format!("sshd-{}", spec.name);
        let config = dir.join("sshd_config");
        let pid_file = self.procs.pid_path(&name);
        let files = SshdFiles {
            config: &config,
            authorized_keys: &dir.join("authorized_keys"),
            pid_file: &pid_file,
            home: &dir.join("home"),
        };
        ssh::write_sshd_config(&files, &self.ssh, spec.ssh_port, &self.gate, &spec.root)?;
        let cmd = ssh::sshd_command(&config, &self.log_path(&name));
        self.procs.spawn(&name, "sshd", cmd)
    }

    /// Starts node `i`'s agent.
    pub fn start_agent(&mut self, i: usize) -> Result<Spawned> {
        let spec = self.nodes[i].clone();
        let extra = [
            ("FERRY_NODE__LISTEN", format!("127.0.0.1:{}", spec.agent_port)),
            ("FERRY_NODE__ROOT", spec.root.display().to_string()),
        ];
        self.spawn(&spec.name, "ferry-node", &[], &extra)
    }

    /// Node `i`'s sshd: SIGKILL (the agent keeps serving).
    pub fn kill_sshd(&mut self, i: usize) {
        let name = format!("sshd-{}", self.nodes[i].name);
        self.kill(&name);
    }

    /// SIGTERM to node `i`'s agent (SIGKILL after `deadline`).
    pub fn stop_agent(&mut self, i: usize, deadline: Duration) -> Result<Stopped> {
        let name = self.nodes[i].name.clone();
        self.stop(&name, Signal::SIGTERM, deadline)
    }

    /// Waits (30 s) until node `i`'s agent accepts connections and a login through its
    /// sshd and gate works.
    pub async fn wait_node(&mut self, i: usize) -> Result<()> {
        let spec = self.nodes[i].clone();
        let what = format!("{} agent on port {}", spec.name, spec.agent_port);
        let (port, name) = (spec.agent_port, spec.name.clone());
        let procs = &mut self.procs;
        eventually(&what, Duration::from_secs(30), || {
            // Asked before the probe: a process that answers has not exited.
            let exited = procs.exited(&name, "ferry-node");
            let name = name.clone();
            async move {
                if tcp_open(port) {
                    return Ok(Some(()));
                }
                if exited {
                    bail!("{name} exited");
                }
                Ok(None)
            }
        })
        .await
        .with_context(|| format!("{}:\n{}", spec.name, self.log_tail(&spec.name, 30)))?;
        let sshd = format!("sshd-{}", spec.name);
        eventually(&format!("{sshd} on port {}", spec.ssh_port), Duration::from_secs(10), || async {
            Ok(tcp_open(spec.ssh_port).then_some(()))
        })
        .await
        .with_context(|| self.log_tail(&sshd, 30))?;
        ssh::check_login(&self.ssh, &crate::whoami(), spec.ssh_port, &spec.root)
            .with_context(|| format!("{}; {sshd} log:\n{}", spec.name, self.log_tail(&sshd, 30)))
    }

    /// Waits up to `timeout` until `url` answers 200; fails at once when process `name`
    /// exits meanwhile.
    pub async fn wait_http(&mut self, name: &str, url: &str, timeout: Duration) -> Result<()> {
        let http = reqwest::Client::new();
        let program = program_of(name);
        let procs = &mut self.procs;
        let waited = eventually(&format!("{url} to answer 200"), timeout, || {
            // Asked before the probe: a process that answers has not exited.
            let exited = procs.exited(name, program);
            let http = http.clone();
            async move {
                if http_ok(&http, url).await {
                    return Ok(Some(()));
                }
                if exited {
                    bail!("{name} exited");
                }
                Ok(None)
            }
        })
        .await;
        // A process that ended without a word (a signal, or a clean exit on SIGTERM before
        // it logged) is told apart by how it ended.
        let ended = match self.procs.exit_status(name) {
            Some(status) => format!(" ({status})"),
            None => String::new(),
        };
        waited.with_context(|| format!("{name}{ended}, last lines of its log:\n{}", self.log_tail(name, 30)))
    }

    /// `ferry-api user-add USER --password-stdin [--admin]` (creates or updates; applies
    /// the migrations first). Output goes to `logs/api-user-add.log`.
    pub fn user_add(&self, user: &str, password: &str, admin: bool) -> Result<()> {
        let log_path = self.log_path("api-user-add");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
        let mut cmd = self.command("ferry-api");
        cmd.arg("user-add").arg(user).arg("--password-stdin");
        if admin {
            cmd.arg("--admin");
        }
        cmd.stdin(Stdio::piped()).stdout(log.try_clone()?).stderr(log);
        let mut child = cmd.spawn().context("spawning ferry-api user-add")?;
        if let Some(mut stdin) = child.stdin.take() {
            writeln!(stdin, "{password}")?;
        }
        let status = child.wait()?;
        if !status.success() {
            bail!("ferry-api user-add {user} failed ({status}):\n{}", self.log_tail("api-user-add", 20));
        }
        Ok(())
    }

    /// The JSON the admin API takes for node `i`.
    pub fn node_json(&self, i: usize) -> Value {
        let spec = &self.nodes[i];
        json!({
            "name": spec.name,
            "ssh_host": "127.0.0.1",
            "ssh_port": spec.ssh_port,
            "ssh_user": crate::whoami(),
            "root_path": spec.root.display().to_string(),
            "public_url": spec.public_url(),
            "region": spec.region,
            "lat": spec.lat,
            "lon": spec.lon,
        })
    }

    /// POSTs node `i` to `api`'s admin API with `token`: its id when created, `None` when
    /// a node of that name is already registered (409).
    pub async fn register_node(&mut self, api: &str, token: &str, i: usize) -> Result<Option<i64>> {
        let res = reqwest::Client::new()
            .post(format!("{api}/admin/api/nodes"))
            .header("Authorization", format!("JWT {token}"))
            .json(&self.node_json(i))
            .timeout(Duration::from_secs(10))
            .send()
            .await?;
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        match status {
            200 | 201 => {
                let id = body["id"].as_i64().context("no id in the answer")?;
                self.nodes[i].id = Some(id);
                Ok(Some(id))
            }
            409 => Ok(None),
            _ => bail!("registering {}: HTTP {status}: {body}", self.nodes[i].name),
        }
    }

    /// Waits up to `timeout` until the API reports the nodes named `want` up (fresh
    /// heartbeat).
    pub async fn wait_nodes_up(&self, api: &str, token: &str, want: &[String], timeout: Duration) -> Result<()> {
        let http = reqwest::Client::new();
        let url = format!("{api}/admin/api/nodes");
        eventually("all nodes up", timeout, || {
            let req = http.get(&url).header("Authorization", format!("JWT {token}")).send();
            async move {
                let Ok(res) = req.await else { return Ok(None) };
                let nodes: Value = res.json().await.unwrap_or(Value::Null);
                let up: Vec<&str> = nodes
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|n| n["up"] == true)
                    .filter_map(|n| n["name"].as_str())
                    .collect();
                Ok(want.iter().all(|name| up.contains(&name.as_str())).then_some(()))
            }
        })
        .await
    }
}

/// Logs in to `api` (`POST /api-token-auth/`) and returns the JWT.
pub async fn login(api: &str, user: &str, password: &str) -> Result<String> {
    let res = reqwest::Client::new()
        .post(format!("{api}/api-token-auth/"))
        .form(&[("username", user), ("password", password)])
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .with_context(|| format!("POST {api}/api-token-auth/"))?;
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    match body["token"].as_str() {
        Some(token) if status.is_success() => Ok(token.to_owned()),
        _ => bail!("login {user}: HTTP {status}: {body}"),
    }
}
