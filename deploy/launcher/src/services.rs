//! The run-wide PostgreSQL and RabbitMQ of `deploy/dev test`: ONE throw-away server of
//! each on free loopback ports for the whole `cargo test` run (the harness makes a database
//! and a vhost per test). Described by `DIR/services.json`; the tests find it through
//! `FERRY_TEST_SERVICES=DIR`, which `ferry-dev services wait` prints.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use nix::sys::signal::Signal;

use crate::postgres::Postgres;
use crate::rabbitmq::RabbitMq;

/// The environment variable naming a services dir.
pub const ENV: &str = "FERRY_TEST_SERVICES";
/// The RabbitMQ administrator the harness uses (it creates a vhost per test through the
/// management API, which needs an administrator).
const AMQP_USER: &str = "ferry";
const AMQP_PASSWORD: &str = "ferry";

/// The test run's servers and where the binaries under test are.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Services {
    /// Everything lives below (mode 711: the postgres user must reach its data dir).
    pub dir: PathBuf,
    /// The ferry-* binaries the tests run.
    pub bin_dir: PathBuf,
    /// The run's PostgreSQL (fsync off: durability is pointless for a throw-away cluster).
    pub postgres: Postgres,
    /// The run's RabbitMQ.
    pub rabbitmq: RabbitMq,
}

impl Services {
    fn file(dir: &Path) -> PathBuf {
        dir.join("services.json")
    }

    /// Starts PostgreSQL (waited for) and launches RabbitMQ (not waited for; see
    /// [`Services::wait`]) on free ports in `dir`, and writes `services.json`.
    pub fn start(dir: &Path, bin_dir: &Path) -> Result<Services> {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::path::absolute(dir)?;
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711))?;
        let mut taken = Vec::new();
        for _ in 0..4 {
            taken.push(crate::free_port(&taken)?);
        }
        let services = Services {
            bin_dir: std::path::absolute(bin_dir)?,
            postgres: Postgres {
                data: dir.join("postgres"),
                port: taken[0],
                log: dir.join("logs/postgres.log"),
                // Password auth as the dev cluster's (scram-sha-256, a password of the
                // run's own): it::hostile checks that a connection without it is refused.
                password_file: dir.join("postgres_password"),
                // Many tests open pools at once.
                options: ["fsync=off", "synchronous_commit=off", "full_page_writes=off", "max_connections=300"]
                    .iter()
                    .map(|o| format!("-c {o}"))
                    .collect(),
            },
            rabbitmq: RabbitMq {
                dir: dir.join("rabbitmq"),
                node: format!("ferry-test-{}@localhost", std::process::id()),
                amqp_port: taken[1],
                mgmt_port: taken[2],
                dist_port: taken[3],
                log: dir.join("logs/rabbitmq.log"),
                pid_file: dir.join("run/rabbitmq.pid"),
            },
            dir,
        };
        crate::dev::write_secret(&services.postgres.password_file, 16)?;
        std::fs::write(Self::file(&services.dir), serde_json::to_vec_pretty(&services)?)?;
        services.rabbitmq.start()?;
        services.postgres.start()?;
        Ok(services)
    }

    /// Reads `DIR/services.json`.
    pub fn load(dir: &Path) -> Result<Services> {
        let file = Self::file(dir);
        let text = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        Ok(serde_json::from_slice(&text)?)
    }

    /// The services named by `FERRY_TEST_SERVICES`.
    pub fn from_env() -> Result<Services> {
        let dir =
            std::env::var_os(ENV).with_context(|| format!("{ENV} is not set: run the suite with `deploy/dev test`"))?;
        Self::load(Path::new(&dir))
    }

    /// Waits for RabbitMQ and makes the harness's administrator.
    pub async fn wait(&self) -> Result<()> {
        self.rabbitmq.wait(Duration::from_secs(120)).await?;
        self.rabbitmq.admin_user(AMQP_USER, AMQP_PASSWORD)
    }

    /// The `postgres` database's URL, password included (the harness creates one
    /// database per test).
    pub fn pg_url(&self) -> Result<String> {
        self.postgres.url("postgres")
    }

    /// `amqp://USER:PASSWORD@127.0.0.1:PORT` (a vhost is appended per test).
    pub fn amqp_url(&self) -> String {
        format!("amqp://{AMQP_USER}:{AMQP_PASSWORD}@127.0.0.1:{}", self.rabbitmq.amqp_port)
    }

    /// The management API's user and password.
    pub fn amqp_credentials(&self) -> (&'static str, &'static str) {
        (AMQP_USER, AMQP_PASSWORD)
    }

    /// Where test clusters put their directories: below the services dir, so `stop` finds
    /// their strays, unless `FERRY_TEST_KEEP` asks to keep them (then the temp dir).
    pub fn clusters_dir(&self) -> PathBuf {
        if std::env::var_os("FERRY_TEST_KEEP").is_some() {
            std::env::temp_dir()
        } else {
            self.dir.join("clusters")
        }
    }

    /// Stops both servers (RabbitMQ killed: it is thrown away) and any process whose
    /// command line names the services dir (e.g. an sshd a crashed test left behind);
    /// moves the dirs of failed test clusters (a passing test deletes its own) to the temp
    /// dir, where they stay for a look; then deletes the services dir.
    pub fn stop(&self) -> Result<()> {
        self.rabbitmq.stop(true)?;
        self.postgres.stop()?;
        let needle = format!("{}/", self.dir.display());
        for pid in crate::process::pids_mentioning(&needle) {
            eprintln!("stopping stray process {pid}: {}", crate::process::cmdline(pid));
            crate::process::stop_pid(pid, Signal::SIGTERM, Duration::from_secs(5));
        }
        if let Ok(entries) = std::fs::read_dir(self.dir.join("clusters")) {
            for entry in entries.flatten() {
                let kept = std::env::temp_dir().join(entry.file_name());
                if std::fs::rename(entry.path(), &kept).is_ok() {
                    eprintln!("kept the dir of a failed test: {}", kept.display());
                }
            }
        }
        std::fs::remove_dir_all(&self.dir).with_context(|| format!("deleting {}", self.dir.display()))
    }
}
