//! The history: every operation a client invoked, when, and how it ended.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

/// What an order looked like in one answer. Versions are per order and grow by one per change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Seen {
    pub version: u64,
    pub address: String,
    pub size: String,
    pub slot: String,
    pub status: String,
}

#[derive(Clone, Debug, Serialize)]
pub enum Kind {
    /// Create an order with a unique address (`address` names the operation).
    Create { address: String, size: String, slot: String },
    /// Change order `id` read at version `from`.
    Update { id: String, from: u64, address: String, size: String, slot: String },
    /// Cancel order `id` read at version `from`.
    Cancel { id: String, from: u64 },
    /// List the user's orders.
    Read,
}

#[derive(Clone, Debug, Serialize)]
pub enum Outcome {
    /// A write answered with the order as it now is.
    Written { id: String, seen: Seen },
    /// A read answered; `complete` is false when the list had more pages than were read.
    Listed { orders: BTreeMap<String, Seen>, complete: bool },
    /// A definite refusal: nothing changed (`type` of the problem, or "connect").
    Failed(String),
    /// No answer (timeout, lost connection, 503): it may or may not have happened.
    Unknown(String),
}

#[derive(Clone, Debug, Serialize)]
pub struct Op {
    pub index: usize,
    pub client: usize,
    pub node: usize,
    pub user: String,
    pub kind: Kind,
    /// Microseconds since the start of the run.
    pub invoked: u64,
    pub completed: u64,
    pub outcome: Outcome,
}

/// A fault the nemesis injected, for the report and for printing next to a failing slice.
#[derive(Clone, Debug, Serialize)]
pub struct Fault {
    pub kind: &'static str,
    pub nodes: Vec<usize>,
    pub started: u64,
    pub healed: u64,
}

#[derive(Clone)]
pub struct History {
    start: Instant,
    ops: Arc<Mutex<Vec<Op>>>,
    faults: Arc<Mutex<Vec<Fault>>>,
}

impl History {
    pub fn new() -> Self {
        Self { start: Instant::now(), ops: Arc::default(), faults: Arc::default() }
    }

    pub fn now(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    pub fn record(&self, mut op: Op) {
        let mut ops = self.ops.lock().unwrap();
        op.index = ops.len();
        ops.push(op);
    }

    pub fn fault(&self, fault: Fault) {
        self.faults.lock().unwrap().push(fault);
    }

    pub fn ops(&self) -> Vec<Op> {
        self.ops.lock().unwrap().clone()
    }

    pub fn faults(&self) -> Vec<Fault> {
        self.faults.lock().unwrap().clone()
    }
}

/// The history in the shape an outside checker reads (docs/reliability.md, "History files"):
/// JSON Lines, one header, then Jepsen's events (`invoke`, then `ok`, `fail` or `info` per
/// operation) in real-time order, the final state as one complete read per user after every
/// operation ended, the nemesis' faults, and this suite's own verdict last.
///
/// Processes follow Jepsen's rule: a client whose operation ended without an answer (`info`)
/// continues as a new process (its number plus `clients`), so an operation that may still take
/// effect stays open for good and never blocks the client's later ones.
pub struct HistoryFile<'a> {
    pub seed: u64,
    pub transport: &'static str,
    pub clients: usize,
    pub users: usize,
    pub capacity: u64,
    pub slots: Vec<String>,
    pub ops: &'a [Op],
    pub faults: &'a [Fault],
    /// Every order in the final state: id → (user, order).
    pub finals: &'a BTreeMap<String, (String, Seen)>,
    /// This suite's checker: the anomalies it reported.
    pub problems: &'a [String],
}

impl HistoryFile<'_> {
    pub fn write(&self, path: &std::path::Path) -> std::io::Result<()> {
        use serde_json::{json, Value};
        use std::io::Write;
        let header = json!({
            "format": "pizza-orders-history", "version": 1, "seed": self.seed, "transport": self.transport,
            "clients": self.clients, "users": self.users, "capacity": self.capacity, "slots": self.slots,
        });
        // (time, 0 for an invocation or 1 for a completion, operation index, line)
        let mut events: Vec<(u64, u8, usize, Value)> = Vec::with_capacity(self.ops.len() * 2);
        let mut by_client: BTreeMap<usize, Vec<&Op>> = BTreeMap::new();
        for op in self.ops {
            by_client.entry(op.client).or_default().push(op);
        }
        for (client, mut ops) in by_client {
            ops.sort_by_key(|op| op.invoked);
            let mut process = client;
            for op in ops {
                let (f, value) = match &op.kind {
                    Kind::Create { address, size, slot } => {
                        ("create", json!({ "address": address, "size": size, "slot": slot }))
                    }
                    Kind::Update { id, from, address, size, slot } => {
                        ("update", json!({ "id": id, "from": from, "address": address, "size": size, "slot": slot }))
                    }
                    Kind::Cancel { id, from } => ("cancel", json!({ "id": id, "from": from })),
                    Kind::Read => ("read", Value::Null),
                };
                let line = |kind: &str, time: u64| {
                    json!({ "type": kind, "process": process, "index": op.index, "user": op.user, "node": op.node,
                            "f": f, "time": time })
                };
                let mut invoke = line("invoke", op.invoked);
                invoke["value"] = value;
                events.push((op.invoked, 0, op.index, invoke));
                let done = match &op.outcome {
                    Outcome::Written { id, seen } => {
                        let mut done = line("ok", op.completed);
                        done["value"] = json!({ "id": id, "order": seen });
                        done
                    }
                    Outcome::Listed { orders, complete } => {
                        let mut done = line("ok", op.completed);
                        done["value"] = json!({ "orders": orders, "complete": complete });
                        done
                    }
                    Outcome::Failed(error) => {
                        let mut done = line("fail", op.completed);
                        done["error"] = json!(error);
                        done
                    }
                    Outcome::Unknown(error) => {
                        let mut done = line("info", op.completed);
                        done["error"] = json!(error);
                        done
                    }
                };
                events.push((op.completed, 1, op.index, done));
                if matches!(op.outcome, Outcome::Unknown(_)) {
                    process += self.clients;
                }
            }
        }
        // At the same microsecond an invocation goes first: the two count as concurrent.
        events.sort_by_key(|(time, order, index, _)| (*time, *order, *index));
        let end = events.last().map_or(0, |e| e.0) + 1;
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        writeln!(out, "{header}")?;
        for (_, _, _, line) in &events {
            writeln!(out, "{line}")?;
        }
        // The final state, read after healing: per user, one complete list on a process of its own.
        let mut finals: BTreeMap<String, BTreeMap<&str, &Seen>> =
            (0..self.users).map(|u| (crate::workload::user(u), BTreeMap::new())).collect();
        for (id, (user, seen)) in self.finals {
            finals.entry(user.clone()).or_default().insert(id.as_str(), seen);
        }
        // All invoked at once, then all answered: events stay in real-time order.
        let base = self.ops.len() + 1;
        let mut answers = Vec::with_capacity(finals.len());
        for (n, (user, orders)) in finals.into_iter().enumerate() {
            let common =
                json!({ "process": 1_000_000 + n, "index": base + n, "user": user, "node": null, "f": "read" });
            let mut invoke = common.clone();
            invoke["type"] = json!("invoke");
            invoke["time"] = json!(end);
            invoke["value"] = Value::Null;
            writeln!(out, "{invoke}")?;
            let mut done = common;
            done["type"] = json!("ok");
            done["time"] = json!(end + 1);
            done["value"] = json!({ "orders": orders, "complete": true });
            answers.push(done);
        }
        for done in answers {
            writeln!(out, "{done}")?;
        }
        for fault in self.faults {
            writeln!(out, "{}", json!({ "type": "nemesis", "fault": fault }))?;
        }
        let verdict = json!({ "type": "verdict", "checker": "tests/faults/checker.rs",
                              "anomalies": self.problems.len(), "problems": self.problems });
        writeln!(out, "{verdict}")?;
        out.flush()
    }
}
