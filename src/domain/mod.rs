//! Pure domain types. Each one can only hold a valid value: parsing is the only way in,
//! so code that receives one never checks it again.

mod address;
mod analytics;
mod calendar;
pub mod catalog;
mod order;
mod pizza;
mod price;
mod slot;
mod store;
mod time;
mod user;
mod zone;

pub use address::{Address, AddressError};
pub use analytics::{Day, EventKind, VisitorId, VisitorSketch};
pub use calendar::{CalendarError, StoreCalendar};
pub use catalog::{
    Catalog, CatalogDoc, CatalogError, DeliveryDoc, Located, LocatedBy, MenuDoc, SizePrices, Store, StoreDoc,
    ToppingPrices, Unplaceable, WeekHours,
};
pub use order::{NotDeliveredReason, Order, OrderId, OrderSpec, OrderStatus, OrderVersion, Step};
pub use pizza::{Size, Topping, Toppings};
pub use price::{Cents, Charge, Currency, Menu, MenuError, NotSold, Price, Tax, TaxRate};
pub use slot::{Slot, SlotError};
pub use store::{DeliveryPoint, GeoPoint, GeoPointError, Postcode, PostcodeError, StoreId, StoreIdError};
pub use time::{Timestamp, TimestampError};
pub use user::{UserId, UserIdError};
pub use zone::{zone_kind, PostcodeRule};
