//! The state columns as enums: bound as parameters and read back with fallible
//! parsing, so an unknown text in the database is an error, never a silent default.

use std::error::Error;
use std::fmt;
use std::str::FromStr;

use bytes::BytesMut;
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};

/// A state text the code does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct UnknownState {
    /// Which enum was being parsed (`upload state`, ...).
    pub kind: &'static str,
    pub value: String,
}

macro_rules! state_enum {
    ($(#[$meta:meta])* $name:ident, $kind:literal, { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every state, in the order of the lifecycle.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The text stored in the database and shown in JSON.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownState;
            fn from_str(s: &str) -> Result<Self, UnknownState> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(UnknownState { kind: $kind, value: other.to_owned() }),
                }
            }
        }

        impl ToSql for $name {
            fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
                self.as_str().to_sql(ty, out)
            }

            fn accepts(ty: &Type) -> bool {
                <&str as ToSql>::accepts(ty)
            }

            to_sql_checked!();
        }

        impl<'a> FromSql<'a> for $name {
            fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
                Ok(<&str as FromSql>::from_sql(ty, raw)?.parse::<$name>()?)
            }

            fn accepts(ty: &Type) -> bool {
                <&str as FromSql>::accepts(ty)
            }
        }
    };
}

state_enum!(
    /// `uploads.status`: `uploading → assembling → complete | failed`, or `expired`.
    UploadState, "upload state", {
        /// Chunks are arriving.
        Uploading => "uploading",
        /// The client sent its md5; a worker is checking the bytes.
        Assembling => "assembling",
        /// Verified; the file row exists.
        Complete => "complete",
        /// The check failed (see `uploads.error`).
        Failed => "failed",
        /// Abandoned before completion.
        Expired => "expired",
    }
);

state_enum!(
    /// `replicas.state`: `pending → copying → present`, or `failed`, `deleting`.
    ReplicaState, "replica state", {
        /// Chosen as a target; no copy yet.
        Pending => "pending",
        /// A worker is copying it.
        Copying => "copying",
        /// Copied and verified on the node: downloads may be sent there.
        Present => "present",
        /// The copy failed or was found corrupt; the repair replaces it.
        Failed => "failed",
        /// Being removed from its node.
        Deleting => "deleting",
    }
);

state_enum!(
    /// `nodes.state`, set by an operator.
    NodeState, "node state", {
        /// Serves downloads and gets new replicas.
        Active => "active",
        /// Serves downloads, gets no new replicas; its replicas move elsewhere.
        Draining => "draining",
        /// Neither serves nor gets replicas.
        Disabled => "disabled",
    }
);

state_enum!(
    /// `jobs.state`: `queued → active → done`, or `retrying` (parked in a delay tier, then
    /// `active` again), `dead` (given up: dead-lettered), `cancelled` (discarded by an
    /// operator).
    JobState, "job state", {
        /// Written to the outbox (or re-enqueued, or replayed); no worker has it yet.
        Queued => "queued",
        /// A worker is running it (`jobs.worker_id`).
        Active => "active",
        /// Failed transiently; waiting in a retry tier for its next attempt.
        Retrying => "retrying",
        /// Finished; the state it describes is committed.
        Done => "done",
        /// Given up and dead-lettered (`jobs.error` says why); replayable.
        Dead => "dead",
        /// Ended by an operator, never run again: a dead letter discarded, a job
        /// cancelled with its upload, or one revoked while it waited.
        Cancelled => "cancelled",
    }
);

state_enum!(
    /// `job_attempts.outcome`: how an attempt that did not succeed ended.
    AttemptOutcome, "attempt outcome", {
        /// It failed with an error; the job was parked for a later attempt.
        Failed => "failed",
        /// It failed and the job was given up: dead-lettered.
        Dead => "dead",
        /// Its worker went quiet past the job's time limit; the reconciler re-enqueued
        /// (or, lost too often, gave up) the job.
        Lost => "lost",
    }
);

impl JobState {
    /// Whether the job still has work ahead (the reconciler watches these).
    pub fn is_open(self) -> bool {
        matches!(self, JobState::Queued | JobState::Active | JobState::Retrying)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_unknown_text_is_an_error() {
        for s in UploadState::ALL {
            assert_eq!(s.as_str().parse::<UploadState>(), Ok(*s));
        }
        for s in ReplicaState::ALL {
            assert_eq!(s.as_str().parse::<ReplicaState>(), Ok(*s));
        }
        for s in NodeState::ALL {
            assert_eq!(s.as_str().parse::<NodeState>(), Ok(*s));
        }
        for s in JobState::ALL {
            assert_eq!(s.as_str().parse::<JobState>(), Ok(*s));
        }
        for s in AttemptOutcome::ALL {
            assert_eq!(s.as_str().parse::<AttemptOutcome>(), Ok(*s));
        }
        assert!("running".parse::<JobState>().is_err());
        assert!("".parse::<UploadState>().is_err());
        assert!("Uploading".parse::<UploadState>().is_err());
        assert!("gone".parse::<ReplicaState>().is_err());
        assert!("retired".parse::<NodeState>().is_err());
    }
}
