//! While a node stops gracefully (`Node::begin_drain`), new client requests are answered 503
//! with `Connection: close`, so clients and load balancers move to another node, while peers'
//! Raft calls (`/raft/*`) and the health and metrics endpoints are still served: a draining
//! follower keeps receiving the leader's entries, so requests already in flight on it finish
//! instead of waiting for a leader it could no longer hear.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::http::{header, HeaderValue, Request};
use axum::response::{IntoResponse, Response};
use futures_util::future::{ready, Either, Ready};
use tower::{Layer, Service};

use super::ApiError;

/// Paths served while draining: peers, and what monitoring asks.
fn served_while_draining(path: &str) -> bool {
    path.starts_with("/raft/") || matches!(path, "/healthz" | "/readyz" | "/metrics")
}

#[derive(Clone)]
pub struct DrainLayer {
    draining: Arc<AtomicBool>,
}

impl DrainLayer {
    pub fn new(draining: Arc<AtomicBool>) -> Self {
        Self { draining }
    }
}

impl<S> Layer<S> for DrainLayer {
    type Service = Drain<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Drain { inner, draining: self.draining.clone() }
    }
}

#[derive(Clone)]
pub struct Drain<S> {
    inner: S,
    draining: Arc<AtomicBool>,
}

impl<S, B> Service<Request<B>> for Drain<S>
where
    S: Service<Request<B>, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<S::Future, Ready<Result<Response, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if !self.draining.load(Ordering::Relaxed) || served_while_draining(req.uri().path()) {
            return Either::Left(self.inner.call(req));
        }
        let mut response = ApiError::Unavailable.into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        Either::Right(ready(Ok(response)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_and_monitoring_are_served_while_draining_and_customers_are_not() {
        for path in ["/raft/append", "/raft/vote", "/raft/propose", "/healthz", "/readyz", "/metrics"] {
            assert!(served_while_draining(path), "{path}");
        }
        for path in ["/", "/v1/orders", "/v1/orders/me", "/admin/cluster", "/raftx", "/readyz/x"] {
            assert!(!served_while_draining(path), "{path}");
        }
    }
}
