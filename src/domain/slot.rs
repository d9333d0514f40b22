use serde::{Deserialize, Serialize};

use super::Timestamp;

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 24 * 60 * MINUTE_MS;

/// A delivery slot: a window `[start, end)` on the slot grid.
///
/// Invariant: only a [`SlotGrid`] makes one, so `start` is aligned to the grid and inside
/// opening hours. The end is stored with the start so that an order keeps the window it was
/// booked for even if the configured slot length changes later.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Slot {
    start: Timestamp,
    end: Timestamp,
}

impl Slot {
    pub fn start(self) -> Timestamp {
        self.start
    }

    pub fn end(self) -> Timestamp {
        self.end
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotError {
    #[error("delivery slots start every {0} minutes from midnight UTC; {1} is not a slot start")]
    NotOnGrid(i64, Timestamp),
    #[error("{0} is outside opening hours ({1}–{2} UTC)")]
    OutsideOpeningHours(Timestamp, String, String),
    #[error("the slot at {0} starts too soon: orders close {1} minutes before delivery")]
    TooSoon(Timestamp, i64),
    #[error("the slot at {0} is too far ahead: orders may be placed at most {1} days ahead")]
    BeyondHorizon(Timestamp, i64),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotGridError {
    #[error("slot length must be between 1 and 1440 minutes and divide a day evenly; got {0}")]
    Length(i64),
    #[error("opening hours '{0}' are not HH:MM on the slot grid")]
    Time(String),
    #[error("opening time {0} must be before closing time {1}")]
    Hours(String, String),
    #[error("the horizon must be at least 1 day; got {0}")]
    Horizon(i64),
    #[error("the order cutoff must be between 0 and 1440 minutes; got {0}")]
    Cutoff(i64),
}

/// The delivery calendar: slot length, daily opening hours (UTC), how far ahead customers
/// may order, and how long before a slot orders close (the cutoff).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotGrid {
    length_ms: i64,
    opens_ms: i64,
    closes_ms: i64,
    horizon_ms: i64,
    cutoff_ms: i64,
}

impl SlotGrid {
    pub fn new(
        length_minutes: i64,
        opens: &str,
        closes: &str,
        horizon_days: i64,
        cutoff_minutes: i64,
    ) -> Result<Self, SlotGridError> {
        if !(1..=1440).contains(&length_minutes) || 1440 % length_minutes != 0 {
            return Err(SlotGridError::Length(length_minutes));
        }
        let length_ms = length_minutes * MINUTE_MS;
        let opens_ms = parse_time_of_day(opens, length_ms)?;
        let closes_ms = parse_time_of_day(closes, length_ms)?;
        if opens_ms >= closes_ms {
            return Err(SlotGridError::Hours(opens.into(), closes.into()));
        }
        if !(1..=36_500).contains(&horizon_days) {
            return Err(SlotGridError::Horizon(horizon_days));
        }
        if !(0..=1440).contains(&cutoff_minutes) {
            return Err(SlotGridError::Cutoff(cutoff_minutes));
        }
        Ok(Self {
            length_ms,
            opens_ms,
            closes_ms,
            horizon_ms: horizon_days * DAY_MS,
            cutoff_ms: cutoff_minutes * MINUTE_MS,
        })
    }

    pub fn length_minutes(&self) -> i64 {
        self.length_ms / MINUTE_MS
    }

    pub fn cutoff_ms(&self) -> i64 {
        self.cutoff_ms
    }

    pub fn horizon_days(&self) -> i64 {
        self.horizon_ms / DAY_MS
    }

    /// The earliest start a customer may still book at `now`.
    pub fn earliest_bookable(&self, now: Timestamp) -> Timestamp {
        now.plus_millis(self.cutoff_ms)
    }

    /// The slot starting at `start`, if it is on the grid, in opening hours, at least the
    /// cutoff after `now` and inside the horizon.
    pub fn bookable(&self, start: Timestamp, now: Timestamp) -> Result<Slot, SlotError> {
        let slot = self.on_grid(start)?;
        if start < self.earliest_bookable(now) {
            return Err(SlotError::TooSoon(start, self.cutoff_ms / MINUTE_MS));
        }
        if start > now.plus_millis(self.horizon_ms) {
            return Err(SlotError::BeyondHorizon(start, self.horizon_days()));
        }
        Ok(slot)
    }

    fn on_grid(&self, start: Timestamp) -> Result<Slot, SlotError> {
        let ms = start.millis();
        if ms.rem_euclid(self.length_ms) != 0 {
            return Err(SlotError::NotOnGrid(self.length_minutes(), start));
        }
        let time_of_day = ms.rem_euclid(DAY_MS);
        if time_of_day < self.opens_ms || time_of_day + self.length_ms > self.closes_ms {
            return Err(SlotError::OutsideOpeningHours(
                start,
                format_time_of_day(self.opens_ms),
                format_time_of_day(self.closes_ms),
            ));
        }
        Ok(Slot { start, end: start.plus_millis(self.length_ms) })
    }

    /// Every bookable slot starting in `[from, to)`, in time order.
    /// The caller bounds the range; this walks the grid one slot at a time.
    pub fn bookable_between(&self, from: Timestamp, to: Timestamp, now: Timestamp) -> Vec<Slot> {
        let first = from.max(self.earliest_bookable(now)).millis();
        let last = to.min(now.plus_millis(self.horizon_ms + 1));
        let mut start = first.saturating_add((self.length_ms - first.rem_euclid(self.length_ms)) % self.length_ms);
        let mut slots = Vec::new();
        while Timestamp::from_millis(start) < last {
            if let Ok(slot) = self.on_grid(Timestamp::from_millis(start)) {
                slots.push(slot);
            }
            start = start.saturating_add(self.length_ms);
        }
        slots
    }
}

fn parse_time_of_day(raw: &str, length_ms: i64) -> Result<i64, SlotGridError> {
    let bad = || SlotGridError::Time(raw.to_owned());
    let (h, m) = raw.split_once(':').ok_or_else(bad)?;
    let (h, m): (i64, i64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if !(0..=24).contains(&h) || !(0..60).contains(&m) || (h == 24 && m != 0) {
        return Err(bad());
    }
    let ms = (h * 60 + m) * MINUTE_MS;
    if ms % length_ms != 0 {
        return Err(bad());
    }
    Ok(ms)
}

fn format_time_of_day(ms: i64) -> String {
    let minutes = ms / MINUTE_MS;
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> SlotGrid {
        SlotGrid::new(30, "11:00", "23:00", 10, 30).unwrap()
    }

    fn at(raw: &str) -> Timestamp {
        Timestamp::parse_rfc3339(raw).unwrap()
    }

    const NOW: &str = "2026-11-24T12:00:00Z";

    #[test]
    fn a_grid_slot_in_opening_hours_is_bookable() {
        let slot = grid().bookable(at("2026-11-25T18:30:00Z"), at(NOW)).unwrap();
        assert_eq!(slot.end(), at("2026-11-25T19:00:00Z"));
    }

    #[test]
    fn off_grid_and_closed_times_are_refused() {
        let g = grid();
        assert!(matches!(g.bookable(at("2026-11-25T18:15:00Z"), at(NOW)), Err(SlotError::NotOnGrid(..))));
        assert!(matches!(g.bookable(at("2026-11-25T10:30:00Z"), at(NOW)), Err(SlotError::OutsideOpeningHours(..))));
        // The last slot must end by closing time.
        assert!(g.bookable(at("2026-11-25T22:30:00Z"), at(NOW)).is_ok());
        assert!(matches!(g.bookable(at("2026-11-25T23:00:00Z"), at(NOW)), Err(SlotError::OutsideOpeningHours(..))));
    }

    #[test]
    fn cutoff_and_horizon_bound_the_bookable_window() {
        let g = grid();
        assert!(matches!(g.bookable(at("2026-11-24T12:00:00Z"), at(NOW)), Err(SlotError::TooSoon(..))));
        assert!(g.bookable(at("2026-11-24T12:30:00Z"), at(NOW)).is_ok());
        assert!(g.bookable(at("2026-12-04T11:00:00Z"), at(NOW)).is_ok());
        assert!(matches!(g.bookable(at("2026-12-05T11:00:00Z"), at(NOW)), Err(SlotError::BeyondHorizon(..))));
    }

    #[test]
    fn listing_walks_the_grid_inside_opening_hours() {
        let slots = grid().bookable_between(at("2026-11-24T22:10:00Z"), at("2026-11-25T12:00:00Z"), at(NOW));
        let starts: Vec<String> = slots.iter().map(|s| s.start().to_rfc3339()).collect();
        assert_eq!(starts, ["2026-11-24T22:30:00Z", "2026-11-25T11:00:00Z", "2026-11-25T11:30:00Z"]);
    }

    #[test]
    fn bad_configurations_are_refused() {
        assert_eq!(SlotGrid::new(7, "11:00", "23:00", 10, 30), Err(SlotGridError::Length(7)));
        assert!(SlotGrid::new(30, "11:15", "23:00", 10, 30).is_err());
        assert!(SlotGrid::new(30, "23:00", "11:00", 10, 30).is_err());
        assert!(SlotGrid::new(30, "00:00", "24:00", 10, 30).is_ok());
        assert!(SlotGrid::new(30, "11:00", "25:00", 10, 30).is_err());
    }
}
