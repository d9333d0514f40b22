//! Product analytics: what the web UI reports (page views and the ordering funnel), the day
//! they count on, and the sketch that counts distinct visitors without keeping who they were.

use std::hash::{BuildHasher, Hasher};

use hyperloglogplus::{HyperLogLog, HyperLogLogPlus};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Timestamp;

/// What a page reports. New kinds go at the end: the stored encoding is the variant's index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    PageOpened,
    CatalogShown,
    SlotPicked,
    OrderPlaced,
    OrderChanged,
    OrderCancelled,
    SlotFullSeen,
    ErrorShown,
}

impl EventKind {
    pub const ALL: [EventKind; 8] = [
        EventKind::PageOpened,
        EventKind::CatalogShown,
        EventKind::SlotPicked,
        EventKind::OrderPlaced,
        EventKind::OrderChanged,
        EventKind::OrderCancelled,
        EventKind::SlotFullSeen,
        EventKind::ErrorShown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::PageOpened => "page_opened",
            EventKind::CatalogShown => "catalog_shown",
            EventKind::SlotPicked => "slot_picked",
            EventKind::OrderPlaced => "order_placed",
            EventKind::OrderChanged => "order_changed",
            EventKind::OrderCancelled => "order_cancelled",
            EventKind::SlotFullSeen => "slot_full_seen",
            EventKind::ErrorShown => "error_shown",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw)
    }
}

/// A UTC calendar day, as days since 1970-01-01.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Day(pub u32);

const DAY_MS: i64 = 86_400_000;

impl Day {
    pub fn of(at: Timestamp) -> Self {
        Self(u32::try_from(at.millis().div_euclid(DAY_MS)).unwrap_or(0))
    }

    /// `YYYY-MM-DD`.
    pub fn parse(raw: &str) -> Option<Self> {
        let date = chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok()?;
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?;
        u32::try_from((date - epoch).num_days()).ok().map(Self)
    }

    /// Its first instant (midnight UTC).
    pub fn start(self) -> Timestamp {
        Timestamp::from_millis(i64::from(self.0) * DAY_MS)
    }

    pub fn text(self) -> String {
        let start = self.start().to_rfc3339();
        start.get(..10).unwrap_or_default().to_owned()
    }

    pub fn minus(self, days: u32) -> Self {
        Self(self.0.saturating_sub(days))
    }

    pub fn plus(self, days: u32) -> Self {
        Self(self.0.saturating_add(days))
    }
}

/// A visitor id as the browser keeps it: 8 to 64 letters, digits, `-` or `_`. Never stored:
/// only its daily hash goes into a sketch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VisitorId(String);

impl VisitorId {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok =
            (8..=64).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err("visitor must be 8 to 64 letters, digits, '-' or '_'".into())
        }
    }

    /// The visitor's hash for `day`: SHA-256 of a salt that changes every day (made from the
    /// cluster's secret, so every node hashes a visitor alike that day and nobody without it
    /// can test a guessed id) and the id. The same person is a new visitor tomorrow.
    pub fn daily_hash(&self, salt: &[u8], day: Day) -> u64 {
        let digest = Sha256::new()
            .chain_update(b"pizza-orders visitor v1\0")
            .chain_update(salt)
            .chain_update(day.0.to_le_bytes())
            .chain_update(self.0.as_bytes())
            .finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_le_bytes(first)
    }
}

/// The sketch's hasher: values are already uniform 64-bit hashes ([`VisitorId::daily_hash`]),
/// taken as they are, so sketches from every node and every build agree bit for bit.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Prehashed;

#[derive(Default)]
pub struct PrehashedHasher(u64);

impl Hasher for PrehashedHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 values are inserted; anything else is folded in (never happens).
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

impl BuildHasher for Prehashed {
    type Hasher = PrehashedHasher;

    fn build_hasher(&self) -> PrehashedHasher {
        PrehashedHasher::default()
    }
}

/// Registers: 2^14 (a standard error of 0.8 %).
pub const SKETCH_PRECISION: u8 = 14;

/// Distinct visitors, as a HyperLogLog++ sketch (the `hyperloglogplus` crate).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VisitorSketch(HyperLogLogPlus<u64, Prehashed>);

#[derive(Debug, thiserror::Error)]
#[error("the visitor sketches do not fit together: {0}")]
pub struct SketchError(String);

impl VisitorSketch {
    pub fn new() -> Self {
        // 14 is within the crate's 4..=18: this cannot fail.
        match HyperLogLogPlus::new(SKETCH_PRECISION, Prehashed) {
            Ok(sketch) => Self(sketch),
            Err(e) => unreachable!("precision {SKETCH_PRECISION} is valid: {e:?}"),
        }
    }

    pub fn insert(&mut self, hash: u64) {
        self.0.insert(&hash);
    }

    /// Add `other`'s visitors (a union: a visitor in both counts once).
    pub fn merge(&mut self, other: &VisitorSketch) -> Result<(), SketchError> {
        self.0.merge(&other.0).map_err(|e| SketchError(format!("{e:?}")))
    }

    /// The estimated number of distinct visitors. Also settles the sketch's pending inserts,
    /// so that its encoding is the same on every node: call before encoding.
    pub fn count(&mut self) -> u64 {
        let estimate = self.0.count();
        if estimate.is_finite() && estimate > 0.0 {
            estimate.round() as u64
        } else {
            0
        }
    }
}

impl Default for VisitorSketch {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_million_distinct_visitors_are_counted_within_two_percent_and_repeats_do_not_count() {
        let salt = b"salt";
        let day = Day(20_000);
        let mut one = VisitorSketch::new();
        let mut two = VisitorSketch::new();
        for i in 0..1_000_000u32 {
            let visitor = VisitorId::parse(&format!("visitor-{i:08}")).unwrap();
            let hash = visitor.daily_hash(salt, day);
            // Half the visitors seen on each of two nodes, 100 000 of them on both.
            if i < 550_000 {
                one.insert(hash);
            }
            if i >= 450_000 {
                two.insert(hash);
            }
            if i % 10 == 0 {
                one.insert(hash); // a repeat visit
            }
        }
        one.merge(&two).unwrap();
        let counted = one.count() as f64;
        let error = (counted - 1_000_000.0).abs() / 1_000_000.0;
        assert!(error < 0.02, "counted {counted}: {:.2} % off", error * 100.0);
    }

    #[test]
    fn sketches_encode_alike_whatever_order_they_were_built_in() {
        let hashes: Vec<u64> = (0..500u64).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).collect();
        let mut a = VisitorSketch::new();
        let mut b = VisitorSketch::new();
        hashes.iter().for_each(|h| a.insert(*h));
        hashes.iter().rev().for_each(|h| b.insert(*h));
        let (ca, cb) = (a.count(), b.count());
        assert_eq!(ca, cb);
        assert_eq!(crate::codec::encode(&a).unwrap(), crate::codec::encode(&b).unwrap());
    }

    #[test]
    fn days_visitors_and_events_parse_strictly() {
        assert_eq!(Day::parse("1970-01-02"), Some(Day(1)));
        assert_eq!(Day(20_422).text(), "2025-11-30");
        assert_eq!(Day::parse("2025-11-30"), Some(Day(20_422)));
        assert!(Day::parse("30.11.2025").is_none());
        assert!(VisitorId::parse("short").is_err());
        assert!(VisitorId::parse("has spaces in it").is_err());
        assert!(VisitorId::parse("0b6e6d1c-3f5e-4c55-9a4e-123456789abc").is_ok());
        let v = VisitorId::parse("visitor-1").unwrap();
        assert_ne!(v.daily_hash(b"s", Day(1)), v.daily_hash(b"s", Day(2)), "a new visitor every day");
        assert_eq!(EventKind::parse("slot_picked"), Some(EventKind::SlotPicked));
        assert_eq!(EventKind::parse("clicked"), None);
    }
}
