//! Ferry's RabbitMQ side, shared by every process that enqueues or consumes work.
//!
//! - [`topology`]: exchanges, quorum queues, retry tiers and dead letters, declared
//!   idempotently; connections.
//! - [`messages`]: the job and heartbeat bodies.
//! - [`publisher`]: persistent, mandatory publishing with publisher confirms.
//! - [`outbox`]: enqueueing a job in the caller's transaction and the relay that
//!   publishes outbox rows (SQL in `ferry_store::outbox`).
//! - [`completion`]: recording a verified upload as a file with its replicate jobs.
//! - [`expiry`]: expiring abandoned uploads with their delete jobs.
//! - [`management`]: queue counts and message rates from the RabbitMQ management API.
//! - [`ready`]: the readiness check of processes that need PostgreSQL and RabbitMQ.

pub mod completion;
pub mod expiry;
pub mod management;
pub mod messages;
pub mod outbox;
pub mod publisher;
pub mod ready;
pub mod topology;

pub use messages::{Heartbeat, Job, JobKind};
pub use publisher::{
    attempt_of, text_header, OutgoingMessage, PublishError, Publisher, QueueCounts, ATTEMPT_HEADER,
    DEAD_LETTER_HEADERS, FILE_HEADER, KIND_HEADER, NODE_HEADER, REASON_HEADER, WORKER_HEADER,
};
pub use topology::{
    connect, declare_heartbeat_exchange, declare_topology, retire_per_kind_retry_queues, retry_delay, retry_queue,
    DEAD_EXCHANGE, DELIVERY_LIMIT, HEARTBEAT_EXCHANGE, JOBS_EXCHANGE, RETRY_TIERS,
};
