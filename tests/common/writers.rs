//! Writers that place orders (each for a new user) through a set of nodes until stopped, for
//! tests that change something under write load. Bounded: 3 000 orders per writer, 180 s.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use super::{client, order_body, slot, token};

/// An order the service acknowledged (201).
#[derive(Clone, Debug)]
pub struct Acked {
    pub user: String,
    pub id: String,
    pub at: Instant,
}

pub struct Writers {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<Acked>>>,
    refused: Arc<Mutex<Vec<Value>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Writers {
    /// `n` writers; each request goes to the next of `bases` in turn (a node that is down
    /// costs an error and a 50 ms pause).
    pub fn start(n: usize, bases: Vec<String>, prefix: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
        let refused: Arc<Mutex<Vec<Value>>> = Arc::default();
        let started = Instant::now();
        let tasks = (0..n)
            .map(|w| {
                let (stop, acked, refused, bases) = (stop.clone(), acked.clone(), refused.clone(), bases.clone());
                let prefix = prefix.to_owned();
                tokio::spawn(async move {
                    for i in 0..3000 {
                        if stop.load(Ordering::Relaxed) || started.elapsed() > Duration::from_secs(180) {
                            break;
                        }
                        let user = format!("{prefix}-{w}-{i}");
                        let base = &bases[(w + i) % bases.len()];
                        let sent = client()
                            .post(format!("{base}/v1/orders"))
                            .bearer_auth(token(&user))
                            .json(&order_body(&slot(3, (i % 40) as i64)))
                            .send()
                            .await;
                        match sent {
                            Ok(r) if r.status() == StatusCode::CREATED => {
                                let order: Value = r.json().await.unwrap_or_default();
                                let id = order["id"].as_str().unwrap_or_default().to_owned();
                                acked.lock().unwrap().push(Acked { user, id, at: Instant::now() });
                            }
                            Ok(r) => {
                                let problem: Value = r.json().await.unwrap_or_default();
                                refused.lock().unwrap().push(problem);
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                        }
                    }
                })
            })
            .collect();
        Self { stop, acked, refused, tasks }
    }

    pub fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Problems answered so far (non-201 answers that had a body).
    pub fn refused(&self) -> Vec<Value> {
        self.refused.lock().unwrap().clone()
    }

    /// Wait up to `limit` until `n` more orders than now are acknowledged.
    pub async fn progress(&self, n: usize, limit: Duration, what: &str) {
        let target = self.acked() + n;
        super::cluster::eventually(limit, what, || async { (self.acked() >= target).then_some(()) }).await;
    }

    pub async fn stop(self) -> Vec<Acked> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        let acked = self.acked.lock().unwrap().clone();
        acked
    }
}

/// The longest time between two acknowledgements: how long writes stood still.
pub fn longest_gap(acked: &[Acked]) -> Duration {
    let mut times: Vec<Instant> = acked.iter().map(|a| a.at).collect();
    times.sort();
    times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default()
}

/// The longest time writes stood still within `[from, to]` (open ends: the first and last
/// acknowledgement): the gaps between acknowledgements in it, and from `from` to the first.
pub fn longest_gap_between(acked: &[Acked], from: Option<Instant>, to: Option<Instant>) -> Duration {
    let mut times: Vec<Instant> = acked
        .iter()
        .map(|a| a.at)
        .filter(|at| from.is_none_or(|f| *at >= f) && to.is_none_or(|t| *at <= t))
        .chain(from)
        .collect();
    times.sort();
    times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default()
}

/// After convergence: every acknowledged order reads back on every running node (this node's
/// own state, no leader needed) and every node's `/admin/check` is clean.
pub async fn assert_every_order_everywhere(cluster: &super::cluster::TestCluster, acked: &[Acked]) {
    for i in cluster.running() {
        for order in acked {
            let r = client()
                .get(cluster.url(i, &format!("/v1/orders/{}?consistency=stale", order.id)))
                .bearer_auth(token(&order.user))
                .send()
                .await
                .expect("read an acknowledged order");
            assert_eq!(r.status(), StatusCode::OK, "order {} of {} on node {}", order.id, order.user, i + 1);
        }
        let report = cluster.admin_get(i, "/admin/check").await.expect("the check");
        assert_eq!(report["ok"], true, "node {}: {report}", i + 1);
    }
}
