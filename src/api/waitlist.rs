//! `/v1/waitlist`: join the line for a full slot, see your place in it, leave it. When a place
//! frees up, the first in line gets it: their order is placed by the state machine, and shows
//! up in `/v1/orders`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;

use super::extract::{consistency, JsonBody, QueryParams};
use super::openapi::Problem;
use super::orders::{order_id_text, propose, propose_new_order, timestamp_text, OrderRequest};
use super::{ApiError, ApiResult};
use crate::auth::Principal;
use crate::domain::{OrderId, Size, Timestamp, Topping, Toppings};
use crate::node::Node;
use crate::state::{Command, LeaveWaitlist, Outcome, Rejection, WaitEntry};

#[derive(Serialize, utoipa::ToSchema)]
pub struct WaitlistView<'a> {
    /// 1 is next: the first place that frees up is yours.
    position: u64,
    #[schema(value_type = String)]
    store_id: &'a str,
    delivery_slot: super::orders::SlotView,
    /// The id your order will have when you get a place.
    #[schema(value_type = String)]
    #[serde(serialize_with = "order_id_text")]
    order_id: OrderId,
    #[schema(value_type = String)]
    address: &'a str,
    size: Size,
    #[schema(value_type = Vec<Topping>)]
    toppings: Vec<Topping>,
    /// The price of your order if you get a place (fixed when you joined).
    price_cents: u64,
    #[schema(value_type = String)]
    currency: &'a str,
    #[schema(value_type = String)]
    #[serde(serialize_with = "timestamp_text")]
    joined_at: Timestamp,
    /// After this the slot can no longer be booked and your place in line lapses.
    #[schema(value_type = String)]
    #[serde(serialize_with = "timestamp_text")]
    waits_until: Timestamp,
}

impl<'a> WaitlistView<'a> {
    pub(super) fn new(entry: &'a WaitEntry, position: u64) -> Self {
        Self {
            position,
            store_id: entry.store.as_str(),
            delivery_slot: super::orders::SlotView::of(entry.spec.slot),
            order_id: entry.order_id,
            address: entry.spec.address.as_str(),
            size: entry.spec.size,
            toppings: toppings(entry.spec.toppings),
            price_cents: entry.price.amount.0,
            currency: entry.price.currency.as_str(),
            joined_at: entry.joined_at,
            waits_until: entry.expires_at,
        }
    }
}

fn toppings(t: Toppings) -> Vec<Topping> {
    t.iter().collect()
}

#[utoipa::path(post, path = "/v1/waitlist", tag = "waitlist", request_body = OrderRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original entry", pattern = "^[!-~]{1,128}$")),
    responses(
        (status = 429, description = "rate-limited: too many writes by this user, or attempts on this slot; Retry-After says when to try again", body = Problem, content_type = "application/problem+json"),
        (status = 201, description = "In line for the slot, with your position", body = WaitlistView),
        (status = 409, description = "slot-has-room (order instead), already-waiting or order-exists", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid-field, outside-delivery-area or idempotency-key-reused", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn join(
    State(node): State<Arc<Node>>,
    principal: Principal,
    headers: HeaderMap,
    JsonBody(body): JsonBody<OrderRequest>,
) -> ApiResult {
    let now = Timestamp::now();
    let outcome = propose_new_order(&node, &principal, &headers, &body, now, Command::JoinWaitlist).await?;
    match outcome {
        Outcome::Waiting { entry, position, replayed } => {
            let mut response = (StatusCode::CREATED, Json(WaitlistView::new(&entry, position))).into_response();
            response.headers_mut().insert(header::LOCATION, HeaderValue::from_static("/v1/waitlist"));
            if replayed {
                response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
            }
            Ok(response)
        }
        other => unexpected(other),
    }
}

#[utoipa::path(get, path = "/v1/waitlist", tag = "waitlist",
    params(("consistency" = Option<String>, Query, description = "linearizable (default) or stale")),
    responses((status = 200, description = "Your place in line", body = WaitlistView),
        (status = 404, description = "not-waiting: not in any line (or you got a place: see /v1/orders)", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn show(State(node): State<Arc<Node>>, principal: Principal, query: QueryParams) -> ApiResult {
    node.read_barrier(consistency(&query)?).await?;
    match node.store.waitlist_position(&principal.user, Timestamp::now())? {
        Some((entry, position)) => Ok(Json(WaitlistView::new(&entry, position)).into_response()),
        None => Err(ApiError::Rejected(Rejection::NotWaiting)),
    }
}

#[utoipa::path(delete, path = "/v1/waitlist", tag = "waitlist",
    responses((status = 429, description = "rate-limited: too many writes by this user, or attempts on this slot; Retry-After says when to try again", body = Problem, content_type = "application/problem+json"),
        (status = 200, description = "Left the line; the entry as it was", body = WaitlistView),
        (status = 404, description = "not-waiting", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn leave(State(node): State<Arc<Node>>, principal: Principal) -> ApiResult {
    node.limits.write(&principal.user)?;
    let command = Command::LeaveWaitlist(LeaveWaitlist { user: principal.user.clone(), at: Timestamp::now() });
    match propose(&node, command).await? {
        Outcome::LeftWaitlist(entry) => Ok(Json(WaitlistView::new(&entry, 0)).into_response()),
        other => unexpected(other),
    }
}

fn unexpected(outcome: Outcome) -> ApiResult {
    tracing::error!(?outcome, "a waitlist command produced an outcome of another kind");
    Err(ApiError::Internal)
}
