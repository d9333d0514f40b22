//! The deterministic state machine: commands, their `apply` over one redb write transaction,
//! the tables they write, and the reads the API serves. Nothing here knows about HTTP or Raft.

pub mod analytics;
mod apply;
pub mod catalog;
pub mod changes;
pub mod check;
mod command;
pub mod disk;
mod error;
pub mod export;
pub mod migrate;
pub mod snapshot;
mod store;
pub mod tables;
mod tx;
pub mod views;
pub mod waitlist;

#[cfg(test)]
mod model_tests;

pub use apply::{apply, apply_in, Applied};
pub use command::{
    AdvanceOrder, CancelOrder, CatalogRecord, ChangeOrder, Command, CommandId, IdempotencyClaim, IdempotencyKey,
    LeaveWaitlist, LegacyCancelOrder, LegacyChangeOrder, LegacyPlaceOrder, Outcome, PlaceOrder, Precondition,
    Rejection, SetCatalog, SetCatalogV2, SlotCapacity, SlotRoom, WaitEntry,
};
pub use error::StoreError;
pub(crate) use store::{make_durable, open_database};
pub use store::{CatalogInForce, CurrentCatalog, Revenue, Store};
pub use tx::Tx;
