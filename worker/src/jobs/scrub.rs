//! Scrub (the `verify` job, on `ferry.scrub`): re-check a present replica's sha256 on its node. A copy that is
//! missing or differs is moved aside on the node (kept for inspection, never served:
//! the node agent only serves `<2 hex>/<uuid>`), counted, and marked failed, so the
//! monitor's top-up copies the file again from a good replica.

use std::sync::Arc;

use ferry_shared::types::{FileId, NodeId};
use ferry_store::replicas;

use super::{Ctx, JobError};
use ferry_node_commands::Command;

use crate::ssh::SshError;

pub async fn run(ctx: &Arc<Ctx>, file: FileId, node: NodeId) -> Result<(), JobError> {
    let target = replicas::scrub_target(&ctx.pool.get().await?, file, node).await?;
    let Some((expected, target)) = target else {
        // Not present any more (failed, being deleted, file gone): nothing to check.
        return finished(ctx, file, node).await;
    };
    let addr = super::node_addr(target);
    let verdict = match ctx.ssh.remote_sha256(&addr, file.0).await {
        Ok(actual) if actual.eq_ignore_ascii_case(&expected) => None,
        Ok(actual) => Some(format!("scrub: sha256 on node is {actual}, expected {expected}")),
        // sha256sum's own failure (exit 1) means the file is unreadable or gone;
        // anything else (ssh 255, timeouts) is the node being unreachable: retry.
        Err(SshError::Failed { program: "ssh", code: Some(1), stderr }) => Some(format!("scrub: {stderr}")),
        Err(e) => return Err(e.into()),
    };
    let client = ctx.pool.get().await?;
    match verdict {
        None => {
            replicas::mark_verified(&client, file, node).await?;
        }
        Some(reason) => {
            let aside = Command::MoveAside { file: file.0, at_unix: chrono::Utc::now().timestamp().max(0) as u64 };
            // Best effort: a missing file has nothing to move.
            let _ = ctx.ssh.run(&addr, &aside).await;
            replicas::fail_present(&client, node, &[file], &reason).await?;
            // API processes forget the withdrawn copy's location at once.
            ferry_store::notify::upload_event(&client, file).await?;
            ferry_shared::metrics::CORRUPT_REPLICAS.with_label_values(&[&node.to_string()]).inc();
            tracing::error!(file.id = %file, node.id = %node, reason, "corrupt replica moved aside; it will be repaired");
        }
    }
    Ok(())
}

/// Records that the replica's scrub is over (done, moot, or given up), so the monitor
/// may queue its next one (`monitor.scrub_max_queued` counts the outstanding ones).
pub async fn finished(ctx: &Arc<Ctx>, file: FileId, node: NodeId) -> Result<(), JobError> {
    replicas::clear_scrub(&ctx.pool.get().await?, file, node).await?;
    Ok(())
}
