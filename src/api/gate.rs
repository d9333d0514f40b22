//! The gate in front of every route: what is answered before any routing, token check or body
//! read.
//!
//! - **Draining.** While the node stops gracefully (`Node::begin_drain`), a new client request
//!   is answered 503 with `Connection: close`, so clients and load balancers move to another
//!   node. Peers' Raft calls (`/raft/*`) and the health and metrics endpoints are still served:
//!   a draining follower keeps receiving the leader's entries, so the requests already in
//!   flight on it finish instead of waiting for a leader it could no longer hear.
//! - **The per-address rate limit.** A client over its budget is answered 429. Peers' calls
//!   are not counted. Per-user limits sit in the write handlers, where the user is known.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::http::{header, HeaderValue, Request};
use axum::response::{IntoResponse, Response};
use futures_util::future::{ready, Either, Ready};
use tower::{Layer, Service};

use super::{ApiError, Connection};
use crate::node::limits::Limits;

/// Paths served while draining: peers, and what monitoring asks.
fn served_while_draining(path: &str) -> bool {
    path.starts_with("/raft/") || matches!(path, "/healthz" | "/readyz" | "/metrics")
}

#[derive(Clone)]
pub struct GateLayer {
    limits: Arc<Limits>,
    draining: Arc<AtomicBool>,
    connection: Option<Connection>,
}

impl GateLayer {
    pub fn new(limits: Arc<Limits>, draining: Arc<AtomicBool>) -> Self {
        Self { limits, draining, connection: None }
    }

    /// The gate of one connection: the per-address limit counts its remote address, and
    /// `/raft/*` requests on it carry it (`api/raft.rs` asks whether it showed a cluster
    /// certificate). Given per connection rather than put into every request's extensions:
    /// that map was allocated, filled and freed for each request (~500 of a read's 22.5k
    /// instructions, callgrind).
    pub fn for_connection(&self, connection: Connection) -> Self {
        Self { connection: Some(connection), ..self.clone() }
    }
}

impl<S> Layer<S> for GateLayer {
    type Service = Gate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Gate { inner, limits: self.limits.clone(), draining: self.draining.clone(), connection: self.connection }
    }
}

#[derive(Clone)]
pub struct Gate<S> {
    inner: S,
    limits: Arc<Limits>,
    draining: Arc<AtomicBool>,
    connection: Option<Connection>,
}

impl<S, B> Service<Request<B>> for Gate<S>
where
    S: Service<Request<B>, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<S::Future, Ready<Result<Response, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let path = req.uri().path();
        if self.draining.load(Ordering::Relaxed) && !served_while_draining(path) {
            let mut response = ApiError::Unavailable.into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return Either::Right(ready(Ok(response)));
        }
        // Peers are not customers: a busy follower's appends, votes and forwarded writes would
        // otherwise trip a per-address limit meant for scripts (`/raft/*` checks the cluster
        // secret, and with mutual TLS the certificate, before doing any work).
        if path.starts_with("/raft/") {
            if let Some(connection) = self.connection {
                req.extensions_mut().insert(connection);
            }
            return Either::Left(self.inner.call(req));
        }
        let remote = self.connection.filter(|c| !c.peer_certificate).map(|c| c.remote.ip());
        match remote.map(|ip| self.limits.address(ip)) {
            Some(Err(limited)) => Either::Right(ready(Ok(ApiError::from(limited).into_response()))),
            _ => Either::Left(self.inner.call(req)),
        }
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
