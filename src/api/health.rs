//! Liveness and readiness for load balancers and orchestrators.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::node::Node;

/// The process is up and answering.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "The process is up")))]
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The node can serve: it knows a leader, has applied everything it knows to be committed,
/// its storage answers a read, and a catalog is in force (orders need one).
/// Entries a node may be behind its commit index and still be ready: under write load the
/// entries being applied right now are always a few behind, which is no reason to leave a load
/// balancer's rotation (a node catching up after a restart or a full disk is thousands behind).
const CATCH_UP_SLACK: u64 = 256;

#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, description = "Ready"), (status = 503, description = "No leader, catching up, no catalog yet, storage failing, or shutting down")))]
pub async fn readyz(State(node): State<Arc<Node>>) -> (StatusCode, Json<Value>) {
    let m = node.metrics();
    let applied = m.last_applied.map_or(0, |l| l.index);
    let committed = node.committed_index();
    let silent_ms = node.since_leader_heard_ms();
    let reason = if node.is_draining() {
        Some("shutting down".to_owned())
    } else if m.current_leader.is_none() {
        Some("no leader known".to_owned())
    } else if m.current_leader != Some(node.id) && silent_ms > node.config.raft.election_timeout_max_ms * 2 {
        // A follower cut off keeps naming its leader (Pre-Vote: it asks before it stands, and
        // nobody answers), so silence is what says it is alone.
        Some(format!("no word from leader {} for {silent_ms} ms", m.current_leader.unwrap_or_default()))
    } else if committed.saturating_sub(applied) > CATCH_UP_SLACK {
        Some(format!("catching up: applied {applied} of {committed}"))
    } else if let Err(full) = node.disk.check() {
        Some(full.to_string())
    } else if let Err(e) = node.store.state_digest_cheap() {
        Some(format!("storage: {e}"))
    } else {
        match node.store.catalog() {
            Ok(Some(_)) => None,
            Ok(None) => Some("no catalog yet: the leader seeds one from its configuration".to_owned()),
            Err(e) => Some(format!("catalog: {e}")),
        }
    };
    match reason {
        None => {
            let catalog = node.store.catalog().ok().flatten().map(|c| c.version);
            let body = json!({ "status": "ready", "leader": m.current_leader, "applied": applied, "catalog_version": catalog });
            (StatusCode::OK, Json(body))
        }
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "unavailable", "reason": reason }))),
    }
}
