//! `GET /metrics` (Prometheus text) and the request middleware that feeds it.

use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, State};
use axum::http::{header, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use crate::node::Node;
use crate::state::{Applied, Outcome, Rejection};

/// Counts and times every request by route template (never the raw path: bounded labels).
///
/// A tower layer rather than `axum::middleware::from_fn`: that one boxes the rest of the stack
/// and its future on every request. Applied with `Router::layer`, so it runs after routing and
/// sees the route's `MatchedPath`; a route matched ahead of the router (`hot.rs`) names its
/// template itself ([`TrackLayer::route`]).
#[derive(Clone, Copy, Default)]
pub struct TrackLayer {
    route: Option<&'static str>,
}

impl TrackLayer {
    /// Counts every request under `template`, for a service that serves one route.
    pub fn route(template: &'static str) -> Self {
        Self { route: Some(template) }
    }
}

impl<S> Layer<S> for TrackLayer {
    type Service = Track<S>;

    fn layer(&self, inner: S) -> Track<S> {
        Track { inner, route: self.route }
    }
}

#[derive(Clone)]
pub struct Track<S> {
    inner: S,
    route: Option<&'static str>,
}

/// The route a request is counted under.
enum RouteLabel {
    Matched(MatchedPath),
    Fixed(&'static str),
    Unmatched,
}

impl RouteLabel {
    fn as_str(&self) -> &str {
        match self {
            RouteLabel::Matched(path) => path.as_str(),
            RouteLabel::Fixed(template) => template,
            RouteLabel::Unmatched => "unmatched",
        }
    }
}

impl<S, B, ResBody> Service<Request<B>> for Track<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = TrackFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let route = match self.route {
            Some(template) => RouteLabel::Fixed(template),
            None => {
                request.extensions().get::<MatchedPath>().cloned().map_or(RouteLabel::Unmatched, RouteLabel::Matched)
            }
        };
        let method = method_label(request.method());
        TrackFuture { inner: self.inner.call(request), route, method, started: Instant::now() }
    }
}

pin_project_lite::pin_project! {
    pub struct TrackFuture<F> {
        #[pin]
        inner: F,
        route: RouteLabel,
        method: &'static str,
        started: Instant,
    }
}

impl<F, E, ResBody> Future for TrackFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let count = |status: StatusCode| {
            let key = RouteKeyRef { method: this.method, route: this.route.as_str(), status: status.as_u16() };
            count_request(&key, this.started.elapsed().as_secs_f64());
        };
        // A handler that panics is answered 500 by the edge layer outside the router,
        // where the route is no longer known: count it here, then let the panic go on.
        let result = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| this.inner.poll(cx))) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(result)) => result,
            Err(panic) => {
                count(StatusCode::INTERNAL_SERVER_ERROR);
                std::panic::resume_unwind(panic)
            }
        };
        if let Ok(response) = &result {
            count(response.status());
        }
        Poll::Ready(result)
    }
}

/// The method as a label: the standard ones by name, any extension method a client makes up
/// as `other`, so a client cannot create series without bound.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// The request counter and histogram of one (method, route, status), registered once: looking
/// them up by labels on every request (three label strings, two registry lookups) was ~6k
/// instructions of a ~65k-instruction read (callgrind).
///
/// Each worker thread first scans the few pairs it used last (no hashing, no lock, no handle
/// cloned; the shared cache's lookup was ~690 of a stale read's instructions); a miss asks the
/// shared cache and keeps the answer.
fn count_request(key: &RouteKeyRef<'_>, seconds: f64) {
    use quick_cache::Equivalent;
    thread_local! {
        static RECENT: std::cell::RefCell<Vec<(RouteKey, metrics::Counter, metrics::Histogram)>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }
    /// Pairs a thread keeps: the routes, methods and statuses a node mostly answers.
    const RECENT_PAIRS: usize = 32;
    RECENT.with_borrow_mut(|recent| {
        let at = match recent.iter().position(|(known, ..)| key.equivalent(known)) {
            Some(at) => at,
            None => {
                if recent.len() == RECENT_PAIRS {
                    drop(recent.remove(0));
                }
                let (count, time) = shared_request_metrics(key);
                recent.push((key.owned(), count, time));
                recent.len() - 1
            }
        };
        let (_, count, time) = &recent[at];
        count.increment(1);
        time.record(seconds);
    });
}

fn shared_request_metrics(key: &RouteKeyRef<'_>) -> (metrics::Counter, metrics::Histogram) {
    static HANDLES: OnceLock<quick_cache::sync::Cache<RouteKey, (metrics::Counter, metrics::Histogram)>> =
        OnceLock::new();
    // Routes x methods x statuses in use: a few hundred at most; an evicted pair is looked up again.
    let handles = HANDLES.get_or_init(|| quick_cache::sync::Cache::new(1024));
    if let Some(found) = handles.get(key) {
        return found;
    }
    let labels =
        [("method", key.method.to_owned()), ("route", key.route.to_owned()), ("status", key.status.to_string())];
    let pair = (
        metrics::counter!("pizza_orders_http_requests_total", &labels),
        metrics::histogram!("pizza_orders_http_request_duration_seconds", &labels),
    );
    handles.insert(key.owned(), pair.clone());
    pair
}

#[derive(PartialEq, Eq)]
struct RouteKey {
    method: &'static str,
    route: Box<str>,
    status: u16,
}

/// A [`RouteKey`] borrowed from the request, so a lookup allocates nothing.
struct RouteKeyRef<'a> {
    method: &'static str,
    route: &'a str,
    status: u16,
}

impl Hash for RouteKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        RouteKeyRef { method: self.method, route: &self.route, status: self.status }.hash(state);
    }
}

impl Hash for RouteKeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.method.hash(state);
        self.route.hash(state);
        self.status.hash(state);
    }
}

impl RouteKeyRef<'_> {
    fn owned(&self) -> RouteKey {
        RouteKey { method: self.method, route: self.route.into(), status: self.status }
    }
}

impl quick_cache::Equivalent<RouteKey> for RouteKeyRef<'_> {
    fn equivalent(&self, key: &RouteKey) -> bool {
        self.method == key.method && *self.route == *key.route && self.status == key.status
    }
}

/// Count what a write did.
pub fn record(applied: &Applied) {
    let outcome = match applied {
        Ok(Outcome::Placed { replayed: true, .. }) => return,
        Ok(Outcome::Placed { .. }) => "created",
        Ok(Outcome::Changed(_)) => "updated",
        Ok(Outcome::Cancelled(_)) => "cancelled",
        Ok(
            Outcome::Catalog { .. } | Outcome::Waiting { .. } | Outcome::LeftWaitlist(_) | Outcome::Analytics { .. },
        ) => return,
        Ok(Outcome::Advanced { order, .. }) => {
            metrics::counter!("pizza_orders_kitchen_steps_total", "status" => order.status.as_str()).increment(1);
            return;
        }
        Err(rejection) => {
            let reason = match rejection {
                Rejection::OrderExists(_) => "order_exists",
                Rejection::SlotFull(..) => "slot_full",
                Rejection::SlotHasRoom(_) => "slot_has_room",
                Rejection::AlreadyWaiting(_) => "already_waiting",
                Rejection::NotWaiting => "not_waiting",
                Rejection::SlotTooSoon(..) => "slot_too_soon",
                Rejection::NotFound => "not_found",
                Rejection::PreconditionFailed(_) => "precondition_failed",
                Rejection::CutoffPassed(_) => "cutoff_passed",
                Rejection::NotActive => "cancelled",
                Rejection::IdempotencyKeyReused => "idempotency_key_reused",
                Rejection::DuplicateOrderId(_) => "duplicate_id",
                Rejection::CatalogChanged(_) => "catalog_changed",
                Rejection::NoCatalog => "no_catalog",
                Rejection::UnknownStore(_) => "unknown_store",
                Rejection::SlotNotBookable(_) => "slot_not_bookable",
                Rejection::CatalogVersionConflict(_) => "catalog_version_conflict",
                Rejection::InvalidCatalog(_) => "invalid_catalog",
                Rejection::StoreInUse(_) => "store_in_use",
                Rejection::InKitchen(_) => "in_kitchen",
                Rejection::StepNotAllowed(..) => "step_not_allowed",
                Rejection::ReasonRequired => "reason_required",
                Rejection::Lapsed => "lapsed",
                Rejection::InvalidAnalytics(_) => "invalid_analytics",
                Rejection::NotOnMenu(..) => "not_on_menu",
            };
            metrics::counter!("pizza_orders_rejections_total", "reason" => reason).increment(1);
            "rejected"
        }
    };
    metrics::counter!("pizza_orders_orders_total", "outcome" => outcome).increment(1);
}

#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(node): State<Arc<Node>>) -> Response {
    let Some(handle) = crate::telemetry::prometheus() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "metrics are not available in this process").into_response();
    };
    let m = node.metrics();
    metrics::gauge!("pizza_orders_raft_term").set(m.current_term as f64);
    metrics::gauge!("pizza_orders_raft_leader_id").set(m.current_leader.unwrap_or(0) as f64);
    metrics::gauge!("pizza_orders_raft_is_leader").set(if m.current_leader == Some(node.id) { 1.0 } else { 0.0 });
    metrics::gauge!("pizza_orders_raft_commit_index").set(node.committed_index() as f64);
    metrics::gauge!("pizza_orders_raft_applied_index").set(m.last_applied.map_or(0, |l| l.index) as f64);
    let last = m.last_log_index.unwrap_or(0);
    metrics::gauge!("pizza_orders_raft_last_log_index").set(last as f64);
    metrics::gauge!("pizza_orders_raft_snapshot_index").set(m.snapshot.map_or(0, |l| l.index) as f64);
    metrics::gauge!("pizza_orders_raft_log_entries").set(last.saturating_sub(m.purged.map_or(0, |l| l.index)) as f64);
    if let Some(replication) = &m.replication {
        for (follower, matched) in replication.iter().filter(|(id, _)| **id != node.id) {
            let lag = last.saturating_sub(matched.map_or(0, |l| l.index));
            metrics::gauge!("pizza_orders_raft_replication_lag_entries", "follower" => follower.to_string())
                .set(lag as f64);
        }
    }
    let store = node.store.clone();
    if let Ok(Ok(summary)) = tokio::task::spawn_blocking(move || store.slot_summary()).await {
        metrics::gauge!("pizza_orders_orders_placed").set(summary.placed as f64);
        metrics::gauge!("pizza_orders_slots_booked").set(summary.booked as f64);
        metrics::gauge!("pizza_orders_slots_full").set(summary.full as f64);
    }
    if let Ok(meta) = std::fs::metadata(node.store.path()) {
        metrics::gauge!("pizza_orders_db_size_bytes").set(meta.len() as f64);
    }
    let log_bytes = crate::raft::log_store::LogStore::disk_bytes(&node.config.data_dir);
    metrics::gauge!("pizza_orders_raft_log_size_bytes").set(log_bytes as f64);
    let snapshot = node.config.data_dir.join("snapshots").join("current.snapshot");
    metrics::gauge!("pizza_orders_snapshot_size_bytes").set(std::fs::metadata(snapshot).map_or(0, |m| m.len()) as f64);
    handle.run_upkeep();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response()
}
