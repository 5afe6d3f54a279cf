//! Job records as operators filter and steer them, shared by the admin page's Jobs
//! section and the admin JSON API (`/admin/api/jobs`): the listing query as a
//! `ferry_store::jobs::Filter`, and what can be done with a job (a dead letter replayed
//! or discarded, a waiting copy or check revoked). `ferry jobs` and
//! `ferry dlq` act through the same `ferry_store::jobs` functions.

use ferry_shared::types::FileId;
use ferry_store::jobs::{self, Filter};
use ferry_store::{JobState, StoreError};
use uuid::Uuid;

use crate::admin_ui::listing::Listing;
use crate::state::SharedState;

/// The job filter a listing query asks for (`upload`, `state`, `kind`, `user`, `name`,
/// `id`, `from`, `to`, the page's offset). Discarded dead letters are included.
///
/// # Errors
/// An unknown `state` or `kind`, in words for the caller's 400.
pub fn filter(listing: &Listing) -> Result<Filter, String> {
    let state = listing
        .state
        .as_deref()
        .map(|v| v.parse::<JobState>().map_err(|_| format!("Unknown job state {v:?}.")))
        .transpose()?;
    if let Some(kind) = &listing.kind {
        if !ferry_queue::Job::NAMES.contains(&kind.as_str()) {
            return Err(format!("Unknown job kind {kind:?}."));
        }
    }
    Ok(Filter {
        file: listing.upload.map(FileId),
        state,
        kind: listing.kind.clone(),
        older_than_secs: None,
        include_discarded: true,
        search: listing.search.clone(),
        offset: listing.paging().offset,
    })
}

/// What an operator does with a job from the admin page or the admin JSON API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobAction {
    /// A dead letter back in its queue under its own id, through the outbox
    /// (`jobs::replay`).
    Replay,
    /// A dead letter cancelled for good, never run (`jobs::discard`).
    Discard,
    /// A copy or check that waits (queued, or retrying between attempts) cancelled
    /// before it runs again (`jobs::revoke`, Celery's `revoke`).
    Revoke,
}

impl JobAction {
    /// `replay`, `discard` or `revoke` (a path segment); `None` for anything else.
    pub fn parse(action: &str) -> Option<JobAction> {
        match action {
            "replay" => Some(JobAction::Replay),
            "discard" => Some(JobAction::Discard),
            "revoke" => Some(JobAction::Revoke),
            _ => None,
        }
    }

    /// The `done` parameter of the page the admin page's action redirects to.
    pub fn done(self) -> &'static str {
        match self {
            JobAction::Replay => "replayed",
            JobAction::Discard => "discarded",
            JobAction::Revoke => "revoked",
        }
    }

    /// Does it to job `id`; `by` (who, from where: `alice, from the admin page`)
    /// is a revoked job's reason. A replay wakes this process's outbox relay.
    pub async fn apply(self, state: &SharedState, id: Uuid, by: &str) -> Result<Acted, StoreError> {
        let mut client = state.pool.get().await?;
        match self {
            JobAction::Replay => {
                let tx = client.transaction().await?;
                let replayed = jobs::replay(&tx, id, ferry_queue::JOBS_EXCHANGE).await?;
                tx.commit().await?;
                state.relay.wake();
                Ok(match replayed {
                    jobs::Replay::Replayed => Acted::Done,
                    jobs::Replay::NotDead => Acted::NotDeadLetter,
                    jobs::Replay::FileDeleted => Acted::FileDeleted,
                })
            }
            JobAction::Discard => {
                Ok(if jobs::discard(&client, id).await? { Acted::Done } else { Acted::NotDeadLetter })
            }
            JobAction::Revoke => Ok(match jobs::revoke(&client, id, by).await? {
                jobs::Revoke::Revoked => Acted::Done,
                jobs::Revoke::Unknown => Acted::Unknown,
                refused => Acted::NotRevoked(refused.refusal()),
            }),
        }
    }
}

/// What [`JobAction::apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acted {
    /// Replayed, discarded or revoked.
    Done,
    /// A replay or discard of a job that is no dead letter (unknown, finished,
    /// discarded, or replayed already).
    NotDeadLetter,
    /// A replay refused: a copy or check of a file deleted since ([`jobs::Replay`]).
    FileDeleted,
    /// A revoke of a job that does not exist.
    Unknown,
    /// A revoke refused, with why in words ([`jobs::Revoke::refusal`]).
    NotRevoked(String),
}

/// The detail of the refusal to replay a copy or check of a deleted file.
pub const FILE_DELETED: &str =
    "The job's file was deleted after the job died: a replay would find nothing to do. Discard the dead letter.";
