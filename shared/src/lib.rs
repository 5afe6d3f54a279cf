//! Ferry's core library: everything two or more processes must agree on that needs
//! neither PostgreSQL nor RabbitMQ (the node agent links only this). The database
//! lives in `ferry-store` (`shared/store/`), the broker in `ferry-queue`
//! (`shared/queue/`).
//!
//! - [`config`]: the one typed configuration, TOML + `FERRY_*` env overrides.
//! - [`signing`]: the HMAC that lets a node agent trust a redirected download.
//! - [`types`]: newtypes parsed once at the edge.
//! - [`health`]: the node agent's `/health` answer, which the monitor parses.
//! - [`shutdown`], [`telemetry`], [`ops`], [`serve`]: process plumbing shared by every
//!   binary ([`serve`]: the HTTP server loop and its connection limits).

pub mod backoff;
pub mod config;
pub mod hashing;
pub mod health;
pub mod metrics;
pub mod ops;
pub mod request_heads;
pub mod serve;
pub mod shutdown;
pub mod signing;
pub mod slots;
pub mod staging;
pub mod startup;
pub mod telemetry;
pub mod types;
