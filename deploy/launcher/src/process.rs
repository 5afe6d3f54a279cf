//! Processes the launcher starts. Each has a name, a log file `LOG_DIR/NAME.log` and a pid
//! file `RUN_DIR/NAME.pid`, so a later `ferry-dev` invocation finds it again; a pid counts
//! only while its process runs, is no zombie and its command line still names the program
//! (a stale pid file whose pid was reused by something else is ignored).

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// True while `pid` runs. A zombie counts as gone: PID 1 of a container may take its time
/// to reap the daemons re-parented to it.
pub fn pid_alive(pid: i32) -> bool {
    if kill(Pid::from_raw(pid), None).is_err() {
        return false;
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let state = status.lines().find_map(|l| l.strip_prefix("State:")).map(str::trim).unwrap_or("");
    !state.is_empty() && !state.starts_with('Z')
}

/// `/proc/PID/cmdline` with NULs turned into spaces (empty when unreadable).
pub fn cmdline(pid: i32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&raw).replace('\0', " ")
}

/// The pid recorded in `file` (first word) if that process is alive and its command line
/// contains `pattern`.
pub fn pid_from_file(file: &Path, pattern: &str) -> Option<i32> {
    let text = std::fs::read_to_string(file).ok()?;
    let pid: i32 = text.split_whitespace().next()?.parse().ok()?;
    (pid > 0 && pid_alive(pid) && cmdline(pid).contains(pattern)).then_some(pid)
}

/// Sends `signal` to `pid` and waits up to `deadline` for it to be gone; SIGKILL after
/// that. True when it went without the SIGKILL.
pub fn stop_pid(pid: i32, signal: Signal, deadline: Duration) -> bool {
    let _ = kill(Pid::from_raw(pid), signal);
    let until = Instant::now() + deadline;
    while Instant::now() < until {
        if !pid_alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    false
}

/// How a [`Procs::stop`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// It was not running.
    NotRunning,
    /// It exited within the deadline; the exit code when the launcher is its parent and it
    /// exited normally (`None` for a signal, or a process started by another invocation).
    Exited(Option<i32>),
    /// It was still running at the deadline and got SIGKILL.
    Killed,
}

/// What [`Procs::spawn`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spawned {
    /// Started now, with this pid.
    Started(i32),
    /// Already running (pid file alive), left alone.
    AlreadyRunning(i32),
}

/// The processes of one cluster: pid files in `run_dir`, logs in `log_dir`.
///
/// `detached` processes (the dev cluster) run in their own session (`setsid`), outlive the
/// launcher and are found again through their pid files. Otherwise (tests) the launcher is
/// their parent, reaps them, and kills whatever still runs when the `Procs` is dropped.
pub struct Procs {
    run_dir: PathBuf,
    log_dir: PathBuf,
    detached: bool,
    children: HashMap<String, (Child, String)>,
}

impl Procs {
    /// Creates `run_dir` and `log_dir` if missing.
    pub fn new(run_dir: PathBuf, log_dir: PathBuf, detached: bool) -> Result<Procs> {
        std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
        std::fs::create_dir_all(&log_dir).with_context(|| format!("creating {}", log_dir.display()))?;
        Ok(Procs { run_dir, log_dir, detached, children: HashMap::new() })
    }

    /// `LOG_DIR/NAME.log`.
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.log_dir.join(format!("{name}.log"))
    }

    /// `RUN_DIR/NAME.pid`.
    pub fn pid_path(&self, name: &str) -> PathBuf {
        self.run_dir.join(format!("{name}.pid"))
    }

    /// The pid of `name` while it runs and its command line contains `pattern`. A child
    /// of this `Procs` whose command line reads empty is inside `execve` (see
    /// [`Procs::exited`]) and counts as running.
    pub fn pid(&self, name: &str, pattern: &str) -> Option<i32> {
        match self.children.get(name) {
            Some((child, _)) => {
                let pid = i32::try_from(child.id()).ok()?;
                let line = cmdline(pid);
                (pid_alive(pid) && (line.is_empty() || line.contains(pattern))).then_some(pid)
            }
            None => pid_from_file(&self.pid_path(name), pattern),
        }
    }

    /// Starts `cmd` as `name` (stdin /dev/null, stdout and stderr appended to its log)
    /// unless a process `name` whose command line contains `pattern` already runs.
    pub fn spawn(&mut self, name: &str, pattern: &str, cmd: Command) -> Result<Spawned> {
        self.reap();
        if let Some(pid) = self.pid(name, pattern) {
            return Ok(Spawned::AlreadyRunning(pid));
        }
        let log = self.log_path(name);
        let mut out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("opening {}", log.display()))?;
        writeln!(out, "\n=== {}: starting {name} ===", now_text())?;
        let err = out.try_clone()?;
        // Without a process-group leader in between, setsid execs in place: the pid is the
        // service's own.
        let mut cmd = if self.detached {
            let mut wrapped = Command::new("setsid");
            wrapped.arg(cmd.get_program()).args(cmd.get_args());
            for (key, value) in cmd.get_envs() {
                match value {
                    Some(value) => wrapped.env(key, value),
                    None => wrapped.env_remove(key),
                };
            }
            if let Some(dir) = cmd.get_current_dir() {
                wrapped.current_dir(dir);
            }
            wrapped
        } else {
            cmd
        };
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd.spawn().with_context(|| format!("starting {name}: {cmd:?}"))?;
        let pid = i32::try_from(child.id()).context("pid out of range")?;
        std::fs::write(self.pid_path(name), format!("{pid}\n"))?;
        if !self.detached {
            self.children.insert(name.to_owned(), (child, pattern.to_owned()));
        }
        Ok(Spawned::Started(pid))
    }

    /// Collects the exit status of children that have ended (so they are no zombies).
    fn reap(&mut self) {
        for (child, _) in self.children.values_mut() {
            let _ = child.try_wait();
        }
    }

    /// True while `name` runs.
    pub fn running(&mut self, name: &str, pattern: &str) -> bool {
        !self.exited(name, pattern)
    }

    /// True once `name` has ended (or was never started).
    ///
    /// For a child of this `Procs` the answer is its exit status: its pid cannot be
    /// reused before it is reaped, while its command line reads empty for a moment inside
    /// `execve` (between the new address space and its arguments), long enough on a busy
    /// machine for a [`pid_from_file`] match to miss a process that runs. For a process
    /// another invocation started, its pid file no longer names a live `pattern` process.
    pub fn exited(&mut self, name: &str, pattern: &str) -> bool {
        match self.children.get_mut(name) {
            Some((child, _)) => !matches!(child.try_wait(), Ok(None)),
            None => self.pid(name, pattern).is_none(),
        }
    }

    /// Sends `signal` to `name`, waits up to `deadline` for its exit, then SIGKILLs it.
    pub fn stop(&mut self, name: &str, pattern: &str, signal: Signal, deadline: Duration) -> Result<Stopped> {
        let pid_file = self.pid_path(name);
        let result = if let Some((mut child, _)) = self.children.remove(name) {
            if child.try_wait()?.is_none() {
                let pid = Pid::from_raw(i32::try_from(child.id()).context("pid out of range")?);
                let _ = kill(pid, signal);
                let until = Instant::now() + deadline;
                loop {
                    if let Some(status) = child.try_wait()? {
                        break Stopped::Exited(status.code());
                    }
                    if Instant::now() >= until {
                        let _ = child.kill();
                        let _ = child.wait();
                        break Stopped::Killed;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            } else {
                Stopped::NotRunning
            }
        } else if let Some(pid) = self.pid(name, pattern) {
            if stop_pid(pid, signal, deadline) {
                Stopped::Exited(None)
            } else {
                Stopped::Killed
            }
        } else {
            Stopped::NotRunning
        };
        let _ = std::fs::remove_file(pid_file);
        Ok(result)
    }

    /// SIGKILL to `name`, reaped at once.
    pub fn kill(&mut self, name: &str, pattern: &str) {
        let _ = self.stop(name, pattern, Signal::SIGKILL, Duration::from_secs(5));
    }

    /// The last `lines` lines of `name`'s log.
    pub fn log_tail(&self, name: &str, lines: usize) -> String {
        log_tail(&self.log_path(name), lines)
    }

    /// How child `name` ended ("exit status: 1", "signal: 15 (SIGTERM)"), once it has;
    /// `None` while it runs, and for a process this `Procs` is not the parent of.
    pub fn exit_status(&mut self, name: &str) -> Option<std::process::ExitStatus> {
        self.children.get_mut(name).and_then(|(child, _)| child.try_wait().ok().flatten())
    }

    /// Names of the children this `Procs` started and that still run (not for detached).
    pub fn children(&mut self) -> Vec<String> {
        let mut names: Vec<String> = self
            .children
            .iter_mut()
            .filter_map(|(name, (child, _))| matches!(child.try_wait(), Ok(None)).then(|| name.clone()))
            .collect();
        names.sort();
        names
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for (_, (mut child, _)) in self.children.drain() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The last `lines` lines of the file at `path` (empty when unreadable).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The time now, RFC 3339 in UTC, for log headers.
fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Processes whose command line contains `needle` (never this process), for sweeping up
/// strays a crashed test left behind.
pub fn pids_mentioning(needle: &str) -> Vec<i32> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| u32::try_from(pid).ok() != Some(me) && cmdline(pid).contains(needle))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child is judged by its exit status, never by its command line: inside `execve`
    /// the command line reads empty for a moment, and a busy machine (CI) once caught it
    /// there and took a starting API for one that had exited. The pattern here never
    /// matches, so only the exit status can say the child runs.
    #[test]
    fn a_child_runs_until_it_exits_whatever_its_command_line_reads() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let mut procs = Procs::new(dir.path().join("run"), dir.path().join("log"), false)?;
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let Spawned::Started(pid) = procs.spawn("sleeper", "no-such-program", cmd)? else {
            anyhow::bail!("sleeper was already running");
        };
        assert!(procs.running("sleeper", "no-such-program"));
        assert!(!procs.exited("sleeper", "no-such-program"));
        assert_eq!(procs.children(), ["sleeper"]);
        assert_eq!(procs.exit_status("sleeper"), None);

        kill(Pid::from_raw(pid), Signal::SIGTERM)?;
        let until = Instant::now() + Duration::from_secs(10);
        while !procs.exited("sleeper", "no-such-program") && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(procs.exited("sleeper", "no-such-program"));
        assert!(!procs.running("sleeper", "no-such-program"));
        assert!(procs.children().is_empty());
        assert_eq!(procs.exit_status("sleeper").map(|s| s.to_string()).as_deref(), Some("signal: 15 (SIGTERM)"));
        // A name this `Procs` never started is judged by its pid file: none, so not running.
        assert!(procs.exited("stranger", "sleep"));
        Ok(())
    }
}
