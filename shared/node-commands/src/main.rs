//! `ferry-node-ssh-command [--dry-run] ROOT`: the forced command for the workers' SSH
//! key on a storage node.
//!
//! ```text
//! authorized_keys:  restrict,command="/usr/lib/ferry/ferry-node-ssh-command /srv/ferry" ssh-ed25519 AAAA... ferry-worker
//! sshd_config:      Match User ferry
//!                       ForceCommand /usr/lib/ferry/ferry-node-ssh-command /srv/ferry
//! ```
//!
//! sshd puts what the worker asked for in `$SSH_ORIGINAL_COMMAND`; this program allows
//! exactly the commands of `ferry_node_commands` (the same definitions the worker
//! builds its command lines from) and execs the real program with a clean environment
//! and no shell, under umask 022. A receive (rsync push) runs as a child instead: once
//! it exits the gate fsyncs the shard directories it changed, so a push the worker
//! sees succeed is durable; the gate exits with rsync's own status, or 125 when that
//! sync failed. A refused command exits 126 with the reason on stderr, which the
//! worker records as the job's error. `--dry-run` prints the argv it would run instead (a reader that goes away ends it
//! quietly with status 0: `ferry_stdout::outln!`).

use std::os::unix::process::CommandExt;
use std::process::ExitCode;

use ferry_node_commands::{allow, root, rsync, Allowed, Denied, NodeRoot, DENIED_EXIT, SYNC_FAILED_EXIT};

const BIN_DIRS: [&str; 2] = ["/usr/bin", "/bin"];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dry_run = args.iter().any(|a| a == "--dry-run");
    let rest: Vec<&String> = args.iter().filter(|a| *a != "--dry-run").collect();
    let [root] = rest.as_slice() else {
        eprintln!("usage: ferry-node-ssh-command [--dry-run] ROOT");
        return ExitCode::from(2);
    };
    let root = match NodeRoot::new(root) {
        Ok(root) => root,
        Err(e) => {
            eprintln!("ferry-node-ssh-command: {e}");
            return ExitCode::from(2);
        }
    };
    let line = std::env::var("SSH_ORIGINAL_COMMAND").unwrap_or_default();
    let allowed = allow(&line, &root, read_stdin_args).and_then(|a| a.confine(&root).map(|()| a));
    let argv = match allowed.as_ref().map(|a| a.argv(&root)) {
        Ok(argv) => argv,
        Err(e) => return denied(e),
    };
    if dry_run {
        ferry_stdout::outln!("{}", argv.join(" "));
        return ExitCode::SUCCESS;
    }
    let Some(program) = BIN_DIRS.iter().map(|d| format!("{d}/{}", argv[0])).find(|p| is_executable(p)) else {
        return denied(&Denied::new(format!("{} is not installed on this node", argv[0])));
    };
    let home = std::env::var("HOME").unwrap_or_else(|_| "/".into());
    // Received files are 0644 and shard directories 0755 (rsync::RECEIVER_CHMOD); the
    // umask makes sure nothing the gate runs creates a group- or world-writable entry.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    let mut command = std::process::Command::new(&program);
    command
        .arg0(&argv[0])
        .args(&argv[1..])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LC_ALL", "C")
        .env("HOME", home);
    if matches!(allowed, Ok(Allowed::Receive(_))) {
        return receive(command, &root);
    }
    let error = command.exec();
    eprintln!("ferry-node-ssh-command: cannot run {program}: {error}");
    ExitCode::from(DENIED_EXIT as u8)
}

/// Runs the receiving rsync (on this process's stdin and stdout) and, when it received
/// files (exit 0, or 23/24 for a partial transfer), fsyncs the shard directories it
/// changed before exiting with its status.
fn receive(mut rsync: std::process::Command, root: &NodeRoot) -> ExitCode {
    let began = std::time::SystemTime::now();
    let status = match rsync.status() {
        Ok(status) => status,
        Err(error) => {
            eprintln!("ferry-node-ssh-command: cannot run rsync: {error}");
            return ExitCode::from(DENIED_EXIT as u8);
        }
    };
    // Killed by a signal: the shell convention, 128 + the signal number.
    let code =
        status.code().unwrap_or_else(|| 128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0));
    if matches!(code, 0 | 23 | 24) {
        if let Err(error) = root::sync_changed_shards(root, began) {
            eprintln!("ferry-node-ssh-command: received files could not be made durable: {error}");
            return ExitCode::from(SYNC_FAILED_EXIT as u8);
        }
    }
    ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX))
}

/// rsync's protected arguments from stdin, unbuffered: the bytes after them belong to
/// the rsync this process becomes.
fn read_stdin_args() -> Result<Vec<String>, Denied> {
    use std::os::fd::AsFd;
    let fd = std::io::stdin().as_fd().try_clone_to_owned().map_err(|e| Denied::new(format!("stdin: {e}")))?;
    rsync::read_protected_args(std::fs::File::from(fd))
}

fn denied(reason: &Denied) -> ExitCode {
    eprintln!("ferry-node-ssh-command: denied: {reason}");
    ExitCode::from(DENIED_EXIT as u8)
}

fn is_executable(path: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
