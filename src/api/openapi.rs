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

/// Every operation can answer with these problems (from the extractors and layers shared by
/// all routes); the document lists them all, each as `application/problem+json`.
struct CommonProblems;

impl Modify for CommonProblems {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let problem = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/problem+json",
                    ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build(),
                )
                .build()
        };
        for item in openapi.paths.paths.values_mut() {
            let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete];
            for operation in operations.into_iter().flatten() {
                let responses = &mut operation.responses.responses;
                // Problems documented on the handler keep their description; their content is
                // always problem+json.
                for (status, response) in responses.iter_mut() {
                    if status.starts_with('4') || status.starts_with('5') {
                        if let utoipa::openapi::RefOr::T(r) = response {
                            *response = problem(&r.description.clone()).into();
                        }
                    }
                }
                let secured = operation.security.is_some();
                let has_body = operation.request_body.is_some();
                let mut add = |status: &str, description: &str| {
                    responses.entry(status.to_owned()).or_insert_with(|| problem(description).into());
                };
                add("400", "Malformed request, header or query string");
                add("404", "Not found");
                add("408", "The request took too long");
                add("413", "The request body is larger than 16 KiB");
                add("422", "A field or parameter is invalid");
                add("431", "The request headers are too large");
                add("500", "Internal error");
                add(
                    "503",
                    "No leader, outcome unknown, shutting down, or storage-full (the leader's disk is within its reserve; Retry-After)",
                );
                if secured {
                    add("401", "Missing, expired or invalid token");
                    add("403", "This needs an admin token");
                }
                if has_body {
                    add("415", "The body must be application/json");
                }
            }
        }
    }
}

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
        super::sign_in::provider,
        super::slots::list_slots,
        super::stores::list_stores,
        super::stores::locate_store,
        super::stores::store_slots,
        super::live::slot_stream,
        super::catalog::show,
        super::catalog::apply,
        super::catalog::history,
        super::catalog::version,
        super::orders::create_order,
        super::orders::list_orders,
        super::orders::get_order,
        super::orders::update_order,
        super::orders::cancel_order,
        super::waitlist::join,
        super::waitlist::show,
        super::waitlist::leave,
        super::events::beacon,
        super::analytics::report,
        super::analytics::revenue,
        super::kitchen::list,
        super::kitchen::advance,
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
    modifiers(&BearerAuth, &CommonProblems)
)]
pub struct ApiDoc;

#[utoipa::path(get, path = "/openapi.json", tag = "operations", responses((status = 200, description = "This document")))]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
