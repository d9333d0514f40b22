//! Liveness and readiness for load balancers and orchestrators.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::node::Node;

/// The process is up and answering.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The node can serve: its storage answers a read.
pub async fn readyz(State(node): State<Arc<Node>>) -> (StatusCode, Json<Value>) {
    match node.store.last_revision() {
        Ok(revision) => (StatusCode::OK, Json(json!({ "status": "ready", "revision": revision }))),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "unavailable", "reason": e.to_string() }))),
    }
}
