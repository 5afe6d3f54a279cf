//! `ferry-api` binary: parses the command line and hands over to the library.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ferry_stdout::outln;

/// mimalloc instead of glibc malloc: with many uploads streaming at once on the
/// blocking pool, glibc's per-thread arenas kept freed chunk buffers resident
/// (peak RSS measured 120 MiB for 32 x 64 MiB concurrent chunks). Built with
/// `no_thp` (see the workspace Cargo.toml): with transparent huge pages mimalloc's
/// segments were backed by 2 MiB pages of which threads touched a few KiB — about
/// 90 MiB of that same burst's RSS.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `purge_delay` option (`mi_option_e` in mimalloc.h; the -sys crate names
/// only some of the options).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Returns memory freed after a burst of uploads to the OS at once instead of after
/// mimalloc's default delay, which an idle thread never reaches: with the default, the
/// RSS left after 32 concurrent 64 MiB chunks stayed at 70-90 MiB; with 0, 45-50 MiB.
/// The cost is an madvise per fully freed page, invisible next to the uploads.
#[allow(unsafe_code)]
fn purge_freed_memory_promptly() {
    // SAFETY: sets an integer option; mimalloc reads options at each use and this is
    // called before any thread but main exists.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
}

/// Ferry's HTTP API: chunked uploads, file listings, download redirects, admin API.
///
/// Configuration comes from the TOML file given with --config, then FERRY_* environment
/// variables (FERRY_<SECTION>__<KEY>, e.g. FERRY_DATABASE__URL, FERRY_API__LISTEN).
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, env = "FERRY_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on (overrides api.listen).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Create a user, or reset an existing user's password and admin flag.
    UserAdd {
        username: String,
        /// Make the user an administrator.
        #[arg(long)]
        admin: bool,
        /// Read the password from the first line of standard input (the only way:
        /// passwords never go on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

fn main() -> anyhow::Result<()> {
    purge_freed_memory_promptly();
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut config = ferry_shared::startup::configure(cli.config.as_deref(), ferry_shared::config::Role::Api)?;
    if let Some(listen) = cli.listen {
        config.api.listen = listen;
    }
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let (listener, shutdown) = ferry_shared::startup::serve_on(config.api.listen).await?;
            ferry_api::run(config, listener, shutdown).await?;
        }
        Command::Migrate => {
            let pool = ferry_store::pool(&config.database)?;
            ferry_api::migrate_with_retry(&pool, &Default::default()).await?;
        }
        Command::UserAdd { username, admin, password_stdin: _ } => {
            let mut password = String::new();
            std::io::stdin().lock().read_line(&mut password).context("reading the password from stdin")?;
            let password = password.trim_end_matches(['\n', '\r']);
            let pool = ferry_store::pool(&config.database)?;
            ferry_api::migrate_with_retry(&pool, &Default::default()).await?;
            let id = ferry_store::users::upsert(&pool.get().await?, &username, password, admin).await?;
            outln!("user {username} (id {id}) saved{}", if admin { " as admin" } else { "" });
        }
    }
    Ok(())
}
