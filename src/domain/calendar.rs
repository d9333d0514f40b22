//! A store's delivery calendar: weekly opening hours in the store's own time zone (split shifts
//! allowed), closed dates, slot length, capacity per slot with overrides, cutoff and horizon.
//!
//! Slots are laid on the store's *local* clock: every `slot_minutes` from local midnight, inside
//! a shift. The time-zone rules are chrono-tz's (the IANA database), none written here. On the
//! day clocks go forward the local times that do not exist have no slot (a 23-hour day has
//! fewer); on the day they go back a local time that happens twice is two slots, an hour apart.

use std::collections::BTreeSet;

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike};
use chrono_tz::Tz;

use super::{Slot, SlotError, Timestamp};

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 24 * 60 * MINUTE_MS;
const MINUTES_PER_DAY: u32 = 24 * 60;

/// `[from, to)` in minutes after local midnight; `to` may be 1440 (midnight at the day's end).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Shift {
    pub from: u32,
    pub to: u32,
}

/// Which days a capacity override applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OverrideDays {
    /// 0 = Monday … 6 = Sunday.
    Weekday(u8),
    Date(NaiveDate),
}

/// A capacity for slots starting in `window` on `days`. Date overrides win over weekday ones;
/// among several of a kind, the first listed wins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapacityOverride {
    pub days: OverrideDays,
    pub window: Shift,
    pub capacity: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StoreCalendar {
    tz: Tz,
    slot_minutes: u32,
    /// Monday first; shifts sorted and not overlapping.
    weekly: [Vec<Shift>; 7],
    closed: BTreeSet<NaiveDate>,
    capacity: u32,
    overrides: Vec<CapacityOverride>,
    cutoff_ms: i64,
    horizon_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error("'{0}' is not an IANA time zone such as Europe/Berlin")]
    TimeZone(String),
    #[error("must be between 5 and 240 minutes and divide a day evenly; got {0}")]
    SlotLength(i64),
    #[error("'{0}' is not HH:MM-HH:MM (a shift past midnight is two: 18:00-24:00 and 00:00-02:00 the next day)")]
    ShiftSyntax(String),
    #[error("'{0}': times must be on the {1}-minute slot grid")]
    OffGrid(String, u32),
    #[error("'{0}': the shift must end after it starts")]
    EmptyShift(String),
    #[error("shifts {0} and {1} overlap")]
    Overlap(String, String),
    #[error("'{0}' is not a date such as 2026-12-25")]
    Date(String),
    #[error("'{0}' is not a weekday (mon, tue, wed, thu, fri, sat, sun)")]
    Weekday(String),
    #[error("an override names either a weekday or a date, not both or neither")]
    OverrideDays,
    #[error("must be from 0 to 1440 minutes; got {0}")]
    Cutoff(i64),
    #[error("must be from 1 to 3650 days; got {0}")]
    Horizon(i64),
    #[error("must be at most 1000000 pizzas per slot; got {0}")]
    Capacity(u64),
}

pub const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl Shift {
    /// `HH:MM-HH:MM` on a `slot_minutes` grid.
    pub fn parse(raw: &str, slot_minutes: u32) -> Result<Self, CalendarError> {
        let bad = || CalendarError::ShiftSyntax(raw.chars().take(40).collect());
        let (a, b) = raw.trim().split_once('-').ok_or_else(bad)?;
        let (from, to) = (parse_hhmm(a).ok_or_else(bad)?, parse_hhmm(b).ok_or_else(bad)?);
        if from % slot_minutes != 0 || to % slot_minutes != 0 {
            return Err(CalendarError::OffGrid(raw.trim().into(), slot_minutes));
        }
        if from >= to {
            return Err(CalendarError::EmptyShift(raw.trim().into()));
        }
        Ok(Self { from, to })
    }

    fn contains_slot(self, minute: u32, slot_minutes: u32) -> bool {
        self.from <= minute && minute + slot_minutes <= self.to
    }
}

impl std::fmt::Display for Shift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02}:{:02}-{:02}:{:02}", self.from / 60, self.from % 60, self.to / 60, self.to % 60)
    }
}

fn parse_hhmm(raw: &str) -> Option<u32> {
    let (h, m) = raw.trim().split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    let ok = (h < 24 && m < 60) || (h == 24 && m == 0);
    ok.then_some(h * 60 + m)
}

pub fn parse_weekday(raw: &str) -> Result<u8, CalendarError> {
    let lower = raw.trim().to_ascii_lowercase();
    WEEKDAYS
        .iter()
        .position(|d| *d == lower)
        .map(|i| i as u8)
        .ok_or_else(|| CalendarError::Weekday(raw.chars().take(20).collect()))
}

pub fn parse_date(raw: &str) -> Result<NaiveDate, CalendarError> {
    NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d").map_err(|_| CalendarError::Date(raw.chars().take(20).collect()))
}

pub fn parse_time_zone(raw: &str) -> Result<Tz, CalendarError> {
    raw.trim().parse::<Tz>().map_err(|_| CalendarError::TimeZone(raw.chars().take(60).collect()))
}

/// Sort a day's shifts and refuse overlaps.
pub fn check_shifts(mut shifts: Vec<Shift>) -> Result<Vec<Shift>, CalendarError> {
    shifts.sort();
    for pair in shifts.windows(2) {
        if pair[1].from < pair[0].to {
            return Err(CalendarError::Overlap(pair[0].to_string(), pair[1].to_string()));
        }
    }
    Ok(shifts)
}

pub fn check_slot_minutes(minutes: i64) -> Result<u32, CalendarError> {
    if !(5..=240).contains(&minutes) || 1440 % minutes != 0 {
        return Err(CalendarError::SlotLength(minutes));
    }
    Ok(minutes as u32)
}

/// What a calendar is made of; each part already checked on its own.
pub struct CalendarParts {
    pub tz: Tz,
    pub slot_minutes: u32,
    pub weekly: [Vec<Shift>; 7],
    pub closed: BTreeSet<NaiveDate>,
    pub capacity: u32,
    pub overrides: Vec<CapacityOverride>,
    pub cutoff_minutes: i64,
    pub horizon_days: i64,
}

impl StoreCalendar {
    pub const MAX_CAPACITY: u64 = 1_000_000;

    pub fn new(parts: CalendarParts) -> Result<Self, CalendarError> {
        if !(0..=1440).contains(&parts.cutoff_minutes) {
            return Err(CalendarError::Cutoff(parts.cutoff_minutes));
        }
        if !(1..=3650).contains(&parts.horizon_days) {
            return Err(CalendarError::Horizon(parts.horizon_days));
        }
        let too_big = std::iter::once(parts.capacity).chain(parts.overrides.iter().map(|o| o.capacity));
        if let Some(c) = too_big.into_iter().find(|c| u64::from(*c) > Self::MAX_CAPACITY) {
            return Err(CalendarError::Capacity(u64::from(c)));
        }
        Ok(Self {
            tz: parts.tz,
            slot_minutes: parts.slot_minutes,
            weekly: parts.weekly,
            closed: parts.closed,
            capacity: parts.capacity,
            overrides: parts.overrides,
            cutoff_ms: parts.cutoff_minutes * MINUTE_MS,
            horizon_ms: parts.horizon_days * DAY_MS,
        })
    }

    pub fn time_zone(&self) -> Tz {
        self.tz
    }

    pub fn slot_minutes(&self) -> u32 {
        self.slot_minutes
    }

    pub fn cutoff_ms(&self) -> i64 {
        self.cutoff_ms
    }

    pub fn horizon_days(&self) -> i64 {
        self.horizon_ms / DAY_MS
    }

    fn slot_ms(&self) -> i64 {
        i64::from(self.slot_minutes) * MINUTE_MS
    }

    fn local(&self, at: Timestamp) -> NaiveDateTime {
        self.tz.from_utc_datetime(&at.to_datetime().naive_utc()).naive_local()
    }

    /// The local wall-clock time of `at` with its UTC offset, RFC 3339 (for labels).
    pub fn local_rfc3339(&self, at: Timestamp) -> String {
        self.tz.from_utc_datetime(&at.to_datetime().naive_utc()).to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
    }

    /// The slot starting at `start`, if it is on the local grid, inside a shift on a day that
    /// is not closed, at least the cutoff after `now` and inside the horizon.
    pub fn bookable(&self, start: Timestamp, now: Timestamp) -> Result<Slot, SlotError> {
        let slot = self.on_grid(start)?;
        if start < now.plus_millis(self.cutoff_ms) {
            return Err(SlotError::TooSoon(start, self.cutoff_ms / MINUTE_MS));
        }
        if start > now.plus_millis(self.horizon_ms) {
            return Err(SlotError::BeyondHorizon(start, self.horizon_days()));
        }
        Ok(slot)
    }

    fn on_grid(&self, start: Timestamp) -> Result<Slot, SlotError> {
        if start.millis().rem_euclid(MINUTE_MS) != 0 {
            return Err(SlotError::NotOnGrid(i64::from(self.slot_minutes), start));
        }
        let local = self.local(start);
        let minute = local.hour() * 60 + local.minute();
        if !minute.is_multiple_of(self.slot_minutes) {
            return Err(SlotError::NotOnGrid(i64::from(self.slot_minutes), start));
        }
        let date = local.date();
        if self.closed.contains(&date) {
            return Err(SlotError::Closed(start, date.to_string()));
        }
        let shifts = &self.weekly[date.weekday().num_days_from_monday() as usize];
        if !shifts.iter().any(|s| s.contains_slot(minute, self.slot_minutes)) {
            let hours = if shifts.is_empty() {
                "closed all day".to_owned()
            } else {
                shifts.iter().map(Shift::to_string).collect::<Vec<_>>().join(", ")
            };
            return Err(SlotError::OutsideOpeningHours(start, hours, self.tz.name().to_owned()));
        }
        Ok(Slot::new(start, start.plus_millis(self.slot_ms())))
    }

    /// Every bookable slot starting in `[from, to)`, in time order. The caller bounds the range.
    pub fn bookable_between(&self, from: Timestamp, to: Timestamp, now: Timestamp) -> Vec<Slot> {
        let first = from.max(now.plus_millis(self.cutoff_ms));
        let last = to.min(now.plus_millis(self.horizon_ms + 1));
        if first >= last {
            return Vec::new();
        }
        // Local dates that can hold a slot in range: offsets are within ±26 hours.
        let start_date = self.local(first.plus_millis(-DAY_MS)).date();
        let end_date = self.local(last.plus_millis(DAY_MS)).date();
        let mut slots = Vec::new();
        let mut date = start_date;
        while date <= end_date {
            if !self.closed.contains(&date) {
                for shift in &self.weekly[date.weekday().num_days_from_monday() as usize] {
                    let mut minute = shift.from;
                    while minute + self.slot_minutes <= shift.to {
                        for start in self.instants(date, minute) {
                            if start >= first && start < last {
                                slots.push(Slot::new(start, start.plus_millis(self.slot_ms())));
                            }
                        }
                        minute += self.slot_minutes;
                    }
                }
            }
            let Some(next) = date.succ_opt() else { break };
            date = next;
        }
        slots.sort();
        slots.dedup();
        slots
    }

    /// The instants at which the local clock shows `minute` on `date`: none in a gap, two in
    /// an overlap.
    fn instants(&self, date: NaiveDate, minute: u32) -> Vec<Timestamp> {
        let (day_offset, minute) = (minute / MINUTES_PER_DAY, minute % MINUTES_PER_DAY);
        let Some(date) = date.checked_add_days(chrono::Days::new(u64::from(day_offset))) else { return Vec::new() };
        let Some(time) = NaiveTime::from_hms_opt(minute / 60, minute % 60, 0) else { return Vec::new() };
        let ts = |t: chrono::DateTime<Tz>| Timestamp::from_millis(t.timestamp_millis());
        match self.tz.from_local_datetime(&date.and_time(time)) {
            chrono::LocalResult::Single(t) => vec![ts(t)],
            chrono::LocalResult::Ambiguous(a, b) => vec![ts(a), ts(b)],
            chrono::LocalResult::None => Vec::new(),
        }
    }

    /// Pizzas the kitchen can make for the slot starting at `start`.
    pub fn capacity_at(&self, start: Timestamp) -> u32 {
        let local = self.local(start);
        let minute = local.hour() * 60 + local.minute();
        let (date, weekday) = (local.date(), local.weekday().num_days_from_monday() as u8);
        let applies = |o: &&CapacityOverride| o.window.from <= minute && minute < o.window.to;
        let on_date = self.overrides.iter().filter(|o| o.days == OverrideDays::Date(date)).find(applies);
        let on_weekday = || self.overrides.iter().filter(|o| o.days == OverrideDays::Weekday(weekday)).find(applies);
        on_date.or_else(on_weekday).map_or(self.capacity, |o| o.capacity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(raw: &str) -> Timestamp {
        Timestamp::parse_rfc3339(raw).unwrap()
    }

    fn calendar(tz: &str, shifts: &[&str]) -> StoreCalendar {
        let day: Vec<Shift> = shifts.iter().map(|s| Shift::parse(s, 30).unwrap()).collect();
        StoreCalendar::new(CalendarParts {
            tz: parse_time_zone(tz).unwrap(),
            slot_minutes: 30,
            weekly: std::array::from_fn(|_| day.clone()),
            closed: BTreeSet::from([parse_date("2026-12-25").unwrap()]),
            capacity: 10,
            overrides: vec![
                CapacityOverride {
                    days: OverrideDays::Weekday(4),
                    window: Shift { from: 18 * 60, to: 20 * 60 },
                    capacity: 30,
                },
                CapacityOverride {
                    days: OverrideDays::Date(parse_date("2026-12-31").unwrap()),
                    window: Shift { from: 0, to: 1440 },
                    capacity: 50,
                },
            ],
            cutoff_minutes: 30,
            horizon_days: 400,
        })
        .unwrap()
    }

    const NOW: &str = "2026-01-01T00:00:00Z";

    fn starts(c: &StoreCalendar, from: &str, to: &str) -> Vec<String> {
        c.bookable_between(at(from), at(to), at(NOW)).iter().map(|s| s.start().to_rfc3339()).collect()
    }

    #[test]
    fn split_shifts_in_local_time() {
        let berlin = calendar("Europe/Berlin", &["11:00-12:00", "17:00-18:00"]);
        // 2026-06-10, Berlin is UTC+2.
        assert_eq!(
            starts(&berlin, "2026-06-10T00:00:00Z", "2026-06-11T00:00:00Z"),
            ["2026-06-10T09:00:00Z", "2026-06-10T09:30:00Z", "2026-06-10T15:00:00Z", "2026-06-10T15:30:00Z"]
        );
        assert!(berlin.bookable(at("2026-06-10T15:30:00Z"), at(NOW)).is_ok());
        assert!(matches!(
            berlin.bookable(at("2026-06-10T16:00:00Z"), at(NOW)),
            Err(SlotError::OutsideOpeningHours(..))
        ));
        assert!(matches!(berlin.bookable(at("2026-06-10T15:15:00Z"), at(NOW)), Err(SlotError::NotOnGrid(..))));
    }

    #[test]
    fn spring_forward_day_has_no_slots_in_the_gap() {
        // Europe/Berlin: 2026-03-29 02:00 local jumps to 03:00.
        let night = calendar("Europe/Berlin", &["01:00-04:00"]);
        let got = starts(&night, "2026-03-28T23:00:00Z", "2026-03-29T03:00:00Z");
        // 01:00, 01:30 (CET = UTC+1), then 03:00, 03:30 (CEST = UTC+2); 02:00 and 02:30 do not exist.
        assert_eq!(
            got,
            ["2026-03-29T00:00:00Z", "2026-03-29T00:30:00Z", "2026-03-29T01:00:00Z", "2026-03-29T01:30:00Z"]
        );
    }

    #[test]
    fn fall_back_day_has_the_repeated_hour_twice() {
        // Europe/Berlin: 2026-10-25 03:00 local goes back to 02:00.
        let night = calendar("Europe/Berlin", &["02:00-03:00"]);
        let got = starts(&night, "2026-10-24T22:00:00Z", "2026-10-25T03:00:00Z");
        assert_eq!(
            got,
            ["2026-10-25T00:00:00Z", "2026-10-25T00:30:00Z", "2026-10-25T01:00:00Z", "2026-10-25T01:30:00Z"]
        );
        for s in &got {
            assert!(night.bookable(at(s), at(NOW)).is_ok(), "{s}");
        }
    }

    #[test]
    fn a_store_east_of_utc_has_a_local_day_across_two_utc_days() {
        // Pacific/Auckland in June is UTC+12: the local evening of the 10th is the UTC morning.
        let auckland = calendar("Pacific/Auckland", &["00:00-01:00", "23:00-24:00"]);
        assert_eq!(
            starts(&auckland, "2026-06-09T00:00:00Z", "2026-06-10T23:59:00Z"),
            [
                "2026-06-09T11:00:00Z",
                "2026-06-09T11:30:00Z",
                "2026-06-09T12:00:00Z",
                "2026-06-09T12:30:00Z",
                "2026-06-10T11:00:00Z",
                "2026-06-10T11:30:00Z",
                "2026-06-10T12:00:00Z",
                "2026-06-10T12:30:00Z"
            ]
        );
    }

    #[test]
    fn closed_dates_and_capacity_overrides() {
        let c = calendar("UTC", &["11:00-23:00"]);
        assert!(matches!(c.bookable(at("2026-12-25T12:00:00Z"), at(NOW)), Err(SlotError::Closed(..))));
        assert!(starts(&c, "2026-12-25T00:00:00Z", "2026-12-26T00:00:00Z").is_empty());
        // 2026-12-18 is a Friday: 18:00-20:00 has 30, other times the default.
        assert_eq!(c.capacity_at(at("2026-12-18T18:30:00Z")), 30);
        assert_eq!(c.capacity_at(at("2026-12-18T20:00:00Z")), 10);
        assert_eq!(c.capacity_at(at("2026-12-17T18:30:00Z")), 10);
        assert_eq!(c.capacity_at(at("2026-12-31T18:30:00Z")), 50);
    }

    #[test]
    fn bad_parts_are_named() {
        assert!(matches!(Shift::parse("11:00-10:00", 30), Err(CalendarError::EmptyShift(_))));
        assert!(matches!(Shift::parse("11:15-12:00", 30), Err(CalendarError::OffGrid(..))));
        assert!(matches!(Shift::parse("22:00-02:00", 30), Err(CalendarError::EmptyShift(_))));
        assert!(matches!(Shift::parse("1100-1200", 30), Err(CalendarError::ShiftSyntax(_))));
        assert!(Shift::parse("18:00-24:00", 30).is_ok());
        let overlap = vec![Shift::parse("11:00-14:00", 30).unwrap(), Shift::parse("13:00-15:00", 30).unwrap()];
        assert!(matches!(check_shifts(overlap), Err(CalendarError::Overlap(..))));
        assert!(parse_time_zone("Mars/Olympus").is_err());
        assert_eq!(parse_weekday("Fri"), Ok(4));
        assert!(parse_weekday("friday").is_err());
        assert!(check_slot_minutes(7).is_err());
        assert!(check_slot_minutes(0).is_err());
    }
}
