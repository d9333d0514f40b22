//! `GET /admin/analytics?from=&to=`: views, visitors, the ordering funnel, conversion,
//! cancellations and slot-full sightings per day, the same on every node.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::admin::require_admin;
use super::extract::{consistency, QueryParams};
use super::{ApiError, ApiResult};
use crate::auth::Principal;
use crate::domain::{Day, EventKind, Timestamp};
use crate::node::Node;
use crate::state::analytics::read_days;

/// Without `from`: this many days back, today included.
const DEFAULT_DAYS: u32 = 7;
/// The most days one answer covers.
const MAX_DAYS: u32 = 366;

/// The funnel's steps, in order.
const FUNNEL: [EventKind; 4] =
    [EventKind::PageOpened, EventKind::CatalogShown, EventKind::SlotPicked, EventKind::OrderPlaced];

#[derive(Serialize, utoipa::ToSchema)]
pub struct AnalyticsDay {
    /// YYYY-MM-DD (UTC).
    day: String,
    /// Pages opened.
    views: u64,
    /// Distinct visitors (HyperLogLog estimate, about 1 % error).
    visitors: u64,
    /// page_opened, catalog_shown, slot_picked, order_placed: how many of each.
    #[schema(value_type = Object)]
    funnel: BTreeMap<&'static str, u64>,
    /// Orders placed per visitor (0 when there were none).
    conversion: f64,
    cancellations: u64,
    changes: u64,
    slot_full: u64,
    errors: u64,
    /// Per store: event → count (beacons that named a store).
    #[schema(value_type = Object)]
    stores: BTreeMap<String, BTreeMap<&'static str, u64>>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AnalyticsReport {
    from: String,
    to: String,
    days: Vec<AnalyticsDay>,
}

fn day_param(query: &QueryParams, name: &str, default: Day) -> Result<Day, ApiError> {
    match query.get(name) {
        None => Ok(default),
        Some(raw) => Day::parse(raw).ok_or_else(|| ApiError::InvalidField {
            field: name.into(),
            detail: format!("{name}: a date as YYYY-MM-DD"),
        }),
    }
}

#[utoipa::path(get, path = "/admin/analytics", tag = "analytics",
    params(("from" = Option<String>, Query, description = "First day (YYYY-MM-DD, UTC); default 6 days before to"),
        ("to" = Option<String>, Query, description = "Last day; default today; at most 366 days after from"),
        ("consistency" = Option<String>, Query, description = "linearizable (default) or stale")),
    responses((status = 200, description = "Every day in the range, with zeros where nothing was counted", body = AnalyticsReport),
        (status = 403, description = "forbidden: an admin token is needed", body = super::openapi::Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid-field", body = super::openapi::Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn report(State(node): State<Arc<Node>>, principal: Principal, query: QueryParams) -> ApiResult<Response> {
    require_admin(&principal)?;
    let to = day_param(&query, "to", Day::of(Timestamp::now()))?;
    let from = day_param(&query, "from", to.minus(DEFAULT_DAYS - 1))?;
    if from > to || to.0 - from.0 >= MAX_DAYS {
        return Err(ApiError::InvalidField {
            field: "from".into(),
            detail: "from: must be on or before to, at most 366 days before it".into(),
        });
    }
    node.read_barrier(consistency(&query)?).await?;
    let txn = node.store.begin_read()?;
    let mut figures = read_days(&txn, from, to)?;
    let mut days = Vec::new();
    for day in from.0..=to.0 {
        let day = Day(day);
        let f = figures.remove(&day).unwrap_or_default();
        let count = |event: EventKind| f.events.get(event.as_str()).copied().unwrap_or(0);
        let funnel: BTreeMap<&'static str, u64> = FUNNEL.iter().map(|e| (e.as_str(), count(*e))).collect();
        let placed = count(EventKind::OrderPlaced);
        days.push(AnalyticsDay {
            day: day.text(),
            views: count(EventKind::PageOpened),
            visitors: f.visitors,
            conversion: if f.visitors == 0 { 0.0 } else { placed as f64 / f.visitors as f64 },
            cancellations: count(EventKind::OrderCancelled),
            changes: count(EventKind::OrderChanged),
            slot_full: count(EventKind::SlotFullSeen),
            errors: count(EventKind::ErrorShown),
            funnel,
            stores: f.stores,
        });
    }
    Ok(Json(AnalyticsReport { from: from.text(), to: to.text(), days }).into_response())
}

/// One currency's orders and money on a day: minor units, `net + tax = gross`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RevenueLine {
    currency: String,
    /// Digits of the currency's minor unit.
    exponent: u8,
    orders: u64,
    net: u64,
    tax: u64,
    gross: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RevenueReport {
    /// The UTC day whose delivery slots the orders are for.
    day: String,
    /// One line per currency, by code; amounts in different currencies are never added up.
    currencies: Vec<RevenueLine>,
}

#[utoipa::path(get, path = "/admin/revenue", tag = "analytics",
    params(("day" = Option<String>, Query, description = "The UTC day (YYYY-MM-DD) of the delivery slots; default today"),
        ("consistency" = Option<String>, Query, description = "linearizable (default) or stale")),
    responses((status = 200, description = "Every store's orders for that day's slots (cancelled ones left out), per currency", body = RevenueReport),
        (status = 403, description = "forbidden: an admin token is needed", body = super::openapi::Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid-field", body = super::openapi::Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn revenue(State(node): State<Arc<Node>>, principal: Principal, query: QueryParams) -> ApiResult<Response> {
    require_admin(&principal)?;
    let day = day_param(&query, "day", Day::of(Timestamp::now()))?;
    node.read_barrier(consistency(&query)?).await?;
    let (from, to) = (day.start(), day.plus(1).start());
    let store = node.store.clone();
    let lines =
        tokio::task::spawn_blocking(move || store.revenue(from, to)).await.map_err(|_| ApiError::Internal)??;
    let currencies = lines
        .into_iter()
        .map(|r| RevenueLine {
            exponent: r.currency.exponent().unwrap_or(2),
            currency: r.currency.as_str().to_owned(),
            orders: r.orders,
            net: r.net,
            tax: r.tax,
            gross: r.gross,
        })
        .collect();
    Ok(Json(RevenueReport { day: day.text(), currencies }).into_response())
}
