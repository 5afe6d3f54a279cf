//! Talking to storage nodes with the system `ssh` and `rsync`, driven by
//! `tokio::process`. Chosen over the `openssh` crate because rsync needs a real ssh
//! command line anyway, and one code path (ssh options in one place, connection reuse
//! through OpenSSH's own ControlMaster) serves both the copy and the remote commands.
//!
//! Host keys are pinned: `StrictHostKeyChecking=yes` against our own known_hosts file.
//! Every child is killed when its future is dropped (job timeout, shutdown).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use ferry_shared::config::WorkerConfig;
use tokio::process::Command;

/// Where and as whom to reach a node.
#[derive(Debug, Clone)]
pub struct NodeAddr {
    pub host: String,
    pub port: i32,
    pub user: String,
    pub root: String,
}

impl NodeAddr {
    fn target(&self) -> String {
        format!("{}@{}", self.user, self.host)
    }

    /// Absolute path of `relpath` under this node's root.
    pub fn path(&self, relpath: &str) -> String {
        format!("{}/{relpath}", self.root.trim_end_matches('/'))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("could not start {program}: {source}")]
    Spawn { program: &'static str, source: std::io::Error },
    #[error("{program} exited with {code:?}: {stderr}")]
    Failed { program: &'static str, code: Option<i32>, stderr: String },
    #[error("{program} timed out after {secs} s")]
    Timeout { program: &'static str, secs: u64 },
}

impl SshError {
    /// rsync's own exit codes: 1-4 are usage/protocol errors that retrying will not
    /// fix; everything else (5, 10, 12, 23, 30, 35, 255 = ssh, 11 = often a full disk)
    /// may pass.
    pub fn is_permanent(&self) -> bool {
        matches!(self, SshError::Failed { program: "rsync", code: Some(1..=4), .. })
    }
}

pub struct Ssh {
    key: PathBuf,
    known_hosts: PathBuf,
    control_dir: PathBuf,
    cipher: String,
    rsync_timeout_secs: u64,
}

impl Ssh {
    pub fn new(config: &WorkerConfig) -> std::io::Result<Ssh> {
        std::fs::create_dir_all(&config.ssh_control_dir)?;
        set_private(&config.ssh_control_dir)?;
        Ok(Ssh {
            key: config.ssh_key.clone(),
            known_hosts: config.ssh_known_hosts.clone(),
            control_dir: config.ssh_control_dir.clone(),
            cipher: config.ssh_cipher.clone(),
            rsync_timeout_secs: config.rsync_timeout_secs,
        })
    }

    /// ssh options shared by every call; connections to one node are multiplexed
    /// over one master (`%C` keeps the socket path short). The control directory is
    /// re-created if something removed it (a tmp cleaner), or every call would fail.
    fn options(&self, port: i32) -> Vec<String> {
        if !self.control_dir.is_dir() {
            if let Err(error) = std::fs::create_dir_all(&self.control_dir).and_then(|()| set_private(&self.control_dir))
            {
                tracing::warn!(%error, dir = %self.control_dir.display(), "cannot re-create the ssh control directory");
            }
        }
        let mut opts = vec![
            "-p".to_owned(),
            port.to_string(),
            "-i".to_owned(),
            self.key.display().to_string(),
            "-o".to_owned(),
            "BatchMode=yes".to_owned(),
            "-o".to_owned(),
            "IdentitiesOnly=yes".to_owned(),
            "-o".to_owned(),
            "StrictHostKeyChecking=yes".to_owned(),
            "-o".to_owned(),
            format!("UserKnownHostsFile={}", self.known_hosts.display()),
            "-o".to_owned(),
            "ConnectTimeout=10".to_owned(),
            "-o".to_owned(),
            "ServerAliveInterval=10".to_owned(),
            "-o".to_owned(),
            "ServerAliveCountMax=3".to_owned(),
            "-o".to_owned(),
            "ControlMaster=auto".to_owned(),
            "-o".to_owned(),
            format!("ControlPath={}/%C", self.control_dir.display()),
            "-o".to_owned(),
            "ControlPersist=60".to_owned(),
        ];
        if !self.cipher.is_empty() {
            opts.push("-c".to_owned());
            opts.push(self.cipher.clone());
        }
        opts
    }

    /// Copies `local` to `relpath` on `node`. rsync writes a temp file in the target
    /// directory and renames it into place, so a half-copied file is never at the
    /// final name; `--partial-dir` keeps an interrupted transfer's bytes for the retry.
    ///
    /// Returns the md5 rsync computed over the whole file while sending it
    /// (`--checksum-choice=md5`, printed with `%C`): the receiving rsync checks the file
    /// it rebuilt against that same checksum and fails the transfer on a mismatch, so
    /// when it equals the upload's md5 the node's copy is the client's bytes, with no
    /// second session to re-read the copy on the node. `None` when rsync sent nothing
    /// because an identical-looking file (same size and mtime) is already there — a
    /// retry after a copy whose verdict was lost; the caller then checks the copy
    /// itself.
    pub async fn push(&self, node: &NodeAddr, local: &Path, relpath: &str) -> Result<Option<String>, SshError> {
        let shell = std::iter::once("ssh".to_owned()).chain(self.options(node.port)).collect::<Vec<_>>().join(" ");
        let mut cmd = Command::new("rsync");
        cmd.arg("--protect-args")
            .arg("--mkpath")
            .arg("--times")
            .arg("--chmod=F0644,D0755")
            .arg("--partial-dir=.rsync-partial")
            .arg("--checksum-choice=md5")
            .arg(format!("--out-format={TRANSFER_MD5}%C"))
            .arg(format!("--timeout={}", self.rsync_timeout_secs))
            .arg("-e")
            .arg(shell)
            .arg(local)
            .arg(format!("{}:{}", node.target(), node.path(relpath)));
        // Whole-transfer bound on top of rsync's I/O timeout.
        let limit = Duration::from_secs(self.rsync_timeout_secs.saturating_mul(30).max(60));
        let out = run("rsync", cmd, limit).await?;
        Ok(transfer_md5(&out))
    }

    /// Runs `argv` on `node` (each word shell-quoted) and returns its stdout.
    pub async fn exec(&self, node: &NodeAddr, argv: &[&str]) -> Result<String, SshError> {
        let mut cmd = Command::new("ssh");
        cmd.args(self.options(node.port)).arg(node.target()).arg("--");
        cmd.arg(argv.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" "));
        run("ssh", cmd, Duration::from_secs(self.rsync_timeout_secs.max(30))).await
    }

    /// md5 of `relpath` on `node`, computed on the node.
    pub async fn remote_md5(&self, node: &NodeAddr, relpath: &str) -> Result<String, SshError> {
        self.remote_sum(node, "md5sum", relpath).await
    }

    /// sha256 of `relpath` on `node`, computed on the node.
    pub async fn remote_sha256(&self, node: &NodeAddr, relpath: &str) -> Result<String, SshError> {
        self.remote_sum(node, "sha256sum", relpath).await
    }

    /// The hex digest coreutils' `program` (md5sum, sha256sum) prints for `relpath`.
    async fn remote_sum(&self, node: &NodeAddr, program: &str, relpath: &str) -> Result<String, SshError> {
        let out = self.exec(node, &[program, "--", &node.path(relpath)]).await?;
        Ok(out.split_whitespace().next().unwrap_or_default().to_owned())
    }

    /// Removes `relpath` on `node`; a missing file is success.
    pub async fn remove(&self, node: &NodeAddr, relpath: &str) -> Result<(), SshError> {
        self.exec(node, &["rm", "-f", "--", &node.path(relpath)]).await.map(|_| ())
    }
}

/// Marks the line of rsync's `--out-format` output that carries the transfer's md5.
const TRANSFER_MD5: &str = "ferry-transfer-md5 ";

/// The md5 in rsync's output, if it transferred the file (one file per call).
fn transfer_md5(out: &str) -> Option<String> {
    out.lines()
        .filter_map(|line| line.strip_prefix(TRANSFER_MD5))
        .map(str::trim)
        .find(|sum| sum.len() == 32 && sum.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_ascii_lowercase)
}

async fn run(program: &'static str, mut cmd: Command, limit: Duration) -> Result<String, SshError> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let child = cmd.spawn().map_err(|source| SshError::Spawn { program, source })?;
    let output = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .map_err(|_| SshError::Timeout { program, secs: limit.as_secs() })?
        .map_err(|source| SshError::Spawn { program, source })?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stderr: String = stderr.trim().chars().take(500).collect();
    Err(SshError::Failed { program, code: output.status.code(), stderr })
}

/// POSIX single-quote quoting for the remote shell.
fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

fn set_private(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_quotes_and_spaces() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }

    #[test]
    fn the_transfer_md5_is_read_from_rsyncs_output_only_when_well_formed() {
        let sum = "8f74a3e7e25eaa410441677ff3f64ca3";
        assert_eq!(transfer_md5(&format!("{TRANSFER_MD5}{sum}\n")).as_deref(), Some(sum));
        assert_eq!(transfer_md5(&format!("noise\n{TRANSFER_MD5}{}\n", sum.to_uppercase())).as_deref(), Some(sum));
        // Nothing transferred: rsync prints no line at all.
        assert_eq!(transfer_md5(""), None);
        // Unknown checksum (`%C` is blank when rsync has none) or a truncated one.
        assert_eq!(transfer_md5(&format!("{TRANSFER_MD5}\n")), None);
        assert_eq!(transfer_md5(&format!("{TRANSFER_MD5}{}\n", &sum[..31])), None);
    }

    #[test]
    fn rsync_usage_errors_are_permanent_transport_errors_are_not() {
        let failed = |code| SshError::Failed { program: "rsync", code: Some(code), stderr: String::new() };
        assert!(failed(1).is_permanent());
        for code in [5, 10, 11, 12, 23, 30, 35, 255] {
            assert!(!failed(code).is_permanent(), "{code}");
        }
    }
}
