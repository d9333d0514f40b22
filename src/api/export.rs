//! `GET /admin/export?format=csv|ndjson&since_revision=N`: billing's export, streamed from one
//! read transaction. Without `since_revision`, every order as of one revision; with it,
//! exactly the orders created, changed or cancelled after revision N.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use serde::Serialize;
use tokio::sync::oneshot;

use super::admin::require_admin;
use super::backup::REVISION_HEADER;
use super::extract::QueryParams;
use super::stream::stream_blocking;
use super::{ApiError, ApiResult};
use crate::auth::Principal;
use crate::domain::{Charge, Order, OrderStatus, Size, Step};
use crate::node::{Consistency, Node};
use crate::raft::state_machine::applied_index;
use crate::state::export::{for_each_order, for_each_wait_entry};
use crate::state::{StoreError, WaitEntry};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Ndjson,
}

/// One exported order: the columns billing reads, in this order (the store's columns came
/// last, so readers of the older columns by position are unaffected).
#[derive(Serialize)]
struct Row<'a> {
    order_id: String,
    user: &'a str,
    address: &'a str,
    size: Size,
    toppings: String,
    price_cents: u64,
    currency: &'a str,
    delivery_slot: String,
    status: OrderStatus,
    created_at: String,
    updated_at: String,
    revision: u64,
    store_id: &'a str,
    postcode: Option<&'a str>,
    latitude: Option<f64>,
    longitude: Option<f64>,
    /// The catalog version the order was last placed or changed under (0: before catalogs).
    catalog_version: u64,
    /// The kitchen's steps (empty until it took the order); appended after the store's.
    preparing_at: Option<String>,
    baked_at: Option<String>,
    out_for_delivery_at: Option<String>,
    delivered_at: Option<String>,
    not_delivered_at: Option<String>,
    not_delivered_reason: Option<&'a str>,
    /// The money split, appended last: in minor units of `currency`, `net + tax = gross`
    /// (`gross` is `price_cents`); the rate as written (`7%`) and whether prices included it.
    net: u64,
    tax: u64,
    gross: u64,
    tax_rate: String,
    tax_included: bool,
}

impl<'a> Row<'a> {
    fn new(order: &'a Order, steps: &'a [Step], charge: &Charge) -> Self {
        let at = |status: OrderStatus| steps.iter().find(|s| s.status == status).map(|s| s.at.to_rfc3339());
        let failed = steps.iter().find(|s| s.status == OrderStatus::NotDelivered);
        Self {
            order_id: order.id.to_string(),
            user: order.user.as_str(),
            address: order.spec.address.as_str(),
            size: order.spec.size,
            toppings: order.spec.toppings.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(";"),
            price_cents: order.price.amount.0,
            currency: order.price.currency.as_str(),
            delivery_slot: order.spec.slot.start().to_rfc3339(),
            status: order.status,
            created_at: order.created_at.to_rfc3339(),
            updated_at: order.updated_at.to_rfc3339(),
            revision: order.revision,
            store_id: order.store.as_str(),
            postcode: order.delivery.postcode.as_ref().map(|p| p.as_str()),
            latitude: order.delivery.location.map(|l| l.lat()),
            longitude: order.delivery.location.map(|l| l.lon()),
            catalog_version: order.catalog_version,
            preparing_at: at(OrderStatus::Preparing),
            baked_at: at(OrderStatus::Baked),
            out_for_delivery_at: at(OrderStatus::OutForDelivery),
            delivered_at: at(OrderStatus::Delivered),
            not_delivered_at: failed.map(|s| s.at.to_rfc3339()),
            not_delivered_reason: failed.and_then(|s| s.reason.as_ref()).map(|r| r.as_str()),
            net: charge.net.0,
            tax: charge.tax.0,
            gross: charge.gross.0,
            tax_rate: charge.rate.to_percent(),
            tax_included: charge.included,
        }
    }
}

/// One exported waitlist entry.
#[derive(Serialize)]
struct WaitRow<'a> {
    store_id: &'a str,
    delivery_slot: String,
    position: u64,
    user: &'a str,
    order_id: String,
    size: Size,
    toppings: String,
    price_cents: u64,
    currency: &'a str,
    joined_at: String,
    waits_until: String,
}

impl<'a> WaitRow<'a> {
    fn new(entry: &'a WaitEntry, position: u64) -> Self {
        Self {
            store_id: entry.store.as_str(),
            delivery_slot: entry.spec.slot.start().to_rfc3339(),
            position,
            user: entry.user.as_str(),
            order_id: entry.order_id.to_string(),
            size: entry.spec.size,
            toppings: entry.spec.toppings.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(";"),
            price_cents: entry.price.amount.0,
            currency: entry.price.currency.as_str(),
            joined_at: entry.joined_at.to_rfc3339(),
            waits_until: entry.expires_at.to_rfc3339(),
        }
    }
}

/// Where exported rows go: CSV (with a header row even when there are none, so every export
/// parses the same way) or NDJSON.
enum Sink<'w, W: std::io::Write> {
    /// Boxed: the writer's buffer is large beside a reference, and there is one sink per export.
    Csv(Box<csv::Writer<&'w mut W>>),
    Ndjson(&'w mut W),
}

impl<'w, W: std::io::Write> Sink<'w, W> {
    fn new(format: Format, out: &'w mut W) -> Self {
        match format {
            Format::Csv => Sink::Csv(Box::new(csv::Writer::from_writer(out))),
            Format::Ndjson => Sink::Ndjson(out),
        }
    }

    fn put<T: Serialize>(&mut self, row: &T) -> Result<(), StoreError> {
        let io = |e: &dyn std::fmt::Display| StoreError::Io(e.to_string());
        match self {
            Sink::Csv(csv) => csv.serialize(row).map_err(|e| io(&e)),
            Sink::Ndjson(out) => {
                serde_json::to_writer(&mut **out, row).map_err(|e| io(&e))?;
                out.write_all(b"\n").map_err(|e| io(&e))
            }
        }
    }

    fn finish(self) -> Result<(), String> {
        if let Sink::Csv(mut csv) = self {
            csv.flush().map_err(|e| e.to_string())?;
            if csv.into_inner().is_err() {
                return Err("the client went away".into());
            }
        }
        Ok(())
    }
}

#[utoipa::path(get, path = "/admin/export", tag = "billing",
    params(("format" = Option<String>, Query, description = "csv (default) or ndjson"), ("since_revision" = Option<u64>, Query, description = "Only orders changed after this revision"),
        ("what" = Option<String>, Query, description = "orders (default) or waitlist: every line's entries with their positions")),
    responses((status = 200, description = "Orders as CSV or NDJSON; x-pizza-revision says as of which revision"),
        (status = 422, description = "A revision in the future or a bad parameter", body = super::openapi::Problem)), security(("bearer" = [])))]
pub async fn export(State(node): State<Arc<Node>>, principal: Principal, query: QueryParams) -> ApiResult {
    require_admin(&principal)?;
    let format = match query.get("format") {
        None | Some("csv") => Format::Csv,
        Some("ndjson") => Format::Ndjson,
        Some(_) => return Err(invalid("format", "must be 'csv' or 'ndjson'")),
    };
    let since = match query.get("since_revision") {
        None => None,
        Some(raw) => Some(raw.parse::<u64>().map_err(|_| invalid("since_revision", "must be a whole number"))?),
    };
    let waitlist = match query.get("what") {
        None | Some("orders") => false,
        Some("waitlist") if since.is_none() => true,
        Some("waitlist") => return Err(invalid("since_revision", "a waitlist export is always whole")),
        Some(_) => return Err(invalid("what", "must be 'orders' or 'waitlist'")),
    };
    node.read_barrier(Consistency::Linearizable).await?;
    let store = node.store.clone();
    let (ready_tx, ready_rx) = oneshot::channel::<Result<u64, ApiError>>();
    let body = stream_blocking(move |out| {
        let txn = store.begin_read().map_err(|e| e.to_string())?;
        let revision = applied_index(&txn).map_err(|e| e.to_string())?.unwrap_or(0);
        if let Some(since) = since.filter(|s| *s > revision) {
            let _ = ready_tx.send(Err(ApiError::InvalidField {
                field: "since_revision".into(),
                detail: format!("since_revision: revision {since} is in the future (the cluster is at {revision})"),
            }));
            return Ok(());
        }
        let _ = ready_tx.send(Ok(revision));
        let mut sink = Sink::new(format, out);
        let written = if waitlist {
            for_each_wait_entry(&txn, |entry, position| sink.put(&WaitRow::new(entry, position)))
        } else {
            for_each_order(&txn, since, |order, steps| {
                let charge = store.charge(order)?;
                sink.put(&Row::new(order, steps, &charge))
            })
        };
        written.map_err(|e| e.to_string())?;
        sink.finish()
    });
    let revision = ready_rx.await.map_err(|_| ApiError::Internal)??;
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    let content_type = if format == Format::Csv { "text/csv; charset=utf-8" } else { "application/x-ndjson" };
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(REVISION_HEADER, HeaderValue::from(revision));
    Ok(response)
}

fn invalid(field: &str, detail: &str) -> ApiError {
    ApiError::InvalidField { field: field.into(), detail: format!("{field}: {detail}") }
}

use std::io::Write as _;
