//! The chain's catalog: the menu and its prices, and every store with its calendar and
//! delivery area. [`CatalogDoc`] is the form people write (a TOML file) and the form that is
//! replicated and stored; [`Catalog`] is the same, checked, with domain types. Checking is pure
//! and deterministic, so every replica that applies a document reaches the same catalog.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::calendar::{self, CalendarParts, CapacityOverride, OverrideDays, Shift, StoreCalendar};
use super::zone::{AreaShape, DeliveryArea, PostcodeRule};
use super::{Cents, Currency, DeliveryPoint, GeoPoint, Menu, StoreId, Tax, TaxRate};

/// Most stores one catalog may hold.
pub const MAX_STORES: usize = 10_000;

/// A catalog as written: `pizza-orders catalog show` prints one, `catalog apply` takes one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogDoc {
    /// The default menu: every store that names no menu sells from it.
    pub menu: MenuDoc,
    #[serde(default)]
    pub stores: Vec<StoreDoc>,
    /// Named menus (`[menus.london]`), each with its own currency, prices and tax; a store
    /// picks one with `menu = "london"`.
    #[serde(default)]
    pub menus: BTreeMap<String, MenuDoc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MenuDoc {
    /// ISO 4217; every amount below is in its minor unit (cents for EUR, yen for JPY, fils
    /// for KWD).
    pub currency: String,
    pub sizes: SizePrices,
    pub toppings: ToppingPrices,
    /// The tax on the whole order; none when left out.
    #[serde(default)]
    pub tax: Option<TaxDoc>,
}

/// The price per size in the currency's minor unit; a size left out is not sold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SizePrices {
    pub small: Option<u64>,
    pub medium: Option<u64>,
    pub large: Option<u64>,
}

/// The price added per topping in the currency's minor unit; a topping left out is not sold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ToppingPrices {
    pub extra_cheese: Option<u64>,
    pub pepperoni: Option<u64>,
    pub mushroom: Option<u64>,
}

impl SizePrices {
    /// Every size sold, at these prices.
    pub fn all(small: u64, medium: u64, large: u64) -> Self {
        Self { small: Some(small), medium: Some(medium), large: Some(large) }
    }
}

impl ToppingPrices {
    /// Every topping sold, at these prices.
    pub fn all(extra_cheese: u64, pepperoni: u64, mushroom: u64) -> Self {
        Self { extra_cheese: Some(extra_cheese), pepperoni: Some(pepperoni), mushroom: Some(mushroom) }
    }
}

/// `tax = { rate = "7%", included = true }`: the rate (at most four decimals) and whether the
/// menu's prices include it (VAT, GST) or it is added on top (US sales tax).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaxDoc {
    pub rate: String,
    pub included: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreDoc {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub address: String,
    /// The store's own location; needed for a radius area and for "nearest store".
    #[serde(default)]
    pub latitude: Option<f64>,
    #[serde(default)]
    pub longitude: Option<f64>,
    /// IANA name, such as `Europe/Berlin`; opening hours are local to it.
    pub time_zone: String,
    #[serde(default = "default_slot_minutes")]
    pub slot_minutes: i64,
    /// Pizzas per slot unless an override says otherwise.
    pub capacity: u32,
    #[serde(default = "default_cutoff")]
    pub cutoff_minutes: i64,
    #[serde(default = "default_horizon")]
    pub horizon_days: i64,
    #[serde(default)]
    pub hours: WeekHours,
    /// Local dates without deliveries, `YYYY-MM-DD`.
    #[serde(default)]
    pub closed_dates: Vec<String>,
    #[serde(default)]
    pub capacity_overrides: Vec<OverrideDoc>,
    #[serde(default)]
    pub delivery: DeliveryDoc,
    /// The named menu this store sells from (`[menus.<name>]`); the default `[menu]` if none.
    #[serde(default)]
    pub menu: Option<String>,
}

fn default_slot_minutes() -> i64 {
    30
}
fn default_cutoff() -> i64 {
    30
}
fn default_horizon() -> i64 {
    14
}

/// Shifts per weekday, local time, `HH:MM-HH:MM`; a day not listed is closed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WeekHours {
    pub mon: Vec<String>,
    pub tue: Vec<String>,
    pub wed: Vec<String>,
    pub thu: Vec<String>,
    pub fri: Vec<String>,
    pub sat: Vec<String>,
    pub sun: Vec<String>,
}

impl WeekHours {
    pub fn every_day(shifts: Vec<String>) -> Self {
        Self {
            mon: shifts.clone(),
            tue: shifts.clone(),
            wed: shifts.clone(),
            thu: shifts.clone(),
            fri: shifts.clone(),
            sat: shifts.clone(),
            sun: shifts,
        }
    }

    fn days(&self) -> [&Vec<String>; 7] {
        [&self.mon, &self.tue, &self.wed, &self.thu, &self.fri, &self.sat, &self.sun]
    }
}

/// A capacity for one weekday or one date, optionally only `from`–`to` (local).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideDoc {
    #[serde(default)]
    pub weekday: Option<String>,
    #[serde(default)]
    pub date: Option<String>,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    pub capacity: u32,
}

/// Exactly one of `everywhere`, `radius_km` and `geojson`, or only `postcodes`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryDoc {
    pub everywhere: bool,
    pub radius_km: Option<f64>,
    /// A GeoJSON Polygon or MultiPolygon (or a Feature of one), longitude first.
    pub geojson: Option<String>,
    pub postcodes: Vec<String>,
}

/// Every problem found in a catalog document, each naming the store and field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the catalog is invalid: {}", .problems.join("; "))]
pub struct CatalogError {
    pub problems: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Store {
    pub id: StoreId,
    pub name: String,
    pub address: String,
    pub location: Option<GeoPoint>,
    pub calendar: StoreCalendar,
    pub area: DeliveryArea,
    /// Its named menu; `None` for the default one.
    pub menu: Option<String>,
}

/// A checked catalog. Stores are sorted by id.
#[derive(Clone, Debug, PartialEq)]
pub struct Catalog {
    menu: Menu,
    menus: BTreeMap<String, Menu>,
    stores: Vec<Store>,
    doc: CatalogDoc,
}

/// A menu's name: 1 to 40 of `a-z`, `0-9`, `-` and `_`.
fn check_menu_name(name: &str) -> Result<(), String> {
    let ok = (1..=40).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!("menus.{name}: a menu's name is 1 to 40 of a-z, 0-9, '-' and '_'"))
    }
}

/// The store for an address, and what in its delivery area took the address.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Located<'c> {
    pub store: &'c Store,
    pub by: LocatedBy<'c>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LocatedBy<'c> {
    /// The location is inside the store's radius or drawn area.
    Area,
    /// This entry of the store's postcode list, the most specific that matched.
    Postcode(&'c PostcodeRule),
    /// The store delivers everywhere.
    Everywhere,
}

impl LocatedBy<'_> {
    /// For people and the API: `radius`, `area`, `postcode` or `everywhere`.
    pub fn kind(&self, store: &Store) -> &'static str {
        match self {
            LocatedBy::Area => super::zone_kind(&store.area),
            LocatedBy::Postcode(_) => "postcode",
            LocatedBy::Everywhere => "everywhere",
        }
    }
}

/// Why no store takes an order.
#[derive(Debug, Clone, PartialEq)]
pub enum Unplaceable {
    /// The client named a store that does not exist.
    UnknownStore(String),
    /// No store delivers there; the nearest store and its distance in metres, when known.
    Outside { nearest: Option<(StoreId, String, f64)> },
    /// No location and no postcode, and no store delivers everywhere.
    NeedsLocation,
}

struct Problems<'a> {
    store: &'a str,
    list: &'a mut Vec<String>,
}

impl Problems<'_> {
    fn add(&mut self, field: &str, what: impl std::fmt::Display) {
        self.list.push(format!("store '{}': {field}: {what}", self.store));
    }
}

impl MenuDoc {
    /// The checked menu; errors name the field, under `menu` (the default one).
    pub fn parse(&self) -> Result<Menu, String> {
        self.parse_as("menu")
    }

    /// The checked menu; errors name the field under `at` (`menu`, `menus.london`).
    pub fn parse_as(&self, at: &str) -> Result<Menu, String> {
        let currency = Currency::parse(&self.currency).map_err(|e| format!("{at}.currency: {e}"))?;
        let tax = match &self.tax {
            None => Tax::default(),
            Some(t) => {
                Tax { rate: TaxRate::parse(&t.rate).map_err(|e| format!("{at}.tax.rate: {e}"))?, included: t.included }
            }
        };
        let (s, t) = (&self.sizes, &self.toppings);
        Menu::new(
            currency,
            [s.small.map(Cents), s.medium.map(Cents), s.large.map(Cents)],
            [t.extra_cheese.map(Cents), t.pepperoni.map(Cents), t.mushroom.map(Cents)],
            tax,
        )
        .map_err(|e| format!("{at}: {e}"))
    }
}

impl StoreDoc {
    /// The calendar alone: what `apply` needs to book a slot, without parsing the area.
    pub fn calendar(&self) -> Result<StoreCalendar, CatalogError> {
        let mut list = Vec::new();
        let calendar = self.parse_calendar(&mut Problems { store: &self.id, list: &mut list });
        calendar.ok_or(CatalogError { problems: list })
    }

    fn parse_calendar(&self, p: &mut Problems) -> Option<StoreCalendar> {
        let tz = calendar::parse_time_zone(&self.time_zone).map_err(|e| p.add("time_zone", e)).ok();
        let slot_minutes = calendar::check_slot_minutes(self.slot_minutes).map_err(|e| p.add("slot_minutes", e)).ok();
        let grid = slot_minutes.unwrap_or(1);
        let mut weekly: [Vec<Shift>; 7] = Default::default();
        for (i, (day, raw)) in calendar::WEEKDAYS.iter().zip(self.hours.days()).enumerate() {
            let shifts: Vec<Shift> = raw
                .iter()
                .filter_map(|s| Shift::parse(s, grid).map_err(|e| p.add(&format!("hours.{day}"), e)).ok())
                .collect();
            match calendar::check_shifts(shifts) {
                Ok(shifts) => weekly[i] = shifts,
                Err(e) => p.add(&format!("hours.{day}"), e),
            }
        }
        let closed: BTreeSet<_> = self
            .closed_dates
            .iter()
            .filter_map(|d| calendar::parse_date(d).map_err(|e| p.add("closed_dates", e)).ok())
            .collect();
        let overrides: Vec<CapacityOverride> =
            self.capacity_overrides.iter().enumerate().filter_map(|(i, o)| parse_override(o, grid, i, p)).collect();
        let parts = CalendarParts {
            tz: tz?,
            slot_minutes: slot_minutes?,
            weekly,
            closed,
            capacity: self.capacity,
            overrides,
            cutoff_minutes: self.cutoff_minutes,
            horizon_days: self.horizon_days,
        };
        StoreCalendar::new(parts).map_err(|e| p.add(calendar_field(&e), e)).ok()
    }

    fn parse(&self, list: &mut Vec<String>) -> Option<Store> {
        let before = list.len();
        let mut p = Problems { store: &self.id, list };
        let id = StoreId::parse(&self.id).map_err(|e| p.add("id", e)).ok();
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            p.add("name", "must be 1 to 100 characters without control characters");
        }
        if self.address.chars().count() > 300 || self.address.chars().any(char::is_control) {
            p.add("address", "must be at most 300 characters without control characters");
        }
        let location = match (self.latitude, self.longitude) {
            (Some(lat), Some(lon)) => GeoPoint::new(lat, lon).map_err(|e| p.add("latitude/longitude", e)).ok(),
            (None, None) => None,
            _ => {
                p.add("latitude/longitude", "give both or neither");
                None
            }
        };
        let calendar = self.parse_calendar(&mut p);
        let area = self.parse_area(location, &mut p);
        if p.list.len() > before {
            return None;
        }
        Some(Store {
            id: id?,
            name: name.to_owned(),
            address: self.address.trim().to_owned(),
            location,
            calendar: calendar?,
            area: area?,
            menu: self.menu.clone(),
        })
    }

    fn parse_area(&self, location: Option<GeoPoint>, p: &mut Problems) -> Option<DeliveryArea> {
        let d = &self.delivery;
        let mut postcodes = Vec::new();
        for raw in &d.postcodes {
            match PostcodeRule::parse(raw) {
                Ok(rule) => postcodes.push(rule),
                Err(e) => p.add("delivery.postcodes", e),
            }
        }
        let shape = match (d.everywhere, d.radius_km, &d.geojson) {
            (true, None, None) => AreaShape::Everywhere,
            (false, Some(km), None) => match location {
                Some(centre) => DeliveryArea::radius(centre, km).map_err(|e| p.add("delivery.radius_km", e)).ok()?,
                None => {
                    p.add("delivery.radius_km", "a radius needs the store's latitude and longitude");
                    return None;
                }
            },
            (false, None, Some(text)) => {
                AreaShape::Polygon(DeliveryArea::parse_geojson(text).map_err(|e| p.add("delivery.geojson", e)).ok()?)
            }
            (false, None, None) if !postcodes.is_empty() => AreaShape::PostcodesOnly,
            (false, None, None) => {
                p.add("delivery", "give one of everywhere = true, radius_km, geojson, or a postcodes list");
                return None;
            }
            _ => {
                p.add("delivery", "give only one of everywhere, radius_km and geojson");
                return None;
            }
        };
        Some(DeliveryArea::new(shape, postcodes))
    }
}

fn calendar_field(e: &calendar::CalendarError) -> &'static str {
    use calendar::CalendarError as E;
    match e {
        E::Cutoff(_) => "cutoff_minutes",
        E::Horizon(_) => "horizon_days",
        E::Capacity(_) => "capacity",
        _ => "calendar",
    }
}

fn parse_override(o: &OverrideDoc, grid: u32, i: usize, p: &mut Problems) -> Option<CapacityOverride> {
    let field = format!("capacity_overrides[{i}]");
    let days = match (&o.weekday, &o.date) {
        (Some(day), None) => OverrideDays::Weekday(calendar::parse_weekday(day).map_err(|e| p.add(&field, e)).ok()?),
        (None, Some(date)) => OverrideDays::Date(calendar::parse_date(date).map_err(|e| p.add(&field, e)).ok()?),
        _ => {
            p.add(&field, calendar::CalendarError::OverrideDays);
            return None;
        }
    };
    let window = format!("{}-{}", o.from.as_deref().unwrap_or("00:00"), o.to.as_deref().unwrap_or("24:00"));
    let window = Shift::parse(&window, grid).map_err(|e| p.add(&field, e)).ok()?;
    Some(CapacityOverride { days, window, capacity: o.capacity })
}

impl CatalogDoc {
    /// Check every part, collecting every problem (not just the first).
    pub fn check(self) -> Result<Catalog, CatalogError> {
        let mut problems = Vec::new();
        let menu = self.menu.parse().map_err(|e| problems.push(e)).ok();
        if self.stores.is_empty() {
            problems.push("stores: a catalog needs at least one store".into());
        }
        if self.stores.len() > MAX_STORES {
            problems.push(format!("stores: at most {MAX_STORES} stores; got {}", self.stores.len()));
        }
        let mut seen = BTreeSet::new();
        for s in &self.stores {
            if !seen.insert(s.id.as_str()) {
                problems.push(format!("store '{}': id: listed twice", s.id));
            }
        }
        let mut menus = BTreeMap::new();
        for (name, doc) in &self.menus {
            if let Err(e) = check_menu_name(name) {
                problems.push(e);
                continue;
            }
            match doc.parse_as(&format!("menus.{name}")) {
                Ok(menu) => {
                    menus.insert(name.clone(), menu);
                }
                Err(e) => problems.push(e),
            }
        }
        for s in &self.stores {
            if let Some(name) = s.menu.as_deref().filter(|name| !self.menus.contains_key(*name)) {
                problems.push(format!("store '{}': menu: no menu named '{name}' (add [menus.{name}])", s.id));
            }
        }
        let mut stores: Vec<Store> = self.stores.iter().filter_map(|s| s.parse(&mut problems)).collect();
        match menu {
            Some(menu) if problems.is_empty() => {
                stores.sort_by(|a, b| a.id.cmp(&b.id));
                Ok(Catalog { menu, menus, stores, doc: self })
            }
            _ => Err(CatalogError { problems }),
        }
    }

    /// Parse a TOML catalog file's text; syntax errors and unknown fields name the line.
    pub fn from_toml(text: &str) -> Result<Self, CatalogError> {
        toml::from_str(text).map_err(|e| CatalogError { problems: vec![e.to_string().trim().replace('\n', " ")] })
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot print the catalog as TOML: {e}\n"))
    }
}

impl Catalog {
    /// The default menu.
    pub fn menu(&self) -> &Menu {
        &self.menu
    }

    /// The menu `store` sells from.
    pub fn menu_of(&self, store: &Store) -> &Menu {
        store.menu.as_ref().and_then(|name| self.menus.get(name)).unwrap_or(&self.menu)
    }

    /// The named menus, by name.
    pub fn menus(&self) -> &BTreeMap<String, Menu> {
        &self.menus
    }

    pub fn stores(&self) -> &[Store] {
        &self.stores
    }

    pub fn doc(&self) -> &CatalogDoc {
        &self.doc
    }

    pub fn store(&self, id: &str) -> Option<&Store> {
        self.stores.binary_search_by(|s| s.id.as_str().cmp(id)).ok().map(|i| &self.stores[i])
    }

    /// The store that bakes for `point`: the nearest whose area contains the location, else
    /// the one whose postcode list has the most specific entry for the postcode (the nearest of
    /// equals), else one that delivers everywhere. A store the client names must cover the
    /// address.
    pub fn locate(&self, point: &DeliveryPoint, wanted: Option<&str>) -> Result<Located<'_>, Unplaceable> {
        if let Some(id) = wanted {
            let store = self.store(id).ok_or_else(|| Unplaceable::UnknownStore(id.to_owned()))?;
            return covered_by(store, point).map(|by| Located { store, by }).ok_or_else(|| self.outside(point));
        }
        let distance = |s: &Store| match (point.location, s.location) {
            (Some(here), Some(there)) => here.distance_m(there),
            _ => f64::INFINITY,
        };
        let nearer = |a: &Store, b: &Store| distance(a).total_cmp(&distance(b)).then_with(|| a.id.cmp(&b.id));
        if let Some(here) = point.location {
            let by_area = self.stores.iter().filter(|s| !s.area.is_everywhere() && s.area.contains(here));
            if let Some(store) = by_area.min_by(|a, b| nearer(a, b)) {
                return Ok(Located { store, by: LocatedBy::Area });
            }
        }
        if let Some(code) = &point.postcode {
            let by_code = self.stores.iter().filter_map(|s| s.area.postcode_rule(code).map(|rule| (s, rule)));
            let best =
                by_code.min_by(|(a, ra), (b, rb)| rb.specificity().cmp(&ra.specificity()).then_with(|| nearer(a, b)));
            if let Some((store, rule)) = best {
                return Ok(Located { store, by: LocatedBy::Postcode(rule) });
            }
        }
        if let Some(store) = self.stores.iter().find(|s| s.area.is_everywhere()) {
            return Ok(Located { store, by: LocatedBy::Everywhere });
        }
        if point.location.is_none() && point.postcode.is_none() {
            return Err(Unplaceable::NeedsLocation);
        }
        Err(self.outside(point))
    }

    fn outside(&self, point: &DeliveryPoint) -> Unplaceable {
        let nearest = point.location.and_then(|here| {
            self.stores
                .iter()
                .filter_map(|s| s.location.map(|l| (s, here.distance_m(l))))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(s, d)| (s.id.clone(), s.name.clone(), d))
        });
        Unplaceable::Outside { nearest }
    }
}

/// What of `store`'s area takes `point`, if anything.
fn covered_by<'s>(store: &'s Store, point: &DeliveryPoint) -> Option<LocatedBy<'s>> {
    if store.area.is_everywhere() {
        return Some(LocatedBy::Everywhere);
    }
    if point.location.is_some_and(|l| store.area.contains(l)) {
        return Some(LocatedBy::Area);
    }
    point.postcode.as_ref().and_then(|c| store.area.postcode_rule(c)).map(LocatedBy::Postcode)
}

/// The catalog's stored and replicated form before menus and tax (data written up to v0.5.0):
/// these types are frozen, byte for byte, so that every Raft entry, row and snapshot written
/// then still decodes, and so that a catalog that uses nothing new is still written in this
/// form, which a v0.5.0 node in the same cluster can read. `crate::codec` says which form a
/// value's bytes hold.
pub mod v1 {
    use serde::{Deserialize, Serialize};

    use super::{DeliveryDoc, OverrideDoc, WeekHours};

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct CatalogDoc {
        pub menu: MenuDoc,
        pub stores: Vec<StoreDoc>,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct MenuDoc {
        pub currency: String,
        pub sizes: SizePrices,
        pub toppings: ToppingPrices,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct SizePrices {
        pub small: u64,
        pub medium: u64,
        pub large: u64,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ToppingPrices {
        pub extra_cheese: u64,
        pub pepperoni: u64,
        pub mushroom: u64,
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct StoreDoc {
        pub id: String,
        pub name: String,
        pub address: String,
        pub latitude: Option<f64>,
        pub longitude: Option<f64>,
        pub time_zone: String,
        pub slot_minutes: i64,
        pub capacity: u32,
        pub cutoff_minutes: i64,
        pub horizon_days: i64,
        pub hours: WeekHours,
        pub closed_dates: Vec<String>,
        pub capacity_overrides: Vec<OverrideDoc>,
        pub delivery: DeliveryDoc,
    }
}

impl From<v1::MenuDoc> for MenuDoc {
    fn from(m: v1::MenuDoc) -> Self {
        let (s, t) = (m.sizes, m.toppings);
        Self {
            currency: m.currency,
            sizes: SizePrices { small: Some(s.small), medium: Some(s.medium), large: Some(s.large) },
            toppings: ToppingPrices {
                extra_cheese: Some(t.extra_cheese),
                pepperoni: Some(t.pepperoni),
                mushroom: Some(t.mushroom),
            },
            tax: None,
        }
    }
}

impl From<v1::StoreDoc> for StoreDoc {
    fn from(s: v1::StoreDoc) -> Self {
        Self {
            id: s.id,
            name: s.name,
            address: s.address,
            latitude: s.latitude,
            longitude: s.longitude,
            time_zone: s.time_zone,
            slot_minutes: s.slot_minutes,
            capacity: s.capacity,
            cutoff_minutes: s.cutoff_minutes,
            horizon_days: s.horizon_days,
            hours: s.hours,
            closed_dates: s.closed_dates,
            capacity_overrides: s.capacity_overrides,
            delivery: s.delivery,
            menu: None,
        }
    }
}

impl From<v1::CatalogDoc> for CatalogDoc {
    fn from(c: v1::CatalogDoc) -> Self {
        Self { menu: c.menu.into(), stores: c.stores.into_iter().map(Into::into).collect(), menus: BTreeMap::new() }
    }
}

impl MenuDoc {
    /// The menu in the form before menus and tax, when it uses neither tax nor a left-out item.
    pub fn to_v1(&self) -> Option<v1::MenuDoc> {
        let (s, t) = (&self.sizes, &self.toppings);
        if self.tax.is_some() {
            return None;
        }
        Some(v1::MenuDoc {
            currency: self.currency.clone(),
            sizes: v1::SizePrices { small: s.small?, medium: s.medium?, large: s.large? },
            toppings: v1::ToppingPrices {
                extra_cheese: t.extra_cheese?,
                pepperoni: t.pepperoni?,
                mushroom: t.mushroom?,
            },
        })
    }
}

impl StoreDoc {
    /// The store in the form before menus, when it sells from the default menu.
    pub fn to_v1(&self) -> Option<v1::StoreDoc> {
        if self.menu.is_some() {
            return None;
        }
        Some(v1::StoreDoc {
            id: self.id.clone(),
            name: self.name.clone(),
            address: self.address.clone(),
            latitude: self.latitude,
            longitude: self.longitude,
            time_zone: self.time_zone.clone(),
            slot_minutes: self.slot_minutes,
            capacity: self.capacity,
            cutoff_minutes: self.cutoff_minutes,
            horizon_days: self.horizon_days,
            hours: self.hours.clone(),
            closed_dates: self.closed_dates.clone(),
            capacity_overrides: self.capacity_overrides.clone(),
            delivery: self.delivery.clone(),
        })
    }
}

impl CatalogDoc {
    /// The catalog in the form before menus and tax, when it uses none of them: such a
    /// catalog is replicated and stored as v0.5.0 wrote it.
    pub fn to_v1(&self) -> Option<v1::CatalogDoc> {
        if !self.menus.is_empty() {
            return None;
        }
        Some(v1::CatalogDoc {
            menu: self.menu.to_v1()?,
            stores: self.stores.iter().map(StoreDoc::to_v1).collect::<Option<Vec<_>>>()?,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::Postcode;

    /// Three stores: two overlapping radius areas in Berlin, one postcode-only store.
    pub(crate) const SAMPLE: &str = r#"
[menu]
currency = "EUR"
sizes = { small = 800, medium = 1050, large = 1300 }
toppings = { extra_cheese = 150, pepperoni = 200, mushroom = 120 }

[[stores]]
id = "mitte"
name = "Berlin Mitte"
latitude = 52.5290
longitude = 13.4010
time_zone = "Europe/Berlin"
capacity = 10
hours = { mon = ["11:00-14:00", "17:00-23:00"], fri = ["17:00-24:00"] }
delivery = { radius_km = 4.0 }

[[stores]]
id = "kreuzberg"
name = "Kreuzberg"
latitude = 52.4990
longitude = 13.4030
time_zone = "Europe/Berlin"
capacity = 8
hours = { mon = ["17:00-23:00"] }
delivery = { radius_km = 4.0, postcodes = ["10997"] }

[[stores]]
id = "potsdam"
name = "Potsdam"
time_zone = "Europe/Berlin"
capacity = 5
delivery = { postcodes = ["14467", "14469"] }
"#;

    pub(crate) fn sample() -> Catalog {
        CatalogDoc::from_toml(SAMPLE).unwrap().check().unwrap()
    }

    impl Catalog {
        fn locate_id(&self, point: &DeliveryPoint, wanted: Option<&str>) -> Result<&Store, Unplaceable> {
            self.locate(point, wanted).map(|l| l.store)
        }
    }

    fn at(lat: f64, lon: f64) -> DeliveryPoint {
        DeliveryPoint { postcode: None, location: Some(GeoPoint::new(lat, lon).unwrap()) }
    }

    #[test]
    fn named_menus_are_checked_and_each_store_sells_from_its_own() {
        let text = format!(
            "{SAMPLE}\n[menus.nz]\ncurrency = \"NZD\"\nsizes = {{ small = 1400, large = 2200 }}\n\
             toppings = {{ pepperoni = 300 }}\ntax = {{ rate = \"15%\", included = true }}\n"
        )
        .replace("id = \"potsdam\"", "id = \"potsdam\"\nmenu = \"nz\"");
        let c = CatalogDoc::from_toml(&text).unwrap().check().unwrap();
        let potsdam = c.store("potsdam").unwrap();
        let nz = c.menu_of(potsdam);
        assert_eq!(nz.currency().as_str(), "NZD");
        assert_eq!(nz.size_price(crate::domain::Size::Medium), None);
        assert_eq!(nz.tax().rate.to_percent(), "15%");
        assert_eq!(c.menu_of(c.store("mitte").unwrap()).currency().as_str(), "EUR");
        // It cannot take the form before menus; the sample alone can.
        assert!(c.doc().to_v1().is_none());
        assert!(sample().doc().to_v1().is_some());
    }

    #[test]
    fn menu_problems_name_the_menu_and_field() {
        let bad = format!(
            "{SAMPLE}\n[menus.uk]\ncurrency = \"GBX\"\nsizes = {{}}\ntoppings = {{}}\n\
             [menus.us]\ncurrency = \"USD\"\nsizes = {{ small = 900 }}\ntoppings = {{}}\ntax = {{ rate = \"8,875%\", included = false }}\n\
             [menus.Bad]\ncurrency = \"USD\"\nsizes = {{ small = 900 }}\ntoppings = {{}}\n"
        )
        .replace("id = \"potsdam\"", "id = \"potsdam\"\nmenu = \"fr\"");
        let problems = CatalogDoc::from_toml(&bad).unwrap().check().unwrap_err().problems;
        let has = |needle: &str| problems.iter().any(|p| p.contains(needle));
        assert!(has("menus.uk: currency 'GBX' is not one ISO 4217 lists"), "{problems:?}");
        assert!(has("menus.us.tax.rate: tax rate '8,875%'"), "{problems:?}");
        assert!(has("menus.Bad: a menu's name"), "{problems:?}");
        assert!(has("store 'potsdam': menu: no menu named 'fr'"), "{problems:?}");
        // A menu that sells no size at all.
        let empty = SAMPLE.replace("sizes = { small = 800, medium = 1050, large = 1300 }", "sizes = {}");
        let problems = CatalogDoc::from_toml(&empty).unwrap().check().unwrap_err().problems;
        assert!(problems.iter().any(|p| p.contains("menu: the menu sells no size")), "{problems:?}");
    }

    #[test]
    fn a_catalog_with_menus_prints_as_toml_and_reads_back_the_same() {
        let text = format!(
            "{SAMPLE}\n[menus.nz]\ncurrency = \"NZD\"\nsizes = {{ small = 1400 }}\ntoppings = {{}}\ntax = {{ rate = \"15%\", included = true }}\n"
        );
        let doc = CatalogDoc::from_toml(&text).unwrap();
        assert_eq!(CatalogDoc::from_toml(&doc.to_toml()).unwrap(), doc);
        let plain = CatalogDoc::from_toml(SAMPLE).unwrap();
        assert_eq!(CatalogDoc::from_toml(&plain.to_toml()).unwrap(), plain);
    }

    #[test]
    fn overlapping_areas_go_to_the_nearest_store() {
        let c = sample();
        // Between the two, nearer Kreuzberg.
        assert_eq!(c.locate_id(&at(52.505, 13.403), None).unwrap().id.as_str(), "kreuzberg");
        assert_eq!(c.locate_id(&at(52.525, 13.401), None).unwrap().id.as_str(), "mitte");
    }

    #[test]
    fn postcode_is_the_fallback_and_outside_names_the_nearest() {
        let c = sample();
        let potsdam = DeliveryPoint { postcode: Some(Postcode::parse("14467").unwrap()), location: None };
        assert_eq!(c.locate_id(&potsdam, None).unwrap().id.as_str(), "potsdam");
        match c.locate_id(&at(52.60, 13.40), None) {
            Err(Unplaceable::Outside { nearest: Some((id, _, metres)) }) => {
                assert_eq!(id.as_str(), "mitte");
                assert!((7_000.0..9_000.0).contains(&metres), "{metres}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(c.locate_id(&DeliveryPoint::default(), None), Err(Unplaceable::NeedsLocation));
    }

    #[test]
    fn the_most_specific_postcode_entry_wins_across_stores_and_is_named() {
        let doc = SAMPLE
            .replace(
                "delivery = { radius_km = 4.0, postcodes = [\"10997\"] }",
                "delivery = { radius_km = 4.0, postcodes = [\"109*\", \"10997\"] }",
            )
            .replace(
                "delivery = { postcodes = [\"14467\", \"14469\"] }",
                "delivery = { postcodes = [\"10990-10999\", \"14467\"] }",
            );
        let c = CatalogDoc::from_toml(&doc).unwrap().check().unwrap();
        let by_code = |raw: &str| {
            let point = DeliveryPoint { postcode: Some(Postcode::parse(raw).unwrap()), location: None };
            c.locate(&point, None).map(|l| (l.store.id.to_string(), l.by.kind(l.store), format!("{:?}", l.by)))
        };
        let (store, kind, by) = by_code("10997").unwrap();
        assert_eq!((store.as_str(), kind), ("kreuzberg", "postcode"), "a whole postcode beats a range: {by}");
        assert_eq!(by_code("10995").unwrap().0, "potsdam", "a range of ten beats a prefix of three");
        assert_eq!(by_code("10950").unwrap().0, "kreuzberg", "only the prefix matches");
        assert!(matches!(by_code("20095"), Err(Unplaceable::Outside { nearest: None })));
        // A location inside an area: the area, not the postcode, took it.
        let inside = DeliveryPoint { postcode: Some(Postcode::parse("10995").unwrap()), ..at(52.525, 13.401) };
        let located = c.locate(&inside, None).unwrap();
        assert_eq!((located.store.id.as_str(), located.by.kind(located.store)), ("mitte", "radius"));
        // A named store: the rule of that store.
        let named = c.locate(&DeliveryPoint { location: None, ..inside }, Some("kreuzberg")).unwrap();
        assert_eq!(named.by, LocatedBy::Postcode(&PostcodeRule::Prefix("109".into())));
        let bad = SAMPLE.replace("postcodes = [\"14467\", \"14469\"]", "postcodes = [\"14469-14467\", \"*\"]");
        let text = CatalogDoc::from_toml(&bad).unwrap().check().unwrap_err().to_string();
        assert!(text.contains("store 'potsdam': delivery.postcodes: the range '14469-14467' runs backwards"), "{text}");
        assert!(text.contains("store 'potsdam': delivery.postcodes: a prefix is 1 to 9"), "{text}");
    }

    #[test]
    fn a_named_store_must_cover_the_address() {
        let c = sample();
        assert!(c.locate_id(&at(52.505, 13.403), Some("mitte")).is_ok(), "inside both areas");
        assert!(matches!(c.locate_id(&at(52.60, 13.40), Some("mitte")), Err(Unplaceable::Outside { .. })));
        assert!(matches!(c.locate_id(&at(52.5, 13.4), Some("nope")), Err(Unplaceable::UnknownStore(_))));
    }

    #[test]
    fn every_problem_is_named_with_store_and_field() {
        let bad = SAMPLE
            .replace("time_zone = \"Europe/Berlin\"\ncapacity = 10", "time_zone = \"Europe/Bärlin\"\ncapacity = 10")
            .replace("\"17:00-24:00\"", "\"17:00-25:00\"")
            .replace("id = \"potsdam\"", "id = \"mitte\"");
        let err = CatalogDoc::from_toml(&bad).unwrap().check().unwrap_err();
        let text = err.to_string();
        assert!(text.contains("store 'mitte': time_zone"), "{text}");
        assert!(text.contains("store 'mitte': hours.fri"), "{text}");
        assert!(text.contains("store 'mitte': id: listed twice"), "{text}");
        assert!(CatalogDoc::from_toml("[menu]\ncurrency = 1").is_err());
    }

    #[test]
    fn a_catalog_prints_as_toml_and_reads_back_the_same() {
        let c = sample();
        let again = CatalogDoc::from_toml(&c.doc().to_toml()).unwrap();
        assert_eq!(&again, c.doc());
        let bytes = crate::codec::encode(c.doc()).unwrap();
        assert_eq!(&crate::codec::decode::<CatalogDoc>(&bytes).unwrap(), c.doc());
    }
}
