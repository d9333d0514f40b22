//! `GET /v1/orders/{id}` served ahead of axum's router: the read a customer's page repeats
//! while it waits for its pizza, and the request the product answers most.
//!
//! The router costs each request ~6k instructions besides the handler's own work (the match,
//! the `MatchedPath` and path-parameter extensions, a boxed clone of the route's layered
//! service and a future per layer): a fifth of a stale read's ~28.8k (callgrind, 2026-12-06).
//! Here that one route's requests are told by their exact shape — `GET`, the path
//! `/v1/orders/` and a segment of 36 hex digits and hyphens, nothing percent-encoded — and run
//! through the **same** handler (`orders::get_order`) with the same extractors in the same
//! order, inside the same per-route layers (the metrics under the route's template, then the
//! deadline). Every other request, and this route's in any other shape (`HEAD`, an id with a
//! `%`, one of another length), goes to the router, which answers it as before.
//! `tests/api.rs` checks that both ways answer a request alike.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{FromRequestParts, State};
use axum::http::{Method, Request};
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use tower::Service;

use super::deadline::{Deadline, DeadlineFuture};
use super::extract::{IdSegment, QueryParams};
use super::metrics::{Track, TrackFuture, TrackLayer};
use super::{orders, route_layers, AppState};
use crate::auth::Principal;

/// The route's template, as the router knows it and as the metrics label it.
pub const ORDER_ROUTE: &str = "/v1/orders/{id}";
const ORDER_PREFIX: &str = "/v1/orders/";

/// The router, with `GET /v1/orders/{id}` in the canonical shape answered before it.
#[derive(Clone)]
pub struct HotRoutes<S> {
    router: S,
    order: Track<Deadline<ReadOrder>>,
}

impl<S> HotRoutes<S> {
    pub fn new(router: S, node: AppState) -> Self {
        // The router's routes' own stack (`route_layers`), counted under this route's template.
        let order = route_layers(TrackLayer::route(ORDER_ROUTE)).service(ReadOrder { node });
        Self { router, order }
    }
}

impl<S, B> Service<Request<B>> for HotRoutes<S>
where
    S: Service<Request<B>, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<S::Future, TrackFuture<DeadlineFuture<ReadFuture>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // `ReadOrder` is always ready.
        self.router.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if is_order_read(&request) {
            // The handler reads no body, as behind the router (whose `get_order` takes none).
            Either::Right(self.order.call(request.map(|_| ())))
        } else {
            Either::Left(self.router.call(request))
        }
    }
}

/// A request the router would give to `get_order` with its id segment as it is in the path.
fn is_order_read<B>(request: &Request<B>) -> bool {
    request.method() == Method::GET && request.uri().path().strip_prefix(ORDER_PREFIX).is_some_and(is_id_shaped)
}

/// The shape of an order id (`OrderId::parse` decides whether it is one): no `/`, so the
/// router's `{id}` takes all of it; no `%`, so the router's decoding would not change it; no
/// static route of the router has this shape.
fn is_id_shaped(segment: &str) -> bool {
    segment.len() == 36 && segment.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

type ReadFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

/// `orders::get_order` as a service, extracting what axum's handler would, in its order.
#[derive(Clone)]
struct ReadOrder {
    node: AppState,
}

impl Service<Request<()>> for ReadOrder {
    type Response = Response;
    type Error = Infallible;
    type Future = ReadFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<()>) -> ReadFuture {
        let node = Arc::clone(&self.node);
        let (mut parts, ()) = request.into_parts();
        Box::pin(async move {
            let principal = match Principal::from_request_parts(&mut parts, &node).await {
                Ok(principal) => principal,
                Err(rejection) => return Ok(rejection.into_response()),
            };
            // `is_order_read` saw the prefix.
            let id = IdSegment(parts.uri.path().get(ORDER_PREFIX.len()..).unwrap_or_default().to_owned());
            let Ok(query) = QueryParams::from_request_parts(&mut parts, &node).await;
            Ok(orders::get_order(State(node), principal, id, query).await.into_response())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn request(method: Method, uri: &str) -> Request<Body> {
        Request::builder().method(method).uri(uri).body(Body::empty()).unwrap()
    }

    #[test]
    fn the_canonical_order_read_is_taken_ahead_of_the_router() {
        for uri in [
            "/v1/orders/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
            "/v1/orders/0190A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B?consistency=stale",
            "/v1/orders/------------------------------------",
            "http://pizza.example/v1/orders/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        ] {
            assert!(is_order_read(&request(Method::GET, uri)), "{uri}");
        }
    }

    #[test]
    fn every_other_shape_goes_to_the_router() {
        let id = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
        for method in [Method::HEAD, Method::PUT, Method::DELETE, Method::POST, Method::OPTIONS] {
            assert!(!is_order_read(&request(method.clone(), &format!("/v1/orders/{id}"))), "{method}");
        }
        for uri in [
            "/v1/orders".to_owned(),
            "/v1/orders/".to_owned(),
            format!("/v1/orders/{id}/"),
            format!("/v1/orders/{id}0"),
            format!("/v1/orders/{}", &id[1..]),
            format!("/v1/orders/%30{}", &id[1..]),
            format!("/v1/orders/{}%2D{}", &id[..8], &id[9..]),
            format!("/v1/orders/{}x", &id[1..]),
            format!("/v1/orders//{}", &id[1..]),
            format!("/v1/Orders/{id}"),
            format!("/v2/orders/{id}"),
            format!("/v1/kitchen/orders/{id}"),
            format!("/v1/orders/{}/status", &id[..29]),
        ] {
            assert!(!is_order_read(&request(Method::GET, &uri)), "{uri}");
        }
    }
}
