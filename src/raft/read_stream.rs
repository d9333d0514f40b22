//! A follower's read-index asks to its leader on one upgraded connection.
//!
//! A linearizable read on a follower needs the leader's read index (`node::read_index`: one
//! ask per round, shared by every read waiting when the round began). As an HTTP call
//! (`/raft/read-index`) each ask cost about 60 µs of CPU on either side (reqwest's request,
//! pool and response on the follower; hyper, the router and the peer layers on the leader):
//! a sixth of a follower's time at 64 connections of linearizable reads (benchmarks.md,
//! "Round three, eleventh stop"). Here the follower opens `POST /raft/read-index-stream` with
//! `Upgrade: pizza-read-index/1` (same port, mutual TLS and cluster secret as every `/raft/*`
//! call) and then sends one [`Ask`] frame per round; the leader answers each in order with its
//! read index or why it has none (`Answer`, the same value the HTTP call returns). A leader
//! without the route (an older release, mid-upgrade) is asked by HTTP call instead, and its
//! stream tried again after [`ASK_STREAM_AGAIN`].

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::network::{PeerClient, ASK_STREAM_AGAIN};
use super::stream::{Conn, Io, Opened};

/// The `Upgrade` token of this protocol.
pub const PROTOCOL: &str = "pizza-read-index/1";
/// The route a follower opens its stream on.
pub const PATH: &str = "/raft/read-index-stream";
/// The route of the one-call-per-ask form, which older releases serve.
pub const CALL_PATH: &str = "/raft/read-index";

/// A frame from the follower.
#[derive(Debug, Serialize, Deserialize)]
pub enum Ask {
    /// The read index a linearizable read starting now must see applied.
    ReadIndex,
}

/// The leader's answer: its read index, or why it has none (not the leader, stopping).
pub type Answer = Result<u64, String>;

/// Leader side: answer each ask on `io` with `read_index`, in order, until the follower closes
/// the connection.
pub async fn serve<F, Fut>(io: Io, read_index: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Answer>,
{
    let mut conn = Conn::new(io);
    loop {
        let reason = match conn.receive::<Ask>().await {
            Ok(Some(Ask::ReadIndex)) => match conn.send(&read_index().await).await {
                Ok(()) => {
                    // The next ask comes right after its round's reads are answered.
                    super::busy_poll::touch();
                    continue;
                }
                Err(reason) => reason,
            },
            Ok(None) => return,
            Err(reason) => reason,
        };
        tracing::debug!(%reason, "a follower's read-index stream ended");
        return;
    }
}

/// Follower side: asks to whichever node leads, on a stream to it when it has one.
pub struct Asker {
    client: PeerClient,
    /// The stream and the address it goes to.
    conn: Option<(String, Conn)>,
    /// A leader that answered it has no stream, and until when it is asked by HTTP call.
    not_offered: Option<(String, Instant)>,
}

impl Asker {
    pub fn new(client: PeerClient) -> Self {
        Self { client, conn: None, not_offered: None }
    }

    /// The answer of the leader at `addr` (`host:port`), within `timeout`. `Err`: no answer
    /// (unreachable, closed, late); the stream, if any, is dropped and the next ask opens one.
    pub async fn ask(&mut self, addr: &str, timeout: Duration) -> Result<Answer, String> {
        let deadline = Instant::now() + timeout;
        if let Some(conn) = self.stream_to(addr, timeout).await? {
            let asked = tokio::time::timeout_at(deadline, async {
                conn.send(&Ask::ReadIndex).await?;
                conn.receive::<Answer>().await
            })
            .await;
            let failure = match asked {
                Ok(Ok(Some(answer))) => {
                    metrics::counter!("pizza_orders_read_index_asks_total", "transport" => "stream").increment(1);
                    return Ok(answer);
                }
                Ok(Ok(None)) => "the leader closed the read-index stream".to_owned(),
                Ok(Err(reason)) => reason,
                Err(_) => format!("no read index from {addr} within {} ms", timeout.as_millis()),
            };
            self.conn = None;
            return Err(failure);
        }
        metrics::counter!("pizza_orders_read_index_asks_total", "transport" => "call").increment(1);
        let timeout = deadline.saturating_duration_since(Instant::now());
        self.client.call::<(), Answer>(addr, CALL_PATH, &(), timeout).await.map_err(|e| e.to_string())
    }

    /// The stream to `addr`: the one kept, or a new one. `None`: that leader has no stream
    /// (recently or just now).
    async fn stream_to(&mut self, addr: &str, timeout: Duration) -> Result<Option<&mut Conn>, String> {
        if self.conn.as_ref().is_some_and(|(to, _)| to != addr) {
            self.conn = None;
        }
        if self.conn.is_none() {
            if self.not_offered.as_ref().is_some_and(|(to, until)| to == addr && Instant::now() < *until) {
                return Ok(None);
            }
            match self.client.dialer().open_on(addr, PATH, PROTOCOL, timeout).await? {
                Opened::Stream(conn) => {
                    self.not_offered = None;
                    self.conn = Some((addr.to_owned(), *conn));
                }
                Opened::NotOffered => {
                    tracing::info!(leader = %addr, "the leader has no read-index stream (an older release): asking by HTTP call");
                    self.not_offered = Some((addr.to_owned(), Instant::now() + ASK_STREAM_AGAIN));
                    return Ok(None);
                }
            }
        }
        Ok(self.conn.as_mut().map(|(_, conn)| conn))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use axum::extract::Request;
    use axum::http::{header, StatusCode};
    use axum::response::{IntoResponse, Response};
    use axum::routing::post;
    use axum::Router;

    use super::*;
    use crate::codec;

    /// A leader stand-in on 127.0.0.1: the stream route (when `stream`) answering 1, 2, 3, …
    /// in order, and the call route answering 7.
    #[derive(Clone, Default)]
    struct Leader {
        upgrades: Arc<AtomicU64>,
        answered: Arc<AtomicU64>,
        calls: Arc<AtomicU64>,
        /// Requests to a route it does not have (answered 404).
        refused: Arc<AtomicU64>,
        /// The tasks serving streams, to cut them off.
        serving: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    }

    impl Leader {
        async fn start(stream: bool) -> (Self, String) {
            let leader = Leader::default();
            let mut app = Router::new().route(
                CALL_PATH,
                post({
                    let leader = leader.clone();
                    move || async move {
                        leader.calls.fetch_add(1, Ordering::SeqCst);
                        codec::encode(&Ok::<u64, String>(7)).unwrap()
                    }
                }),
            );
            if stream {
                let open = {
                    let leader = leader.clone();
                    move |req: Request| async move { leader.open(req) }
                };
                app = app.route(PATH, post(open));
            }
            let refused = leader.refused.clone();
            let app = app.fallback(move || async move {
                refused.fetch_add(1, Ordering::SeqCst);
                StatusCode::NOT_FOUND
            });
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap().to_string();
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            (leader, addr)
        }

        fn open(&self, mut req: Request) -> Response {
            assert_eq!(req.headers()[header::UPGRADE], PROTOCOL);
            let upgrade = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>().unwrap();
            self.upgrades.fetch_add(1, Ordering::SeqCst);
            let answered = self.answered.clone();
            let task = tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(upgrade.await.unwrap());
                serve(io, move || {
                    let n = answered.fetch_add(1, Ordering::SeqCst) + 1;
                    async move { Ok(n) }
                })
                .await;
            });
            self.serving.lock().unwrap().push(task);
            (StatusCode::SWITCHING_PROTOCOLS, [(header::CONNECTION, "upgrade"), (header::UPGRADE, PROTOCOL)])
                .into_response()
        }

        fn cut_off(&self) {
            for task in self.serving.lock().unwrap().drain(..) {
                task.abort();
            }
        }
    }

    fn asker() -> Asker {
        Asker::new(PeerClient::new("test-secret-test-secret-test-secret", None, None).unwrap())
    }

    const WAIT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn asks_go_in_order_on_one_stream_and_a_broken_one_is_replaced() {
        let (leader, addr) = Leader::start(true).await;
        let mut asker = asker();
        for expected in 1..=5 {
            assert_eq!(asker.ask(&addr, WAIT).await, Ok(Ok(expected)));
        }
        assert_eq!(leader.upgrades.load(Ordering::SeqCst), 1, "one connection for every ask");
        assert_eq!(leader.calls.load(Ordering::SeqCst), 0);

        // The leader's end goes away: that ask fails (no answer is made up), the next one
        // opens a new stream.
        leader.cut_off();
        assert!(asker.ask(&addr, WAIT).await.is_err());
        assert_eq!(asker.ask(&addr, WAIT).await, Ok(Ok(6)));
        assert_eq!(leader.upgrades.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_new_leader_gets_a_stream_of_its_own() {
        let (first, first_addr) = Leader::start(true).await;
        let (second, second_addr) = Leader::start(true).await;
        let mut asker = asker();
        assert_eq!(asker.ask(&first_addr, WAIT).await, Ok(Ok(1)));
        assert_eq!(asker.ask(&second_addr, WAIT).await, Ok(Ok(1)));
        assert_eq!(asker.ask(&second_addr, WAIT).await, Ok(Ok(2)));
        assert_eq!(asker.ask(&first_addr, WAIT).await, Ok(Ok(2)));
        assert_eq!(first.upgrades.load(Ordering::SeqCst), 2, "the stream to the first was dropped for the second");
        assert_eq!(second.upgrades.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_leader_without_the_stream_is_asked_by_call_and_not_dialled_for_each_ask() {
        let (leader, addr) = Leader::start(false).await;
        let mut asker = asker();
        for _ in 0..3 {
            assert_eq!(asker.ask(&addr, WAIT).await, Ok(Ok(7)));
        }
        assert_eq!(leader.calls.load(Ordering::SeqCst), 3);
        assert_eq!(leader.refused.load(Ordering::SeqCst), 1, "the stream was asked for once, not per ask");
        assert!(asker.not_offered.as_ref().is_some_and(|(to, _)| *to == addr), "remembered for ASK_STREAM_AGAIN");
    }

    #[tokio::test]
    async fn an_unreachable_leader_is_an_error_not_an_answer() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        assert!(asker().ask(&addr, Duration::from_millis(500)).await.is_err());
    }
}
