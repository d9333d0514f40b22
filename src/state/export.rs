//! Reading orders in bulk for billing: all of them, or those changed after a revision.

use redb::{ReadTransaction, ReadableTable};

use super::tables::{ORDERS, ORDERS_BY_REVISION};
use super::StoreError;
use crate::codec;
use crate::domain::Order;

/// Call `visit` for every order (in id order), or, with `since`, for every order whose last
/// change has a revision above `since` (in revision order). Returns how many were visited.
pub fn for_each_order(
    txn: &ReadTransaction,
    since: Option<u64>,
    mut visit: impl FnMut(&Order) -> Result<(), StoreError>,
) -> Result<u64, StoreError> {
    let orders = txn.open_table(ORDERS)?;
    let mut count = 0;
    match since {
        None => {
            for entry in orders.iter()? {
                let (_, value) = entry?;
                visit(&codec::decode(value.value())?)?;
                count += 1;
            }
        }
        Some(since) => {
            let index = txn.open_table(ORDERS_BY_REVISION)?;
            for entry in index.range((since.saturating_add(1), 0u128)..)? {
                let (key, _) = entry?;
                let (_, id) = key.value();
                if let Some(value) = orders.get(id)? {
                    visit(&codec::decode(value.value())?)?;
                    count += 1;
                }
            }
        }
    }
    Ok(count)
}
