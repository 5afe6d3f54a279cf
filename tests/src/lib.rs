//! The integration-test harness: a whole Ferry cluster per test, made of real parts.
//!
//! `deploy/dev test` starts ONE PostgreSQL and ONE RabbitMQ for the run and exports
//! `FERRY_TEST_*`; each [`Cluster`] then gets its own database, its own vhost, its own
//! temp dir (staging + node roots), its own sshd per storage node, and the real
//! binaries (`ferry-api`, `ferry-worker`, `ferry-monitor`, `ferry-node`) on free
//! loopback ports. Everything it started is killed when it is dropped; when the test
//! panicked, the tails of the process logs are printed first.

pub mod clean;
pub mod client;
mod process;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rand::Rng;
use serde_json::{json, Value};

pub use clean::Leftovers;
pub use client::Client;
use process::Proc;

/// Bounded polling for conditions that settle asynchronously (replication, heartbeats).
/// A deadline, never a sleep used as an assertion.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await? {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The run-wide services `deploy/dev test` provides.
struct Env {
    pg_url: String,
    amqp_url: String,
    mgmt_url: String,
    ssh_dir: PathBuf,
    bin_dir: PathBuf,
}

impl Env {
    fn load() -> Result<Env> {
        let var = |name: &str| {
            std::env::var(name).with_context(|| format!("{name} is not set: run the suite with `deploy/dev test`"))
        };
        Ok(Env {
            pg_url: var("FERRY_TEST_PG_URL")?,
            amqp_url: var("FERRY_TEST_AMQP_URL")?,
            mgmt_url: var("FERRY_TEST_RABBIT_MGMT_URL")?,
            ssh_dir: var("FERRY_TEST_SSH_DIR")?.into(),
            bin_dir: var("FERRY_TEST_BIN_DIR")?.into(),
        })
    }

    /// `user:password` from the AMQP URL, for the management API.
    fn amqp_credentials(&self) -> (String, String) {
        let rest = self.amqp_url.trim_start_matches("amqp://");
        let userinfo = rest.split('@').next().unwrap_or_default();
        let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
        (user.to_owned(), pass.to_owned())
    }
}

/// A free loopback port for one of the run's processes, picked at random below the
/// kernel's ephemeral range (32768-60999): a port from `bind(0)` is ephemeral, and an
/// outgoing connection (ssh, a database client) could take it before the process meant
/// for it binds.
///
/// A port is only bound later, by the process it is for, so a bind check alone lets two
/// clusters starting at once (in this test process or in another suite on the machine)
/// pick the same port, and one of them then waits for a `/readyz` that another process
/// answers or nobody does. Each port handed out is therefore reserved until this test
/// process exits: never handed out twice here, and locked (`flock`, released by the
/// kernel when the process ends, so no stale reservations) against every other test
/// process of the machine under `$TMPDIR/ferry-test-ports/`.
pub fn free_port() -> u16 {
    use nix::fcntl::{Flock, FlockArg};
    use std::sync::Mutex;
    static RESERVED: Mutex<Vec<(u16, Option<Flock<std::fs::File>>)>> = Mutex::new(Vec::new());

    let dir = std::env::temp_dir().join("ferry-test-ports");
    let _ = std::fs::create_dir_all(&dir);
    let mut reserved = RESERVED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    for _ in 0..1000 {
        let port = rand::thread_rng().gen_range(20_000..32_000);
        if reserved.iter().any(|(taken, _)| *taken == port) {
            continue;
        }
        // Without the lock directory (unwritable TMPDIR) only this process is guarded.
        let lock =
            match std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(port.to_string()))
            {
                Ok(file) => match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                    Ok(lock) => Some(lock),
                    Err(_) => continue, // another test process holds it
                },
                Err(_) => None,
            };
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            reserved.push((port, lock));
            return port;
        }
    }
    0
}

#[derive(Debug, Clone)]
pub struct Options {
    pub nodes: usize,
    pub workers: usize,
    pub replication: u32,
    /// Extra `FERRY_*` settings for every process.
    pub env: Vec<(String, String)>,
    /// Register the nodes through the admin API at start.
    pub register_nodes: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { nodes: 3, workers: 1, replication: 2, env: Vec::new(), register_nodes: true }
    }
}

/// One storage node: an sshd and a node agent over one root directory.
pub struct Node {
    pub name: String,
    pub id: Option<i64>,
    pub root: PathBuf,
    pub ssh_port: u16,
    pub agent_port: u16,
    sshd: Option<Proc>,
    agent: Option<Proc>,
}

impl Node {
    pub fn public_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.agent_port)
    }

    /// Where this node keeps `file`.
    pub fn path_of(&self, file: &str) -> PathBuf {
        self.root.join(&file[..2]).join(file)
    }
}

pub struct Cluster {
    pub dir: PathBuf,
    pub api: String,
    pub api_port: u16,
    pub db_url: String,
    pub jwt_secret: String,
    pub signing_secret: String,
    pub nodes: Vec<Node>,
    pub staging: PathBuf,
    /// The monitor's operations listener (`/healthz`, `/readyz`, `/metrics`).
    pub monitor_port: u16,
    env: Vec<(String, String)>,
    bin_dir: PathBuf,
    ssh_dir: PathBuf,
    procs: HashMap<String, Proc>,
    specs: HashMap<String, Spec>,
    worker_ports: Vec<u16>,
    keep: bool,
    /// [`Cluster::start_with`] gave up: the files are kept, the clean-end check skipped.
    start_failed: bool,
    /// What the clean-end check on drop tolerates (see [`clean`]).
    leftovers: Leftovers,
}

/// How a process was started, to start it again after a fault.
#[derive(Clone)]
struct Spec {
    binary: String,
    args: Vec<String>,
    extra: Vec<(String, String)>,
}

fn random_name() -> String {
    let n: u64 = rand::thread_rng().gen();
    format!("t_{n:016x}")
}

impl Cluster {
    pub async fn start() -> Result<Cluster> {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(opts: Options) -> Result<Cluster> {
        let env = Env::load()?;
        let name = random_name();
        let dir = std::env::temp_dir().join(format!("ferry-it-{name}"));
        std::fs::create_dir_all(&dir)?;

        // Database of its own.
        let (client, conn) = tokio_postgres::connect(&env.pg_url, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        client.batch_execute(&format!("CREATE DATABASE {name}")).await?;
        let db_url = match env.pg_url.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => bail!("FERRY_TEST_PG_URL has no database part"),
        };

        // Vhost of its own.
        let (user, pass) = env.amqp_credentials();
        let http = reqwest::Client::new();
        http.put(format!("{}/api/vhosts/{name}", env.mgmt_url))
            .basic_auth(&user, Some(&pass))
            .send()
            .await?
            .error_for_status()?;
        http.put(format!("{}/api/permissions/{name}/{user}", env.mgmt_url))
            .basic_auth(&user, Some(&pass))
            .json(&json!({"configure": ".*", "write": ".*", "read": ".*"}))
            .send()
            .await?
            .error_for_status()?;

        let staging = dir.join("staging");
        let jwt_secret = format!("{:064x}", rand::thread_rng().gen::<u128>());
        let signing_secret = format!("{:064x}", rand::thread_rng().gen::<u128>());
        let control_dir = PathBuf::from(format!("/tmp/fs-{}", &name[2..10]));
        let api_port = free_port();
        let mut vars: Vec<(String, String)> = vec![
            ("FERRY_DATABASE__URL".into(), db_url.clone()),
            ("FERRY_DATABASE__POOL_SIZE".into(), "8".into()),
            ("FERRY_BROKER__URL".into(), format!("{}/{name}", env.amqp_url)),
            ("FERRY_BROKER__MANAGEMENT_URL".into(), env.mgmt_url.clone()),
            ("FERRY_AUTH__JWT_SECRET".into(), jwt_secret.clone()),
            ("FERRY_SIGNING__SECRET".into(), signing_secret.clone()),
            ("FERRY_STORAGE__STAGING_DIR".into(), staging.display().to_string()),
            ("FERRY_STORAGE__REPLICATION_FACTOR".into(), opts.replication.to_string()),
            ("FERRY_WORKER__SSH_KEY".into(), env.ssh_dir.join("id_ed25519").display().to_string()),
            ("FERRY_WORKER__SSH_KNOWN_HOSTS".into(), dir.join("known_hosts").display().to_string()),
            ("FERRY_WORKER__SSH_CONTROL_DIR".into(), control_dir.display().to_string()),
            ("FERRY_WORKER__RSYNC_TIMEOUT_SECS".into(), "20".into()),
            // Short, so every test's clean-end check (staging empty) comes soon after
            // the last copy; long enough to cover a late heartbeat right after it.
            ("FERRY_WORKER__STAGING_LINGER_SECS".into(), "2".into()),
            ("FERRY_MONITOR__INTERVAL_MS".into(), "300".into()),
            ("FERRY_MONITOR__PROBE_TIMEOUT_MS".into(), "1000".into()),
            ("FERRY_API__HEARTBEAT_STALE_SECS".into(), "3".into()),
            ("FERRY_API__LISTEN".into(), format!("127.0.0.1:{api_port}")),
            // Every test client logs in from 127.0.0.1, many at once (the fault suite's
            // uploads): the login rate limit is tested on its own (tests/it/hostile.rs).
            ("FERRY_AUTH__LOGIN_ATTEMPTS_PER_MINUTE_PER_ADDRESS".into(), "100000".into()),
            ("FERRY_AUTH__LOGIN_ATTEMPTS_PER_MINUTE_PER_USER".into(), "100000".into()),
            ("FERRY_LOG".into(), "info,tokio_postgres=warn".into()),
            ("NO_COLOR".into(), "1".into()),
        ];
        vars.extend(opts.env.iter().cloned());

        let mut cluster = Cluster {
            api: format!("http://127.0.0.1:{api_port}"),
            api_port,
            db_url,
            jwt_secret,
            signing_secret,
            nodes: Vec::new(),
            staging,
            monitor_port: free_port(),
            env: vars,
            bin_dir: env.bin_dir.clone(),
            ssh_dir: env.ssh_dir.clone(),
            procs: HashMap::new(),
            specs: HashMap::new(),
            worker_ports: Vec::new(),
            keep: std::env::var_os("FERRY_TEST_KEEP").is_some(),
            start_failed: false,
            leftovers: Leftovers::default(),
            dir,
        };
        std::fs::create_dir_all("/run/sshd")?;
        if let Err(error) = cluster.boot(&opts).await {
            // Keep what shows why: the error names the step that timed out, the logs
            // show what each process was doing meanwhile.
            cluster.start_failed = true;
            let tails = cluster.log_tails(40);
            return Err(error.context(format!(
                "the test cluster did not start (its files are kept in {}):\n{tails}",
                cluster.dir.display()
            )));
        }
        Ok(cluster)
    }

    /// Starts the cluster's processes and waits until each is ready.
    async fn boot(&mut self, opts: &Options) -> Result<()> {
        for i in 1..=opts.nodes {
            self.add_node(&format!("node{i}"))?;
        }
        for (user, password, admin) in
            [("admin", "adminadmin", true), ("alice", "alicealice", false), ("bob", "bobbobbob", false)]
        {
            self.user_add(user, password, admin)?;
        }
        self.spawn("api", "ferry-api", &[], &[])?;
        for _ in 0..opts.workers {
            self.add_worker()?;
        }
        let monitor_port = self.monitor_port;
        self.spawn("monitor", "ferry-monitor", &[], &[("FERRY_MONITOR__LISTEN", format!("127.0.0.1:{monitor_port}"))])?;
        self.wait_ready(self.api_port).await?;
        self.wait_ready(monitor_port).await?;
        for port in self.worker_ports.clone() {
            self.wait_ready(port).await?;
        }
        if opts.register_nodes {
            for i in 0..self.nodes.len() {
                self.register_node(i).await?;
            }
            self.wait_nodes_up().await?;
        }
        Ok(())
    }

    fn bin(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.log"))
    }

    /// Starts `binary` as process `name` with the cluster's environment plus `extra`.
    pub fn spawn(&mut self, name: &str, binary: &str, args: &[&str], extra: &[(&str, String)]) -> Result<()> {
        let spec = Spec {
            binary: binary.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            extra: extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect(),
        };
        self.specs.insert(name.to_owned(), spec);
        self.respawn(name)
    }

    /// Starts process `name` again as it was first started (after a kill or SIGTERM).
    pub fn respawn(&mut self, name: &str) -> Result<()> {
        let spec = self.specs.get(name).cloned().with_context(|| format!("no process {name}"))?;
        let mut cmd = std::process::Command::new(self.bin(&spec.binary));
        cmd.args(&spec.args).envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd.envs(spec.extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let proc = Proc::spawn(name, cmd, &self.log_path(name))?;
        self.procs.insert(name.to_owned(), proc);
        Ok(())
    }

    /// Names of the processes currently running (api, workerN, monitor).
    pub fn process_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.procs.keys().cloned().collect();
        names.sort();
        names
    }

    /// SIGTERM to node `i`'s agent; its exit code.
    pub fn terminate_agent(&mut self, i: usize) -> Result<Option<i32>> {
        match self.nodes[i].agent.take() {
            Some(mut proc) => proc.terminate(Duration::from_secs(30)),
            None => Ok(None),
        }
    }

    /// Starts node `i`'s agent again.
    pub fn restart_agent(&mut self, i: usize) -> Result<()> {
        self.with_node(i, |cluster, node| cluster.start_agent(node))
    }

    /// Runs `f` with node `i` taken out of the list (so `f` may borrow the cluster).
    fn with_node(&mut self, i: usize, f: impl FnOnce(&Self, &mut Node) -> Result<()>) -> Result<()> {
        let blank = Node {
            name: String::new(),
            id: None,
            root: PathBuf::new(),
            ssh_port: 0,
            agent_port: 0,
            sshd: None,
            agent: None,
        };
        let mut node = std::mem::replace(&mut self.nodes[i], blank);
        let result = f(self, &mut node);
        self.nodes[i] = node;
        result
    }

    /// Kills node `i`'s sshd only (the agent keeps serving).
    pub fn kill_sshd(&mut self, i: usize) {
        if let Some(mut proc) = self.nodes[i].sshd.take() {
            proc.kill();
        }
    }

    /// Starts node `i`'s sshd again.
    pub fn restart_sshd(&mut self, i: usize) -> Result<()> {
        self.with_node(i, |cluster, node| cluster.start_sshd(node))
    }

    /// The workers' operations listeners, in start order.
    pub fn worker_ports(&self) -> &[u16] {
        &self.worker_ports
    }

    /// Adds one more worker process; returns its name.
    pub fn add_worker(&mut self) -> Result<String> {
        self.add_worker_for("assemble,replicate,delete,scrub,drop")
    }

    /// Adds one more worker process consuming only `queues` (comma-separated); returns
    /// its name.
    pub fn add_worker_for(&mut self, queues: &str) -> Result<String> {
        let port = free_port();
        let name = format!("worker{}", self.worker_ports.len() + 1);
        self.spawn(
            &name,
            "ferry-worker",
            &["--queues", queues, "--concurrency", "4"],
            &[("FERRY_WORKER__LISTEN", format!("127.0.0.1:{port}"))],
        )?;
        self.worker_ports.push(port);
        Ok(name)
    }

    /// Runs the operator CLI `ferry ARGS` against this cluster; its stdout, or an error
    /// with its stderr when it exits non-zero.
    pub fn ferry(&self, args: &[&str]) -> Result<String> {
        let out = std::process::Command::new(self.bin("ferry"))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .context("running ferry")?;
        if !out.status.success() {
            bail!("ferry {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Messages in queue `name` of this cluster's vhost (ready + unacknowledged), from
    /// the RabbitMQ management API.
    pub async fn queue_messages(&self, name: &str) -> Result<u64> {
        let env = Env::load()?;
        let (user, pass) = env.amqp_credentials();
        let url = format!("{}/api/queues/{}/{name}", env.mgmt_url, self.vhost());
        let body: Value = reqwest::Client::new()
            .get(&url)
            .basic_auth(&user, Some(&pass))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(body["messages"].as_u64().unwrap_or(0))
    }

    /// Purges queue `name` of this cluster's vhost (what an operator does in the
    /// RabbitMQ UI), through the management API.
    pub async fn purge_queue(&self, name: &str) -> Result<()> {
        let env = Env::load()?;
        let (user, pass) = env.amqp_credentials();
        let url = format!("{}/api/queues/{}/{name}/contents", env.mgmt_url, self.vhost());
        reqwest::Client::new().delete(&url).basic_auth(&user, Some(&pass)).send().await?.error_for_status()?;
        Ok(())
    }

    /// This cluster's RabbitMQ vhost (named like its database).
    fn vhost(&self) -> String {
        self.db_url.rsplit('/').next().unwrap_or_default().to_owned()
    }

    fn user_add(&self, user: &str, password: &str, admin: bool) -> Result<()> {
        use std::io::Write;
        let mut cmd = std::process::Command::new(self.bin("ferry-api"));
        cmd.arg("user-add").arg(user).arg("--password-stdin");
        if admin {
            cmd.arg("--admin");
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().context("spawning ferry-api user-add")?;
        if let Some(mut stdin) = child.stdin.take() {
            writeln!(stdin, "{password}")?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!("user-add {user} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    /// Runs the operator CLI (`ferry ARGS`) against this cluster with `stdin` as its
    /// input; returns (success, stdout + stderr).
    pub fn ferry_cli(&self, args: &[&str], stdin: &str) -> Result<(bool, String)> {
        self.ferry_cli_with(args, stdin, &[])
    }

    /// [`Cluster::ferry_cli`] with `extra` environment variables over the cluster's.
    pub fn ferry_cli_with(&self, args: &[&str], stdin: &str, extra: &[(&str, &str)]) -> Result<(bool, String)> {
        use std::io::Write;
        let mut child = std::process::Command::new(self.bin("ferry"))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(extra.iter().copied())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("spawning ferry")?;
        if let Some(mut input) = child.stdin.take() {
            input.write_all(stdin.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        Ok((out.status.success(), text))
    }

    async fn wait_ready(&self, port: u16) -> Result<()> {
        let http = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{port}/readyz");
        eventually(&format!("{url} to answer 200"), Duration::from_secs(30), || {
            let req = http.get(&url).timeout(Duration::from_secs(2)).send();
            async move { Ok(req.await.ok().filter(|r| r.status().is_success()).map(|_| ())) }
        })
        .await
    }

    /// Creates a node's root, sshd and agent (not yet registered).
    pub fn add_node(&mut self, name: &str) -> Result<usize> {
        let root = self.dir.join("nodes").join(name);
        std::fs::create_dir_all(&root)?;
        let mut node = Node {
            name: name.to_owned(),
            id: None,
            root,
            ssh_port: free_port(),
            agent_port: free_port(),
            sshd: None,
            agent: None,
        };
        let host_pub = std::fs::read_to_string(self.ssh_dir.join("ssh_host_ed25519_key.pub"))?;
        let host_pub: Vec<&str> = host_pub.split_whitespace().take(2).collect();
        let mut known = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("known_hosts"))?;
        use std::io::Write;
        writeln!(known, "[127.0.0.1]:{} {}", node.ssh_port, host_pub.join(" "))?;
        self.start_sshd(&mut node)?;
        self.start_agent(&mut node)?;
        self.nodes.push(node);
        Ok(self.nodes.len() - 1)
    }

    fn start_sshd(&self, node: &mut Node) -> Result<()> {
        let config = self.dir.join(format!("sshd-{}.conf", node.name));
        // sshd runs the forced command through the login shell, and bash started by
        // sshd reads ~/.bashrc: a storage node's ssh user has none, but the developer
        // running the tests may (this machine's root runs `pyenv init` there, ~0.4 s
        // per remote command). An empty HOME keeps every replica off it.
        let home = self.dir.join("node-home");
        std::fs::create_dir_all(&home)?;
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {dir}/ssh_host_ed25519_key\nPidFile {tmp}/sshd-{name}.pid\n\
                 AuthorizedKeysFile {dir}/authorized_keys\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 StrictModes no\nPermitRootLogin prohibit-password\nUsePAM no\nSetEnv HOME={home}\n\
                 ForceCommand {gate} {root}\n",
                home = home.display(),
                port = node.ssh_port,
                dir = self.ssh_dir.display(),
                tmp = self.dir.display(),
                name = node.name,
                // Production's forced command: the workers get exactly what a real node allows.
                gate = self.bin("ferry-node-ssh-command").display(),
                root = node.root.display(),
            ),
        )?;
        let mut cmd = std::process::Command::new("/usr/sbin/sshd");
        cmd.arg("-D").arg("-f").arg(&config).arg("-E").arg(self.log_path(&format!("sshd-{}", node.name)));
        node.sshd =
            Some(Proc::spawn(&format!("sshd-{}", node.name), cmd, &self.log_path(&format!("sshd-{}.out", node.name)))?);
        Ok(())
    }

    fn start_agent(&self, node: &mut Node) -> Result<()> {
        let mut cmd = std::process::Command::new(self.bin("ferry-node"));
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("FERRY_NODE__LISTEN", format!("127.0.0.1:{}", node.agent_port))
            .env("FERRY_NODE__ROOT", &node.root);
        node.agent =
            Some(Proc::spawn(&format!("agent-{}", node.name), cmd, &self.log_path(&format!("agent-{}", node.name)))?);
        Ok(())
    }

    /// The JSON the admin API takes for node `i`.
    pub fn node_json(&self, i: usize) -> Value {
        let node = &self.nodes[i];
        json!({
            "name": node.name,
            "ssh_host": "127.0.0.1",
            "ssh_port": node.ssh_port,
            "ssh_user": whoami(),
            "root_path": node.root.display().to_string(),
            "public_url": node.public_url(),
            "region": "test",
            "lat": 10.0 * i as f64,
            "lon": 10.0 * i as f64,
        })
    }

    pub async fn register_node(&mut self, i: usize) -> Result<i64> {
        let admin = self.client("admin", "adminadmin").await?;
        let body = self.node_json(i);
        let res = admin.post_json("/admin/api/nodes", &body).await?;
        if res.status != 201 {
            bail!("registering {}: {} {}", self.nodes[i].name, res.status, res.text());
        }
        let id = res.json()["id"].as_i64().context("node id")?;
        self.nodes[i].id = Some(id);
        Ok(id)
    }

    /// Waits until the API sees every registered node up (fresh heartbeat).
    pub async fn wait_nodes_up(&self) -> Result<()> {
        let admin = self.client("admin", "adminadmin").await?;
        let want: Vec<i64> = self.nodes.iter().filter_map(|n| n.id).collect();
        eventually("all nodes up", Duration::from_secs(30), || {
            let admin = admin.clone();
            let want = want.clone();
            async move {
                let nodes = admin.get("/admin/api/nodes").await?.json();
                let up =
                    nodes.as_array().into_iter().flatten().filter(|n| n["up"] == true).filter_map(|n| n["id"].as_i64());
                let up: Vec<i64> = up.collect();
                Ok(want.iter().all(|id| up.contains(id)).then_some(()))
            }
        })
        .await
    }

    /// A logged-in API client.
    pub async fn client(&self, user: &str, password: &str) -> Result<Client> {
        Client::login(&self.api, user, password).await
    }

    /// An API client without a token.
    pub fn anonymous(&self) -> Client {
        Client::anonymous(&self.api)
    }

    /// Stops (SIGKILL) a process started by the cluster.
    pub fn kill(&mut self, name: &str) {
        if let Some(mut proc) = self.procs.remove(name) {
            proc.kill();
        }
    }

    /// Sends SIGTERM and waits for a clean exit; returns the exit code.
    pub fn terminate(&mut self, name: &str) -> Result<Option<i32>> {
        let mut proc = self.procs.remove(name).with_context(|| format!("no process {name}"))?;
        proc.terminate(Duration::from_secs(30))
    }

    pub fn stop_node(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        for mut proc in [node.sshd.take(), node.agent.take()].into_iter().flatten() {
            proc.kill();
        }
    }

    pub fn start_node(&mut self, i: usize) -> Result<()> {
        self.with_node(i, |cluster, node| cluster.start_sshd(node).and_then(|_| cluster.start_agent(node)))
    }

    /// Nodes whose root holds `file`.
    pub fn nodes_holding(&self, file: &str) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&i| self.nodes[i].path_of(file).exists()).collect()
    }

    /// A direct database connection (for assertions on the source of truth).
    pub async fn db(&self) -> Result<tokio_postgres::Client> {
        let (client, conn) = tokio_postgres::connect(&self.db_url, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        Ok(client)
    }

    /// Waits until `file` has `n` present replicas (admin view) and returns their node ids.
    pub async fn wait_replicas(&self, file: &str, n: usize) -> Result<Vec<i64>> {
        let admin = self.client("admin", "adminadmin").await?;
        let path = format!("/admin/api/files/{file}");
        eventually(&format!("{n} present replicas of {file}"), Duration::from_secs(60), || {
            let admin = admin.clone();
            let path = path.clone();
            async move {
                let res = admin.get(&path).await?;
                if res.status != 200 {
                    return Ok(None);
                }
                let present: Vec<i64> = res.json()["replicas"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|r| r["state"] == "present")
                    .filter_map(|r| r["node"].as_i64())
                    .collect();
                Ok((present.len() >= n).then_some(present))
            }
        })
        .await
    }

    /// Declares leftovers this test leaves on purpose (fault injection), which the
    /// clean-end check on drop then tolerates.
    pub fn expect_leftovers(&mut self, leftovers: Leftovers) {
        self.leftovers = leftovers;
    }

    /// Waits (bounded by [`clean::SETTLE`]) until the cluster finished all its work and
    /// fails with what is left otherwise; see [`clean`]. Runs on drop by itself when
    /// the test did not panic.
    pub async fn assert_clean(&self) -> Result<()> {
        self.clean_target()?.check(self.leftovers).await
    }

    fn clean_target(&self) -> Result<clean::Target> {
        let env = Env::load()?;
        let (user, password) = env.amqp_credentials();
        let vhost = self.vhost();
        Ok(clean::Target {
            db_url: self.db_url.clone(),
            mgmt_url: env.mgmt_url,
            vhost,
            user,
            password,
            staging: self.staging.clone(),
        })
    }

    pub fn log_tail(&self, name: &str, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_path(name)).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The last `lines` lines of every process's log, each under a header.
    fn log_tails(&self, lines: usize) -> String {
        let mut names: Vec<&String> = self.procs.keys().collect();
        names.sort();
        names.iter().map(|name| format!("---- {name} (last lines) ----\n{}\n", self.log_tail(name, lines))).collect()
    }
}

fn whoami() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid()).ok().flatten().map_or_else(|| "root".into(), |u| u.name)
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // The test passed (did not panic): it must leave a clean cluster behind.
        let unclean = if std::thread::panicking() || self.start_failed {
            None
        } else {
            self.clean_target().and_then(|target| clean::check_blocking(target, self.leftovers)).err()
        };
        let failed = std::thread::panicking() || unclean.is_some();
        if failed {
            eprintln!("{}", self.log_tails(30));
            eprintln!("---- cluster dir: {} ----", self.dir.display());
        }
        for (_, mut proc) in self.procs.drain() {
            proc.kill();
        }
        for i in 0..self.nodes.len() {
            self.stop_node(i);
        }
        if !failed && !self.keep && !self.start_failed {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        if let Some(error) = unclean {
            panic!("{error:#}");
        }
    }
}

/// md5 of `bytes` as hex.
pub fn md5_hex(bytes: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(bytes))
}

/// `n` pseudo-random bytes.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    rand::thread_rng().fill(&mut bytes[..]);
    bytes
}

/// Reads a file written by a node (test assertion helper).
pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}
