//! The deterministic state machine: commands, their `apply` over one redb write transaction,
//! the tables they write, and the reads the API serves. Nothing here knows about HTTP or Raft.

mod apply;
pub mod check;
mod command;
mod error;
pub mod export;
pub mod snapshot;
mod store;
pub mod tables;

#[cfg(test)]
mod model_tests;

pub use apply::{apply, Applied};
pub use command::{
    CancelOrder, ChangeOrder, Command, CommandId, IdempotencyClaim, IdempotencyKey, Outcome, PlaceOrder, Precondition,
    Rejection, SlotCapacity,
};
pub use error::StoreError;
pub use store::Store;
pub(crate) use store::{make_durable, open_database};
