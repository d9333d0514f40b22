//! The request deadline: a request not answered within the limit is answered
//! `408 request-timeout` (problem+json) and its handler is dropped.
//!
//! Not tower-http's `TimeoutLayer`: it answers with an empty body rather than a problem, and it
//! polls its timer before the request, so every request, even one answered on its first poll
//! (a stale read), registered a timer with the runtime and removed it again. Here the timer is
//! started only once the handler has had to wait.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::Request;
use axum::response::{IntoResponse, Response};
use tokio::time::Sleep;
use tower::{Layer, Service};

use super::ApiError;

#[derive(Clone, Copy)]
pub struct DeadlineLayer {
    limit: Duration,
}

impl DeadlineLayer {
    pub fn new(limit: Duration) -> Self {
        Self { limit }
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Deadline<S> {
        Deadline { inner, limit: self.limit }
    }
}

#[derive(Clone)]
pub struct Deadline<S> {
    inner: S,
    limit: Duration,
}

impl<S, B> Service<Request<B>> for Deadline<S>
where
    S: Service<Request<B>, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = DeadlineFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        DeadlineFuture { inner: self.inner.call(request), limit: self.limit, timer: None }
    }
}

pin_project_lite::pin_project! {
    pub struct DeadlineFuture<F> {
        #[pin]
        inner: F,
        limit: Duration,
        // Started the first time the handler is not ready; the first poll follows the call
        // directly, so the limit still counts from the start of the request.
        timer: Option<Pin<Box<Sleep>>>,
    }
}

impl<F> Future for DeadlineFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(response) = this.inner.poll(cx) {
            return Poll::Ready(response);
        }
        let limit = *this.limit;
        let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Ok(ApiError::Timeout(limit).into_response())),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    fn app() -> Deadline<Router> {
        let router = Router::new().route("/quick", get(|| async { "done" })).route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "done late"
            }),
        );
        DeadlineLayer::new(Duration::from_secs(2)).layer(router)
    }

    async fn get_path(path: &str) -> (u16, String, String) {
        let request = Request::get(path).body(Body::empty()).unwrap();
        let response = app().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let kind = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
        (status, kind, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_past_the_limit_is_answered_408_as_a_problem() {
        let started = tokio::time::Instant::now();
        let (status, kind, body) = get_path("/slow").await;
        assert_eq!((status, kind.as_str()), (408, "application/problem+json"));
        assert!(body.contains("/problems/request-timeout"), "{body}");
        assert_eq!(started.elapsed(), Duration::from_secs(2), "answered at the limit, not when the handler ended");
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_within_the_limit_gets_its_answer() {
        assert_eq!(get_path("/quick").await, (200, "text/plain; charset=utf-8".into(), "done".into()));
    }
}
