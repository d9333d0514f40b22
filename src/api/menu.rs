//! `GET /v1/menu`: what can be ordered and what it costs, at one store or on the default menu.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Serialize;

use super::caching::{cached_json, catalog_tag, CachePolicy};
use super::extract::QueryParams;
use super::{ApiError, ApiResult};
use crate::domain::{Menu, Size, Topping};
use crate::node::Node;

#[derive(Serialize, utoipa::ToSchema)]
pub struct MenuView {
    /// The store asked for, if any.
    store_id: Option<String>,
    /// ISO 4217; every amount is in its minor unit.
    currency: String,
    /// Digits of the currency's minor unit (EUR 2, JPY 0, KWD 3): `price_cents / 10^exponent`.
    exponent: u8,
    tax: TaxView,
    /// Only what is sold there.
    sizes: Vec<MenuItem>,
    toppings: Vec<MenuItem>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TaxView {
    /// Such as `7%` or `8.875%`.
    rate: String,
    /// Whether the listed prices include it (VAT, GST) or it is added on top (sales tax).
    included: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MenuItem {
    id: &'static str,
    /// In the currency's minor unit (the field keeps its first name; for JPY it is yen).
    price_cents: u64,
}

impl MenuView {
    pub fn new(menu: &Menu, store_id: Option<String>) -> Self {
        let tax = menu.tax();
        Self {
            store_id,
            currency: menu.currency().as_str().to_owned(),
            exponent: menu.currency().exponent().unwrap_or(2),
            tax: TaxView { rate: tax.rate.to_percent(), included: tax.included },
            sizes: Size::ALL
                .iter()
                .filter_map(|s| menu.size_price(*s).map(|p| MenuItem { id: s.as_str(), price_cents: p.0 }))
                .collect(),
            toppings: Topping::ALL
                .iter()
                .filter_map(|t| menu.topping_price(*t).map(|p| MenuItem { id: t.as_str(), price_cents: p.0 }))
                .collect(),
        }
    }
}

#[utoipa::path(get, path = "/v1/menu", tag = "menu",
    params(("store" = Option<String>, Query, description = "A store's id: its own menu (currency, prices, tax, what it sells); without it, the default menu")),
    responses((status = 200, description = "Sizes and toppings sold, with prices in the currency's minor unit, from the catalog in force; ETag = the catalog version", body = MenuView), (status = 304, description = "Not modified (If-None-Match)"),
        (status = 422, description = "invalid-field: no such store", body = super::openapi::Problem, content_type = "application/problem+json")))]
pub async fn get_menu(State(node): State<Arc<Node>>, headers: HeaderMap, query: QueryParams) -> ApiResult<Response> {
    let current = node.catalog()?;
    let view = match query.get("store") {
        None => MenuView::new(current.catalog.menu(), None),
        Some(id) => {
            let store = current.catalog.store(id).ok_or_else(|| ApiError::InvalidField {
                field: "store".into(),
                detail: format!("store: no store '{id}' in the catalog (GET /v1/stores lists them)"),
            })?;
            MenuView::new(current.catalog.menu_of(store), Some(store.id.to_string()))
        }
    };
    cached_json(&headers, CachePolicy::Catalog, Some(catalog_tag(current.version)), &view)
}
