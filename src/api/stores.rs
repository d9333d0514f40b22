//! `/v1/stores`: the chain's stores, which one delivers to an address, and each store's slots
//! with the room left in each. Everything comes from the replicated catalog.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Serialize;

use super::caching::{cached_json, catalog_tag, CachePolicy};
use super::extract::{consistency, IdSegment, QueryParams};
use super::{ApiError, ApiResult};
use crate::domain::{
    Catalog, DeliveryPoint, GeoPoint, Located, LocatedBy, Postcode, Store, Timestamp, Unplaceable, WeekHours,
};
use crate::node::Node;

/// The widest window one request may list: a month of slots.
const MAX_RANGE_MS: i64 = 31 * 24 * 3_600_000;
const DEFAULT_RANGE_MS: i64 = 24 * 3_600_000;

#[derive(Serialize, utoipa::ToSchema)]
pub struct StoreView {
    id: String,
    name: String,
    address: String,
    latitude: Option<f64>,
    longitude: Option<f64>,
    /// IANA time zone; opening hours and slots are laid on its local clock.
    time_zone: String,
    slot_minutes: u32,
    /// Pizzas per slot unless an override says otherwise (the slot list has each slot's).
    capacity: u32,
    cutoff_minutes: i64,
    horizon_days: i64,
    /// `everywhere`, `radius`, `area` (a drawn polygon) or `postcodes`.
    delivers: &'static str,
    radius_km: Option<f64>,
    /// Whole postcodes (`10115`), prefixes (`W1D*`) and ranges (`10115-10179`), normalised.
    postcodes: Vec<String>,
    /// Local shifts per weekday, `HH:MM-HH:MM`.
    #[schema(value_type = Object)]
    hours: WeekHours,
    closed_dates: Vec<String>,
}

impl StoreView {
    pub(super) fn new(store: &Store, catalog: &Catalog) -> Self {
        use crate::domain::zone_kind;
        let doc = catalog.doc().stores.iter().find(|d| d.id == store.id.as_str());
        Self {
            id: store.id.to_string(),
            name: store.name.clone(),
            address: store.address.clone(),
            latitude: store.location.map(GeoPoint::lat),
            longitude: store.location.map(GeoPoint::lon),
            time_zone: store.calendar.time_zone().name().to_owned(),
            slot_minutes: store.calendar.slot_minutes(),
            capacity: doc.map_or(0, |d| d.capacity),
            cutoff_minutes: store.calendar.cutoff_ms() / 60_000,
            horizon_days: store.calendar.horizon_days(),
            delivers: zone_kind(&store.area),
            radius_km: doc.and_then(|d| d.delivery.radius_km),
            postcodes: store.area.postcodes.iter().map(ToString::to_string).collect(),
            hours: doc.map(|d| d.hours.clone()).unwrap_or_default(),
            closed_dates: doc.map(|d| d.closed_dates.clone()).unwrap_or_default(),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct StoreList {
    catalog_version: u64,
    stores: Vec<StoreView>,
}

#[utoipa::path(get, path = "/v1/stores", tag = "stores",
    params(("consistency" = Option<String>, Query, description = "linearizable (default) or stale")),
    responses((status = 200, description = "Every store of the chain; ETag = the catalog version", body = StoreList), (status = 304, description = "Not modified (If-None-Match)"),
        (status = 503, description = "No catalog yet", body = super::openapi::Problem, content_type = "application/problem+json")))]
pub async fn list_stores(State(node): State<Arc<Node>>, headers: HeaderMap, query: QueryParams) -> ApiResult<Response> {
    node.read_barrier(consistency(&query)?).await?;
    let current = node.catalog()?;
    let catalog = &current.catalog;
    let stores = catalog.stores().iter().map(|s| StoreView::new(s, catalog)).collect();
    let list = StoreList { catalog_version: current.version, stores };
    cached_json(&headers, CachePolicy::Catalog, Some(catalog_tag(current.version)), &list)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LocatedStore {
    store: StoreView,
    /// From the delivery location to the store, when both are known.
    distance_m: Option<f64>,
    /// What took the address: `radius` or `area` (the location is inside it), `postcode` (an
    /// entry of the store's postcode list) or `everywhere`.
    matched_by: &'static str,
    /// With `postcode`: the entry that matched, the most specific of all stores' entries (`W1D*`).
    postcode_rule: Option<String>,
}

#[utoipa::path(get, path = "/v1/stores/locate", tag = "stores",
    params(("postcode" = Option<String>, Query), ("latitude" = Option<f64>, Query), ("longitude" = Option<f64>, Query)),
    responses((status = 200, description = "The store that would bake an order for this address", body = LocatedStore), (status = 304, description = "Not modified (If-None-Match)"),
        (status = 422, description = "outside-delivery-area (with the nearest store) or invalid-field", body = super::openapi::Problem, content_type = "application/problem+json")))]
pub async fn locate_store(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    query: QueryParams,
) -> ApiResult<Response> {
    let number = |name: &str| -> Result<Option<f64>, ApiError> {
        query
            .get(name)
            .map(|raw| {
                raw.trim().parse::<f64>().map_err(|_| ApiError::InvalidField {
                    field: name.into(),
                    detail: format!("{name}: must be a number"),
                })
            })
            .transpose()
    };
    let point = delivery_point(query.get("postcode"), number("latitude")?, number("longitude")?)?;
    node.read_barrier(consistency(&query)?).await?;
    let current = node.catalog()?;
    let Located { store, by } = locate(&current.catalog, &point, query.get("store_id"))?;
    let distance_m = point.location.zip(store.location).map(|(a, b)| a.distance_m(b).round());
    let postcode_rule = match by {
        LocatedBy::Postcode(rule) => Some(rule.to_string()),
        LocatedBy::Area | LocatedBy::Everywhere => None,
    };
    let located = LocatedStore {
        store: StoreView::new(store, &current.catalog),
        distance_m,
        matched_by: by.kind(store),
        postcode_rule,
    };
    cached_json(&headers, CachePolicy::Catalog, Some(catalog_tag(current.version)), &located)
}

/// A delivery point from its parts, each checked and named when wrong.
pub(super) fn delivery_point(
    postcode: Option<&str>,
    latitude: Option<f64>,
    longitude: Option<f64>,
) -> Result<DeliveryPoint, ApiError> {
    let invalid = |field: &str, detail: String| ApiError::InvalidField {
        field: field.into(),
        detail: format!("{field}: {detail}"),
    };
    let postcode = match postcode.map(str::trim).filter(|p| !p.is_empty()) {
        Some(raw) => Some(Postcode::parse(raw).map_err(|e| invalid("postcode", e.to_string()))?),
        None => None,
    };
    let location = match (latitude, longitude) {
        (Some(lat), Some(lon)) => Some(GeoPoint::new(lat, lon).map_err(|e| {
            let field = if e.to_string().starts_with("lat") { "latitude" } else { "longitude" };
            invalid(field, e.to_string())
        })?),
        (None, None) => None,
        (Some(_), None) => return Err(invalid("longitude", "give it with the latitude".into())),
        (None, Some(_)) => return Err(invalid("latitude", "give it with the longitude".into())),
    };
    Ok(DeliveryPoint { postcode, location })
}

/// The store for `point`, or the problem a customer sees.
pub(super) fn locate<'c>(
    catalog: &'c Catalog,
    point: &DeliveryPoint,
    wanted: Option<&str>,
) -> Result<Located<'c>, ApiError> {
    catalog.locate(point, wanted).map_err(|e| match e {
        Unplaceable::UnknownStore(id) => ApiError::InvalidField {
            field: "store_id".into(),
            detail: format!("store_id: there is no store '{}'", id.chars().take(40).collect::<String>()),
        },
        Unplaceable::NeedsLocation => ApiError::InvalidField {
            field: "postcode".into(),
            detail:
                "postcode: give the postcode (or allow your location) so we can find the store that delivers to you"
                    .into(),
        },
        Unplaceable::Outside { nearest } => ApiError::OutsideDeliveryArea {
            nearest: nearest.map(|(id, name, metres)| (id.to_string(), name, metres.round())),
        },
    })
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SlotList {
    pub(super) store_id: String,
    pub(super) time_zone: String,
    pub(super) slot_minutes: u32,
    pub(super) slots: Vec<SlotAvailability>,
}

#[derive(Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SlotAvailability {
    pub(super) start: String,
    pub(super) end: String,
    /// The start on the store's local clock, with its UTC offset.
    pub(super) local_start: String,
    pub(super) capacity: u32,
    pub(super) remaining: u32,
}

#[utoipa::path(get, path = "/v1/stores/{id}/slots", tag = "stores",
    params(("id" = String, Path, description = "Store id"), ("from" = Option<String>, Query, description = "RFC 3339, default now"), ("to" = Option<String>, Query, description = "RFC 3339, default from + 24 h, at most 31 days after from")),
    responses((status = 200, description = "Bookable slots with room left", body = SlotList), (status = 304, description = "Not modified (If-None-Match)"),
        (status = 404, description = "No such store", body = super::openapi::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad range", body = super::openapi::Problem, content_type = "application/problem+json")))]
pub async fn store_slots(
    State(node): State<Arc<Node>>,
    IdSegment(id): IdSegment,
    headers: HeaderMap,
    query: QueryParams,
) -> ApiResult<Response> {
    let list = slot_list(&node, Some(&id), &query).await?;
    cached_json(&headers, CachePolicy::Availability, None, &list)
}

/// The slots of store `id` (or of the only store, when there is one) in the query's range.
pub(super) async fn slot_list(node: &Node, id: Option<&str>, query: &QueryParams) -> ApiResult<SlotList> {
    let now = Timestamp::now();
    let (from, to) = slot_range(query, now)?;
    node.read_barrier(consistency(query)?).await?;
    availability(node, id, from, to, now)
}

/// The `[from, to)` a slot list asks for: default the next 24 hours, at most 31 days.
pub(super) fn slot_range(query: &QueryParams, now: Timestamp) -> Result<(Timestamp, Timestamp), ApiError> {
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
    Ok((from, to))
}

/// The bookable slots of store `id` in `[from, to)` with their room, from this node's state.
pub(super) fn availability(
    node: &Node,
    id: Option<&str>,
    from: Timestamp,
    to: Timestamp,
    now: Timestamp,
) -> ApiResult<SlotList> {
    let current = node.catalog()?;
    let store = match id {
        Some(id) => current.catalog.store(id).ok_or(ApiError::StoreNotFound)?,
        None => match current.catalog.stores() {
            [only] => only,
            _ => {
                return Err(ApiError::InvalidField {
                    field: "store".into(),
                    detail: "store: the chain has several stores; ask /v1/stores/{id}/slots".into(),
                })
            }
        },
    };
    let calendar = &store.calendar;
    let loads = node.store.slot_loads(&store.id, from, to)?;
    let slots = calendar
        .bookable_between(from, to, now)
        .into_iter()
        .map(|slot| {
            let booked = loads.get(&slot.start().millis()).copied().unwrap_or(0);
            let capacity = calendar.capacity_at(slot.start());
            SlotAvailability {
                start: slot.start().to_rfc3339(),
                end: slot.end().to_rfc3339(),
                local_start: calendar.local_rfc3339(slot.start()),
                capacity,
                remaining: capacity.saturating_sub(booked),
            }
        })
        .collect();
    Ok(SlotList {
        store_id: store.id.to_string(),
        time_zone: calendar.time_zone().name().to_owned(),
        slot_minutes: calendar.slot_minutes(),
        slots,
    })
}
