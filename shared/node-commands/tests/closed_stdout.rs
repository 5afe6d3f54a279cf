//! `ferry-node-ssh-command --dry-run ROOT | head`: a reader that goes away before the
//! gate prints the argv ends it quietly with status 0, as it ends a C tool (SIGPIPE).
//! It used to panic ("failed printing to stdout: Broken pipe", status 101).

use std::process::{Command, Stdio};

use ferry_node_commands::NodeRoot;

#[test]
fn dry_run_ends_quietly_when_its_reader_goes_away() -> Result<(), Box<dyn std::error::Error>> {
    let root = NodeRoot::new("/srv/ferry")?;
    // The orphan sweep's listing: allowed without touching the (absent) root.
    let line = ferry_node_commands::Command::ListOlderThan { minutes: 60 }.command_line(&root);
    // A pipe whose reader is already gone: the first write fails with EPIPE.
    let (reader, writer) = nix::unistd::pipe()?;
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_ferry-node-ssh-command"))
        .args(["--dry-run", root.as_str()])
        .env("SSH_ORIGINAL_COMMAND", line)
        .stdin(Stdio::null())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ferry-node-ssh-command exited with {:?}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "ferry-node-ssh-command panicked: {stderr}");
    Ok(())
}

/// Any other failed write to stdout (here a full disk: /dev/full) is an error: status 1
/// and the reason on stderr, not a panic and not a silent success.
#[test]
fn dry_run_reports_a_failed_write_of_another_kind() -> Result<(), Box<dyn std::error::Error>> {
    let root = NodeRoot::new("/srv/ferry")?;
    let line = ferry_node_commands::Command::ListOlderThan { minutes: 60 }.command_line(&root);
    let out = Command::new(env!("CARGO_BIN_EXE_ferry-node-ssh-command"))
        .args(["--dry-run", root.as_str()])
        .env("SSH_ORIGINAL_COMMAND", line)
        .stdin(Stdio::null())
        .stdout(std::fs::OpenOptions::new().write(true).open("/dev/full")?)
        .stderr(Stdio::piped())
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("ferry-node-ssh-command: writing to stdout: No space left on device"), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "ferry-node-ssh-command panicked: {stderr}");
    Ok(())
}
