//! `ferry-dev`: the cluster launcher behind `deploy/dev` (see `deploy/dev help`).
//!
//! `up`, `down`, `status` and `logs` act on the dev cluster in `FERRY_DEV_STATE`; ports come
//! from `FERRY_DEV_*_PORT`, the state dir's `ports.env` or the defaults. `services` starts,
//! waits for and stops the run-wide PostgreSQL and RabbitMQ of `deploy/dev test`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use ferry_launcher::dev::{self, Dev};
use ferry_launcher::services::{self, Services};

#[derive(Parser)]
#[command(name = "ferry-dev", about = "Starts and stops Ferry clusters on this machine (called by deploy/dev).")]
struct Cli {
    /// The dev cluster's state dir.
    #[arg(long, env = "FERRY_DEV_STATE", global = true)]
    state: Option<PathBuf>,
    /// Where the ferry-* binaries are (default: this binary's dir).
    #[arg(long, env = "FERRY_DEV_BIN_DIR", global = true)]
    bin_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start PostgreSQL, RabbitMQ, 3 storage nodes (sshd with the node's forced command +
    /// ferry-node), ferry-api, 2 ferry-worker and ferry-monitor; register the nodes. What
    /// already runs is left alone.
    Up {
        /// Ports not set by FERRY_DEV_*_PORT or saved in the state dir are picked free.
        #[arg(long)]
        free_ports: bool,
    },
    /// Stop everything.
    Down {
        /// Also delete the state dir.
        #[arg(long)]
        purge: bool,
    },
    /// One line per process; exit status 3 if any is stopped (0 when the reader goes
    /// away first, as `| head` does).
    Status,
    /// Tail the logs (all, or one).
    Logs {
        /// Keep following.
        #[arg(short, long)]
        follow: bool,
        /// Lines to show.
        #[arg(short = 'n', default_value_t = 50)]
        lines: u32,
        /// postgres rabbitmq api worker1 worker2 monitor node1.. sshd-node1.. api-user-add
        name: Option<String>,
    },
    /// The run-wide PostgreSQL and RabbitMQ of `deploy/dev test`.
    Services {
        #[command(subcommand)]
        action: ServicesAction,
    },
}

#[derive(Subcommand)]
enum ServicesAction {
    /// Start PostgreSQL and launch RabbitMQ on free ports in DIR (RabbitMQ boots meanwhile).
    Start { dir: PathBuf },
    /// Wait for RabbitMQ and create the tests' administrator; the tests then find both
    /// through FERRY_TEST_SERVICES=DIR.
    Wait { dir: PathBuf },
    /// Stop both, and strays naming DIR; delete DIR.
    Stop { dir: PathBuf },
}

fn bin_dir(cli: &Cli) -> Result<PathBuf> {
    match &cli.bin_dir {
        Some(dir) => Ok(dir.clone()),
        None => {
            let exe = std::env::current_exe()?;
            exe.parent().map(PathBuf::from).context("no directory of ferry-dev")
        }
    }
}

fn dev(cli: &Cli, free_ports: bool) -> Result<Dev> {
    let state = cli.state.clone().unwrap_or_else(|| ferry_launcher::repo_dir().join(".state/dev"));
    Dev::load(&state, &bin_dir(cli)?, free_ports)
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match &cli.command {
        Command::Up { free_ports } => dev::up(&dev(&cli, *free_ports)?).await?,
        Command::Down { purge } => dev::down(&dev(&cli, false)?, *purge)?,
        Command::Status => {
            if !dev::status(&dev(&cli, false)?)? {
                return Ok(ExitCode::from(3));
            }
        }
        Command::Logs { follow, lines, name } => dev::logs(&dev(&cli, false)?, *follow, *lines, name.as_deref())?,
        Command::Services { action } => match action {
            ServicesAction::Start { dir } => {
                let s = Services::start(dir, &bin_dir(&cli)?)?;
                dev::log(&format!(
                    "postgres on port {}; rabbitmq {} starting (AMQP {}, management {})",
                    s.postgres.port, s.rabbitmq.node, s.rabbitmq.amqp_port, s.rabbitmq.mgmt_port
                ));
            }
            ServicesAction::Wait { dir } => {
                let s = Services::load(dir)?;
                s.wait().await?;
                dev::log(&format!(
                    "postgres on 127.0.0.1:{} (password in {}), rabbitmq {}; {}={}",
                    s.postgres.port,
                    s.postgres.password_file.display(),
                    s.amqp_url(),
                    services::ENV,
                    s.dir.display()
                ));
            }
            ServicesAction::Stop { dir } => {
                if dir.join("services.json").exists() {
                    Services::load(dir)?.stop()?;
                }
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            dev::log(&format!("ERROR: {e:#}"));
            ExitCode::FAILURE
        }
    }
}
