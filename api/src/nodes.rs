//! Storage node records: validation and writes shared by the admin API and the
//! `ferry` CLI, so both enforce the same rules.

use deadpool_postgres::GenericClient;
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("{0}")]
    Invalid(String),
    #[error("a node with that name already exists")]
    Exists,
    #[error("no such node")]
    NotFound,
    #[error(transparent)]
    Db(#[from] ferry_store::StoreError),
}

impl From<tokio_postgres::Error> for NodeError {
    fn from(e: tokio_postgres::Error) -> Self {
        if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
            NodeError::Exists
        } else {
            NodeError::Db(e.into())
        }
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
    pub state: Option<String>,
}

fn invalid(detail: impl Into<String>) -> NodeError {
    NodeError::Invalid(detail.into())
}

impl NodeInput {
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
            !p.starts_with('/')
                || p.split('/').any(|c| c == ".." || c == ".")
                || p.bytes().any(|b| b.is_ascii_control() || b == b' ')
        }) {
            return Err(invalid("root_path must be an absolute path without '.' or '..' components or spaces."));
        }
        if self.public_url.as_deref().is_some_and(|u| {
            !(u.starts_with("http://") || u.starts_with("https://"))
                || u.bytes().any(|b| b.is_ascii_control() || b == b' ')
        }) {
            return Err(invalid("public_url must be an http(s) URL."));
        }
        if self.lat.is_some_and(|v| !(-90.0..=90.0).contains(&v))
            || self.lon.is_some_and(|v| !(-180.0..=180.0).contains(&v))
        {
            return Err(invalid("lat must be within ±90 and lon within ±180."));
        }
        if self.state.as_deref().is_some_and(|s| !["active", "draining", "disabled"].contains(&s)) {
            return Err(invalid("state must be active, draining or disabled."));
        }
        Ok(())
    }
}

/// Inserts a validated node and returns its id.
pub async fn insert(client: &impl GenericClient, input: &NodeInput) -> Result<i32, NodeError> {
    input.validate()?;
    let required = |v: &Option<String>, name: &str| v.clone().ok_or_else(|| invalid(format!("{name} is required.")));
    let row = client
        .query_one(
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
                &input.lat.unwrap_or(0.0),
                &input.lon.unwrap_or(0.0),
                &input.state.clone().unwrap_or_else(|| "active".into()),
            ],
        )
        .await?;
    Ok(row.get(0))
}

/// Applies the given fields to node `id`.
pub async fn update(client: &impl GenericClient, id: i32, input: &NodeInput) -> Result<(), NodeError> {
    input.validate()?;
    let updated = client
        .execute(
            "UPDATE nodes SET name = COALESCE($2, name), ssh_host = COALESCE($3, ssh_host),
                ssh_port = COALESCE($4, ssh_port), ssh_user = COALESCE($5, ssh_user),
                root_path = COALESCE($6, root_path), public_url = COALESCE($7, public_url),
                region = COALESCE($8, region), lat = COALESCE($9, lat), lon = COALESCE($10, lon),
                state = COALESCE($11, state)
             WHERE id = $1",
            &[
                &id,
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
