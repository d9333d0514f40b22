//! Commands: what a client asked for, stamped by the node that proposed it.
//!
//! A command carries everything `apply` needs to decide — the time, the new order id, the
//! price and the capacity rules in force at the proposer — so applying it is a pure function
//! of the command and the current state, identical on every replica.

use serde::{Deserialize, Serialize};

use crate::domain::{Order, OrderId, OrderSpec, OrderVersion, Price, Slot, Timestamp, UserId};

/// Identifies one change or cancellation, stamped by the node that received it. If a leader
/// change makes the node propose the same command again, `apply` recognises it by this id
/// and answers with the original outcome instead of applying it twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandId(pub u128);

impl CommandId {
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7().as_u128())
    }
}

impl Default for CommandId {
    fn default() -> Self {
        Self::new()
    }
}

/// Pizzas one delivery slot can take.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotCapacity(pub u32);

/// A client-chosen key that makes a create safe to retry: 1..=128 visible ASCII characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const MAX_LEN: usize = 128;

    pub fn parse(raw: &str) -> Option<Self> {
        let ok = !raw.is_empty() && raw.len() <= Self::MAX_LEN && raw.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for IdempotencyKey {
    type Error = &'static str;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw).ok_or("idempotency key must be 1..=128 visible ASCII characters")
    }
}

impl From<IdempotencyKey> for String {
    fn from(key: IdempotencyKey) -> Self {
        key.0
    }
}

/// An idempotency key with the fingerprint of the request it was first used with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyClaim {
    pub key: IdempotencyKey,
    pub fingerprint: [u8; 32],
    pub expires_at: Timestamp,
}

/// `If-Match`: the versions the client believes current. `None` on a command means no header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Precondition {
    Any,
    OneOf(Vec<OrderVersion>),
}

impl Precondition {
    pub fn admits(&self, version: OrderVersion) -> bool {
        match self {
            Precondition::Any => true,
            Precondition::OneOf(versions) => versions.contains(&version),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceOrder {
    pub order_id: OrderId,
    pub user: UserId,
    pub at: Timestamp,
    pub spec: OrderSpec,
    pub price: Price,
    pub capacity: SlotCapacity,
    pub cutoff_ms: i64,
    pub idempotency: Option<IdempotencyClaim>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeOrder {
    pub command_id: CommandId,
    pub order_id: OrderId,
    pub user: UserId,
    pub at: Timestamp,
    pub spec: OrderSpec,
    pub price: Price,
    pub capacity: SlotCapacity,
    pub cutoff_ms: i64,
    pub if_match: Option<Precondition>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelOrder {
    pub command_id: CommandId,
    pub order_id: OrderId,
    pub user: UserId,
    pub at: Timestamp,
    pub cutoff_ms: i64,
    pub if_match: Option<Precondition>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    PlaceOrder(PlaceOrder),
    ChangeOrder(ChangeOrder),
    CancelOrder(CancelOrder),
}

impl Command {
    pub fn at(&self) -> Timestamp {
        match self {
            Command::PlaceOrder(c) => c.at,
            Command::ChangeOrder(c) => c.at,
            Command::CancelOrder(c) => c.at,
        }
    }
}

/// What a command did. `replayed` is true when an idempotent retry returned the original.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Placed { order: Order, replayed: bool },
    Changed(Order),
    Cancelled(Order),
}

impl Outcome {
    pub fn order(&self) -> &Order {
        match self {
            Outcome::Placed { order, .. } | Outcome::Changed(order) | Outcome::Cancelled(order) => order,
        }
    }
}

/// Why a command was refused. A rejected command changes nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Rejection {
    #[error("you already have an active order ({0}); change or cancel it, or wait until it is delivered")]
    OrderExists(OrderId),
    #[error("the delivery slot at {} is full", .0.start())]
    SlotFull(Slot),
    #[error("the slot at {start} starts too soon: orders close {1} minutes before delivery", start = .0.start())]
    SlotTooSoon(Slot, i64),
    #[error("no such order")]
    NotFound,
    #[error("the order has changed since you read it (it is now at version {})", .0 .0)]
    PreconditionFailed(OrderVersion),
    #[error("the order can no longer be changed: orders close {0} minutes before delivery")]
    CutoffPassed(i64),
    #[error("the order is cancelled and can no longer be changed")]
    NotActive,
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyKeyReused,
    #[error("an order with id {0} already exists")]
    DuplicateOrderId(OrderId),
}
