//! Talking to storage nodes: one multiplexed SSH master connection per node (the
//! `openssh` crate, native mux: a remote command is a new channel over the master's
//! control socket, with no local process), remote commands from
//! `ferry_node_commands` (the same definitions the node's forced command parses), and
//! rsync pushes that ride the same master with `-e "ssh -S <control socket>"`.
//!
//! Host keys are pinned: `StrictHostKeyChecking=yes` against our own known_hosts file,
//! in an ssh config file of our own (`<control dir>/ssh_config`, passed with `-F`) that
//! the master and rsync's ssh both read. A master that died (node restarted, idle
//! timeout) is noticed by `check` before use and replaced.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_node_commands::{rsync, Command, NodeRoot};
use ferry_shared::config::WorkerConfig;
use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder};
use uuid::Uuid;

/// Where and as whom to reach a node.
#[derive(Debug, Clone)]
pub struct NodeAddr {
    pub host: String,
    pub port: i32,
    pub user: String,
    pub root: String,
}

impl NodeAddr {
    /// The node's storage root, checked.
    fn node_root(&self) -> Result<NodeRoot, SshError> {
        NodeRoot::new(&self.root).map_err(|e| SshError::Config(e.to_string()))
    }

    fn key(&self) -> (String, i32, String) {
        (self.host.clone(), self.port, self.user.clone())
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum SshError {
    #[error("could not start {program}: {reason}")]
    Spawn { program: &'static str, reason: String },
    #[error("{program} exited with {code:?}: {stderr}")]
    Failed { program: &'static str, code: Option<i32>, stderr: String },
    #[error("{program} timed out after {secs} s")]
    Timeout { program: &'static str, secs: u64 },
    #[error("ssh connection to {node}: {reason}")]
    Connect { node: String, reason: String },
    /// The node's row cannot be used as it is (e.g. a relative root path).
    #[error("{0}")]
    Config(String),
}

impl SshError {
    /// rsync's own exit codes 1-4 are usage/protocol errors that retrying will not
    /// fix, and so is a node row that cannot be used; everything else (5, 10, 12, 23,
    /// 30, 35, 255 = ssh, 11 = often a full disk, connection failures) may pass.
    pub fn is_permanent(&self) -> bool {
        matches!(self, SshError::Failed { program: "rsync", code: Some(1..=4), .. } | SshError::Config(_))
    }
}

/// One file of a push: its source (the staging copy, or one restored from a node) and
/// the digests verified at completion (lowercase hex).
#[derive(Debug, Clone)]
pub struct PushFile {
    pub id: Uuid,
    pub source: PathBuf,
    pub md5: String,
    pub sha256: String,
}

/// What a push did for one file.
#[derive(Debug, Clone)]
pub enum Pushed {
    /// The node holds the upload's bytes: the source's sha256 is the upload's and the
    /// copy's transfer checksum is the source's.
    Verified,
    /// The copy is not the upload's bytes (`reason` says which check failed): the
    /// source no longer holds them, or rsync sent other bytes than it holds. The copy
    /// on the node must go.
    Differs { reason: String },
    /// Not copied (or not provably); worth a retry unless permanent.
    NotCopied(SshError),
}

/// Per-node master connections.
type Slot = Arc<tokio::sync::Mutex<Option<Arc<Session>>>>;

/// Sessions (channels) open at once over one node's master, from one worker: below
/// sshd's default `MaxSessions` (10), past which sshd refuses a channel and the job
/// would fail and back off.
pub const MAX_CHANNELS_PER_NODE: usize = 8;

pub struct Ssh {
    config_file: PathBuf,
    config_text: String,
    control_dir: PathBuf,
    rsync_timeout_secs: u64,
    sessions: Mutex<HashMap<(String, i32, String), Slot>>,
    channels: Mutex<HashMap<(String, i32, String), Arc<tokio::sync::Semaphore>>>,
}

impl Ssh {
    /// Creates the control directory (0700) and writes the ssh config file into it.
    pub fn new(config: &WorkerConfig) -> std::io::Result<Ssh> {
        let mut text = format!(
            "# Written by ferry-worker at start; every ssh it runs reads only this file (-F).\n\
             BatchMode yes\nIdentitiesOnly yes\nIdentityFile \"{}\"\nStrictHostKeyChecking yes\n\
             UserKnownHostsFile \"{}\"\nConnectTimeout 10\nServerAliveInterval 10\nServerAliveCountMax 3\n",
            config.ssh_key.display(),
            config.ssh_known_hosts.display()
        );
        if !config.ssh_cipher.is_empty() {
            text.push_str(&format!("Ciphers {}\n", config.ssh_cipher));
        }
        let ssh = Ssh {
            config_file: config.ssh_control_dir.join("ssh_config"),
            config_text: text,
            control_dir: config.ssh_control_dir.clone(),
            rsync_timeout_secs: config.rsync_timeout_secs,
            sessions: Mutex::new(HashMap::new()),
            channels: Mutex::new(HashMap::new()),
        };
        std::fs::create_dir_all(&ssh.control_dir)?;
        ssh.ensure_files()?;
        Ok(ssh)
    }

    /// The control directory (0700) and the config file in it, re-created if
    /// something removed them (a tmp cleaner), or every new master would fail.
    fn ensure_files(&self) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        if !self.control_dir.is_dir() {
            std::fs::create_dir_all(&self.control_dir)?;
        }
        std::fs::set_permissions(&self.control_dir, std::fs::Permissions::from_mode(0o700))?;
        if !self.config_file.is_file() {
            std::fs::write(&self.config_file, &self.config_text)?;
        }
        Ok(())
    }

    /// A permit for one channel over `node`'s master ([`MAX_CHANNELS_PER_NODE`]).
    async fn channel(&self, node: &NodeAddr) -> Result<tokio::sync::OwnedSemaphorePermit, SshError> {
        let semaphore = {
            let mut channels = self.channels.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            channels
                .entry(node.key())
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(MAX_CHANNELS_PER_NODE)))
                .clone()
        };
        semaphore.acquire_owned().await.map_err(|_| SshError::Config("channel limit closed".into()))
    }

    /// The live master connection to `node`, made (once, however many callers ask at
    /// once) if there is none or the last one died.
    async fn session(&self, node: &NodeAddr) -> Result<Arc<Session>, SshError> {
        let slot = {
            let mut sessions = self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            sessions.entry(node.key()).or_default().clone()
        };
        let current = slot.lock().await.clone();
        if let Some(session) = &current {
            if session.check().await.is_ok() {
                return Ok(session.clone());
            }
        }
        let mut guard = slot.lock().await;
        match (&*guard, &current) {
            // Someone replaced the dead master while we checked it.
            (Some(now), Some(dead)) if !Arc::ptr_eq(now, dead) => return Ok(now.clone()),
            (Some(now), None) => return Ok(now.clone()),
            _ => {}
        }
        let connect = |reason: String| SshError::Connect { node: format!("{}:{}", node.host, node.port), reason };
        self.ensure_files()
            .map_err(|e| connect(format!("ssh control directory {}: {e}", self.control_dir.display())))?;
        let port = u16::try_from(node.port)
            .map_err(|_| SshError::Config(format!("ssh port {} is out of range", node.port)))?;
        let mut builder = SessionBuilder::default();
        builder
            .config_file(&self.config_file)
            .user(node.user.clone())
            .port(port)
            .known_hosts_check(KnownHosts::Strict)
            .control_directory(&self.control_dir)
            .connect_timeout(Duration::from_secs(10))
            .server_alive_interval(Duration::from_secs(10))
            // A master whose worker was killed goes away by itself.
            .control_persist(ControlPersist::IdleFor(std::num::NonZeroUsize::MIN.saturating_add(59)));
        // ConnectTimeout bounds the TCP connect and handshake; this bounds the rest (a
        // node that accepts and then hangs), so a stuck node never holds its slot.
        let session = tokio::time::timeout(Duration::from_secs(30), builder.connect_mux(&node.host))
            .await
            .map_err(|_| connect("no master connection within 30 s".into()))?
            .map_err(|e| connect(error_chain(&e)))?;
        let session = Arc::new(session);
        *guard = Some(session.clone());
        tracing::debug!(node.host = %node.host, node.port = node.port, "ssh master connected");
        Ok(session)
    }

    /// Runs `command` on `node` over its master connection; its stdout.
    ///
    /// # Errors
    /// `Failed { program: "ssh", code }` with the remote exit code (126: the node's
    /// gate refused it), `Connect` or `Timeout` when the node is unreachable.
    pub async fn run(&self, node: &NodeAddr, command: &Command) -> Result<String, SshError> {
        let (code, stdout, stderr) = self.run_output(node, command).await?;
        if code == Some(0) {
            return Ok(stdout);
        }
        Err(SshError::Failed { program: "ssh", code, stderr })
    }

    /// Runs `command` on `node`: its exit code, stdout and the tail of its stderr.
    async fn run_output(&self, node: &NodeAddr, command: &Command) -> Result<(Option<i32>, String, String), SshError> {
        let line = command.command_line(&node.node_root()?);
        let _channel = self.channel(node).await?;
        let session = self.session(node).await?;
        let limit = Duration::from_secs(self.rsync_timeout_secs.max(30));
        let output = tokio::time::timeout(
            limit,
            session
                .raw_command(&line)
                .stdin(openssh::Stdio::null())
                .stdout(openssh::Stdio::piped())
                .stderr(openssh::Stdio::piped())
                .output(),
        )
        .await
        .map_err(|_| SshError::Timeout { program: "ssh", secs: limit.as_secs() })?
        .map_err(|e| SshError::Connect { node: format!("{}:{}", node.host, node.port), reason: error_chain(&e) })?;
        Ok((output.status.code(), String::from_utf8_lossy(&output.stdout).into_owned(), tail(&output.stderr)))
    }

    /// md5 of each of `files` on `node` that could be read (an unreadable or missing
    /// file is absent from the map).
    pub async fn remote_md5s(&self, node: &NodeAddr, files: &[Uuid]) -> Result<HashMap<Uuid, String>, SshError> {
        let root = node.node_root()?;
        let (code, out, stderr) = self.run_output(node, &Command::Md5Sum(files.to_vec())).await?;
        // md5sum's 1: some file was unreadable; the others are still listed.
        if !matches!(code, Some(0 | 1)) {
            return Err(SshError::Failed { program: "ssh", code, stderr });
        }
        Ok(out
            .lines()
            .filter_map(|line| {
                let (sum, path) = line.split_once("  ")?;
                Some((root.parse_file(path, "").ok()?, sum.to_ascii_lowercase()))
            })
            .collect())
    }

    /// sha256 of `file` on `node`, computed on the node.
    pub async fn remote_sha256(&self, node: &NodeAddr, file: Uuid) -> Result<String, SshError> {
        let out = self.run(node, &Command::Sha256Sum(file)).await?;
        Ok(out.split_whitespace().next().unwrap_or_default().to_owned())
    }

    /// Removes `file` on `node`; a missing file is success.
    pub async fn remove(&self, node: &NodeAddr, file: Uuid) -> Result<(), SshError> {
        self.run(node, &Command::Remove(file)).await.map(|_| ())
    }

    /// Copies `files` to `node` in ONE rsync session over the node's master
    /// connection and says, per file, whether the copy is verified.
    ///
    /// The files are hard-linked as `<xx>/<id>` into a scratch directory beside the
    /// staging copies (same filesystem, no bytes copied) and listed for
    /// `--files-from`; rsync writes each to a temp name on the node and renames it into
    /// place, so a half-copied file is never at its final name.
    ///
    /// Verified means the copy is the client's bytes, in two links: while rsync runs
    /// the worker reads each source once for its sha256, which must be the upload's
    /// (recorded at completion), and its XXH3-128; the sum rsync prints per file is its
    /// whole-file transfer checksum ([`rsync::TRANSFER_CHECKSUM`], XXH3-128 of what the
    /// sender read), which the receiver checked its rebuilt file against, and which
    /// must equal the worker's. (rsync's md5 in both places cost each copy two md5
    /// passes, both ends, against one sha256 pass per push here.) When rsync reports a
    /// partial transfer (exit 23/24) a printed sum does not prove the receiver kept
    /// the file, so those copies are re-read on the node with one `md5sum` against the
    /// upload's md5. Durable before verified: the receiver fsyncs each file before its
    /// rename (`--fsync`) and the node's gate fsyncs the shard directories the push
    /// changed before it exits (rsync exits with the gate's 125 when that failed, and
    /// every copy of the push is then reported not copied).
    pub async fn push(&self, node: &NodeAddr, scratch_parent: &Path, files: &[PushFile]) -> Vec<Pushed> {
        match self.push_inner(node, scratch_parent, files).await {
            Ok(outcomes) => outcomes,
            Err(error) => files.iter().map(|_| Pushed::NotCopied(error.clone())).collect(),
        }
    }

    async fn push_inner(
        &self,
        node: &NodeAddr,
        scratch_parent: &Path,
        files: &[PushFile],
    ) -> Result<Vec<Pushed>, SshError> {
        let root = node.node_root()?;
        let scratch = Scratch::new(scratch_parent).map_err(|e| io_error("push scratch dir", &e))?;
        let mut outcomes: Vec<Option<Pushed>> = vec![None; files.len()];
        let mut list = Vec::new();
        for (i, file) in files.iter().enumerate() {
            let rel = ferry_node_commands::root::relpath(file.id);
            match scratch.link(&file.source, &rel) {
                Ok(()) => {
                    list.extend_from_slice(rel.as_bytes());
                    list.push(0);
                }
                Err(e) => outcomes[i] = Some(Pushed::NotCopied(io_error("staging copy", &e))),
            }
        }
        if list.is_empty() {
            return Ok(outcomes.into_iter().map(|o| o.unwrap_or_else(unreachable_not_copied)).collect());
        }
        // Inside the source directory, but not in the list, so never sent.
        let files_from = scratch.dir.join(".files-from");
        std::fs::write(&files_from, &list).map_err(|e| io_error("file list", &e))?;

        // The worker's read of the sources runs beside rsync's (one more reader of the
        // same pages; the hashing is the worker's CPU, the transfer rsync's and ssh's).
        let sources: Vec<Option<PathBuf>> =
            files.iter().zip(&outcomes).map(|(f, o)| o.is_none().then(|| f.source.clone())).collect();
        let digests = tokio::task::spawn_blocking(move || {
            sources.into_iter().map(|source| source.map(|path| SourceDigests::read(&path))).collect::<Vec<_>>()
        });

        let channel = self.channel(node).await?;
        let session = self.session(node).await?;
        let shell = format!(
            "ssh -F {} -S {} -o ControlMaster=no -p {} -l {}",
            self.config_file.display(),
            session.control_socket().display(),
            node.port,
            node.user
        );
        let mut cmd = tokio::process::Command::new("rsync");
        cmd.args(rsync::push_args(self.rsync_timeout_secs, &files_from))
            .arg("-e")
            .arg(shell)
            .arg(format!("{}/", scratch.dir.display()))
            .arg(format!("{}@{}:{}/", node.user, node.host, root.as_str()));
        // Whole-session bound on top of rsync's I/O timeout.
        let limit = Duration::from_secs(self.rsync_timeout_secs.saturating_mul(30).max(60));
        let (code, stdout, stderr) = run_process("rsync", cmd, limit).await?;
        drop(channel);
        let digests = digests.await.map_err(|e| SshError::Config(format!("hashing the sources: {e}")))?;
        let sent: HashMap<&str, String> = rsync::transfer_lines(&stdout).collect();
        let partial = matches!(code, Some(23 | 24));
        if code != Some(0) && !partial {
            return Err(SshError::Failed { program: "rsync", code, stderr });
        }
        let mut recheck = Vec::new();
        for (i, file) in files.iter().enumerate() {
            if outcomes[i].is_some() {
                continue;
            }
            let source = match &digests[i] {
                Some(Ok(source)) => source,
                Some(Err(e)) => {
                    outcomes[i] = Some(Pushed::NotCopied(io_error("reading the source", e)));
                    continue;
                }
                None => {
                    outcomes[i] = Some(unreachable_not_copied());
                    continue;
                }
            };
            let rel = ferry_node_commands::root::relpath(file.id);
            outcomes[i] = Some(match sent.get(rel.as_str()) {
                _ if !source.sha256.eq_ignore_ascii_case(&file.sha256) => Pushed::Differs {
                    reason: format!("the source's sha256 is {}, the upload's {}", source.sha256, file.sha256),
                },
                Some(sum) if *sum != source.xxh128 => Pushed::Differs {
                    reason: format!(
                        "rsync sent bytes whose {} is {sum}, the source's is {}",
                        rsync::TRANSFER_CHECKSUM,
                        source.xxh128
                    ),
                },
                Some(_) if partial => {
                    recheck.push(i);
                    continue;
                }
                Some(_) => Pushed::Verified,
                None => Pushed::NotCopied(SshError::Failed { program: "rsync", code, stderr: stderr.clone() }),
            });
        }
        if !recheck.is_empty() {
            let ids: Vec<Uuid> = recheck.iter().map(|&i| files[i].id).collect();
            let sums = self.remote_md5s(node, &ids).await;
            for i in recheck {
                outcomes[i] = Some(match &sums {
                    Ok(sums) if sums.get(&files[i].id).is_some_and(|s| s.eq_ignore_ascii_case(&files[i].md5)) => {
                        Pushed::Verified
                    }
                    Ok(_) => Pushed::NotCopied(SshError::Failed { program: "rsync", code, stderr: stderr.clone() }),
                    Err(e) => Pushed::NotCopied(e.clone()),
                });
            }
        }
        Ok(outcomes.into_iter().map(|o| o.unwrap_or_else(unreachable_not_copied)).collect())
    }
}

/// A source's digests from one read: sha256 and XXH3-128, each as lowercase hex (the
/// XXH3-128 in its canonical big-endian form, as rsync's `%C` prints it).
struct SourceDigests {
    sha256: String,
    xxh128: String,
}

impl SourceDigests {
    fn read(path: &Path) -> std::io::Result<SourceDigests> {
        use sha2::Digest;
        use std::io::Read;
        let mut file = std::fs::File::open(path)?;
        let mut buf = vec![0u8; 1 << 20];
        let mut sha256 = sha2::Sha256::new();
        let mut xxh = xxhash_rust::xxh3::Xxh3::new();
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            sha256.update(&buf[..n]);
            xxh.update(&buf[..n]);
        }
        Ok(SourceDigests { sha256: hex::encode(sha256.finalize()), xxh128: format!("{:032x}", xxh.digest128()) })
    }
}

/// Every slot is filled above; a hole would be a bug, reported as a retryable failure.
fn unreachable_not_copied() -> Pushed {
    Pushed::NotCopied(SshError::Config("push left a file without an outcome".into()))
}

fn io_error(what: &str, e: &std::io::Error) -> SshError {
    SshError::Spawn { program: "rsync", reason: format!("{what}: {e}") }
}

/// The error and its sources on one line (openssh puts the ssh message in a source).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(cause.to_string().trim());
        source = cause.source();
    }
    text
}

/// Name prefix of a push's scratch directory in staging:
/// `.push-<host>-<pid>-<uuid>`, so that the worker that made it can be told dead or
/// alive ([`scratch_is_abandoned`]); the staging sweep removes leftovers of a killed
/// worker.
pub const SCRATCH_PREFIX: &str = ".push-";

/// This process's part of a scratch directory name: `<host>-<pid>`, the host name
/// reduced to `[A-Za-z0-9_.]` (read once per process).
fn scratch_owner() -> &'static str {
    static OWNER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    OWNER.get_or_init(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let host: String =
            host.trim().chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '_' }).collect();
        format!("{host}-{}", std::process::id())
    })
}

/// Whether the scratch directory `name` (a staging entry starting with
/// [`SCRATCH_PREFIX`]) belongs to a worker on this host that no longer runs. A
/// directory of another host, or of a live process, is not judged here (the sweep's
/// age limit covers those).
pub fn scratch_is_abandoned(name: &str) -> bool {
    scratch_owner_of(name).is_some_and(|(host, pid)| {
        let own = scratch_owner();
        own.rsplit_once('-').is_some_and(|(own_host, _)| own_host == host)
            && pid != std::process::id()
            && !process_runs(pid)
    })
}

/// Whether process `pid` of this host still runs: it exists and is not a zombie (a
/// killed worker stays one until its parent reaps it, e.g. a supervisor that has not
/// yet noticed).
fn process_runs(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // `pid (comm) S ...`: the state follows the last `)` (comm may hold one).
        Ok(stat) => {
            stat.rsplit_once(')').is_none_or(|(_, rest)| !matches!(rest.trim_start().chars().next(), Some('Z' | 'X')))
        }
        Err(_) => false,
    }
}

/// `(host, pid)` of a scratch directory name `.push-<host>-<pid>-<uuid>`.
fn scratch_owner_of(name: &str) -> Option<(&str, u32)> {
    let rest = name.strip_prefix(SCRATCH_PREFIX)?;
    let (head, id) = rest.split_at(rest.len().checked_sub(36)?);
    Uuid::parse_str(id).ok()?;
    let (host, pid) = head.strip_suffix('-')?.rsplit_once('-')?;
    Some((host, pid.parse().ok()?))
}

/// A push's scratch directory of hard links, removed when dropped.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new(parent: &Path) -> std::io::Result<Scratch> {
        let dir = parent.join(format!("{SCRATCH_PREFIX}{}-{}", scratch_owner(), Uuid::new_v4()));
        std::fs::create_dir(&dir)?;
        Ok(Scratch { dir })
    }

    fn link(&self, source: &Path, rel: &str) -> std::io::Result<()> {
        let target = self.dir.join(rel);
        if let Some(shard) = target.parent() {
            std::fs::create_dir_all(shard)?;
        }
        std::fs::hard_link(source, target)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(%error, dir = %self.dir.display(), "could not remove a push's scratch directory");
        }
    }
}

/// Runs a local process to its end within `limit`: exit code, stdout, stderr's tail.
/// The child is killed when the future is dropped (job timeout, shutdown).
async fn run_process(
    program: &'static str,
    mut cmd: tokio::process::Command,
    limit: Duration,
) -> Result<(Option<i32>, String, String), SshError> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let child = cmd.spawn().map_err(|e| SshError::Spawn { program, reason: e.to_string() })?;
    let output = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .map_err(|_| SshError::Timeout { program, secs: limit.as_secs() })?
        .map_err(|e| SshError::Spawn { program, reason: e.to_string() })?;
    Ok((output.status.code(), String::from_utf8_lossy(&output.stdout).into_owned(), tail(&output.stderr)))
}

/// The last 500 characters of a process's stderr, trimmed.
fn tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim();
    let skip = text.chars().count().saturating_sub(500);
    text.chars().skip(skip).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zombie_does_not_run() -> std::io::Result<()> {
        assert!(process_runs(std::process::id()));
        assert!(!process_runs(u32::MAX));
        // Exited and not reaped yet: a zombie, as a killed worker before its parent waits.
        let mut child = std::process::Command::new("true").spawn()?;
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(!process_runs(child.id()));
        child.wait()?;
        Ok(())
    }

    /// The worker's XXH3-128 of a source is the sum the real rsync prints for it with
    /// the push's transfer checksum (a local copy: same sender, same `%C`), over sizes
    /// around xxh3's internal block and stripe edges, and the sha256 is the file's.
    #[test]
    fn source_digests_match_what_rsync_prints() {
        if std::process::Command::new("rsync").arg("--version").output().is_err() {
            eprintln!("rsync is not installed; skipped");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for size in [0_usize, 3, 240, 1024, 1025, 1 << 20, (1 << 20) + 4097] {
            let bytes: Vec<u8> = (0..size)
                .map(|_| {
                    state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    (state >> 56) as u8
                })
                .collect();
            let src = dir.path().join(format!("src-{size}"));
            std::fs::write(&src, &bytes).expect("write");
            let out = std::process::Command::new("rsync")
                .arg(format!("--checksum-choice={}", rsync::TRANSFER_CHECKSUM))
                .arg("--ignore-times")
                .arg("--out-format=%C")
                .arg(&src)
                .arg(dir.path().join(format!("dst-{size}")))
                .output()
                .expect("rsync runs");
            assert!(out.status.success(), "rsync: {}", String::from_utf8_lossy(&out.stderr));
            let printed = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            let digests = SourceDigests::read(&src).expect("read");
            assert_eq!(digests.xxh128, printed, "{size} bytes");
            use sha2::Digest;
            assert_eq!(digests.sha256, hex::encode(sha2::Sha256::digest(&bytes)), "{size} bytes");
        }
        let abc = dir.path().join("abc");
        std::fs::write(&abc, b"abc").expect("write");
        // XXH3-128("abc"), as `xxhsum -H2` prints it.
        assert_eq!(SourceDigests::read(&abc).expect("read").xxh128, "06b05ab6733a618578af5f94892f3950");
    }

    #[test]
    fn scratch_of_a_dead_worker_on_this_host_is_abandoned_and_nothing_else() {
        let id = Uuid::new_v4();
        let own = scratch_owner();
        let (host, _) = own.rsplit_once('-').expect("host-pid");
        assert_eq!(scratch_owner_of(&format!(".push-{own}-{id}")), Some((host, std::process::id())));
        assert!(!scratch_is_abandoned(&format!(".push-{own}-{id}")), "this process is alive");
        // pid_max is at most 2^22 on Linux: this pid never runs.
        assert!(scratch_is_abandoned(&format!(".push-{host}-4194305-{id}")));
        assert!(!scratch_is_abandoned(&format!(".push-other.host-4194305-{id}")), "another host's");
        assert!(!scratch_is_abandoned(&format!(".push-{id}")), "the old name, judged by age");
        assert!(!scratch_is_abandoned(&format!(".push-{host}-x-{id}")));
        assert!(!scratch_is_abandoned("data"));
    }

    #[test]
    fn rsync_usage_errors_are_permanent_transport_errors_are_not() {
        let failed = |code| SshError::Failed { program: "rsync", code: Some(code), stderr: String::new() };
        assert!(failed(1).is_permanent());
        for code in [5, 10, 11, 12, 23, 30, 35, 255] {
            assert!(!failed(code).is_permanent(), "{code}");
        }
        assert!(!SshError::Connect { node: "n".into(), reason: "refused".into() }.is_permanent());
    }

    #[test]
    fn stderr_keeps_its_end() {
        let long = format!("{}END", "x".repeat(1000));
        assert!(tail(long.as_bytes()).ends_with("END"));
        assert_eq!(tail(long.as_bytes()).chars().count(), 500);
    }
}
