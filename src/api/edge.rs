//! The one layer around every route: each request's id (the client's, or a new UUID), its
//! debug span, the default `Cache-Control`, a handler's panic answered `500` as a problem, and
//! the log line of every server error with the request id the client got.
//!
//! tower-http has each of these as a layer of its own (`SetRequestId`, `Trace`,
//! `PropagateRequestId`, `SetResponseHeader`, `CatchPanic`), and they were how this was done
//! until the eighth stop of round three: five services cloned and five futures nested per
//! request, the id stored in the request's and the response's extensions (a map allocated and
//! grown for each), the response body boxed twice more and mapped back into axum's `Body`.
//! Together that was ~5.5k of a stale read's 35.5k instructions (callgrind, one worker thread,
//! 2 000 reads); this layer does the same work in ~1k. What each of them did that nothing here
//! used (the id as an extension, the body wrapper for end-of-stream events, which were not
//! logged) is left out; what the answers show is the same, and `api::tests` checks it.

use std::convert::Infallible;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::http::{header, HeaderName, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use super::{caching, ApiError};

/// The header that carries a request's id, both ways.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[derive(Clone, Copy, Default)]
pub struct EdgeLayer;

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge { inner }
    }
}

#[derive(Clone)]
pub struct Edge<S> {
    inner: S,
}

/// A random (v4) UUID, written from a stack buffer rather than formatted into a `String` and
/// parsed back (tower-http's `MakeRequestUuid`: 600 instructions more for the same header).
fn new_request_id() -> HeaderValue {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let id = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
    HeaderValue::from_str(id).unwrap_or(HeaderValue::from_static("-"))
}

impl<S, B> Service<Request<B>> for Edge<S>
where
    S: Service<Request<B>, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = EdgeFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let started = Instant::now();
        let id = request.headers().get(&REQUEST_ID).cloned().unwrap_or_else(new_request_id);
        // A span per request at debug only: at the default `info` filter, creating and
        // formatting one was 9.4k of a read's 66.6k instructions (callgrind).
        let span = tracing::debug_span!(
            "request",
            method = %request.method(),
            path = %request.uri().path(),
            request_id = id.to_str().unwrap_or("-")
        );
        let inner = {
            let _entered = span.enter();
            catch_unwind(AssertUnwindSafe(|| self.inner.call(request))).ok()
        };
        EdgeFuture { inner, span, id, started }
    }
}

pin_project_lite::pin_project! {
    pub struct EdgeFuture<F> {
        // `None`: the handler panicked when it was called.
        #[pin]
        inner: Option<F>,
        span: tracing::Span,
        id: HeaderValue,
        started: Instant,
    }
}

impl<F> Future for EdgeFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let polled = match this.inner.as_pin_mut() {
            Some(inner) => catch_unwind(AssertUnwindSafe(|| inner.poll(cx))).ok(),
            None => None,
        };
        let mut response = match polled {
            Some(Poll::Pending) => return Poll::Pending,
            Some(Poll::Ready(Ok(response))) => response,
            None => {
                tracing::error!("a request handler panicked");
                ApiError::Internal.into_response()
            }
        };
        let headers = response.headers_mut();
        // The request's id, unless the answer names one itself.
        if !headers.contains_key(&REQUEST_ID) {
            headers.insert(REQUEST_ID, this.id.clone());
        }
        // Only the public reads name a caching policy; everything else is a user's or an
        // admin's and must not be stored by any cache.
        if !headers.contains_key(header::CACHE_CONTROL) {
            headers.insert(header::CACHE_CONTROL, caching::PRIVATE);
        }
        log_server_error(&response, *this.started);
        Poll::Ready(Ok(response))
    }
}

/// Server errors are logged with the request id the client got: a 503 (no leader yet, outcome
/// unknown) at warn, as it is expected around elections; any other 5xx at error. The clock is
/// read only then.
fn log_server_error(response: &Response, started: Instant) {
    let status = response.status();
    if !status.is_server_error() {
        return;
    }
    let latency = started.elapsed();
    let id = response.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
    let ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        tracing::warn!(status = status.as_u16(), request_id = %id, ms, "request failed");
    } else {
        tracing::error!(status = status.as_u16(), request_id = %id, ms, "request failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    fn get(path: &str) -> Request<Body> {
        Request::get(path).body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn answers_are_private_unless_they_name_a_policy_and_a_handlers_own_id_is_kept() {
        let inner = tower::service_fn(|request: Request<Body>| async move {
            let mut response = "hello".into_response();
            if request.uri().path() == "/public" {
                response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=5"));
                response.headers_mut().insert(REQUEST_ID, HeaderValue::from_static("named-by-handler"));
            }
            Ok::<_, Infallible>(response)
        });
        let private = EdgeLayer.layer(inner).oneshot(get("/")).await.unwrap();
        assert_eq!(private.headers().get(header::CACHE_CONTROL).unwrap(), "private, no-store");
        let public = EdgeLayer.layer(inner).oneshot(get("/public")).await.unwrap();
        assert_eq!(public.headers().get(header::CACHE_CONTROL).unwrap(), "public, max-age=5");
        assert_eq!(public.headers().get(REQUEST_ID).unwrap(), "named-by-handler");
    }

    #[tokio::test]
    async fn a_service_that_panics_when_called_is_answered_internal_with_the_clients_id() {
        let inner = tower::service_fn(|request: Request<Body>| {
            if request.uri().path() == "/boom" {
                panic!("a bug before the handler's future");
            }
            std::future::ready(Ok::<_, Infallible>("fine".into_response()))
        });
        let request = Request::get("/boom").header(REQUEST_ID, "quote-me-7").body(Body::empty()).unwrap();
        let response = EdgeLayer.layer(inner).oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers().get(header::CONTENT_TYPE).unwrap(), "application/problem+json");
        assert_eq!(response.headers().get(REQUEST_ID).unwrap(), "quote-me-7");
        assert_eq!(response.headers().get(header::CACHE_CONTROL).unwrap(), "private, no-store");
        let fine = EdgeLayer.layer(inner).oneshot(get("/")).await.unwrap();
        assert_eq!(fine.status(), StatusCode::OK);
    }
}
