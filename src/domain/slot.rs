use serde::{Deserialize, Serialize};

use super::Timestamp;

/// A delivery slot: a window `[start, end)` of one store's calendar.
///
/// Invariant: only a [`super::StoreCalendar`] makes one, so `start` is on the store's local
/// grid and inside its opening hours. The end is stored with the start so that an order keeps
/// the window it was booked for even if the slot length changes later.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Slot {
    start: Timestamp,
    end: Timestamp,
}

impl Slot {
    pub(super) fn new(start: Timestamp, end: Timestamp) -> Self {
        Self { start, end }
    }

    pub fn start(self) -> Timestamp {
        self.start
    }

    pub fn end(self) -> Timestamp {
        self.end
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotError {
    #[error("delivery slots start every {0} minutes from the store's local midnight; {1} is not a slot start")]
    NotOnGrid(i64, Timestamp),
    #[error("{0} is outside the store's opening hours that day ({1}, time zone {2})")]
    OutsideOpeningHours(Timestamp, String, String),
    #[error("the store is closed on {1} (local date of {0})")]
    Closed(Timestamp, String),
    #[error("the slot at {0} starts too soon: orders close {1} minutes before delivery")]
    TooSoon(Timestamp, i64),
    #[error("the slot at {0} is too far ahead: orders may be placed at most {1} days ahead")]
    BeyondHorizon(Timestamp, i64),
}
