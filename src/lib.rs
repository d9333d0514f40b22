//! pizza-orders: the order system of a pizza delivery service.
//!
//! A request flows one way: `api` (HTTP) → `domain` (parse) → `state::Command` →
//! `node` (propose) → `state::apply` → redb. See `docs/` for the design.

pub mod api;
pub mod auth;
pub mod backup;
pub mod cli;
pub mod codec;
pub mod config;
pub mod domain;
pub mod node;
pub mod raft;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod tls;
pub mod ui;
