//! `ferry-api`: the thin HTTP front. Authenticates, streams chunks to the staging
//! volume, records uploads and files in PostgreSQL, enqueues jobs through the outbox,
//! and redirects downloads to the nearest healthy node.

pub mod admin_ui;
pub mod auth;
pub mod error;
pub mod extract;
pub mod form;
pub mod heartbeats;
pub mod job_ops;
pub mod locate;
pub mod login_limit;
pub mod nearest;
pub mod openapi;
pub mod page;
pub mod replica_cache;
pub mod routes;
pub mod state;
pub mod tokens;
pub mod tus;
pub mod upload;
pub mod uploads;
pub mod web;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use axum::Router;
use ferry_queue::outbox::{self, RelayWaker};
use ferry_queue::Publisher;
use ferry_shared::config::Config;
use ferry_shared::ops;
use ferry_store::StoreError;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::heartbeats::HeartbeatTable;
use crate::state::{AppState, SharedState};
use crate::tokens::Keys;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Db(#[from] StoreError),
    #[error("serving HTTP: {0}")]
    Io(#[from] std::io::Error),
}

/// Builds the router over `state` (public so tests can drive it in-process).
pub fn router(state: SharedState) -> Router {
    let ready = ferry_queue::ready::db_and_broker(state.pool.clone(), state.publisher.clone());
    Router::new()
        .merge(routes::token::router())
        .merge(routes::upload::router())
        .merge(routes::files::router())
        .merge(routes::download::router())
        .merge(routes::staging::router())
        .merge(routes::admin::router())
        .merge(tus::router(&state.config.api.cors_origins))
        .merge(openapi::router())
        .merge(admin_ui::router())
        .merge(web::router())
        .fallback(|| async { ApiError::NotFound { what: "Resource" } })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        // Bodies are streamed with limits of our own (chunk, file, quota, form).
        .layer(DefaultBodyLimit::disable())
        .route_layer(axum::middleware::from_fn(ops::track))
        .with_state(state)
        .merge(ops::routes(ready))
        // No answer of the API is to be sniffed for another type than it says (the
        // staging copy of an upload named .txt may hold HTML).
        .layer(tower_http::set_header::SetResponseHeaderLayer::if_not_present(
            axum::http::header::X_CONTENT_TYPE_OPTIONS,
            axum::http::HeaderValue::from_static("nosniff"),
        ))
        // A bug must cost one request a 500, never the connection or the process.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            ApiError::Internal("handler panicked".into()).into_response()
        }))
}

/// Runs the API on `listener` until `shutdown`.
pub async fn run(config: Config, listener: TcpListener, shutdown: CancellationToken) -> Result<(), RunError> {
    let pool = ferry_store::pool(&config.database)?;
    migrate_with_retry(&pool, &shutdown).await?;
    tokio::fs::create_dir_all(&config.storage.staging_dir).await?;
    let publisher =
        Arc::new(Publisher::new(config.broker.url.expose(), "ferry-api publisher", config.broker.heartbeat_secs));
    let (completions, _) = broadcast::channel(1024);
    let state = Arc::new(AppState {
        keys: Keys::new(config.auth.jwt_secret.expose().as_bytes(), config.auth.token_ttl_secs),
        pool: pool.clone(),
        publisher: publisher.clone(),
        relay: RelayWaker::default(),
        heartbeats: HeartbeatTable::new(Duration::from_secs(config.api.heartbeat_stale_secs)),
        completions: completions.clone(),
        replicas: replica_cache::ReplicaCache::new(Duration::from_millis(config.api.replica_cache_ms), 100_000),
        staging_copies: routes::staging::copies(&config),
        intake: ferry_shared::slots::KeyedSlots::new(
            config.api.max_concurrent_uploads,
            config.api.max_concurrent_uploads_per_user,
        ),
        login_limit: login_limit::LoginLimiter::new(
            config.auth.login_attempts_per_minute_per_address,
            config.auth.login_attempts_per_minute_per_user,
        ),
        shutdown: shutdown.clone(),
        config,
    });
    let tasks = tokio_util::task::TaskTracker::new();
    tasks.spawn(outbox::run_relay(pool, publisher, state.relay.clone(), shutdown.clone()));
    tasks.spawn(heartbeats::run_consumer(
        state.config.broker.url.expose().to_owned(),
        state.config.broker.heartbeat_secs,
        state.heartbeats.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(replica_cache::forget_on_events(state.clone(), completions.subscribe(), shutdown.clone()));
    tasks.spawn(ferry_store::notify::run_listener(
        ferry_store::pg_config(&state.config.database)?,
        completions,
        shutdown.clone(),
    ));
    tasks.close();
    tracing::info!(listen = %listener.local_addr()?, "ferry-api serving");
    let limits = ferry_shared::serve::Limits::from_config(&state.config.http);
    ferry_shared::serve::serve(listener, router(state), shutdown, limits).await?;
    tasks.wait().await;
    Ok(())
}

/// Migrations at start-up, retried while the database is still coming up.
pub async fn migrate_with_retry(pool: &ferry_store::Pool, shutdown: &CancellationToken) -> Result<(), StoreError> {
    let mut attempt = 0;
    loop {
        match ferry_store::migrate(pool).await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_unavailable() && attempt < 30 && !shutdown.is_cancelled() => {
                tracing::warn!(error = %e, "database not reachable yet; retrying migrations");
                tokio::time::sleep(ferry_shared::backoff::delay(
                    attempt,
                    Duration::from_millis(200),
                    Duration::from_secs(2),
                ))
                .await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}
