//! Commits that release their locks before the WAL flush, made durable after it.
//!
//! A transaction keeps its row locks until its commit has returned, and a synchronous
//! commit returns only once the WAL is flushed to disk. A transaction that takes a row
//! every request of one user needs (the quota check, `users::lock_quota_left`) so holds
//! it through a disk flush, and that user's requests commit one flush at a time: the
//! bench's 1,000 single-request uploads of one user from 16 threads waited 35-52 ms on
//! average for that row, and one user's intake stayed near 170-220 uploads/s.
//!
//! Such a transaction commits asynchronously instead ([`commit_without_flush`]:
//! `synchronous_commit = off` for that transaction only, PostgreSQL 15 documentation
//! 30.4 "Asynchronous Commit"), so its locks go as soon as the commit record is in the
//! WAL buffers, and the caller then waits for the flush outside any lock
//! ([`flush`]) before it tells anyone the write happened. The WAL is one sequence, so
//! the flush of a later record covers every earlier one, and concurrent waiters share
//! one flush (group commit). Others may see the rows before they are durable; after a
//! crash in that window the rows are gone, as is every later row that depends on
//! them, and the client, never answered, retries.

use crate::cached::Cached;
use crate::{GenericClient, StoreError, Transaction};

/// Makes `tx`'s commit not wait for the WAL flush (`SET LOCAL synchronous_commit =
/// off`). Call [`flush`] after the commit, before answering.
///
/// # Errors
/// [`StoreError`] when the setting cannot be made.
pub async fn commit_without_flush(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.query_one_cached("SELECT set_config('synchronous_commit', 'off', true)", &[]).await?;
    Ok(())
}

/// Returns once everything committed before the call (by any session) is flushed to
/// disk: a transactional logical message (`pg_logical_emit_message`, PostgreSQL 9.6+,
/// any `wal_level`; it touches no table) committed synchronously on `c`, whose flush
/// covers every earlier WAL record. `c` must not be inside a transaction.
///
/// # Errors
/// [`StoreError`] when the commit fails; whether the earlier commits are durable is
/// then unknown (treat the write as failed).
pub async fn flush(c: &impl GenericClient) -> Result<(), StoreError> {
    c.query_one_cached("SELECT pg_logical_emit_message(true, 'ferry.flush', '')", &[]).await?;
    Ok(())
}
