//! What names a store and where a delivery goes: store ids, points on the earth, postcodes.

use serde::{Deserialize, Serialize};

/// A store's id: 1..=40 characters of `a-z`, `0-9` and `-`, not starting with `-`. Ids appear
/// in URLs (`/v1/stores/{id}/slots`) and exports, so they are kept plain.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StoreId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreIdError {
    #[error("a store id is 1 to 40 characters of a-z, 0-9 and '-', not starting with '-'; got '{0}'")]
    Invalid(String),
}

impl StoreId {
    pub const MAX_LEN: usize = 40;

    pub fn parse(raw: &str) -> Result<Self, StoreIdError> {
        let ok = !raw.is_empty()
            && raw.len() <= Self::MAX_LEN
            && !raw.starts_with('-')
            && raw.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(StoreIdError::Invalid(raw.chars().take(60).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for StoreId {
    type Error = StoreIdError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<StoreId> for String {
    fn from(id: StoreId) -> Self {
        id.0
    }
}

impl std::fmt::Display for StoreId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A point on the earth (WGS 84): latitude in [-90, 90], longitude in [-180, 180], both finite.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "(f64, f64)", into = "(f64, f64)")]
pub struct GeoPoint {
    lat: f64,
    lon: f64,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GeoPointError {
    #[error("latitude must be a number from -90 to 90; got {0}")]
    Latitude(f64),
    #[error("longitude must be a number from -180 to 180; got {0}")]
    Longitude(f64),
}

impl GeoPoint {
    pub fn new(lat: f64, lon: f64) -> Result<Self, GeoPointError> {
        if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
            return Err(GeoPointError::Latitude(lat));
        }
        if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
            return Err(GeoPointError::Longitude(lon));
        }
        Ok(Self { lat, lon })
    }

    pub fn lat(self) -> f64 {
        self.lat
    }

    pub fn lon(self) -> f64 {
        self.lon
    }

    /// As a `geo` point: x is longitude, y latitude (GeoJSON's order).
    pub fn to_geo(self) -> geo::Point<f64> {
        geo::Point::new(self.lon, self.lat)
    }

    /// Great-circle distance in metres (haversine, mean earth radius), via `geo`.
    pub fn distance_m(self, other: GeoPoint) -> f64 {
        use geo::{Distance, Haversine};
        Haversine.distance(self.to_geo(), other.to_geo())
    }
}

// Both coordinates are finite (checked in `new`), so equality is an equivalence.
impl Eq for GeoPoint {}

impl TryFrom<(f64, f64)> for GeoPoint {
    type Error = GeoPointError;
    fn try_from((lat, lon): (f64, f64)) -> Result<Self, Self::Error> {
        Self::new(lat, lon)
    }
}

impl From<GeoPoint> for (f64, f64) {
    fn from(p: GeoPoint) -> Self {
        (p.lat, p.lon)
    }
}

/// A postcode as customers type it, normalised: upper case, inner spaces removed, 2..=10
/// characters of A-Z, 0-9 and '-'. "sw1a 1aa" and "SW1A1AA" are the same postcode.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Postcode(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostcodeError {
    #[error("a postcode is 2 to 10 letters, digits or '-' (spaces are ignored); got '{0}'")]
    Invalid(String),
}

impl Postcode {
    pub fn parse(raw: &str) -> Result<Self, PostcodeError> {
        let normal: String = raw.chars().filter(|c| !c.is_whitespace()).flat_map(char::to_uppercase).collect();
        let ok = (2..=10).contains(&normal.len())
            && normal.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(normal))
        } else {
            Err(PostcodeError::Invalid(raw.chars().take(30).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Postcode {
    type Error = PostcodeError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<Postcode> for String {
    fn from(p: Postcode) -> Self {
        p.0
    }
}

/// Where an order goes beyond its address text: the postcode and, when the client knows it,
/// the point. Either decides the store.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryPoint {
    pub postcode: Option<Postcode>,
    pub location: Option<GeoPoint>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_ids_are_plain_slugs() {
        assert!(StoreId::parse("berlin-mitte-2").is_ok());
        for bad in ["", "-x", "Berlin", "a b", "ä", &"x".repeat(41)] {
            assert!(StoreId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn points_must_be_on_the_earth() {
        assert!(GeoPoint::new(52.5, 13.4).is_ok());
        assert!(GeoPoint::new(90.1, 0.0).is_err());
        assert!(GeoPoint::new(0.0, -180.5).is_err());
        assert!(GeoPoint::new(f64::NAN, 0.0).is_err());
        assert!(GeoPoint::new(0.0, f64::INFINITY).is_err());
    }

    #[test]
    fn distance_berlin_to_potsdam_is_about_27_km() {
        let berlin = GeoPoint::new(52.5200, 13.4050).unwrap();
        let potsdam = GeoPoint::new(52.3906, 13.0645).unwrap();
        let km = berlin.distance_m(potsdam) / 1000.0;
        assert!((26.0..28.5).contains(&km), "{km}");
    }

    #[test]
    fn postcodes_normalise_case_and_spaces() {
        assert_eq!(Postcode::parse(" sw1a 1aa ").unwrap(), Postcode::parse("SW1A1AA").unwrap());
        assert!(Postcode::parse("1").is_err());
        assert!(Postcode::parse("10115!").is_err());
        assert!(Postcode::parse("12345678901").is_err());
    }
}
