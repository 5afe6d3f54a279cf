//! `ferry_store::wal` against the run's PostgreSQL: a transaction made with
//! `commit_without_flush` returns from its commit before its WAL is flushed (so its row
//! locks are gone before the disk flush), and `flush` returns only once that commit is
//! on disk.

use anyhow::{ensure, Result};
use ferry_store::wal;

#[tokio::test]
async fn a_commit_without_flush_is_on_disk_once_flush_returns() -> Result<()> {
    let mut client = ferry_tests::store_client(&ferry_tests::run_pg_url()?).await?;
    // The test servers run with `synchronous_commit=off` (and no fsync) for speed; a
    // production server commits synchronously, as this session now does. (Without
    // fsync the flush position still moves as it would, only the fsync is skipped.)
    client.batch_execute("SET synchronous_commit = on").await?;
    // A logged table (a temporary one writes no WAL), this test's own.
    let table = format!("wal_probe_{}", uuid::Uuid::new_v4().simple());
    client.batch_execute(&format!("CREATE TABLE {table} (n int)")).await?;
    let lsn = "SELECT pg_current_wal_insert_lsn()::text";
    let flushed_past = |before: &str| format!("SELECT pg_current_wal_flush_lsn() > '{before}'::pg_lsn");

    // Other tests' synchronous commits flush everything before them, so a commit left
    // unflushed is seen only between theirs: look until it has been seen a few times.
    let (mut tries, mut unflushed) = (0, 0);
    while unflushed < 3 && tries < 500 {
        tries += 1;
        let tx = client.transaction().await?;
        wal::commit_without_flush(&tx).await?;
        tx.execute(&format!("INSERT INTO {table} VALUES ($1)"), &[&tries]).await?;
        // Where the WAL ends before the commit record: flushed past it means committed
        // to disk.
        let before: String = tx.query_one(lsn, &[]).await?.get(0);
        tx.commit().await?;
        let on_disk: bool = client.query_one(&flushed_past(&before), &[]).await?.get(0);
        unflushed += usize::from(!on_disk);
        wal::flush(&client).await?;
        let on_disk: bool = client.query_one(&flushed_past(&before), &[]).await?.get(0);
        ensure!(on_disk, "try {tries}: the commit was not on disk when flush returned");
    }
    client.batch_execute(&format!("DROP TABLE {table}")).await?;
    ensure!(
        unflushed >= 3,
        "the commit waited for the flush in {tries} of {tries} tries (seen unflushed {unflushed} times)"
    );
    Ok(())
}
