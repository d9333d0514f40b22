//! The HTTP API: thin handlers that parse requests into domain types and commands, hand them
//! to the node, and render outcomes. Errors leave as `application/problem+json`.

mod admin;
mod analytics;
mod backup;
mod caching;
mod catalog;
mod deadline;
mod dev_login;
mod edge;
mod events;
mod export;
mod extract;
mod gate;
mod health;
mod hot;
mod kitchen;
mod live;
mod menu;
mod metrics;
mod openapi;
mod orders;
mod problem;
mod raft;
mod sign_in;
mod slots;
mod stores;
mod stream;
mod waitlist;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Bytes, HttpBody};
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Request};
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::Router;
use tower::{Layer, Service, ServiceBuilder};

use crate::domain::OrderVersion;
use crate::node::Node;
pub use gate::GateLayer;
pub use problem::ApiError;

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// A request that takes longer than this is answered 408 and its work abandoned.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

type AppState = Arc<Node>;

/// The API as served, outermost first: the edge (request id, span, default `Cache-Control`,
/// panics, the log of server errors; `edge.rs` says why one layer); `GET /v1/orders/{id}`
/// answered ahead of the router (`hot.rs`: it reads no body, so the body limit is not in its
/// way); the default body limit; the routes, each in the layers that must see its outcome
/// (`per_route`).
///
/// Most layers wrap the router once instead of being added with `Router::layer`, which wraps
/// every route in all of them and clones that stack into a new box on every request (8.4k of
/// a stale read's 57k instructions, callgrind).
pub fn app<B>(
    node: Arc<Node>,
) -> impl Service<
    Request<B>,
    Response = Response,
    Error = Infallible,
    Future = impl Future<Output = Result<Response, Infallible>> + Send + 'static,
> + Clone
       + Send
       + 'static
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    // The recorder first: the metrics layer keeps the handles it registers.
    crate::telemetry::prometheus();
    let routed = DefaultBodyLimit::max(MAX_BODY_BYTES).layer(per_route(routes()).with_state(node.clone()));
    edge::EdgeLayer.layer(hot::HotRoutes::new(routed, node))
}

/// The layers each route runs in: the deadline, inside the metrics, so a timeout (408) is
/// counted under its route like any answer (the metrics layer counts a panic as a 500 itself
/// and lets it on to the edge layer outside). Both are cheap to clone per request.
///
/// One `Router::layer` of the two stacked, not one each: every `Router::layer` boxes each
/// route's service again and costs a request another clone, box and future (~1.1k of a stale
/// read's 31k instructions, callgrind).
fn per_route<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router.layer(route_layers(metrics::TrackLayer::default()))
}

/// The per-route stack with the metrics layer `track`: the router's routes get it with the
/// matched template, the route served ahead of the router (`hot.rs`) with its own.
fn route_layers(
    track: metrics::TrackLayer,
) -> ServiceBuilder<
    tower::layer::util::Stack<
        deadline::DeadlineLayer,
        tower::layer::util::Stack<metrics::TrackLayer, tower::layer::util::Identity>,
    >,
> {
    ServiceBuilder::new().layer(track).layer(deadline::DeadlineLayer::new(REQUEST_TIMEOUT))
}

fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/menu", get(menu::get_menu))
        .route("/v1/dev/login", post(dev_login::login))
        .route("/v1/auth/provider", get(sign_in::provider))
        .route("/v1/slots", caching::compressed(get(slots::list_slots)))
        .route("/v1/stores", get(stores::list_stores))
        .route("/v1/stores/locate", get(stores::locate_store))
        .route("/v1/stores/{id}/slots", caching::compressed(get(stores::store_slots)))
        .route("/v1/stores/{id}/slots/stream", get(live::slot_stream))
        .route("/v1/orders", get(orders::list_orders).post(orders::create_order))
        .route(hot::ORDER_ROUTE, get(orders::get_order).put(orders::update_order).delete(orders::cancel_order))
        .route("/v1/waitlist", get(waitlist::show).post(waitlist::join).delete(waitlist::leave))
        .route("/v1/events", post(events::beacon).layer(DefaultBodyLimit::max(events::MAX_BEACON_BYTES)))
        .route("/admin/analytics", caching::compressed(get(analytics::report)))
        .route("/admin/revenue", get(analytics::revenue))
        .route("/v1/kitchen/orders", caching::compressed(get(kitchen::list)))
        .route("/v1/kitchen/orders/{id}/status", post(kitchen::advance))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::metrics))
        .route("/openapi.json", caching::compressed(get(openapi::openapi_json)))
        .route("/admin/cluster", get(admin::status))
        .route("/admin/cluster/init", post(admin::init))
        .route("/admin/cluster/nodes", post(admin::add_node))
        .route("/admin/cluster/nodes/{id}", delete(admin::remove_node))
        .route(
            "/admin/catalog",
            get(catalog::show).put(catalog::apply).layer(DefaultBodyLimit::max(catalog::MAX_CATALOG_BYTES)),
        )
        .route("/admin/catalog/history", get(catalog::history))
        .route("/admin/catalog/history/{id}", get(catalog::version))
        .route("/admin/state", get(admin::state))
        .route("/admin/backup", get(backup::backup))
        .route("/admin/check", get(backup::check))
        .route("/admin/export", caching::compressed(get(export::export)))
        .merge(raft::router())
        .merge(crate::ui::router())
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
}

/// The strong ETag of an order version: `"<version>"`.
///
/// Written from a stack buffer: `format!` and a parse of the text were 700 of a stale read's
/// instructions.
pub(crate) fn etag(version: OrderVersion) -> HeaderValue {
    // `"` + the at most 20 digits of a u64 + `"`.
    let mut text = [b'"'; 22];
    let mut at = text.len() - 1;
    let mut rest = version.0;
    loop {
        at -= 1;
        // A digit: `rest % 10` is below 10.
        text[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    HeaderValue::from_bytes(&text[at - 1..]).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// What the API knows of the connection a request came on: the server gives it to the gate of
/// each connection (`GateLayer::for_connection`), which puts it into `/raft/*` requests only.
#[derive(Clone, Copy, Debug)]
pub struct Connection {
    pub remote: std::net::SocketAddr,
    /// The client showed a certificate that chains to the cluster CA (mutual TLS): a peer.
    pub peer_certificate: bool,
}

/// Shorthand for handler results.
type ApiResult<T = Response> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    /// `router` in the layers `app` puts around the routes.
    async fn send(router: Router, request: Request<Body>) -> Response {
        crate::telemetry::prometheus();
        let routed = DefaultBodyLimit::max(MAX_BODY_BYTES).layer(per_route(router));
        edge::EdgeLayer.layer(routed).oneshot(request).await.unwrap()
    }

    /// The request counter's sample for one route and status, from the process's recorder.
    fn requests_counted(route: &str, status: u16) -> Option<String> {
        let text = crate::telemetry::prometheus().expect("recorder").render();
        let labels = format!("route=\"{route}\",status=\"{status}\"");
        text.lines()
            .find(|l| l.starts_with("pizza_orders_http_requests_total") && l.contains(&labels))
            .map(str::to_owned)
    }

    #[test]
    fn an_etag_is_the_version_in_quotes() {
        for version in [0, 1, 9, 10, 42, 1_000_000_007, u64::MAX] {
            assert_eq!(etag(OrderVersion(version)), format!("\"{version}\"").as_str());
        }
    }

    #[tokio::test]
    async fn every_response_carries_a_request_id_and_one_the_client_sent_is_kept() {
        let router = || Router::new().route("/", get(|| async { "hello" }));
        let response = send(router(), Request::get("/").body(Body::empty()).unwrap()).await;
        let id = response.headers().get("x-request-id").expect("a request id").to_str().unwrap().to_owned();
        let parsed = uuid::Uuid::parse_str(&id).unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(parsed.get_version_num(), 4, "{id}");
        assert_eq!(id, parsed.hyphenated().to_string(), "lower-case, hyphenated");
        let again = send(router(), Request::get("/").body(Body::empty()).unwrap()).await;
        assert_ne!(again.headers().get("x-request-id").unwrap(), id.as_str(), "a new id for each request");
        let request = Request::get("/").header("x-request-id", "trace-me-42").body(Body::empty()).unwrap();
        let response = send(router(), request).await;
        assert_eq!(response.headers().get("x-request-id").unwrap(), "trace-me-42");
    }

    #[tokio::test]
    async fn a_handler_that_panics_is_answered_internal_as_a_problem() {
        let router = Router::new().route(
            "/boom",
            get(|| async {
                if Duration::ZERO.is_zero() {
                    panic!("a bug in a handler");
                }
                "unreachable"
            }),
        );
        let response = send(router, Request::get("/boom").body(Body::empty()).unwrap()).await;
        assert_eq!(response.status(), axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        let counted = requests_counted("/boom", 500);
        assert!(counted.is_some_and(|line| line.ends_with(" 1")), "the panic is counted as a 500 of its route");
        assert_eq!(response.headers().get("content-type").unwrap(), "application/problem+json");
        assert!(response.headers().contains_key("x-request-id"), "the client can quote the failed request");
        assert_eq!(response.headers().get("cache-control").unwrap(), "private, no-store");
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
        assert!(String::from_utf8_lossy(&body).contains("/problems/internal"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_past_the_deadline_is_answered_and_counted_408_under_its_route() {
        let router = Router::new().route(
            "/slow",
            get(|| async {
                tokio::time::sleep(REQUEST_TIMEOUT * 2).await;
                "late"
            }),
        );
        let response = send(router, Request::get("/slow").body(Body::empty()).unwrap()).await;
        assert_eq!(response.status(), axum::http::StatusCode::REQUEST_TIMEOUT);
        let counted = requests_counted("/slow", 408);
        assert!(counted.is_some_and(|line| line.ends_with(" 1")), "the timeout is counted as a 408 of its route");
    }
}
