//! `check`: verify every invariant and index of the state, reporting each problem found.
//! Used offline (`pizza-orders check --data-dir`) and online (`GET /admin/check`).

use std::collections::{BTreeMap, BTreeSet};

use redb::{ReadTransaction, ReadableTable};
use serde::Serialize;

use super::tables::{
    self, ACTIVE, CATALOG, CATALOG_HISTORY, CATALOG_MENU, IDEMPOTENCY, IDEMPOTENCY_EXPIRY, META, ORDERS,
    ORDERS_BY_REVISION, ORDER_STEPS, STORES, STORE_SLOT_LOAD, STORE_SLOT_ORDERS, USER_ORDERS, WAITING, WAITLIST,
};
use super::{CatalogRecord, StoreError, WaitEntry};
use crate::codec;
use crate::domain::{Catalog, MenuDoc, Order, OrderStatus, Step, StoreDoc, Timestamp};

/// At most this many problems are listed; the count is always exact.
const MAX_LISTED: usize = 100;

#[derive(Debug, Default, Serialize)]
pub struct CheckReport {
    pub orders: u64,
    pub placed: u64,
    /// The catalog version in force (0: none yet).
    pub catalog_version: u64,
    /// Slots holding more orders than the capacity in force: closed by a catalog change that
    /// lowered their capacity after they were booked. Not damage; listed for the kitchen.
    pub slots_over_current_capacity: u64,
    pub problem_count: u64,
    pub problems: Vec<String>,
}

impl CheckReport {
    fn problem(&mut self, text: String) {
        self.problem_count += 1;
        if self.problems.len() < MAX_LISTED {
            self.problems.push(text);
        }
    }

    pub fn is_clean(&self) -> bool {
        self.problem_count == 0
    }
}

/// Check the state seen by `txn`; `now` decides which orders are active. Capacities come from
/// the catalog in the state, never from a node's config.
pub fn check_state(txn: &ReadTransaction, now: Timestamp) -> Result<CheckReport, StoreError> {
    let mut report = CheckReport::default();
    match txn.open_table(META)?.get(tables::META_SCHEMA_VERSION)?.map(|g| g.value()) {
        Some(tables::DATA_FORMAT) => {}
        other => report.problem(format!("data format is {other:?}; this build reads {}", tables::DATA_FORMAT)),
    }

    let mut orders: BTreeMap<u128, Order> = BTreeMap::new();
    for entry in txn.open_table(ORDERS)?.iter()? {
        let (key, value) = entry?;
        match codec::decode::<Order>(value.value()) {
            Ok(order) if order.id.as_u128() == key.value() => {
                orders.insert(key.value(), order);
            }
            Ok(order) => report.problem(format!("order stored under {} says its id is {}", key.value(), order.id)),
            Err(e) => report.problem(format!("order {:032x} is unreadable: {e}", key.value())),
        }
    }
    report.orders = orders.len() as u64;
    report.placed = orders.values().filter(|o| o.status == OrderStatus::Placed).count() as u64;

    let mut indexed: BTreeSet<u128> = BTreeSet::new();
    for entry in txn.open_table(USER_ORDERS)?.iter()? {
        let (key, _) = entry?;
        let (user, id) = key.value();
        match orders.get(&id) {
            Some(order) if order.user.as_str() == user => {
                indexed.insert(id);
            }
            Some(order) => report.problem(format!(
                "user index lists order {} under '{user}', but it belongs to '{}'",
                order.id, order.user
            )),
            None => report.problem(format!("user index lists order {id:032x} for '{user}', which does not exist")),
        }
    }
    for order in orders.values().filter(|o| !indexed.contains(&o.id.as_u128())) {
        report.problem(format!("order {} is missing from its user's index", order.id));
    }

    let mut by_revision: BTreeMap<u128, u64> = BTreeMap::new();
    for entry in txn.open_table(ORDERS_BY_REVISION)?.iter()? {
        let (key, _) = entry?;
        let (revision, id) = key.value();
        if by_revision.insert(id, revision).is_some() {
            report.problem(format!("order {id:032x} appears more than once in the revision index"));
        }
    }
    for order in orders.values() {
        match by_revision.get(&order.id.as_u128()) {
            Some(r) if *r == order.revision => {}
            Some(r) => report
                .problem(format!("revision index has order {} at {r}, the order says {}", order.id, order.revision)),
            None => report.problem(format!("order {} is missing from the revision index", order.id)),
        }
    }
    for id in by_revision.keys().filter(|id| !orders.contains_key(id)) {
        report.problem(format!("revision index lists order {id:032x}, which does not exist"));
    }

    // Per user: how many active orders, and the first of them (by id).
    let mut active_per_user: BTreeMap<&str, (u32, u128)> = BTreeMap::new();
    for order in orders.values().filter(|o| o.is_active(now)) {
        active_per_user.entry(order.user.as_str()).or_insert((0, order.id.as_u128())).0 += 1;
    }
    for (user, (count, _)) in active_per_user.iter().filter(|(_, (c, _))| *c > 1) {
        report.problem(format!("user '{user}' has {count} active orders"));
    }
    for entry in txn.open_table(ACTIVE)?.iter()? {
        let (user, id) = entry?;
        match orders.get(&id.value()) {
            Some(order) if order.user.as_str() == user.value() && order.status != OrderStatus::Cancelled => {}
            Some(order) => report.problem(format!(
                "active-order index names order {} for '{}', but it is {:?} and belongs to '{}'",
                order.id,
                user.value(),
                order.status,
                order.user
            )),
            None => report.problem(format!("active-order index names a missing order for '{}'", user.value())),
        }
    }
    let active_index = txn.open_table(ACTIVE)?;
    for (user, (_, active)) in active_per_user {
        let pointer = active_index.get(user)?.map(|g| g.value());
        if pointer != Some(active) {
            report.problem(format!("active-order index for '{user}' does not name the user's active order"));
        }
    }

    let catalog = check_catalog(txn, &mut report)?;
    let mut expected_load: BTreeMap<(String, i64), u32> = BTreeMap::new();
    // Every order that is not cancelled holds its place, delivered or not.
    for order in orders.values().filter(|o| o.status != OrderStatus::Cancelled) {
        let key = (order.store.as_str().to_owned(), order.spec.slot.start().millis());
        *expected_load.entry(key).or_default() += 1;
    }
    let mut stored_load: BTreeMap<(String, i64), u32> = BTreeMap::new();
    for entry in txn.open_table(STORE_SLOT_LOAD)?.iter()? {
        let (key, booked) = entry?;
        let (store, start) = key.value();
        stored_load.insert((store.to_owned(), start), booked.value());
    }
    for key in expected_load.keys().chain(stored_load.keys()).collect::<BTreeSet<_>>() {
        let (stored, expected) =
            (stored_load.get(key).copied().unwrap_or(0), expected_load.get(key).copied().unwrap_or(0));
        let (store, at) = (&key.0, Timestamp::from_millis(key.1));
        if stored != expected {
            report.problem(format!(
                "store '{store}' slot {at} load is {stored}, but {expected} orders hold places in it"
            ));
        }
        let capacity = catalog.as_ref().and_then(|c| c.store(store)).map(|s| s.calendar.capacity_at(at));
        if capacity.is_some_and(|c| expected > c) {
            report.slots_over_current_capacity += 1;
        }
    }

    check_waitlists(txn, &orders, &stored_load, catalog.as_ref(), now, &mut report)?;
    check_kitchen(txn, &orders, &mut report)?;

    let mut keys: BTreeSet<(String, String, i64)> = BTreeSet::new();
    for entry in txn.open_table(IDEMPOTENCY)?.iter()? {
        let (key, value) = entry?;
        let (user, idem) = key.value();
        match codec::decode::<super::apply::IdempotencyRecord>(value.value()) {
            Ok(record) => {
                keys.insert((user.to_owned(), idem.to_owned(), record.expires_at.millis()));
            }
            Err(e) => report.problem(format!("idempotency record ('{user}', '{idem}') is unreadable: {e}")),
        }
    }
    let mut expiries: BTreeSet<(String, String, i64)> = BTreeSet::new();
    for entry in txn.open_table(IDEMPOTENCY_EXPIRY)?.iter()? {
        let (key, _) = entry?;
        let (at, user, idem) = key.value();
        expiries.insert((user.to_owned(), idem.to_owned(), at));
    }
    for missing in keys.difference(&expiries) {
        report.problem(format!("idempotency key ('{}', '{}') has no expiry entry", missing.0, missing.1));
    }
    for orphan in expiries.difference(&keys) {
        report.problem(format!("expiry entry ('{}', '{}') names no idempotency key", orphan.0, orphan.1));
    }
    Ok(report)
}

/// Every order's kitchen history goes forward one step at a time from `placed`, its times never
/// decrease, the order's status is where it ends, and the kitchen's index holds exactly the
/// orders that are not cancelled.
fn check_kitchen(
    txn: &ReadTransaction,
    orders: &BTreeMap<u128, Order>,
    report: &mut CheckReport,
) -> Result<(), StoreError> {
    let mut histories: BTreeMap<u128, Vec<Step>> = BTreeMap::new();
    for entry in txn.open_table(ORDER_STEPS)?.iter()? {
        let (key, value) = entry?;
        match codec::decode::<Vec<Step>>(value.value()) {
            Ok(steps) if orders.contains_key(&key.value()) => {
                histories.insert(key.value(), steps);
            }
            Ok(_) => {
                report.problem(format!("kitchen steps are stored for order {:032x}, which does not exist", key.value()))
            }
            Err(e) => report.problem(format!("kitchen steps of order {:032x} are unreadable: {e}", key.value())),
        }
    }
    for order in orders.values() {
        let steps = histories.get(&order.id.as_u128()).map_or(&[][..], Vec::as_slice);
        let (mut status, mut at) = (OrderStatus::Placed, order.created_at);
        for step in steps {
            if !status.next_steps().contains(&step.status) {
                report.problem(format!(
                    "order {} goes from {} to {}, which is not a step forward",
                    order.id,
                    status.as_str(),
                    step.status.as_str()
                ));
            }
            if step.at < at {
                report.problem(format!(
                    "order {}: the {} step at {} is earlier than the step before it",
                    order.id,
                    step.status.as_str(),
                    step.at
                ));
            }
            if (step.status == OrderStatus::NotDelivered) != step.reason.is_some() {
                report.problem(format!(
                    "order {}: only not_delivered carries a reason ({})",
                    order.id,
                    step.status.as_str()
                ));
            }
            (status, at) = (step.status, step.at);
        }
        let expected = if steps.is_empty() {
            [OrderStatus::Placed, OrderStatus::Cancelled].contains(&order.status)
        } else {
            order.status == status
        };
        if !expected {
            report.problem(format!(
                "order {} is {} but its kitchen history ends at {}",
                order.id,
                order.status.as_str(),
                status.as_str()
            ));
        }
    }
    let mut indexed: BTreeSet<(String, i64, u128)> = BTreeSet::new();
    for entry in txn.open_table(STORE_SLOT_ORDERS)?.iter()? {
        let (key, _) = entry?;
        let (store, start, id) = key.value();
        indexed.insert((store.to_owned(), start, id));
    }
    let expected: BTreeSet<(String, i64, u128)> = orders
        .values()
        .filter(|o| o.status != OrderStatus::Cancelled)
        .map(|o| (o.store.as_str().to_owned(), o.spec.slot.start().millis(), o.id.as_u128()))
        .collect();
    for missing in expected.difference(&indexed) {
        report
            .problem(format!("order {:032x} is missing from the kitchen's index of store '{}'", missing.2, missing.0));
    }
    for extra in indexed.difference(&expected) {
        report.problem(format!(
            "the kitchen's index of store '{}' lists order {:032x}, which is cancelled, moved or missing",
            extra.0, extra.2
        ));
    }
    Ok(())
}

/// Each line entry and its user's pointer agree; no one waits while holding an active order;
/// no line that has not expired waits for a slot with room.
fn check_waitlists(
    txn: &ReadTransaction,
    orders: &BTreeMap<u128, Order>,
    loads: &BTreeMap<(String, i64), u32>,
    catalog: Option<&Catalog>,
    now: Timestamp,
    report: &mut CheckReport,
) -> Result<(), StoreError> {
    let last_seq = txn.open_table(META)?.get(tables::META_WAITLIST_SEQ)?.map_or(0, |g| g.value());
    let mut pointers: BTreeMap<String, (String, i64, u64)> = BTreeMap::new();
    for item in txn.open_table(WAITING)?.iter()? {
        let (user, raw) = item?;
        match codec::decode::<(String, i64, u64)>(raw.value()) {
            Ok(key) => {
                pointers.insert(user.value().to_owned(), key);
            }
            Err(e) => report.problem(format!("waitlist pointer of '{}' is unreadable: {e}", user.value())),
        }
    }
    let mut seen = BTreeSet::new();
    for item in txn.open_table(WAITLIST)?.iter()? {
        let (key, raw) = item?;
        let (store, start, seq) = key.value();
        let entry = match codec::decode::<WaitEntry>(raw.value()) {
            Ok(entry) => entry,
            Err(e) => {
                report.problem(format!("waitlist entry {seq} of store '{store}' is unreadable: {e}"));
                continue;
            }
        };
        let at = Timestamp::from_millis(start);
        if entry.seq != seq || entry.store.as_str() != store || entry.spec.slot.start() != at || seq > last_seq {
            report.problem(format!("waitlist entry {seq} of store '{store}' at {at} disagrees with its key"));
        }
        if pointers.get(entry.user.as_str()) != Some(&(store.to_owned(), start, seq)) {
            report
                .problem(format!("'{}' is in the line for {at} but their waitlist pointer says otherwise", entry.user));
        }
        seen.insert(entry.user.as_str().to_owned());
        if entry.expires_at <= now {
            continue;
        }
        if orders.values().any(|o| o.user == entry.user && o.is_active(now)) {
            report.problem(format!("'{}' waits for {at} while holding an active order", entry.user));
        }
        let booked = loads.get(&(store.to_owned(), start)).copied().unwrap_or(0);
        let capacity = catalog.and_then(|c| c.store(store)).map(|s| s.calendar.capacity_at(at));
        if capacity.is_some_and(|c| booked < c) {
            report.problem(format!("store '{store}' slot {at} has room ({booked} booked) while people wait for it"));
        }
    }
    for user in pointers.keys().filter(|u| !seen.contains(*u)) {
        report.problem(format!("waitlist pointer of '{user}' names no entry"));
    }
    Ok(())
}

/// The catalog tables agree with the record of the version in force; returns that catalog.
fn check_catalog(txn: &ReadTransaction, report: &mut CheckReport) -> Result<Option<Catalog>, StoreError> {
    let version = super::catalog::read_version(txn)?;
    report.catalog_version = version;
    let history: Vec<u64> =
        txn.open_table(CATALOG_HISTORY)?.iter()?.map(|e| e.map(|(k, _)| k.value())).collect::<Result<_, _>>()?;
    if history != (1..=version).collect::<Vec<_>>() {
        report.problem(format!("catalog history holds versions {history:?}, but version {version} is in force"));
    }
    if version == 0 {
        return Ok(None);
    }
    let Some(record): Option<CatalogRecord> = super::catalog::record(txn, version)? else {
        return Ok(None);
    };
    let mut stores: BTreeMap<String, StoreDoc> = BTreeMap::new();
    for entry in txn.open_table(STORES)?.iter()? {
        let (id, raw) = entry?;
        match super::catalog::decode_store(raw.value()) {
            Ok(doc) => {
                stores.insert(id.value().to_owned(), doc);
            }
            Err(e) => report.problem(format!("store row '{}' is unreadable: {e}", id.value())),
        }
    }
    let recorded: BTreeMap<String, StoreDoc> =
        record.catalog.stores.iter().map(|s| (s.id.clone(), s.clone())).collect();
    if stores != recorded {
        report.problem(format!("the store rows differ from catalog version {version}"));
    }
    let rows = txn.open_table(CATALOG)?;
    let menu = rows.get(CATALOG_MENU)?.map(|g| super::catalog::decode_menu(g.value()));
    if !matches!(&menu, Some(Ok(m)) if *m == record.catalog.menu) {
        report.problem(format!("the menu row differs from catalog version {version}"));
    }
    let mut named: BTreeMap<String, MenuDoc> = BTreeMap::new();
    for (name, raw) in super::catalog::named_menu_rows(&rows)? {
        match super::catalog::decode_menu(&raw) {
            Ok(doc) => {
                named.insert(name, doc);
            }
            Err(e) => report.problem(format!("menu row '{}' is unreadable: {e}", super::catalog::menu_key(&name))),
        }
    }
    if named != record.catalog.menus {
        report.problem(format!("the named menus' rows differ from catalog version {version}"));
    }
    match record.catalog.check() {
        Ok(catalog) => Ok(Some(catalog)),
        Err(e) => {
            report.problem(format!("catalog version {version} is invalid: {e}"));
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Store;
    use redb::ReadableDatabase;

    #[test]
    fn a_broken_index_is_reported_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let db = store.shared_database();
        let txn = db.begin_write().unwrap();
        txn.open_table(STORE_SLOT_LOAD).unwrap().insert(("main", 1_800_000_000_000), 3).unwrap();
        txn.open_table(ACTIVE).unwrap().insert("ghost", 7u128).unwrap();
        txn.commit().unwrap();
        let report = check_state(&db.begin_read().unwrap(), Timestamp::now()).unwrap();
        assert_eq!(report.problem_count, 2, "{:?}", report.problems);
        assert!(report.problems.iter().any(|p| p.contains("load is 3, but 0")));
        assert!(report.problems.iter().any(|p| p.contains("'ghost'")));
    }

    #[test]
    fn kitchen_steps_and_index_entries_of_missing_orders_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let db = store.shared_database();
        let txn = db.begin_write().unwrap();
        let steps = vec![Step {
            status: OrderStatus::Preparing,
            at: Timestamp::from_millis(1_800_000_000_000),
            by: crate::domain::UserId::parse("ana").unwrap(),
            reason: None,
        }];
        txn.open_table(ORDER_STEPS).unwrap().insert(9u128, codec::encode(&steps).unwrap().as_slice()).unwrap();
        txn.open_table(STORE_SLOT_ORDERS).unwrap().insert(("main", 1_800_000_000_000, 9u128), ()).unwrap();
        txn.commit().unwrap();
        let report = check_state(&db.begin_read().unwrap(), Timestamp::now()).unwrap();
        assert_eq!(report.problem_count, 2, "{:?}", report.problems);
        assert!(report.problems.iter().any(|p| p.contains("kitchen steps are stored for order")));
        assert!(report.problems.iter().any(|p| p.contains("kitchen's index of store 'main' lists order")));
    }
}
