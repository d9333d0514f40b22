//! `GET /v1/slots?from=&to=`: bookable delivery slots with the room left in each.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use super::extract::{consistency, QueryParams};
use super::{ApiError, ApiResult};
use crate::domain::Timestamp;
use crate::node::Node;

/// The widest window one request may list: a month of slots.
const MAX_RANGE_MS: i64 = 31 * 24 * 3_600_000;
const DEFAULT_RANGE_MS: i64 = 24 * 3_600_000;

#[derive(Serialize, utoipa::ToSchema)]
pub struct SlotList {
    slot_minutes: i64,
    slots: Vec<SlotAvailability>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SlotAvailability {
    start: String,
    end: String,
    capacity: u32,
    remaining: u32,
}

#[utoipa::path(get, path = "/v1/slots", tag = "slots",
    params(("from" = Option<String>, Query, description = "RFC 3339, default now"), ("to" = Option<String>, Query, description = "RFC 3339, default from + 24 h, at most 31 days after from")),
    responses((status = 200, description = "Bookable slots with room left", body = SlotList),
        (status = 422, description = "Bad range", body = super::openapi::Problem, content_type = "application/problem+json")))]
pub async fn list_slots(State(node): State<Arc<Node>>, query: QueryParams) -> ApiResult<Json<SlotList>> {
    let now = Timestamp::now();
    let param = |name: &str| -> Result<Option<Timestamp>, ApiError> {
        query
            .get(name)
            .map(|raw| {
                Timestamp::parse_rfc3339(raw)
                    .map_err(|e| ApiError::InvalidField { field: name.into(), detail: format!("{name}: {e}") })
            })
            .transpose()
    };
    let from = param("from")?.unwrap_or(now);
    let to = param("to")?.unwrap_or(from.plus_millis(DEFAULT_RANGE_MS));
    if to <= from {
        return Err(ApiError::InvalidField { field: "to".into(), detail: "to: must be after from".into() });
    }
    if to.millis().saturating_sub(from.millis()) > MAX_RANGE_MS {
        return Err(ApiError::InvalidField {
            field: "to".into(),
            detail: "to: at most 31 days after from; page through longer ranges".into(),
        });
    }
    node.read_barrier(consistency(&query)?).await?;
    let grid = &node.config.grid;
    let capacity = node.config.capacity.0;
    let loads = node.store.slot_loads(from, to)?;
    let slots = grid
        .bookable_between(from, to, now)
        .into_iter()
        .map(|slot| {
            let booked = loads.get(&slot.start().millis()).copied().unwrap_or(0);
            SlotAvailability {
                start: slot.start().to_rfc3339(),
                end: slot.end().to_rfc3339(),
                capacity,
                remaining: capacity.saturating_sub(booked),
            }
        })
        .collect();
    Ok(Json(SlotList { slot_minutes: grid.length_minutes(), slots }))
}
