//! Data format 4 → 5: one kitchen becomes the store "main". 5 → 6: the kitchen's index of
//! orders by store and slot is built from the orders (nothing else changes: format 5's orders
//! are `placed` or `cancelled`, which format 6 reads as they are).
//!
//! Format 4 stored orders without a store and counted slot loads by slot alone. Converting
//! rewrites every order (and every idempotency record, which holds one) with the store
//! `main`, moves the loads under that store, and sets the format, in one durable transaction:
//! a crash leaves either format 4 (converted again at the next start) or format 5. The
//! catalog itself is not made here: the first leader seeds it through Raft, as for a new
//! cluster, so every replica gets the same one.

use redb::{Database, ReadableDatabase, ReadableTable, TableHandle};
use serde::{Deserialize, Serialize};

use super::tables::{self, IDEMPOTENCY, META, META_SCHEMA_VERSION, ORDERS, SLOT_LOAD_V4, STORE_SLOT_LOAD};
use super::StoreError;
use crate::codec;
use crate::domain::{
    DeliveryPoint, Order, OrderId, OrderSpec, OrderStatus, OrderVersion, Price, StoreId, Timestamp, UserId,
};

/// The store that data format 4's one kitchen becomes, and that a catalog made of a config's
/// `[menu]` and `[slots]` holds.
pub const LEGACY_STORE_ID: &str = "main";

pub(super) fn legacy_store() -> StoreId {
    StoreId::parse(LEGACY_STORE_ID).unwrap_or_else(|_| unreachable!("'main' is a valid store id"))
}

/// An order as data format 4 stored it.
#[derive(Serialize, Deserialize)]
struct OrderV4 {
    id: OrderId,
    user: UserId,
    spec: OrderSpec,
    price: Price,
    status: OrderStatus,
    version: OrderVersion,
    created_at: Timestamp,
    updated_at: Timestamp,
    revision: u64,
    last_command: u128,
}

#[derive(Serialize, Deserialize)]
struct IdempotencyRecordV4 {
    fingerprint: [u8; 32],
    expires_at: Timestamp,
    order: OrderV4,
}

impl OrderV4 {
    fn upgrade(self, cutoff_ms: i64) -> Order {
        Order {
            id: self.id,
            user: self.user,
            spec: self.spec,
            price: self.price,
            status: self.status,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
            revision: self.revision,
            last_command: self.last_command,
            store: legacy_store(),
            delivery: DeliveryPoint::default(),
            cutoff_ms,
            catalog_version: 0,
        }
    }
}

/// What a conversion did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Converted {
    pub orders: u64,
    pub slots: u64,
}

/// Convert a data format 4 state to format 5 (a no-op on format 5). `cutoff_ms` is the
/// cutoff format 4's orders were taken under (its config's `slots.cutoff_minutes`): each
/// converted order keeps it, as every order now does.
pub fn convert_to_stores(db: &Database, cutoff_ms: i64) -> Result<Option<Converted>, StoreError> {
    let format = db.begin_read()?.open_table(META)?.get(META_SCHEMA_VERSION)?.map(|v| v.value());
    if format != Some(tables::DATA_FORMAT_SEGMENT_LOG) {
        return Ok(None);
    }
    let mut done = Converted::default();
    let txn = db.begin_write()?;
    {
        let mut orders = txn.open_table(ORDERS)?;
        let old: Vec<(u128, Vec<u8>)> =
            orders.iter()?.map(|e| e.map(|(k, v)| (k.value(), v.value().to_vec()))).collect::<Result<_, _>>()?;
        for (id, raw) in old {
            let order = codec::decode::<OrderV4>(&raw)?.upgrade(cutoff_ms);
            orders.insert(id, codec::encode(&order)?.as_slice())?;
            done.orders += 1;
        }
        let mut idempotency = txn.open_table(IDEMPOTENCY)?;
        let old: Vec<((String, String), Vec<u8>)> = idempotency
            .iter()?
            .map(|e| {
                e.map(|(k, v)| {
                    let (user, key) = k.value();
                    ((user.to_owned(), key.to_owned()), v.value().to_vec())
                })
            })
            .collect::<Result<_, _>>()?;
        for ((user, key), raw) in old {
            let record = codec::decode::<IdempotencyRecordV4>(&raw)?;
            let upgraded = super::apply::IdempotencyRecord {
                fingerprint: record.fingerprint,
                expires_at: record.expires_at,
                order: record.order.upgrade(cutoff_ms),
            };
            idempotency.insert((user.as_str(), key.as_str()), codec::encode(&upgraded)?.as_slice())?;
        }
        let has_old_loads = txn.list_tables()?.any(|t| t.name() == SLOT_LOAD_V4.name());
        if has_old_loads {
            let old: Vec<(i64, u32)> = txn
                .open_table(SLOT_LOAD_V4)?
                .iter()?
                .map(|e| e.map(|(k, v)| (k.value(), v.value())))
                .collect::<Result<_, _>>()?;
            let mut loads = txn.open_table(STORE_SLOT_LOAD)?;
            for (start, booked) in old {
                loads.insert((LEGACY_STORE_ID, start), booked)?;
                done.slots += 1;
            }
        }
        if has_old_loads {
            txn.delete_table(SLOT_LOAD_V4)?;
        }
    }
    tables::create_all(&txn)?;
    txn.open_table(META)?.insert(META_SCHEMA_VERSION, tables::DATA_FORMAT_STORES)?;
    txn.commit()?;
    Ok(Some(done))
}

/// Convert a data format 5 state to format 6 (a no-op on format 6): index every order that is
/// not cancelled under its store and slot, in one durable transaction. Returns how many.
pub fn convert_to_kitchen(db: &Database) -> Result<Option<u64>, StoreError> {
    let format = db.begin_read()?.open_table(META)?.get(META_SCHEMA_VERSION)?.map(|v| v.value());
    if format != Some(tables::DATA_FORMAT_STORES) {
        return Ok(None);
    }
    let txn = db.begin_write()?;
    tables::create_all(&txn)?;
    let indexed = rebuild_kitchen_index(&txn)?;
    txn.open_table(META)?.insert(META_SCHEMA_VERSION, tables::DATA_FORMAT)?;
    txn.commit()?;
    Ok(Some(indexed))
}

/// Make `STORE_SLOT_ORDERS` hold exactly the orders that are not cancelled (after a conversion,
/// or a snapshot of schema 3, which does not carry it).
pub(super) fn rebuild_kitchen_index(txn: &redb::WriteTransaction) -> Result<u64, StoreError> {
    let mut index = txn.open_table(tables::STORE_SLOT_ORDERS)?;
    index.retain(|_, _| false)?;
    let mut indexed = 0;
    for entry in txn.open_table(ORDERS)?.iter()? {
        let (_, raw) = entry?;
        let order: Order = codec::decode(raw.value())?;
        if order.status != OrderStatus::Cancelled {
            index.insert((order.store.as_str(), order.spec.slot.start().millis(), order.id.as_u128()), ())?;
            indexed += 1;
        }
    }
    Ok(indexed)
}
