//! The `nodes` table: storage nodes, the rules a node record must follow (shared by
//! the admin API and the `ferry` CLI), and the placement query.

use crate::cached::Cached;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use ferry_shared::config::Config;
use ferry_shared::types::{ByteSize, NodeId};
use serde::Deserialize;

use crate::convert::{size_from_db, size_to_db};
use crate::{NodeState, ReplicaState, StoreError};

/// How a worker reaches a node over SSH (`ssh_user@ssh_host:ssh_port`, files under
/// `root_path`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    pub host: String,
    pub port: i32,
    pub user: String,
    /// Absolute storage root on the node.
    pub root: String,
}

impl SshTarget {
    /// Reads the `ssh_host`, `ssh_port`, `ssh_user`, `root_path` columns.
    pub(crate) fn from_row(row: &tokio_postgres::Row) -> Result<SshTarget, StoreError> {
        Ok(SshTarget {
            host: row.try_get("ssh_host")?,
            port: row.try_get("ssh_port")?,
            user: row.try_get("ssh_user")?,
            root: row.try_get("root_path")?,
        })
    }
}

/// What the placement query needs to know.
#[derive(Debug, Clone, Copy)]
pub struct Placement<'a> {
    /// How many nodes at most.
    pub count: i64,
    /// The file's size.
    pub size: ByteSize,
    /// Room every node keeps free beyond the file (`storage.node_reserve_bytes`).
    pub reserve: ByteSize,
    /// A node's last probe must be younger than this many seconds.
    pub fresh_secs: f64,
    /// Nodes that already hold (or are getting) a copy.
    pub exclude: &'a [NodeId],
}

impl<'a> Placement<'a> {
    /// Up to `count` nodes for a file of `size`, none of `exclude`, by the configured
    /// rule: room for the file plus `storage.node_reserve_bytes`, a probe younger than
    /// `api.heartbeat_stale_secs`, an sshd not known to be down (`ssh_up` false after
    /// two failed checks in a row: every copy goes through it), and a root not known to
    /// refuse writes (`writable` false after the agent's last write check failed). What
    /// a new file's placement and the repair both ask.
    pub fn configured(config: &Config, count: i64, size: ByteSize, exclude: &'a [NodeId]) -> Placement<'a> {
        Placement {
            count,
            size,
            reserve: ByteSize(config.storage.node_reserve_bytes),
            fresh_secs: config.api.heartbeat_stale_secs as f64,
            exclude,
        }
    }
}

/// A node whose last checks leave it able to take a new copy: its sshd not known to be
/// down (`ssh_up` false) and its root not known to refuse writes (`writable` false). SQL
/// over `node_status s`; what placement (`eligible_sql`) and the repair's count of
/// copies still being made (`crate::replicas`) both ask.
macro_rules! takes_copies_sql {
    () => {
        "s.ssh_up IS NOT FALSE AND s.writable IS NOT FALSE"
    };
}
pub(crate) use takes_copies_sql;

/// The placement rule as one `SELECT n.id ...` (see [`eligible`]), with parameters
/// `$1`-`$6` as [`Placement::params`] gives them; shared with
/// [`crate::replicas::place`], which inserts the rows of the nodes it picks.
macro_rules! eligible_sql {
    () => {
        concat!(
            "SELECT n.id FROM nodes n JOIN node_status s ON s.node_id = n.id
         WHERE n.state = $6 AND s.up AND ",
            $crate::nodes::takes_copies_sql!(),
            "
           AND s.checked_at > now() - make_interval(secs => $4::float8)
           AND s.free_bytes >= $2::bigint + $3::bigint
           AND NOT (n.id = ANY($5))
         ORDER BY s.free_bytes::float8 * (0.9 + random() * 0.2) DESC
         LIMIT $1"
        )
    };
}
pub(crate) use eligible_sql;

/// The values of [`eligible_sql`]'s `$1`-`$5` (`$6` is [`NodeState::Active`]).
pub(crate) struct PlacementParams {
    pub count: i64,
    pub size: i64,
    pub reserve: i64,
    pub fresh_secs: f64,
    pub exclude: Vec<i32>,
}

impl Placement<'_> {
    /// This placement as [`eligible_sql`]'s parameters.
    ///
    /// # Errors
    /// A size beyond PostgreSQL's `bigint`.
    pub(crate) fn params(&self) -> Result<PlacementParams, StoreError> {
        Ok(PlacementParams {
            count: self.count,
            size: size_to_db("file size", self.size)?,
            reserve: size_to_db("node reserve", self.reserve)?,
            fresh_secs: self.fresh_secs,
            exclude: self.exclude.iter().map(|n| n.0).collect(),
        })
    }
}

/// Up to `count` distinct nodes that are active, reported up recently, and have room
/// for `size` plus the reserve, excluding `exclude`. Prefers free space, with ±10 %
/// jitter so nodes with about the same room share the load instead of one always
/// winning. The one placement rule of the assembly and the repair.
pub async fn eligible(c: &impl GenericClient, p: Placement<'_>) -> Result<Vec<NodeId>, StoreError> {
    let PlacementParams { count, size, reserve, fresh_secs, exclude } = p.params()?;
    let rows =
        c.query_cached(eligible_sql!(), &[&count, &size, &reserve, &fresh_secs, &exclude, &NodeState::Active]).await?;
    rows.iter().map(|r| Ok(NodeId(r.try_get("id")?))).collect()
}

/// A node the monitor probes.
#[derive(Debug, Clone)]
pub struct ProbeTarget {
    pub id: NodeId,
    /// Base URL of its node agent.
    pub public_url: String,
    /// Where its sshd listens.
    pub ssh_host: String,
    pub ssh_port: u16,
}

/// Every node, by id (disabled ones too: their health still shows in the admin page).
pub async fn probe_targets(c: &impl GenericClient) -> Result<Vec<ProbeTarget>, StoreError> {
    let rows = c.query_cached("SELECT id, public_url, ssh_host, ssh_port FROM nodes ORDER BY id", &[]).await?;
    rows.iter()
        .map(|r| {
            Ok(ProbeTarget {
                id: NodeId(r.try_get("id")?),
                public_url: r.try_get("public_url")?,
                ssh_host: r.try_get("ssh_host")?,
                ssh_port: u16::try_from(r.try_get::<_, i32>("ssh_port")?).unwrap_or(22),
            })
        })
        .collect()
}

/// Nodes that are not disabled and were up at their last probe, with how to reach them.
pub async fn reachable(c: &impl GenericClient) -> Result<Vec<(NodeId, SshTarget)>, StoreError> {
    let rows = c
        .query_cached(
            "SELECT n.id, n.ssh_host, n.ssh_port, n.ssh_user, n.root_path FROM nodes n
             JOIN node_status s ON s.node_id = n.id WHERE n.state <> $1 AND s.up",
            &[&NodeState::Disabled],
        )
        .await?;
    rows.iter().map(|r| Ok((NodeId(r.try_get("id")?), SshTarget::from_row(r)?))).collect()
}

/// Why a node record was refused.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("{0}")]
    Invalid(String),
    #[error("a node with that name already exists")]
    Exists,
    #[error("no such node")]
    NotFound,
    /// Removal asked for a node still in service: drain it first.
    #[error("the node is active: drain it first, so its files are copied elsewhere and it gets no new ones")]
    Active,
    /// Removal asked for a node that still holds replica rows (any state).
    #[error("the node still holds {0} replica(s): drain it and wait until its replicas reach 0")]
    HoldsReplicas(i64),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for NodeError {
    fn from(e: StoreError) -> Self {
        if e.is_unique_violation() {
            NodeError::Exists
        } else {
            NodeError::Store(e)
        }
    }
}

impl From<tokio_postgres::Error> for NodeError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::from(e).into()
    }
}

/// A node as submitted. Every field is optional so PATCH can reuse it; POST checks
/// the required ones.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeInput {
    pub name: Option<String>,
    pub ssh_host: Option<String>,
    pub ssh_port: Option<i32>,
    pub ssh_user: Option<String>,
    pub root_path: Option<String>,
    pub public_url: Option<String>,
    pub region: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    /// `active`, `draining` or `disabled`.
    pub state: Option<String>,
}

/// Longest `root_path` accepted (Linux's `PATH_MAX` is 4096; ours stay far below).
const MAX_PATH_BYTES: usize = 1024;
/// Longest `region` accepted: a label shown on the admin page.
const MAX_REGION_CHARS: usize = 64;
/// Longest `public_url` accepted.
const MAX_URL_BYTES: usize = 2048;

/// `http(s)://host[:port][/path]`: the monitor appends `/health` and the API
/// `/files/<id>?<signature>`, so user info (`@`), a query (`?`) or a fragment (`#`)
/// would send probes and downloads somewhere the URL does not plainly say.
fn valid_public_url(url: &str) -> bool {
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
    let Some(rest) = rest else { return false };
    let host = rest.split('/').next().unwrap_or_default();
    url.len() <= MAX_URL_BYTES
        && !host.is_empty()
        && !url.bytes().any(|b| b.is_ascii_control() || b" ?#@\\".contains(&b) || !b.is_ascii())
}

fn invalid(detail: impl Into<String>) -> NodeError {
    NodeError::Invalid(detail.into())
}

impl NodeInput {
    /// Checks every given field against the node rules (`detail` says which failed).
    pub fn validate(&self) -> Result<(), NodeError> {
        let simple = |s: &str| {
            !s.is_empty() && s.len() <= 253 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-:[]".contains(&b))
        };
        if let Some(name) = &self.name {
            if !(1..=63).contains(&name.len())
                || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            {
                return Err(invalid("name must be 1-63 letters, digits, '.', '_' or '-'."));
            }
        }
        if self.ssh_host.as_deref().is_some_and(|h| !simple(h)) {
            return Err(invalid("ssh_host must be a host name or IP address."));
        }
        if self.ssh_port.is_some_and(|p| !(1..=65535).contains(&p)) {
            return Err(invalid("ssh_port must be 1-65535."));
        }
        if self.ssh_user.as_deref().is_some_and(|u| {
            u.is_empty()
                || u.len() > 32
                || !u.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
                || u.starts_with('-')
        }) {
            return Err(invalid("ssh_user must be a plain user name."));
        }
        if self.root_path.as_deref().is_some_and(|p| {
            p.len() > MAX_PATH_BYTES
                || !p.starts_with('/')
                || p.split('/').any(|c| c == ".." || c == ".")
                || p.bytes().any(|b| b.is_ascii_control() || b == b' ')
        }) {
            return Err(invalid("root_path must be an absolute path without '.' or '..' components or spaces."));
        }
        if self.public_url.as_deref().is_some_and(|u| !valid_public_url(u)) {
            return Err(invalid(
                "public_url must be an http(s) URL of at most 2048 bytes: scheme, host, optional port and path, \
                 without user info, query or fragment.",
            ));
        }
        if self.region.as_deref().is_some_and(|r| {
            r.chars().count() > MAX_REGION_CHARS
                || r.chars().any(|c| c.is_control() || ferry_shared::types::is_format_char(c))
        }) {
            return Err(invalid(format!("region must be at most {MAX_REGION_CHARS} printable characters.")));
        }
        if self.lat.is_some_and(|v| !(-90.0..=90.0).contains(&v))
            || self.lon.is_some_and(|v| !(-180.0..=180.0).contains(&v))
        {
            return Err(invalid("lat must be within ±90 and lon within ±180."));
        }
        if self.state.as_deref().is_some_and(|s| s.parse::<NodeState>().is_err()) {
            return Err(invalid("state must be active, draining or disabled."));
        }
        Ok(())
    }
}

/// Inserts a validated node and returns its id.
pub async fn insert(client: &impl GenericClient, input: &NodeInput) -> Result<NodeId, NodeError> {
    input.validate()?;
    let required = |v: &Option<String>, name: &str| v.clone().ok_or_else(|| invalid(format!("{name} is required.")));
    // Required, not defaulted: every download goes to the node nearest its client, and
    // 0,0 (the old default) is a real point in the Gulf of Guinea.
    let (Some(lat), Some(lon)) = (input.lat, input.lon) else {
        return Err(invalid("lat and lon are required: where the node is, for the nearest-node choice."));
    };
    let row = client
        .query_one_cached(
            "INSERT INTO nodes (name, ssh_host, ssh_port, ssh_user, root_path, public_url, region, lat, lon, state)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
            &[
                &required(&input.name, "name")?,
                &required(&input.ssh_host, "ssh_host")?,
                &input.ssh_port.unwrap_or(22),
                &required(&input.ssh_user, "ssh_user")?,
                &required(&input.root_path, "root_path")?,
                &required(&input.public_url, "public_url")?,
                &input.region.clone().unwrap_or_default(),
                &lat,
                &lon,
                &input.state.clone().unwrap_or_else(|| NodeState::Active.as_str().into()),
            ],
        )
        .await?;
    Ok(NodeId(row.try_get("id")?))
}

/// Applies the given fields to node `id`.
pub async fn update(client: &impl GenericClient, id: NodeId, input: &NodeInput) -> Result<(), NodeError> {
    input.validate()?;
    let updated = client
        .execute_cached(
            "UPDATE nodes SET name = COALESCE($2, name), ssh_host = COALESCE($3, ssh_host),
                ssh_port = COALESCE($4, ssh_port), ssh_user = COALESCE($5, ssh_user),
                root_path = COALESCE($6, root_path), public_url = COALESCE($7, public_url),
                region = COALESCE($8, region), lat = COALESCE($9, lat), lon = COALESCE($10, lon),
                state = COALESCE($11, state)
             WHERE id = $1",
            &[
                &id.0,
                &input.name,
                &input.ssh_host,
                &input.ssh_port,
                &input.ssh_user,
                &input.root_path,
                &input.public_url,
                &input.region,
                &input.lat,
                &input.lon,
                &input.state,
            ],
        )
        .await?;
    if updated == 0 {
        return Err(NodeError::NotFound);
    }
    Ok(())
}

/// A node row.
#[derive(Debug, Clone)]
pub struct Node {
    pub id: NodeId,
    pub name: String,
    pub ssh: SshTarget,
    pub public_url: String,
    pub region: String,
    /// Degrees.
    pub lat: f64,
    pub lon: f64,
    pub state: NodeState,
}

/// The monitor's last probe of a node, if any.
#[derive(Debug, Clone, Default)]
pub struct LastProbe {
    pub up: Option<bool>,
    pub free: Option<ByteSize>,
    pub total: Option<ByteSize>,
    /// When the last probe ran (good or not).
    pub checked_at: Option<DateTime<Utc>>,
    /// When a probe last found the node up: its last good heartbeat.
    pub last_up_at: Option<DateTime<Utc>>,
    /// Since when the probes have failed (`None` while up).
    pub down_since: Option<DateTime<Utc>>,
    /// Why the last probe counted it down.
    pub error: Option<String>,
    /// Whether its sshd answers the monitor's checks with an SSH identification string:
    /// false after two failed checks in a row, true at the next good one (`None`: not
    /// checked yet). Every copy to the node goes through it.
    pub ssh_up: Option<bool>,
    /// Why the last check of its sshd failed (`None` once one succeeds).
    pub ssh_error: Option<String>,
    pub ssh_checked_at: Option<DateTime<Utc>>,
    /// Whether the agent could write a file at its storage root at its last write check
    /// (`None`: no agent that checks has answered yet). Every copy writes there.
    pub writable: Option<bool>,
    /// Why the last write check failed (`None` once one passes).
    pub write_error: Option<String>,
    pub write_checked_at: Option<DateTime<Utc>>,
}

impl LastProbe {
    /// Why a node whose agent is up takes no new copy, and the copies bound for it
    /// retry: its sshd did not answer the last checks (copies already riding a worker's
    /// open ssh connection may still finish). `None` when it answers, or was not
    /// checked yet.
    pub fn ssh_problem(&self) -> Option<String> {
        (self.ssh_up == Some(false)).then(|| {
            format!(
                "sshd unreachable, no new copies; copies to it retry: {}",
                self.ssh_error.as_deref().unwrap_or("no reason recorded")
            )
        })
    }

    /// Why a node whose agent is up takes no new copy, and the copies bound for it
    /// retry: its agent could not write a file at its storage root at the last check
    /// (a filesystem remounted read-only, an immutable root, a failing disk). Its
    /// present copies are still served. `None` when it could, or was not checked yet.
    pub fn write_problem(&self) -> Option<String> {
        (self.writable == Some(false)).then(|| {
            format!(
                "storage root not writable, no new copies; copies to it retry: {}",
                self.write_error.as_deref().unwrap_or("no reason recorded")
            )
        })
    }

    /// [`LastProbe::ssh_problem`] and [`LastProbe::write_problem`], joined with "; "
    /// when both hold: why an up node takes no new copy.
    pub fn copy_problem(&self) -> Option<String> {
        match (self.ssh_problem(), self.write_problem()) {
            (Some(ssh), Some(write)) => Some(format!("{ssh}; {write}")),
            (ssh, write) => ssh.or(write),
        }
    }
}

/// A node with its last probe and its count of present replicas.
#[derive(Debug, Clone)]
pub struct Overview {
    pub node: Node,
    pub probe: LastProbe,
    pub replicas: i64,
}

impl Overview {
    /// The node as JSON, as the database knows it (last probe from `node_status`):
    /// what `ferry nodes list --json` prints and the base of the admin API's node,
    /// which overrides `up`, `free_bytes` and `total_bytes` with its live heartbeat.
    /// Sizes in bytes, times RFC 3339.
    pub fn json(&self) -> serde_json::Value {
        let (n, p) = (&self.node, &self.probe);
        serde_json::json!({
            "id": n.id,
            "name": n.name,
            "ssh_host": n.ssh.host,
            "ssh_port": n.ssh.port,
            "ssh_user": n.ssh.user,
            "root_path": n.ssh.root,
            "public_url": n.public_url,
            "region": n.region,
            "lat": n.lat,
            "lon": n.lon,
            "state": n.state.as_str(),
            "up": p.up,
            "free_bytes": p.free,
            "total_bytes": p.total,
            "last_heartbeat": p.checked_at,
            "last_up_at": p.last_up_at,
            "down_since": p.down_since,
            "last_error": p.error,
            "ssh_up": p.ssh_up,
            "ssh_error": p.ssh_error,
            "ssh_checked_at": p.ssh_checked_at,
            "writable": p.writable,
            "write_error": p.write_error,
            "write_checked_at": p.write_checked_at,
            "replicas": self.replicas,
        })
    }
}

fn overview_from_row(r: &tokio_postgres::Row) -> Result<Overview, StoreError> {
    let size = |col: &'static str| -> Result<Option<ByteSize>, StoreError> {
        r.try_get::<_, Option<i64>>(col)?.map(|v| size_from_db(col, v)).transpose()
    };
    Ok(Overview {
        node: Node {
            id: NodeId(r.try_get("id")?),
            name: r.try_get("name")?,
            ssh: SshTarget::from_row(r)?,
            public_url: r.try_get("public_url")?,
            region: r.try_get("region")?,
            lat: r.try_get("lat")?,
            lon: r.try_get("lon")?,
            state: r.try_get("state")?,
        },
        probe: LastProbe {
            up: r.try_get("up")?,
            free: size("free_bytes")?,
            total: size("total_bytes")?,
            checked_at: r.try_get("checked_at")?,
            last_up_at: r.try_get("last_up_at")?,
            down_since: r.try_get("down_since")?,
            error: r.try_get("error")?,
            ssh_up: r.try_get("ssh_up")?,
            ssh_error: r.try_get("ssh_error")?,
            ssh_checked_at: r.try_get("ssh_checked_at")?,
            writable: r.try_get("writable")?,
            write_error: r.try_get("write_error")?,
            write_checked_at: r.try_get("write_checked_at")?,
        },
        replicas: r.try_get("replicas")?,
    })
}

/// Every node (or only `only`), by id, with its last probe and present replicas.
pub async fn overview(c: &impl GenericClient, only: Option<NodeId>) -> Result<Vec<Overview>, StoreError> {
    let rows = c
        .query_cached(
            "SELECT n.id, n.name, n.ssh_host, n.ssh_port, n.ssh_user, n.root_path, n.public_url, n.region,
                    n.lat, n.lon, n.state, s.up, s.free_bytes, s.total_bytes, s.checked_at, s.last_up_at, s.down_since, s.error,
                    s.ssh_up, s.ssh_error, s.ssh_checked_at, s.writable, s.write_error, s.write_checked_at,
                    (SELECT count(*) FROM replicas r WHERE r.node_id = n.id AND r.state = $2) AS replicas
             FROM nodes n LEFT JOIN node_status s ON s.node_id = n.id
             WHERE $1::int IS NULL OR n.id = $1
             ORDER BY n.id",
            &[&only.map(|n| n.0), &ReplicaState::Present],
        )
        .await?;
    rows.iter().map(overview_from_row).collect()
}

/// The id of the node named `name`.
pub async fn id_by_name(c: &impl GenericClient, name: &str) -> Result<Option<NodeId>, StoreError> {
    let row = c.query_opt_cached("SELECT id FROM nodes WHERE name = $1", &[&name]).await?;
    row.map(|r| Ok(NodeId(r.try_get("id")?))).transpose()
}

/// Removes node `id` from Ferry, which is allowed only once it is drained (or
/// disabled) and holds no replica row in any state: nothing Ferry knows of is on it.
/// Its status, health history and space samples go with it; job records keep its id.
/// Refusals say why ([`NodeError::Active`], [`NodeError::HoldsReplicas`] with the count).
pub async fn remove(c: &impl GenericClient, id: NodeId) -> Result<String, NodeError> {
    // The check is part of the DELETE: a replica inserted after a separate check would
    // be orphaned (the foreign key refuses that race anyway, and it is reported the
    // same way). A second try covers a replica removed between the two statements.
    for _ in 0..2 {
        let deleted = c
            .query_opt_cached(
                "DELETE FROM nodes n WHERE n.id = $1 AND n.state <> $2
                    AND NOT EXISTS (SELECT 1 FROM replicas r WHERE r.node_id = n.id)
                 RETURNING n.name",
                &[&id.0, &NodeState::Active],
            )
            .await;
        match deleted {
            Ok(Some(row)) => return Ok(row.try_get("name")?),
            Ok(None) => {}
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION) => {}
            Err(e) => return Err(e.into()),
        }
        let row = c
            .query_opt_cached(
                "SELECT n.state, (SELECT count(*) FROM replicas r WHERE r.node_id = n.id) AS replicas
                 FROM nodes n WHERE n.id = $1",
                &[&id.0],
            )
            .await?
            .ok_or(NodeError::NotFound)?;
        let (state, replicas): (NodeState, i64) = (row.try_get("state")?, row.try_get("replicas")?);
        if state == NodeState::Active {
            return Err(NodeError::Active);
        }
        if replicas > 0 {
            return Err(NodeError::HoldsReplicas(replicas));
        }
    }
    Err(NodeError::HoldsReplicas(1))
}

/// Node `name_or_id`'s id: a number is an id, anything else a name.
pub async fn resolve(c: &impl GenericClient, name_or_id: &str) -> Result<Option<NodeId>, StoreError> {
    match name_or_id.parse() {
        Ok(id) => Ok(c.query_opt_cached("SELECT id FROM nodes WHERE id = $1", &[&id]).await?.map(|_| NodeId(id))),
        Err(_) => id_by_name(c, name_or_id).await,
    }
}

/// How many replica rows node `id` holds, per state (states with none left out).
pub async fn replica_counts(c: &impl GenericClient, id: NodeId) -> Result<Vec<(ReplicaState, i64)>, StoreError> {
    let rows = c
        .query_cached(
            "SELECT state, count(*) AS n FROM replicas WHERE node_id = $1 GROUP BY state ORDER BY state",
            &[&id.0],
        )
        .await?;
    rows.iter().map(|r| Ok((r.try_get("state")?, r.try_get("n")?))).collect()
}
