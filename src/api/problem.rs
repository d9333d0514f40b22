//! Errors at the HTTP edge, as RFC 9457 `application/problem+json`.
//!
//! Each variant maps to exactly one status and one stable `type` (`/problems/<slug>`);
//! clients branch on `type`, people read `title` and `detail`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};

use super::etag;
use crate::auth::AuthError;
use crate::node::limits::Limited;
use crate::node::NodeError;
use crate::state::{Rejection, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("{detail}")]
    InvalidField { field: String, detail: String },
    #[error("the request body must be JSON: send 'Content-Type: application/json'")]
    UnsupportedMediaType,
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("the {header} header is invalid: {detail}")]
    InvalidHeader { header: &'static str, detail: String },
    #[error("{0}")]
    Unauthorized(#[from] AuthError),
    #[error("this needs an admin token")]
    Forbidden,
    #[error("this needs a staff token (pizza-orders token --staff --store <store>)")]
    StaffOnly,
    #[error("no such order")]
    OrderNotFound,
    #[error("no store with this id")]
    StoreNotFound,
    #[error("{}", outside_text(.nearest))]
    OutsideDeliveryArea { nearest: Option<(String, String, f64)> },
    #[error("no catalog is in force yet (a new cluster's leader seeds one within seconds); retry shortly")]
    NoCatalog,
    #[error("this node serves as many live streams as it may; retry in a few seconds, or on another node")]
    TooManyStreams,
    #[error("{0}")]
    InvalidCatalog(String, Vec<String>),
    #[error("no resource at this path")]
    RouteNotFound,
    #[error("this method is not allowed on this resource")]
    MethodNotAllowed,
    #[error("{0}")]
    Rejected(#[from] Rejection),
    #[error("the service is shutting down; retry on another node")]
    Unavailable,
    #[error("{0}")]
    NoLeader(String),
    #[error("{0}")]
    StorageFull(String),
    #[error("{0}")]
    OutcomeUnknown(String),
    #[error("{0}")]
    Cluster(String),
    #[error("the request was not answered within {} s and was abandoned; a change it asked for may still be made, so read the order before retrying", .0.as_secs())]
    Timeout(std::time::Duration),
    #[error("too many requests ({}); retry in {} s", .0.limit, retry_seconds(.0.retry_after))]
    RateLimited(Limited),
    #[error("{0}")]
    ProviderUnavailable(String),
    #[error("an internal error occurred; it has been logged")]
    Internal,
}

/// Whole seconds to wait, at least 1 (`Retry-After` has no fractions).
fn retry_seconds(wait: std::time::Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

impl From<Limited> for ApiError {
    fn from(limited: Limited) -> Self {
        ApiError::RateLimited(limited)
    }
}

fn outside_text(nearest: &Option<(String, String, f64)>) -> String {
    match nearest {
        Some((_, name, metres)) => {
            format!("no store delivers to this address; the nearest is {name}, {:.1} km away", metres / 1000.0)
        }
        None => "no store delivers to this address".into(),
    }
}

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        match e {
            NodeError::NoLeader => ApiError::NoLeader(e.to_string()),
            NodeError::OutcomeUnknown => ApiError::OutcomeUnknown(e.to_string()),
            NodeError::ShuttingDown => ApiError::Unavailable,
            NodeError::NoCatalog => ApiError::NoCatalog,
            NodeError::StorageFull(reason) => ApiError::StorageFull(reason),
            NodeError::Store(e) => e.into(),
            NodeError::Raft(message) | NodeError::Tls(message) => {
                tracing::error!(error = %message, "replication error while serving a request");
                ApiError::Internal
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::WriterStopped => ApiError::Unavailable,
            other => {
                tracing::error!(error = %other, "storage error while serving a request");
                ApiError::Internal
            }
        }
    }
}

#[derive(Serialize)]
struct Problem {
    #[serde(rename = "type")]
    kind: String,
    title: &'static str,
    status: u16,
    detail: String,
    #[serde(flatten)]
    extensions: Map<String, Value>,
}

impl ApiError {
    /// (status, slug, title) for this variant.
    fn describe(&self) -> (StatusCode, &'static str, &'static str) {
        use StatusCode as S;
        match self {
            ApiError::MalformedJson(_) => (S::BAD_REQUEST, "malformed-json", "Malformed JSON"),
            ApiError::InvalidField { .. } => (S::UNPROCESSABLE_ENTITY, "invalid-field", "Invalid field"),
            ApiError::UnsupportedMediaType => {
                (S::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "Unsupported media type")
            }
            ApiError::PayloadTooLarge(_) => (S::PAYLOAD_TOO_LARGE, "payload-too-large", "Request body too large"),
            ApiError::InvalidHeader { .. } => (S::BAD_REQUEST, "invalid-header", "Invalid header"),
            ApiError::Unauthorized(_) => (S::UNAUTHORIZED, "unauthorized", "Not authenticated"),
            ApiError::Forbidden => (S::FORBIDDEN, "forbidden", "Admin token required"),
            ApiError::StaffOnly => (S::FORBIDDEN, "staff-only", "Staff token required"),
            ApiError::NoLeader(_) => (S::SERVICE_UNAVAILABLE, "no-leader", "No leader"),
            ApiError::StorageFull(_) => (S::SERVICE_UNAVAILABLE, "storage-full", "Storage full"),
            ApiError::OutcomeUnknown(_) => (S::SERVICE_UNAVAILABLE, "outcome-unknown", "Outcome unknown"),
            ApiError::Cluster(_) => (S::CONFLICT, "cluster-change-refused", "Cluster change refused"),
            ApiError::OrderNotFound => (S::NOT_FOUND, "order-not-found", "Order not found"),
            ApiError::StoreNotFound => (S::NOT_FOUND, "store-not-found", "Store not found"),
            ApiError::OutsideDeliveryArea { .. } => {
                (S::UNPROCESSABLE_ENTITY, "outside-delivery-area", "Outside every delivery area")
            }
            ApiError::NoCatalog => (S::SERVICE_UNAVAILABLE, "no-catalog", "No catalog yet"),
            ApiError::TooManyStreams => (S::SERVICE_UNAVAILABLE, "too-many-streams", "Too many live streams"),
            ApiError::InvalidCatalog(..) => (S::UNPROCESSABLE_ENTITY, "invalid-catalog", "Invalid catalog"),
            ApiError::RouteNotFound => (S::NOT_FOUND, "not-found", "Not found"),
            ApiError::MethodNotAllowed => (S::METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed"),
            ApiError::Unavailable => (S::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable"),
            ApiError::Timeout(_) => (S::REQUEST_TIMEOUT, "request-timeout", "Request timed out"),
            ApiError::Internal => (S::INTERNAL_SERVER_ERROR, "internal", "Internal error"),
            ApiError::ProviderUnavailable(_) => {
                (S::SERVICE_UNAVAILABLE, "provider-unavailable", "Identity provider unavailable")
            }
            ApiError::RateLimited(_) => (S::TOO_MANY_REQUESTS, "rate-limited", "Too many requests"),
            ApiError::Rejected(r) => match r {
                Rejection::OrderExists(_) => (S::CONFLICT, "order-exists", "You already have an active order"),
                Rejection::SlotFull(..) => (S::CONFLICT, "slot-full", "Delivery slot full"),
                Rejection::SlotHasRoom(_) => (S::CONFLICT, "slot-has-room", "The slot has room: order instead"),
                Rejection::AlreadyWaiting(_) => (S::CONFLICT, "already-waiting", "Already on a waitlist"),
                Rejection::NotWaiting => (S::NOT_FOUND, "not-waiting", "Not on a waitlist"),
                Rejection::SlotTooSoon(..) => (S::UNPROCESSABLE_ENTITY, "slot-too-soon", "Delivery slot too soon"),
                Rejection::NotFound => (S::NOT_FOUND, "order-not-found", "Order not found"),
                Rejection::PreconditionFailed(_) => {
                    (S::PRECONDITION_FAILED, "precondition-failed", "Order changed meanwhile")
                }
                Rejection::CutoffPassed(_) => (S::CONFLICT, "cutoff-passed", "Too late to change this order"),
                Rejection::NotActive => (S::CONFLICT, "order-cancelled", "Order is cancelled"),
                Rejection::IdempotencyKeyReused => {
                    (S::UNPROCESSABLE_ENTITY, "idempotency-key-reused", "Idempotency-Key reused")
                }
                Rejection::DuplicateOrderId(_) => (S::CONFLICT, "order-id-conflict", "Order id conflict; retry"),
                Rejection::CatalogChanged(_) => (S::CONFLICT, "catalog-changed", "The catalog changed; retry"),
                Rejection::NoCatalog => (S::SERVICE_UNAVAILABLE, "no-catalog", "No catalog yet"),
                Rejection::UnknownStore(_) => (S::UNPROCESSABLE_ENTITY, "invalid-field", "Invalid field"),
                Rejection::SlotNotBookable(_) => (S::UNPROCESSABLE_ENTITY, "invalid-field", "Invalid field"),
                Rejection::CatalogVersionConflict(_) => {
                    (S::CONFLICT, "catalog-version-conflict", "The catalog changed since you read it")
                }
                Rejection::InvalidCatalog(_) => (S::UNPROCESSABLE_ENTITY, "invalid-catalog", "Invalid catalog"),
                Rejection::StoreInUse(_) => (S::CONFLICT, "store-in-use", "Store still has orders to deliver"),
                Rejection::InKitchen(_) => (S::CONFLICT, "order-in-kitchen", "The kitchen has the order"),
                Rejection::StepNotAllowed(..) => (S::CONFLICT, "step-not-allowed", "Not the order's next step"),
                Rejection::ReasonRequired => (S::UNPROCESSABLE_ENTITY, "invalid-field", "Invalid field"),
                Rejection::Lapsed => (S::CONFLICT, "order-lapsed", "The order lapsed"),
                Rejection::InvalidAnalytics(_) => {
                    (S::UNPROCESSABLE_ENTITY, "invalid-analytics", "Unreadable analytics")
                }
                Rejection::NotOnMenu(..) => (S::UNPROCESSABLE_ENTITY, "not-on-menu", "Not on this store's menu"),
            },
        }
    }

    fn extensions(&self) -> Map<String, Value> {
        let mut ext = Map::new();
        match self {
            ApiError::InvalidField { field, .. } => {
                ext.insert("field".into(), field.clone().into());
            }
            ApiError::InvalidHeader { header, .. } => {
                ext.insert("header".into(), (*header).into());
            }
            ApiError::Rejected(Rejection::OrderExists(id)) => {
                ext.insert("order_id".into(), id.to_string().into());
            }
            ApiError::Rejected(Rejection::SlotFull(slot, alternatives)) => {
                ext.insert("delivery_slot".into(), slot.start().to_rfc3339().into());
                let rooms: Vec<Value> = alternatives
                    .iter()
                    .map(|r| {
                        serde_json::json!({
                            "start": r.slot.start().to_rfc3339(),
                            "end": r.slot.end().to_rfc3339(),
                            "remaining": r.remaining,
                        })
                    })
                    .collect();
                ext.insert("alternatives".into(), rooms.into());
            }
            ApiError::Rejected(
                Rejection::SlotTooSoon(slot, _) | Rejection::SlotHasRoom(slot) | Rejection::AlreadyWaiting(slot),
            ) => {
                ext.insert("delivery_slot".into(), slot.start().to_rfc3339().into());
            }
            ApiError::Rejected(Rejection::PreconditionFailed(version)) => {
                ext.insert("current_version".into(), version.0.into());
            }
            ApiError::Rejected(Rejection::UnknownStore(_)) => {
                ext.insert("field".into(), "store_id".into());
            }
            ApiError::Rejected(Rejection::SlotNotBookable(_)) => {
                ext.insert("field".into(), "delivery_slot".into());
            }
            ApiError::Rejected(Rejection::CatalogVersionConflict(version) | Rejection::CatalogChanged(version)) => {
                ext.insert("current_catalog_version".into(), (*version).into());
            }
            ApiError::Rejected(Rejection::InvalidCatalog(problems)) | ApiError::InvalidCatalog(_, problems) => {
                ext.insert("errors".into(), problems.clone().into());
            }
            // `status` is the problem's HTTP status (RFC 9457): the order's is `order_status`.
            ApiError::Rejected(Rejection::InKitchen(status)) => {
                ext.insert("order_status".into(), status.as_str().into());
            }
            ApiError::Rejected(Rejection::StepNotAllowed(from, _)) => {
                ext.insert("order_status".into(), from.as_str().into());
                let next: Vec<Value> = from.next_steps().iter().map(|s| s.as_str().into()).collect();
                ext.insert("next_steps".into(), next.into());
            }
            ApiError::Rejected(Rejection::ReasonRequired) => {
                ext.insert("field".into(), "reason".into());
            }
            ApiError::Rejected(Rejection::NotOnMenu(item, store)) => {
                ext.insert("item".into(), item.clone().into());
                ext.insert("store_id".into(), store.to_string().into());
                let is_size = crate::domain::Size::ALL.iter().any(|s| s.as_str() == item);
                let field = if is_size { "size" } else { "toppings" };
                ext.insert("field".into(), field.into());
            }
            ApiError::Rejected(Rejection::StoreInUse(id)) => {
                ext.insert("store_id".into(), id.to_string().into());
            }
            ApiError::RateLimited(limited) => {
                ext.insert("limit".into(), limited.limit.into());
                ext.insert("retry_after_s".into(), retry_seconds(limited.retry_after).into());
            }
            ApiError::OutsideDeliveryArea { nearest: Some((id, name, metres)) } => {
                let nearest = serde_json::json!({ "id": id, "name": name, "distance_m": metres });
                ext.insert("nearest_store".into(), nearest);
            }
            _ => {}
        }
        ext
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, slug, title) = self.describe();
        let problem = Problem {
            kind: format!("/problems/{slug}"),
            title,
            status: status.as_u16(),
            detail: self.to_string(),
            extensions: self.extensions(),
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        match &self {
            ApiError::Unauthorized(e) => {
                let error = if matches!(e, AuthError::Missing) { "" } else { ", error=\"invalid_token\"" };
                let value = format!("Bearer realm=\"pizza-orders\"{error}");
                if let Ok(v) = HeaderValue::from_str(&value) {
                    headers.insert(header::WWW_AUTHENTICATE, v);
                }
            }
            ApiError::Rejected(Rejection::PreconditionFailed(version)) => {
                headers.insert(header::ETAG, etag(*version));
            }
            ApiError::TooManyStreams => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            ApiError::StorageFull(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
            }
            ApiError::RateLimited(limited) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_seconds(limited.retry_after)));
            }
            _ => {}
        }
        response
    }
}
