//! `ferry nodes`: register, list, drain, disable, activate and remove storage nodes,
//! with the rules of the admin API (`ferry_store::nodes`).

use anyhow::{bail, Context};
use clap::Subcommand;
use ferry_shared::types::NodeId;
use ferry_stdout::outln;
use ferry_store::nodes::{self, NodeError, NodeInput};
use ferry_store::{Client, NodeState};

use crate::output::{one_line, print_json, Format};

#[derive(Subcommand)]
pub enum NodesCmd {
    /// Register a storage node; the next upload can use it.
    Add {
        #[arg(long)]
        name: String,
        #[arg(long)]
        ssh_host: String,
        #[arg(long, default_value_t = 22)]
        ssh_port: i32,
        #[arg(long)]
        ssh_user: String,
        #[arg(long)]
        root_path: String,
        #[arg(long)]
        public_url: String,
        #[arg(long, default_value = "")]
        region: String,
        /// Latitude in degrees (required: downloads go to the node nearest the client).
        #[arg(long, allow_negative_numbers = true)]
        lat: f64,
        /// Longitude in degrees (required).
        #[arg(long, allow_negative_numbers = true)]
        lon: f64,
    },
    /// List nodes with their last probe (agent, sshd and the agent's write check of its
    /// root), last good heartbeat and present replicas; the last column says why a node
    /// is down or takes no new copy.
    List {
        #[command(flatten)]
        format: Format,
    },
    /// Stop placing new replicas on a node and move its replicas away.
    Drain { node: String },
    /// Stop using a node at all (no downloads, no new replicas). Its copies stop
    /// counting at once: the monitor re-replicates its files elsewhere, and drops the
    /// surplus when the node is activated again. For a short maintenance stop the node
    /// instead (a down node is repaired only after `monitor.node_grace_secs`).
    Disable { node: String },
    /// Put a drained or disabled node back in service.
    Activate { node: String },
    /// Remove a node from Ferry: refused while it is active or holds any replica
    /// (drain it and wait until its replicas reach 0).
    Rm { node: String },
}

pub async fn nodes(client: &Client, cmd: NodesCmd) -> anyhow::Result<()> {
    match cmd {
        NodesCmd::Add { name, ssh_host, ssh_port, ssh_user, root_path, public_url, region, lat, lon } => {
            let input = NodeInput {
                name: Some(name.clone()),
                ssh_host: Some(ssh_host),
                ssh_port: Some(ssh_port),
                ssh_user: Some(ssh_user),
                root_path: Some(root_path),
                public_url: Some(public_url),
                region: Some(region),
                lat: Some(lat),
                lon: Some(lon),
                state: None,
            };
            let id = nodes::insert(client, &input).await?;
            outln!("added node {name} (id {id})");
        }
        NodesCmd::List { format } => list(client, format).await?,
        NodesCmd::Drain { node } => set_state(client, &node, NodeState::Draining).await?,
        NodesCmd::Disable { node } => set_state(client, &node, NodeState::Disabled).await?,
        NodesCmd::Activate { node } => set_state(client, &node, NodeState::Active).await?,
        NodesCmd::Rm { node } => {
            let id = resolve(client, &node).await?;
            match nodes::remove(client, id).await {
                Ok(name) => outln!("node {name} (id {id}) removed"),
                Err(e @ (NodeError::Active | NodeError::HoldsReplicas(_))) => bail!("node {node} not removed: {e}"),
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

async fn list(client: &Client, format: Format) -> anyhow::Result<()> {
    let all = nodes::overview(client, None).await?;
    if format.json {
        return print_json(all.iter().map(|o| o.json()));
    }
    outln!(
        "{:>4}  {:<16} {:<9} {:<5} {:>12} {:>12} {:>8}  {:<19}  public_url / why it is down or takes no new copy",
        "id",
        "name",
        "state",
        "up",
        "free",
        "total",
        "replicas",
        "last good heartbeat"
    );
    let dash = || "-".to_owned();
    for o in &all {
        let up = match o.probe.up {
            Some(true) => "up",
            Some(false) => "down",
            None => "?",
        };
        let note = match (&o.probe.up, &o.probe.error, o.probe.copy_problem()) {
            (Some(false), Some(error), _) => format!("{}  {}", o.node.public_url, one_line(error)),
            (Some(true), _, Some(problem)) => format!("{}  {}", o.node.public_url, one_line(&problem)),
            _ => o.node.public_url.clone(),
        };
        outln!(
            "{:>4}  {:<16} {:<9} {:<5} {:>12} {:>12} {:>8}  {:<19}  {note}",
            o.node.id,
            o.node.name,
            o.node.state,
            up,
            o.probe.free.map_or_else(dash, |s| format.size(s)),
            o.probe.total.map_or_else(dash, |s| format.size(s)),
            o.replicas,
            o.probe.last_up_at.map_or_else(|| "never".into(), |t| t.format("%F %T").to_string()),
        );
    }
    Ok(())
}

/// The id of node `node` (its name or numeric id); unknown is an error.
async fn resolve(client: &Client, node: &str) -> anyhow::Result<NodeId> {
    nodes::resolve(client, node)
        .await?
        .with_context(|| format!("no node named {node:?} (`ferry nodes list` shows them)"))
}

async fn set_state(client: &Client, node: &str, state: NodeState) -> anyhow::Result<()> {
    let id = resolve(client, node).await?;
    let input = NodeInput { state: Some(state.as_str().to_owned()), ..NodeInput::default() };
    nodes::update(client, id, &input).await?;
    outln!("node {node} is now {state}");
    Ok(())
}
