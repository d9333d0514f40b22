//! Property test: random command sequences applied through `apply` on a real (in-memory) redb
//! give exactly the outcomes of a small in-memory model, and the invariants hold after every
//! step, read straight from the tables.

use std::collections::BTreeMap;

use proptest::prelude::*;
use redb::backends::InMemoryBackend;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};

use super::apply;
use super::command::*;
use super::tables::{ACTIVE, ORDERS, ORDERS_BY_REVISION, SLOT_LOAD, USER_ORDERS};
use crate::codec;
use crate::domain::*;

const CAPACITY: u32 = 2;
const CUTOFF_MS: i64 = 30 * 60_000;
const T0: i64 = 1_800_000_000_000; // 2027-01-15, on the slot grid
const USERS: usize = 3;
const SLOTS: usize = 4;

#[derive(Clone, Debug)]
enum Op {
    Place {
        user: usize,
        slot: usize,
        key: Option<u8>,
        size: usize,
    },
    Change {
        user: usize,
        order: usize,
        slot: usize,
        if_match: Option<u64>,
    },
    Cancel {
        user: usize,
        order: usize,
        if_match: Option<u64>,
    },
    /// Propose the previous command again, as after a leader change.
    Repeat,
}

fn op() -> impl Strategy<Value = (Op, i64)> {
    let user = 0..USERS;
    let op = prop_oneof![
        (user.clone(), 0..SLOTS, proptest::option::of(0u8..3), 0..3usize)
            .prop_map(|(user, slot, key, size)| Op::Place { user, slot, key, size }),
        (user.clone(), 0..8usize, 0..SLOTS, proptest::option::of(1u64..4))
            .prop_map(|(user, order, slot, if_match)| Op::Change { user, order, slot, if_match }),
        (user, 0..8usize, proptest::option::of(1u64..4)).prop_map(|(user, order, if_match)| Op::Cancel {
            user,
            order,
            if_match
        }),
        Just(Op::Repeat),
    ];
    // Time moves forward 0–25 minutes per step, so slots pass their cutoff and their end.
    (op, 0i64..25 * 60_000)
}

fn slots() -> Vec<Slot> {
    let grid = SlotGrid::new(30, "00:00", "24:00", 10, 30).unwrap();
    let now = Timestamp::from_millis(T0);
    (0..SLOTS).map(|i| grid.bookable(Timestamp::from_millis(T0 + 3_600_000 * (i as i64 + 1)), now).unwrap()).collect()
}

fn user(i: usize) -> UserId {
    UserId::parse(&format!("user{i}")).unwrap()
}

fn spec(slot: Slot, size: usize) -> OrderSpec {
    OrderSpec {
        address: Address::parse("1 Main St").unwrap(),
        size: Size::ALL[size],
        toppings: Toppings::default(),
        slot,
    }
}

fn price(size: usize) -> Price {
    Price { amount: Cents(1000 + size as u64), currency: Currency::parse("EUR").unwrap() }
}

/// The model: the rules stated as plainly as possible.
#[derive(Default)]
struct Model {
    orders: BTreeMap<OrderId, Order>,
    keys: BTreeMap<(UserId, String), ([u8; 32], Order)>,
}

impl Model {
    fn load(&self, slot: Slot) -> u32 {
        self.orders.values().filter(|o| o.status == OrderStatus::Placed && o.spec.slot == slot).count() as u32
    }

    fn apply(&mut self, revision: u64, command: &Command) -> Result<Outcome, Rejection> {
        match command {
            Command::PlaceOrder(c) => {
                if let Some(existing) = self.orders.get(&c.order_id) {
                    return Ok(Outcome::Placed { order: existing.clone(), replayed: false });
                }
                if let Some(claim) = &c.idempotency {
                    if let Some((fp, order)) = self.keys.get(&(c.user.clone(), claim.key.as_str().to_owned())) {
                        return if *fp == claim.fingerprint {
                            Ok(Outcome::Placed { order: order.clone(), replayed: true })
                        } else {
                            Err(Rejection::IdempotencyKeyReused)
                        };
                    }
                }
                if let Some(active) = self.orders.values().find(|o| o.user == c.user && o.is_active(c.at)) {
                    return Err(Rejection::OrderExists(active.id));
                }
                if c.at.plus_millis(c.cutoff_ms) > c.spec.slot.start() {
                    return Err(Rejection::SlotTooSoon(c.spec.slot, c.cutoff_ms / 60_000));
                }
                if self.load(c.spec.slot) >= c.capacity.0 {
                    return Err(Rejection::SlotFull(c.spec.slot));
                }
                let order = Order {
                    id: c.order_id,
                    user: c.user.clone(),
                    spec: c.spec.clone(),
                    price: c.price.clone(),
                    status: OrderStatus::Placed,
                    version: OrderVersion::FIRST,
                    created_at: c.at,
                    updated_at: c.at,
                    revision,
                    last_command: c.order_id.as_u128(),
                };
                self.orders.insert(order.id, order.clone());
                if let Some(claim) = &c.idempotency {
                    self.keys
                        .insert((c.user.clone(), claim.key.as_str().to_owned()), (claim.fingerprint, order.clone()));
                }
                Ok(Outcome::Placed { order, replayed: false })
            }
            Command::ChangeOrder(c) => {
                if let Some(done) =
                    self.orders.get(&c.order_id).filter(|o| o.user == c.user && o.last_command == c.command_id.0)
                {
                    return Ok(Outcome::Changed(done.clone()));
                }
                let current = self.editable(c.order_id, &c.user, c.if_match.as_ref(), c.at, c.cutoff_ms)?;
                if current.spec.slot != c.spec.slot {
                    if c.at.plus_millis(c.cutoff_ms) > c.spec.slot.start() {
                        return Err(Rejection::SlotTooSoon(c.spec.slot, c.cutoff_ms / 60_000));
                    }
                    if self.load(c.spec.slot) >= c.capacity.0 {
                        return Err(Rejection::SlotFull(c.spec.slot));
                    }
                }
                let order = Order {
                    spec: c.spec.clone(),
                    price: c.price.clone(),
                    version: current.version.next(),
                    updated_at: c.at,
                    revision,
                    last_command: c.command_id.0,
                    ..current
                };
                self.orders.insert(order.id, order.clone());
                Ok(Outcome::Changed(order))
            }
            Command::CancelOrder(c) => {
                if let Some(done) =
                    self.orders.get(&c.order_id).filter(|o| o.user == c.user && o.last_command == c.command_id.0)
                {
                    return Ok(Outcome::Cancelled(done.clone()));
                }
                let current = self.editable(c.order_id, &c.user, c.if_match.as_ref(), c.at, c.cutoff_ms)?;
                let order = Order {
                    status: OrderStatus::Cancelled,
                    version: current.version.next(),
                    updated_at: c.at,
                    revision,
                    last_command: c.command_id.0,
                    ..current
                };
                self.orders.insert(order.id, order.clone());
                Ok(Outcome::Cancelled(order))
            }
        }
    }

    fn editable(
        &self,
        id: OrderId,
        user: &UserId,
        if_match: Option<&Precondition>,
        at: Timestamp,
        cutoff_ms: i64,
    ) -> Result<Order, Rejection> {
        let order = self.orders.get(&id).filter(|o| &o.user == user).ok_or(Rejection::NotFound)?;
        if let Some(p) = if_match {
            if !p.admits(order.version) {
                return Err(Rejection::PreconditionFailed(order.version));
            }
        }
        if order.status == OrderStatus::Cancelled {
            return Err(Rejection::NotActive);
        }
        if at.plus_millis(cutoff_ms) > order.spec.slot.start() {
            return Err(Rejection::CutoffPassed(cutoff_ms / 60_000));
        }
        Ok(order.clone())
    }
}

/// Every invariant of `tables.rs`, read from the database, plus equality with the model.
fn check_invariants(db: &Database, model: &Model, slots: &[Slot], at: Timestamp) {
    let txn = db.begin_read().unwrap();
    let orders: BTreeMap<OrderId, Order> = txn
        .open_table(ORDERS)
        .unwrap()
        .iter()
        .unwrap()
        .map(|e| {
            let (k, v) = e.unwrap();
            (OrderId::from_u128(k.value()), codec::decode::<Order>(v.value()).unwrap())
        })
        .collect();
    assert_eq!(orders, model.orders, "stored orders differ from the model");
    let load = txn.open_table(SLOT_LOAD).unwrap();
    for slot in slots {
        let stored = load.get(slot.start().millis()).unwrap().map_or(0, |g| g.value());
        assert_eq!(stored, model.load(*slot), "slot load index is off");
        assert!(stored <= CAPACITY, "slot overbooked");
    }
    for u in 0..USERS {
        let active = orders.values().filter(|o| o.user == user(u) && o.is_active(at)).count();
        assert!(active <= 1, "user{u} has {active} active orders");
        if active == 1 {
            let pointer = txn.open_table(ACTIVE).unwrap().get(user(u).as_str()).unwrap().map(|g| g.value());
            let id = orders.values().find(|o| o.user == user(u) && o.is_active(at)).unwrap().id;
            assert_eq!(pointer, Some(id.as_u128()), "active index does not name the active order");
        }
    }
    assert_eq!(txn.open_table(USER_ORDERS).unwrap().len().unwrap(), orders.len() as u64);
    let by_revision: Vec<(u64, u128)> =
        txn.open_table(ORDERS_BY_REVISION).unwrap().iter().unwrap().map(|e| e.unwrap().0.value()).collect();
    let mut expected: Vec<(u64, u128)> = orders.values().map(|o| (o.revision, o.id.as_u128())).collect();
    expected.sort();
    assert_eq!(by_revision, expected, "revision index does not list each order at its last revision");
    let report = super::check::check_state(&txn, Some(SlotCapacity(CAPACITY)), at).unwrap();
    assert!(report.is_clean(), "check found problems in a state built by apply: {:?}", report.problems);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn apply_matches_the_model_and_keeps_every_invariant(ops in proptest::collection::vec(op(), 1..40)) {
        let db = Database::builder().create_with_backend(InMemoryBackend::new()).unwrap();
        let txn = db.begin_write().unwrap();
        super::tables::create_all(&txn).unwrap();
        txn.open_table(super::tables::META).unwrap().insert(super::tables::META_SCHEMA_VERSION, super::tables::DATA_FORMAT).unwrap();
        txn.commit().unwrap();
        let slots = slots();
        let mut model = Model::default();
        let mut ids: Vec<OrderId> = Vec::new();
        let mut at = T0;
        let mut previous: Option<Command> = None;
        for (revision, (op, step)) in (1u64..).zip(ops) {
            at += step;
            let now = Timestamp::from_millis(at);
            let command = match op {
                Op::Repeat => match previous.clone() {
                    Some(command) => command,
                    None => continue,
                },
                Op::Place { user: u, slot, key, size } => {
                    let id = OrderId::new_at(now);
                    ids.push(id);
                    let spec = spec(slots[slot], size);
                    Command::PlaceOrder(PlaceOrder {
                        order_id: id,
                        user: user(u),
                        at: now,
                        price: price(size),
                        capacity: SlotCapacity(CAPACITY),
                        cutoff_ms: CUTOFF_MS,
                        idempotency: key.map(|k| IdempotencyClaim {
                            key: IdempotencyKey::parse(&format!("k{k}")).unwrap(),
                            fingerprint: [(slot * 3 + size) as u8; 32],
                            expires_at: Timestamp::from_millis(T0 + 86_400_000),
                        }),
                        spec,
                    })
                }
                Op::Change { user: u, order, slot, if_match } => Command::ChangeOrder(ChangeOrder {
                    command_id: CommandId::new(),
                    order_id: ids.get(order).copied().unwrap_or(OrderId::from_u128(order as u128)),
                    user: user(u),
                    at: now,
                    spec: spec(slots[slot], 1),
                    price: price(1),
                    capacity: SlotCapacity(CAPACITY),
                    cutoff_ms: CUTOFF_MS,
                    if_match: if_match.map(|v| Precondition::OneOf(vec![OrderVersion(v)])),
                }),
                Op::Cancel { user: u, order, if_match } => Command::CancelOrder(CancelOrder {
                    command_id: CommandId::new(),
                    order_id: ids.get(order).copied().unwrap_or(OrderId::from_u128(order as u128)),
                    user: user(u),
                    at: now,
                    cutoff_ms: CUTOFF_MS,
                    if_match: if_match.map(|v| Precondition::OneOf(vec![OrderVersion(v)])),
                }),
            };
            let txn = db.begin_write().unwrap();
            let real = apply(&txn, revision, &command).unwrap();
            txn.commit().unwrap();
            let expected = model.apply(revision, &command);
            prop_assert_eq!(&real, &expected, "command {:?}", command);
            previous = Some(command);
            check_invariants(&db, &model, &slots, now);
        }
    }
}
