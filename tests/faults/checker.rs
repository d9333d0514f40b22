//! Checks a history and the final state against what the service promises.
//!
//! Per order, versions order the writes: every successful write returns the version it made,
//! and a version can only ever hold one value. That makes a linearizability check of each order
//! (a register) simple: an operation that finished before another began must not see a newer
//! version than the later one (and a later write must make a newer one), and every value seen
//! must come from a write that was invoked before it was seen and did not fail.

use std::collections::{BTreeMap, HashMap};

use crate::history::{Kind, Op, Outcome, Seen};
use crate::workload::CAPACITY;

/// One sighting of an order at a version: by an operation or in the final state.
#[derive(Clone, Debug)]
struct Sighting {
    op: Option<usize>,
    invoked: u64,
    completed: u64,
    write: bool,
    /// 0: the order was absent (a complete list without it).
    version: u64,
    seen: Option<Seen>,
}

pub struct Report {
    pub problems: Vec<String>,
}

/// `finals`: every node's final state (order id → (user, order)), already checked equal.
pub fn check(ops: &[Op], finals: &BTreeMap<String, (String, Seen)>) -> Report {
    let mut problems = Vec::new();
    let end = u64::MAX;

    // Which create made which order: creates carry unique addresses.
    let creates_by_address: HashMap<&str, &Op> = ops
        .iter()
        .filter_map(|op| match &op.kind {
            Kind::Create { address, .. } => Some((address.as_str(), op)),
            _ => None,
        })
        .collect();
    let mut user_of: BTreeMap<String, String> = finals.iter().map(|(id, (u, _))| (id.clone(), u.clone())).collect();
    for op in ops {
        if let Outcome::Written { id, .. } = &op.outcome {
            user_of.entry(id.clone()).or_insert_with(|| op.user.clone());
        }
    }
    let mut orders_of: HashMap<&str, Vec<&str>> = HashMap::new();
    for (id, user) in &user_of {
        orders_of.entry(user.as_str()).or_default().push(id.as_str());
    }
    // The changes and cancels aimed at each order (creates are found by their address).
    let mut aimed_at: HashMap<&str, Vec<&Op>> = HashMap::new();
    for op in ops {
        if let Kind::Update { id, .. } | Kind::Cancel { id, .. } = &op.kind {
            aimed_at.entry(id.as_str()).or_default().push(op);
        }
    }

    // Sightings per order.
    let mut sightings: BTreeMap<String, Vec<Sighting>> = BTreeMap::new();
    for op in ops {
        match &op.outcome {
            Outcome::Written { id, seen } => sightings.entry(id.clone()).or_default().push(Sighting {
                op: Some(op.index),
                invoked: op.invoked,
                completed: op.completed,
                write: true,
                version: seen.version,
                seen: Some(seen.clone()),
            }),
            Outcome::Listed { orders, complete } => {
                for id in orders_of.get(op.user.as_str()).into_iter().flatten() {
                    let (version, seen) = match orders.get(*id) {
                        Some(seen) => (seen.version, Some(seen.clone())),
                        None if *complete => (0, None),
                        None => continue,
                    };
                    sightings.entry(id.to_string()).or_default().push(Sighting {
                        op: Some(op.index),
                        invoked: op.invoked,
                        completed: op.completed,
                        write: false,
                        version,
                        seen,
                    });
                }
            }
            Outcome::Unknown(reason) if reason.starts_with("server-error") => {
                problems.push(format!("op {} answered with a server error: {reason}", op.index));
            }
            _ => {}
        }
    }
    for id in user_of.keys() {
        let (version, seen) = match finals.get(id) {
            Some((_, seen)) => (seen.version, Some(seen.clone())),
            None => (0, None),
        };
        sightings.entry(id.clone()).or_default().push(Sighting {
            op: None,
            invoked: end - 1,
            completed: end,
            write: false,
            version,
            seen,
        });
    }

    for (id, list) in &sightings {
        let mut order_problems = Vec::new();
        // One value per version.
        let mut values: BTreeMap<u64, &Seen> = BTreeMap::new();
        for s in list {
            if let Some(seen) = &s.seen {
                match values.get(&s.version) {
                    Some(v) if *v != seen => order_problems.push(format!(
                        "version {} holds two values: {:?} and {:?} (op {:?})",
                        s.version, v, seen, s.op
                    )),
                    _ => {
                        values.insert(s.version, seen);
                    }
                }
            }
        }
        // Every value comes from a write that did not fail and began before the value was seen.
        // The first sighting of a version is the strictest test (later ones allow more writers).
        let mut first_seen: BTreeMap<u64, &Sighting> = BTreeMap::new();
        for s in list.iter().filter(|s| s.seen.is_some()) {
            let first = first_seen.entry(s.version).or_insert(s);
            if s.completed < first.completed {
                *first = s;
            }
        }
        for s in first_seen.values() {
            let Some(seen) = &s.seen else { continue };
            let candidates = creates_by_address.get(seen.address.as_str()).into_iter().copied();
            let writers: Vec<&Op> = candidates
                .chain(aimed_at.get(id.as_str()).into_iter().flatten().copied())
                .filter(|op| wrote(op, id, seen, &creates_by_address))
                .filter(|op| op.invoked <= s.completed)
                .collect();
            if writers.is_empty() {
                order_problems.push(format!("{seen:?} (seen by op {:?}) was written by no operation", s.op));
            } else if writers.iter().all(|w| matches!(w.outcome, Outcome::Failed(_))) {
                let failed: Vec<usize> = writers.iter().map(|w| w.index).collect();
                order_problems.push(format!("{seen:?} (seen by op {:?}) comes from failed op(s) {failed:?}", s.op));
            }
        }
        // Real time: whatever finished before something else began is not newer than it. For
        // each b it is enough to compare with the newest version among those finished before
        // b began (sorted by completion, with a running maximum): O(n log n) per order.
        let mut window: Option<(u64, u64)> = None;
        let mut by_completion: Vec<&Sighting> = list.iter().collect();
        by_completion.sort_by_key(|s| s.completed);
        let mut newest_so_far: Vec<&Sighting> = Vec::with_capacity(by_completion.len());
        for s in &by_completion {
            let newest = match newest_so_far.last() {
                Some(prev) if prev.version >= s.version => *prev,
                _ => *s,
            };
            newest_so_far.push(newest);
        }
        for b in list {
            let finished_before = by_completion.partition_point(|a| a.completed < b.invoked);
            let Some(a) = finished_before.checked_sub(1).map(|i| newest_so_far[i]) else { continue };
            let bad = if b.write { a.version >= b.version } else { a.version > b.version };
            if bad {
                window.get_or_insert((a.invoked, b.completed));
                order_problems.push(format!(
                    "op {:?} saw version {} and finished before op {:?} began, which {} version {}",
                    a.op,
                    a.version,
                    b.op,
                    if b.write { "wrote" } else { "saw" },
                    b.version
                ));
            }
        }
        if !order_problems.is_empty() {
            order_problems.truncate(5);
            problems.push(format!("order {id}:\n  {}\n{}", order_problems.join("\n  "), slice(ops, id, list, window)));
        }
    }

    // The final state: one active order per user, no slot over capacity.
    let mut active: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut load: BTreeMap<&str, u64> = BTreeMap::new();
    for (id, (user, seen)) in finals {
        if seen.status != "cancelled" {
            active.entry(user).or_default().push(id);
            *load.entry(&seen.slot).or_default() += 1;
        }
    }
    for (user, ids) in active.iter().filter(|(_, ids)| ids.len() > 1) {
        problems.push(format!("{user} has {} active orders: {ids:?}", ids.len()));
    }
    for (slot, n) in load.iter().filter(|(_, n)| **n > CAPACITY) {
        problems.push(format!("slot {slot} holds {n} orders, capacity {CAPACITY}"));
    }
    Report { problems }
}

/// Could `op` have produced `seen` on order `id`?
fn wrote(op: &Op, id: &str, seen: &Seen, creates: &HashMap<&str, &Op>) -> bool {
    match &op.kind {
        Kind::Create { address, size, slot } => {
            seen.version == 1
                && *address == seen.address
                && *size == seen.size
                && *slot == seen.slot
                && creates.get(address.as_str()).is_some_and(|c| c.index == op.index)
        }
        Kind::Update { id: target, from, address, size, slot } => {
            target == id
                && seen.version == from + 1
                && *address == seen.address
                && *size == seen.size
                && *slot == seen.slot
                && seen.status != "cancelled"
        }
        Kind::Cancel { id: target, from } => target == id && seen.version == from + 1 && seen.status == "cancelled",
        Kind::Read => false,
    }
}

/// The operations that touched order `id`, in invocation order, for a failure message: those
/// overlapping `window` (the first real-time violation) when there is one.
fn slice(ops: &[Op], id: &str, list: &[Sighting], window: Option<(u64, u64)>) -> String {
    let involved: Vec<usize> = list.iter().filter_map(|s| s.op).collect();
    let (from, to) = window.unwrap_or((0, u64::MAX));
    let mut lines: Vec<String> = ops
        .iter()
        .filter(|op| {
            involved.contains(&op.index)
                || matches!(&op.kind, Kind::Update { id: t, .. } | Kind::Cancel { id: t, .. } if t == id)
        })
        .filter(|op| op.completed >= from && op.invoked <= to)
        .map(|op| {
            let outcome = match &op.outcome {
                Outcome::Listed { orders, complete } => match orders.get(id) {
                    Some(seen) => format!("read {seen:?}"),
                    None if *complete => "read: absent".to_owned(),
                    None => "read: not on the pages read".to_owned(),
                },
                other => format!("{other:?}"),
            };
            let kind = if matches!(op.kind, Kind::Read) { String::new() } else { format!("{:?} -> ", op.kind) };
            format!(
                "    #{:<6} {:>9.3}s..{:>9.3}s client {} node {} {kind}{outcome}",
                op.index,
                op.invoked as f64 / 1e6,
                op.completed as f64 / 1e6,
                op.client,
                op.node + 1,
            )
        })
        .collect();
    if lines.len() > 40 {
        let skipped = lines.len() - 40;
        lines.drain(..skipped);
        lines.insert(0, format!("    ... {skipped} earlier operations"));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Outcome;

    fn seen(version: u64, address: &str, status: &str) -> Seen {
        Seen { version, address: address.into(), size: "small".into(), slot: "s".into(), status: status.into() }
    }

    fn op(index: usize, invoked: u64, completed: u64, kind: Kind, outcome: Outcome) -> Op {
        Op { index, client: 0, node: 0, user: "u".into(), kind, invoked, completed, outcome }
    }

    fn create(address: &str) -> Kind {
        Kind::Create { address: address.into(), size: "small".into(), slot: "s".into() }
    }

    fn finals(entries: &[(&str, Seen)]) -> BTreeMap<String, (String, Seen)> {
        entries.iter().map(|(id, s)| (id.to_string(), ("u".to_string(), s.clone()))).collect()
    }

    #[test]
    fn a_clean_history_passes() {
        let ops = vec![
            op(0, 0, 10, create("a"), Outcome::Written { id: "o1".into(), seen: seen(1, "a", "placed") }),
            op(1, 20, 30, Kind::Cancel { id: "o1".into(), from: 1 }, Outcome::Unknown("timeout".into())),
            op(2, 40, 50, Kind::Read, Outcome::Listed { orders: BTreeMap::new(), complete: false }),
        ];
        let report = check(&ops, &finals(&[("o1", seen(2, "a", "cancelled"))]));
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    }

    #[test]
    fn a_lost_acknowledged_create_is_reported() {
        let ops = vec![op(0, 0, 10, create("a"), Outcome::Written { id: "o1".into(), seen: seen(1, "a", "placed") })];
        let report = check(&ops, &finals(&[]));
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    }

    #[test]
    fn a_stale_read_is_reported() {
        let read = BTreeMap::from([("o1".to_string(), seen(1, "a", "placed"))]);
        let ops = vec![
            op(0, 0, 10, create("a"), Outcome::Written { id: "o1".into(), seen: seen(1, "a", "placed") }),
            op(
                1,
                20,
                30,
                Kind::Cancel { id: "o1".into(), from: 1 },
                Outcome::Written { id: "o1".into(), seen: seen(2, "a", "cancelled") },
            ),
            op(2, 40, 50, Kind::Read, Outcome::Listed { orders: read, complete: true }),
        ];
        let report = check(&ops, &finals(&[("o1", seen(2, "a", "cancelled"))]));
        assert!(report.problems.iter().any(|p| p.contains("finished before")), "{:?}", report.problems);
    }

    #[test]
    fn a_failed_write_that_took_effect_is_reported() {
        let ops = vec![
            op(0, 0, 10, create("a"), Outcome::Written { id: "o1".into(), seen: seen(1, "a", "placed") }),
            op(1, 20, 30, Kind::Cancel { id: "o1".into(), from: 1 }, Outcome::Failed("precondition-failed".into())),
        ];
        let report = check(&ops, &finals(&[("o1", seen(2, "a", "cancelled"))]));
        assert!(report.problems.iter().any(|p| p.contains("failed op")), "{:?}", report.problems);
    }

    #[test]
    fn two_active_orders_or_an_overbooked_slot_are_reported() {
        let ops = vec![
            op(0, 0, 10, create("a"), Outcome::Written { id: "o1".into(), seen: seen(1, "a", "placed") }),
            op(1, 0, 10, create("b"), Outcome::Written { id: "o2".into(), seen: seen(1, "b", "placed") }),
        ];
        let report = check(&ops, &finals(&[("o1", seen(1, "a", "placed")), ("o2", seen(1, "b", "placed"))]));
        assert!(report.problems.iter().any(|p| p.contains("2 active orders")), "{:?}", report.problems);
    }
}
