//! `GET /admin/backup` (a consistent state stream) and `GET /admin/check` (every invariant).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use tokio::sync::oneshot;

use super::admin::require_admin;
use super::stream::stream_blocking;
use super::{ApiError, ApiResult};
use crate::auth::Principal;
use crate::domain::Timestamp;
use crate::node::{Consistency, Node};
use crate::raft::state_machine::applied_index;
use crate::state::check::{check_state, CheckReport};
use crate::state::snapshot::write_state;

/// Response header with the revision (log index) a backup or export reflects.
pub const REVISION_HEADER: &str = "x-pizza-revision";
pub const CLUSTER_HEADER: &str = "x-pizza-cluster";

/// The whole state from one read transaction, streamed. Everything acknowledged before the
/// request is in it (read barrier first); the revision header says exactly where it stands.
#[utoipa::path(get, path = "/admin/backup", tag = "admin", responses((status = 200, description = "The state stream; x-pizza-revision says where it stands", content_type = "application/octet-stream")), security(("bearer" = [])))]
pub async fn backup(State(node): State<Arc<Node>>, principal: Principal) -> ApiResult {
    require_admin(&principal)?;
    node.read_barrier(Consistency::Linearizable).await?;
    let store = node.store.clone();
    let (revision_tx, revision_rx) = oneshot::channel();
    let body = stream_blocking(move |out| {
        let txn = store.begin_read().map_err(|e| e.to_string())?;
        let revision = applied_index(&txn).map_err(|e| e.to_string())?.unwrap_or(0);
        let _ = revision_tx.send(revision);
        write_state(&txn, out).map(|_| ()).map_err(|e| e.to_string())
    });
    let revision = revision_rx.await.map_err(|_| ApiError::Internal)?;
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    headers.insert(REVISION_HEADER, HeaderValue::from(revision));
    if let Ok(cluster) = HeaderValue::from_str(&node.config.cluster.name) {
        headers.insert(CLUSTER_HEADER, cluster);
    }
    Ok(response)
}

#[derive(serde::Serialize)]
pub struct CheckView {
    ok: bool,
    node_id: u64,
    revision: u64,
    #[serde(flatten)]
    report: CheckReport,
}

/// Check every invariant and index of this node's state.
#[utoipa::path(get, path = "/admin/check", tag = "admin", responses((status = 200, description = "Every invariant checked; ok is false when problems were found")), security(("bearer" = [])))]
pub async fn check(State(node): State<Arc<Node>>, principal: Principal) -> ApiResult<Response> {
    require_admin(&principal)?;
    let store = node.store.clone();
    let (revision, report) = tokio::task::spawn_blocking(move || {
        let txn = store.begin_read()?;
        let revision = applied_index(&txn)?.unwrap_or(0);
        Ok::<_, crate::state::StoreError>((revision, check_state(&txn, Timestamp::now())?))
    })
    .await
    .map_err(|_| ApiError::Internal)??;
    Ok(Json(CheckView { ok: report.is_clean(), node_id: node.id, revision, report }).into_response())
}
