//! Reading orders in bulk for billing: all of them, or those changed after a revision.

use redb::{ReadTransaction, ReadableTable};

use super::tables::{ORDERS, ORDERS_BY_REVISION, ORDER_STEPS, WAITLIST};
use super::{StoreError, WaitEntry};
use crate::codec;
use crate::domain::{Order, Step};

/// Call `visit` for every waitlist entry with its position (1 = next), line by line in
/// (store, slot) order, each line in joining order. Returns how many were visited. Entries
/// whose line has lapsed are included; their `expires_at` says so.
pub fn for_each_wait_entry(
    txn: &ReadTransaction,
    mut visit: impl FnMut(&WaitEntry, u64) -> Result<(), StoreError>,
) -> Result<u64, StoreError> {
    let mut count = 0;
    let mut line: Option<(String, i64)> = None;
    let mut position = 0;
    for entry in txn.open_table(WAITLIST)?.iter()? {
        let (key, value) = entry?;
        let (store, start, _) = key.value();
        if line.as_ref().is_none_or(|(s, t)| s != store || *t != start) {
            line = Some((store.to_owned(), start));
            position = 0;
        }
        position += 1;
        visit(&codec::decode(value.value())?, position)?;
        count += 1;
    }
    Ok(count)
}

/// Call `visit` for every order (in id order), or, with `since`, for every order whose last
/// change has a revision above `since` (in revision order), with its kitchen steps (a step
/// changes the order's revision, so an increment carries status changes). Returns how many
/// were visited.
pub fn for_each_order(
    txn: &ReadTransaction,
    since: Option<u64>,
    mut visit: impl FnMut(&Order, &[Step]) -> Result<(), StoreError>,
) -> Result<u64, StoreError> {
    let orders = txn.open_table(ORDERS)?;
    let steps = txn.open_table(ORDER_STEPS)?;
    let mut with_steps = |order: Order| -> Result<(), StoreError> {
        if !order.status.in_kitchen() {
            return visit(&order, &[]);
        }
        visit(&order, &super::apply::read_steps(&steps, order.id.as_u128())?)
    };
    let mut count = 0;
    match since {
        None => {
            for entry in orders.iter()? {
                let (_, value) = entry?;
                with_steps(codec::decode(value.value())?)?;
                count += 1;
            }
        }
        Some(since) => {
            let index = txn.open_table(ORDERS_BY_REVISION)?;
            for entry in index.range((since.saturating_add(1), 0u128)..)? {
                let (key, _) = entry?;
                let (_, id) = key.value();
                if let Some(value) = orders.get(id)? {
                    with_steps(codec::decode(value.value())?)?;
                    count += 1;
                }
            }
        }
    }
    Ok(count)
}
