//! A child process owned by a test cluster: output to a log file, killed on drop.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

pub struct Proc {
    child: Option<Child>,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<Proc> {
        let out = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd.spawn().with_context(|| format!("spawning {name} ({cmd:?})"))?;
        Ok(Proc { child: Some(child) })
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait up to `deadline` for the exit; SIGKILL after that.
    pub fn terminate(&mut self, deadline: Duration) -> Result<Option<i32>> {
        let Some(mut child) = self.child.take() else { return Ok(None) };
        let pid = Pid::from_raw(i32::try_from(child.id()).context("pid")?);
        kill(pid, Signal::SIGTERM)?;
        let until = Instant::now() + deadline;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status.code());
            }
            if Instant::now() >= until {
                let _ = child.kill();
                let _ = child.wait();
                anyhow::bail!("process did not exit within {deadline:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}
