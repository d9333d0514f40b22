//! `GET /v1/menu`: what can be ordered and what it costs.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::Serialize;

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

#[utoipa::path(get, path = "/v1/menu", tag = "menu", responses((status = 200, description = "Sizes and toppings with prices in cents, from the catalog in force", body = MenuView)))]
pub async fn get_menu(State(node): State<Arc<Node>>) -> ApiResult<Json<MenuView>> {
    let current = node.catalog()?;
    let menu = current.catalog.menu();
    Ok(Json(MenuView {
        currency: menu.currency().as_str().to_owned(),
        sizes: Size::ALL.iter().map(|s| MenuItem { id: s.as_str(), price_cents: menu.size_price(*s).0 }).collect(),
        toppings: Topping::ALL
            .iter()
            .map(|t| MenuItem { id: t.as_str(), price_cents: menu.topping_price(*t).0 })
            .collect(),
    }))
}
