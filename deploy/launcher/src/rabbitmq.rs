//! A private RabbitMQ node with the management plugin. `/usr/sbin/rabbitmq-server` re-runs
//! itself through `su rabbitmq` when started as root, which loses a private data dir, so the
//! scripts under `/usr/lib/rabbitmq/bin` are called directly with every path in the
//! environment; `rabbitmqctl` must see the same HOME (it holds the Erlang cookie).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;

use crate::process::{cmdline, log_tail, pid_from_file, stop_pid};
use crate::wait::{eventually, tcp_open};

/// Where Debian's package puts the scripts that run a node without `su`.
pub const LIB_BIN: &str = "/usr/lib/rabbitmq/bin";

/// One RabbitMQ node: its directory (home, mnesia, config), Erlang node name and ports.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RabbitMq {
    /// Home (Erlang cookie), mnesia, logs and config files live here.
    pub dir: PathBuf,
    /// The Erlang node name, e.g. `ferry-dev-123@localhost`.
    pub node: String,
    /// AMQP port on 127.0.0.1.
    pub amqp_port: u16,
    /// Management HTTP API port on 127.0.0.1.
    pub mgmt_port: u16,
    /// Erlang distribution port (rabbitmqctl talks to the node through it).
    pub dist_port: u16,
    /// The node's log file.
    pub log: PathBuf,
    /// The node writes its pid here a few seconds into boot.
    pub pid_file: PathBuf,
}

impl RabbitMq {
    /// The environment every RabbitMQ script gets for this node.
    fn env(&self) -> Vec<(&'static str, String)> {
        let d = |p: &str| self.dir.join(p).display().to_string();
        vec![
            ("HOME", d("home")),
            ("RABBITMQ_NODENAME", self.node.clone()),
            ("RABBITMQ_DIST_PORT", self.dist_port.to_string()),
            ("RABBITMQ_MNESIA_BASE", d("mnesia")),
            ("RABBITMQ_LOG_BASE", d("log")),
            ("RABBITMQ_LOGS", self.log.display().to_string()),
            ("RABBITMQ_PID_FILE", self.pid_file.display().to_string()),
            ("RABBITMQ_ENABLED_PLUGINS_FILE", d("enabled_plugins")),
            ("RABBITMQ_CONFIG_FILE", d("rabbitmq.conf")),
            // Keep the machine-wide /etc/rabbitmq files out of a private node.
            ("RABBITMQ_CONF_ENV_FILE", d("rabbitmq-env.conf")),
            ("RABBITMQ_ADVANCED_CONFIG_FILE", d("advanced.config")),
        ]
    }

    fn script(&self, name: &str) -> Command {
        let mut cmd = Command::new(PathBuf::from(LIB_BIN).join(name));
        cmd.envs(self.env()).current_dir("/");
        cmd
    }

    /// `rabbitmqctl -q -n NODE ARGS`, its stdout.
    pub fn ctl(&self, args: &[&str]) -> Result<String> {
        let out = self.script("rabbitmqctl").args(["-q", "-n", &self.node]).args(args).output()?;
        if !out.status.success() {
            bail!("rabbitmqctl {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The management API's base URL.
    pub fn mgmt_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.mgmt_port)
    }

    /// The node's beam process. The pid file appears only a few seconds into boot, so
    /// fall back to the beam whose command line carries our private HOME (`-home DIR`).
    pub fn pid(&self) -> Option<i32> {
        if let Some(pid) = pid_from_file(&self.pid_file, "beam") {
            return Some(pid);
        }
        let needle = format!(" -home {} ", self.dir.join("home").display());
        crate::process::pids_mentioning(&needle).into_iter().find(|&pid| cmdline(pid).contains("beam"))
    }

    /// Launches the node detached and returns at once (boot takes 5-11 s, see
    /// [`RabbitMq::wait`]). Returns false when it was already running.
    pub fn start(&self) -> Result<bool> {
        if self.pid().is_some() {
            return Ok(false);
        }
        for sub in ["home", "mnesia", "log"] {
            std::fs::create_dir_all(self.dir.join(sub))?;
        }
        for file in [&self.pid_file, &self.log] {
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent)?;
            }
        }
        std::fs::write(self.dir.join("enabled_plugins"), "[rabbitmq_management].\n")?;
        std::fs::write(self.dir.join("rabbitmq-env.conf"), "")?;
        std::fs::write(
            self.dir.join("rabbitmq.conf"),
            format!(
                "listeners.tcp.default = 127.0.0.1:{}\nmanagement.tcp.port = {}\nmanagement.tcp.ip = 127.0.0.1\n\
                 # guest stays usable, from loopback only (the default).\nloopback_users.guest = true\n",
                self.amqp_port, self.mgmt_port
            ),
        )?;
        // epmd is shared by every Erlang node on the machine. Remember whether this start
        // launches it, so stop can take it down again once no node uses it.
        if !tcp_open(4369) {
            std::fs::write(self.dir.join("started-epmd"), "")?;
        }
        let _ = std::fs::remove_file(&self.pid_file);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let status = self
            .script("rabbitmq-server")
            .arg("-detached")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .status()
            .context("running rabbitmq-server")?;
        if !status.success() {
            bail!(
                "rabbitmq-server -detached failed; last lines of {}:\n{}",
                self.log.display(),
                log_tail(&self.log, 30)
            );
        }
        Ok(true)
    }

    /// Waits until the management API answers (guest, from loopback).
    pub async fn wait(&self, timeout: Duration) -> Result<()> {
        let url = format!("{}/api/overview", self.mgmt_url());
        let http = reqwest::Client::new();
        let waited = eventually(&format!("RabbitMQ management API on port {}", self.mgmt_port), timeout, || {
            let req = http.get(&url).basic_auth("guest", Some("guest")).timeout(Duration::from_secs(3)).send();
            async move { Ok(req.await.ok().filter(|r| r.status().is_success()).map(|_| ())) }
        })
        .await;
        waited.with_context(|| format!("RabbitMQ did not come up; last lines of its log:\n{}", log_tail(&self.log, 30)))
    }

    /// Creates or updates `user` as an administrator with full rights on `/`.
    pub fn admin_user(&self, user: &str, password: &str) -> Result<()> {
        let users = self.ctl(&["list_users"])?;
        if users.lines().any(|l| l.split_whitespace().next() == Some(user)) {
            self.ctl(&["change_password", user, password])?;
        } else {
            self.ctl(&["add_user", user, password])?;
        }
        self.ctl(&["set_user_tags", user, "administrator"])?;
        self.ctl(&["set_permissions", "-p", "/", user, ".*", ".*", ".*"])?;
        Ok(())
    }

    /// `rabbitmqctl stop` (a graceful shutdown, ~8 s), SIGTERM if that fails, or SIGKILL at
    /// once with `kill` (throw-away test nodes); then epmd, if we started it and no Erlang
    /// node is registered with it any more. Returns false when it was not running.
    pub fn stop(&self, kill: bool) -> Result<bool> {
        let was = if let Some(pid) = self.pid() {
            if kill {
                stop_pid(pid, Signal::SIGKILL, Duration::from_secs(10));
            } else if self.ctl(&["stop"]).is_err() {
                eprintln!("WARNING: rabbitmqctl stop failed; terminating pid {pid}");
                stop_pid(pid, Signal::SIGTERM, Duration::from_secs(10));
            } else {
                stop_pid(pid, Signal::SIGKILL, Duration::from_secs(10));
            }
            true
        } else {
            false
        };
        let _ = std::fs::remove_file(&self.pid_file);
        let marker = self.dir.join("started-epmd");
        if marker.exists() {
            stop_idle_epmd();
            let _ = std::fs::remove_file(marker);
        }
        Ok(was)
    }

    /// Stops and starts the broker application (every connection drops, queues recover
    /// from disk); returns once the node answers again.
    pub fn restart(&self) -> Result<()> {
        self.ctl(&["stop_app"])?;
        self.ctl(&["start_app"])?;
        self.ctl(&["await_startup"])?;
        Ok(())
    }
}

/// Stops epmd once no Erlang node is registered with it.
fn stop_idle_epmd() {
    let epmd = ["/usr/bin/epmd", "/usr/lib/erlang/bin/epmd"].into_iter().map(PathBuf::from).find(|p| p.exists());
    let Some(epmd) = epmd else { return };
    // A node's registration drops a moment after it exits.
    for _ in 0..20 {
        let Ok(out) = Command::new(&epmd).arg("-names").output() else { return };
        if !String::from_utf8_lossy(&out.stdout).lines().any(|l| l.starts_with("name ")) {
            let _ = Command::new(&epmd).arg("-kill").output();
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("epmd left running: other Erlang nodes still use it");
}

/// Creates `vhost` through the management API and grants `user` everything on it.
pub async fn create_vhost(mgmt_url: &str, user: &str, password: &str, vhost: &str) -> Result<()> {
    let http = reqwest::Client::new();
    http.put(format!("{mgmt_url}/api/vhosts/{vhost}"))
        .basic_auth(user, Some(password))
        .send()
        .await?
        .error_for_status()?;
    http.put(format!("{mgmt_url}/api/permissions/{vhost}/{user}"))
        .basic_auth(user, Some(password))
        .json(&serde_json::json!({"configure": ".*", "write": ".*", "read": ".*"}))
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}
