//! `ferry-monitor`: probes every node agent, writes `node_status`, publishes
//! heartbeats on the fanout exchange, expires abandoned uploads, tops up
//! under-replicated files, re-enqueues jobs whose message was lost ([`reconcile`]) and
//! records dead letters as job records ([`dead_letters`]). One instance is active
//! (leader by advisory lock); a second one waits and takes over if the first dies.

pub mod dead_letters;
pub mod probe;
pub mod reconcile;
pub mod sweep;

use std::sync::Arc;
use std::time::Duration;

use ferry_queue::outbox::{self, RelayWaker};
use ferry_queue::{Heartbeat, Publisher};
use ferry_shared::config::Config;
use ferry_shared::ops;
use ferry_store::leader::Leadership;
use ferry_store::node_status::{self, Probe};
use ferry_store::{nodes, replicas, Pool, StoreError};
use futures::future::join_all;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Db(#[from] StoreError),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("http client: {0}")]
    Http(#[from] reqwest::Error),
}

pub async fn run(config: Config, listener: TcpListener, shutdown: CancellationToken) -> Result<(), RunError> {
    let pool = ferry_store::pool(&config.database)?;
    ferry_store::migrate(&pool).await?;
    let publisher = Arc::new(Publisher::new(config.broker.url.expose(), "ferry-monitor", config.broker.heartbeat_secs));
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_millis(config.monitor.probe_timeout_ms))
        // A node's /health is answered by the node itself: a redirect elsewhere is
        // not its answer (and would let a node's URL probe other hosts).
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let tasks = TaskTracker::new();
    let relay = RelayWaker::default();
    tasks.spawn(outbox::run_relay(pool.clone(), publisher.clone(), relay.clone(), shutdown.clone()));
    tasks.spawn(dead_letters::run(pool.clone(), config.broker.clone(), shutdown.clone()));
    let limits = ferry_shared::serve::Limits::from_config(&config.http);
    tasks.spawn(lead(Arc::new(config), pool.clone(), publisher.clone(), http, relay, shutdown.clone()));
    tasks.close();

    let ready = ferry_queue::ready::db_and_broker(pool, publisher);
    tracing::info!(listen = %listener.local_addr()?, "ferry-monitor running");
    ferry_shared::serve::serve(listener, ops::routes(ready), shutdown, limits).await?;
    tasks.wait().await;
    Ok(())
}

/// Waits for leadership, then runs rounds every interval while it lasts.
async fn lead(
    config: Arc<Config>,
    pool: Pool,
    publisher: Arc<Publisher>,
    http: reqwest::Client,
    relay: RelayWaker,
    shutdown: CancellationToken,
) {
    let interval = Duration::from_millis(config.monitor.interval_ms);
    let pg = match ferry_store::pg_config(&config.database) {
        Ok(pg) => pg,
        Err(error) => {
            tracing::error!(%error, "monitor cannot parse the database URL");
            return;
        }
    };
    let mut leadership: Option<Leadership> = None;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut round: u64 = 0;
    let mut cursors = sweep::Cursors::default();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let held = match &leadership {
            Some(l) => l.still_held().await,
            None => false,
        };
        if !held {
            if leadership.take().is_some() {
                tracing::warn!("lost monitor leadership");
            }
            match Leadership::try_acquire(&pg).await {
                Ok(Some(l)) => {
                    tracing::info!("became the active monitor");
                    leadership = Some(l);
                }
                Ok(None) => continue,
                Err(error) => {
                    tracing::warn!(%error, "cannot reach the database for leadership");
                    continue;
                }
            }
        }
        round += 1;
        // An sshd is checked every 5th round: each check is a connection its sshd logs.
        probe_round(&config, &pool, &publisher, &http, round % 5 == 1).await;
        // Bookkeeping is cheaper to do less often than probing.
        if round % 5 == 1 {
            let expired = ferry_queue::expiry::expire_uploads(&pool).await;
            let topped = sweep::top_up_replicas(&pool, &config, &mut cursors).await;
            let retired = sweep::retire_drained(&pool, &config, &mut cursors).await;
            let scrubbed = sweep::schedule_scrub(&pool, &config).await;
            let reconciled = reconcile::round(&pool, &publisher, &config).await;
            for error in
                [expired.err(), topped.err(), retired.err(), scrubbed.err(), reconciled.err()].into_iter().flatten()
            {
                tracing::warn!(%error, "sweep failed; will retry next round");
            }
            relay.wake();
        }
    }
}

/// Probes all nodes concurrently (their agents, and with `check_ssh` their sshds),
/// records and publishes the results.
async fn probe_round(config: &Config, pool: &Pool, publisher: &Publisher, http: &reqwest::Client, check_ssh: bool) {
    let targets = match pool.get().await {
        Ok(client) => match nodes::probe_targets(&client).await {
            Ok(targets) => targets,
            Err(error) => return tracing::warn!(%error, "cannot list nodes"),
        },
        Err(error) => return tracing::warn!(%error, "cannot list nodes"),
    };
    let timeout = Duration::from_millis(config.monitor.probe_timeout_ms);
    let probes = targets.iter().map(|node| async move {
        let ssh = async {
            if check_ssh {
                Some(probe::probe_ssh(&node.ssh_host, node.ssh_port, timeout).await)
            } else {
                None
            }
        };
        let (agent, ssh) = futures::join!(probe::probe(http, &node.public_url, timeout), ssh);
        (node.id, agent, ssh)
    });
    let results = join_all(probes).await;
    let now_ms = chrono::Utc::now().timestamp_millis();
    for (node, result, ssh) in results {
        if let Ok(client) = pool.get().await {
            let status = Probe {
                up: result.up,
                free: result.free_bytes,
                total: result.total_bytes,
                rtt_ms: result.rtt_ms,
                error: result.error.as_deref(),
            };
            match node_status::record(&client, node, &status).await {
                Ok(true) if result.up => tracing::info!(node.id = %node, "node is up again"),
                Ok(true) => tracing::warn!(node.id = %node, error = ?result.error, "node went down"),
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, node.id = %node, "cannot record node status"),
            }
            if let Some(ssh) = &ssh {
                let check = ssh.as_deref().map_err(String::as_str);
                match node_status::record_ssh(&client, node, check).await {
                    Ok((verdict, changed)) => {
                        match (verdict, changed) {
                            (Some(true), true) => {
                                tracing::info!(node.id = %node, ssh.check = ?ssh, "node's sshd reachable")
                            }
                            (Some(false), true) => {
                                tracing::warn!(node.id = %node, ssh.check = ?ssh, "node's sshd unreachable: new copies to it fail")
                            }
                            _ => {}
                        }
                        if let Some(up) = verdict {
                            ferry_shared::metrics::NODE_SSH_UP
                                .with_label_values(&[&node.to_string()])
                                .set(i64::from(up));
                        }
                    }
                    Err(error) => tracing::warn!(%error, node.id = %node, "cannot record the sshd check"),
                }
            }
            if result.up {
                match node_status::record_write(&client, node, result.write_error.as_deref()).await {
                    Ok((verdict, changed)) => {
                        match (verdict, changed) {
                            (Some(true), true) => tracing::info!(node.id = %node, "node's storage root writable"),
                            (Some(false), true) => tracing::warn!(
                                node.id = %node,
                                error = ?result.write_error,
                                "node's storage root not writable: no new copies to it"
                            ),
                            _ => {}
                        }
                        if let Some(writable) = verdict {
                            ferry_shared::metrics::NODE_WRITABLE
                                .with_label_values(&[&node.to_string()])
                                .set(i64::from(writable));
                        }
                    }
                    Err(error) => tracing::warn!(%error, node.id = %node, "cannot record the write check"),
                }
            }
            if !result.corrupt.is_empty() {
                // The agent moved these aside: they no longer count, and the top-up
                // copies them again from a good replica.
                let marked = replicas::fail_present(&client, node, &result.corrupt, "corrupt when served").await;
                match marked {
                    Ok(0) => {}
                    Ok(n) => tracing::error!(node.id = %node, replicas.corrupt = n, "node reported corrupt replicas"),
                    Err(error) => tracing::warn!(%error, "cannot mark corrupt replicas"),
                }
            }
        }
        let label = node.to_string();
        ferry_shared::metrics::NODE_UP.with_label_values(&[&label]).set(i64::from(result.up));
        ferry_shared::metrics::NODE_FREE_BYTES
            .with_label_values(&[&label])
            .set(i64::try_from(result.free_bytes.bytes()).unwrap_or(i64::MAX));
        if !result.up {
            tracing::debug!(node.id = %node, error = ?result.error, "node down");
        }
        let beat = Heartbeat {
            node,
            up: result.up,
            free_bytes: result.free_bytes,
            total_bytes: result.total_bytes,
            rtt_ms: result.rtt_ms,
            at_ms: now_ms,
        };
        if let Err(error) = publisher.publish_heartbeat(&beat).await {
            tracing::warn!(%error, "cannot publish heartbeat");
            break;
        }
    }
}
