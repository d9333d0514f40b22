//! `GET /v1/slots?from=&to=`: bookable delivery slots with the room left in each, for a chain
//! of one store (or `?store=ID`); `/v1/stores/{id}/slots` is the same for any store.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

use super::caching::{cached_json, CachePolicy};
use super::extract::QueryParams;
use super::stores::{slot_list, SlotList};
use super::ApiResult;
use crate::node::Node;

#[utoipa::path(get, path = "/v1/slots", tag = "slots",
    params(("store" = Option<String>, Query, description = "Store id; may be left out when the chain has one store"), ("from" = Option<String>, Query, description = "RFC 3339, default now"), ("to" = Option<String>, Query, description = "RFC 3339, default from + 24 h, at most 31 days after from")),
    responses((status = 200, description = "Bookable slots with room left", body = SlotList), (status = 304, description = "Not modified (If-None-Match)"),
        (status = 422, description = "Bad range, or several stores and none named", body = super::openapi::Problem, content_type = "application/problem+json")))]
pub async fn list_slots(State(node): State<Arc<Node>>, headers: HeaderMap, query: QueryParams) -> ApiResult<Response> {
    let list = slot_list(&node, query.get("store"), &query).await?;
    cached_json(&headers, CachePolicy::Availability, None, &list)
}
