//! Group writes: the one-row statements that many jobs make at about the same moment
//! run as one statement per group. The files of one rsync batch come back from the
//! node together, so their jobs record their replicas and end their job records
//! together: without grouping that is one round trip, one statement and one commit
//! (a WAL flush, for the replicas) per job, and PostgreSQL was the largest CPU share of
//! the small-files bench (4.5 of 12.9 CPU-seconds per 1,000 files, 35 statements per
//! file).
//!
//! There is no timer: a group is what queued while the groups before it ran (at most
//! `GROUPS_AT_ONCE` at a time), so a lone write goes at once and a burst shares its
//! statements, like PostgreSQL's own group commit. Each caller still gets its own
//! outcome; a failed statement fails every write of its group (each job then retries
//! or settles as it would after its own failed statement).

use std::future::Future;
use std::sync::Arc;

use ferry_store::StoreError;
use tokio::sync::{mpsc, oneshot, Semaphore};

/// Statements of one kind in flight at once: enough that one slow statement does not
/// hold every other write behind it.
const GROUPS_AT_ONCE: usize = 4;

type Reply<R> = oneshot::Sender<Result<R, Arc<StoreError>>>;

/// Writes of one kind (`T` in, `R` out per write), grouped.
pub struct Gather<T, R> {
    tx: mpsc::Sender<(T, Reply<R>)>,
}

/// Why a grouped write has no outcome.
#[derive(Debug, thiserror::Error)]
pub enum GatherError {
    /// The group's statement failed (shared by every write of the group).
    #[error("{0}")]
    Store(Arc<StoreError>),
    /// The group's task is gone (the worker is shutting down) or answered for fewer
    /// writes than it took.
    #[error("the grouped write was dropped")]
    Dropped,
}

impl<T: Send + 'static, R: Send + 'static> Gather<T, R> {
    /// Starts the task that runs the groups: `run` gets at most `max` writes (at least
    /// one) and must return one outcome per write, in their order.
    pub fn spawn<F, Fut>(max: usize, run: F) -> Gather<T, R>
    where
        F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<R>, StoreError>> + Send + 'static,
    {
        let max = max.max(1);
        let (tx, mut rx) = mpsc::channel::<(T, Reply<R>)>(max * GROUPS_AT_ONCE);
        let run = Arc::new(run);
        let slots = Arc::new(Semaphore::new(GROUPS_AT_ONCE));
        tokio::spawn(async move {
            loop {
                let Ok(slot) = slots.clone().acquire_owned().await else { return };
                let Some(first) = rx.recv().await else { return };
                let mut group = vec![first];
                while group.len() < max {
                    match rx.try_recv() {
                        Ok(write) => group.push(write),
                        Err(_) => break,
                    }
                }
                let run = run.clone();
                tokio::spawn(async move {
                    let (writes, replies): (Vec<T>, Vec<Reply<R>>) = group.into_iter().unzip();
                    match run(writes).await {
                        // A reply missing (fewer outcomes than writes) drops its sender:
                        // that caller sees `Dropped`.
                        Ok(outcomes) => replies.into_iter().zip(outcomes).for_each(|(reply, outcome)| {
                            let _ = reply.send(Ok(outcome));
                        }),
                        Err(error) => {
                            let error = Arc::new(error);
                            replies.into_iter().for_each(|reply| {
                                let _ = reply.send(Err(error.clone()));
                            });
                        }
                    }
                    drop(slot);
                });
            }
        });
        Gather { tx }
    }

    /// Queues `write` and waits for its own outcome.
    pub async fn write(&self, write: T) -> Result<R, GatherError> {
        let (reply, outcome) = oneshot::channel();
        self.tx.send((write, reply)).await.map_err(|_| GatherError::Dropped)?;
        match outcome.await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(error)) => Err(GatherError::Store(error)),
            Err(_) => Err(GatherError::Dropped),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[tokio::test]
    async fn writes_queued_together_share_a_statement_and_each_gets_its_own_outcome() {
        let groups = Arc::new(Mutex::new(Vec::new()));
        let seen = groups.clone();
        let gather = Arc::new(Gather::spawn(8, move |writes: Vec<u32>| {
            let seen = seen.clone();
            async move {
                seen.lock().expect("lock").push(writes.len());
                // Long enough for the other writes to queue behind the first groups.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                Ok(writes.into_iter().map(|w| w * 10).collect())
            }
        }));
        let calls: Vec<_> = (0..40u32)
            .map(|i| {
                tokio::spawn({
                    let gather = gather.clone();
                    async move { gather.write(i).await.expect("an outcome") }
                })
            })
            .collect();
        for (i, call) in calls.into_iter().enumerate() {
            assert_eq!(call.await.expect("joined"), i as u32 * 10, "each write gets its own outcome");
        }
        let groups = groups.lock().expect("lock").clone();
        assert_eq!(groups.iter().sum::<usize>(), 40);
        assert!(groups.iter().all(|&n| n <= 8), "at most max per group: {groups:?}");
        assert!(groups.len() < 40, "writes queued together were grouped: {groups:?}");
    }

    #[tokio::test]
    async fn a_failed_statement_fails_each_write_of_its_group_and_the_next_group_runs() {
        let gather = Gather::spawn(4, |writes: Vec<u32>| async move {
            if writes.contains(&0) {
                Err(StoreError::Config("refused".into()))
            } else {
                Ok(writes)
            }
        });
        match gather.write(0).await {
            Err(GatherError::Store(e)) => assert_eq!(e.to_string(), "database configuration: refused"),
            other => panic!("expected the statement's error, got {other:?}"),
        }
        assert_eq!(gather.write(7).await.expect("the next group runs"), 7);
    }

    #[tokio::test]
    async fn fewer_outcomes_than_writes_is_an_error_not_a_wrong_answer() {
        let gather = Gather::spawn(4, |_writes: Vec<u32>| async move { Ok(Vec::<u32>::new()) });
        assert!(matches!(gather.write(1).await, Err(GatherError::Dropped)));
    }
}
