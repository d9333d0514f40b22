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
