//! `ferry queues`: each job queue with its depth and consumers (a passive declare on
//! the broker: exact at the time of the call), its message rates (the RabbitMQ
//! management API, as on the admin Queues page: figures the broker samples every 5 s,
//! so the output says when they were read and how old they can be) and whether an
//! operator paused it; pause and resume (the same `paused_queues` rows as the admin
//! page's buttons). A paused queue keeps its messages; workers stop taking new ones
//! within a heartbeat (5 s) and finish the ones they hold.

use anyhow::bail;
use clap::Subcommand;
use ferry_queue::management::{self, STATS_INTERVAL_SECS};
use ferry_queue::{JobKind, Publisher};
use ferry_shared::config::Config;
use ferry_stdout::outln;
use ferry_store::{pauses, Client};

use crate::output::{print_json, Json};

#[derive(Subcommand)]
pub enum QueuesCmd {
    /// List the job queues: ready messages and consumers (read from the broker now),
    /// unacknowledged messages (held by workers), dead letters not yet recorded by the
    /// monitor (`ferry.<queue>.dead`), messages in, delivered and acknowledged per second
    /// (unacknowledged, dead and rates from the RabbitMQ management API: sampled by the
    /// broker every 5 s, so up to 5 s old; the time of the read is printed), paused or
    /// not; then the jobs parked in each shared retry tier (`ferry.retry.<tier>`).
    Ls {
        #[command(flatten)]
        out: Json,
    },
    /// Stop workers taking jobs from a queue (assemble, replicate, delete, scrub or drop;
    /// `ferry.scrub` or the jobs' name `verify` also name it); its messages wait. The
    /// admin Queues page's Pause does the same.
    Pause { queue: JobKind },
    /// Let workers take jobs from a paused queue again.
    Resume { queue: JobKind },
}

pub async fn queues(client: &Client, config: &Config, cmd: QueuesCmd) -> anyhow::Result<()> {
    match cmd {
        QueuesCmd::Ls { out } => {
            let paused = pauses::list(client).await?;
            let broker = Publisher::new(config.broker.url.expose(), "ferry cli", config.broker.heartbeat_secs);
            let stats = management::queues(&config.broker).await;
            let read_at = chrono::Utc::now();
            let mut rows = Vec::new();
            for kind in JobKind::ALL {
                let counts = match broker.queue_counts(&kind.queue()).await {
                    Ok(c) => Some(c),
                    Err(error) => {
                        eprintln!("{}: broker unreachable: {error}", kind.queue());
                        None
                    }
                };
                let rates = stats
                    .as_ref()
                    .ok()
                    .map(|all| all.iter().find(|q| q.name == kind.queue()).map_or((0.0, 0.0, 0.0), |q| q.rates()));
                let pause = paused.iter().find(|p| p.queue == kind.routing_key());
                let held = |name: &str| {
                    stats.as_ref().ok().map(|all| {
                        all.iter()
                            .find(|q| q.name == name)
                            .map_or((0, 0), |q| (q.messages_ready.unwrap_or(0), q.messages_unacknowledged.unwrap_or(0)))
                    })
                };
                rows.push(serde_json::json!({
                    "queue": kind.queue(),
                    "ready": counts.map(|c| c.ready),
                    "consumers": counts.map(|c| c.consumers),
                    "unacked": held(&kind.queue()).map(|h| h.1),
                    "dead_letters_waiting": held(&kind.dead_queue()).map(|h| h.0 + h.1),
                    "published_per_sec": rates.map(|r| r.0),
                    "delivered_per_sec": rates.map(|r| r.1),
                    "acked_per_sec": rates.map(|r| r.2),
                    "rates_read_at": rates.map(|_| read_at),
                    "rates_max_age_secs": rates.map(|_| STATS_INTERVAL_SECS),
                    "paused": pause.is_some(),
                    "paused_at": pause.map(|p| p.paused_at),
                    "paused_by": pause.map(|p| p.paused_by.clone()),
                }));
            }
            broker.reset().await;
            match &stats {
                Ok(_) => eprintln!(
                    "ready, consumers: read from the broker now; rates (messages per second): RabbitMQ management API \
                     read at {} UTC, sampled by the broker every {STATS_INTERVAL_SECS} s, so up to {STATS_INTERVAL_SECS} s \
                     older",
                    read_at.format("%T")
                ),
                Err(error) => eprintln!("rates unknown: RabbitMQ management API unreachable: {error}"),
            }
            if out.json {
                return print_json(rows);
            }
            outln!(
                "{:<18} {:>7} {:>9} {:>7} {:>5} {:>7} {:>11} {:>7}  paused",
                "queue",
                "ready",
                "consumers",
                "unacked",
                "dead",
                "in/s",
                "delivered/s",
                "acked/s"
            );
            for (kind, row) in JobKind::ALL.iter().zip(&rows) {
                let shown = |key: &str| row[key].as_u64().map_or_else(|| "?".to_owned(), |n| n.to_string());
                let rate = |key: &str| row[key].as_f64().map_or_else(|| "?".to_owned(), management::fmt_rate);
                let pause = paused.iter().find(|p| p.queue == kind.routing_key()).map_or_else(
                    || "no".to_owned(),
                    |p| format!("since {} by {}", p.paused_at.format("%F %T"), p.paused_by),
                );
                outln!(
                    "{:<18} {:>7} {:>9} {:>7} {:>5} {:>7} {:>11} {:>7}  {pause}",
                    kind.queue(),
                    shown("ready"),
                    shown("consumers"),
                    shown("unacked"),
                    shown("dead_letters_waiting"),
                    rate("published_per_sec"),
                    rate("delivered_per_sec"),
                    rate("acked_per_sec"),
                );
            }
            // The retry tiers are shared by every kind: one line.
            if let Ok(all) = &stats {
                let tiers: Vec<String> = ferry_queue::RETRY_TIERS
                    .iter()
                    .map(|(tier, _)| {
                        let name = ferry_queue::retry_queue(tier);
                        let parked = all.iter().find(|q| q.name == name).map_or(0, |q| q.messages_ready.unwrap_or(0));
                        format!("{tier} {parked}")
                    })
                    .collect();
                outln!("parked for a retry (ferry.retry.<tier>, any kind): {}", tiers.join(", "));
            }
        }
        QueuesCmd::Pause { queue } => {
            if !pauses::pause(client, queue.routing_key(), "ferry queues pause").await? {
                bail!("{} is paused already", queue.queue());
            }
            outln!("{} paused: workers stop taking its jobs within 5 s", queue.queue());
        }
        QueuesCmd::Resume { queue } => {
            if !pauses::resume(client, queue.routing_key()).await? {
                bail!("{} is not paused", queue.queue());
            }
            outln!("{} resumed", queue.queue());
        }
    }
    Ok(())
}
