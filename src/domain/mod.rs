//! Pure domain types. Each one can only hold a valid value: parsing is the only way in,
//! so code that receives one never checks it again.

mod address;
mod order;
mod pizza;
mod price;
mod slot;
mod time;
mod user;

pub use address::{Address, AddressError};
pub use order::{Order, OrderId, OrderSpec, OrderStatus, OrderVersion};
pub use pizza::{Size, Topping, Toppings};
pub use price::{Cents, Currency, Menu, MenuError, Price};
pub use slot::{Slot, SlotError, SlotGrid, SlotGridError};
pub use time::{Timestamp, TimestampError};
pub use user::{UserId, UserIdError};
