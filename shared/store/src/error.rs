//! The store layer's one error type.

use deadpool_postgres::PoolError;

/// Why a store function failed. Messages are for logs; they never reach an HTTP body.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL or pool settings are unusable.
    #[error("database configuration: {0}")]
    Config(String),
    /// No connection could be had from the pool within its wait timeout.
    #[error("database unavailable: {0}")]
    Pool(#[from] PoolError),
    /// A query failed (or the connection broke under it).
    #[error("database error: {}", describe(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// A row held a value the code does not know (e.g. an unknown state text): the
    /// schema and this build disagree.
    #[error("unexpected value in {column}: {value:?}")]
    Corrupt { column: &'static str, value: String },
    /// A value to store does not fit its column (a byte count beyond `i64::MAX`).
    #[error("{what} {value} does not fit the database column")]
    OutOfRange { what: &'static str, value: u64 },
}

/// tokio-postgres' Display says only "db error" for server errors; keep the server's
/// message.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

impl StoreError {
    /// True when the database could not be reached at all (as opposed to a query
    /// failing): callers answer 503 and retry later.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Pool(_) => true,
            StoreError::Postgres(e) => e.is_closed() || e.as_db_error().is_none(),
            StoreError::Config(_) | StoreError::Corrupt { .. } | StoreError::OutOfRange { .. } => false,
        }
    }

    /// True when a text value held a character PostgreSQL cannot store, the NUL
    /// character U+0000 (SQLSTATE 22021 `character_not_in_repertoire`): the caller's
    /// input was refused, nothing failed.
    pub fn is_invalid_text(&self) -> bool {
        matches!(self, StoreError::Postgres(e)
            if e.code() == Some(&tokio_postgres::error::SqlState::CHARACTER_NOT_IN_REPERTOIRE))
    }

    /// True when a write for a user was refused because the user no longer exists: the
    /// account was deleted (`users::delete`) while one of its requests was under way,
    /// and the foreign key of `uploads` or `files` to `users` refused the new row
    /// (SQLSTATE 23503). Nothing was written.
    pub fn is_owner_gone(&self) -> bool {
        matches!(self, StoreError::Postgres(e)
            if e.code() == Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION)
                && e.as_db_error().and_then(|d| d.constraint())
                    .is_some_and(|c| c == "uploads_user_id_fkey" || c == "files_user_id_fkey"))
    }

    /// True when a unique constraint refused the write (e.g. a duplicate node name).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Postgres(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION))
    }
}
