//! Every redb table and key layout, in one place. Values are `codec` bytes unless noted.
//!
//! Invariants kept by `apply` (checked by the property tests):
//! - `ACTIVE[user]` names the user's newest placed order, if that order still exists; an order
//!   blocks a new one only while it is active (placed and its slot not yet over).
//! - `SLOT_LOAD[slot start]` equals the number of placed orders in that slot, and never exceeds
//!   the capacity that was in force when each of them was booked. Zero entries are removed.
//! - `USER_ORDERS` has one key per order, so a user's history is one key range, newest last.

use redb::{TableDefinition, TableError, WriteTransaction};

/// Bumped whenever a table, key layout or value encoding changes incompatibly.
pub const SCHEMA_VERSION: u64 = 1;

/// `schema_version` → u64, `last_revision` → u64 (the revision of the last applied command).
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub const META_SCHEMA_VERSION: &str = "schema_version";
pub const META_LAST_REVISION: &str = "last_revision";

/// order id (UUID as u128) → encoded `Order`.
pub const ORDERS: TableDefinition<u128, &[u8]> = TableDefinition::new("orders");

/// (user id, order id) → (). Order ids are UUID v7, so a user's orders sort by creation time.
pub const USER_ORDERS: TableDefinition<(&str, u128), ()> = TableDefinition::new("user_orders");

/// user id → order id of the order that may still be active.
pub const ACTIVE: TableDefinition<&str, u128> = TableDefinition::new("active_order");

/// slot start (ms since epoch) → number of placed orders in it.
pub const SLOT_LOAD: TableDefinition<i64, u32> = TableDefinition::new("slot_load");

/// (user id, idempotency key) → encoded `IdempotencyRecord`.
pub const IDEMPOTENCY: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("idempotency");

/// (expiry ms, user id, idempotency key) → (): lets `apply` expire keys oldest first.
pub const IDEMPOTENCY_EXPIRY: TableDefinition<(i64, &str, &str), ()> = TableDefinition::new("idempotency_expiry");

/// Create every table that does not exist yet, so readers never meet a missing one.
pub fn create_all(txn: &WriteTransaction) -> Result<(), TableError> {
    txn.open_table(META)?;
    txn.open_table(ORDERS)?;
    txn.open_table(USER_ORDERS)?;
    txn.open_table(ACTIVE)?;
    txn.open_table(SLOT_LOAD)?;
    txn.open_table(IDEMPOTENCY)?;
    txn.open_table(IDEMPOTENCY_EXPIRY)?;
    Ok(())
}
