//! The integration-test harness: a whole Ferry cluster per test, made of real parts, started
//! by the project's one launcher (`ferry-launcher`, also behind `deploy/dev up`).
//!
//! `deploy/dev test` starts ONE PostgreSQL and ONE RabbitMQ for the run (`ferry-dev
//! services`) and exports `FERRY_TEST_SERVICES`; each [`Cluster`] then gets its own
//! database, its own vhost, its own directory (staging, node roots, SSH material, logs), its
//! own sshd per storage node with the node's real forced command (the production gate), and
//! the real binaries (`ferry-api`, `ferry-worker`, `ferry-monitor`, `ferry-node`) on free
//! loopback ports. Everything it started is killed when it is dropped; when the test
//! panicked, the tails of the process logs are printed first. A cluster that fails to
//! start keeps its directory, and the error carries the last lines of every process's log.
//!
//! [`Cluster`] dereferences to [`ferry_launcher::Cluster`]: its nodes, `spawn`, `respawn`,
//! `kill`, `kill_sshd`, `node_json`, `log_tail` are the launcher's.

pub mod clean;
pub mod client;

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ferry_launcher::services::Services;
use ferry_launcher::{ClusterConfig, Node, Stopped};
use nix::sys::signal::Signal;
use rand::Rng;

pub use clean::Leftovers;
pub use client::Client;
pub use ferry_launcher::eventually;

/// A free loopback port below the kernel's ephemeral range, reserved for the life of
/// this test process and locked against other test processes of the machine (see
/// [`ferry_launcher::free_port`]); 0 when none was found.
pub fn free_port() -> u16 {
    ferry_launcher::free_port(&[]).unwrap_or(0)
}

/// The run's PostgreSQL `postgres` database, password included (each test cluster makes
/// a database of its own beside it).
pub fn run_pg_url() -> Result<String> {
    Services::from_env()?.pg_url()
}

/// One connection to the PostgreSQL database at `url`, as the services hold theirs: a
/// deadpool object, whose `GenericClient` (with its statement cache) is what the
/// `ferry_store` functions take, so a test can call them directly. The pool it came
/// from is dropped; the connection lives as long as the object.
pub async fn store_client(url: &str) -> Result<deadpool_postgres::Object> {
    let pg: tokio_postgres::Config = url.parse()?;
    let pool = deadpool_postgres::Pool::builder(deadpool_postgres::Manager::new(pg, tokio_postgres::NoTls))
        .max_size(1)
        .build()?;
    Ok(pool.get().await?)
}

/// How to start a test cluster.
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

/// The users every test cluster has: (name, password, admin).
const USERS: [(&str, &str, bool); 3] =
    [("admin", "adminadmin", true), ("alice", "alicealice", false), ("bob", "bobbobbob", false)];

/// A whole cluster for one test.
pub struct Cluster {
    launcher: ferry_launcher::Cluster,
    pub api: String,
    pub api_port: u16,
    pub db_url: String,
    pub jwt_secret: String,
    pub signing_secret: String,
    pub staging: PathBuf,
    /// The monitor's operations listener (`/healthz`, `/readyz`, `/metrics`).
    pub monitor_port: u16,
    services: Services,
    worker_ports: Vec<u16>,
    keep: bool,
    /// [`Cluster::start_with`] gave up: the files are kept, the clean-end check skipped.
    start_failed: bool,
    /// What the clean-end check on drop tolerates (see [`clean`]).
    leftovers: Leftovers,
}

impl Deref for Cluster {
    type Target = ferry_launcher::Cluster;
    fn deref(&self) -> &Self::Target {
        &self.launcher
    }
}

impl DerefMut for Cluster {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.launcher
    }
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
        let services = Services::from_env()?;
        let name = random_name();
        let dir = services.clusters_dir().join(format!("ferry-it-{name}"));
        std::fs::create_dir_all(&dir)?;

        // Database and vhost of its own.
        services.postgres.ensure_database(&name)?;
        let db_url = services.postgres.url(&name)?;
        let (user, pass) = services.amqp_credentials();
        ferry_launcher::rabbitmq::create_vhost(&services.rabbitmq.mgmt_url(), user, pass, &name).await?;

        let staging = dir.join("staging");
        let jwt_secret = format!("{:064x}", rand::thread_rng().gen::<u128>());
        let signing_secret = format!("{:064x}", rand::thread_rng().gen::<u128>());
        let control_dir = PathBuf::from(format!("/tmp/fs-{}", &name[2..10]));
        let api_port = free_port();
        let ssh_dir = dir.join("ssh");
        let mut env: Vec<(String, String)> = vec![
            ("FERRY_DATABASE__URL".into(), db_url.clone()),
            ("FERRY_DATABASE__POOL_SIZE".into(), "8".into()),
            ("FERRY_BROKER__URL".into(), format!("{}/{name}", services.amqp_url())),
            ("FERRY_BROKER__MANAGEMENT_URL".into(), services.rabbitmq.mgmt_url()),
            ("FERRY_AUTH__JWT_SECRET".into(), jwt_secret.clone()),
            ("FERRY_SIGNING__SECRET".into(), signing_secret.clone()),
            ("FERRY_STORAGE__STAGING_DIR".into(), staging.display().to_string()),
            ("FERRY_STORAGE__REPLICATION_FACTOR".into(), opts.replication.to_string()),
            ("FERRY_WORKER__SSH_KEY".into(), ssh_dir.join("id_ed25519").display().to_string()),
            ("FERRY_WORKER__SSH_KNOWN_HOSTS".into(), ssh_dir.join("known_hosts").display().to_string()),
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
        env.extend(opts.env.iter().cloned());
        let launcher = ferry_launcher::Cluster::new(ClusterConfig {
            dir,
            bin_dir: services.bin_dir.clone(),
            detached: false,
            env,
        })?;

        let mut cluster = Cluster {
            launcher,
            api: format!("http://127.0.0.1:{api_port}"),
            api_port,
            db_url,
            jwt_secret,
            signing_secret,
            staging,
            monitor_port: free_port(),
            services,
            worker_ports: Vec::new(),
            keep: std::env::var_os("FERRY_TEST_KEEP").is_some(),
            start_failed: false,
            leftovers: Leftovers::default(),
        };
        if let Err(error) = cluster.boot(&opts).await {
            // Keep what shows why: the error names the step that timed out, the logs
            // show what each process was doing meanwhile.
            cluster.start_failed = true;
            let tails = cluster.log_tails(40);
            return Err(error.context(format!(
                "the test cluster did not start (its files are kept in {}, moved to the temp dir at the end of \
                 the run):\n{tails}",
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
        for (user, password, admin) in USERS {
            self.user_add(user, password, admin)?;
        }
        self.spawn("api", "ferry-api", &[], &[])?;
        for _ in 0..opts.workers {
            self.add_worker()?;
        }
        let monitor_port = self.monitor_port;
        self.spawn("monitor", "ferry-monitor", &[], &[("FERRY_MONITOR__LISTEN", format!("127.0.0.1:{monitor_port}"))])?;
        let ready = Duration::from_secs(30);
        for i in 0..self.nodes.len() {
            self.launcher.wait_node(i).await?;
        }
        let api_port = self.api_port;
        self.launcher.wait_http("api", &format!("http://127.0.0.1:{api_port}/readyz"), ready).await?;
        self.launcher.wait_http("monitor", &format!("http://127.0.0.1:{monitor_port}/readyz"), ready).await?;
        for (n, port) in self.worker_ports.clone().into_iter().enumerate() {
            let name = format!("worker{}", n + 1);
            self.launcher.wait_http(&name, &format!("http://127.0.0.1:{port}/readyz"), ready).await?;
        }
        if opts.register_nodes {
            for i in 0..self.nodes.len() {
                self.register_node(i).await?;
            }
            self.wait_nodes_up().await?;
        }
        Ok(())
    }

    /// Names of the processes currently running other than the nodes' (api, workerN,
    /// monitor).
    pub fn process_names(&mut self) -> Vec<String> {
        self.launcher.service_names()
    }

    /// Sends SIGTERM to process `name` and waits (30 s) for a clean exit; its exit code.
    pub fn terminate(&mut self, name: &str) -> Result<Option<i32>> {
        match self.launcher.stop(name, Signal::SIGTERM, Duration::from_secs(30))? {
            Stopped::Exited(code) => Ok(code),
            Stopped::NotRunning => bail!("no process {name}"),
            Stopped::Killed => bail!("{name} did not exit within 30 s of SIGTERM"),
        }
    }

    /// Stops the API (SIGTERM, a clean exit) and starts it again, ready: what an upload
    /// sees when its next request reaches another API process, with none of this one's
    /// memory.
    pub async fn restart_api(&mut self) -> Result<()> {
        self.terminate("api")?;
        self.spawn("api", "ferry-api", &[], &[])?;
        let url = format!("http://127.0.0.1:{}/readyz", self.api_port);
        self.launcher.wait_http("api", &url, Duration::from_secs(30)).await
    }

    /// SIGTERM to node `i`'s agent; its exit code.
    pub fn terminate_agent(&mut self, i: usize) -> Result<Option<i32>> {
        let name = self.nodes[i].name.clone();
        self.terminate(&name)
    }

    /// Starts node `i`'s agent again.
    pub fn restart_agent(&mut self, i: usize) -> Result<()> {
        self.launcher.start_agent(i).map(drop)
    }

    /// Starts node `i`'s sshd again (after [`ferry_launcher::Cluster::kill_sshd`]).
    pub fn restart_sshd(&mut self, i: usize) -> Result<()> {
        self.launcher.start_sshd(i).map(drop)
    }

    /// Kills node `i`'s sshd and agent.
    pub fn stop_node(&mut self, i: usize) {
        let name = self.nodes[i].name.clone();
        self.launcher.kill_sshd(i);
        self.launcher.kill(&name);
    }

    /// Starts node `i`'s sshd and agent again.
    pub fn start_node(&mut self, i: usize) -> Result<()> {
        self.launcher.start_sshd(i)?;
        self.launcher.start_agent(i).map(drop)
    }

    /// Restarts the run's PostgreSQL (fast shutdown, start with the same options); every
    /// test cluster of the run loses its connections (the fault suite runs alone).
    pub fn restart_postgres(&self) -> Result<()> {
        self.services.postgres.restart()
    }

    /// Stops and starts the run's RabbitMQ broker application: every connection drops,
    /// queues recover from disk.
    pub fn restart_rabbitmq(&self) -> Result<()> {
        self.services.rabbitmq.restart()
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
        let out = self.command("ferry").args(args).output().context("running ferry")?;
        if !out.status.success() {
            bail!("ferry {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs the operator CLI (`ferry ARGS`) against this cluster with `stdin` as its
    /// input; returns (success, stdout + stderr).
    pub fn ferry_cli(&self, args: &[&str], stdin: &str) -> Result<(bool, String)> {
        self.ferry_cli_with(args, stdin, &[])
    }

    /// [`Cluster::ferry_cli`] with `extra` environment variables over the cluster's.
    pub fn ferry_cli_with(&self, args: &[&str], stdin: &str, extra: &[(&str, &str)]) -> Result<(bool, String)> {
        use std::io::Write;
        use std::process::Stdio;
        let mut child = self
            .command("ferry")
            .args(args)
            .envs(extra.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawning ferry")?;
        if let Some(mut input) = child.stdin.take() {
            input.write_all(stdin.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        Ok((out.status.success(), text))
    }

    /// Messages in queue `name` of this cluster's vhost (ready + unacknowledged), from
    /// the RabbitMQ management API.
    pub async fn queue_messages(&self, name: &str) -> Result<u64> {
        let (user, pass) = self.services.amqp_credentials();
        let url = format!("{}/api/queues/{}/{name}", self.services.rabbitmq.mgmt_url(), self.vhost());
        let body: serde_json::Value = reqwest::Client::new()
            .get(&url)
            .basic_auth(user, Some(pass))
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
        let (user, pass) = self.services.amqp_credentials();
        let url = format!("{}/api/queues/{}/{name}/contents", self.services.rabbitmq.mgmt_url(), self.vhost());
        reqwest::Client::new().delete(&url).basic_auth(user, Some(pass)).send().await?.error_for_status()?;
        Ok(())
    }

    /// This cluster's RabbitMQ vhost (named like its database).
    fn vhost(&self) -> String {
        self.db_url.rsplit('/').next().unwrap_or_default().to_owned()
    }

    /// Creates a node's root, sshd and agent (not yet registered); its index.
    pub fn add_node(&mut self, name: &str) -> Result<usize> {
        let i = self.nodes.len();
        let node = Node {
            name: name.to_owned(),
            id: None,
            root: self.dir.join("nodes").join(name).join("data"),
            ssh_port: free_port(),
            agent_port: free_port(),
            region: "test".to_owned(),
            lat: 10.0 * i as f64,
            lon: 10.0 * i as f64,
        };
        self.launcher.add_node(node)
    }

    /// Registers node `i` through the admin API; its id.
    pub async fn register_node(&mut self, i: usize) -> Result<i64> {
        let token = ferry_launcher::cluster::login(&self.api, "admin", "adminadmin").await?;
        let api = self.api.clone();
        match self.launcher.register_node(&api, &token, i).await? {
            Some(id) => Ok(id),
            None => bail!("registering {}: already registered", self.nodes[i].name),
        }
    }

    /// Waits until the API sees every registered node up (fresh heartbeat).
    pub async fn wait_nodes_up(&self) -> Result<()> {
        let token = ferry_launcher::cluster::login(&self.api, "admin", "adminadmin").await?;
        let registered: Vec<String> = self.nodes.iter().filter(|n| n.id.is_some()).map(|n| n.name.clone()).collect();
        self.launcher.wait_nodes_up(&self.api, &token, &registered, Duration::from_secs(30)).await
    }

    /// A logged-in API client.
    pub async fn client(&self, user: &str, password: &str) -> Result<Client> {
        Client::login(&self.api, user, password).await
    }

    /// An API client without a token.
    pub fn anonymous(&self) -> Client {
        Client::anonymous(&self.api)
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
        .context("replication")
    }

    /// Waits (60 s) until `file` has no `failed` replica row: the monitor's sweep forgets
    /// one once the file has R present copies again.
    pub async fn wait_failed_forgotten(&self, file: &str) -> Result<()> {
        let db = self.db().await?;
        eventually(&format!("the failed copies of {file} forgotten"), Duration::from_secs(60), || async {
            let failed: i64 = db
                .query_one(
                    "SELECT count(*) FROM replicas WHERE file_id = $1::text::uuid AND state = 'failed'",
                    &[&file],
                )
                .await?
                .get(0);
            Ok((failed == 0).then_some(()))
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
        let (user, password) = self.services.amqp_credentials();
        let vhost = self.vhost();
        Ok(clean::Target {
            db_url: self.db_url.clone(),
            mgmt_url: self.services.rabbitmq.mgmt_url(),
            vhost,
            user: user.to_owned(),
            password: password.to_owned(),
            staging: self.staging.clone(),
        })
    }
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
            eprintln!("---- cluster dir: {} (moved to the temp dir at the end of the run) ----", self.dir.display());
        }
        self.launcher.kill_all();
        if !failed && !self.keep && !self.start_failed {
            let _ = std::fs::remove_dir_all(&self.launcher.dir);
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
