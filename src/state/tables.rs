//! Every redb table and key layout, in one place. Values are `codec` bytes unless noted.
//!
//! Invariants kept by `apply` (checked by the property tests):
//! - `ACTIVE[user]` names the user's newest order, if that order still exists; an order blocks
//!   a new one only while it is active (in the kitchen or on its way, or placed with its slot
//!   not yet over).
//! - `STORE_SLOT_LOAD[(store, slot start)]` equals the number of placed orders of that store in
//!   that slot, and never exceeds the capacity in force when each of them was booked (a later,
//!   lower capacity closes the slot and keeps its orders). Zero entries are removed.
//! - `WAITLIST` holds, per (store, slot), the line in joining order; `WAITING[user]` names the
//!   user's one entry and exists exactly when that entry does. A user never waits while holding
//!   an active order, and a slot with room never has a line that has not expired: whenever a
//!   place frees up, `apply` places the first in line in the same transaction.
//! - `STORES` and the `menu` row of `CATALOG` are the catalog `CATALOG_HISTORY[META
//!   catalog_version]` holds; version 0 (no row) means no catalog yet, and orders wait for one.
//! - `USER_ORDERS` has one key per order, so a user's history is one key range, newest last.
//! - `ORDERS_BY_REVISION` has one key per order: (its `revision`, its id).
//! - `STORE_SLOT_ORDERS` has exactly one key per order that is not cancelled, under its store
//!   and slot; `STORE_SLOT_LOAD` counts those keys (a delivered order keeps its place: only a
//!   cancel releases one).
//! - `ORDER_STEPS[id]` is the order's kitchen history: each step one forward from the last,
//!   times never decreasing, and the order's status is the last step's (`placed` or
//!   `cancelled` when there is none).

use redb::{TableDefinition, TableError, WriteTransaction};

/// Bumped whenever a state table, key layout or value encoding changes incompatibly; snapshots
/// and backups carry it.
pub const SCHEMA_VERSION: u64 = 4;
/// Snapshots and backups of schema 3 (before the kitchen's steps) are read too: they hold no
/// steps, and the kitchen's index is rebuilt from their orders.
pub const SCHEMA_VERSION_BEFORE_KITCHEN: u64 = 3;

/// The data directory's format, stored under `schema_version` in `meta` (builds before 3 check
/// it against their `SCHEMA_VERSION`, so they refuse a directory they cannot read): 5 keeps the
/// replicated catalog and keys orders and slot loads by store.
pub const DATA_FORMAT: u64 = 6;
/// Orders with only `placed` and `cancelled`, no kitchen steps or index; converted at start
/// (`state::migrate`: the index is built from the orders).
pub const DATA_FORMAT_STORES: u64 = 5;
/// The Raft log's entries in segment files (`raft-log/`) and its vote in `raft-log.redb`; one
/// kitchen, orders without a store. Converted at start (`state::migrate`).
pub const DATA_FORMAT_SEGMENT_LOG: u64 = 4;
/// The Raft log in `raft-log.redb`; converted at start.
pub const DATA_FORMAT_REDB_LOG: u64 = 3;
/// The Raft log inside `orders.redb`; converted at start (to 3, then 4).
pub const DATA_FORMAT_SHARED_LOG: u64 = 2;

/// `schema_version` → u64 (the data format above).
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub const META_SCHEMA_VERSION: &str = "schema_version";
/// The version of the catalog in force (absent: none yet).
pub const META_CATALOG_VERSION: &str = "catalog_version";
/// The sequence number of the last waitlist entry (absent: none yet).
pub const META_WAITLIST_SEQ: &str = "waitlist_seq";

/// order id (UUID as u128) → encoded `Order`.
pub const ORDERS: TableDefinition<u128, &[u8]> = TableDefinition::new("orders");

/// (user id, order id) → (). Order ids are UUID v7, so a user's orders sort by creation time.
pub const USER_ORDERS: TableDefinition<(&str, u128), ()> = TableDefinition::new("user_orders");

/// user id → order id of the order that may still be active.
pub const ACTIVE: TableDefinition<&str, u128> = TableDefinition::new("active_order");

/// Data format 4: slot start (ms since epoch) → number of placed orders in it. Converted.
pub const SLOT_LOAD_V4: TableDefinition<i64, u32> = TableDefinition::new("slot_load");

/// (store id, slot start in ms since epoch) → number of placed orders of that store in it.
pub const STORE_SLOT_LOAD: TableDefinition<(&str, i64), u32> = TableDefinition::new("store_slot_load");

/// catalog version → encoded `CatalogRecord`: every catalog ever applied, for audit.
pub const CATALOG_HISTORY: TableDefinition<u64, &[u8]> = TableDefinition::new("catalog_history");

/// store id → encoded `StoreDoc`, for the catalog in force: what `apply` reads per order.
pub const STORES: TableDefinition<&str, &[u8]> = TableDefinition::new("stores");

/// (store id, slot start ms, sequence) → encoded `WaitEntry`: each full slot's line, in the
/// order people joined it.
pub const WAITLIST: TableDefinition<(&str, i64, u64), &[u8]> = TableDefinition::new("waitlist");

/// user → encoded (store id, slot start ms, sequence) of the user's one entry.
pub const WAITING: TableDefinition<&str, &[u8]> = TableDefinition::new("waiting");

/// `menu` → encoded `MenuDoc` of the catalog in force.
pub const CATALOG: TableDefinition<&str, &[u8]> = TableDefinition::new("catalog");
pub const CATALOG_MENU: &str = "menu";

/// (revision of an order's last change, order id) → (): billing's incremental export reads
/// "everything changed after revision N" as one key range. One key per order.
pub const ORDERS_BY_REVISION: TableDefinition<(u64, u128), ()> = TableDefinition::new("orders_by_revision");

/// order id → encoded `Vec<Step>`: the kitchen's steps of an order, oldest first (no row: none
/// yet). Kept beside `ORDERS` so the order's own encoding did not change.
pub const ORDER_STEPS: TableDefinition<u128, &[u8]> = TableDefinition::new("order_steps");

/// (store id, slot start ms, order id) → (): every order of a store that is not cancelled, by
/// slot, so the kitchen's view of the next hours is one key range.
pub const STORE_SLOT_ORDERS: TableDefinition<(&str, i64, u128), ()> = TableDefinition::new("store_slot_orders");

/// (day, event, store id or "") → count: the web UI's beacons, summed over every node.
pub const ANALYTICS_COUNTS: TableDefinition<(u32, &str, &str), u64> = TableDefinition::new("analytics_counts");

/// day → encoded `VisitorSketch`: that day's distinct visitors.
pub const ANALYTICS_VISITORS: TableDefinition<u32, &[u8]> = TableDefinition::new("analytics_visitors");

/// node id → the sequence number of its last analytics batch applied.
pub const ANALYTICS_SEQ: TableDefinition<u64, u64> = TableDefinition::new("analytics_seq");

/// (user id, idempotency key) → encoded `IdempotencyRecord`.
pub const IDEMPOTENCY: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("idempotency");

/// (expiry ms, user id, idempotency key) → (): lets `apply` expire keys oldest first.
pub const IDEMPOTENCY_EXPIRY: TableDefinition<(i64, &str, &str), ()> = TableDefinition::new("idempotency_expiry");

/// Replication bookkeeping, opaque to `state`: written by `raft/` (codec bytes of Raft types).
/// `applied` (last applied log id) and `membership` are written in the same transaction as the
/// commands they cover, so "what was applied" and "the state" never disagree after a crash.
pub const REPLICATION: TableDefinition<&str, &[u8]> = TableDefinition::new("replication");

/// The Raft log: index → encoded entry. Owned by `raft/log_store.rs`, in its own file
/// (`raft-log.redb`); data directories written before that kept both tables in `orders.redb`.
pub const RAFT_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
/// Raft's durable variables: `vote`, `committed`, `last_purged` → encoded values.
pub const RAFT_META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");

/// Create every table that does not exist yet, so readers never meet a missing one.
pub fn create_all(txn: &WriteTransaction) -> Result<(), TableError> {
    txn.open_table(META)?;
    txn.open_table(ORDERS)?;
    txn.open_table(USER_ORDERS)?;
    txn.open_table(ORDERS_BY_REVISION)?;
    txn.open_table(ACTIVE)?;
    txn.open_table(STORE_SLOT_LOAD)?;
    txn.open_table(CATALOG_HISTORY)?;
    txn.open_table(STORES)?;
    txn.open_table(CATALOG)?;
    txn.open_table(IDEMPOTENCY)?;
    txn.open_table(IDEMPOTENCY_EXPIRY)?;
    txn.open_table(REPLICATION)?;
    txn.open_table(WAITLIST)?;
    txn.open_table(WAITING)?;
    txn.open_table(ORDER_STEPS)?;
    txn.open_table(STORE_SLOT_ORDERS)?;
    txn.open_table(ANALYTICS_COUNTS)?;
    txn.open_table(ANALYTICS_VISITORS)?;
    txn.open_table(ANALYTICS_SEQ)?;
    Ok(())
}
