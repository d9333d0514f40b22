//! `/admin/*`: cluster management and state inspection, for tokens with `admin: true`.
//! Membership changes run on the leader; any node forwards them there.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use openraft::{BasicNode, ChangeMembers};
use serde::{Deserialize, Serialize};

use super::extract::{IdSegment, JsonBody};
use super::{ApiError, ApiResult};
use crate::auth::Principal;
use crate::node::{Node, NodeError};
use crate::raft::NodeId;

pub(super) fn require_admin(principal: &Principal) -> Result<(), ApiError> {
    if principal.admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

/// Send this admin request to the leader when this node is not it; `None` means "handle here".
async fn on_leader(
    node: &Node,
    method: Method,
    path: &str,
    headers: &HeaderMap,
    body: Option<serde_json::Value>,
) -> Result<Option<Response>, ApiError> {
    let leader = node.metrics().current_leader;
    if leader == Some(node.id) {
        return Ok(None);
    }
    let (_, addr) = node.leader_address().await?;
    let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    let (status, content_type, bytes) = node
        .peers
        .forward_http(&addr, method, path, auth, body)
        .await
        .map_err(|e| ApiError::NoLeader(e.to_string()))?;
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    Ok(Some((status, [(header::CONTENT_TYPE, content_type)], bytes).into_response()))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InitRequest {
    /// node id → `host:port`; empty means this node alone.
    #[serde(default)]
    members: BTreeMap<NodeId, String>,
}

#[utoipa::path(post, path = "/admin/cluster/init", tag = "admin", request_body = InitRequest, responses((status = 200, body = StatusView), (status = 409, description = "Already initialised", body = super::openapi::Problem)), security(("bearer" = [])))]
pub async fn init(
    State(node): State<Arc<Node>>,
    principal: Principal,
    JsonBody(body): JsonBody<InitRequest>,
) -> ApiResult {
    require_admin(&principal)?;
    let mut members: BTreeMap<NodeId, BasicNode> =
        body.members.into_iter().map(|(id, addr)| (id, BasicNode::new(addr))).collect();
    if members.is_empty() {
        members.insert(node.id, BasicNode::new(&node.advertise));
    }
    if !members.contains_key(&node.id) {
        return Err(ApiError::Cluster(format!("the members must include this node (id {})", node.id)));
    }
    node.raft.initialize(members).await.map_err(|e| ApiError::Cluster(format!("cannot initialise: {e}")))?;
    Ok((StatusCode::OK, Json(status_view(&node).await)).into_response())
}

#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddNode {
    id: NodeId,
    addr: String,
    /// An edge replica: a learner that is never promoted. It replicates the log and serves
    /// reads near its users, forwards writes, and never counts toward a quorum.
    #[serde(default)]
    edge: bool,
}

/// Add a node: it joins as a learner, catches up, then becomes a voter (or, with `edge`,
/// stays a non-voting edge replica).
#[utoipa::path(post, path = "/admin/cluster/nodes", tag = "admin", request_body = AddNode, responses((status = 200, description = "Added as learner, caught up, promoted (or kept as an edge replica)", body = StatusView)), security(("bearer" = [])))]
pub async fn add_node(
    State(node): State<Arc<Node>>,
    principal: Principal,
    headers: HeaderMap,
    JsonBody(body): JsonBody<AddNode>,
) -> ApiResult {
    require_admin(&principal)?;
    let json = serde_json::to_value(&body).ok();
    if let Some(response) = on_leader(&node, Method::POST, "/admin/cluster/nodes", &headers, json).await? {
        return Ok(response);
    }
    let refused = |e: &dyn std::fmt::Display| ApiError::Cluster(e.to_string());
    node.raft.add_learner(body.id, BasicNode::new(&body.addr), true).await.map_err(|e| refused(&e))?;
    if !body.edge {
        node.raft
            .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([body.id])), false)
            .await
            .map_err(|e| refused(&e))?;
    }
    Ok(Json(status_view(&node).await).into_response())
}

#[utoipa::path(delete, path = "/admin/cluster/nodes/{id}", tag = "admin", params(("id" = u64, Path)), responses((status = 200, body = StatusView)), security(("bearer" = [])))]
pub async fn remove_node(
    State(node): State<Arc<Node>>,
    principal: Principal,
    headers: HeaderMap,
    IdSegment(id): IdSegment,
) -> ApiResult {
    require_admin(&principal)?;
    let id: NodeId = id
        .parse()
        .map_err(|_| ApiError::InvalidField { field: "id".into(), detail: "id: node ids are whole numbers".into() })?;
    if let Some(response) =
        on_leader(&node, Method::DELETE, &format!("/admin/cluster/nodes/{id}"), &headers, None).await?
    {
        return Ok(response);
    }
    let voter = node.metrics().membership_config.membership().voter_ids().any(|v| v == id);
    let change = if voter {
        ChangeMembers::RemoveVoters(BTreeSet::from([id]))
    } else {
        // An edge replica (a learner): no quorum changes, it simply leaves.
        ChangeMembers::RemoveNodes(BTreeSet::from([id]))
    };
    node.raft.change_membership(change, false).await.map_err(|e| ApiError::Cluster(e.to_string()))?;
    Ok(Json(status_view(&node).await).into_response())
}

#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct MemberView {
    id: NodeId,
    addr: String,
    voter: bool,
    /// `voter`, or `edge` (a learner that is never promoted: reads and forwarded writes only).
    role: String,
    /// Last log index known to be replicated to it (leader's view).
    matched: Option<u64>,
    /// Entries it trails the leader's log by.
    lag: Option<u64>,
}

#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatusView {
    node_id: NodeId,
    state: String,
    leader: Option<NodeId>,
    term: u64,
    last_log_index: Option<u64>,
    committed: u64,
    applied: Option<u64>,
    snapshot: Option<u64>,
    purged: Option<u64>,
    millis_since_quorum_ack: Option<u64>,
    members: Vec<MemberView>,
}

async fn status_view(node: &Node) -> StatusView {
    let m = node.metrics();
    let membership = m.membership_config.membership();
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    let last = m.last_log_index.unwrap_or(0);
    let members = membership
        .nodes()
        .map(|(id, n)| {
            let matched = m.replication.as_ref().and_then(|r| r.get(id).map(|l| l.map_or(0, |l| l.index)));
            MemberView {
                id: *id,
                addr: n.addr.clone(),
                voter: voters.contains(id),
                role: if voters.contains(id) { "voter" } else { "edge" }.to_owned(),
                matched,
                lag: matched.map(|i| last.saturating_sub(i)),
            }
        })
        .collect();
    StatusView {
        node_id: node.id,
        state: format!("{:?}", m.state),
        leader: m.current_leader,
        term: m.current_term,
        last_log_index: m.last_log_index,
        committed: node.committed_index(),
        applied: m.last_applied.map(|l| l.index),
        snapshot: m.snapshot.map(|l| l.index),
        purged: m.purged.map(|l| l.index),
        // Still filled by openraft 0.10 (deprecated for the absolute `last_quorum_acked`); kept
        // as it is a field of this API.
        #[allow(deprecated)]
        millis_since_quorum_ack: m.millis_since_quorum_ack,
        members,
    }
}

/// This node's view, or the leader's (which knows every member's lag) when reachable.
#[utoipa::path(get, path = "/admin/cluster", tag = "admin", responses((status = 200, description = "Leader, term, indexes, each member's lag", body = StatusView)), security(("bearer" = [])))]
pub async fn status(State(node): State<Arc<Node>>, principal: Principal, headers: HeaderMap) -> ApiResult {
    require_admin(&principal)?;
    let leader = node.metrics().current_leader;
    if leader.is_some() && leader != Some(node.id) && !headers.contains_key("x-pizza-local") {
        if let Ok(Some(response)) = on_leader(&node, Method::GET, "/admin/cluster", &headers, None).await {
            if response.status().is_success() {
                return Ok(response);
            }
        }
    }
    Ok(Json(status_view(&node).await).into_response())
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct StateView {
    node_id: NodeId,
    applied: Option<u64>,
    records: u64,
    digest: String,
}

/// The digest over every state table, with the log index it reflects, from one read
/// transaction: two nodes with the same `applied` must show the same `digest`.
#[utoipa::path(get, path = "/admin/state", tag = "admin", responses((status = 200, description = "Applied index and state digest", body = StateView)), security(("bearer" = [])))]
pub async fn state(State(node): State<Arc<Node>>, principal: Principal) -> ApiResult<Json<StateView>> {
    require_admin(&principal)?;
    let (applied, summary) =
        crate::raft::state_machine::digest(&node.store.shared_database()).map_err(NodeError::from)?;
    Ok(Json(StateView { node_id: node.id, applied, records: summary.records, digest: summary.digest_hex() }))
}
