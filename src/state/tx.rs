//! The tables of one write transaction, each opened once and kept open while the transaction
//! lasts. `apply` used to open a table each time it touched it (a create opened about twenty):
//! redb's `open_table` finds the table by name in the transaction's table tree and builds its
//! handle, about 1 µs each on this project's machines (measured: 21 tables with one read each,
//! 32 µs per command reopening, 8 µs with the tables open), on every replica, for every command.
//! The state machine now keeps one [`Tx`] for a whole batch of entries.
//!
//! Borrowing a table that is already borrowed is an error ([`StoreError::TableInUse`]), as
//! opening an open table is in redb (`TableAlreadyOpen`): the code that worked with redb's rule
//! works unchanged with this one.

use std::cell::{OnceCell, RefCell, RefMut};

use redb::{Table, WriteTransaction};

use super::tables::*;
use super::StoreError;

macro_rules! tables {
    ($($name:ident: $def:ident => <$k:ty, $v:ty>),* $(,)?) => {
        /// One write transaction's tables, opened on first use.
        pub struct Tx<'t> {
            txn: &'t WriteTransaction,
            $($name: OnceCell<RefCell<Table<'t, $k, $v>>>,)*
        }

        impl<'t> Tx<'t> {
            pub fn new(txn: &'t WriteTransaction) -> Self {
                Self { txn, $($name: OnceCell::new(),)* }
            }

            $(
            #[doc = concat!("`", stringify!($def), "`, opened on first use.")]
            pub fn $name(&self) -> Result<RefMut<'_, Table<'t, $k, $v>>, StoreError> {
                let cell = match self.$name.get() {
                    Some(cell) => cell,
                    None => {
                        let table = self.txn.open_table($def)?;
                        self.$name.get_or_init(|| RefCell::new(table))
                    }
                };
                cell.try_borrow_mut().map_err(|_| StoreError::TableInUse(stringify!($def)))
            }
            )*
        }
    };
}

tables! {
    meta: META => <&'static str, u64>,
    orders: ORDERS => <u128, &'static [u8]>,
    user_orders: USER_ORDERS => <(&'static str, u128), ()>,
    active: ACTIVE => <&'static str, u128>,
    store_slot_load: STORE_SLOT_LOAD => <(&'static str, i64), u32>,
    catalog_history: CATALOG_HISTORY => <u64, &'static [u8]>,
    stores: STORES => <&'static str, &'static [u8]>,
    waitlist: WAITLIST => <(&'static str, i64, u64), &'static [u8]>,
    waiting: WAITING => <&'static str, &'static [u8]>,
    catalog: CATALOG => <&'static str, &'static [u8]>,
    orders_by_revision: ORDERS_BY_REVISION => <(u64, u128), ()>,
    order_steps: ORDER_STEPS => <u128, &'static [u8]>,
    store_slot_orders: STORE_SLOT_ORDERS => <(&'static str, i64, u128), ()>,
    analytics_counts: ANALYTICS_COUNTS => <(u32, &'static str, &'static str), u64>,
    analytics_visitors: ANALYTICS_VISITORS => <u32, &'static [u8]>,
    analytics_seq: ANALYTICS_SEQ => <u64, u64>,
    idempotency: IDEMPOTENCY => <(&'static str, &'static str), &'static [u8]>,
    idempotency_expiry: IDEMPOTENCY_EXPIRY => <(i64, &'static str, &'static str), ()>,
}
