//! Message bodies: the jobs workers consume and the heartbeats API replicas hear.

use serde::{Deserialize, Serialize};

use ferry_shared::types::{ByteSize, FileId, NodeId};

/// The job queues a worker can consume: one per kind of work, so that an operator sees
/// (and pauses, and scales workers for) fresh uploads' copies apart from scrubs and
/// drain-time drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    Assemble,
    Replicate,
    Delete,
    /// Scrub: [`Job::Verify`].
    Scrub,
    /// Surplus replicas of a draining node: [`Job::DropReplica`].
    Drop,
}

impl JobKind {
    pub const ALL: [JobKind; 5] =
        [JobKind::Assemble, JobKind::Replicate, JobKind::Delete, JobKind::Scrub, JobKind::Drop];

    pub fn routing_key(self) -> &'static str {
        match self {
            JobKind::Assemble => "assemble",
            JobKind::Replicate => "replicate",
            JobKind::Delete => "delete",
            JobKind::Scrub => "scrub",
            JobKind::Drop => "drop",
        }
    }

    pub fn queue(self) -> String {
        format!("ferry.{}", self.routing_key())
    }

    /// The [`Job::name`]s of the jobs that travel on this queue.
    pub fn job_names(self) -> &'static [&'static str] {
        match self {
            JobKind::Assemble => &["assemble"],
            JobKind::Replicate => &["replicate"],
            JobKind::Delete => &["delete"],
            JobKind::Scrub => &["verify"],
            JobKind::Drop => &["drop_replica"],
        }
    }

    pub fn dead_queue(self) -> String {
        format!("ferry.{}.dead", self.routing_key())
    }
}

/// A queue by any name an operator meets it under: its routing key (`scrub`), its
/// RabbitMQ queue (`ferry.scrub`) or the name of the jobs on it, as job records and
/// `--kind` show them (`verify`): the operator trial of stop 31 found `queues pause
/// verify` and `queues pause ferry.replicate` refused.
impl std::str::FromStr for JobKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let key = s.strip_prefix("ferry.").unwrap_or(s);
        JobKind::ALL.into_iter().find(|k| k.routing_key() == key || k.job_names().contains(&key)).ok_or_else(|| {
            format!(
                "unknown queue {s:?} (expected assemble, replicate, delete, scrub or drop; the queue's name \
                 ferry.scrub or its jobs' name verify, drop_replica also do)"
            )
        })
    }
}

/// A job message. The body says what to do; the current state lives in PostgreSQL,
/// and each handler re-reads it so a redelivered job finds the work done and acks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "lowercase")]
pub enum Job {
    /// Concatenate an upload's chunks, hash, compare with the client's md5.
    Assemble { upload: FileId },
    /// Copy a file to one node and verify it there. `repair` marks the monitor's
    /// top-up (a lost or drained copy), which yields to fresh uploads in the worker.
    Replicate {
        file: FileId,
        node: NodeId,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        repair: bool,
    },
    /// Remove a deleted file's replicas and staging bytes.
    Delete { file: FileId },
    /// Re-check one present replica's sha256 on its node (scrub). Travels on
    /// `ferry.scrub`.
    Verify { file: FileId, node: NodeId },
    /// Remove one surplus replica (its node is draining and the file has enough
    /// replicas elsewhere). Travels on `ferry.drop`.
    DropReplica { file: FileId, node: NodeId },
}

impl Job {
    /// Every job name, as [`Job::name`] gives them.
    pub const NAMES: [&'static str; 5] = ["assemble", "replicate", "verify", "delete", "drop_replica"];

    /// The job's name, as job records store it (`jobs.kind`) and `--kind` filters take it.
    pub fn name(&self) -> &'static str {
        match self {
            Job::Assemble { .. } => "assemble",
            Job::Replicate { .. } => "replicate",
            Job::Verify { .. } => "verify",
            Job::Delete { .. } => "delete",
            Job::DropReplica { .. } => "drop_replica",
        }
    }

    /// The upload (= file) the job is about.
    pub fn file(&self) -> FileId {
        match self {
            Job::Assemble { upload: file }
            | Job::Replicate { file, .. }
            | Job::Delete { file }
            | Job::Verify { file, .. }
            | Job::DropReplica { file, .. } => *file,
        }
    }

    /// The node the job is about, if it is about one.
    pub fn node(&self) -> Option<NodeId> {
        match self {
            Job::Replicate { node, .. } | Job::Verify { node, .. } | Job::DropReplica { node, .. } => Some(*node),
            Job::Assemble { .. } | Job::Delete { .. } => None,
        }
    }

    /// The queue the job travels on.
    pub fn kind(&self) -> JobKind {
        match self {
            Job::Assemble { .. } => JobKind::Assemble,
            Job::Replicate { .. } => JobKind::Replicate,
            Job::Delete { .. } => JobKind::Delete,
            Job::Verify { .. } => JobKind::Scrub,
            Job::DropReplica { .. } => JobKind::Drop,
        }
    }

    /// Whether a worker consuming `queue` takes this job: its own queue, or the one it
    /// travelled on before scrubs and drops had their own (replicate, delete), so that
    /// messages queued by an older release are done rather than dead-lettered.
    pub fn belongs_on(&self, queue: JobKind) -> bool {
        let before = match self {
            Job::Verify { .. } => Some(JobKind::Replicate),
            Job::DropReplica { .. } => Some(JobKind::Delete),
            _ => None,
        };
        self.kind() == queue || before == Some(queue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids_of_every_job() {
        let file = FileId::new();
        let jobs = [
            Job::Assemble { upload: file },
            Job::Replicate { file, node: NodeId(1), repair: false },
            Job::Verify { file, node: NodeId(2) },
            Job::Delete { file },
            Job::DropReplica { file, node: NodeId(3) },
        ];
        let names: Vec<&str> = jobs.iter().map(Job::name).collect();
        assert_eq!(names, Job::NAMES);
        assert!(jobs.iter().all(|j| j.file() == file));
        let nodes: Vec<Option<i32>> = jobs.iter().map(|j| j.node().map(|n| n.0)).collect();
        assert_eq!(nodes, [None, Some(1), Some(2), None, Some(3)]);
        let queues: Vec<&str> = jobs.iter().map(|j| j.kind().routing_key()).collect();
        assert_eq!(queues, ["assemble", "replicate", "scrub", "delete", "drop"]);
        assert!(jobs[2].belongs_on(JobKind::Replicate) && jobs[4].belongs_on(JobKind::Delete), "queued before");
        assert!(!jobs[1].belongs_on(JobKind::Scrub) && !jobs[0].belongs_on(JobKind::Replicate));
        assert!(jobs.iter().all(|j| j.kind().job_names() == [j.name()]));
        for kind in JobKind::ALL {
            for name in [kind.routing_key().to_owned(), kind.queue(), kind.job_names()[0].to_owned()] {
                assert_eq!(name.parse::<JobKind>(), Ok(kind), "{name}");
            }
        }
        assert!("ferry.nothing".parse::<JobKind>().is_err() && "ferry.".parse::<JobKind>().is_err());
    }
}

/// What the monitor publishes about a node on every probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub node: NodeId,
    pub up: bool,
    pub free_bytes: ByteSize,
    pub total_bytes: ByteSize,
    pub rtt_ms: Option<f64>,
    /// Unix milliseconds at the probe.
    pub at_ms: i64,
}
