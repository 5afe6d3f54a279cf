//! Ferry's common library: everything two or more processes must agree on.
//!
//! - [`config`]: the one typed configuration, TOML + `FERRY_*` env overrides.
//! - [`db`]: the PostgreSQL pool and the migrations run at start-up.
//! - [`queue`]: RabbitMQ topology, connections and job message types.
//! - [`outbox`]: the transactional outbox and its relay (publisher confirms).
//! - [`signing`]: the HMAC that lets a node agent trust a redirected download.
//! - [`types`]: newtypes parsed once at the edge.
//! - [`shutdown`], [`telemetry`], [`ops`]: process plumbing shared by every binary.

pub mod backoff;
pub mod config;
pub mod db;
pub mod hashing;
pub mod metrics;
pub mod ops;
pub mod outbox;
pub mod queue;
pub mod shutdown;
pub mod signing;
pub mod staging;
pub mod telemetry;
pub mod types;
