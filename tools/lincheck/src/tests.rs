//! The checker must be able to fail: histories with a lost acknowledged order, a stale read, a
//! user with two active orders and an overbooked slot are each reported; histories the service
//! may produce, with answers lost on the way, pass.

use serde_json::{json, Value};

use crate::history::read;
use crate::{check, Report};

enum End {
    Ok(Value, u64),
    Fail(&'static str, u64),
    Info(u64),
}

struct Call {
    process: u64,
    user: &'static str,
    f: &'static str,
    value: Value,
    invoked: u64,
    end: End,
}

fn create(process: u64, user: &'static str, address: &str, slot: &str, invoked: u64, end: End) -> Call {
    let value = json!({ "address": address, "size": "small", "slot": slot });
    Call { process, user, f: "create", value, invoked, end }
}

/// A change of `target` (id, If-Match version) to `address` in `slot`.
fn update(process: u64, user: &'static str, target: (&str, u64), address: &str, slot: &str, t: u64, end: End) -> Call {
    let (id, from) = target;
    let value = json!({ "id": id, "from": from, "address": address, "size": "small", "slot": slot });
    Call { process, user, f: "update", value, invoked: t, end }
}

fn cancel(process: u64, user: &'static str, id: &str, from: u64, invoked: u64, end: End) -> Call {
    Call { process, user, f: "cancel", value: json!({ "id": id, "from": from }), invoked, end }
}

fn read_of(process: u64, user: &'static str, invoked: u64, end: End) -> Call {
    Call { process, user, f: "read", value: Value::Null, invoked, end }
}

fn order(version: u64, address: &str, slot: &str, status: &str) -> Value {
    json!({ "version": version, "address": address, "size": "small", "slot": slot, "status": status })
}

fn written(id: &str, version: u64, address: &str, slot: &str, status: &str, t: u64) -> End {
    End::Ok(json!({ "id": id, "order": order(version, address, slot, status) }), t)
}

fn listed(orders: &[(&str, u64, &str, &str, &str)], t: u64) -> End {
    let map: serde_json::Map<String, Value> =
        orders.iter().map(|(id, v, a, s, st)| (id.to_string(), order(*v, a, s, st))).collect();
    End::Ok(json!({ "orders": map, "complete": true }), t)
}

fn run(capacity: u64, calls: Vec<Call>) -> Report {
    let mut events: Vec<(u64, u8, Value)> = Vec::new();
    for (index, c) in calls.into_iter().enumerate() {
        let base = json!({ "process": c.process, "index": index, "user": c.user, "f": c.f });
        let mut invoke = base.clone();
        invoke["type"] = json!("invoke");
        invoke["time"] = json!(c.invoked);
        invoke["value"] = c.value;
        events.push((c.invoked, 0, invoke));
        let mut done = base;
        let t = match c.end {
            End::Ok(value, t) => {
                done["type"] = json!("ok");
                done["value"] = value;
                t
            }
            End::Fail(problem, t) => {
                done["type"] = json!("fail");
                done["error"] = json!(problem);
                t
            }
            End::Info(t) => {
                done["type"] = json!("info");
                done["error"] = json!("timeout");
                t
            }
        };
        done["time"] = json!(t);
        events.push((t, 1, done));
    }
    events.sort_by_key(|(t, order, _)| (*t, *order));
    let mut text =
        json!({ "format": "pizza-orders-history", "version": 1, "capacity": capacity, "slots": ["s1", "s2"] })
            .to_string();
    for (_, _, line) in events {
        text.push('\n');
        text.push_str(&line.to_string());
    }
    let history = read(text.as_bytes()).expect("a well-formed history");
    check(&history)
}

fn bad_users(report: &Report) -> Vec<&str> {
    report.users.iter().filter(|u| u.first_bad.is_some()).map(|u| u.user.as_str()).collect()
}

fn bad_slots(report: &Report) -> Vec<&str> {
    report.slots.iter().filter(|s| s.first_bad.is_some()).map(|s| s.slot.as_str()).collect()
}

#[test]
fn a_history_the_service_may_produce_passes_with_answers_lost_on_the_way() {
    let report = run(
        1,
        vec![
            create(0, "u", "a1", "s1", 0, written("o1", 1, "a1", "s1", "placed", 10)),
            // A second create while one is active is refused.
            create(1, "u", "a2", "s2", 20, End::Fail("order-exists", 30)),
            // A change whose answer was lost; a later read shows that it happened.
            update(0, "u", ("o1", 1), "a3", "s2", 40, End::Info(60)),
            read_of(1, "u", 70, listed(&[("o1", 2, "a3", "s2", "placed")], 80)),
            // A stale If-Match is refused; a cancel at the right version goes through.
            cancel(1, "u", "o1", 1, 90, End::Fail("precondition-failed", 100)),
            // Another user finds slot s2 full while o1 is in it, then s1 free again.
            create(2, "v", "b1", "s2", 95, End::Fail("slot-full", 105)),
            create(2, "v", "b2", "s1", 110, written("p1", 1, "b2", "s1", "placed", 120)),
            cancel(1, "u", "o1", 2, 130, written("o1", 3, "a3", "s2", "cancelled", 140)),
            // A create without an answer, never seen: it may not have happened.
            create(3, "u", "a4", "s2", 150, End::Info(160)),
            read_of(4, "u", 170, listed(&[("o1", 3, "a3", "s2", "cancelled")], 180)),
            read_of(5, "v", 170, listed(&[("p1", 1, "b2", "s1", "placed")], 180)),
        ],
    );
    assert!(report.linearizable(), "users {:?} slots {:?}", bad_users(&report), bad_slots(&report));
}

#[test]
fn an_acknowledged_order_missing_later_is_reported() {
    let report = run(
        3,
        vec![
            create(0, "u", "a1", "s1", 0, written("o1", 1, "a1", "s1", "placed", 10)),
            read_of(1, "u", 20, listed(&[], 30)),
        ],
    );
    assert_eq!(bad_users(&report), ["u"]);
}

#[test]
fn a_stale_read_is_reported() {
    let report = run(
        3,
        vec![
            create(0, "u", "a1", "s1", 0, written("o1", 1, "a1", "s1", "placed", 10)),
            update(0, "u", ("o1", 1), "a2", "s1", 20, written("o1", 2, "a2", "s1", "placed", 30)),
            // Begun after the change was acknowledged, it shows the order before it.
            read_of(1, "u", 40, listed(&[("o1", 1, "a1", "s1", "placed")], 50)),
        ],
    );
    assert_eq!(bad_users(&report), ["u"]);
    // The same read, begun before the change was acknowledged, is fine.
    let report = run(
        3,
        vec![
            create(0, "u", "a1", "s1", 0, written("o1", 1, "a1", "s1", "placed", 10)),
            update(0, "u", ("o1", 1), "a2", "s1", 20, written("o1", 2, "a2", "s1", "placed", 30)),
            read_of(1, "u", 25, listed(&[("o1", 1, "a1", "s1", "placed")], 50)),
        ],
    );
    assert!(report.linearizable());
}

#[test]
fn a_user_with_two_active_orders_is_reported() {
    let report = run(
        3,
        vec![
            create(0, "u", "a1", "s1", 0, written("o1", 1, "a1", "s1", "placed", 10)),
            create(1, "u", "a2", "s2", 5, written("o2", 1, "a2", "s2", "placed", 15)),
        ],
    );
    assert_eq!(bad_users(&report), ["u"]);
}

/// `users` each place order `o<n>` (address `a<n>`) in slot s1, one after another.
fn one_order_each(users: &[&'static str]) -> Vec<Call> {
    users
        .iter()
        .enumerate()
        .map(|(n, u)| {
            let t = n as u64 * 20;
            let (id, address) = (format!("o{n}"), format!("a{n}"));
            create(n as u64, u, &address, "s1", t, written(&id, 1, &address, "s1", "placed", t + 10))
        })
        .collect()
}

#[test]
fn an_overbooked_slot_is_reported_and_so_is_a_full_refusal_with_room() {
    let report = run(3, one_order_each(&["u1", "u2", "u3", "u4"]));
    assert!(bad_users(&report).is_empty());
    assert_eq!(bad_slots(&report), ["s1"]);
    // Three orders fit; a fourth refused for room is right, and once one is cancelled a
    // refusal is not.
    let mut calls = one_order_each(&["u1", "u2", "u3"]);
    calls.push(create(3, "u4", "a3", "s1", 100, End::Fail("slot-full", 110)));
    assert!(run(3, calls).linearizable());
    let mut calls = one_order_each(&["u1", "u2", "u3"]);
    calls.push(cancel(0, "u1", "o0", 1, 100, written("o0", 2, "a0", "s1", "cancelled", 110)));
    calls.push(create(3, "u4", "a3", "s1", 120, End::Fail("slot-full", 130)));
    let report = run(3, calls);
    assert_eq!(bad_slots(&report), ["s1"]);
}

#[test]
fn a_change_without_an_answer_may_hold_a_place_that_explains_a_refusal() {
    // Capacity 1: u's change into s2 got no answer but went through (u's read shows it),
    // so v's create into s2 was rightly refused.
    let report = run(
        1,
        vec![
            create(0, "u", "a1", "s1", 0, written("o1", 1, "a1", "s1", "placed", 10)),
            update(0, "u", ("o1", 1), "a2", "s2", 20, End::Info(30)),
            create(1, "v", "b1", "s2", 40, End::Fail("slot-full", 50)),
            read_of(2, "u", 60, listed(&[("o1", 2, "a2", "s2", "placed")], 70)),
        ],
    );
    assert!(report.linearizable(), "users {:?} slots {:?}", bad_users(&report), bad_slots(&report));
}
