//! The OpenAPI 3.1 description of the HTTP API, generated from the handlers' annotations and
//! served at `/openapi.json`.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// An RFC 9457 problem: every error the API returns has this shape.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Problem {
    /// Stable, machine-readable: `/problems/<slug>`.
    #[schema(example = "/problems/slot-full")]
    r#type: String,
    title: String,
    status: u16,
    /// A sentence a UI can show.
    detail: String,
    /// For `invalid-field`: which field.
    field: Option<String>,
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
            );
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "pizza-orders", description = "Orders of a pizza delivery service. Errors are application/problem+json (RFC 9457)."),
    paths(
        super::menu::get_menu,
        super::dev_login::login,
        super::slots::list_slots,
        super::orders::create_order,
        super::orders::list_orders,
        super::orders::get_order,
        super::orders::update_order,
        super::orders::cancel_order,
        super::health::healthz,
        super::health::readyz,
        super::metrics::metrics,
        super::admin::status,
        super::admin::init,
        super::admin::add_node,
        super::admin::remove_node,
        super::admin::state,
        super::backup::backup,
        super::backup::check,
        super::export::export,
        openapi_json,
    ),
    components(schemas(Problem)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

#[utoipa::path(get, path = "/openapi.json", tag = "operations", responses((status = 200, description = "This document")))]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
