//! Ferry's one cluster launcher: starts and stops whole Ferry clusters on one machine out of
//! real parts, for `deploy/dev` (through the `ferry-dev` binary) and for the integration
//! tests (`ferry_tests::Cluster` is a thin layer over [`Cluster`]).
//!
//! - [`postgres::Postgres`] and [`rabbitmq::RabbitMq`]: private servers on loopback ports,
//!   each in a directory of its own.
//! - [`Cluster`]: storage nodes (an sshd whose `authorized_keys` forces the node's real gate,
//!   see [`ssh::GATE`], plus `ferry-node`), `ferry-api`, workers and the monitor, with pid
//!   files and logs under one directory; registration and readiness; the faults the fault
//!   suite injects (kill, SIGTERM, restart a node's sshd, stop a node).
//! - [`free_port`]: loopback ports reserved for the life of the process.
//! - [`dev`]: the `deploy/dev up|down|status|logs` cluster in a state dir that later commands
//!   find again; [`services`]: the run-wide PostgreSQL and RabbitMQ of `deploy/dev test`.

pub mod cluster;
pub mod dev;
pub mod postgres;
pub mod process;
pub mod rabbitmq;
pub mod services;
pub mod ssh;
pub mod wait;

use std::path::PathBuf;

use rand::Rng;

pub use cluster::{Cluster, ClusterConfig, Node};
pub use process::{Spawned, Stopped};
pub use wait::eventually;

/// The repository this launcher was built from (the gate script and the docs assets
/// live there).
pub fn repo_dir() -> PathBuf {
    // CARGO_MANIFEST_DIR is <repo>/deploy/launcher.
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().and_then(|p| p.parent()).map_or(manifest.clone(), PathBuf::from)
}

/// A free loopback TCP port different from every port in `exclude`, picked at random below
/// the kernel's ephemeral range (32768-60999): a port from `bind(0)` is ephemeral, and an
/// outgoing connection (ssh, a database client) could take it before the process meant
/// for it binds. Errors when 1000 tries found none.
///
/// A port is only bound later, by the process it is for, so a bind check alone lets two
/// clusters starting at once (in one test process, or in another suite on the machine)
/// pick the same port, and one of them then waits for a `/readyz` that another process
/// answers or nobody does. Each port handed out is therefore reserved until this process
/// exits: never handed out twice here, and locked (`flock`, released by the kernel when
/// the process ends, so no stale reservations) against every other process of the
/// machine that uses this function, under `$TMPDIR/ferry-test-ports/`.
pub fn free_port(exclude: &[u16]) -> anyhow::Result<u16> {
    use nix::fcntl::{Flock, FlockArg};
    use std::sync::Mutex;
    static RESERVED: Mutex<Vec<(u16, Option<Flock<std::fs::File>>)>> = Mutex::new(Vec::new());

    let dir = std::env::temp_dir().join("ferry-test-ports");
    let _ = std::fs::create_dir_all(&dir);
    let mut reserved = RESERVED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    for _ in 0..1000 {
        let port = rand::thread_rng().gen_range(20_000..32_000);
        if exclude.contains(&port) || reserved.iter().any(|(taken, _)| *taken == port) {
            continue;
        }
        // Without the lock directory (unwritable TMPDIR) only this process is guarded.
        let file =
            std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(port.to_string()));
        let lock = match file {
            Ok(file) => match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => Some(lock),
                Err(_) => continue, // another process holds it
            },
            Err(_) => None,
        };
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            reserved.push((port, lock));
            return Ok(port);
        }
    }
    anyhow::bail!("no free TCP port found in 20000-31999")
}

/// The login name of the current user (the nodes' ssh user in every launched cluster).
pub fn whoami() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid()).ok().flatten().map_or_else(|| "root".into(), |u| u.name)
}
