//! `GET /v1/menu`: what can be ordered and what it costs.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Serialize;

use super::caching::{cached_json, catalog_tag, CachePolicy};
use super::ApiResult;
use crate::domain::{Size, Topping};
use crate::node::Node;

#[derive(Serialize, utoipa::ToSchema)]
pub struct MenuView {
    currency: String,
    sizes: Vec<MenuItem>,
    toppings: Vec<MenuItem>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MenuItem {
    id: &'static str,
    price_cents: u64,
}

#[utoipa::path(get, path = "/v1/menu", tag = "menu", responses((status = 200, description = "Sizes and toppings with prices in cents, from the catalog in force; ETag = the catalog version", body = MenuView), (status = 304, description = "Not modified (If-None-Match)")))]
pub async fn get_menu(State(node): State<Arc<Node>>, headers: HeaderMap) -> ApiResult<Response> {
    let current = node.catalog()?;
    let menu = current.catalog.menu();
    let view = MenuView {
        currency: menu.currency().as_str().to_owned(),
        sizes: Size::ALL.iter().map(|s| MenuItem { id: s.as_str(), price_cents: menu.size_price(*s).0 }).collect(),
        toppings: Topping::ALL
            .iter()
            .map(|t| MenuItem { id: t.as_str(), price_cents: menu.topping_price(*t).0 })
            .collect(),
    };
    cached_json(&headers, CachePolicy::Catalog, Some(catalog_tag(current.version)), &view)
}
