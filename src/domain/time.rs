use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use serde::{Deserialize, Serialize};

/// A point in time as milliseconds since the Unix epoch (UTC).
///
/// Commands carry the time the proposing node stamped on them, so the state machine never
/// reads a clock; this integer form encodes compactly and compares exactly on every replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Timestamp(i64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    #[error("'{0}' is not an RFC 3339 date-time such as 2026-11-25T18:30:00Z")]
    Malformed(String),
}

impl Timestamp {
    pub const fn from_millis(millis: i64) -> Self {
        Self(millis)
    }

    pub fn now() -> Self {
        Self(Utc::now().timestamp_millis())
    }

    pub const fn millis(self) -> i64 {
        self.0
    }

    pub fn parse_rfc3339(raw: &str) -> Result<Self, TimestampError> {
        DateTime::parse_from_rfc3339(raw.trim())
            .map(|t| Self(t.timestamp_millis()))
            .map_err(|_| TimestampError::Malformed(raw.chars().take(64).collect()))
    }

    /// Saturating: time arithmetic near the ends of the range never wraps.
    pub const fn plus_millis(self, millis: i64) -> Self {
        Self(self.0.saturating_add(millis))
    }

    pub fn to_datetime(self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.0).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// RFC 3339 in UTC to the second, such as `2026-11-25T18:30:00Z`.
    pub fn to_rfc3339(self) -> String {
        self.to_string()
    }
}

/// RFC 3339 in UTC to the second. Every order in a response carries five of these, so years
/// 0 to 9999 are written straight into a buffer (chrono's formatter took ~500 instructions
/// each); chrono writes the rest.
impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.to_datetime();
        let year = match u32::try_from(t.year()) {
            Ok(year) if year <= 9999 => year,
            _ => return f.write_str(&t.to_rfc3339_opts(SecondsFormat::Secs, true)),
        };
        let mut text = *b"0000-00-00T00:00:00Z";
        let fields = [
            (0, 4, year),
            (5, 2, t.month()),
            (8, 2, t.day()),
            (11, 2, t.hour()),
            (14, 2, t.minute()),
            (17, 2, t.second()),
        ];
        for (at, width, mut value) in fields {
            for digit in text[at..at + width].iter_mut().rev() {
                *digit = b'0' + (value % 10) as u8;
                value /= 10;
            }
        }
        f.write_str(std::str::from_utf8(&text).map_err(|_| std::fmt::Error)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_rfc3339_and_accepts_offsets() {
        let t = Timestamp::parse_rfc3339("2026-11-25T18:30:00Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-25T18:30:00Z");
        let offset = Timestamp::parse_rfc3339("2026-11-25T19:30:00+01:00").unwrap();
        assert_eq!(offset, t);
    }

    proptest::proptest! {
        #[test]
        fn display_matches_chrono_everywhere(millis in proptest::num::i64::ANY, near in -1i64 << 46..1i64 << 46) {
            for t in [Timestamp(millis), Timestamp(near)] {
                proptest::prop_assert_eq!(t.to_string(), t.to_datetime().to_rfc3339_opts(SecondsFormat::Secs, true));
            }
        }
    }

    #[test]
    fn rejects_garbage() {
        assert!(Timestamp::parse_rfc3339("tomorrow").is_err());
        assert!(Timestamp::parse_rfc3339("2026-13-01T00:00:00Z").is_err());
    }
}
