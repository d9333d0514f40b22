//! `POST /v1/events`: the web UI's beacons (page opened, catalog shown, slot picked, order
//! placed / changed / cancelled, slot full seen, error shown). No token: counted, not tracked.
//! The visitor id is hashed with a salt that changes daily and goes into a sketch; no address,
//! user agent, user or visitor id is kept. Bounded: 1 KiB a beacon, `analytics.
//! beacons_per_second` a node (429 beyond), and the per-address limit.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::extract::JsonBody;
use super::{ApiError, ApiResult};
use crate::domain::{EventKind, StoreId, Timestamp, VisitorId};
use crate::node::Node;

/// Largest beacon accepted, in bytes.
pub const MAX_BEACON_BYTES: usize = 1024;

/// One beacon.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Beacon {
    /// page_opened, catalog_shown, slot_picked, order_placed, order_changed, order_cancelled,
    /// slot_full_seen or error_shown.
    event: String,
    /// A random id the browser keeps (8 to 64 letters, digits, '-' or '_').
    visitor: String,
    /// The store the page was showing, if any (a store id of the catalog).
    #[serde(default)]
    store: Option<String>,
}

#[utoipa::path(post, path = "/v1/events", tag = "analytics", request_body = Beacon,
    responses((status = 204, description = "Counted"),
        (status = 413, description = "payload-too-large (over 1 KiB)", body = super::openapi::Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid-field: unknown event, bad visitor id, unknown store", body = super::openapi::Problem, content_type = "application/problem+json"),
        (status = 429, description = "rate-limited: this node takes no more beacons this second", body = super::openapi::Problem, content_type = "application/problem+json")))]
pub async fn beacon(State(node): State<Arc<Node>>, JsonBody(body): JsonBody<Beacon>) -> ApiResult<Response> {
    if !node.config.analytics.enabled {
        return Err(ApiError::RouteNotFound);
    }
    let invalid = |field: &str, detail: String| ApiError::InvalidField { field: field.into(), detail };
    let event = EventKind::parse(&body.event).ok_or_else(|| {
        let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        invalid("event", format!("event: '{}' is not one of {}", body.event, known.join(", ")))
    })?;
    let visitor = VisitorId::parse(&body.visitor).map_err(|e| invalid("visitor", format!("visitor: {e}")))?;
    let store = match body.store.as_deref() {
        None => None,
        Some(raw) => {
            let id = StoreId::parse(raw).map_err(|e| invalid("store", format!("store: {e}")))?;
            // Only the catalog's stores: the counts' keys stay bounded.
            let known = node.catalog().ok().is_some_and(|c| c.catalog.store(id.as_str()).is_some());
            if !known {
                return Err(invalid("store", format!("store: no store '{raw}' in the catalog")));
            }
            Some(id)
        }
    };
    node.limits.beacon()?;
    node.analytics.record(Timestamp::now(), event, store.as_ref(), &visitor);
    Ok(StatusCode::NO_CONTENT.into_response())
}
