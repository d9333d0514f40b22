//! The replicated catalog in the state: applying a new one (`SetCatalog`), and what `apply` and
//! the API read of the one in force.
//!
//! Invariants (with those in `tables`): the catalog in force is `CATALOG_HISTORY[version]`;
//! `STORES` holds exactly its stores and `CATALOG[menu]` its menu; versions count up from 1 with
//! no gaps; a store is never removed while it has orders for slots still to come.

use std::sync::{Arc, OnceLock};

use redb::{ReadTransaction, ReadableTable};

use super::apply::Stop;
use super::command::{CatalogRecord, Outcome, Rejection, SetCatalog};
use super::tables::{CATALOG_HISTORY, CATALOG_MENU, META, META_CATALOG_VERSION};
use super::tx::Tx;
use super::StoreError;
use crate::codec;
use crate::domain::{Menu, MenuDoc, StoreCalendar, StoreDoc, StoreId};

/// The longest slot a calendar allows: a load whose slot started this long before `at` may
/// still be under way.
const LONGEST_SLOT_MS: i64 = 240 * 60_000;

/// The catalog version in force; 0 when there is none yet.
pub(super) fn version(txn: &Tx) -> Result<u64, StoreError> {
    Ok(txn.meta()?.get(META_CATALOG_VERSION)?.map_or(0, |g| g.value()))
}

/// The catalog version a reader sees; 0 when there is none yet.
pub fn read_version(txn: &ReadTransaction) -> Result<u64, StoreError> {
    Ok(txn.open_table(META)?.get(META_CATALOG_VERSION)?.map_or(0, |g| g.value()))
}

/// The applied catalog `version`, if there is one.
pub fn record(txn: &ReadTransaction, version: u64) -> Result<Option<CatalogRecord>, StoreError> {
    let table = txn.open_table(CATALOG_HISTORY)?;
    let raw = table.get(version)?;
    Ok(raw.map(|g| codec::decode(g.value())).transpose()?)
}

/// Every catalog applied, oldest first.
pub fn history(txn: &ReadTransaction) -> Result<Vec<CatalogRecord>, StoreError> {
    let mut all = Vec::new();
    for entry in txn.open_table(CATALOG_HISTORY)?.iter()? {
        let (_, raw) = entry?;
        all.push(codec::decode(raw.value())?);
    }
    Ok(all)
}

/// Parsed calendars and menus by the exact bytes of their stored row. Parsing a calendar (its
/// time zone, shifts, dates) was 3 µs of every place (`cargo bench --bench apply --
/// apply_catalog_lookup`); a row's bytes determine its parse, so the cache cannot make two
/// replicas, or two databases in one process, decide differently.
struct ParsedRules {
    calendars: quick_cache::sync::Cache<Vec<u8>, Arc<StoreCalendar>>,
    menus: quick_cache::sync::Cache<Vec<u8>, Arc<Menu>>,
}

/// Stores (and menus) whose parse is kept; a chain's catalog fits many times over.
const PARSED_RULES: usize = 4096;

fn parsed() -> &'static ParsedRules {
    static PARSED: OnceLock<ParsedRules> = OnceLock::new();
    PARSED.get_or_init(|| ParsedRules {
        calendars: quick_cache::sync::Cache::new(PARSED_RULES),
        menus: quick_cache::sync::Cache::new(64),
    })
}

/// What `apply` needs to book an order at `store`: its calendar and the menu. Only the store's
/// own row is read and only its calendar parsed (not its delivery area), once per row content.
pub(super) fn store_rules(txn: &Tx, store: &StoreId) -> Result<(Arc<StoreCalendar>, Arc<Menu>), Stop> {
    // A stored catalog was checked when applied; failing now means the data is damaged.
    let damaged = |e: String| Stop::Store(StoreError::Codec(codec::CodecError::Malformed(e)));
    let row = {
        let stores = txn.stores()?;
        let Some(raw) = stores.get(store.as_str())? else {
            return Err(Rejection::UnknownStore(store.clone()).into());
        };
        raw.value().to_vec()
    };
    let calendar = match parsed().calendars.get(&row) {
        Some(calendar) => calendar,
        None => {
            let doc: StoreDoc = codec::decode(&row)?;
            let calendar = Arc::new(doc.calendar().map_err(|e| damaged(e.to_string()))?);
            parsed().calendars.insert(row, calendar.clone());
            calendar
        }
    };
    let menu_row = txn.catalog()?.get(CATALOG_MENU)?.map(|g| g.value().to_vec());
    let menu_row = menu_row.ok_or_else(|| damaged("the catalog has no menu".into()))?;
    let menu = match parsed().menus.get(&menu_row) {
        Some(menu) => menu,
        None => {
            let menu_doc: MenuDoc = codec::decode(&menu_row)?;
            let menu = Arc::new(menu_doc.parse().map_err(damaged)?);
            parsed().menus.insert(menu_row, menu.clone());
            menu
        }
    };
    Ok((calendar, menu))
}

pub(super) fn set_catalog(txn: &Tx, c: &SetCatalog) -> Result<Outcome, Stop> {
    let current = version(txn)?;
    if c.seed && current > 0 {
        return Ok(Outcome::Catalog { version: current, changed: false });
    }
    if c.expected_version.is_some_and(|v| v != current) {
        return Err(Rejection::CatalogVersionConflict(current).into());
    }
    let catalog = c.catalog.clone().check().map_err(|e| Rejection::InvalidCatalog(e.problems))?;
    let mut stores = txn.stores()?;
    let mut removed = Vec::new();
    for entry in stores.iter()? {
        let (id, _) = entry?;
        if catalog.store(id.value()).is_none() {
            removed.push(id.value().to_owned());
        }
    }
    let load = txn.store_slot_load()?;
    for id in &removed {
        let since = c.at.millis().saturating_sub(LONGEST_SLOT_MS);
        if load.range((id.as_str(), since)..=(id.as_str(), i64::MAX))?.next().is_some() {
            let id = StoreId::parse(id).map_err(|e| Stop::Store(StoreError::Io(e.to_string())))?;
            return Err(Rejection::StoreInUse(id).into());
        }
    }
    for id in &removed {
        stores.remove(id.as_str())?;
    }
    for doc in &c.catalog.stores {
        stores.insert(doc.id.as_str(), codec::encode(doc)?.as_slice())?;
    }
    txn.catalog()?.insert(CATALOG_MENU, codec::encode(&c.catalog.menu)?.as_slice())?;
    let next = current + 1;
    let record =
        CatalogRecord { version: next, applied_at: c.at, author: c.author.clone(), catalog: c.catalog.clone() };
    txn.catalog_history()?.insert(next, codec::encode(&record)?.as_slice())?;
    txn.meta()?.insert(META_CATALOG_VERSION, next)?;
    Ok(Outcome::Catalog { version: next, changed: true })
}
