//! `deploy/dev up|down|status|logs`: a whole Ferry cluster on one machine, every piece a
//! background process under one state dir (`FERRY_DEV_STATE`, default `<repo>/.state/dev`):
//!
//! ```text
//! ports.env            ports in use (env FERRY_DEV_* > saved > defaults or free ones)
//! env                  the services' FERRY_* environment, to run a binary by hand
//! run/NAME.pid         logs/NAME.log
//! postgres/            PostgreSQL data (a symlink if the postgres user cannot reach here)
//! rabbitmq/            RabbitMQ home, mnesia, config
//! secrets/             JWT and URL-signing secrets, RabbitMQ and PostgreSQL passwords (mode 600)
//! ssh/                 workers' key, operator's key, node host key, known_hosts
//! nodes/<name>/        data/ (the root), sshd_config, authorized_keys (workers' key forced
//!                      through ferry-node-ssh-command, the production gate), home/ (empty)
//! staging/             upload staging volume (api + workers)
//! ```
//!
//! Every command finds the same cluster again through this dir, and `up` leaves running
//! processes alone, so running it twice is harmless. What `up` and `status` print goes
//! through `ferry_stdout::outln!`: a reader that goes away (`deploy/dev status | head -3`)
//! ends `ferry-dev` quietly with status 0 instead of a panic.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ferry_stdout::outln;
use nix::sys::signal::Signal;
use rand::Rng;

use crate::cluster::{login, program_of, Cluster, ClusterConfig, Node};
use crate::postgres::Postgres;
use crate::process::{pid_from_file, Spawned, Stopped};
use crate::rabbitmq::RabbitMq;

/// The storage nodes: name, latitude, longitude. Far apart (Frankfurt, Ashburn,
/// Singapore), so nearest-node choice is visible.
const NODES: [(&str, f64, f64); 3] = [("node1", 50.11, 8.68), ("node2", 39.04, -77.49), ("node3", 1.35, 103.82)];
const WORKERS: [&str; 2] = ["worker1", "worker2"];
/// The admin login `up` creates.
pub const ADMIN_USER: &str = "admin";
/// The admin password `up` sets.
pub const ADMIN_PASSWORD: &str = "adminadmin";
/// Present in every state dir `up` made; `down --purge` deletes nothing without it.
const MARKER: &str = ".ferry-dev-state";

/// The ports of a dev cluster, by their `ports.env` key, with defaults. Node N listens
/// on `SSH_BASE_PORT + N` and `AGENT_BASE_PORT + N`; the monitor's operations listener
/// (`/metrics`, `/healthz`, `/readyz`) on `OPS_BASE_PORT + 1`, worker N's on
/// `OPS_BASE_PORT + 1 + N`.
const PORTS: [(&str, u16); 8] = [
    ("PG_PORT", 5433),
    ("AMQP_PORT", 5673),
    ("MGMT_PORT", 15673),
    ("DIST_PORT", 25673),
    ("API_PORT", 8000),
    ("SSH_BASE_PORT", 2200),
    ("AGENT_BASE_PORT", 9000),
    ("OPS_BASE_PORT", 9100),
];

/// How many ports after a `_BASE_PORT` key's base are used: one per node, or the
/// monitor's and each worker's operations listener.
fn block_len(key: &str) -> usize {
    if key == "OPS_BASE_PORT" {
        WORKERS.len() + 1
    } else {
        NODES.len()
    }
}

/// `HH:MM:SS message` on stderr (local time, as deploy/dev's own lines).
pub fn log(message: &str) {
    eprintln!("{} {message}", chrono::Local::now().format("%H:%M:%S"));
}

/// Where a dev cluster lives and which ports it uses.
#[derive(Debug, Clone)]
pub struct Dev {
    /// The state dir (absolute).
    pub state: PathBuf,
    /// Where the ferry-* binaries are.
    pub bin_dir: PathBuf,
    /// Port by `ports.env` key.
    pub ports: BTreeMap<String, u16>,
    /// ssh control sockets: short (sun_path is 108 bytes) and one dir per cluster, so one
    /// cluster's `down` never pulls the sockets from under another's workers.
    pub control_dir: PathBuf,
    /// Tells clusters of different state dirs apart (RabbitMQ node name, control dir).
    pub state_id: u32,
}

/// FNV-1a of the state dir's path: stable across invocations.
fn state_id(state: &Path) -> u32 {
    state
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(*b)).wrapping_mul(0x0100_0193))
}

impl Dev {
    /// The settings for `state` and `bin_dir`: ports from `FERRY_DEV_<KEY>` in the
    /// environment, else as saved in `ports.env`, else the defaults, or with
    /// `free_ports` free ones.
    pub fn load(state: &Path, bin_dir: &Path, free_ports: bool) -> Result<Dev> {
        let state = std::path::absolute(state)?;
        let mut saved = BTreeMap::new();
        if let Ok(text) = std::fs::read_to_string(state.join("ports.env")) {
            for line in text.lines() {
                if let Some((key, value)) = line.split_once('=') {
                    if let Ok(port) = value.trim().parse::<u16>() {
                        saved.insert(key.trim().to_owned(), port);
                    }
                }
            }
        }
        let mut ports = BTreeMap::new();
        for (key, default) in PORTS {
            let var = format!("FERRY_DEV_{key}");
            let port = match std::env::var(&var) {
                Ok(value) if !value.is_empty() => {
                    value.parse().with_context(|| format!("{var} must be a port number"))?
                }
                _ => match saved.get(key) {
                    Some(port) => *port,
                    None if free_ports => 0,
                    None => default,
                },
            };
            ports.insert(key.to_owned(), port);
        }
        // Free ports for what is still open: single ports, then blocks of 3 for the nodes.
        let mut taken: Vec<u16> = ports.values().copied().filter(|p| *p != 0).collect();
        for (key, _) in PORTS {
            if ports[key] != 0 {
                continue;
            }
            let len = block_len(key);
            let port = if key.ends_with("_BASE_PORT") { free_block(len, &taken)? } else { crate::free_port(&taken)? };
            taken.extend(port..=port + if key.ends_with("_BASE_PORT") { len as u16 } else { 0 });
            ports.insert(key.to_owned(), port);
        }
        let id = state_id(&state);
        Ok(Dev {
            bin_dir: std::path::absolute(bin_dir)?,
            ports,
            control_dir: PathBuf::from(format!("/tmp/ferry-ssh-{id}")),
            state_id: id,
            state,
        })
    }

    /// The port saved under `key` (see [`PORTS`]).
    pub fn port(&self, key: &str) -> u16 {
        self.ports.get(key).copied().unwrap_or_default()
    }

    /// The operations listener's port of `monitor` or `workerN` (see [`PORTS`]).
    fn ops_port(&self, name: &str) -> u16 {
        let n = name.strip_prefix("worker").and_then(|n| n.parse::<u16>().ok()).unwrap_or(0);
        self.port("OPS_BASE_PORT") + 1 + n
    }

    fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port("API_PORT"))
    }

    /// The PostgreSQL data dir, following the fallback symlink.
    fn pg_dir(&self) -> PathBuf {
        let link = self.state.join("postgres");
        std::fs::read_link(&link).unwrap_or(link)
    }

    fn postgres(&self) -> Postgres {
        Postgres {
            data: self.pg_dir(),
            port: self.port("PG_PORT"),
            log: self.state.join("logs/postgres.log"),
            password_file: self.secret("postgres_password"),
            options: Vec::new(),
        }
    }

    fn rabbitmq(&self) -> RabbitMq {
        RabbitMq {
            dir: self.state.join("rabbitmq"),
            node: format!("ferry-dev-{}@localhost", self.state_id),
            amqp_port: self.port("AMQP_PORT"),
            mgmt_port: self.port("MGMT_PORT"),
            dist_port: self.port("DIST_PORT"),
            log: self.state.join("logs/rabbitmq.log"),
            pid_file: self.state.join("run/rabbitmq.pid"),
        }
    }

    fn node_specs(&self) -> Vec<Node> {
        NODES
            .iter()
            .enumerate()
            .map(|(i, (name, lat, lon))| {
                let n = i as u16 + 1;
                Node {
                    name: (*name).to_owned(),
                    id: None,
                    ssh_port: self.port("SSH_BASE_PORT") + n,
                    agent_port: self.port("AGENT_BASE_PORT") + n,
                    root: self.state.join("nodes").join(name).join("data"),
                    region: "dev".to_owned(),
                    lat: *lat,
                    lon: *lon,
                }
            })
            .collect()
    }

    fn secret(&self, name: &str) -> PathBuf {
        self.state.join("secrets").join(name)
    }

    /// The FERRY_* environment shared by every service (each reads the sections it needs).
    fn service_env(&self) -> Result<Vec<(String, String)>> {
        let rabbit_password = std::fs::read_to_string(self.secret("rabbitmq_password"))?.trim().to_owned();
        let path = |p: PathBuf| p.display().to_string();
        let redoc = crate::repo_dir().join("deploy/docs/node_modules/redoc/bundles/redoc.standalone.js");
        let vars = [
            // Output goes to log files: no ANSI colours in them.
            ("NO_COLOR", "1".to_owned()),
            ("FERRY_DATABASE__URL", self.postgres().url("ferry")?),
            ("FERRY_BROKER__URL", format!("amqp://ferry:{rabbit_password}@127.0.0.1:{}/%2f", self.port("AMQP_PORT"))),
            ("FERRY_BROKER__MANAGEMENT_URL", format!("http://127.0.0.1:{}", self.port("MGMT_PORT"))),
            ("FERRY_AUTH__JWT_SECRET_FILE", path(self.secret("jwt_secret"))),
            ("FERRY_SIGNING__SECRET_FILE", path(self.secret("signing_secret"))),
            ("FERRY_STORAGE__STAGING_DIR", path(self.state.join("staging"))),
            ("FERRY_API__LISTEN", format!("127.0.0.1:{}", self.port("API_PORT"))),
            ("FERRY_API__PUBLIC_URL", self.api_url()),
            ("FERRY_API__REDOC_BUNDLE", path(redoc)),
            ("FERRY_API__SWAGGER_UI_DIR", path(crate::repo_dir().join("deploy/docs/node_modules/swagger-ui-dist"))),
            ("FERRY_API__UPPY_DIR", path(crate::repo_dir().join("deploy/docs/node_modules/uppy/dist"))),
            ("FERRY_WORKER__SSH_KEY", path(self.state.join("ssh/id_ed25519"))),
            ("FERRY_WORKER__SSH_KNOWN_HOSTS", path(self.state.join("ssh/known_hosts"))),
            ("FERRY_WORKER__SSH_CONTROL_DIR", path(self.control_dir.clone())),
        ];
        Ok(vars.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    fn cluster(&self) -> Result<Cluster> {
        let secrets = ["rabbitmq_password", "postgres_password"];
        let env = if secrets.iter().all(|s| self.secret(s).exists()) { self.service_env()? } else { Vec::new() };
        let mut cluster = Cluster::new(ClusterConfig {
            dir: self.state.clone(),
            bin_dir: self.bin_dir.clone(),
            detached: true,
            env,
        })?;
        cluster.nodes = self.node_specs();
        Ok(cluster)
    }
}

/// A base port B such that B+1..=B+n are all free and not in `taken`.
fn free_block(n: usize, taken: &[u16]) -> Result<u16> {
    for _ in 0..200 {
        let base = crate::free_port(taken)?;
        let all_free = (1..=n as u16).all(|i| {
            let port = base + i;
            !taken.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
        });
        if all_free {
            return Ok(base);
        }
    }
    bail!("no block of {n} free ports found")
}

/// Creates `file` (mode 600) with a random hex secret of `bytes` bytes unless it exists,
/// so secrets survive `up` being run again.
pub fn write_secret(file: &Path, bytes: usize) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if std::fs::metadata(file).is_ok_and(|m| m.len() > 0) {
        return Ok(());
    }
    let secret: String = (0..bytes).map(|_| format!("{:02x}", rand::thread_rng().gen::<u8>())).collect();
    let tmp = file.with_extension("tmp");
    let mut out = std::fs::OpenOptions::new().create(true).write(true).truncate(true).mode(0o600).open(&tmp)?;
    writeln!(out, "{secret}")?;
    std::fs::rename(tmp, file)?;
    Ok(())
}

/// `'text'` for a POSIX shell.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Phase timings for `up`: `next(NAME)` closes the running phase and opens NAME.
struct Phases {
    current: Option<(String, Instant)>,
    done: Vec<(String, Duration)>,
}

impl Phases {
    fn next(&mut self, name: &str) {
        self.end();
        log(&format!("== {name}"));
        self.current = Some((name.to_owned(), Instant::now()));
    }
    fn end(&mut self) {
        if let Some((name, t0)) = self.current.take() {
            self.done.push((name, t0.elapsed()));
        }
    }
    fn print(&mut self) {
        self.end();
        outln!("Timings:");
        for (name, took) in &self.done {
            outln!("  {name:<18} {:>7.1}s", took.as_secs_f64());
        }
    }
}

fn note(name: &str, spawned: Spawned) {
    match spawned {
        Spawned::Started(pid) => log(&format!("{name} started (pid {pid})")),
        Spawned::AlreadyRunning(pid) => log(&format!("{name} already running (pid {pid})")),
    }
    if let Spawned::AlreadyRunning(pid) = spawned {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
        if exe.to_string_lossy().ends_with("(deleted)") {
            log(&format!("WARNING: {name} runs an outdated build; 'down' then 'up' to restart it"));
        }
    }
}

/// `deploy/dev up`: starts (or completes) the cluster and prints where everything is.
pub async fn up(dev: &Dev) -> Result<()> {
    let t0 = Instant::now();
    let mut phases = Phases { current: None, done: Vec::new() };
    let state = &dev.state;
    for dir in ["run", "logs", "secrets", "staging"] {
        std::fs::create_dir_all(state.join(dir))?;
    }
    std::fs::write(state.join(MARKER), "")?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(state.join("secrets"), std::fs::Permissions::from_mode(0o700))?;
        std::fs::create_dir_all(&dev.control_dir)?;
        std::fs::set_permissions(&dev.control_dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let ports: String = dev.ports.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    std::fs::write(state.join("ports.env"), ports)?;
    write_secret(&dev.secret("jwt_secret"), 32)?;
    write_secret(&dev.secret("signing_secret"), 32)?;
    write_secret(&dev.secret("rabbitmq_password"), 12)?;
    write_secret(&dev.secret("postgres_password"), 16)?;

    // RabbitMQ boots (5-11 s) in the background while PostgreSQL and the nodes start.
    phases.next("postgres");
    let rabbit = dev.rabbitmq();
    let rabbit_t0 = Instant::now();
    let launched = rabbit.start()?;
    if launched {
        log(&format!("rabbitmq {} starting (AMQP {}, management {})", rabbit.node, rabbit.amqp_port, rabbit.mgmt_port));
    } else {
        log("rabbitmq already running");
    }
    prepare_pg_dir(dev)?;
    let pg = dev.postgres();
    if pg.start()? {
        log(&format!("postgres started on port {}", pg.port));
    } else {
        log("postgres already running");
    }
    if let Some(pid) = pg.pid() {
        std::fs::write(state.join("run/postgres.pid"), format!("{pid}\n"))?;
    }
    if pg.ensure_database("ferry")? {
        log("created database ferry");
    }
    for name in ["ferry-api", "ferry-worker", "ferry-monitor", "ferry-node"] {
        if !dev.bin_dir.join(name).is_file() {
            bail!("{} was not built", dev.bin_dir.join(name).display());
        }
    }

    phases.next("nodes");
    let mut cluster = dev.cluster()?;
    let env_file: String =
        std::iter::once("# source this to run a Ferry binary against the dev cluster by hand\n".into())
            .chain(
                cluster
                    .env
                    .iter()
                    .filter(|(k, _)| k.starts_with("FERRY_"))
                    .map(|(k, v)| format!("export {k}={}\n", shell_quote(v))),
            )
            .collect::<String>();
    write_private(&state.join("env"), &env_file)?;
    let ports: Vec<u16> = cluster.nodes.iter().map(|n| n.ssh_port).collect();
    cluster.ssh.write_known_hosts(&ports)?;
    for i in 0..cluster.nodes.len() {
        let name = cluster.nodes[i].name.clone();
        std::fs::create_dir_all(&cluster.nodes[i].root)?;
        note(&format!("sshd-{name}"), cluster.start_sshd(i)?);
        note(&name, cluster.start_agent(i)?);
    }
    for i in 0..cluster.nodes.len() {
        cluster.wait_node(i).await?;
    }

    phases.next("rabbitmq");
    rabbit.wait(Duration::from_secs(120)).await?;
    let rabbit_note = if launched {
        format!("; RabbitMQ was ready {:.1}s after launch", rabbit_t0.elapsed().as_secs_f64())
    } else {
        String::new()
    };
    let rabbit_password = std::fs::read_to_string(dev.secret("rabbitmq_password"))?.trim().to_owned();
    rabbit.admin_user("ferry", &rabbit_password)?;

    phases.next("services");
    // Creates or updates the admin user; also applies the migrations before the API starts.
    cluster.user_add(ADMIN_USER, ADMIN_PASSWORD, true)?;
    note("api", cluster.spawn("api", "ferry-api", &[], &[])?);
    for name in WORKERS {
        let listen = format!("127.0.0.1:{}", dev.ops_port(name));
        note(name, cluster.spawn(name, "ferry-worker", &[], &[("FERRY_WORKER__LISTEN", listen)])?);
    }
    let listen = format!("127.0.0.1:{}", dev.ops_port("monitor"));
    note("monitor", cluster.spawn("monitor", "ferry-monitor", &[], &[("FERRY_MONITOR__LISTEN", listen)])?);
    let api = dev.api_url();
    cluster.wait_http("api", &format!("{api}/readyz"), Duration::from_secs(60)).await?;

    phases.next("register");
    let token = login(&api, ADMIN_USER, ADMIN_PASSWORD).await?;
    for i in 0..cluster.nodes.len() {
        let name = cluster.nodes[i].name.clone();
        match cluster.register_node(&api, &token, i).await? {
            Some(_) => log(&format!("registered {name}")),
            None => log(&format!("{name} already registered")),
        }
    }
    let names: Vec<String> = cluster.nodes.iter().map(|n| n.name.clone()).collect();
    // Ready means uploads can be placed: wait (bounded) until the monitor has seen every
    // node up and the API has its heartbeats.
    if let Err(e) = cluster.wait_nodes_up(&api, &token, &names, Duration::from_secs(30)).await {
        log(&format!("WARNING: {e} (see 'deploy/dev logs monitor')"));
    }
    for name in WORKERS.into_iter().chain(["monitor"]) {
        if !cluster.running(name) {
            bail!("{name} exited; last lines of its log:\n{}", cluster.log_tail(name, 30));
        }
    }
    phases.end();
    summary(dev, &cluster, t0.elapsed(), &rabbit_note, &rabbit_password);
    phases.print();
    Ok(())
}

/// As root, the data dir must be reachable by the postgres user; a state dir under /root is
/// not, so the data then lives under /var/lib/ferry-dev/<id>/ behind a symlink.
fn prepare_pg_dir(dev: &Dev) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let link = dev.state.join("postgres");
    if link.symlink_metadata().is_ok() || Postgres::can_use_dir(&link)? {
        return Ok(());
    }
    let alt = PathBuf::from(format!("/var/lib/ferry-dev/{}/postgres", dev.state_id));
    let parent = alt.parent().context("parent")?;
    std::fs::create_dir_all(parent)?;
    for dir in [Path::new("/var/lib/ferry-dev"), parent] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    }
    std::os::unix::fs::symlink(&alt, &link)?;
    log(&format!(
        "WARNING: the postgres user cannot reach {}; its data lives in {}",
        dev.state.display(),
        alt.display()
    ));
    Ok(())
}

/// Writes `text` to `path` readable by its owner only (it holds the broker's and the
/// database's passwords); the mode is set on a file left by an older run too.
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut out = std::fs::OpenOptions::new().create(true).write(true).truncate(true).mode(0o600).open(path)?;
    out.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    out.write_all(text.as_bytes())?;
    Ok(())
}

fn summary(dev: &Dev, cluster: &Cluster, took: Duration, rabbit_note: &str, rabbit_password: &str) {
    let api = dev.api_url();
    outln!("\nFerry dev cluster is up (took {:.1}s{rabbit_note}).\n", took.as_secs_f64());
    outln!("  API                  {api}");
    outln!("  API docs             {api}/docs/redoc/");
    outln!("  Admin page           {api}/admin/   login {ADMIN_USER} / {ADMIN_PASSWORD}");
    outln!("  RabbitMQ management  http://127.0.0.1:{}/   login ferry / {rabbit_password}", dev.port("MGMT_PORT"));
    outln!("  PostgreSQL           psql {}", dev.postgres().url("ferry").unwrap_or_default());
    for s in &cluster.nodes {
        outln!(
            "  {:<20} http://127.0.0.1:{}   (sshd 127.0.0.1:{}, root {})",
            format!("Node {}", s.name),
            s.agent_port,
            s.ssh_port,
            s.root.display()
        );
    }
    let ops = |name: &str| format!("http://127.0.0.1:{}/metrics", dev.ops_port(name));
    outln!("  Metrics              {api}/metrics, monitor {}, {}", ops("monitor"), {
        let workers: Vec<String> = WORKERS.iter().map(|w| format!("{w} {}", ops(w))).collect();
        workers.join(", ")
    });
    outln!("  State dir            {}   (service env: {}/env)\n", dev.state.display(), dev.state.display());
    outln!("  deploy/dev status | deploy/dev logs [-f] [name] | deploy/dev down [--purge]\n");
}

/// `deploy/dev down [--purge]`: stops everything (clients of the broker and the database
/// first, so they drain cleanly); with `purge` also deletes the state dir.
pub fn down(dev: &Dev, purge: bool) -> Result<()> {
    let state = &dev.state;
    if state.is_dir() {
        let mut cluster = dev.cluster()?;
        let stop = |cluster: &mut Cluster, name: &str, secs: u64| -> Result<()> {
            match cluster.stop(name, Signal::SIGTERM, Duration::from_secs(secs))? {
                Stopped::NotRunning => {}
                Stopped::Exited(_) => log(&format!("{name} stopped")),
                Stopped::Killed => log(&format!("WARNING: {name} still running {secs}s after SIGTERM; sent SIGKILL")),
            }
            Ok(())
        };
        stop(&mut cluster, "monitor", 20)?;
        for name in WORKERS.iter().rev() {
            stop(&mut cluster, name, 30)?;
        }
        stop(&mut cluster, "api", 20)?;
        for (name, _, _) in NODES.iter().rev() {
            stop(&mut cluster, name, 10)?;
            stop(&mut cluster, &format!("sshd-{name}"), 5)?;
        }
        if dev.rabbitmq().stop(false)? {
            log("rabbitmq stopped");
        }
        if dev.postgres().stop()? {
            log("postgres stopped");
        }
        let _ = std::fs::remove_file(state.join("run/postgres.pid"));
    } else {
        log(&format!("nothing to stop: {} does not exist", state.display()));
    }
    if !purge {
        return Ok(());
    }
    if state.is_dir() {
        if !state.join(MARKER).exists() {
            bail!("refusing to delete {}: no {MARKER} in it", state.display());
        }
        let link = state.join("postgres");
        if let Ok(target) = std::fs::read_link(&link) {
            if let Some(parent) = target.parent() {
                std::fs::remove_dir_all(parent).ok();
            }
            std::fs::remove_dir("/var/lib/ferry-dev").ok();
        }
        std::fs::remove_dir_all(state).with_context(|| format!("deleting {}", state.display()))?;
        log(&format!("deleted {}", state.display()));
    }
    std::fs::remove_dir_all(&dev.control_dir).ok();
    Ok(())
}

/// `deploy/dev status`: one line per process; false when any is stopped.
pub fn status(dev: &Dev) -> Result<bool> {
    let mut all = true;
    let mut line = |name: &str, pid: Option<i32>, port: String| {
        match pid {
            Some(pid) => outln!("{name:<14} {:<8} {pid:<8} {port}", "running"),
            None => {
                outln!("{name:<14} {:<8} {:<8} {port}", "stopped", "-");
                all = false;
            }
        };
    };
    outln!("{:<14} {:<8} {:<8} PORT", "PROCESS", "STATE", "PID");
    line("postgres", dev.postgres().pid(), dev.port("PG_PORT").to_string());
    line(
        "rabbitmq",
        dev.rabbitmq().pid(),
        format!("amqp {}, management {}", dev.port("AMQP_PORT"), dev.port("MGMT_PORT")),
    );
    let run = dev.state.join("run");
    let pid = |name: &str| pid_from_file(&run.join(format!("{name}.pid")), program_of(name));
    for spec in dev.node_specs() {
        let sshd = format!("sshd-{}", spec.name);
        line(&sshd, pid(&sshd), spec.ssh_port.to_string());
        line(&spec.name, pid(&spec.name), spec.agent_port.to_string());
    }
    line("api", pid("api"), dev.port("API_PORT").to_string());
    for name in WORKERS {
        line(name, pid(name), format!("{} (operations: /metrics, /healthz)", dev.ops_port(name)));
    }
    line("monitor", pid("monitor"), format!("{} (operations: /metrics, /healthz)", dev.ops_port("monitor")));
    outln!("\nstate dir: {}", dev.state.display());
    Ok(all)
}

/// `deploy/dev logs`: replaces this process with `tail` over one log or all of them.
pub fn logs(dev: &Dev, follow: bool, lines: u32, name: Option<&str>) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let dir = dev.state.join("logs");
    if !dir.is_dir() {
        bail!("no logs yet: {} does not exist", dir.display());
    }
    let mut available: Vec<String> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".log").map(str::to_owned))
        .collect();
    available.sort();
    let files: Vec<PathBuf> = match name {
        Some(name) if available.iter().any(|a| a == name) => vec![dir.join(format!("{name}.log"))],
        Some(name) => bail!("no log named {name}; available: {}", available.join(" ")),
        None => available.iter().map(|a| dir.join(format!("{a}.log"))).collect(),
    };
    let mut tail = std::process::Command::new("tail");
    tail.arg("-n").arg(lines.to_string());
    if follow {
        tail.arg("-F");
    }
    let err = tail.args(files).exec();
    Err(err).context("running tail")
}
