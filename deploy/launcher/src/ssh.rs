//! SSH material and the private sshd that stands in for each storage node's sshd.
//!
//! Every node's `authorized_keys` forces the node's real gate on the workers' key, exactly
//! as production does (`deploy/systemd/authorized_keys.example`):
//! `restrict,command="<gate> <node root>" ssh-ed25519 ...`. So every command the workers
//! send in tests and in `deploy/dev up` passes the production gate or fails. The
//! operator's key (`ops_ed25519`: start-up checks, the benchmark's plain-rsync baseline)
//! logs in unrestricted. Host keys are pinned through known_hosts; nothing here relaxes
//! host key checking.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// The node's forced ssh command (`shared/node-commands`), the one gate for every sshd the
/// launcher starts (tests and dev): run as `GATE ROOT`, found in the cluster's binary dir.
pub const GATE: &str = "ferry-node-ssh-command";

/// The workers' key, the operator's key, the host key and known_hosts of one cluster, in
/// one directory.
#[derive(Debug, Clone)]
pub struct SshMaterial {
    /// The directory (mode 700).
    pub dir: PathBuf,
}

impl SshMaterial {
    /// Creates `dir` with the workers' key `id_ed25519`, the operator's key `ops_ed25519`
    /// and a host key `ssh_host_ed25519_key`, each only if missing (so `up` twice keeps
    /// them).
    pub fn create(dir: &Path) -> Result<SshMaterial> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        for (file, comment) in [
            ("id_ed25519", "ferry-worker"),
            ("ops_ed25519", "ferry-dev-operator"),
            ("ssh_host_ed25519_key", "ferry-node-host"),
        ] {
            let path = dir.join(file);
            if path.exists() {
                continue;
            }
            let out = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
                .arg(&path)
                .stdin(Stdio::null())
                .output()
                .context("running ssh-keygen")?;
            if !out.status.success() {
                bail!("ssh-keygen {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
            }
        }
        Ok(SshMaterial { dir: dir.to_owned() })
    }

    /// The workers' private key.
    pub fn client_key(&self) -> PathBuf {
        self.dir.join("id_ed25519")
    }

    /// The operator's private key (unrestricted on every node).
    pub fn operator_key(&self) -> PathBuf {
        self.dir.join("ops_ed25519")
    }

    /// The known_hosts file the workers use.
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.join("known_hosts")
    }

    /// The host key every node's sshd presents.
    pub fn host_key(&self) -> PathBuf {
        self.dir.join("ssh_host_ed25519_key")
    }

    /// `type base64` of a public key file (comment dropped).
    fn public(&self, file: &str) -> Result<String> {
        let text = std::fs::read_to_string(self.dir.join(file))?;
        Ok(text.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
    }

    /// Writes known_hosts pinning the host key on each of `ports` of 127.0.0.1.
    pub fn write_known_hosts(&self, ports: &[u16]) -> Result<()> {
        let key = self.public("ssh_host_ed25519_key.pub")?;
        let text: String = ports.iter().map(|p| format!("[127.0.0.1]:{p} {key}\n")).collect();
        let tmp = self.dir.join("known_hosts.tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(tmp, self.known_hosts())?;
        Ok(())
    }

    /// A node's `authorized_keys` as production writes it: the workers' key confined to
    /// `gate ROOT`, the operator's key unrestricted.
    pub fn authorized_keys(&self, gate: &Path, root: &Path) -> Result<String> {
        let command = format!("{} {}", gate.display(), root.display());
        if command.contains(['"', '\\', '\n']) {
            bail!("paths with quotes or backslashes cannot go into authorized_keys: {command}");
        }
        Ok(format!(
            "restrict,command=\"{command}\" {} ferry-worker\n{} ferry-dev-operator\n",
            self.public("id_ed25519.pub")?,
            self.public("ops_ed25519.pub")?
        ))
    }
}

/// The files of one node's sshd.
pub struct SshdFiles<'a> {
    /// `sshd_config` path to write.
    pub config: &'a Path,
    /// `authorized_keys` path to write.
    pub authorized_keys: &'a Path,
    /// sshd writes its pid here.
    pub pid_file: &'a Path,
    /// `SetEnv HOME=` for sessions: an empty dir. sshd runs every remote command through
    /// the login shell, and bash started by sshd reads ~/.bashrc: a storage node's ssh
    /// user has none, the developer may (pyenv init costs ~0.4 s per command).
    pub home: &'a Path,
}

/// Writes a node's sshd_config and authorized_keys (port on 127.0.0.1, the cluster's host
/// key, the client key forced to `gate root`) and checks the config with `sshd -t`.
pub fn write_sshd_config(files: &SshdFiles<'_>, ssh: &SshMaterial, port: u16, gate: &Path, root: &Path) -> Result<()> {
    if let Some(dir) = files.config.parent() {
        std::fs::create_dir_all(dir)?;
    }
    {
        use std::os::unix::fs::OpenOptionsExt;
        let tmp = files.authorized_keys.with_extension("tmp");
        let mut out = std::fs::OpenOptions::new().create(true).write(true).truncate(true).mode(0o600).open(&tmp)?;
        std::io::Write::write_all(&mut out, ssh.authorized_keys(gate, root)?.as_bytes())?;
        std::fs::rename(tmp, files.authorized_keys)?;
    }
    let config = format!(
        "# Private sshd for a Ferry storage node (written by ferry-launcher).\n\
         Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPidFile {pid}\n\
         AuthorizedKeysFile {keys}\nPubkeyAuthentication yes\nPasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         # Keys live in a state or temp dir whose modes sshd would otherwise reject.\n\
         StrictModes no\nPermitRootLogin prohibit-password\nUsePAM no\nPrintMotd no\n\
         # Replication fans out: several workers x concurrency connections at once,\n\
         # multiplexed over control masters.\nMaxStartups 64:30:128\nMaxSessions 64\n\
         # An empty HOME: no developer's shell start-up files per remote command.\nSetEnv HOME={home}\n",
        host_key = ssh.host_key().display(),
        pid = files.pid_file.display(),
        keys = files.authorized_keys.display(),
        home = files.home.display(),
    );
    std::fs::create_dir_all(files.home)?;
    std::fs::write(files.config, config)?;
    std::fs::create_dir_all("/run/sshd")?;
    let out = Command::new("/usr/sbin/sshd").arg("-t").arg("-f").arg(files.config).output()?;
    if !out.status.success() {
        bail!("sshd -t rejects {}: {}", files.config.display(), String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// The sshd command for `config`: in the foreground (`-D`, so the launcher owns the pid),
/// its log in `log`. sshd must be started by absolute path (it re-executes itself).
pub fn sshd_command(config: &Path, log: &Path) -> Command {
    let mut cmd = Command::new("/usr/sbin/sshd");
    cmd.arg("-D").arg("-f").arg(config).arg("-E").arg(log);
    cmd
}

/// Logs in to the node on `port` as `user` with the operator's key, then with the workers'
/// key runs the orphan sweep's listing through the gate (harmless), host key pinned: a node
/// whose sshd, keys or gate is broken fails here.
pub fn check_login(ssh: &SshMaterial, user: &str, port: u16, root: &Path) -> Result<()> {
    let listing = format!("'find' '{}' '-mindepth' '2' '-maxdepth' '2' '-type' 'f' '-mmin' '+100000'", root.display());
    for (key, command) in [(ssh.operator_key(), "true".to_owned()), (ssh.client_key(), listing)] {
        let out = Command::new("ssh")
            .args(["-F", "/dev/null", "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"])
            .arg("-i")
            .arg(&key)
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", ssh.known_hosts().display()))
            .args(["-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=5"])
            .arg("-p")
            .arg(port.to_string())
            .arg(format!("{user}@127.0.0.1"))
            .arg(&command)
            .stdin(Stdio::null())
            .output()
            .context("running ssh")?;
        if !out.status.success() {
            bail!(
                "ssh to port {port} with {} failed ({}): {}",
                key.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    Ok(())
}
