//! `/v1/orders`: create, read, list, change and cancel the caller's own orders.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::extract::{consistency, idempotency_key, if_match, IdSegment, JsonBody, QueryParams};
use super::openapi::Problem;
use super::stores::{delivery_point, locate};
use super::{etag, ApiError, ApiResult};
use crate::auth::Principal;
use crate::codec;
use crate::domain::{
    Address, Charge, DeliveryPoint, Order, OrderId, OrderSpec, OrderStatus, OrderVersion, Size, Step, StoreId,
    Timestamp, Topping, Toppings,
};
use crate::node::{Consistency, Node};
use crate::state::views::OrderAnswer;
use crate::state::{
    CancelOrder, ChangeOrder, Command, CommandId, CurrentCatalog, IdempotencyClaim, IdempotencyKey, Outcome,
    PlaceOrder, Rejection,
};

/// The body of `POST /v1/orders` and `PUT /v1/orders/{id}`: the whole order as the customer
/// wants it. Field types parse themselves, so a value that gets past serde is valid.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderRequest {
    /// 1 to 300 characters, no line breaks; surrounding spaces are trimmed.
    #[schema(value_type = String, min_length = 1, max_length = 300, example = "1 Main St, Springfield")]
    address: Address,
    size: Size,
    /// Each at most once.
    #[serde(default)]
    #[schema(value_type = Vec<Topping>)]
    toppings: Toppings,
    /// The start of the delivery slot, RFC 3339, on the store's slot grid.
    #[schema(format = DateTime, example = "2030-01-07T12:00:00Z")]
    delivery_slot: String,
    /// The delivery postcode; decides the store when no location is given (or it is outside
    /// every drawn area).
    #[serde(default)]
    #[schema(example = "10115")]
    postcode: Option<String>,
    /// The delivery location (WGS 84), when the client knows it; decides the store.
    #[serde(default)]
    latitude: Option<f64>,
    #[serde(default)]
    longitude: Option<f64>,
    /// Ask for this store; it must deliver to the address.
    #[serde(default)]
    store_id: Option<String>,
}

/// An order request checked against one catalog: the spec, and the store that bakes it.
pub(super) struct Resolved {
    pub(super) spec: OrderSpec,
    pub(super) store: StoreId,
    pub(super) delivery: DeliveryPoint,
    pub(super) catalog_version: u64,
}

impl OrderRequest {
    /// Find the store for the address and check the slot against its calendar, in the
    /// catalog in force on this node. A change that keeps its store and slot keeps the slot
    /// it was booked for, as `apply` does, even if the calendar no longer offers it.
    fn resolve(&self, current: &CurrentCatalog, now: Timestamp, before: Option<&Order>) -> Result<Resolved, ApiError> {
        let invalid = |detail: String| ApiError::InvalidField {
            field: "delivery_slot".into(),
            detail: format!("delivery_slot: {detail}"),
        };
        let delivery = delivery_point(self.postcode.as_deref(), self.latitude, self.longitude)?;
        let store = locate(&current.catalog, &delivery, self.store_id.as_deref())?.store;
        let start = Timestamp::parse_rfc3339(&self.delivery_slot).map_err(|e| invalid(e.to_string()))?;
        let kept = before.filter(|o| o.store == store.id && o.spec.slot.start() == start).map(|o| o.spec.slot);
        let slot = match kept {
            Some(slot) => slot,
            None => store.calendar.bookable(start, now).map_err(|e| invalid(e.to_string()))?,
        };
        let spec = OrderSpec { address: self.address.clone(), size: self.size, toppings: self.toppings, slot };
        Ok(Resolved { spec, store: store.id.clone(), delivery, catalog_version: current.version })
    }
}

/// How often a write is tried again when the catalog changed between reading it and applying
/// the command; each try first catches up with the leader.
const CATALOG_TRIES: usize = 3;

// Borrowed from the stored order and written straight into the response body: no
// intermediate strings.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OrderView<'a> {
    #[schema(value_type = String)]
    #[serde(serialize_with = "order_id_text")]
    id: OrderId,
    status: OrderStatus,
    /// Placed and its delivery window not over: blocks a new order.
    active: bool,
    #[schema(value_type = String)]
    address: &'a str,
    size: Size,
    #[schema(value_type = Vec<Topping>)]
    #[serde(serialize_with = "topping_list")]
    toppings: Toppings,
    delivery_slot: SlotView,
    /// What the customer pays (the gross), in the currency's minor unit; `price` splits it.
    price_cents: u64,
    #[schema(value_type = String)]
    currency: &'a str,
    /// The money, fixed when the order was placed or last changed.
    price: PriceView<'a>,
    /// Only in the answer to a change that changed the price (a change prices the order at the
    /// menu in force): what it cost before, in minor units.
    #[serde(skip_serializing_if = "Option::is_none")]
    repriced_from_cents: Option<u64>,
    version: u64,
    #[schema(value_type = String)]
    #[serde(serialize_with = "timestamp_text")]
    created_at: Timestamp,
    #[schema(value_type = String)]
    #[serde(serialize_with = "timestamp_text")]
    updated_at: Timestamp,
    /// Changes and cancellation are accepted until this time.
    #[schema(value_type = String)]
    #[serde(serialize_with = "timestamp_text")]
    editable_until: Timestamp,
    /// The store that bakes it.
    #[schema(value_type = String)]
    store_id: &'a str,
    #[schema(value_type = Option<String>)]
    postcode: Option<&'a str>,
    latitude: Option<f64>,
    longitude: Option<f64>,
    /// The catalog version the order was last placed or changed under (0: before catalogs).
    catalog_version: u64,
    /// Its way to the door so far, oldest first: `placed`, then each kitchen step (or
    /// `cancelled`), with times.
    history: Vec<StepView>,
}

/// One step of an order's history.
#[derive(Serialize, utoipa::ToSchema)]
pub struct StepView {
    status: OrderStatus,
    #[schema(value_type = String)]
    #[serde(serialize_with = "timestamp_text")]
    at: Timestamp,
    /// Why it was not delivered (only on `not_delivered`).
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

impl StepView {
    /// The whole history of `order` whose kitchen steps are `steps`.
    pub(super) fn history(order: &Order, steps: &[Step]) -> Vec<Self> {
        let mut history = Vec::with_capacity(steps.len() + 2);
        history.push(StepView { status: OrderStatus::Placed, at: order.created_at, reason: None });
        history.extend(steps.iter().map(|s| StepView {
            status: s.status,
            at: s.at,
            reason: s.reason.as_ref().map(|r| r.as_str().to_owned()),
        }));
        if order.status == OrderStatus::Cancelled {
            history.push(StepView { status: OrderStatus::Cancelled, at: order.updated_at, reason: None });
        }
        history
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SlotView {
    #[schema(value_type = String)]
    #[serde(serialize_with = "timestamp_text")]
    start: Timestamp,
    #[schema(value_type = String)]
    #[serde(serialize_with = "timestamp_text")]
    end: Timestamp,
}

/// A timestamp as one JSON string from a stack buffer: `collect_str` goes through
/// `fmt::Write` and escapes every piece it is handed.
pub(super) fn timestamp_text<S: serde::Serializer>(value: &Timestamp, serializer: S) -> Result<S::Ok, S::Error> {
    match value.rfc3339_text() {
        Some(text) => serializer.serialize_str(std::str::from_utf8(&text).map_err(serde::ser::Error::custom)?),
        None => serializer.collect_str(value),
    }
}

/// An order's money in integer minor units of its currency: `net + tax = gross`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PriceView<'a> {
    #[schema(value_type = String)]
    currency: &'a str,
    /// Digits of the minor unit (EUR 2, JPY 0, KWD 3).
    exponent: u8,
    net: u64,
    tax: u64,
    gross: u64,
    /// Such as `7%`; `0%` for an order without tax.
    tax_rate: String,
    /// Whether the menu's prices included the tax (VAT, GST) or it was added (sales tax).
    tax_included: bool,
}

impl<'a> PriceView<'a> {
    pub(super) fn new(charge: &'a Charge) -> Self {
        Self {
            currency: charge.currency.as_str(),
            exponent: charge.currency.exponent().unwrap_or(2),
            net: charge.net.0,
            tax: charge.tax.0,
            gross: charge.gross.0,
            tax_rate: charge.rate.to_percent(),
            tax_included: charge.included,
        }
    }
}

pub(super) fn order_id_text<S: serde::Serializer>(id: &OrderId, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(id.encode(&mut [0; 36]))
}

fn topping_list<S: serde::Serializer>(toppings: &Toppings, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(toppings.iter())
}

impl<'a> OrderView<'a> {
    pub(super) fn new(order: &'a Order, charge: &'a Charge, now: Timestamp, steps: &[Step]) -> Self {
        Self {
            id: order.id,
            status: order.status,
            active: order.is_active(now),
            address: order.spec.address.as_str(),
            size: order.spec.size,
            toppings: order.spec.toppings,
            delivery_slot: SlotView { start: order.spec.slot.start(), end: order.spec.slot.end() },
            price_cents: order.price.amount.0,
            currency: order.price.currency.as_str(),
            price: PriceView::new(charge),
            repriced_from_cents: None,
            version: order.version.0,
            created_at: order.created_at,
            updated_at: order.updated_at,
            editable_until: order.editable_until(),
            store_id: order.store.as_str(),
            postcode: order.delivery.postcode.as_ref().map(|p| p.as_str()),
            latitude: order.delivery.location.map(|l| l.lat()),
            longitude: order.delivery.location.map(|l| l.lon()),
            catalog_version: order.catalog_version,
            history: StepView::history(order, steps),
        }
    }
}

impl SlotView {
    pub(super) fn of(slot: crate::domain::Slot) -> Self {
        Self { start: slot.start(), end: slot.end() }
    }

    pub(super) fn start_millis(&self) -> i64 {
        self.start.millis()
    }
}

fn order_response(status: StatusCode, order: &Order, charge: &Charge, now: Timestamp) -> Response {
    order_response_with(status, order, charge, now, &[])
}

/// An order's answer with its kitchen steps.
pub(super) fn order_response_with(
    status: StatusCode,
    order: &Order,
    charge: &Charge,
    now: Timestamp,
    steps: &[Step],
) -> Response {
    match order_json(order, charge, now, steps) {
        Ok(body) => order_reply(status, order.version, body),
        Err(e) => e.into_response(),
    }
}

/// An order's JSON body. Serialised into a Vec sized for an order: axum's `Json` writes
/// through a 128-byte `BytesMut` writer, one `io::Write` call per JSON token, and regrows it
/// twice.
fn order_json(order: &Order, charge: &Charge, now: Timestamp, steps: &[Step]) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::with_capacity(640);
    serde_json::to_writer(&mut body, &OrderView::new(order, charge, now, steps)).map_err(|_| ApiError::Internal)?;
    Ok(body)
}

/// An order's body as an answer: JSON, with the version as its ETag.
/// Built in place: the `(status, headers, body)` tuple's `into_response` went through
/// `IntoResponseParts` and cost ~400 more instructions a read (callgrind).
fn order_reply(status: StatusCode, version: OrderVersion, body: impl Into<axum::body::Body>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::ETAG, etag(version));
    response
}

fn location(id: OrderId) -> HeaderValue {
    HeaderValue::from_str(&format!("/v1/orders/{id}")).unwrap_or(HeaderValue::from_static("/v1/orders"))
}

/// An id that does not parse cannot name an order: 404, like any other unknown id.
fn parse_id(raw: &str) -> Result<OrderId, ApiError> {
    OrderId::parse(raw).ok_or(ApiError::OrderNotFound)
}

/// Identifies a create request for `Idempotency-Key`: the same key with the same order is a
/// retry; with a different order it is a client bug. It covers what the request said: a
/// request without postcode, location or store is fingerprinted as before stores existed, so
/// a retry across the upgrade still replays.
fn fingerprint(body: &OrderRequest, order: &Resolved) -> Result<[u8; 32], ApiError> {
    let bytes = if order.delivery == DeliveryPoint::default() && body.store_id.is_none() {
        codec::encode(&order.spec)
    } else {
        codec::encode(&(&order.spec, &order.delivery, &body.store_id))
    };
    Ok(Sha256::digest(bytes.map_err(|_| ApiError::Internal)?).into())
}

/// The `Idempotency-Key` claim of a create-like request (an order, a place in line); `None`
/// without the header.
fn idempotency_claim(
    node: &Node,
    key: Option<&IdempotencyKey>,
    body: &OrderRequest,
    resolved: &Resolved,
    now: Timestamp,
) -> Result<Option<IdempotencyClaim>, ApiError> {
    let claim = |key: &IdempotencyKey| {
        Ok(IdempotencyClaim {
            key: key.clone(),
            fingerprint: fingerprint(body, resolved)?,
            expires_at: now.plus_millis(node.config.idempotency_ttl_ms),
        })
    };
    key.map(claim).transpose()
}

/// Propose a new order for the request — to place now (`Command::PlaceOrder`) or when a place
/// frees up (`Command::JoinWaitlist`): the order id, time and `Idempotency-Key` stamped here,
/// the store and slot resolved against the catalog in force.
pub(super) async fn propose_new_order(
    node: &Node,
    principal: &Principal,
    headers: &HeaderMap,
    body: &OrderRequest,
    now: Timestamp,
    kind: fn(PlaceOrder) -> Command,
) -> Result<Outcome, ApiError> {
    let key = idempotency_key(headers)?;
    node.limits.write(&principal.user)?;
    let order_id = OrderId::new_at(now);
    propose_resolved(node, body, now, None, |resolved| {
        node.limits.slot_attempt(&principal.user, resolved.spec.slot.start())?;
        let idempotency = idempotency_claim(node, key.as_ref(), body, &resolved, now)?;
        Ok(kind(PlaceOrder {
            order_id,
            user: principal.user.clone(),
            at: now,
            spec: resolved.spec,
            store: resolved.store,
            delivery: resolved.delivery,
            catalog_version: resolved.catalog_version,
            idempotency,
        }))
    })
    .await
}

/// Resolve the request against the catalog in force and propose the command `make` builds;
/// if the catalog changed before it applied, catch up with the leader and try again.
async fn propose_resolved(
    node: &Node,
    body: &OrderRequest,
    now: Timestamp,
    before: Option<&Order>,
    make: impl Fn(Resolved) -> Result<Command, ApiError>,
) -> Result<Outcome, ApiError> {
    let mut tries = 0;
    loop {
        tries += 1;
        let current = node.catalog()?;
        let command = make(body.resolve(&current, now, before)?)?;
        match propose(node, command).await {
            Err(ApiError::Rejected(Rejection::CatalogChanged(_))) if tries < CATALOG_TRIES => {
                node.read_barrier(Consistency::Linearizable).await?;
            }
            other => return other,
        }
    }
}

#[utoipa::path(post, path = "/v1/orders", tag = "orders", request_body = OrderRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original order", pattern = "^[!-~]{1,128}$")),
    responses(
        (status = 429, description = "rate-limited: too many writes by this user, or attempts on this slot; Retry-After says when to try again", body = Problem, content_type = "application/problem+json"),
        (status = 201, description = "Order placed; Location and ETag set", body = OrderView),
        (status = 409, description = "order-exists or slot-full", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid-field, slot-too-soon or idempotency-key-reused", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, expired or invalid token", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn create_order(
    State(node): State<Arc<Node>>,
    principal: Principal,
    headers: HeaderMap,
    JsonBody(body): JsonBody<OrderRequest>,
) -> ApiResult {
    let now = Timestamp::now();
    let outcome = propose_new_order(&node, &principal, &headers, &body, now, Command::PlaceOrder).await?;
    match outcome {
        Outcome::Placed { order, replayed } => {
            let mut response = order_response(StatusCode::CREATED, &order, &node.store.charge(&order)?, now);
            response.headers_mut().insert(header::LOCATION, location(order.id));
            if replayed {
                response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
            }
            Ok(response)
        }
        other => unexpected(other),
    }
}

#[utoipa::path(get, path = "/v1/orders/{id}", tag = "orders",
    params(("id" = String, Path, description = "Order id"), ("consistency" = Option<String>, Query, description = "linearizable (default) or stale")),
    responses((status = 200, description = "The order, with its ETag", body = OrderView),
        (status = 404, description = "No such order of yours", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn get_order(
    State(node): State<Arc<Node>>,
    principal: Principal,
    IdSegment(id): IdSegment,
    query: QueryParams,
) -> ApiResult {
    let id = parse_id(&id)?;
    node.read_barrier(consistency(&query)?).await?;
    let now = Timestamp::now();
    let views = node.store.order_views();
    let answer = match views.get(id) {
        Some(answer) if answer.fresh_at(now) => {
            answers_counted(true).increment(1);
            answer
        }
        _ => {
            answers_counted(false).increment(1);
            // Taken before the read: a change committed after it keeps this answer out.
            let ticket = views.ticket(id);
            let Some(order) = node.store.order(id)? else { return Err(ApiError::OrderNotFound) };
            let steps = node.store.steps(&order)?;
            let answer = Arc::new(render_answer(&order, &node.store.charge(&order)?, now, &steps)?);
            if answer.fresh_at(now) {
                views.store(id, ticket, answer.clone());
            }
            answer
        }
    };
    if answer.owner != principal.user {
        return Err(ApiError::OrderNotFound);
    }
    Ok(order_reply(StatusCode::OK, OrderVersion(answer.version), answer.body.clone()))
}

/// `pizza_orders_order_answers_total{source}`: answers of `GET /v1/orders/{id}` that were
/// kept (`kept`) or read and rendered (`read`); handles made once, as a lookup per read costs.
fn answers_counted(kept: bool) -> &'static metrics::Counter {
    static KEPT: std::sync::OnceLock<metrics::Counter> = std::sync::OnceLock::new();
    static READ: std::sync::OnceLock<metrics::Counter> = std::sync::OnceLock::new();
    let (cell, source) = if kept { (&KEPT, "kept") } else { (&READ, "read") };
    cell.get_or_init(|| metrics::counter!("pizza_orders_order_answers_total", "source" => source))
}

/// An order's answer as [`get_order`] gives it, with how long it holds: an order placed and
/// not yet in the kitchen reads as active until its slot ends.
fn render_answer(order: &Order, charge: &Charge, now: Timestamp, steps: &[Step]) -> Result<OrderAnswer, ApiError> {
    let body = order_json(order, charge, now, steps)?;
    let slot_end = order.spec.slot.end();
    let fresh_until = match order.status {
        OrderStatus::Placed if now < slot_end => Some(slot_end),
        // Past its slot's end: not kept (rare, and a clock stepping back would change it).
        OrderStatus::Placed => Some(now),
        _ => None,
    };
    Ok(OrderAnswer { owner: order.user.clone(), version: order.version.0, body: body.into(), fresh_until })
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct OrderPage<'a> {
    orders: Vec<OrderView<'a>>,
    /// Pass as `before` to get the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
    /// On the first page: your place in a waitlist, if you are in one (as `GET /v1/waitlist`
    /// answers), so a page learns the whole state of a customer in one request.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<super::waitlist::WaitlistView>)]
    waitlist: Option<super::waitlist::WaitlistView<'a>>,
}

const DEFAULT_PAGE: usize = 20;
const MAX_PAGE: usize = 100;

#[utoipa::path(get, path = "/v1/orders", tag = "orders",
    params(("limit" = Option<u32>, Query, description = "1 to 100, default 20"), ("before" = Option<String>, Query, description = "The `next` cursor of the previous page"),
        ("consistency" = Option<String>, Query, description = "linearizable (default) or stale")),
    responses((status = 200, description = "Your orders, newest first", body = OrderPage)),
    security(("bearer" = [])))]
pub async fn list_orders(State(node): State<Arc<Node>>, principal: Principal, query: QueryParams) -> ApiResult {
    let invalid = |field: &str, detail: &str| ApiError::InvalidField {
        field: field.into(),
        detail: format!("{field}: {detail}"),
    };
    let limit = match query.get("limit") {
        None => DEFAULT_PAGE,
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => return Err(invalid("limit", "must be a whole number from 1 to 100")),
        },
    };
    let before = match query.get("before") {
        None => None,
        Some(raw) => Some(OrderId::parse(raw).ok_or_else(|| invalid("before", "must be an order id from 'next'"))?),
    };
    node.read_barrier(consistency(&query)?).await?;
    // One extra tells whether another page follows.
    let mut orders = node.store.user_orders(&principal.user, before, limit + 1)?;
    let next = (orders.len() > limit).then(|| {
        orders.truncate(limit);
        orders.last().map(|o| o.id.to_string())
    });
    let now = Timestamp::now();
    let steps = orders.iter().map(|o| node.store.steps(o)).collect::<Result<Vec<_>, _>>()?;
    let charges = orders.iter().map(|o| node.store.charge(o)).collect::<Result<Vec<_>, _>>()?;
    let views = orders.iter().zip(&charges).zip(&steps).map(|((o, c), s)| OrderView::new(o, c, now, s)).collect();
    let waiting = match before {
        None => node.store.waitlist_position(&principal.user, now)?,
        Some(_) => None,
    };
    let waitlist = waiting.as_ref().map(|(entry, position)| super::waitlist::WaitlistView::new(entry, *position));
    Ok(Json(OrderPage { orders: views, next: next.flatten(), waitlist }).into_response())
}

#[utoipa::path(put, path = "/v1/orders/{id}", tag = "orders", request_body = OrderRequest,
    params(("id" = String, Path, description = "Order id"), ("If-Match" = Option<String>, Header, description = "The ETag you read", pattern = "^(\\*|(W/)?\"[^\"]*\"(\\s*,\\s*(W/)?\"[^\"]*\")*)$")),
    responses((status = 429, description = "rate-limited: too many writes by this user, or attempts on this slot; Retry-After says when to try again", body = Problem, content_type = "application/problem+json"),
        (status = 200, description = "Changed and re-priced", body = OrderView),
        (status = 409, description = "cutoff-passed, slot-full, order-cancelled or order-in-kitchen (with order_status)", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "The order changed since you read it", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn update_order(
    State(node): State<Arc<Node>>,
    principal: Principal,
    IdSegment(id): IdSegment,
    headers: HeaderMap,
    JsonBody(body): JsonBody<OrderRequest>,
) -> ApiResult {
    let id = parse_id(&id)?;
    let if_match = if_match(&headers)?;
    let now = Timestamp::now();
    let command_id = CommandId::new();
    // This node's copy of the order, to know whether the change keeps its slot; `apply`
    // decides on the leader's.
    let before = node.store.order(id)?.filter(|o| o.user == principal.user);
    node.limits.write(&principal.user)?;
    let outcome = propose_resolved(&node, &body, now, before.as_ref(), |resolved| {
        node.limits.slot_attempt(&principal.user, resolved.spec.slot.start())?;
        Ok(Command::ChangeOrder(ChangeOrder {
            command_id,
            order_id: id,
            user: principal.user.clone(),
            at: now,
            spec: resolved.spec,
            store: resolved.store,
            delivery: resolved.delivery,
            catalog_version: resolved.catalog_version,
            if_match: if_match.clone(),
        }))
    })
    .await?;
    match outcome {
        Outcome::Changed(order) => {
            let charge = node.store.charge(&order)?;
            let mut view = OrderView::new(&order, &charge, now, &[]);
            // `before` is exactly the version this change replaced when the versions follow on.
            view.repriced_from_cents = before
                .filter(|b| b.version.0 + 1 == order.version.0 && b.price != order.price)
                .map(|b| b.price.amount.0);
            let body = serde_json::to_vec(&view).map_err(|_| ApiError::Internal)?;
            Ok(order_reply(StatusCode::OK, order.version, body))
        }
        other => unexpected(other),
    }
}

#[utoipa::path(delete, path = "/v1/orders/{id}", tag = "orders",
    params(("id" = String, Path, description = "Order id"), ("If-Match" = Option<String>, Header, description = "The ETag you read", pattern = "^(\\*|(W/)?\"[^\"]*\"(\\s*,\\s*(W/)?\"[^\"]*\")*)$")),
    responses((status = 429, description = "rate-limited: too many writes by this user, or attempts on this slot; Retry-After says when to try again", body = Problem, content_type = "application/problem+json"),
        (status = 200, description = "Cancelled (kept for billing)", body = OrderView),
        (status = 409, description = "cutoff-passed, order-cancelled or order-in-kitchen (with order_status)", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "The order changed since you read it", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn cancel_order(
    State(node): State<Arc<Node>>,
    principal: Principal,
    IdSegment(id): IdSegment,
    headers: HeaderMap,
) -> ApiResult {
    let id = parse_id(&id)?;
    let if_match = if_match(&headers)?;
    node.limits.write(&principal.user)?;
    let now = Timestamp::now();
    let command = Command::CancelOrder(CancelOrder {
        command_id: CommandId::new(),
        order_id: id,
        user: principal.user,
        at: now,
        if_match,
    });
    match propose(&node, command).await? {
        Outcome::Cancelled(order) => Ok(order_response(StatusCode::OK, &order, &node.store.charge(&order)?, now)),
        other => unexpected(other),
    }
}

/// Replicate `command`, count what it did, and turn a rejection into its problem.
pub(super) async fn propose(node: &Node, command: Command) -> Result<Outcome, ApiError> {
    let applied = node.propose(command).await?;
    super::metrics::record(&applied);
    Ok(applied?)
}

/// Each command has one kind of outcome; anything else is a bug worth a loud log, not a panic.
fn unexpected(outcome: Outcome) -> ApiResult {
    tracing::error!(?outcome, "a command produced an outcome of another kind");
    Err(ApiError::Internal)
}
