//! `GET /v1/stores/{id}/slots/stream?from=&to=`: live availability as Server-Sent Events, from
//! any node.
//!
//! The first event (`slots`) is the whole list for the range; after it, each `slot` event is
//! one slot whose remaining places (or capacity) changed, as this node applies the log. The
//! signal is the state's load feed: each applied batch says which (store, slot) loads it
//! changed, so a stream reads its range again only when a slot of it changed (a catalog or a
//! snapshot counts as every slot); thousands of idle streams cost a filter per batch. The
//! event id is the applied index it reflects; a client that reconnects (with `Last-Event-ID`)
//! gets a fresh `slots` snapshot first, so it never misses a change. Comments keep idle
//! connections open. Subscribers per node are bounded (`http.max_streams`): beyond, 503 with
//! `Retry-After`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, StreamExt};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, OwnedSemaphorePermit};

use super::extract::{IdSegment, QueryParams};
use super::stores::{availability, slot_range, SlotAvailability};
use super::{ApiError, ApiResult};
use crate::domain::Timestamp;
use crate::node::Node;
use crate::state::changes::LoadChanges;

/// Changes are gathered for this long after the first one: a burst of bookings is one round of
/// reads per subscriber, not one per booking.
const COALESCE: Duration = Duration::from_millis(20);
const HEARTBEAT: Duration = Duration::from_secs(15);

struct Watch {
    node: Arc<Node>,
    store: String,
    from: Timestamp,
    to: Timestamp,
    changes: broadcast::Receiver<Arc<LoadChanges>>,
    /// What was last sent: slot start (ms) → (remaining, capacity). Compact, as thousands of
    /// idle streams each keep one.
    seen: Option<BTreeMap<i64, (u32, u32)>>,
    /// An error was sent: the stream ends.
    done: bool,
    _permit: OwnedSemaphorePermit,
}

#[utoipa::path(get, path = "/v1/stores/{id}/slots/stream", tag = "stores",
    params(("id" = String, Path, description = "Store id"), ("from" = Option<String>, Query, description = "RFC 3339, default now"), ("to" = Option<String>, Query, description = "RFC 3339, default from + 24 h, at most 31 days after from")),
    responses((status = 200, description = "text/event-stream: a `slots` event with the whole range, then a `slot` event per change", content_type = "text/event-stream"),
        (status = 404, description = "No such store", body = super::openapi::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Too many live subscribers on this node; retry after the given seconds", body = super::openapi::Problem, content_type = "application/problem+json")))]
pub async fn slot_stream(
    State(node): State<Arc<Node>>,
    IdSegment(id): IdSegment,
    query: QueryParams,
) -> ApiResult<Response> {
    let (from, to) = slot_range(&query, Timestamp::now())?;
    // Refuse a bad store now, as a problem, rather than as an empty stream.
    availability(&node, Some(&id), from, to, Timestamp::now())?;
    let permit = node.streams.clone().try_acquire_owned().map_err(|_| ApiError::TooManyStreams)?;
    let changes = node.store.load_feed().subscribe();
    let watch = Watch { node, store: id, from, to, changes, seen: None, done: false, _permit: permit };
    let events = stream::unfold(watch, next_events).flat_map(stream::iter);
    let sse = Sse::new(events).keep_alive(KeepAlive::new().interval(HEARTBEAT).text("keep-alive"));
    let mut response = sse.into_response();
    response.headers_mut().insert("x-accel-buffering", axum::http::HeaderValue::from_static("no"));
    Ok(response)
}

/// The events of the next change (the whole list the first time); `None` ends the stream.
async fn next_events(mut w: Watch) -> Option<(Vec<Result<Event, Infallible>>, Watch)> {
    if w.done {
        return None;
    }
    loop {
        if w.seen.is_some() {
            // Wait for a batch that changed a slot of ours, then let a burst settle.
            loop {
                match w.changes.recv().await {
                    Ok(changes) if changes.touches(&w.store, w.from.millis(), w.to.millis()) => break,
                    Ok(_) => continue,
                    // Fell behind: read everything again rather than guess.
                    Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => return None,
                }
            }
            tokio::time::sleep(COALESCE).await;
            while w.changes.try_recv().is_ok() {}
        }
        let applied = w.node.metrics().last_applied.map_or(0, |l| l.index);
        let list = match availability(&w.node, Some(&w.store), w.from, w.to, Timestamp::now()) {
            Ok(list) => list,
            // The store left the catalog, or storage failed: say so and end the stream.
            Err(e) => {
                let gone = Event::default().event("error").data(e.to_string());
                w.done = true;
                return Some((vec![Ok(gone)], w));
            }
        };
        let key = |s: &SlotAvailability| Timestamp::parse_rfc3339(&s.start).map_or(0, |t| t.millis());
        let now: BTreeMap<i64, (u32, u32)> = list.slots.iter().map(|s| (key(s), (s.remaining, s.capacity))).collect();
        let id = applied.to_string();
        let events: Vec<Result<Event, Infallible>> = match &w.seen {
            None => vec![Ok(json_event("slots", &id, &list))],
            Some(seen) => list
                .slots
                .iter()
                .filter(|slot| seen.get(&key(slot)) != Some(&(slot.remaining, slot.capacity)))
                .map(|slot| Ok(json_event("slot", &id, slot)))
                .collect(),
        };
        w.seen = Some(now);
        if !events.is_empty() {
            return Some((events, w));
        }
    }
}

fn json_event<T: serde::Serialize>(kind: &str, id: &str, data: &T) -> Event {
    Event::default()
        .event(kind)
        .id(id)
        .json_data(data)
        .unwrap_or_else(|_| Event::default().event("error").data("cannot encode"))
}
