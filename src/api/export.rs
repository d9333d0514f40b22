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
use crate::domain::{Order, OrderStatus, Size};
use crate::node::{Consistency, Node};
use crate::raft::state_machine::applied_index;
use crate::state::export::for_each_order;
use crate::state::StoreError;

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
}

impl<'a> Row<'a> {
    fn new(order: &'a Order) -> Self {
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
        }
    }
}

#[utoipa::path(get, path = "/admin/export", tag = "billing",
    params(("format" = Option<String>, Query, description = "csv (default) or ndjson"), ("since_revision" = Option<u64>, Query, description = "Only orders changed after this revision")),
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
        let text = |e: &dyn std::fmt::Display| e.to_string();
        match format {
            Format::Csv => {
                let mut csv = csv::Writer::from_writer(out);
                for_each_order(&txn, since, |order| {
                    csv.serialize(Row::new(order)).map_err(|e| StoreError::Io(e.to_string()))
                })
                .map_err(|e| text(&e))?;
                csv.flush().map_err(|e| text(&e))?;
                // A header row even when nothing changed, so every export parses the same way.
                if csv.into_inner().is_err() {
                    return Err("the client went away".into());
                }
            }
            Format::Ndjson => {
                for_each_order(&txn, since, |order| {
                    serde_json::to_writer(&mut *out, &Row::new(order)).map_err(|e| StoreError::Io(e.to_string()))?;
                    out.write_all(b"\n").map_err(|e| StoreError::Io(e.to_string()))
                })
                .map_err(|e| text(&e))?;
            }
        }
        Ok(())
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
