//! `apply`: the only code that changes orders.
//!
//! Deterministic: it reads no clock, draws no random number and makes no I/O decision; the
//! command carries the time, ids and rules. Every check runs before the first write, so a
//! rejected command leaves the transaction exactly as it found it and the other commands of
//! its batch are unaffected.

use redb::{ReadableTable, Table, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::command::{
    CancelOrder, ChangeOrder, Command, CommandId, Outcome, PlaceOrder, Precondition, Rejection, SlotCapacity,
};
use super::tables::{ACTIVE, IDEMPOTENCY, IDEMPOTENCY_EXPIRY, ORDERS, ORDERS_BY_REVISION, SLOT_LOAD, USER_ORDERS};
use super::StoreError;
use crate::codec;
use crate::domain::{Order, OrderId, OrderStatus, OrderVersion, Slot, Timestamp, UserId};

/// At most this many expired idempotency keys are dropped per command: bounded work per
/// apply, and still far faster than keys can be created (one per create).
const EXPIRED_KEYS_PER_COMMAND: usize = 8;

/// What an idempotency key remembers: the request's fingerprint and the order it created.
#[derive(Serialize, Deserialize)]
pub(super) struct IdempotencyRecord {
    pub(super) fingerprint: [u8; 32],
    pub(super) expires_at: Timestamp,
    pub(super) order: Order,
}

pub type Applied = Result<Outcome, Rejection>;

/// Why a command stopped early: refused (nothing written), or the storage failed.
enum Stop {
    Rejected(Rejection),
    Store(StoreError),
}

impl From<Rejection> for Stop {
    fn from(r: Rejection) -> Self {
        Stop::Rejected(r)
    }
}

impl<E: Into<StoreError>> From<E> for Stop {
    fn from(e: E) -> Self {
        Stop::Store(e.into())
    }
}

/// Apply one command at `revision` inside `txn`.
///
/// `Ok(Err(rejection))` is a refused command (nothing written); `Err(_)` is a storage failure
/// that must abort the whole transaction.
pub fn apply(txn: &WriteTransaction, revision: u64, command: &Command) -> Result<Applied, StoreError> {
    expire_idempotency_keys(txn, command.at())?;
    let result = match command {
        Command::PlaceOrder(c) => place(txn, revision, c),
        Command::ChangeOrder(c) => change(txn, revision, c).map(Outcome::Changed),
        Command::CancelOrder(c) => cancel(txn, revision, c).map(Outcome::Cancelled),
    };
    match result {
        Ok(outcome) => Ok(Ok(outcome)),
        Err(Stop::Rejected(rejection)) => Ok(Err(rejection)),
        Err(Stop::Store(e)) => Err(e),
    }
}

fn place(txn: &WriteTransaction, revision: u64, c: &PlaceOrder) -> Result<Outcome, Stop> {
    let mut orders = txn.open_table(ORDERS)?;
    // The same command proposed again after a leader change: answer as the first time.
    if let Some(raw) = orders.get(c.order_id.as_u128())? {
        let existing: Order = codec::decode(raw.value())?;
        if existing.user == c.user && existing.created_at == c.at {
            return Ok(Outcome::Placed { order: existing, replayed: false });
        }
        return Err(Rejection::DuplicateOrderId(c.order_id).into());
    }
    let mut idempotency = txn.open_table(IDEMPOTENCY)?;
    // An expired record that has not been purged yet is replaced; its index entry goes too.
    let mut stale_expiry = None;
    if let Some(claim) = &c.idempotency {
        if let Some(raw) = idempotency.get((c.user.as_str(), claim.key.as_str()))? {
            let record: IdempotencyRecord = codec::decode(raw.value())?;
            if record.expires_at > c.at {
                if record.fingerprint != claim.fingerprint {
                    return Err(Rejection::IdempotencyKeyReused.into());
                }
                return Ok(Outcome::Placed { order: record.order, replayed: true });
            }
            stale_expiry = Some(record.expires_at);
        }
    }
    let mut active = txn.open_table(ACTIVE)?;
    if let Some(current) = active_order(&orders, &active, &c.user, c.at)? {
        return Err(Rejection::OrderExists(current.id).into());
    }
    check_bookable(c.spec.slot, c.at, c.cutoff_ms)?;
    let mut load = txn.open_table(SLOT_LOAD)?;
    check_room(&load, c.spec.slot, c.capacity)?;

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
    orders.insert(order.id.as_u128(), codec::encode(&order)?.as_slice())?;
    txn.open_table(USER_ORDERS)?.insert((c.user.as_str(), order.id.as_u128()), ())?;
    txn.open_table(ORDERS_BY_REVISION)?.insert((revision, order.id.as_u128()), ())?;
    active.insert(c.user.as_str(), order.id.as_u128())?;
    add_load(&mut load, c.spec.slot, 1)?;
    if let Some(claim) = &c.idempotency {
        let record =
            IdempotencyRecord { fingerprint: claim.fingerprint, expires_at: claim.expires_at, order: order.clone() };
        idempotency.insert((c.user.as_str(), claim.key.as_str()), codec::encode(&record)?.as_slice())?;
        let mut expiry = txn.open_table(IDEMPOTENCY_EXPIRY)?;
        if let Some(stale) = stale_expiry {
            expiry.remove((stale.millis(), c.user.as_str(), claim.key.as_str()))?;
        }
        expiry.insert((claim.expires_at.millis(), c.user.as_str(), claim.key.as_str()), ())?;
    }
    Ok(Outcome::Placed { order, replayed: false })
}

fn change(txn: &WriteTransaction, revision: u64, c: &ChangeOrder) -> Result<Order, Stop> {
    let mut orders = txn.open_table(ORDERS)?;
    if let Some(order) = already_applied(&orders, c.order_id, &c.user, c.command_id)? {
        return Ok(order);
    }
    let current = editable_order(&orders, c.order_id, &c.user, c.if_match.as_ref(), c.at, c.cutoff_ms)?;
    let current_revision = current.revision;
    let mut load = txn.open_table(SLOT_LOAD)?;
    let moves = current.spec.slot != c.spec.slot;
    if moves {
        check_bookable(c.spec.slot, c.at, c.cutoff_ms)?;
        check_room(&load, c.spec.slot, c.capacity)?;
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
    if moves {
        add_load(&mut load, current.spec.slot, -1)?;
        add_load(&mut load, c.spec.slot, 1)?;
    }
    write_changed(txn, &mut orders, &order, current_revision)?;
    Ok(order)
}

fn cancel(txn: &WriteTransaction, revision: u64, c: &CancelOrder) -> Result<Order, Stop> {
    let mut orders = txn.open_table(ORDERS)?;
    if let Some(order) = already_applied(&orders, c.order_id, &c.user, c.command_id)? {
        return Ok(order);
    }
    let current = editable_order(&orders, c.order_id, &c.user, c.if_match.as_ref(), c.at, c.cutoff_ms)?;
    let current_revision = current.revision;
    let order = Order {
        status: OrderStatus::Cancelled,
        version: current.version.next(),
        updated_at: c.at,
        revision,
        last_command: c.command_id.0,
        ..current
    };
    add_load(&mut txn.open_table(SLOT_LOAD)?, order.spec.slot, -1)?;
    let mut active = txn.open_table(ACTIVE)?;
    let points_here = active.get(c.user.as_str())?.map(|g| g.value()) == Some(order.id.as_u128());
    if points_here {
        active.remove(c.user.as_str())?;
    }
    write_changed(txn, &mut orders, &order, current_revision)?;
    Ok(order)
}

/// The order as it stands if `command` already changed it (a re-proposed command).
fn already_applied(
    orders: &Table<u128, &[u8]>,
    id: OrderId,
    user: &UserId,
    command: CommandId,
) -> Result<Option<Order>, Stop> {
    let Some(raw) = orders.get(id.as_u128())? else { return Ok(None) };
    let order: Order = codec::decode(raw.value())?;
    Ok((order.user == *user && order.last_command == command.0).then_some(order))
}

/// Store a changed order and move its key in the revision index.
fn write_changed(
    txn: &WriteTransaction,
    orders: &mut Table<u128, &[u8]>,
    order: &Order,
    previous_revision: u64,
) -> Result<(), StoreError> {
    orders.insert(order.id.as_u128(), codec::encode(order)?.as_slice())?;
    let mut by_revision = txn.open_table(ORDERS_BY_REVISION)?;
    by_revision.remove((previous_revision, order.id.as_u128()))?;
    by_revision.insert((order.revision, order.id.as_u128()), ())?;
    Ok(())
}

/// The user's order that still blocks a new one, if any.
fn active_order(
    orders: &Table<u128, &[u8]>,
    active: &Table<&str, u128>,
    user: &UserId,
    at: Timestamp,
) -> Result<Option<Order>, StoreError> {
    let Some(id) = active.get(user.as_str())?.map(|g| g.value()) else {
        return Ok(None);
    };
    let Some(raw) = orders.get(id)? else {
        return Ok(None);
    };
    let order: Order = codec::decode(raw.value())?;
    Ok(order.is_active(at).then_some(order))
}

/// The order `id` of `user`, if it may still be changed or cancelled at `at`.
/// Another user's order is reported as not found: its existence is not theirs to learn.
fn editable_order(
    orders: &Table<u128, &[u8]>,
    id: OrderId,
    user: &UserId,
    if_match: Option<&Precondition>,
    at: Timestamp,
    cutoff_ms: i64,
) -> Result<Order, Stop> {
    let Some(raw) = orders.get(id.as_u128())? else {
        return Err(Rejection::NotFound.into());
    };
    let order: Order = codec::decode(raw.value())?;
    if &order.user != user {
        return Err(Rejection::NotFound.into());
    }
    if let Some(precondition) = if_match {
        if !precondition.admits(order.version) {
            return Err(Rejection::PreconditionFailed(order.version).into());
        }
    }
    if order.status == OrderStatus::Cancelled {
        return Err(Rejection::NotActive.into());
    }
    if at.plus_millis(cutoff_ms) > order.spec.slot.start() {
        return Err(Rejection::CutoffPassed(cutoff_ms / 60_000).into());
    }
    Ok(order)
}

fn check_bookable(slot: Slot, at: Timestamp, cutoff_ms: i64) -> Result<(), Rejection> {
    if at.plus_millis(cutoff_ms) > slot.start() {
        return Err(Rejection::SlotTooSoon(slot, cutoff_ms / 60_000));
    }
    Ok(())
}

fn check_room(load: &Table<i64, u32>, slot: Slot, capacity: SlotCapacity) -> Result<(), Stop> {
    let booked = load.get(slot.start().millis())?.map_or(0, |g| g.value());
    if booked >= capacity.0 {
        return Err(Rejection::SlotFull(slot).into());
    }
    Ok(())
}

fn add_load(load: &mut Table<i64, u32>, slot: Slot, delta: i32) -> Result<(), StoreError> {
    let key = slot.start().millis();
    let booked = load.get(key)?.map_or(0, |g| g.value());
    let next = booked.saturating_add_signed(delta);
    if next == 0 {
        load.remove(key)?;
    } else {
        load.insert(key, next)?;
    }
    Ok(())
}

fn expire_idempotency_keys(txn: &WriteTransaction, at: Timestamp) -> Result<(), StoreError> {
    let mut expiry = txn.open_table(IDEMPOTENCY_EXPIRY)?;
    let mut due: Vec<(i64, String, String)> = Vec::new();
    // Everything that expired at or before `at`: keys below (at + 1 ms, "", "").
    for entry in expiry.range::<(i64, &str, &str)>(..(at.millis().saturating_add(1), "", ""))? {
        if due.len() == EXPIRED_KEYS_PER_COMMAND {
            break;
        }
        let (key, _) = entry?;
        let (expires, user, idem) = key.value();
        due.push((expires, user.to_owned(), idem.to_owned()));
    }
    if due.is_empty() {
        return Ok(());
    }
    let mut idempotency = txn.open_table(IDEMPOTENCY)?;
    for (expires, user, key) in &due {
        expiry.remove((*expires, user.as_str(), key.as_str()))?;
        idempotency.remove((user.as_str(), key.as_str()))?;
    }
    Ok(())
}
