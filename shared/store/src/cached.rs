//! Every statement of the store is prepared once per connection and then only bound
//! and executed. A query given as text costs tokio-postgres two round trips (Parse +
//! Describe, then Bind + Execute) and PostgreSQL a parse and plan each time; a cached
//! statement costs one round trip, and PostgreSQL switches to a generic plan after five
//! executions (PostgreSQL docs, PREPARE, "plan_cache_mode"). The cache is deadpool's
//! per-connection statement cache ([`GenericClient::prepare_cached`]), kept across
//! checkouts of the connection; the store's SQL is a fixed set of strings (the few
//! built with `format!` have a handful of variants), so it stays small.

use std::future::Future;

use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Error, Row};

/// The cached counterparts of [`GenericClient`]'s `query`, `query_one`, `query_opt`
/// and `execute`; same arguments, same results.
pub trait Cached: GenericClient {
    /// All rows of `sql`.
    fn query_cached<'a>(
        &'a self,
        sql: &'a str,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Vec<Row>, Error>> + Send + 'a {
        async move {
            let statement = self.prepare_cached(sql).await?;
            self.query(&statement, params).await
        }
    }

    /// Exactly one row of `sql` (an error otherwise).
    fn query_one_cached<'a>(
        &'a self,
        sql: &'a str,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Row, Error>> + Send + 'a {
        async move {
            let statement = self.prepare_cached(sql).await?;
            self.query_one(&statement, params).await
        }
    }

    /// At most one row of `sql` (an error for more).
    fn query_opt_cached<'a>(
        &'a self,
        sql: &'a str,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Option<Row>, Error>> + Send + 'a {
        async move {
            let statement = self.prepare_cached(sql).await?;
            self.query_opt(&statement, params).await
        }
    }

    /// Rows changed by `sql`.
    fn execute_cached<'a>(
        &'a self,
        sql: &'a str,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<u64, Error>> + Send + 'a {
        async move {
            let statement = self.prepare_cached(sql).await?;
            self.execute(&statement, params).await
        }
    }
}

impl<C: GenericClient + ?Sized> Cached for C {}
