//! Per user: the orders register, checked with todc-utils' `WGLChecker`.
//!
//! The sequential model, written once: a user has orders; at most one is active (not
//! cancelled); a create succeeds only without an active order and makes version 1; a change or
//! cancel succeeds only on the active order at the version its `If-Match` names, and makes the
//! next version; a read lists the orders as they are. A refusal is valid when the model says why
//! (`order-exists`, `precondition-failed`, `order-cancelled`, `order-not-found`), and a
//! `slot-full` refusal when nothing else refuses it: whether the slot was full is the slots'
//! check (`slots.rs`), not the user's.
//!
//! Users are independent objects, and linearizability is local: the history is linearizable
//! if and only if every user's part of it is, so each user is checked on their own.

use std::collections::BTreeMap;

use todc_utils::linearizability::history::{Action, History as Calls};
use todc_utils::linearizability::WGLChecker;
use todc_utils::specifications::Specification;

use crate::history::{History, Kind, Outcome, Seen};

/// One order of the model. `id` is `None` while the order was made by a create that never
/// answered and no answer has named it yet; the first answer naming an order the model does
/// not know binds it (there is at most one such order: it is the active one).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Order {
    id: Option<String>,
    seen: Seen,
}

/// The model of one user's orders.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Orders {
    orders: Vec<Order>,
}

/// An operation of the history with its answer (`None`: it got none), as the model sees it.
#[derive(Clone, Debug)]
pub struct UserOp {
    pub kind: Kind,
    pub ret: Option<UserRet>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserRet {
    Written { id: String, seen: Seen },
    Listed { orders: BTreeMap<String, Seen>, complete: bool },
    Refused(String),
}

impl Orders {
    fn active(&self) -> Option<usize> {
        self.orders.iter().position(|o| o.seen.status != "cancelled")
    }

    /// The order named `id`, binding it to the order made without an answer if the model
    /// knows no order by that name.
    fn named(&mut self, id: &str) -> Option<usize> {
        if let Some(i) = self.orders.iter().position(|o| o.id.as_deref() == Some(id)) {
            return Some(i);
        }
        let i = self.orders.iter().position(|o| o.id.is_none())?;
        self.orders[i].id = Some(id.to_owned());
        Some(i)
    }

    fn create(&mut self, id: Option<String>, address: &str, size: &str, slot: &str) {
        let seen = Seen {
            version: 1,
            address: address.to_owned(),
            size: size.to_owned(),
            slot: slot.to_owned(),
            status: "placed".to_owned(),
        };
        self.orders.push(Order { id, seen });
    }

    /// The order as the write `kind` leaves it, if the write succeeds on order `i`.
    fn written(&self, i: usize, kind: &Kind) -> Option<Seen> {
        let before = &self.orders[i].seen;
        match kind {
            Kind::Update { from, address, size, slot, .. }
                if before.status != "cancelled" && before.version == *from =>
            {
                Some(Seen {
                    version: from + 1,
                    address: address.clone(),
                    size: size.clone(),
                    slot: slot.clone(),
                    status: before.status.clone(),
                })
            }
            Kind::Cancel { from, .. } if before.status != "cancelled" && before.version == *from => {
                Some(Seen { version: from + 1, status: "cancelled".to_owned(), ..before.clone() })
            }
            _ => None,
        }
    }

    /// Whether refusal `problem` of a change or cancel of order `id` is one the model allows.
    fn refusal_allowed(&mut self, id: &str, kind: &Kind, problem: &str) -> bool {
        let Some(i) = self.named(id) else {
            return problem == "order-not-found";
        };
        let o = &self.orders[i].seen;
        let from = match kind {
            Kind::Update { from, .. } | Kind::Cancel { from, .. } => *from,
            _ => return false,
        };
        match problem {
            "order-not-found" => false,
            "precondition-failed" => o.version != from,
            "order-cancelled" => o.status == "cancelled",
            // Full is the slots' to judge; the user's model only knows that a change within its
            // own slot keeps its place and is never refused for room.
            "slot-full" => o.status != "cancelled" && o.version == from && kind.slot().is_some_and(|s| s != o.slot),
            // Refusals that do not depend on the user's orders (bad input, the catalog changed,
            // a dropped connection): nothing changed, anywhere.
            _ => true,
        }
    }
}

impl Orders {
    /// An operation without an answer, placed where it took effect (placed after everything
    /// else, it took none): whatever the model makes of it.
    fn unanswered(&mut self, kind: &Kind) {
        match kind {
            Kind::Create { address, size, slot } => {
                if self.active().is_none() {
                    self.create(None, address, size, slot);
                }
            }
            Kind::Update { id, .. } | Kind::Cancel { id, .. } => {
                if let Some(i) = self.named(id) {
                    if let Some(seen) = self.written(i, kind) {
                        self.orders[i].seen = seen;
                    }
                }
            }
            Kind::Read => {}
        }
    }

    /// Whether the model allows answer `ret` to `kind` now; if so, `self` is the state after it.
    fn answered(&mut self, kind: &Kind, ret: &UserRet) -> bool {
        match (kind, ret) {
            (Kind::Create { address, size, slot }, UserRet::Written { id, seen }) => {
                if self.active().is_some() || self.orders.iter().any(|o| o.id.as_deref() == Some(id)) {
                    return false;
                }
                self.create(Some(id.clone()), address, size, slot);
                self.orders.last().is_some_and(|o| o.seen == *seen)
            }
            (Kind::Create { .. }, UserRet::Refused(problem)) => match problem.as_str() {
                "order-exists" => self.active().is_some(),
                "slot-full" => self.active().is_none(),
                _ => true,
            },
            (Kind::Update { id, .. } | Kind::Cancel { id, .. }, UserRet::Written { id: written, seen }) => {
                if id != written {
                    return false;
                }
                let Some(i) = self.named(id) else { return false };
                match self.written(i, kind) {
                    Some(after) if after == *seen => {
                        self.orders[i].seen = after;
                        true
                    }
                    _ => false,
                }
            }
            (Kind::Update { id, .. } | Kind::Cancel { id, .. }, UserRet::Refused(problem)) => {
                self.refusal_allowed(id, kind, problem)
            }
            (Kind::Read, UserRet::Listed { orders, complete }) => {
                for (id, seen) in orders {
                    match self.named(id) {
                        Some(i) if self.orders[i].seen == *seen => {}
                        _ => return false,
                    }
                }
                !complete || orders.len() == self.orders.len()
            }
            (Kind::Read, UserRet::Refused(_)) => true,
            _ => false,
        }
    }
}

/// The model as todc-utils reads it: one user's orders, from none.
pub struct UserSpec;

impl Specification for UserSpec {
    type State = Orders;
    type Operation = UserOp;

    fn init() -> Orders {
        Orders::default()
    }

    fn apply(op: &UserOp, state: &Orders) -> (bool, Orders) {
        let mut next = state.clone();
        let valid = match &op.ret {
            Some(ret) => next.answered(&op.kind, ret),
            None => {
                next.unanswered(&op.kind);
                true
            }
        };
        (valid, next)
    }
}

/// What one user's check found.
pub struct UserVerdict {
    pub user: String,
    pub operations: usize,
    /// `None`: linearizable. Otherwise the operation (index into the history's operations) at
    /// whose answer the user's history stops being linearizable.
    pub first_bad: Option<usize>,
}

fn ret_of(outcome: &Outcome) -> Option<UserRet> {
    Some(match outcome {
        Outcome::Written { id, seen } => UserRet::Written { id: id.clone(), seen: seen.clone() },
        Outcome::Listed { orders, complete } => UserRet::Listed { orders: orders.clone(), complete: *complete },
        Outcome::Failed(problem) => UserRet::Refused(problem.clone()),
        Outcome::Unknown(_) => return None,
    })
}

/// Whether `events` (op, invocation?) up to `limit` are linearizable. Operations without an
/// answer are answered after everything else: the search may place them anywhere after their
/// invocation, the end included (where they change nothing anyone saw).
fn linearizable(history: &History, events: &[(usize, bool)], limit: usize) -> bool {
    let mut processes: BTreeMap<u64, usize> = BTreeMap::new();
    let mut actions = Vec::with_capacity(limit + 8);
    let mut open: BTreeMap<usize, usize> = BTreeMap::new();
    for &(i, invocation) in &events[..limit] {
        let op = &history.ops[i];
        let next = processes.len();
        let process = *processes.entry(op.process).or_insert(next);
        let ret = if invocation { None } else { ret_of(&op.outcome) };
        let call = UserOp { kind: op.kind.clone(), ret: ret.clone() };
        if invocation {
            actions.push((process, Action::Call(call)));
            open.insert(i, process);
        } else {
            actions.push((process, Action::Response(call)));
            open.remove(&i);
        }
    }
    for (i, process) in open {
        actions.push((process, Action::Response(UserOp { kind: history.ops[i].kind.clone(), ret: None })));
    }
    if actions.is_empty() {
        return true;
    }
    WGLChecker::<UserSpec>::is_linearizable(Calls::from_actions(actions))
}

/// Check every user's part of `history`.
pub fn check(history: &History) -> Vec<UserVerdict> {
    let mut by_user: BTreeMap<&str, Vec<(usize, bool)>> = BTreeMap::new();
    for &(i, invocation) in &history.events {
        let op = &history.ops[i];
        // A read without an answer tells nothing; left in, it would only be one more open
        // operation for the search to place.
        if op.kind == Kind::Read && op.completed.is_none() {
            continue;
        }
        by_user.entry(op.user.as_str()).or_default().push((i, invocation));
    }
    // Users on as many threads as the machine has cores.
    let users: Vec<(&str, Vec<(usize, bool)>)> = by_user.into_iter().collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(users.len().max(1));
    let mut verdicts: Vec<(usize, UserVerdict)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((user, events)) = users.get(n) else { break };
                        done.push((n, check_user(history, user, events)));
                    }
                    done
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("a checker thread finishes")).collect()
    });
    verdicts.sort_by_key(|(n, _)| *n);
    verdicts.into_iter().map(|(_, v)| v).collect()
}

fn check_user(history: &History, user: &str, events: &[(usize, bool)]) -> UserVerdict {
    let operations = events.iter().filter(|e| e.1).count();
    let failing = crate::first_failing_prefix(events.len(), |limit| linearizable(history, events, limit));
    UserVerdict { user: user.to_owned(), operations, first_bad: failing.map(|n| events[n - 1].0) }
}
