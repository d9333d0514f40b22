use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Address, DeliveryPoint, Price, Size, Slot, StoreId, Timestamp, Toppings, UserId};

/// An order id: a UUID v7, so ids sort by creation time and "newest first" is a key range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OrderId(Uuid);

impl OrderId {
    /// A new id for `at`. Called by the proposing node only, never inside `apply`.
    pub fn new_at(at: Timestamp) -> Self {
        let millis = u64::try_from(at.millis()).unwrap_or(0);
        let ts = uuid::Timestamp::from_unix(uuid::NoContext, millis / 1000, (millis % 1000) as u32 * 1_000_000);
        Self(Uuid::new_v7(ts))
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Uuid::parse_str(raw).ok().map(Self)
    }

    pub fn as_u128(self) -> u128 {
        self.0.as_u128()
    }

    pub fn from_u128(raw: u128) -> Self {
        Self(Uuid::from_u128(raw))
    }

    /// The hyphenated lower-case text of the id, written into `buffer`.
    pub fn encode(self, buffer: &mut [u8; 36]) -> &str {
        self.0.hyphenated().encode_lower(buffer)
    }
}

impl std::fmt::Display for OrderId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Counts the changes to one order, starting at 1; the HTTP ETag is made from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OrderVersion(pub u64);

impl OrderVersion {
    pub const FIRST: Self = Self(1);

    pub fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Placed,
    Cancelled,
}

/// What the customer chose: everything about an order that they may change.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OrderSpec {
    pub address: Address,
    pub size: Size,
    pub toppings: Toppings,
    pub slot: Slot,
}

/// An order as stored. `revision` is the state-machine revision of its last change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: OrderId,
    pub user: UserId,
    pub spec: OrderSpec,
    pub price: Price,
    pub status: OrderStatus,
    pub version: OrderVersion,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub revision: u64,
    /// The id of the command that last changed it (the order id for its creation), so a
    /// command proposed twice is applied once.
    pub last_command: u128,
    /// The store that bakes it, and where it goes beyond the address text.
    pub store: StoreId,
    pub delivery: DeliveryPoint,
    /// Changes and cancellation close this long before the slot: the store's cutoff when the
    /// order was last placed or changed, kept so a later catalog change does not move it.
    pub cutoff_ms: i64,
    /// The catalog version in force when the order was last placed or changed (0: before
    /// catalogs were replicated).
    pub catalog_version: u64,
}

impl Order {
    /// An order blocks its user from placing another one while it is placed and its delivery
    /// window has not ended.
    pub fn is_active(&self, at: Timestamp) -> bool {
        self.status == OrderStatus::Placed && at < self.spec.slot.end()
    }

    /// Changes and cancellation are accepted until this time.
    pub fn editable_until(&self) -> Timestamp {
        self.spec.slot.start().plus_millis(-self.cutoff_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_creation_time() {
        let a = OrderId::new_at(Timestamp::from_millis(1_000));
        let b = OrderId::new_at(Timestamp::from_millis(2_000));
        assert!(a < b);
        assert_eq!(OrderId::from_u128(a.as_u128()), a);
        assert_eq!(OrderId::parse(&a.to_string()), Some(a));
        assert_eq!(OrderId::parse("not-a-uuid"), None);
    }
}
