//! Ferry's PostgreSQL layer: the one place that speaks SQL.
//!
//! - [`pool`]: the connection pool, the migrations (`shared/store/migrations/`, applied
//!   at start-up under an advisory lock) and the readiness ping.
//! - one module per table or concern ([`uploads`], [`files`], [`replicas`],
//!   [`nodes`], [`node_status`], [`users`], [`outbox`], [`jobs`], [`workers`], [`pauses`], [`staging`],
//!   [`notify`], [`leader`]), [`wal`] (commits that release their locks before the WAL
//!   flush), and [`search`], the filters and paging the admin listings share,
//!   each a set of functions taking a [`GenericClient`] (a pooled connection or an open
//!   transaction, so callers decide what commits together) and returning typed rows.
//!
//! Rows are read by column name (`try_get("col")`), so a schema change fails as a
//! [`StoreError`], never as a panic; states are enums ([`UploadState`],
//! [`ReplicaState`], [`NodeState`], [`JobState`]) bound as parameters and parsed fallibly.

pub mod cached;
mod convert;
mod error;
pub mod files;
pub mod jobs;
pub mod leader;
pub mod node_status;
pub mod nodes;
pub mod notify;
pub mod outbox;
pub mod pauses;
pub mod pool;
pub mod replicas;
pub mod search;
pub mod staging;
mod states;
pub mod uploads;
pub mod users;
pub mod wal;
pub mod workers;

pub use deadpool_postgres::{GenericClient, Object as Client, Pool, Transaction};
pub use error::StoreError;
pub use pool::{bookkeeping_pool, migrate, pg_config, ping, pool};
pub use states::{AttemptOutcome, JobState, NodeState, ReplicaState, UnknownState, UploadState};
