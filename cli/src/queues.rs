//! `ferry queues`: each job queue with its depth and consumers (a passive declare on
//! the broker) and whether an operator paused it; pause and resume. A paused queue keeps
//! its messages; workers stop taking new ones within a heartbeat (5 s) and finish the
//! ones they hold.

use anyhow::bail;
use clap::Subcommand;
use ferry_queue::{JobKind, Publisher};
use ferry_shared::config::Config;
use ferry_store::{pauses, Client};

use crate::output::{print_json, Json};

#[derive(Subcommand)]
pub enum QueuesCmd {
    /// List the job queues: ready messages, consumers, paused or not.
    Ls {
        #[command(flatten)]
        out: Json,
    },
    /// Stop workers taking jobs from a queue (assemble, replicate, delete, scrub or drop); its
    /// messages wait.
    Pause { queue: JobKind },
    /// Let workers take jobs from a paused queue again.
    Resume { queue: JobKind },
}

pub async fn queues(client: &Client, config: &Config, cmd: QueuesCmd) -> anyhow::Result<()> {
    match cmd {
        QueuesCmd::Ls { out } => {
            let paused = pauses::list(client).await?;
            let broker = Publisher::new(config.broker.url.expose(), "ferry cli", config.broker.heartbeat_secs);
            let mut rows = Vec::new();
            for kind in JobKind::ALL {
                let counts = match broker.queue_counts(&kind.queue()).await {
                    Ok(c) => Some(c),
                    Err(error) => {
                        eprintln!("{}: broker unreachable: {error}", kind.queue());
                        None
                    }
                };
                let pause = paused.iter().find(|p| p.queue == kind.routing_key());
                rows.push(serde_json::json!({
                    "queue": kind.queue(),
                    "ready": counts.map(|c| c.ready),
                    "consumers": counts.map(|c| c.consumers),
                    "paused": pause.is_some(),
                    "paused_at": pause.map(|p| p.paused_at),
                    "paused_by": pause.map(|p| p.paused_by.clone()),
                }));
            }
            broker.reset().await;
            if out.json {
                return print_json(rows);
            }
            println!("{:<18} {:>7} {:>9}  paused", "queue", "ready", "consumers");
            for (kind, row) in JobKind::ALL.iter().zip(&rows) {
                let shown = |key: &str| row[key].as_u64().map_or_else(|| "?".to_owned(), |n| n.to_string());
                let pause = paused.iter().find(|p| p.queue == kind.routing_key()).map_or_else(
                    || "no".to_owned(),
                    |p| format!("since {} by {}", p.paused_at.format("%F %T"), p.paused_by),
                );
                println!("{:<18} {:>7} {:>9}  {pause}", kind.queue(), shown("ready"), shown("consumers"));
            }
        }
        QueuesCmd::Pause { queue } => {
            if !pauses::pause(client, queue.routing_key(), "ferry queues pause").await? {
                bail!("{} is paused already", queue.queue());
            }
            println!("{} paused: workers stop taking its jobs within 5 s", queue.queue());
        }
        QueuesCmd::Resume { queue } => {
            if !pauses::resume(client, queue.routing_key()).await? {
                bail!("{} is not paused", queue.queue());
            }
            println!("{} resumed", queue.queue());
        }
    }
    Ok(())
}
