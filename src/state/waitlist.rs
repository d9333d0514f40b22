//! Waitlists: a fair line for a full slot instead of "try again".
//!
//! A customer joins the line of a full slot with the order they want; whenever a place in that
//! slot frees up (a cancel, an order moving away, a catalog raising the capacity), `apply`
//! places the first in line's order in the same transaction, at the price of their request.
//! Deterministic: every replica promotes the same customer. The line is in joining order (a
//! sequence number from the state), so positions are exact; an entry expires at the slot's
//! cutoff, when the slot can no longer be booked.

use redb::{ReadTransaction, ReadableTable, Table};

use super::apply::{active_order, Stop};
use super::command::{Outcome, PlaceOrder, Rejection, SlotRoom, WaitEntry};
use super::tables::{META_WAITLIST_SEQ, WAITING, WAITLIST};
use super::tx::Tx;
use super::StoreError;
use crate::codec;
use crate::domain::{Order, OrderStatus, OrderVersion, Slot, StoreCalendar, StoreId, Timestamp, UserId};

/// Most alternatives a `slot-full` answer lists.
const ALTERNATIVES: usize = 4;
/// How far before and after a full slot alternatives are looked for.
const ALTERNATIVES_BEFORE_MS: i64 = 6 * 3_600_000;
const ALTERNATIVES_AFTER_MS: i64 = 24 * 3_600_000;

/// Where a user's entry is: (store, slot start, sequence).
type EntryKey = (String, i64, u64);

/// The booking a join was checked against (from the catalog in force).
pub(super) struct JoinRules {
    pub capacity: u32,
    pub cutoff_ms: i64,
    pub price: crate::domain::Price,
    pub catalog_version: u64,
}

fn user_entry(txn: &Tx, user: &UserId) -> Result<Option<(EntryKey, WaitEntry)>, StoreError> {
    let waiting = txn.waiting()?;
    let Some(raw) = waiting.get(user.as_str())? else { return Ok(None) };
    let key: EntryKey = codec::decode(raw.value())?;
    let line = txn.waitlist()?;
    let entry = line.get((key.0.as_str(), key.1, key.2))?.map(|g| codec::decode::<WaitEntry>(g.value())).transpose()?;
    Ok(entry.map(|e| (key, e)))
}

fn remove(txn: &Tx, key: &EntryKey, user: &UserId) -> Result<(), StoreError> {
    txn.waitlist()?.remove((key.0.as_str(), key.1, key.2))?;
    txn.waiting()?.remove(user.as_str())?;
    Ok(())
}

/// 1-based place of `entry` in its line.
fn position_in(line: &Table<(&str, i64, u64), &[u8]>, entry: &WaitEntry) -> Result<u64, StoreError> {
    let (store, start) = (entry.store.as_str(), entry.spec.slot.start().millis());
    Ok(line.range((store, start, 0)..(store, start, entry.seq))?.count() as u64 + 1)
}

pub(super) fn join(
    txn: &Tx,
    c: &PlaceOrder,
    rules: impl FnOnce(&Tx) -> Result<JoinRules, Stop>,
) -> Result<Outcome, Stop> {
    if let Some((key, entry)) = user_entry(txn, &c.user)? {
        // The same command proposed again after a leader change.
        if entry.order_id == c.order_id {
            let position = position_in(&*txn.waitlist()?, &entry)?;
            return Ok(Outcome::Waiting { entry, position, replayed: false });
        }
        let claim = c.idempotency.as_ref();
        if entry.expires_at > c.at {
            if let (Some(claim), Some(key_used)) = (claim, &entry.idempotency_key) {
                if claim.key == *key_used {
                    if Some(claim.fingerprint) != entry.fingerprint {
                        return Err(Rejection::IdempotencyKeyReused.into());
                    }
                    let position = position_in(&*txn.waitlist()?, &entry)?;
                    return Ok(Outcome::Waiting { entry, position, replayed: true });
                }
            }
            return Err(Rejection::AlreadyWaiting(entry.spec.slot).into());
        }
        // That line is over: the old entry goes.
        remove(txn, &key, &c.user)?;
    }
    {
        let orders = txn.orders()?;
        let active = txn.active()?;
        if let Some(current) = active_order(&orders, &active, &c.user, c.at)? {
            return Err(Rejection::OrderExists(current.id).into());
        }
    }
    let rules = rules(txn)?;
    let booked = load(&*txn.store_slot_load()?, &c.store, c.spec.slot.start())?;
    if booked < rules.capacity {
        return Err(Rejection::SlotHasRoom(c.spec.slot).into());
    }
    let mut meta = txn.meta()?;
    let seq = meta.get(META_WAITLIST_SEQ)?.map_or(0, |g| g.value()) + 1;
    meta.insert(META_WAITLIST_SEQ, seq)?;
    let entry = WaitEntry {
        seq,
        order_id: c.order_id,
        user: c.user.clone(),
        spec: c.spec.clone(),
        store: c.store.clone(),
        delivery: c.delivery.clone(),
        price: rules.price,
        cutoff_ms: rules.cutoff_ms,
        catalog_version: rules.catalog_version,
        joined_at: c.at,
        expires_at: c.spec.slot.start().plus_millis(-rules.cutoff_ms),
        idempotency_key: c.idempotency.as_ref().map(|i| i.key.clone()),
        fingerprint: c.idempotency.as_ref().map(|i| i.fingerprint),
    };
    let start = c.spec.slot.start().millis();
    let mut line = txn.waitlist()?;
    line.insert((c.store.as_str(), start, seq), codec::encode(&entry)?.as_slice())?;
    let key: EntryKey = (c.store.as_str().to_owned(), start, seq);
    txn.waiting()?.insert(c.user.as_str(), codec::encode(&key)?.as_slice())?;
    let position = position_in(&line, &entry)?;
    Ok(Outcome::Waiting { entry, position, replayed: false })
}

pub(super) fn leave(txn: &Tx, user: &UserId) -> Result<Outcome, Stop> {
    let Some((key, entry)) = user_entry(txn, user)? else {
        return Err(Rejection::NotWaiting.into());
    };
    remove(txn, &key, user)?;
    Ok(Outcome::LeftWaitlist(entry))
}

/// A user who places an order leaves any line they were in.
pub(super) fn forget_user(txn: &Tx, user: &UserId) -> Result<(), StoreError> {
    if let Some((key, _)) = user_entry(txn, user)? {
        remove(txn, &key, user)?;
    }
    Ok(())
}

fn load(table: &Table<(&str, i64), u32>, store: &StoreId, start: Timestamp) -> Result<u32, StoreError> {
    Ok(table.get((store.as_str(), start.millis()))?.map_or(0, |g| g.value()))
}

/// The calendar of `store` in the catalog in force, if it is there.
fn calendar_of(txn: &Tx, store: &str) -> Result<Option<StoreCalendar>, StoreError> {
    let stores = txn.stores()?;
    let Some(raw) = stores.get(store)? else { return Ok(None) };
    let doc = super::catalog::decode_store(raw.value())?;
    Ok(doc.calendar().ok())
}

/// Give the free places of (`store`, slot at `start`) to the first in line, in order, each an
/// order placed now. Expired entries met on the way are dropped.
pub(super) fn promote(txn: &Tx, revision: u64, store: &str, start: i64, at: Timestamp) -> Result<(), StoreError> {
    let Some(calendar) = calendar_of(txn, store)? else { return Ok(()) };
    let capacity = calendar.capacity_at(Timestamp::from_millis(start));
    loop {
        let first = {
            let line = txn.waitlist()?;
            let mut range = line.range((store, start, 0)..=(store, start, u64::MAX))?;
            let first = match range.next() {
                Some(item) => {
                    let (key, raw) = item?;
                    let (_, _, seq) = key.value();
                    Some((seq, codec::decode::<WaitEntry>(raw.value())?))
                }
                None => None,
            };
            first
        };
        let Some((seq, entry)) = first else { return Ok(()) };
        let key: EntryKey = (store.to_owned(), start, seq);
        if entry.expires_at <= at {
            remove(txn, &key, &entry.user)?;
            continue;
        }
        let mut loads = txn.store_slot_load()?;
        let booked = load(&loads, &entry.store, entry.spec.slot.start())?;
        if booked >= capacity {
            return Ok(());
        }
        remove(txn, &key, &entry.user)?;
        let mut orders = txn.orders()?;
        let blocked = {
            let active = txn.active()?;
            active_order(&orders, &active, &entry.user, at)?.is_some()
                || orders.get(entry.order_id.as_u128())?.is_some()
        };
        if blocked {
            continue;
        }
        let order = Order {
            id: entry.order_id,
            user: entry.user.clone(),
            spec: entry.spec.clone(),
            price: entry.price.clone(),
            status: OrderStatus::Placed,
            version: OrderVersion::FIRST,
            created_at: at,
            updated_at: at,
            revision,
            last_command: entry.order_id.as_u128(),
            store: entry.store.clone(),
            delivery: entry.delivery.clone(),
            cutoff_ms: entry.cutoff_ms,
            catalog_version: entry.catalog_version,
        };
        super::apply::put_order(&mut orders, &order)?;
        txn.user_orders()?.insert((order.user.as_str(), order.id.as_u128()), ())?;
        txn.orders_by_revision()?.insert((revision, order.id.as_u128()), ())?;
        txn.active()?.insert(order.user.as_str(), order.id.as_u128())?;
        super::apply::index_in_kitchen(txn, &order, true)?;
        loads.insert((order.store.as_str(), start), booked + 1)?;
        super::changes::touched(order.store.as_str(), start);
    }
}

/// Promote in every line (after a catalog change may have raised capacities).
pub(super) fn promote_everywhere(txn: &Tx, revision: u64, at: Timestamp) -> Result<(), StoreError> {
    let mut lines: Vec<(String, i64)> = Vec::new();
    for item in txn.waitlist()?.iter()? {
        let (key, _) = item?;
        let (store, start, _) = key.value();
        if lines.last().is_none_or(|(s, t)| s != store || *t != start) {
            lines.push((store.to_owned(), start));
        }
    }
    for (store, start) in lines {
        promote(txn, revision, &store, start, at)?;
    }
    Ok(())
}

/// The slots nearest `full` with room, at most a few, soonest-distance first.
pub(super) fn alternatives(
    txn: &Tx,
    store: &StoreId,
    calendar: &StoreCalendar,
    full: Slot,
    at: Timestamp,
) -> Result<Vec<SlotRoom>, StoreError> {
    let from = full.start().plus_millis(-ALTERNATIVES_BEFORE_MS);
    let to = full.start().plus_millis(ALTERNATIVES_AFTER_MS);
    let loads = txn.store_slot_load()?;
    let mut rooms = Vec::new();
    for slot in calendar.bookable_between(from, to, at) {
        if slot == full {
            continue;
        }
        let remaining = calendar.capacity_at(slot.start()).saturating_sub(load(&loads, store, slot.start())?);
        if remaining > 0 {
            rooms.push(SlotRoom { slot, remaining });
        }
    }
    let distance = |r: &SlotRoom| (r.slot.start().millis() - full.start().millis()).abs();
    rooms.sort_by_key(|r| (distance(r), r.slot.start()));
    rooms.truncate(ALTERNATIVES);
    rooms.sort_by_key(|r| r.slot.start());
    Ok(rooms)
}

/// The user's entry and position, as a reader sees it (`None`: not waiting, or the line is over).
pub fn read_position(
    txn: &ReadTransaction,
    user: &UserId,
    now: Timestamp,
) -> Result<Option<(WaitEntry, u64)>, StoreError> {
    let waiting = txn.open_table(WAITING)?;
    let Some(raw) = waiting.get(user.as_str())? else { return Ok(None) };
    let key: EntryKey = codec::decode(raw.value())?;
    let line = txn.open_table(WAITLIST)?;
    let Some(raw) = line.get((key.0.as_str(), key.1, key.2))? else { return Ok(None) };
    let entry: WaitEntry = codec::decode(raw.value())?;
    if entry.expires_at <= now {
        return Ok(None);
    }
    let position = line.range((key.0.as_str(), key.1, 0)..(key.0.as_str(), key.1, key.2))?.count() as u64 + 1;
    Ok(Some((entry, position)))
}

#[cfg(test)]
mod tests {
    use redb::backends::InMemoryBackend;
    use redb::{Database, ReadableDatabase};

    use super::super::apply::apply;
    use super::super::command::*;
    use super::*;
    use crate::domain::{
        Address, CatalogDoc, DeliveryDoc, DeliveryPoint, MenuDoc, OrderId, OrderSpec, Size, SizePrices, StoreDoc,
        ToppingPrices, Toppings, WeekHours,
    };
    use crate::state::tables::ORDERS;

    const T0: i64 = 1_800_000_000_000;

    fn catalog(capacity: u32) -> CatalogDoc {
        CatalogDoc {
            menu: MenuDoc {
                currency: "EUR".into(),
                sizes: SizePrices::all(800, 1000, 1200),
                toppings: ToppingPrices::all(100, 100, 100),
                tax: None,
            },
            stores: vec![StoreDoc {
                id: "s".into(),
                name: "S".into(),
                address: String::new(),
                latitude: None,
                longitude: None,
                time_zone: "UTC".into(),
                slot_minutes: 30,
                capacity,
                cutoff_minutes: 30,
                horizon_days: 10,
                hours: WeekHours::every_day(vec!["00:00-24:00".into()]),
                closed_dates: Vec::new(),
                capacity_overrides: Vec::new(),
                delivery: DeliveryDoc { everywhere: true, ..DeliveryDoc::default() },
                menu: None,
            }],
            menus: Default::default(),
        }
    }

    struct World {
        db: Database,
        revision: u64,
        slot: Slot,
    }

    impl World {
        fn new() -> Self {
            let db = Database::builder().create_with_backend(InMemoryBackend::new()).unwrap();
            let txn = db.begin_write().unwrap();
            super::super::tables::create_all(&txn).unwrap();
            txn.commit().unwrap();
            let slot = catalog(1).stores[0]
                .calendar()
                .unwrap()
                .bookable(Timestamp::from_millis(T0 + 3_600_000), Timestamp::from_millis(T0))
                .unwrap();
            let mut world = Self { db, revision: 0, slot };
            world
                .run(Command::SetCatalog(SetCatalog {
                    at: Timestamp::from_millis(T0),
                    author: "t".into(),
                    expected_version: None,
                    seed: true,
                    catalog: catalog(1),
                }))
                .unwrap();
            world
        }

        fn run(&mut self, command: Command) -> Result<Outcome, Rejection> {
            self.revision += 1;
            let txn = self.db.begin_write().unwrap();
            let outcome = apply(&txn, self.revision, &command).unwrap();
            txn.commit().unwrap();
            outcome
        }

        fn spec(&self) -> OrderSpec {
            OrderSpec {
                address: Address::parse("1 A St").unwrap(),
                size: Size::Small,
                toppings: Toppings::default(),
                slot: self.slot,
            }
        }

        fn at(&self) -> Timestamp {
            Timestamp::from_millis(T0 + self.revision as i64 * 1000)
        }

        /// A new order of `user` at store `s` for the next command, read under catalog `version`.
        fn new_order(&self, user: &str, version: u64) -> PlaceOrder {
            let at = self.at();
            PlaceOrder {
                order_id: OrderId::new_at(at),
                user: UserId::parse(user).unwrap(),
                at,
                spec: self.spec(),
                store: StoreId::parse("s").unwrap(),
                delivery: DeliveryPoint::default(),
                catalog_version: version,
                idempotency: None,
            }
        }

        fn place(&mut self, user: &str) -> Result<Outcome, Rejection> {
            let order = self.new_order(user, 1);
            self.run(Command::PlaceOrder(order))
        }

        fn join(&mut self, user: &str, version: u64) -> Result<Outcome, Rejection> {
            let order = self.new_order(user, version);
            self.run(Command::JoinWaitlist(order))
        }

        fn position(&self, user: &str) -> Option<u64> {
            let txn = self.db.begin_read().unwrap();
            read_position(&txn, &UserId::parse(user).unwrap(), self.at()).unwrap().map(|(_, p)| p)
        }

        fn active(&self, user: &str) -> bool {
            let txn = self.db.begin_read().unwrap();
            let orders = txn.open_table(ORDERS).unwrap();
            orders.iter().unwrap().any(|e| {
                let order: Order = codec::decode(e.unwrap().1.value()).unwrap();
                order.user.as_str() == user && order.status == OrderStatus::Placed
            })
        }
    }

    #[test]
    fn a_freed_place_goes_to_the_first_in_line_and_a_raised_capacity_to_the_next() {
        let mut w = World::new();
        let first = w.place("ann").unwrap();
        let Outcome::Placed { order: ann, .. } = first else { panic!("{first:?}") };
        assert!(matches!(w.join("ann", 1), Err(Rejection::OrderExists(_))), "not while holding an order");
        assert!(matches!(w.place("bob"), Err(Rejection::SlotFull(..))));
        assert!(matches!(w.join("bob", 1), Ok(Outcome::Waiting { position: 1, .. })));
        assert!(matches!(w.join("cem", 1), Ok(Outcome::Waiting { position: 2, .. })));
        assert!(matches!(w.join("bob", 1), Err(Rejection::AlreadyWaiting(_))));
        assert_eq!((w.position("bob"), w.position("cem")), (Some(1), Some(2)));

        let at = w.at();
        w.run(Command::CancelOrder(CancelOrder {
            command_id: CommandId::new(),
            order_id: ann.id,
            user: UserId::parse("ann").unwrap(),
            at,
            if_match: None,
        }))
        .unwrap();
        assert!(w.active("bob"), "the first in line got the freed place");
        assert_eq!((w.position("bob"), w.position("cem")), (None, Some(1)));

        let at = w.at();
        let raised = w.run(Command::SetCatalog(SetCatalog {
            at,
            author: "t".into(),
            expected_version: Some(1),
            seed: false,
            catalog: catalog(2),
        }));
        assert!(matches!(raised, Ok(Outcome::Catalog { version: 2, .. })));
        assert!(w.active("cem"), "a raised capacity goes to the line");
        assert_eq!(w.position("cem"), None);
        // With room, there is nothing to wait for.
        let at = w.at();
        w.run(Command::SetCatalog(SetCatalog {
            at,
            author: "t".into(),
            expected_version: Some(2),
            seed: false,
            catalog: catalog(3),
        }))
        .unwrap();
        assert!(matches!(w.join("dan", 3), Err(Rejection::SlotHasRoom(_))));
        assert!(matches!(
            w.run(Command::LeaveWaitlist(LeaveWaitlist { user: UserId::parse("dan").unwrap(), at })),
            Err(Rejection::NotWaiting)
        ));
    }
}
