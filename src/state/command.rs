//! Commands: what a client asked for, stamped by the node that proposed it.
//!
//! A command carries what only the proposer can know — the time, the new order id, the store
//! the address maps to and the catalog version it read — and `apply` takes every business
//! rule (hours, capacity, cutoff, prices) from the replicated catalog in the state, so applying
//! it is a pure function of the command and the state, identical on every replica whatever
//! each node's config file says.
//!
//! The first three variants are the commands of data format 4, which carried the rules of the
//! proposer's config; they stay so that log entries written before the upgrade still apply
//! exactly as they did. Nothing proposes them any more.

use serde::{Deserialize, Serialize};

use crate::domain::{
    CatalogDoc, DeliveryPoint, NotDeliveredReason, Order, OrderId, OrderSpec, OrderStatus, OrderVersion, Price, Slot,
    Step, StoreId, Timestamp, UserId,
};

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

/// Data format 4's create: rules from the proposer's config. Applied only from old log entries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyPlaceOrder {
    pub order_id: OrderId,
    pub user: UserId,
    pub at: Timestamp,
    pub spec: OrderSpec,
    pub price: Price,
    pub capacity: SlotCapacity,
    pub cutoff_ms: i64,
    pub idempotency: Option<IdempotencyClaim>,
}

/// Data format 4's change. Applied only from old log entries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyChangeOrder {
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

/// Data format 4's cancel. Applied only from old log entries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyCancelOrder {
    pub command_id: CommandId,
    pub order_id: OrderId,
    pub user: UserId,
    pub at: Timestamp,
    pub cutoff_ms: i64,
    pub if_match: Option<Precondition>,
}

/// Place an order with `store`, as the proposer found it for the delivery point in catalog
/// `catalog_version`. `apply` refuses it if the catalog changed since (the proposer looks again),
/// and takes the slot's hours, capacity and the price from the catalog in the state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceOrder {
    pub order_id: OrderId,
    pub user: UserId,
    pub at: Timestamp,
    pub spec: OrderSpec,
    pub store: StoreId,
    pub delivery: DeliveryPoint,
    pub catalog_version: u64,
    pub idempotency: Option<IdempotencyClaim>,
}

/// Replace an order's choices (possibly moving it to another store), re-priced by the catalog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeOrder {
    pub command_id: CommandId,
    pub order_id: OrderId,
    pub user: UserId,
    pub at: Timestamp,
    pub spec: OrderSpec,
    pub store: StoreId,
    pub delivery: DeliveryPoint,
    pub catalog_version: u64,
    pub if_match: Option<Precondition>,
}

/// Cancel an order; its own recorded cutoff decides whether it still may be.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelOrder {
    pub command_id: CommandId,
    pub order_id: OrderId,
    pub user: UserId,
    pub at: Timestamp,
    pub if_match: Option<Precondition>,
}

/// A kitchen step: staff of `store` move the order one step on its way to the door. `apply`
/// refuses an order of another store (as not found), a status that is not the next one, and a
/// step on a cancelled order; the step's time is `at`, or the previous step's if that is later
/// (clocks of different nodes differ), so an order's history never goes back in time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdvanceOrder {
    pub command_id: CommandId,
    pub order_id: OrderId,
    pub store: StoreId,
    pub staff: UserId,
    pub at: Timestamp,
    pub to: OrderStatus,
    pub reason: Option<NotDeliveredReason>,
}

/// Leave the line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaveWaitlist {
    pub user: UserId,
    pub at: Timestamp,
}

/// A place in a slot's line: the order to place for the user when a place frees up, at the
/// price and cutoff of the moment they joined.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitEntry {
    pub seq: u64,
    pub order_id: OrderId,
    pub user: UserId,
    pub spec: OrderSpec,
    pub store: StoreId,
    pub delivery: DeliveryPoint,
    pub price: Price,
    pub cutoff_ms: i64,
    pub catalog_version: u64,
    pub joined_at: Timestamp,
    /// The slot's cutoff: after it the entry is dropped, as the slot can no longer be booked.
    pub expires_at: Timestamp,
    pub idempotency_key: Option<IdempotencyKey>,
    pub fingerprint: Option<[u8; 32]>,
}

/// A slot with the places it still has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotRoom {
    pub slot: Slot,
    pub remaining: u32,
}

/// Replace the catalog. With `expected_version`, only if that is still the version in force
/// (two admins never overwrite each other unseen). A `seed` is applied only while there is no
/// catalog at all: the first leader of a new cluster proposes its config's catalog, and
/// whichever seed commits first is the one every replica keeps.
///
/// Replicated in the catalog's form before menus and tax (`catalog::v1`), byte for byte as
/// v0.5.0 wrote it, so such a node in the cluster still applies it; a catalog that uses menus
/// or tax cannot take that form and travels as [`Command::SetCatalogV2`] instead
/// ([`Command::set_catalog`] picks). Encoding a `SetCatalog` whose catalog needs more fails.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SetCatalog {
    pub at: Timestamp,
    pub author: String,
    pub expected_version: Option<u64>,
    pub seed: bool,
    #[serde(serialize_with = "catalog_as_v1", deserialize_with = "catalog_from_v1")]
    pub catalog: CatalogDoc,
}

// `CatalogDoc` holds coordinates (finite floats): equality is an equivalence for it too.
impl Eq for SetCatalog {}

fn catalog_as_v1<S: serde::Serializer>(catalog: &CatalogDoc, s: S) -> Result<S::Ok, S::Error> {
    let v1 = catalog
        .to_v1()
        .ok_or_else(|| serde::ser::Error::custom("a catalog with menus or tax is replicated as SetCatalogV2"))?;
    v1.serialize(s)
}

fn catalog_from_v1<'de, D: serde::Deserializer<'de>>(d: D) -> Result<CatalogDoc, D::Error> {
    crate::domain::catalog::v1::CatalogDoc::deserialize(d).map(Into::into)
}

/// [`SetCatalog`] for a catalog with menus or tax, in the catalog's current form. A node older
/// than this form cannot decode it: see docs/operations.md on upgrading before using menus.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SetCatalogV2 {
    pub at: Timestamp,
    pub author: String,
    pub expected_version: Option<u64>,
    pub seed: bool,
    pub catalog: CatalogDoc,
}

impl Eq for SetCatalogV2 {}

impl From<SetCatalogV2> for SetCatalog {
    fn from(c: SetCatalogV2) -> Self {
        Self { at: c.at, author: c.author, expected_version: c.expected_version, seed: c.seed, catalog: c.catalog }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    LegacyPlaceOrder(LegacyPlaceOrder),
    LegacyChangeOrder(LegacyChangeOrder),
    LegacyCancelOrder(LegacyCancelOrder),
    PlaceOrder(PlaceOrder),
    ChangeOrder(ChangeOrder),
    CancelOrder(CancelOrder),
    SetCatalog(SetCatalog),
    /// Join the line for a full slot with the order to place if a place frees up (the same
    /// request as a create; its order id is the one the order will have).
    JoinWaitlist(PlaceOrder),
    LeaveWaitlist(LeaveWaitlist),
    AdvanceOrder(AdvanceOrder),
    /// One node's analytics counts since its last batch.
    RecordAnalytics(super::analytics::AnalyticsBatch),
    /// A catalog with menus or tax (see [`SetCatalog`]).
    SetCatalogV2(SetCatalogV2),
}

impl Command {
    pub fn at(&self) -> Timestamp {
        match self {
            Command::LegacyPlaceOrder(c) => c.at,
            Command::LegacyChangeOrder(c) => c.at,
            Command::LegacyCancelOrder(c) => c.at,
            Command::PlaceOrder(c) => c.at,
            Command::ChangeOrder(c) => c.at,
            Command::CancelOrder(c) => c.at,
            Command::SetCatalog(c) => c.at,
            Command::JoinWaitlist(c) => c.at,
            Command::LeaveWaitlist(c) => c.at,
            Command::AdvanceOrder(c) => c.at,
            Command::RecordAnalytics(c) => c.at,
            Command::SetCatalogV2(c) => c.at,
        }
    }

    /// The command that sets `c`'s catalog: in the form before menus and tax when the catalog
    /// fits it (so every node, old or new, applies it), else [`Command::SetCatalogV2`].
    pub fn set_catalog(c: SetCatalog) -> Self {
        if c.catalog.to_v1().is_some() {
            Command::SetCatalog(c)
        } else {
            Command::SetCatalogV2(SetCatalogV2 {
                at: c.at,
                author: c.author,
                expected_version: c.expected_version,
                seed: c.seed,
                catalog: c.catalog,
            })
        }
    }
}

/// A catalog as applied: its version, when, by whom, and the document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CatalogRecord {
    pub version: u64,
    pub applied_at: Timestamp,
    pub author: String,
    pub catalog: CatalogDoc,
}

/// What a command did. `replayed` is true when an idempotent retry returned the original.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Placed {
        order: Order,
        replayed: bool,
    },
    Changed(Order),
    Cancelled(Order),
    /// The catalog in force after the command; `changed` is false for a seed that found one.
    Catalog {
        version: u64,
        changed: bool,
    },
    /// In line: the entry and its position (1 = next).
    Waiting {
        entry: WaitEntry,
        position: u64,
        replayed: bool,
    },
    LeftWaitlist(WaitEntry),
    /// A kitchen step, with the order's whole history after it.
    Advanced {
        order: Order,
        history: Vec<Step>,
    },
    /// An analytics batch: `applied` is false for one applied before (proposed again).
    Analytics {
        applied: bool,
    },
}

/// Why a command was refused. A rejected command changes nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Rejection {
    #[error("you already have an active order ({0}); change or cancel it, or wait until it is delivered")]
    OrderExists(OrderId),
    #[error("the delivery slot at {} is full", .0.start())]
    SlotFull(Slot, Vec<SlotRoom>),
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
    #[error("the catalog changed while the order was on its way (now version {0}); look the store up again")]
    CatalogChanged(u64),
    #[error("no catalog has been applied yet; the cluster's leader seeds one from its configuration")]
    NoCatalog,
    #[error("store '{0}' is not in the catalog")]
    UnknownStore(StoreId),
    #[error("the slot cannot be booked: {0}")]
    SlotNotBookable(String),
    #[error(
        "the catalog in force is version {0}, not the one this change was based on; show it again and redo the change"
    )]
    CatalogVersionConflict(u64),
    #[error("{}", .0.join("; "))]
    InvalidCatalog(Vec<String>),
    #[error("store '{0}' still has orders for slots to come; close it (no hours) instead of removing it")]
    StoreInUse(StoreId),
    #[error("the slot at {} still has room: place the order instead of waiting", .0.start())]
    SlotHasRoom(Slot),
    #[error("you are already waiting for the slot at {}; leave that line first", .0.start())]
    AlreadyWaiting(Slot),
    #[error("you are not on any waitlist")]
    NotWaiting,
    #[error("the kitchen has the order (it is {}); it can no longer be changed or cancelled", .0.as_str())]
    InKitchen(OrderStatus),
    #[error("the order is {}; the next step can only be {}", .0.as_str(), next_words(*.0))]
    StepNotAllowed(OrderStatus, OrderStatus),
    #[error("a reason is required when an order could not be delivered")]
    ReasonRequired,
    #[error("the order's delivery window ended before the kitchen took it; it has lapsed")]
    Lapsed,
    #[error("the analytics batch is not readable: {0}")]
    InvalidAnalytics(String),
    #[error("store '{1}' does not sell {0}; its menu lists what it does (GET /v1/menu?store={1})")]
    NotOnMenu(String, StoreId),
}

fn next_words(from: OrderStatus) -> String {
    let next: Vec<&str> = from.next_steps().iter().map(|s| s.as_str()).collect();
    if next.is_empty() {
        "none: it has reached its end".into()
    } else {
        next.join(" or ")
    }
}
