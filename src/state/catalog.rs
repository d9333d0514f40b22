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
use crate::domain::catalog::v1;
use crate::domain::{Charge, Menu, MenuDoc, Order, StoreCalendar, StoreDoc, StoreId, Tax, Timestamp};

/// The longest slot a calendar allows: a load whose slot started this long before `at` may
/// still be under way.
const LONGEST_SLOT_MS: i64 = 240 * 60_000;

/// The catalog version in force; 0 when there is none yet.
pub fn version(txn: &Tx) -> Result<u64, StoreError> {
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
    Ok(raw.map(|g| decode_record(g.value())).transpose()?)
}

/// Every catalog applied, oldest first.
pub fn history(txn: &ReadTransaction) -> Result<Vec<CatalogRecord>, StoreError> {
    let mut all = Vec::new();
    for entry in txn.open_table(CATALOG_HISTORY)?.iter()? {
        let (_, raw) = entry?;
        all.push(decode_record(raw.value())?);
    }
    Ok(all)
}

// The catalog's rows in two forms (`codec::CATALOG_V2`): the form before menus and tax,
// byte for byte as v0.5.0 wrote it, whenever the value fits it; the current form otherwise.

/// The key of a named menu's row in `CATALOG` (the default menu's is `CATALOG_MENU`).
pub fn menu_key(name: &str) -> String {
    format!("{CATALOG_MENU}:{name}")
}

/// `value` in the form before menus and tax when it fits it (`old`), else at `CATALOG_V2`.
fn encode_either<Old: serde::Serialize, New: serde::Serialize>(
    old: Option<Old>,
    value: &New,
) -> Result<Vec<u8>, codec::CodecError> {
    match old {
        Some(old) => codec::encode(&old),
        None => codec::encode_as(codec::CATALOG_V2, value),
    }
}

/// A value written by [`encode_either`], in whichever form its bytes hold.
fn decode_either<Old, New>(bytes: &[u8]) -> Result<New, codec::CodecError>
where
    Old: serde::de::DeserializeOwned + Into<New>,
    New: serde::de::DeserializeOwned,
{
    match codec::version_of(bytes)? {
        codec::CATALOG_V2 => codec::decode_as(codec::CATALOG_V2, bytes),
        _ => codec::decode::<Old>(bytes).map(Into::into),
    }
}

pub(crate) fn encode_store(doc: &StoreDoc) -> Result<Vec<u8>, codec::CodecError> {
    encode_either(doc.to_v1(), doc)
}

pub(crate) fn decode_store(bytes: &[u8]) -> Result<StoreDoc, codec::CodecError> {
    decode_either::<v1::StoreDoc, _>(bytes)
}

pub(crate) fn encode_menu(doc: &MenuDoc) -> Result<Vec<u8>, codec::CodecError> {
    encode_either(doc.to_v1(), doc)
}

pub(crate) fn decode_menu(bytes: &[u8]) -> Result<MenuDoc, codec::CodecError> {
    decode_either::<v1::MenuDoc, _>(bytes)
}

/// The named menus' rows of the `catalog` table (`menu:NAME`), by name, as stored.
pub(crate) fn named_menu_rows(
    rows: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    let prefix = menu_key("");
    let mut found = Vec::new();
    for entry in rows.range(prefix.as_str()..)? {
        let (key, raw) = entry?;
        let Some(name) = key.value().strip_prefix(&prefix) else { break };
        found.push((name.to_owned(), raw.value().to_vec()));
    }
    Ok(found)
}

/// A history record in the form before menus and tax.
#[derive(serde::Serialize, serde::Deserialize)]
struct RecordV1 {
    version: u64,
    applied_at: Timestamp,
    author: String,
    catalog: v1::CatalogDoc,
}

impl From<RecordV1> for CatalogRecord {
    fn from(r: RecordV1) -> Self {
        Self { version: r.version, applied_at: r.applied_at, author: r.author, catalog: r.catalog.into() }
    }
}

pub(crate) fn encode_record(record: &CatalogRecord) -> Result<Vec<u8>, codec::CodecError> {
    let old = record.catalog.to_v1().map(|catalog| RecordV1 {
        version: record.version,
        applied_at: record.applied_at,
        author: record.author.clone(),
        catalog,
    });
    encode_either(old, record)
}

pub(crate) fn decode_record(bytes: &[u8]) -> Result<CatalogRecord, codec::CodecError> {
    decode_either::<RecordV1, _>(bytes)
}

/// Parsed calendars and menus by the exact bytes of their stored row. Parsing a calendar (its
/// time zone, shifts, dates) was 3 µs of every place (`cargo bench --bench apply --
/// apply_catalog_lookup`); a row's bytes determine its parse, so the cache cannot make two
/// replicas, or two databases in one process, decide differently.
struct ParsedRules {
    stores: quick_cache::sync::Cache<Vec<u8>, Arc<StoreRules>>,
    menus: quick_cache::sync::Cache<Vec<u8>, Arc<Menu>>,
}

/// What a store row says for booking: its calendar, and the key of its menu's row (`None`:
/// the default menu).
struct StoreRules {
    calendar: Arc<StoreCalendar>,
    menu: Option<String>,
}

/// Stores (and menus) whose parse is kept; a chain's catalog fits many times over.
const PARSED_RULES: usize = 4096;

fn parsed() -> &'static ParsedRules {
    static PARSED: OnceLock<ParsedRules> = OnceLock::new();
    PARSED.get_or_init(|| ParsedRules {
        stores: quick_cache::sync::Cache::new(PARSED_RULES),
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
    let rules = match parsed().stores.get(&row) {
        Some(rules) => rules,
        None => {
            let doc = decode_store(&row)?;
            let rules = Arc::new(StoreRules {
                calendar: Arc::new(doc.calendar().map_err(|e| damaged(e.to_string()))?),
                menu: doc.menu.as_deref().map(menu_key),
            });
            parsed().stores.insert(row, rules.clone());
            rules
        }
    };
    let key = rules.menu.as_deref().unwrap_or(CATALOG_MENU);
    let menu_row = txn.catalog()?.get(key)?.map(|g| g.value().to_vec());
    let menu_row = menu_row.ok_or_else(|| damaged(format!("the catalog has no row '{key}'")))?;
    let menu = match parsed().menus.get(&menu_row) {
        Some(menu) => menu,
        None => {
            let menu_doc = decode_menu(&menu_row)?;
            let menu = Arc::new(menu_doc.parse().map_err(damaged)?);
            parsed().menus.insert(menu_row, menu.clone());
            menu
        }
    };
    Ok((rules.calendar.clone(), menu))
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
        stores.insert(doc.id.as_str(), encode_store(doc)?.as_slice())?;
    }
    let mut rows = txn.catalog()?;
    rows.insert(CATALOG_MENU, encode_menu(&c.catalog.menu)?.as_slice())?;
    // Named menus: exactly this catalog's (a menu it dropped is no longer sold from).
    for (name, _) in named_menu_rows(&*rows)? {
        if !c.catalog.menus.contains_key(&name) {
            rows.remove(menu_key(&name).as_str())?;
        }
    }
    for (name, doc) in &c.catalog.menus {
        rows.insert(menu_key(name).as_str(), codec::encode_as(codec::CATALOG_V2, doc)?.as_slice())?;
    }
    drop(rows);
    let next = current + 1;
    let record =
        CatalogRecord { version: next, applied_at: c.at, author: c.author.clone(), catalog: c.catalog.clone() };
    txn.catalog_history()?.insert(next, encode_record(&record)?.as_slice())?;
    txn.meta()?.insert(META_CATALOG_VERSION, next)?;
    Ok(Outcome::Catalog { version: next, changed: true })
}

/// The menus of one applied catalog version: what an order placed or changed under it was
/// priced by.
pub struct PricedBy {
    default: Option<Menu>,
    named: std::collections::BTreeMap<String, Menu>,
    store_menus: std::collections::HashMap<String, String>,
}

impl PricedBy {
    pub fn of(record: &CatalogRecord) -> Self {
        let c = &record.catalog;
        Self {
            default: c.menu.parse().ok(),
            named: c.menus.iter().filter_map(|(name, m)| Some((name.clone(), m.parse().ok()?))).collect(),
            store_menus: c.stores.iter().filter_map(|s| Some((s.id.clone(), s.menu.clone()?))).collect(),
        }
    }

    fn menu_for(&self, store: &StoreId) -> Option<&Menu> {
        match self.store_menus.get(store.as_str()) {
            Some(name) => self.named.get(name),
            None => self.default.as_ref(),
        }
    }
}

/// `order`'s charge: net, tax and gross. The order keeps its gross (`price`), fixed when it was
/// placed or last changed under `order.catalog_version`; the split is that version's menu's
/// charge for the order's pizza, used when its gross and currency are the order's. An order
/// from before catalogs (version 0), or one whose price its menu does not give (none are
/// known), is shown untaxed: net = gross, tax 0.
pub fn charge_of(order: &Order, priced_by: Option<&PricedBy>) -> Charge {
    let priced = priced_by
        .and_then(|p| p.menu_for(&order.store))
        .and_then(|menu| menu.charge(order.spec.size, order.spec.toppings).ok())
        .filter(|c| c.gross == order.price.amount && c.currency == order.price.currency);
    priced.unwrap_or_else(|| Tax::default().charge(order.price.amount, &order.price.currency))
}

#[cfg(test)]
mod tests {
    use redb::ReadableDatabase;

    use super::super::apply::apply;
    use super::super::command::*;
    use super::*;
    use crate::domain::{
        Address, CatalogDoc, Cents, DeliveryPoint, OrderId, OrderSpec, Size, Topping, Toppings, UserId,
    };
    use crate::state::Store;

    const T0: i64 = 1_800_000_000_000;

    /// Two stores: `de` on the default menu (EUR, 7 % included), `uk` on a named one (GBP,
    /// 20 % included, no large size, no mushroom).
    fn catalog_toml(uk_large: bool) -> String {
        let large = if uk_large { ", large = 1400" } else { "" };
        format!(
            r#"
[menu]
currency = "EUR"
sizes = {{ small = 800, medium = 1050, large = 1300 }}
toppings = {{ extra_cheese = 150, pepperoni = 200, mushroom = 120 }}
tax = {{ rate = "7%", included = true }}

[menus.uk]
currency = "GBP"
sizes = {{ small = 900, medium = 1100{large} }}
toppings = {{ extra_cheese = 150, pepperoni = 200 }}
tax = {{ rate = "20%", included = true }}

[[stores]]
id = "de"
name = "DE"
time_zone = "UTC"
capacity = 10
hours = {{ mon = ["00:00-24:00"], tue = ["00:00-24:00"], wed = ["00:00-24:00"], thu = ["00:00-24:00"], fri = ["00:00-24:00"], sat = ["00:00-24:00"], sun = ["00:00-24:00"] }}
delivery = {{ everywhere = true }}

[[stores]]
id = "uk"
name = "UK"
menu = "uk"
time_zone = "UTC"
capacity = 10
hours = {{ mon = ["00:00-24:00"], tue = ["00:00-24:00"], wed = ["00:00-24:00"], thu = ["00:00-24:00"], fri = ["00:00-24:00"], sat = ["00:00-24:00"], sun = ["00:00-24:00"] }}
delivery = {{ postcodes = ["W1D*"] }}
"#
        )
    }

    struct World {
        store: Store,
        _dir: tempfile::TempDir,
        revision: u64,
    }

    impl World {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path()).unwrap();
            let mut world = Self { store, _dir: dir, revision: 0 };
            let doc = CatalogDoc::from_toml(&catalog_toml(true)).unwrap();
            world.run(&Command::set_catalog(world.set(doc))).unwrap();
            world
        }

        fn set(&self, catalog: CatalogDoc) -> SetCatalog {
            SetCatalog {
                at: Timestamp::from_millis(T0),
                author: "t".into(),
                expected_version: None,
                seed: false,
                catalog,
            }
        }

        fn run(&mut self, command: &Command) -> Result<Outcome, Rejection> {
            self.revision += 1;
            let db = self.store.shared_database();
            let txn = db.begin_write().unwrap();
            let outcome = apply(&txn, self.revision, command).unwrap();
            txn.commit().unwrap();
            outcome
        }

        fn place(&mut self, user: &str, store: &str, size: Size, toppings: &[Topping]) -> Result<Order, Rejection> {
            let at = Timestamp::from_millis(T0 + self.revision as i64);
            let version = read_version(&self.store.begin_read().unwrap()).unwrap();
            let calendar = CatalogDoc::from_toml(&catalog_toml(true)).unwrap().stores[0].calendar().unwrap();
            let slot = calendar.bookable(Timestamp::from_millis(T0 + 3 * 3_600_000), at).unwrap();
            let command = Command::PlaceOrder(PlaceOrder {
                order_id: OrderId::new_at(at),
                user: UserId::parse(user).unwrap(),
                at,
                spec: OrderSpec {
                    address: Address::parse("1 A St").unwrap(),
                    size,
                    toppings: Toppings::from_list(toppings).unwrap(),
                    slot,
                },
                store: StoreId::parse(store).unwrap(),
                delivery: DeliveryPoint::default(),
                catalog_version: version,
                idempotency: None,
            });
            match self.run(&command)? {
                Outcome::Placed { order, .. } => Ok(order),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn each_store_sells_from_its_menu_in_its_currency_with_its_tax() {
        let mut w = World::new();
        let de = w.place("ana", "de", Size::Medium, &[Topping::Pepperoni]).unwrap();
        assert_eq!((de.price.amount, de.price.currency.as_str()), (Cents(1250), "EUR"));
        let c = w.store.charge(&de).unwrap();
        // 1250 × 7 / 107 = 81.78 → 82.
        assert_eq!((c.net, c.tax, c.gross, c.rate.to_percent()), (Cents(1168), Cents(82), Cents(1250), "7%".into()));
        let uk = w.place("bob", "uk", Size::Small, &[Topping::ExtraCheese]).unwrap();
        assert_eq!((uk.price.amount, uk.price.currency.as_str()), (Cents(1050), "GBP"));
        let c = w.store.charge(&uk).unwrap();
        assert_eq!((c.net, c.tax, c.gross, c.included), (Cents(875), Cents(175), Cents(1050), true));
    }

    #[test]
    fn an_item_a_store_does_not_sell_is_refused_by_name() {
        let mut w = World::new();
        assert_eq!(
            w.place("ana", "uk", Size::Small, &[Topping::Mushroom]),
            Err(Rejection::NotOnMenu("mushroom".into(), StoreId::parse("uk").unwrap()))
        );
        // A catalog that stops selling large: refused from then on, at that store only.
        let doc = CatalogDoc::from_toml(&catalog_toml(false)).unwrap();
        w.run(&Command::set_catalog(w.set(doc))).unwrap();
        assert_eq!(
            w.place("bob", "uk", Size::Large, &[]),
            Err(Rejection::NotOnMenu("large".into(), StoreId::parse("uk").unwrap()))
        );
        assert!(w.place("bob", "de", Size::Large, &[]).is_ok());
    }

    #[test]
    fn a_price_change_leaves_placed_orders_and_their_tax_as_they_were() {
        let mut w = World::new();
        let before = w.place("ana", "de", Size::Small, &[]).unwrap();
        let mut doc = CatalogDoc::from_toml(&catalog_toml(true)).unwrap();
        doc.menu.sizes.small = Some(900);
        doc.menu.tax = Some(crate::domain::catalog::TaxDoc { rate: "19%".into(), included: true });
        w.run(&Command::set_catalog(w.set(doc))).unwrap();
        let c = w.store.charge(&w.store.order(before.id).unwrap().unwrap()).unwrap();
        // Still 800 at 7 %: 800 × 7 / 107 = 52.3 → 52.
        assert_eq!((c.gross, c.tax, c.rate.to_percent()), (Cents(800), Cents(52), "7%".into()));
        let after = w.place("bob", "de", Size::Small, &[]).unwrap();
        let c = w.store.charge(&after).unwrap();
        // 900 × 19 / 119 = 143.7 → 144.
        assert_eq!((c.gross, c.tax, c.rate.to_percent()), (Cents(900), Cents(144), "19%".into()));
    }

    #[test]
    fn a_catalog_without_menus_or_tax_is_replicated_and_stored_as_v0_5_0_wrote_it() {
        let text = catalog_toml(true).replace("tax = { rate = \"7%\", included = true }\n", "");
        let plain = CatalogDoc::from_toml(text.split("[menus.uk]").next().unwrap());
        // Only the default menu and no tax: the form before menus, under SetCatalog.
        let plain = CatalogDoc {
            stores: CatalogDoc::from_toml(&catalog_toml(true))
                .unwrap()
                .stores
                .into_iter()
                .filter(|s| s.menu.is_none())
                .collect(),
            ..plain.unwrap()
        };
        let set = SetCatalog {
            at: Timestamp::from_millis(T0),
            author: "t".into(),
            expected_version: None,
            seed: false,
            catalog: plain.clone(),
        };
        assert!(matches!(Command::set_catalog(set.clone()), Command::SetCatalog(_)));
        let bytes = codec::encode(&Command::SetCatalog(set.clone())).unwrap();
        assert_eq!(codec::decode::<Command>(&bytes).unwrap(), Command::SetCatalog(set.clone()));
        let v1 = plain.to_v1().unwrap();
        assert_eq!(CatalogDoc::from(v1.clone()), plain);
        assert_eq!(encode_store(&plain.stores[0]).unwrap(), codec::encode(&v1.stores[0]).unwrap());
        assert_eq!(encode_menu(&plain.menu).unwrap(), codec::encode(&v1.menu).unwrap());
        // With menus: SetCatalogV2, and its rows at format version 2, read back whole.
        let full = CatalogDoc::from_toml(&catalog_toml(true)).unwrap();
        let command = Command::set_catalog(SetCatalog { catalog: full.clone(), ..set.clone() });
        assert!(matches!(command, Command::SetCatalogV2(_)));
        assert_eq!(codec::decode::<Command>(&codec::encode(&command).unwrap()).unwrap(), command);
        assert!(codec::encode(&Command::SetCatalog(SetCatalog { catalog: full.clone(), ..set })).is_err());
        let uk = full.stores.iter().find(|s| s.id == "uk").unwrap();
        let row = encode_store(uk).unwrap();
        assert_eq!(row[0], codec::CATALOG_V2);
        assert_eq!(&decode_store(&row).unwrap(), uk);
        let record =
            CatalogRecord { version: 3, applied_at: Timestamp::from_millis(T0), author: "a".into(), catalog: full };
        assert_eq!(decode_record(&encode_record(&record).unwrap()).unwrap(), record);
    }

    #[test]
    fn the_check_finds_the_named_menus_as_applied() {
        let w = World::new();
        let db = w.store.shared_database();
        let report = super::super::check::check_state(&db.begin_read().unwrap(), Timestamp::from_millis(T0)).unwrap();
        assert_eq!(report.problem_count, 0, "{:?}", report.problems);
    }
}
