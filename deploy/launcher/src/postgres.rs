//! A private PostgreSQL cluster: `initdb` + `pg_ctl` on a loopback port, superuser `ferry`
//! with a password: every connection, over TCP or the unix socket, authenticates with
//! scram-sha-256 (issue 15 item 17; `trust` let anyone with a shell on the machine in).
//! initdb refuses to run as root, so as root every server command runs as the `postgres`
//! OS user (`runuser`), which must own, and be able to reach, the data directory.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use nix::unistd::Uid;

use crate::process::{log_tail, pid_alive};

/// The newest installed server binary dir, e.g. `/usr/lib/postgresql/15/bin`.
pub fn bin_dir() -> Result<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL server binaries not found under /usr/lib/postgresql")?
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_str()?.split('.').next()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).context("no initdb under /usr/lib/postgresql/*/bin")
}

/// `program` run as `postgres` when we are root, else as ourselves; from `/`, because
/// initdb and pg_ctl fail when they cannot read the current directory.
fn as_postgres(program: &Path) -> Command {
    let mut cmd = if Uid::effective().is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    };
    cmd.current_dir("/");
    cmd
}

/// Runs `cmd` with its output appended to `log`; the log's tail in the error.
fn run_logged(mut cmd: Command, log: &Path, what: &str) -> Result<()> {
    let out = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    let status = cmd.stdin(Stdio::null()).stdout(out.try_clone()?).stderr(out).status()?;
    if !status.success() {
        bail!("{what} failed ({status}); last lines of {}:\n{}", log.display(), log_tail(log, 30));
    }
    Ok(())
}

/// One PostgreSQL server: data directory, port, log file, password file, extra server
/// options.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Postgres {
    /// The data directory (`initdb -D`).
    pub data: PathBuf,
    /// TCP port on 127.0.0.1.
    pub port: u16,
    /// Where initdb's and the server's output goes.
    pub log: PathBuf,
    /// The superuser `ferry`'s password: the first line of this file (mode 600, made by
    /// the caller before [`Postgres::start`]).
    pub password_file: PathBuf,
    /// Extra server options, e.g. `-c fsync=off`.
    pub options: Vec<String>,
}

impl Postgres {
    /// The OS user owning data directories.
    fn owner() -> Result<nix::unistd::User> {
        let user = if Uid::effective().is_root() {
            nix::unistd::User::from_name("postgres")?
        } else {
            nix::unistd::User::from_uid(Uid::effective())?
        };
        user.context("the OS user for PostgreSQL does not exist")
    }

    /// True when the postgres user can create `dir` (every parent traversable).
    pub fn can_use_dir(dir: &Path) -> Result<bool> {
        let parent = dir.parent().context("no parent")?;
        std::fs::create_dir_all(parent)?;
        let status = as_postgres(Path::new("test")).arg("-x").arg(parent).stderr(Stdio::null()).status()?;
        Ok(status.success())
    }

    /// The superuser's password (first line of [`Postgres::password_file`]).
    pub fn password(&self) -> Result<String> {
        let text = std::fs::read_to_string(&self.password_file)
            .with_context(|| format!("reading {}", self.password_file.display()))?;
        Ok(text.lines().next().unwrap_or_default().trim().to_owned())
    }

    /// `postgres://ferry:PASSWORD@127.0.0.1:PORT/DB` (the password is hex: nothing to
    /// escape).
    pub fn url(&self, db: &str) -> Result<String> {
        Ok(format!("postgres://ferry:{}@127.0.0.1:{}/{db}", self.password()?, self.port))
    }

    /// A client program of the server's (`psql`, `createdb`) as `ferry` over TCP, the
    /// password in its environment (never on a command line, where ps shows it).
    fn client(&self, program: &str) -> Result<Command> {
        let mut cmd = Command::new(bin_dir()?.join(program));
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "ferry"])
            .env("PGPASSWORD", self.password()?)
            .env_remove("PGPASSFILE");
        Ok(cmd)
    }

    /// True when a postmaster serves the data directory.
    pub fn running(&self) -> bool {
        self.pid().is_some()
    }

    /// The postmaster's pid, from `postmaster.pid`, while it runs.
    pub fn pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.data.join("postmaster.pid")).ok()?;
        let pid: i32 = text.lines().next()?.trim().parse().ok()?;
        (pid_alive(pid) && crate::process::cmdline(pid).contains("postgres")).then_some(pid)
    }

    /// initdb if new (superuser `ferry` with the password, scram-sha-256 for every
    /// connection), then starts the server and waits until it accepts connections; a
    /// cluster made by an older version that still trusts local connections is given the
    /// password and made to ask for it. Returns false when it was already running.
    pub fn start(&self) -> Result<bool> {
        if self.running() {
            self.require_password()?;
            return Ok(false);
        }
        let bin = bin_dir()?;
        if let Some(dir) = self.log.parent() {
            std::fs::create_dir_all(dir)?;
        }
        if !self.data.join("PG_VERSION").exists() {
            use std::os::unix::fs::PermissionsExt;
            std::fs::create_dir_all(&self.data)?;
            std::fs::set_permissions(&self.data, std::fs::Permissions::from_mode(0o700))?;
            let owner = Self::owner()?;
            nix::unistd::chown(&self.data, Some(owner.uid), Some(owner.gid))?;
            // initdb reads the password from a file the postgres user can read: a copy of
            // ours (mode 600, owned by it) beside the data dir, removed at once.
            let pwfile = self.data.with_extension("pwfile");
            {
                use std::os::unix::fs::OpenOptionsExt;
                let mut out =
                    std::fs::OpenOptions::new().create(true).write(true).truncate(true).mode(0o600).open(&pwfile)?;
                writeln!(out, "{}", self.password()?)?;
            }
            nix::unistd::chown(&pwfile, Some(owner.uid), Some(owner.gid))?;
            let mut initdb = as_postgres(&bin.join("initdb"));
            initdb
                .arg("-D")
                .arg(&self.data)
                .args(["-A", "scram-sha-256"])
                .arg(format!("--pwfile={}", pwfile.display()));
            initdb.args(["-U", "ferry", "-E", "UTF8", "--locale=C"]);
            let made = run_logged(initdb, &self.log, "initdb");
            let _ = std::fs::remove_file(&pwfile);
            made?;
        }
        // The unix socket goes in the data dir unless that path is too long for sun_path
        // (108 bytes); then TCP only.
        let data = self.data.display().to_string();
        let sockdir = if data.len() < 90 { data.as_str() } else { "" };
        let mut ctl = as_postgres(&bin.join("pg_ctl"));
        ctl.arg("-D").arg(&self.data).args(["-w", "-t", "60", "-o"]);
        ctl.arg(format!("-p {} -k '{sockdir}' -c listen_addresses=127.0.0.1 {}", self.port, self.options.join(" ")));
        ctl.arg("start");
        run_logged(ctl, &self.log, &format!("starting PostgreSQL on port {}", self.port))?;
        self.require_password()?;
        Ok(true)
    }

    /// For a running cluster whose pg_hba.conf still trusts connections (`initdb -A
    /// trust`, before issue 15 item 17): gives `ferry` the password, makes every trust
    /// rule scram-sha-256 and reloads. A no-op for a cluster that asks for passwords.
    fn require_password(&self) -> Result<()> {
        let hba_path = self.data.join("pg_hba.conf");
        // As root the file is the postgres user's (mode 600), readable by root all the same.
        let hba = std::fs::read_to_string(&hba_path).with_context(|| format!("reading {}", hba_path.display()))?;
        let trusts = |line: &str| {
            let rule = line.split('#').next().unwrap_or_default();
            let words: Vec<&str> = rule.split_whitespace().collect();
            matches!(words.first(), Some(&"local" | &"host")) && words.last() == Some(&"trust")
        };
        if !hba.lines().any(trusts) {
            return Ok(());
        }
        crate::dev::log(&format!(
            "postgres: {} trusted local connections; setting the password and requiring it",
            self.data.display()
        ));
        // The statement goes through stdin, never a command line (ps would show it).
        let mut psql = self.client("psql")?;
        psql.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres"]).env_remove("PGPASSWORD");
        let mut child = psql.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            writeln!(stdin, "ALTER ROLE ferry PASSWORD '{}';", self.password()?)?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!("could not set the password of the PostgreSQL role ferry: {}", String::from_utf8_lossy(&out.stderr));
        }
        let fixed: String = hba
            .lines()
            .map(|line| {
                if trusts(line) {
                    format!("{}scram-sha-256\n", line.trim_end().strip_suffix("trust").unwrap_or(line))
                } else {
                    format!("{line}\n")
                }
            })
            .collect();
        // Written in place: the file keeps its owner and mode.
        std::fs::write(&hba_path, fixed)?;
        let mut reload = as_postgres(&bin_dir()?.join("pg_ctl"));
        reload.arg("-D").arg(&self.data).arg("reload").stdout(Stdio::null());
        if !reload.status()?.success() {
            bail!("pg_ctl reload failed for {}", self.data.display());
        }
        Ok(())
    }

    /// Fast shutdown (open transactions aborted, clean checkpoint); immediate as the
    /// fallback. Returns false when it was not running.
    pub fn stop(&self) -> Result<bool> {
        if !self.running() {
            return Ok(false);
        }
        let ctl = bin_dir()?.join("pg_ctl");
        let stop = |mode: &str, secs: &str| {
            as_postgres(&ctl)
                .arg("-D")
                .arg(&self.data)
                .args(["-m", mode, "-w", "-t", secs, "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !stop("fast", "30") {
            eprintln!("WARNING: pg_ctl stop failed; stopping the postmaster immediately");
            stop("immediate", "10");
        }
        Ok(true)
    }

    /// Fast shutdown, then start with the same options; returns once it accepts
    /// connections again (the fault suite's "restart PostgreSQL").
    pub fn restart(&self) -> Result<()> {
        let mut ctl = as_postgres(&bin_dir()?.join("pg_ctl"));
        ctl.arg("-D").arg(&self.data).args(["-m", "fast", "-w", "-t", "60", "-l"]);
        ctl.arg(self.data.join("restart.log")).arg("restart");
        let status = ctl.stdout(Stdio::null()).status()?;
        if !status.success() {
            bail!("pg_ctl restart failed ({status}); see {}", self.data.join("restart.log").display());
        }
        Ok(())
    }

    /// Creates database `name` (owner ferry) unless it exists. `name` must be an SQL
    /// identifier of lower-case letters, digits and `_`.
    pub fn ensure_database(&self, name: &str) -> Result<bool> {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
            bail!("database name {name:?} is not a plain identifier");
        }
        let out = self
            .client("psql")?
            .args(["-X", "-q", "-t", "-A", "-d", "postgres", "-c"])
            .arg(format!("SELECT 1 FROM pg_database WHERE datname = '{name}'"))
            .output()?;
        if !out.status.success() {
            bail!("psql: {}", String::from_utf8_lossy(&out.stderr));
        }
        if String::from_utf8_lossy(&out.stdout).trim() == "1" {
            return Ok(false);
        }
        let out = self.client("createdb")?.args(["-O", "ferry", name]).output()?;
        if !out.status.success() {
            bail!("createdb {name}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(true)
    }
}
