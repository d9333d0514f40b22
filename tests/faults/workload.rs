//! Clients: each picks a user, a node and an operation at random and records what happened.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::{slot, token};
use crate::history::{History, Kind, Op, Outcome, Seen};

pub const USERS: usize = 12;
pub const SLOTS: i64 = 4;
pub const CAPACITY: u64 = 3;
const SIZES: [&str; 3] = ["small", "medium", "large"];

pub fn user(i: usize) -> String {
    format!("fault-user-{i}")
}

pub fn slots() -> Vec<String> {
    (0..SLOTS).map(|i| slot(3, 20 + i)).collect()
}

/// What the clients last heard of each user's active order: (id, version).
type Known = Arc<Mutex<HashMap<String, (String, u64)>>>;

pub struct Workload {
    pub history: History,
    pub urls: Vec<String>,
    known: Known,
    counter: AtomicUsize,
    slots: Vec<String>,
    http: reqwest::Client,
}

pub fn seen(order: &Value) -> Option<(String, Seen)> {
    Some((
        order["id"].as_str()?.to_owned(),
        Seen {
            version: order["version"].as_u64()?,
            address: order["address"].as_str()?.to_owned(),
            size: order["size"].as_str()?.to_owned(),
            slot: order["delivery_slot"]["start"].as_str()?.to_owned(),
            status: order["status"].as_str()?.to_owned(),
        },
    ))
}

impl Workload {
    pub fn new(history: History, urls: Vec<String>) -> Arc<Self> {
        let http = crate::common::client_builder()
            .connect_timeout(Duration::from_millis(300))
            .timeout(Duration::from_secs(2))
            .build()
            .expect("client");
        Arc::new(Self { history, urls, known: Arc::default(), counter: AtomicUsize::new(0), slots: slots(), http })
    }

    /// One client: operations until `deadline`, or at most `max_ops`.
    pub async fn run(self: Arc<Self>, client: usize, seed: u64, deadline: Instant, max_ops: usize) {
        let mut rng = fastrand::Rng::with_seed(seed ^ (client as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        for _ in 0..max_ops {
            if Instant::now() >= deadline {
                return;
            }
            let user = user(rng.usize(..USERS));
            let node = rng.usize(..self.urls.len());
            let known = self.known.lock().unwrap().get(&user).cloned();
            let n = self.counter.fetch_add(1, Ordering::Relaxed);
            let size = SIZES[rng.usize(..SIZES.len())].to_owned();
            let slot = self.slots[rng.usize(..self.slots.len())].clone();
            let kind = match (rng.u8(..100), known) {
                (0..=29, _) => Kind::Create { address: format!("{n} Create Street"), size, slot },
                (30..=49, Some((id, from))) => {
                    Kind::Update { id, from, address: format!("{n} Update Road"), size, slot }
                }
                (50..=59, Some((id, from))) => Kind::Cancel { id, from },
                _ => Kind::Read,
            };
            self.perform(client, node, user, kind).await;
        }
    }

    async fn perform(&self, client: usize, node: usize, user: String, kind: Kind) {
        let invoked = self.history.now();
        let base = &self.urls[node];
        let bearer = token(&user);
        let request = match &kind {
            Kind::Create { address, size, slot } => self
                .http
                .post(format!("{base}/v1/orders"))
                .json(&json!({ "address": address, "size": size, "delivery_slot": slot })),
            Kind::Update { id, from, address, size, slot } => self
                .http
                .put(format!("{base}/v1/orders/{id}"))
                .header("if-match", format!("\"{from}\""))
                .json(&json!({ "address": address, "size": size, "delivery_slot": slot })),
            Kind::Cancel { id, from } => {
                self.http.delete(format!("{base}/v1/orders/{id}")).header("if-match", format!("\"{from}\""))
            }
            Kind::Read => self.http.get(format!("{base}/v1/orders?limit=100")),
        };
        let outcome = match request.bearer_auth(bearer).send().await {
            Err(e) if e.is_connect() => Outcome::Failed("connect".into()),
            Err(e) => Outcome::Unknown(if e.is_timeout() { "timeout".into() } else { "connection lost".into() }),
            Ok(response) => self.outcome(&kind, response).await,
        };
        self.learn(&user, &outcome);
        let completed = self.history.now();
        self.history.record(Op { index: 0, client, node, user, kind, invoked, completed, outcome });
    }

    async fn outcome(&self, kind: &Kind, response: reqwest::Response) -> Outcome {
        let status = response.status();
        let body: Value = match response.json().await {
            Ok(body) => body,
            Err(_) => return Outcome::Unknown(format!("HTTP {status} with an unreadable body")),
        };
        let problem = || body["type"].as_str().unwrap_or("?").trim_start_matches("/problems/").to_owned();
        match (status, kind) {
            (StatusCode::OK, Kind::Read) => {
                let orders: Option<BTreeMap<String, Seen>> =
                    body["orders"].as_array().map(|list| list.iter().filter_map(seen).collect());
                match orders {
                    Some(orders) => Outcome::Listed { orders, complete: body["next"].is_null() },
                    None => Outcome::Unknown(format!("unexpected list body {body}")),
                }
            }
            (StatusCode::OK | StatusCode::CREATED, _) => match seen(&body) {
                Some((id, seen)) => Outcome::Written { id, seen },
                None => Outcome::Unknown(format!("unexpected order body {body}")),
            },
            // 503: no leader or outcome unknown; a write may still be committed later.
            (StatusCode::SERVICE_UNAVAILABLE, _) => Outcome::Unknown(problem()),
            // A server error is a bug; the checker reports it.
            (s, _) if s.is_server_error() => Outcome::Unknown(format!("server-error {s} {}", problem())),
            _ => Outcome::Failed(problem()),
        }
    }

    fn learn(&self, user: &str, outcome: &Outcome) {
        let mut known = self.known.lock().unwrap();
        match outcome {
            Outcome::Written { id, seen } if seen.status != "cancelled" => {
                known.insert(user.to_owned(), (id.clone(), seen.version));
            }
            Outcome::Written { .. } => {
                known.remove(user);
            }
            Outcome::Listed { orders, .. } => match orders.iter().find(|(_, s)| s.status != "cancelled") {
                Some((id, s)) => {
                    known.insert(user.to_owned(), (id.clone(), s.version));
                }
                None => {
                    known.remove(user);
                }
            },
            _ => {}
        }
    }

    /// Every user's orders as node `node` holds them (stale read: after convergence).
    pub async fn final_state(&self, node: usize) -> BTreeMap<String, (String, Seen)> {
        let mut all = BTreeMap::new();
        for u in 0..USERS {
            let user = user(u);
            let mut before: Option<String> = None;
            loop {
                let mut url = format!("{}/v1/orders?limit=100&consistency=stale", self.urls[node]);
                if let Some(b) = &before {
                    url.push_str(&format!("&before={b}"));
                }
                let body: Value = self
                    .http
                    .get(url)
                    .bearer_auth(token(&user))
                    .send()
                    .await
                    .expect("final read")
                    .json()
                    .await
                    .expect("final read body");
                for (id, s) in body["orders"].as_array().expect("orders").iter().filter_map(seen) {
                    all.insert(id, (user.clone(), s));
                }
                match body["next"].as_str() {
                    Some(next) => before = Some(next.to_owned()),
                    None => break,
                }
            }
        }
        all
    }
}
