//! `/v1/kitchen/*`: a store's staff see the orders of the next slots and move each one step on
//! its way to the door. A staff token names its store; other stores' orders, and every order
//! for a customer's token, do not exist here (404), as another user's order does not.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::extract::{consistency, IdSegment, JsonBody, QueryParams};
use super::orders::{order_response_with, propose, timestamp_text, OrderView, SlotView};
use super::{ApiError, ApiResult};
use crate::auth::Principal;
use crate::domain::{NotDeliveredReason, OrderId, OrderStatus, StoreId, Timestamp};
use crate::node::Node;
use crate::state::{AdvanceOrder, Command, CommandId, Outcome};

/// Without `from`: the kitchen looks this far back (slots still being delivered).
const DEFAULT_BACK_MS: i64 = 2 * 3_600_000;
/// Without `to`: this far ahead.
const DEFAULT_AHEAD_MS: i64 = 12 * 3_600_000;
/// The longest window one request may ask for.
const MAX_WINDOW_MS: i64 = 7 * 86_400_000;
/// The most orders one answer lists.
const MAX_ORDERS: usize = 2_000;

#[derive(Serialize, utoipa::ToSchema)]
pub struct KitchenStore {
    #[schema(value_type = String)]
    id: String,
    name: String,
    time_zone: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct KitchenOrder<'a> {
    #[serde(flatten)]
    order: OrderView<'a>,
    /// The customer (the token's user id).
    #[schema(value_type = String)]
    customer: &'a str,
    /// The statuses the kitchen may move it to next.
    next_steps: &'static [OrderStatus],
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct KitchenSlot<'a> {
    #[serde(flatten)]
    slot: SlotView,
    orders: Vec<KitchenOrder<'a>>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct KitchenView<'a> {
    store: KitchenStore,
    #[schema(value_type = String)]
    #[serde(serialize_with = "timestamp_text")]
    from: Timestamp,
    #[schema(value_type = String)]
    #[serde(serialize_with = "timestamp_text")]
    to: Timestamp,
    /// Slots with orders, earliest first; cancelled orders are not listed.
    slots: Vec<KitchenSlot<'a>>,
    /// More orders than one answer lists were in the window: ask for a shorter one.
    truncated: bool,
}

/// The store whose kitchen the caller may see: a staff member's own; an admin names one.
fn kitchen_store(principal: &Principal, query: &QueryParams) -> Result<StoreId, ApiError> {
    if let Some(store) = &principal.staff {
        return Ok(store.clone());
    }
    if !principal.admin {
        return Err(ApiError::StaffOnly);
    }
    let raw = query.get("store").ok_or_else(|| ApiError::InvalidField {
        field: "store".into(),
        detail: "store: an admin names the store whose kitchen to show (?store=<id>)".into(),
    })?;
    StoreId::parse(raw).map_err(|e| ApiError::InvalidField { field: "store".into(), detail: format!("store: {e}") })
}

fn time_param(query: &QueryParams, name: &str, default: Timestamp) -> Result<Timestamp, ApiError> {
    match query.get(name) {
        None => Ok(default),
        Some(raw) => Timestamp::parse_rfc3339(raw)
            .map_err(|e| ApiError::InvalidField { field: name.into(), detail: format!("{name}: {e}") }),
    }
}

#[utoipa::path(get, path = "/v1/kitchen/orders", tag = "kitchen",
    params(("from" = Option<String>, Query, description = "Slots starting at or after (RFC 3339); default 2 hours ago"),
        ("to" = Option<String>, Query, description = "Slots starting before (RFC 3339); default 12 hours ahead; at most 7 days after from"),
        ("store" = Option<String>, Query, description = "For an admin token: the store; staff see their own"),
        ("consistency" = Option<String>, Query, description = "linearizable (default) or stale")),
    responses((status = 200, description = "The store's orders by slot, each with its history and next steps", body = KitchenView),
        (status = 403, description = "staff-only: a customer's token", body = super::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, description = "store-not-found", body = super::openapi::Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid-field", body = super::openapi::Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn list(State(node): State<Arc<Node>>, principal: Principal, query: QueryParams) -> ApiResult {
    let store_id = kitchen_store(&principal, &query)?;
    let now = Timestamp::now();
    let from = time_param(&query, "from", now.plus_millis(-DEFAULT_BACK_MS))?;
    let to = time_param(&query, "to", now.plus_millis(DEFAULT_AHEAD_MS))?;
    if to <= from || to.millis() - from.millis() > MAX_WINDOW_MS {
        return Err(ApiError::InvalidField {
            field: "to".into(),
            detail: "to: must be after from, and at most 7 days after it".into(),
        });
    }
    node.read_barrier(consistency(&query)?).await?;
    let current = node.catalog()?;
    let store = current.catalog.store(store_id.as_str()).ok_or(ApiError::StoreNotFound)?;
    let found = node.store.kitchen_orders(&store_id, from, to, MAX_ORDERS + 1)?;
    let truncated = found.len() > MAX_ORDERS;
    let found = &found[..found.len().min(MAX_ORDERS)];
    let mut slots: Vec<KitchenSlot> = Vec::new();
    let charges = found.iter().map(|(order, _)| node.store.charge(order)).collect::<Result<Vec<_>, _>>()?;
    for ((order, steps), charge) in found.iter().zip(&charges) {
        let entry = KitchenOrder {
            order: OrderView::new(order, charge, now, steps),
            customer: order.user.as_str(),
            next_steps: order.status.next_steps(),
        };
        match slots.last_mut() {
            Some(slot) if slot.slot.start_millis() == order.spec.slot.start().millis() => slot.orders.push(entry),
            _ => slots.push(KitchenSlot { slot: SlotView::of(order.spec.slot), orders: vec![entry] }),
        }
    }
    let view = KitchenView {
        store: KitchenStore {
            id: store.id.as_str().to_owned(),
            name: store.name.clone(),
            time_zone: store.calendar.time_zone().name().to_owned(),
        },
        from,
        to,
        slots,
        truncated,
    };
    Ok(Json(view).into_response())
}

/// A kitchen step: the status the order moves to, and for `not_delivered` why.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepRequest {
    /// preparing, baked, out_for_delivery, delivered or not_delivered.
    status: String,
    /// Required with not_delivered (1 to 200 characters).
    #[serde(default)]
    reason: Option<String>,
}

#[utoipa::path(post, path = "/v1/kitchen/orders/{id}/status", tag = "kitchen", request_body = StepRequest,
    params(("id" = String, Path, description = "Order id")),
    responses((status = 200, description = "Moved; the order with its history", body = OrderView),
        (status = 404, description = "order-not-found: no such order of this store (also for a customer's token)", body = super::openapi::Problem, content_type = "application/problem+json"),
        (status = 409, description = "step-not-allowed (with order_status and next_steps) or order-cancelled", body = super::openapi::Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid-field (an unknown status, or not_delivered without a reason)", body = super::openapi::Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn advance(
    State(node): State<Arc<Node>>,
    principal: Principal,
    IdSegment(id): IdSegment,
    JsonBody(body): JsonBody<StepRequest>,
) -> ApiResult<Response> {
    // Only staff move orders, and only their store's: anyone else finds no such order.
    let Some(store) = principal.staff.clone() else {
        return Err(ApiError::OrderNotFound);
    };
    let order_id = OrderId::parse(&id).ok_or(ApiError::OrderNotFound)?;
    let invalid = |field: &str, detail: String| ApiError::InvalidField { field: field.into(), detail };
    let to = OrderStatus::parse(body.status.trim())
        .filter(|s| s.in_kitchen())
        .ok_or_else(|| {
            invalid(
                "status",
                format!(
                    "status: '{}' is not a kitchen step; use preparing, baked, out_for_delivery, delivered or not_delivered",
                    body.status
                ),
            )
        })?;
    let reason = match (to, body.reason.as_deref()) {
        (OrderStatus::NotDelivered, Some(raw)) => {
            Some(NotDeliveredReason::parse(raw).map_err(|e| invalid("reason", format!("reason: {e}")))?)
        }
        (OrderStatus::NotDelivered, None) => {
            return Err(invalid("reason", "reason: required when an order could not be delivered".into()))
        }
        (_, Some(_)) => return Err(invalid("reason", "reason: only a not_delivered step carries one".into())),
        (_, None) => None,
    };
    let command = Command::AdvanceOrder(AdvanceOrder {
        command_id: CommandId::new(),
        order_id,
        store,
        staff: principal.user,
        at: Timestamp::now(),
        to,
        reason,
    });
    match propose(&node, command).await? {
        Outcome::Advanced { order, history } => {
            let charge = node.store.charge(&order)?;
            Ok(order_response_with(StatusCode::OK, &order, &charge, Timestamp::now(), &history))
        }
        other => {
            tracing::error!(?other, "a kitchen step produced an outcome of another kind");
            Err(ApiError::Internal)
        }
    }
}
