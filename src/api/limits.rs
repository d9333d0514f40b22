//! The per-address rate limit, outside every route: a client over its budget is answered 429
//! before any routing, token check or body read. Peers' calls are not counted. Per-user limits
//! sit in the write handlers, where the user is known.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::http::Request;
use axum::response::{IntoResponse, Response};
use futures_util::future::{ready, Either, Ready};
use tower::{Layer, Service};

use super::{ApiError, Connection};
use crate::node::limits::Limits;

#[derive(Clone)]
pub struct AddressLimitLayer {
    limits: Arc<Limits>,
}

impl AddressLimitLayer {
    pub fn new(limits: Arc<Limits>) -> Self {
        Self { limits }
    }
}

impl<S> Layer<S> for AddressLimitLayer {
    type Service = AddressLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AddressLimit { inner, limits: self.limits.clone() }
    }
}

#[derive(Clone)]
pub struct AddressLimit<S> {
    inner: S,
    limits: Arc<Limits>,
}

impl<S, B> Service<Request<B>> for AddressLimit<S>
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
        // Peers are not customers: a busy follower's appends, votes and forwarded writes would
        // otherwise trip a per-address limit meant for scripts (`/raft/*` checks the cluster
        // secret, and with mutual TLS the certificate, before doing any work).
        let peer = req.uri().path().starts_with("/raft/");
        let remote =
            req.extensions().get::<Connection>().filter(|c| !peer && !c.peer_certificate).map(|c| c.remote.ip());
        match remote.map(|ip| self.limits.address(ip)) {
            Some(Err(limited)) => Either::Right(ready(Ok(ApiError::from(limited).into_response()))),
            _ => Either::Left(self.inner.call(req)),
        }
    }
}
