//! Per slot: the count of orders against the capacity, checked with todc-utils' `WGLChecker`.
//!
//! The sequential model, written once: a slot holds a set of orders; an order enters it only
//! while fewer than `capacity` are in it; it leaves it when cancelled or moved; a `slot-full`
//! refusal is valid only while the slot holds `capacity` orders.
//!
//! The operations on a slot are derived from the history: every order's versions that some
//! answer showed, each with the write that made it (a write's answer names it; otherwise the
//! unique address a create or change carried, or the cancel whose `If-Match` names the version
//! before). A write without an answer takes effect somewhere between its invocation and the
//! first answer that showed its result. Where the history cannot say which slot an order was
//! in (versions nobody saw), the derivation gives the tester room rather than a guess: the
//! order may leave its last seen slot at any time in the gap, and a refusal for want of room is
//! not held against a slot while an unanswered write may have held a place in it unseen. So every history the service could have produced
//! passes, and a slot that held more than its capacity in every order the history allows fails.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use todc_utils::linearizability::history::{Action, History as Calls};
use todc_utils::linearizability::WGLChecker;
use todc_utils::specifications::Specification;

use crate::history::{History, Kind, Outcome};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum What {
    Enter,
    Leave,
    Full,
}

#[derive(Clone, Debug)]
pub struct SlotOp {
    /// The history's operation this comes from, when one is known (for the report).
    pub op: Option<usize>,
    /// The order (an index of this check's own).
    pub order: u32,
    pub what: What,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Slot {
    capacity: u64,
    orders: BTreeSet<u32>,
}

/// The model as todc-utils reads it: one slot, empty at first, of `CAPACITY` places.
struct SlotSpec;

thread_local! {
    static CAPACITY: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

impl Specification for SlotSpec {
    type State = Slot;
    type Operation = SlotOp;

    fn init() -> Slot {
        Slot { capacity: CAPACITY.with(|c| c.get()), orders: BTreeSet::new() }
    }

    fn apply(op: &SlotOp, slot: &Slot) -> (bool, Slot) {
        let mut next = slot.clone();
        let full = next.orders.len() as u64 >= next.capacity;
        let valid = match op.what {
            What::Enter => !full && next.orders.insert(op.order),
            What::Leave => next.orders.remove(&op.order),
            What::Full => full,
        };
        (valid, next)
    }
}

/// A derived operation on one slot, which happened somewhere in `start..=end`.
#[derive(Clone, Debug)]
struct Derived {
    op: SlotOp,
    start: u64,
    end: u64,
}

pub struct SlotVerdict {
    pub slot: String,
    pub operations: usize,
    /// `None`: the slot never held more than its capacity, and every `slot-full` refusal came
    /// while it was full. Otherwise the history's operation at which that stops being so.
    pub first_bad: Option<Option<usize>>,
}

/// When the version `version` of an order was first shown (the earliest completion of an
/// answer showing it), what it was, and the write that made it, if an answer named it.
struct Sighting {
    first_seen: u64,
    slot: String,
    cancelled: bool,
    address: String,
    writer: Option<(usize, u64, u64)>,
}

/// An order shown by an answer: (id, as shown, the write that made it if the answer was the write's).
type Shown<'a> = (&'a str, &'a crate::history::Seen, Option<(usize, u64, u64)>);

fn derive(history: &History) -> BTreeMap<String, Vec<Derived>> {
    let ops = &history.ops;
    let mut sightings: BTreeMap<&str, BTreeMap<u64, Sighting>> = BTreeMap::new();
    let mut user_of: HashMap<&str, &str> = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        let Some(done) = op.completed else { continue };
        let shown: Vec<Shown> = match &op.outcome {
            Outcome::Written { id, seen } => vec![(id.as_str(), seen, Some((i, op.invoked, done)))],
            Outcome::Listed { orders, .. } => orders.iter().map(|(id, seen)| (id.as_str(), seen, None)).collect(),
            _ => Vec::new(),
        };
        for (id, seen, writer) in shown {
            user_of.insert(id, op.user.as_str());
            let entry = sightings.entry(id).or_default().entry(seen.version).or_insert_with(|| Sighting {
                first_seen: done,
                slot: seen.slot.clone(),
                cancelled: seen.status == "cancelled",
                address: seen.address.clone(),
                writer: None,
            });
            entry.first_seen = entry.first_seen.min(done);
            if writer.is_some() {
                entry.writer = writer;
            }
        }
    }
    // Writes without an answer, found by what they carried.
    let mut by_address: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
    let mut cancels: HashMap<(&str, u64), Vec<usize>> = HashMap::new();
    let mut changes_of: HashMap<(&str, u64), Vec<usize>> = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        if matches!(op.outcome, Outcome::Failed(_)) {
            continue;
        }
        match &op.kind {
            Kind::Create { address, .. } => by_address.entry((op.user.as_str(), address)).or_default().push(i),
            Kind::Update { id, from, address, .. } => {
                by_address.entry((op.user.as_str(), address)).or_default().push(i);
                changes_of.entry((id, *from)).or_default().push(i);
            }
            Kind::Cancel { id, from } => {
                cancels.entry((id, *from)).or_default().push(i);
                changes_of.entry((id, *from)).or_default().push(i);
            }
            Kind::Read => {}
        }
    }
    let earliest = |candidates: Option<&Vec<usize>>| candidates.and_then(|c| c.iter().map(|&i| ops[i].invoked).min());
    // The first unanswered create of each user: an order first seen past version 1 was made no
    // earlier.
    let mut first_blind_create: HashMap<&str, u64> = HashMap::new();
    for op in ops {
        if matches!(op.kind, Kind::Create { .. }) && op.completed.is_none() {
            let t = first_blind_create.entry(op.user.as_str()).or_insert(op.invoked);
            *t = (*t).min(op.invoked);
        }
    }

    let mut derived: BTreeMap<String, Vec<Derived>> = BTreeMap::new();
    let mut push = |slot: &str, op: Option<usize>, order: u32, what: What, start: u64, end: u64| {
        let start = start.min(end);
        derived.entry(slot.to_owned()).or_default().push(Derived { op: SlotOp { op, order, what }, start, end });
    };
    let mut explained: BTreeSet<usize> = BTreeSet::new();
    for (n, (id, versions)) in sightings.iter().enumerate() {
        let order = n as u32;
        let user = user_of.get(id).copied().unwrap_or("");
        // (version, slot, writer's interval) of the stay the order is in, if an enter was derived.
        let mut stay: Option<(u64, &str, u64)> = None;
        let mut previous: Option<u64> = None;
        for (&version, s) in versions {
            let (writer, start, end) = match s.writer {
                Some((i, start, end)) => (Some(i), start, end),
                None => {
                    let candidates = if version == 1 {
                        by_address.get(&(user, s.address.as_str()))
                    } else if s.cancelled {
                        cancels.get(&(id, version - 1))
                    } else {
                        by_address.get(&(user, s.address.as_str()))
                    };
                    let only = candidates.filter(|c| c.len() == 1).map(|c| c[0]);
                    (only, earliest(candidates).unwrap_or(0), s.first_seen)
                }
            };
            if let Some(i) = writer {
                explained.insert(i);
            }
            let follows = previous == Some(version - 1);
            match stay {
                None => {
                    if !s.cancelled {
                        // First seen past version 1: in this slot since some time after the
                        // user's first unanswered create, at the latest since this write.
                        let since = match previous {
                            None if version > 1 => first_blind_create.get(user).copied().unwrap_or(0).min(start),
                            _ => start,
                        };
                        push(&s.slot, writer, order, What::Enter, since, end);
                        stay = Some((version, &s.slot, start));
                    }
                }
                Some((seen_version, slot, stay_start)) => {
                    let gap_start = if follows {
                        start
                    } else {
                        earliest(changes_of.get(&(id, seen_version))).unwrap_or(stay_start)
                    };
                    if s.cancelled {
                        push(slot, writer, order, What::Leave, gap_start, end);
                        stay = None;
                    } else if !follows || slot != s.slot {
                        push(slot, writer, order, What::Leave, gap_start, end);
                        push(&s.slot, writer, order, What::Enter, start, end);
                        stay = Some((version, &s.slot, start));
                    } else {
                        stay = Some((version, slot, stay_start));
                    }
                }
            }
            previous = Some(version);
        }
    }
    // Refusals for want of room. An unanswered create or change that no answer explains may
    // have held a place in its slot, unseen, from its invocation until the order's next sighting
    // (a change) or the user's next answered create (a create: the user had no active order by
    // then). A refusal in that window is not held against the slot. (Left in as operations that
    // may or may not have happened, such writes made the search try every subset of them:
    // minutes for a 40-second run.)
    let mut blind: HashMap<&str, Vec<(u64, u64)>> = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        if op.completed.is_some() || explained.contains(&i) {
            continue;
        }
        let until = match &op.kind {
            Kind::Update { id, from, .. } => sightings.get(id.as_str()).and_then(|versions| {
                versions.range(from + 1..).map(|(_, s)| s.first_seen).filter(|&t| t > op.invoked).min()
            }),
            Kind::Create { .. } => ops
                .iter()
                .filter(|o| {
                    o.user == op.user
                        && o.invoked > op.invoked
                        && matches!((&o.kind, &o.outcome), (Kind::Create { .. }, Outcome::Written { .. }))
                })
                .filter_map(|o| o.completed)
                .min(),
            _ => continue,
        };
        if let Some(slot) = op.kind.slot() {
            blind.entry(slot).or_default().push((op.invoked, until.unwrap_or(u64::MAX)));
        }
    }
    for (i, op) in ops.iter().enumerate() {
        if let (Outcome::Failed(problem), Some(slot), Some(end)) = (&op.outcome, op.kind.slot(), op.completed) {
            let excused = blind.get(slot).is_some_and(|w| w.iter().any(|&(from, to)| from <= end && op.invoked <= to));
            if problem == "slot-full" && !excused {
                push(slot, Some(i), u32::MAX, What::Full, op.invoked, end);
            }
        }
    }
    derived
}

/// The checker's processes: each derived operation on a lane, reused only by operations that
/// begin after the lane's last one ended.
fn lanes(ops: &[Derived]) -> Vec<usize> {
    let mut ends: Vec<u64> = Vec::new();
    let mut lane_of = vec![0usize; ops.len()];
    let mut order: Vec<usize> = (0..ops.len()).collect();
    order.sort_by_key(|&i| ops[i].start);
    for i in order {
        let lane = match ends.iter().position(|&end| end < ops[i].start) {
            Some(l) => l,
            None => {
                ends.push(0);
                ends.len() - 1
            }
        };
        ends[lane] = ops[i].end;
        lane_of[i] = lane;
    }
    lane_of
}

/// Whether the first `limit` events of `events` (op index, invocation?) are linearizable.
fn linearizable(capacity: u64, ops: &[Derived], lane_of: &[usize], events: &[(usize, bool)], limit: usize) -> bool {
    // Every derived operation happened; in a prefix, those not yet ended are left out.
    let ended: BTreeSet<usize> = events[..limit].iter().filter(|e| !e.1).map(|e| e.0).collect();
    let mut actions = Vec::with_capacity(limit);
    for &(i, invocation) in &events[..limit] {
        if !ended.contains(&i) {
            continue;
        }
        let action = if invocation { Action::Call(ops[i].op.clone()) } else { Action::Response(ops[i].op.clone()) };
        actions.push((lane_of[i], action));
    }
    if actions.is_empty() {
        return true;
    }
    CAPACITY.with(|c| c.set(capacity));
    WGLChecker::<SlotSpec>::is_linearizable(Calls::from_actions(actions))
}

pub fn check(history: &History) -> Vec<SlotVerdict> {
    let mut derived = derive(history);
    for slot in &history.header.slots {
        derived.entry(slot.clone()).or_default();
    }
    derived
        .into_iter()
        .map(|(slot, ops)| {
            // Invocations before completions at the same time: such operations are concurrent.
            let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
            for (i, op) in ops.iter().enumerate() {
                events.push((op.start, true, i));
                events.push((op.end, false, i));
            }
            events.sort_by_key(|&(time, invocation, i)| (time, !invocation, i));
            let events: Vec<(usize, bool)> = events.into_iter().map(|(_, inv, i)| (i, inv)).collect();
            let capacity = history.header.capacity;
            let lane_of = lanes(&ops);
            let failing = crate::first_failing_prefix(events.len(), |limit| {
                linearizable(capacity, &ops, &lane_of, &events, limit)
            });
            let first_bad = failing.map(|n| ops[events[n - 1].0].op.op);
            SlotVerdict { slot, operations: ops.len(), first_bad }
        })
        .collect()
}
