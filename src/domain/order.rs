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

/// Where an order is on its way to the door. The kitchen moves it forward one step at a time:
/// `placed → preparing → baked → out_for_delivery → delivered`, or `→ not_delivered` after
/// `out_for_delivery`; the customer can cancel only while it is `placed`. New variants go at
/// the end: the stored encoding is the variant's index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Placed,
    Cancelled,
    Preparing,
    Baked,
    OutForDelivery,
    Delivered,
    NotDelivered,
}

impl OrderStatus {
    /// The statuses a kitchen step may lead to from this one.
    pub fn next_steps(self) -> &'static [OrderStatus] {
        match self {
            OrderStatus::Placed => &[OrderStatus::Preparing],
            OrderStatus::Preparing => &[OrderStatus::Baked],
            OrderStatus::Baked => &[OrderStatus::OutForDelivery],
            OrderStatus::OutForDelivery => &[OrderStatus::Delivered, OrderStatus::NotDelivered],
            OrderStatus::Cancelled | OrderStatus::Delivered | OrderStatus::NotDelivered => &[],
        }
    }

    /// Whether the kitchen has taken the order (the customer can no longer change or cancel).
    pub fn in_kitchen(self) -> bool {
        !matches!(self, OrderStatus::Placed | OrderStatus::Cancelled)
    }

    /// No step follows: delivered, not delivered or cancelled.
    pub fn is_final(self) -> bool {
        self.next_steps().is_empty()
    }

    /// Its place on the way to the door (cancelled: 0, like placed).
    pub fn rank(self) -> u8 {
        match self {
            OrderStatus::Placed | OrderStatus::Cancelled => 0,
            OrderStatus::Preparing => 1,
            OrderStatus::Baked => 2,
            OrderStatus::OutForDelivery => 3,
            OrderStatus::Delivered | OrderStatus::NotDelivered => 4,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Placed => "placed",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Preparing => "preparing",
            OrderStatus::Baked => "baked",
            OrderStatus::OutForDelivery => "out_for_delivery",
            OrderStatus::Delivered => "delivered",
            OrderStatus::NotDelivered => "not_delivered",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            OrderStatus::Placed,
            OrderStatus::Cancelled,
            OrderStatus::Preparing,
            OrderStatus::Baked,
            OrderStatus::OutForDelivery,
            OrderStatus::Delivered,
            OrderStatus::NotDelivered,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }
}

/// Why an order out for delivery did not arrive: 1 to 200 characters, no control characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NotDeliveredReason(String);

impl NotDeliveredReason {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("a reason is required when an order could not be delivered".into());
        }
        if trimmed.chars().count() > Self::MAX_CHARS {
            return Err(format!("the reason may be at most {} characters", Self::MAX_CHARS));
        }
        if trimmed.chars().any(char::is_control) {
            return Err("the reason may not contain control characters".into());
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One kitchen step in an order's history: the status reached, when (the proposing node's
/// clock, never earlier than the step before), by which staff member, and for `not_delivered`
/// why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub status: OrderStatus,
    pub at: Timestamp,
    pub by: UserId,
    pub reason: Option<NotDeliveredReason>,
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
    /// An order blocks its user from placing another one until it is delivered, not
    /// delivered or cancelled. One the kitchen never took (still `placed`) lapses when its
    /// delivery window ends, so a store that does not use the kitchen page blocks nobody.
    pub fn is_active(&self, at: Timestamp) -> bool {
        match self.status {
            OrderStatus::Placed => at < self.spec.slot.end(),
            OrderStatus::Preparing | OrderStatus::Baked | OrderStatus::OutForDelivery => true,
            OrderStatus::Cancelled | OrderStatus::Delivered | OrderStatus::NotDelivered => false,
        }
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

    #[test]
    fn the_way_to_the_door_only_goes_forward() {
        use OrderStatus::*;
        let all = [Placed, Cancelled, Preparing, Baked, OutForDelivery, Delivered, NotDelivered];
        for status in all {
            assert_eq!(OrderStatus::parse(status.as_str()), Some(status));
            for next in status.next_steps() {
                assert_eq!(next.rank(), status.rank() + 1, "{status:?} -> {next:?}");
            }
        }
        assert_eq!(Placed.next_steps(), [Preparing]);
        assert!(Cancelled.is_final() && Delivered.is_final() && NotDelivered.is_final());
        assert!(!Placed.in_kitchen() && Preparing.in_kitchen() && Delivered.in_kitchen());
        assert!(NotDeliveredReason::parse("  ").is_err());
        assert!(NotDeliveredReason::parse(&"x".repeat(201)).is_err());
        assert!(NotDeliveredReason::parse("bell\u{7}").is_err());
        assert_eq!(NotDeliveredReason::parse(" nobody home ").unwrap().as_str(), "nobody home");
    }
}
