//! Per-kind job policy: attempts before a job is given up, its retry delays, its hard
//! time limit and its drain deadline, from `[worker.policy.<kind>]` over the defaults
//! (8 attempts, the retry tiers 1s, 5s, 30s, 2m in order, `worker.job_timeout_secs`,
//! 25 s).

use std::collections::HashMap;
use std::time::Duration;

use ferry_queue::{Job, JobKind, RETRY_TIERS};
use ferry_shared::config::WorkerConfig;
use ferry_shared::shutdown::DRAIN_DEADLINE;

/// Attempts before a transiently failing job is given up, unless its policy says.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;

/// What one job kind gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Attempts in all (the first included) before the job is given up.
    pub max_attempts: u32,
    /// The retry tier (a name of [`RETRY_TIERS`]) after failed attempt n (1-based);
    /// the last repeats.
    pub backoff: Vec<&'static str>,
    /// Hard limit of one attempt.
    pub time_limit: Duration,
    /// How long a stopping worker waits for jobs of this kind in flight.
    pub drain_deadline: Duration,
}

impl Policy {
    /// The retry tier after failed attempt `attempt` (1-based).
    pub fn tier(&self, attempt: u32) -> &'static str {
        let i = (attempt.max(1) as usize - 1).min(self.backoff.len() - 1);
        self.backoff[i]
    }
}

/// The policy of every job kind.
#[derive(Debug, Clone)]
pub struct Policies(HashMap<&'static str, Policy>);

impl Policies {
    /// Reads `worker.policy`; an unknown kind, an unknown retry tier, zero attempts or a
    /// zero time limit is an error naming the setting.
    pub fn from_config(config: &WorkerConfig) -> Result<Policies, String> {
        for kind in config.policy.keys() {
            if !Job::NAMES.contains(&kind.as_str()) {
                return Err(format!("worker.policy.{kind}: unknown job kind (expected {})", Job::NAMES.join(", ")));
            }
        }
        let mut policies = HashMap::new();
        for kind in Job::NAMES {
            let given = config.policy.get(kind).cloned().unwrap_or_default();
            let max_attempts = given.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
            if max_attempts == 0 {
                return Err(format!("worker.policy.{kind}.max_attempts must be at least 1"));
            }
            let backoff = match given.backoff {
                None => RETRY_TIERS.iter().map(|(name, _)| *name).collect(),
                Some(tiers) if tiers.is_empty() => {
                    return Err(format!("worker.policy.{kind}.backoff needs at least one retry tier"))
                }
                Some(tiers) => tiers
                    .iter()
                    .map(|t| {
                        RETRY_TIERS.iter().map(|(name, _)| *name).find(|name| name == t).ok_or_else(|| {
                            format!("worker.policy.{kind}.backoff: unknown retry tier {t:?} (1s, 5s, 30s or 2m)")
                        })
                    })
                    .collect::<Result<_, _>>()?,
            };
            let time_limit_secs = given.time_limit_secs.unwrap_or(config.job_timeout_secs);
            if time_limit_secs == 0 {
                return Err(format!("worker.policy.{kind}.time_limit_secs must be at least 1"));
            }
            let drain_deadline = given.drain_deadline_secs.map_or(DRAIN_DEADLINE, Duration::from_secs);
            let time_limit = Duration::from_secs(time_limit_secs);
            policies.insert(kind, Policy { max_attempts, backoff, time_limit, drain_deadline });
        }
        Ok(Policies(policies))
    }

    /// How long the consumer of `queue` waits for its jobs in flight when stopping:
    /// the longest drain deadline of the job kinds travelling on it.
    pub fn drain_deadline(&self, queue: JobKind) -> Duration {
        self.0
            .iter()
            .filter(|(name, _)| queue.job_names().contains(name))
            .map(|(_, p)| p.drain_deadline)
            .max()
            .unwrap_or(DRAIN_DEADLINE)
    }

    /// The policy of job kind `name` (one of [`Job::NAMES`]).
    pub fn get(&self, name: &str) -> &Policy {
        // Every name of Job::NAMES was inserted by from_config.
        self.0.get(name).unwrap_or_else(|| &self.0["assemble"])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_shared::config::JobPolicy;

    #[test]
    fn defaults_and_overrides() {
        let mut config = WorkerConfig::default();
        config.policy.insert(
            "verify".into(),
            JobPolicy {
                max_attempts: Some(2),
                backoff: Some(vec!["30s".into(), "2m".into()]),
                time_limit_secs: Some(60),
                drain_deadline_secs: Some(90),
            },
        );
        let policies = Policies::from_config(&config).expect("valid");
        let replicate = policies.get("replicate");
        assert_eq!(replicate.max_attempts, 8);
        assert_eq!(replicate.time_limit, Duration::from_secs(config.job_timeout_secs));
        assert_eq!((replicate.tier(1), replicate.tier(4), replicate.tier(7)), ("1s", "2m", "2m"));
        let verify = policies.get("verify");
        assert_eq!((verify.max_attempts, verify.time_limit), (2, Duration::from_secs(60)));
        assert_eq!((verify.tier(1), verify.tier(2), verify.tier(5)), ("30s", "2m", "2m"));
        assert_eq!(policies.drain_deadline(JobKind::Scrub), Duration::from_secs(90), "verify travels on scrub");
        assert_eq!(policies.drain_deadline(JobKind::Replicate), DRAIN_DEADLINE);
    }

    #[test]
    fn bad_policies_are_refused_by_name() {
        let bad = |kind: &str, policy: JobPolicy| {
            let mut config = WorkerConfig::default();
            config.policy.insert(kind.into(), policy);
            Policies::from_config(&config).expect_err("refused")
        };
        assert!(bad("scrub", JobPolicy::default()).contains("worker.policy.scrub"));
        assert!(bad("delete", JobPolicy { max_attempts: Some(0), ..Default::default() }).contains("max_attempts"));
        assert!(
            bad("delete", JobPolicy { backoff: Some(vec!["10s".into()]), ..Default::default() }).contains("\"10s\"")
        );
        assert!(bad("delete", JobPolicy { backoff: Some(vec![]), ..Default::default() }).contains("backoff"));
        assert!(bad("delete", JobPolicy { time_limit_secs: Some(0), ..Default::default() }).contains("time_limit"));
    }
}
