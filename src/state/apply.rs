//! `apply`: the only code that changes orders.
//!
//! Deterministic: it reads no clock, draws no random number and makes no I/O decision; the
//! command carries the time, ids and rules. Every check runs before the first write, so a
//! rejected command leaves the transaction exactly as it found it and the other commands of
//! its batch are unaffected.

use redb::{ReadableTable, Table, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::command::{
    AdvanceOrder, ChangeOrder, Command, CommandId, IdempotencyClaim, LegacyChangeOrder, LegacyPlaceOrder, Outcome,
    PlaceOrder, Precondition, Rejection, SetCatalog, SlotCapacity,
};
use super::tx::Tx;
use super::{catalog, migrate, waitlist, StoreError};
use crate::codec;
use crate::domain::{
    DeliveryPoint, Order, OrderId, OrderSpec, OrderStatus, OrderVersion, Price, Slot, SlotError, Step, StoreCalendar,
    StoreId, Timestamp, UserId,
};

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
pub(super) enum Stop {
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
    apply_in(&Tx::new(txn), revision, command)
}

/// [`apply`] with the tables of a transaction kept open across commands (the state machine
/// applies a batch of entries in one transaction with one [`Tx`]).
pub fn apply_in(txn: &Tx, revision: u64, command: &Command) -> Result<Applied, StoreError> {
    expire_idempotency_keys(txn, command.at())?;
    let result = match command {
        Command::PlaceOrder(c) => place_in_store(txn, revision, c),
        Command::ChangeOrder(c) => change_in_store(txn, revision, c).map(Outcome::Changed),
        Command::CancelOrder(c) => {
            let cancel = Cancel { command_id: c.command_id, order_id: c.order_id, user: &c.user, at: c.at };
            cancel_order(txn, revision, &cancel, c.if_match.as_ref(), None).map(Outcome::Cancelled)
        }
        Command::SetCatalog(c) => set_catalog(txn, revision, c),
        Command::SetCatalogV2(c) => set_catalog(txn, revision, &c.clone().into()),
        Command::JoinWaitlist(c) => waitlist::join(txn, c, |txn| {
            let booking = booking_in_store(txn, c.at, &c.spec, &c.store, &c.delivery, c.catalog_version, None)?;
            Ok(waitlist::JoinRules {
                capacity: booking.capacity.0,
                cutoff_ms: booking.cutoff_ms,
                price: booking.price,
                catalog_version: booking.catalog_version,
            })
        }),
        Command::LeaveWaitlist(c) => waitlist::leave(txn, &c.user),
        Command::AdvanceOrder(c) => advance(txn, revision, c),
        Command::RecordAnalytics(c) => super::analytics::record(txn, c),
        Command::LegacyPlaceOrder(c) => legacy_place(txn, revision, c),
        Command::LegacyChangeOrder(c) => legacy_change(txn, revision, c).map(Outcome::Changed),
        Command::LegacyCancelOrder(c) => {
            let cancel = Cancel { command_id: c.command_id, order_id: c.order_id, user: &c.user, at: c.at };
            cancel_order(txn, revision, &cancel, c.if_match.as_ref(), Some(c.cutoff_ms)).map(Outcome::Cancelled)
        }
    };
    match result {
        Ok(outcome) => Ok(Ok(outcome)),
        Err(Stop::Rejected(rejection)) => Ok(Err(rejection)),
        Err(Stop::Store(e)) => Err(e),
    }
}

fn set_catalog(txn: &Tx, revision: u64, c: &SetCatalog) -> Result<Outcome, Stop> {
    let outcome = catalog::set_catalog(txn, c)?;
    super::changes::touched_all();
    // A raised capacity frees places: the first in each line gets them.
    waitlist::promote_everywhere(txn, revision, c.at)?;
    Ok(outcome)
}

/// The rules an order is booked under, resolved before anything is written.
struct Booking {
    /// The store's calendar, to offer alternatives when the slot is full (absent for data
    /// format 4's commands, which carried their rules).
    calendar: Option<std::sync::Arc<StoreCalendar>>,
    store: StoreId,
    delivery: DeliveryPoint,
    capacity: SlotCapacity,
    cutoff_ms: i64,
    price: Price,
    catalog_version: u64,
}

/// The booking for `spec` at `store` under the catalog in the state, which must be the one the
/// proposer read. Checks the slot against the store's calendar at `at`.
fn booking_in_store(
    txn: &Tx,
    at: Timestamp,
    spec: &OrderSpec,
    store: &StoreId,
    delivery: &DeliveryPoint,
    read_version: u64,
    before: Option<&Order>,
) -> Result<Booking, Stop> {
    let current = catalog::version(txn)?;
    if current == 0 {
        return Err(Rejection::NoCatalog.into());
    }
    if current != read_version {
        return Err(Rejection::CatalogChanged(current).into());
    }
    let (calendar, menu) = catalog::store_rules(txn, store)?;
    let price =
        menu.price(spec.size, spec.toppings).map_err(|e| Rejection::NotOnMenu(e.0.to_owned(), store.clone()))?;
    // A change that keeps its store and slot keeps its booking: a later catalog may have
    // closed that time, and the order still stands there.
    if let Some(order) = before.filter(|o| o.store == *store && o.spec.slot == spec.slot) {
        let capacity = SlotCapacity(u32::MAX);
        let (delivery, catalog_version) = (delivery.clone(), current);
        return Ok(Booking {
            calendar: None,
            store: store.clone(),
            delivery,
            capacity,
            cutoff_ms: order.cutoff_ms,
            price,
            catalog_version,
        });
    }
    let slot = calendar.bookable(spec.slot.start(), at).map_err(|e| match e {
        SlotError::TooSoon(..) => Rejection::SlotTooSoon(spec.slot, calendar.cutoff_ms() / 60_000),
        other => Rejection::SlotNotBookable(other.to_string()),
    })?;
    if slot != spec.slot {
        return Err(Rejection::SlotNotBookable(format!(
            "the slot at {} is not {} minutes long",
            slot.start(),
            calendar.slot_minutes()
        ))
        .into());
    }
    Ok(Booking {
        store: store.clone(),
        delivery: delivery.clone(),
        capacity: SlotCapacity(calendar.capacity_at(slot.start())),
        cutoff_ms: calendar.cutoff_ms(),
        price,
        catalog_version: current,
        calendar: Some(calendar),
    })
}

fn place_in_store(txn: &Tx, revision: u64, c: &PlaceOrder) -> Result<Outcome, Stop> {
    let new =
        NewOrder { order_id: c.order_id, user: &c.user, at: c.at, spec: &c.spec, idempotency: c.idempotency.as_ref() };
    place(txn, revision, &new, |txn| {
        booking_in_store(txn, c.at, &c.spec, &c.store, &c.delivery, c.catalog_version, None)
    })
}

fn legacy_place(txn: &Tx, revision: u64, c: &LegacyPlaceOrder) -> Result<Outcome, Stop> {
    let new =
        NewOrder { order_id: c.order_id, user: &c.user, at: c.at, spec: &c.spec, idempotency: c.idempotency.as_ref() };
    place(txn, revision, &new, |_| {
        check_bookable(c.spec.slot, c.at, c.cutoff_ms)?;
        Ok(legacy_booking(c.capacity, c.cutoff_ms, &c.price))
    })
}

/// Data format 4's rules, as its commands carried them, for its one kitchen.
fn legacy_booking(capacity: SlotCapacity, cutoff_ms: i64, price: &Price) -> Booking {
    Booking {
        calendar: None,
        store: migrate::legacy_store(),
        delivery: DeliveryPoint::default(),
        capacity,
        cutoff_ms,
        price: price.clone(),
        catalog_version: 0,
    }
}

struct NewOrder<'a> {
    order_id: OrderId,
    user: &'a UserId,
    at: Timestamp,
    spec: &'a OrderSpec,
    idempotency: Option<&'a IdempotencyClaim>,
}

fn place(
    txn: &Tx,
    revision: u64,
    c: &NewOrder,
    booking: impl FnOnce(&Tx) -> Result<Booking, Stop>,
) -> Result<Outcome, Stop> {
    let mut orders = txn.orders()?;
    // The same command proposed again after a leader change: answer as the first time.
    if let Some(raw) = orders.get(c.order_id.as_u128())? {
        let existing: Order = codec::decode(raw.value())?;
        if existing.user == *c.user && existing.created_at == c.at {
            return Ok(Outcome::Placed { order: existing, replayed: false });
        }
        return Err(Rejection::DuplicateOrderId(c.order_id).into());
    }
    let mut idempotency = txn.idempotency()?;
    // An expired record that has not been purged yet is replaced; its index entry goes too.
    let mut stale_expiry = None;
    if let Some(claim) = c.idempotency {
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
    let mut active = txn.active()?;
    if let Some(current) = active_order(&orders, &active, c.user, c.at)? {
        return Err(Rejection::OrderExists(current.id).into());
    }
    let booking = booking(txn)?;
    room_or_full(txn, &booking, c.spec.slot, c.at)?;
    // A customer who gets a place leaves any line they were in.
    waitlist::forget_user(txn, c.user)?;
    let mut load = txn.store_slot_load()?;

    let order = Order {
        id: c.order_id,
        user: c.user.clone(),
        spec: c.spec.clone(),
        price: booking.price,
        status: OrderStatus::Placed,
        version: OrderVersion::FIRST,
        created_at: c.at,
        updated_at: c.at,
        revision,
        last_command: c.order_id.as_u128(),
        store: booking.store,
        delivery: booking.delivery,
        cutoff_ms: booking.cutoff_ms,
        catalog_version: booking.catalog_version,
    };
    put_order(&mut orders, &order)?;
    txn.user_orders()?.insert((c.user.as_str(), order.id.as_u128()), ())?;
    txn.orders_by_revision()?.insert((revision, order.id.as_u128()), ())?;
    active.insert(c.user.as_str(), order.id.as_u128())?;
    add_load(&mut load, &order.store, c.spec.slot, 1)?;
    index_in_kitchen(txn, &order, true)?;
    if let Some(claim) = c.idempotency {
        let record =
            IdempotencyRecord { fingerprint: claim.fingerprint, expires_at: claim.expires_at, order: order.clone() };
        idempotency.insert((c.user.as_str(), claim.key.as_str()), codec::encode(&record)?.as_slice())?;
        let mut expiry = txn.idempotency_expiry()?;
        if let Some(stale) = stale_expiry {
            expiry.remove((stale.millis(), c.user.as_str(), claim.key.as_str()))?;
        }
        expiry.insert((claim.expires_at.millis(), c.user.as_str(), claim.key.as_str()), ())?;
    }
    Ok(Outcome::Placed { order, replayed: false })
}

struct Edit<'a> {
    command_id: CommandId,
    order_id: OrderId,
    user: &'a UserId,
    at: Timestamp,
    spec: &'a OrderSpec,
    if_match: Option<&'a Precondition>,
    /// Data format 4's commands carried the cutoff; newer orders keep their own.
    legacy_cutoff_ms: Option<i64>,
}

fn change_in_store(txn: &Tx, revision: u64, c: &ChangeOrder) -> Result<Order, Stop> {
    let edit = Edit {
        command_id: c.command_id,
        order_id: c.order_id,
        user: &c.user,
        at: c.at,
        spec: &c.spec,
        if_match: c.if_match.as_ref(),
        legacy_cutoff_ms: None,
    };
    change(txn, revision, &edit, |txn, before| {
        booking_in_store(txn, c.at, &c.spec, &c.store, &c.delivery, c.catalog_version, Some(before))
    })
}

fn legacy_change(txn: &Tx, revision: u64, c: &LegacyChangeOrder) -> Result<Order, Stop> {
    let edit = Edit {
        command_id: c.command_id,
        order_id: c.order_id,
        user: &c.user,
        at: c.at,
        spec: &c.spec,
        if_match: c.if_match.as_ref(),
        legacy_cutoff_ms: Some(c.cutoff_ms),
    };
    change(txn, revision, &edit, |_, _| Ok(legacy_booking(c.capacity, c.cutoff_ms, &c.price)))
}

fn change(
    txn: &Tx,
    revision: u64,
    c: &Edit,
    booking: impl FnOnce(&Tx, &Order) -> Result<Booking, Stop>,
) -> Result<Order, Stop> {
    let mut orders = txn.orders()?;
    if let Some(order) = already_applied(&orders, c.order_id, c.user, c.command_id)? {
        return Ok(order);
    }
    let current = editable_order(&orders, c.order_id, c.user, c.if_match, c.at, c.legacy_cutoff_ms)?;
    let current_revision = current.revision;
    let booking = booking(txn, &current)?;
    let moves = current.spec.slot != c.spec.slot || current.store != booking.store;
    if moves {
        if c.legacy_cutoff_ms.is_some() {
            check_bookable(c.spec.slot, c.at, booking.cutoff_ms)?;
        }
        room_or_full(txn, &booking, c.spec.slot, c.at)?;
    }
    let mut load = txn.store_slot_load()?;
    let (old_store, old_slot) = (current.store.clone(), current.spec.slot);
    let order = Order {
        spec: c.spec.clone(),
        price: booking.price,
        version: current.version.next(),
        // Never before the order's last change, whatever the proposer's clock says.
        updated_at: c.at.max(current.updated_at),
        revision,
        last_command: c.command_id.0,
        store: booking.store,
        delivery: booking.delivery,
        cutoff_ms: booking.cutoff_ms,
        catalog_version: booking.catalog_version,
        ..current
    };
    if moves {
        add_load(&mut load, &old_store, old_slot, -1)?;
        add_load(&mut load, &order.store, c.spec.slot, 1)?;
        let mut index = txn.store_slot_orders()?;
        index.remove((old_store.as_str(), old_slot.start().millis(), order.id.as_u128()))?;
        index.insert((order.store.as_str(), c.spec.slot.start().millis(), order.id.as_u128()), ())?;
    }
    write_changed(txn, &mut orders, &order, current_revision)?;
    drop((orders, load));
    if moves {
        waitlist::promote(txn, revision, old_store.as_str(), old_slot.start().millis(), c.at)?;
    }
    Ok(order)
}

struct Cancel<'a> {
    command_id: CommandId,
    order_id: OrderId,
    user: &'a UserId,
    at: Timestamp,
}

fn cancel_order(
    txn: &Tx,
    revision: u64,
    c: &Cancel,
    if_match: Option<&Precondition>,
    legacy_cutoff_ms: Option<i64>,
) -> Result<Order, Stop> {
    let mut orders = txn.orders()?;
    if let Some(order) = already_applied(&orders, c.order_id, c.user, c.command_id)? {
        return Ok(order);
    }
    let current = editable_order(&orders, c.order_id, c.user, if_match, c.at, legacy_cutoff_ms)?;
    let current_revision = current.revision;
    let order = Order {
        status: OrderStatus::Cancelled,
        version: current.version.next(),
        updated_at: c.at.max(current.updated_at),
        revision,
        last_command: c.command_id.0,
        ..current
    };
    add_load(&mut *txn.store_slot_load()?, &order.store, order.spec.slot, -1)?;
    index_in_kitchen(txn, &order, false)?;
    let mut active = txn.active()?;
    let points_here = active.get(c.user.as_str())?.map(|g| g.value()) == Some(order.id.as_u128());
    if points_here {
        active.remove(c.user.as_str())?;
    }
    write_changed(txn, &mut orders, &order, current_revision)?;
    drop((orders, active));
    waitlist::promote(txn, revision, order.store.as_str(), order.spec.slot.start().millis(), c.at)?;
    Ok(order)
}

/// Add `order` to (or take it off) the kitchen's index of its store and slot.
pub(super) fn index_in_kitchen(txn: &Tx, order: &Order, present: bool) -> Result<(), StoreError> {
    let mut index = txn.store_slot_orders()?;
    let key = (order.store.as_str(), order.spec.slot.start().millis(), order.id.as_u128());
    if present {
        index.insert(key, ())?;
    } else {
        index.remove(key)?;
    }
    Ok(())
}

/// An order's kitchen steps, oldest first.
pub(super) fn steps_of(txn: &Tx, id: OrderId) -> Result<Vec<Step>, StoreError> {
    read_steps(&*txn.order_steps()?, id.as_u128())
}

/// The kitchen steps `steps` (an `ORDER_STEPS` table, read or write) holds for order `id`;
/// none without a row.
pub(super) fn read_steps(steps: &impl ReadableTable<u128, &'static [u8]>, id: u128) -> Result<Vec<Step>, StoreError> {
    match steps.get(id)? {
        Some(raw) => Ok(codec::decode(raw.value())?),
        None => Ok(Vec::new()),
    }
}

/// A kitchen step. Checked before anything is written: the order is this store's, not
/// cancelled, and `to` is one of the next steps from where it is.
fn advance(txn: &Tx, revision: u64, c: &AdvanceOrder) -> Result<Outcome, Stop> {
    let mut orders = txn.orders()?;
    let Some(raw) = orders.get(c.order_id.as_u128())? else {
        return Err(Rejection::NotFound.into());
    };
    let current: Order = codec::decode(raw.value())?;
    drop(raw);
    // Another store's order does not exist for this store's staff.
    if current.store != c.store {
        return Err(Rejection::NotFound.into());
    }
    let mut history = steps_of(txn, c.order_id)?;
    // The same step proposed again after a leader change: answer as the first time.
    if current.last_command == c.command_id.0 {
        return Ok(Outcome::Advanced { order: current, history });
    }
    if current.status == OrderStatus::Cancelled {
        return Err(Rejection::NotActive.into());
    }
    if !current.status.next_steps().contains(&c.to) {
        return Err(Rejection::StepNotAllowed(current.status, c.to).into());
    }
    // A placed order no longer blocks its user once its window is over (they may have ordered
    // again since): taking it now would give them two active orders.
    if current.status == OrderStatus::Placed && !current.is_active(c.at) {
        return Err(Rejection::Lapsed.into());
    }
    let reason = match c.to {
        OrderStatus::NotDelivered => Some(c.reason.clone().ok_or(Rejection::ReasonRequired)?),
        _ => None,
    };
    // Never before the step it follows, whatever the proposing node's clock says.
    let previous = history.last().map_or(current.created_at, |s| s.at);
    let at = c.at.max(previous).max(current.updated_at);
    history.push(Step { status: c.to, at, by: c.staff.clone(), reason });
    let current_revision = current.revision;
    let order = Order {
        status: c.to,
        version: current.version.next(),
        updated_at: at,
        revision,
        last_command: c.command_id.0,
        ..current
    };
    // The order's row, written just above, already noted it for the cached answers.
    write_changed(txn, &mut orders, &order, current_revision)?;
    txn.order_steps()?.insert(order.id.as_u128(), codec::encode(&history)?.as_slice())?;
    Ok(Outcome::Advanced { order, history })
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

/// Write `order`, noting it for the cache of rendered answers: every write of an order goes
/// through here.
pub(super) fn put_order(orders: &mut Table<u128, &[u8]>, order: &Order) -> Result<(), StoreError> {
    orders.insert(order.id.as_u128(), codec::encode(order)?.as_slice())?;
    super::changes::order_written(order.id.as_u128());
    Ok(())
}

/// Store a changed order and move its key in the revision index.
fn write_changed(
    txn: &Tx,
    orders: &mut Table<u128, &[u8]>,
    order: &Order,
    previous_revision: u64,
) -> Result<(), StoreError> {
    put_order(orders, order)?;
    let mut by_revision = txn.orders_by_revision()?;
    by_revision.remove((previous_revision, order.id.as_u128()))?;
    by_revision.insert((order.revision, order.id.as_u128()), ())?;
    Ok(())
}

/// The user's order that still blocks a new one, if any.
pub(super) fn active_order(
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
    legacy_cutoff_ms: Option<i64>,
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
    if order.status.in_kitchen() {
        return Err(Rejection::InKitchen(order.status).into());
    }
    let cutoff_ms = legacy_cutoff_ms.unwrap_or(order.cutoff_ms);
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

/// Refuse a booking of `slot` that would go over its capacity, naming the nearest slots of the
/// same store that still have room (read in this same transaction).
fn room_or_full(txn: &Tx, booking: &Booking, slot: Slot, at: Timestamp) -> Result<(), Stop> {
    let booked = {
        let load = txn.store_slot_load()?;
        let key = (booking.store.as_str(), slot.start().millis());
        let booked = load.get(key)?.map_or(0, |g| g.value());
        booked
    };
    if booked < booking.capacity.0 {
        return Ok(());
    }
    let alternatives = match &booking.calendar {
        Some(calendar) => waitlist::alternatives(txn, &booking.store, calendar, slot, at)?,
        None => Vec::new(),
    };
    Err(Rejection::SlotFull(slot, alternatives).into())
}

fn add_load(load: &mut Table<(&str, i64), u32>, store: &StoreId, slot: Slot, delta: i32) -> Result<(), StoreError> {
    let key = (store.as_str(), slot.start().millis());
    super::changes::touched(key.0, key.1);
    let booked = load.get(key)?.map_or(0, |g| g.value());
    let next = booked.saturating_add_signed(delta);
    if next == 0 {
        load.remove(key)?;
    } else {
        load.insert(key, next)?;
    }
    Ok(())
}

fn expire_idempotency_keys(txn: &Tx, at: Timestamp) -> Result<(), StoreError> {
    let mut expiry = txn.idempotency_expiry()?;
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
    let mut idempotency = txn.idempotency()?;
    for (expires, user, key) in &due {
        expiry.remove((*expires, user.as_str(), key.as_str()))?;
        idempotency.remove((user.as_str(), key.as_str()))?;
    }
    Ok(())
}
