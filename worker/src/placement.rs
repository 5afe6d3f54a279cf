//! Choosing target nodes for a file's replicas.

use deadpool_postgres::GenericClient;
use ferry_shared::types::NodeId;

/// Up to `count` distinct nodes that are active, reported up recently, and have room
/// for `size` plus the reserve, excluding `exclude`. Prefers free space, with ±10 %
/// jitter so nodes with about the same room share the load instead of one always
/// winning.
pub async fn choose_nodes(
    client: &impl GenericClient,
    count: i64,
    size: i64,
    reserve: i64,
    fresh_secs: f64,
    exclude: &[i32],
) -> Result<Vec<NodeId>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT n.id FROM nodes n JOIN node_status s ON s.node_id = n.id
             WHERE n.state = 'active' AND s.up
               AND s.checked_at > now() - make_interval(secs => $4::float8)
               AND s.free_bytes >= $2::bigint + $3::bigint
               AND NOT (n.id = ANY($5))
             ORDER BY s.free_bytes::float8 * (0.9 + random() * 0.2) DESC
             LIMIT $1",
            &[&count, &size, &reserve, &fresh_secs, &exclude],
        )
        .await?;
    Ok(rows.iter().map(|r| NodeId(r.get(0))).collect())
}
