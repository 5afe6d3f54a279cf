//! `deploy/dev status | head -3`: a reader that goes away before `ferry-dev` writes
//! ends it quietly with status 0, as it ends a C tool (SIGPIPE). It used to panic
//! ("failed printing to stdout: Broken pipe", status 101, with a backtrace).

use std::process::{Command, Stdio};

#[test]
fn status_ends_quietly_when_its_reader_goes_away() -> anyhow::Result<()> {
    let state = tempfile::tempdir()?;
    // A pipe whose reader is already gone: the first write fails with EPIPE.
    let (reader, writer) = nix::unistd::pipe()?;
    drop(reader);
    let mut status = Command::new(env!("CARGO_BIN_EXE_ferry-dev"));
    for (key, _) in std::env::vars_os().filter(|(key, _)| key.to_string_lossy().starts_with("FERRY_DEV_")) {
        status.env_remove(key);
    }
    let out = status
        .arg("status")
        .env("FERRY_DEV_STATE", state.path())
        .stdin(Stdio::null())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    anyhow::ensure!(out.status.success(), "ferry-dev status exited with {:?}: {stderr}", out.status);
    anyhow::ensure!(!stderr.contains("panicked"), "ferry-dev status panicked: {stderr}");
    Ok(())
}
