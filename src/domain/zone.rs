//! A store's delivery area: a GeoJSON polygon or multipolygon, a radius around the store, or
//! everywhere (a one-store chain), plus the postcodes it serves (whole postcodes, prefixes and
//! ranges). Geometry is georust `geo`'s.

use geo::{Contains, MultiPolygon};

use super::{GeoPoint, Postcode};

/// The shape a store delivers to.
#[derive(Clone, Debug, PartialEq)]
pub enum AreaShape {
    /// Any address: the single store of a chain that has not drawn areas yet.
    Everywhere,
    /// Within `metres` of the store's own location (great-circle distance).
    Radius { centre: GeoPoint, metres: f64 },
    /// Inside the (multi)polygon; a point on its boundary counts as inside.
    Polygon(MultiPolygon<f64>),
    /// Only by postcode.
    PostcodesOnly,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryArea {
    pub shape: AreaShape,
    /// Sorted, each once.
    pub postcodes: Vec<PostcodeRule>,
    /// A rectangle (longitude, latitude) holding the whole shape, when there is a simple one:
    /// finding the store for an address rules out the far stores with four comparisons before
    /// asking `geo` the exact question. `None` tests the shape itself.
    envelope: Option<geo::Rect<f64>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AreaError {
    #[error("not GeoJSON: {0}")]
    NotGeoJson(String),
    #[error("the GeoJSON geometry must be a Polygon or MultiPolygon; got {0}")]
    NotPolygon(String),
    #[error("the polygon has no area (a ring needs at least 4 positions, the last equal to the first)")]
    Degenerate,
    #[error("the radius must be more than 0 and at most 100 km; got {0} km")]
    Radius(String),
}

/// A radius envelope is this much larger than its four compass points, so that the circle's
/// widest longitudes (a little poleward of its centre's latitude) are always inside it.
const RADIUS_ENVELOPE_MARGIN: f64 = 1.25;

impl DeliveryArea {
    pub fn new(shape: AreaShape, mut postcodes: Vec<PostcodeRule>) -> Self {
        postcodes.sort();
        postcodes.dedup();
        let envelope = match &shape {
            AreaShape::Polygon(multi) => geo::BoundingRect::bounding_rect(multi),
            AreaShape::Radius { centre, metres } => radius_envelope(*centre, *metres),
            AreaShape::Everywhere | AreaShape::PostcodesOnly => None,
        };
        Self { shape, postcodes, envelope }
    }

    /// Parse a GeoJSON `Polygon` or `MultiPolygon` geometry (or a Feature holding one).
    pub fn parse_geojson(text: &str) -> Result<MultiPolygon<f64>, AreaError> {
        let parsed: geojson::GeoJson =
            text.parse().map_err(|e: geojson::Error| AreaError::NotGeoJson(e.to_string()))?;
        let geometry = match parsed {
            geojson::GeoJson::Geometry(g) => g,
            geojson::GeoJson::Feature(geojson::Feature { geometry: Some(g), .. }) => g,
            other => return Err(AreaError::NotPolygon(kind_of(&other).into())),
        };
        let shape: geo::Geometry<f64> =
            geometry.try_into().map_err(|e: geojson::Error| AreaError::NotGeoJson(e.to_string()))?;
        let multi = match shape {
            geo::Geometry::Polygon(p) => MultiPolygon::new(vec![p]),
            geo::Geometry::MultiPolygon(m) => m,
            other => return Err(AreaError::NotPolygon(geometry_kind(&other).into())),
        };
        let degenerate = multi.0.is_empty() || multi.0.iter().any(|p| p.exterior().0.len() < 4);
        if degenerate {
            return Err(AreaError::Degenerate);
        }
        Ok(multi)
    }

    pub fn radius(centre: GeoPoint, km: f64) -> Result<AreaShape, AreaError> {
        if !km.is_finite() || km <= 0.0 || km > 100.0 {
            return Err(AreaError::Radius(km.to_string()));
        }
        Ok(AreaShape::Radius { centre, metres: km * 1000.0 })
    }

    /// Whether the shape (not the postcode list) contains `point`.
    pub fn contains(&self, point: GeoPoint) -> bool {
        if self.envelope.is_some_and(|e| !geo::Intersects::intersects(&e, &point.to_geo())) {
            return false;
        }
        match &self.shape {
            AreaShape::Everywhere => true,
            AreaShape::Radius { centre, metres } => centre.distance_m(point) <= *metres,
            AreaShape::Polygon(multi) => {
                let p = point.to_geo();
                // `contains` excludes the boundary; a house on the border line is delivered to.
                multi.contains(&p) || multi.0.iter().any(|poly| geo::Intersects::intersects(poly, &p))
            }
            AreaShape::PostcodesOnly => false,
        }
    }

    /// The most specific entry of the postcode list that matches `postcode`.
    pub fn postcode_rule(&self, postcode: &Postcode) -> Option<&PostcodeRule> {
        self.postcodes.iter().filter(|r| r.matches(postcode)).max_by_key(|r| r.specificity())
    }

    pub fn is_everywhere(&self) -> bool {
        matches!(self.shape, AreaShape::Everywhere)
    }
}

/// The rectangle around a circle of `metres` around `centre`: its compass points by `geo`'s
/// haversine destination, widened by a margin; `None` near a pole or across the antimeridian,
/// where a rectangle in longitude and latitude is no simple envelope.
fn radius_envelope(centre: GeoPoint, metres: f64) -> Option<geo::Rect<f64>> {
    use geo::{Destination, Haversine};
    let c = centre.to_geo();
    let [north, east, south, west] = [0.0, 90.0, 180.0, 270.0].map(|bearing| Haversine.destination(c, bearing, metres));
    let (half_lat, half_lon) = ((north.y() - south.y()) / 2.0, (east.x() - west.x()) / 2.0);
    let (dlat, dlon) = (half_lat * RADIUS_ENVELOPE_MARGIN, half_lon * RADIUS_ENVELOPE_MARGIN);
    let sane = half_lat > 0.0 && half_lon > 0.0 && c.y().abs() + dlat < 80.0 && c.x().abs() + dlon < 180.0;
    sane.then(|| {
        geo::Rect::new(
            geo::coord! { x: c.x() - dlon, y: c.y() - dlat },
            geo::coord! { x: c.x() + dlon, y: c.y() + dlat },
        )
    })
}

/// How a store's area is given, for people: `everywhere`, `radius`, `area` or `postcodes`.
pub fn zone_kind(area: &DeliveryArea) -> &'static str {
    match area.shape {
        AreaShape::Everywhere => "everywhere",
        AreaShape::Radius { .. } => "radius",
        AreaShape::Polygon(_) => "area",
        AreaShape::PostcodesOnly => "postcodes",
    }
}

/// One entry of a store's postcode list, normalised as postcodes are (case, spaces):
/// - a whole postcode: `10115`, `SW1A 1AA`;
/// - a prefix, written with a trailing `*`: `W1D*` (a UK outward code: W1D 3QF, W1D 4TQ, …);
/// - a range of digit postcodes of one length, both ends included: `10115-10179`. Each end has
///   at least three digits, so a postcode with a dash such as Poland's `00-950` stays a whole
///   postcode.
///
/// When several entries (of one store or of several) match a postcode, the most specific wins
/// ([`PostcodeRule::specificity`]): a whole postcode before anything else; then the one that
/// fixes more leading characters (a prefix's length, a range's common leading digits); then the
/// narrower range (a prefix counts as the widest).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PostcodeRule {
    Whole(Postcode),
    Prefix(String),
    Range { from: String, to: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostcodeRuleError {
    #[error(transparent)]
    Postcode(#[from] super::PostcodeError),
    #[error("a prefix is 1 to 9 letters or digits before the '*' (such as W1D*); got '{0}'")]
    Prefix(String),
    #[error("the range '{0}' runs backwards: give the lower postcode first")]
    Backwards(String),
}

/// Ordered: the greater, the more specific.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Specificity {
    whole: bool,
    fixed: usize,
    narrowness: std::cmp::Reverse<u64>,
}

impl PostcodeRule {
    pub fn parse(raw: &str) -> Result<Self, PostcodeRuleError> {
        let normal: String = raw.chars().filter(|c| !c.is_whitespace()).flat_map(char::to_uppercase).collect();
        if let Some(prefix) = normal.strip_suffix('*') {
            let ok =
                (1..=9).contains(&prefix.len()) && prefix.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
            return if ok {
                Ok(Self::Prefix(prefix.to_owned()))
            } else {
                Err(PostcodeRuleError::Prefix(raw.chars().take(30).collect()))
            };
        }
        if let Some((from, to)) = normal.split_once('-') {
            let digits = |s: &str| s.len() >= 3 && s.bytes().all(|b| b.is_ascii_digit());
            if from.len() == to.len() && digits(from) && digits(to) {
                if from > to {
                    return Err(PostcodeRuleError::Backwards(normal));
                }
                return Ok(Self::Range { from: from.to_owned(), to: to.to_owned() });
            }
        }
        Ok(Self::Whole(Postcode::parse(raw)?))
    }

    pub fn matches(&self, code: &Postcode) -> bool {
        let code = code.as_str();
        match self {
            Self::Whole(whole) => whole.as_str() == code,
            Self::Prefix(prefix) => code.starts_with(prefix.as_str()),
            // Digit strings of one length compare as their numbers do.
            Self::Range { from, to } => {
                code.len() == from.len()
                    && code.bytes().all(|b| b.is_ascii_digit())
                    && from.as_str() <= code
                    && code <= to.as_str()
            }
        }
    }

    pub fn specificity(&self) -> Specificity {
        let (whole, fixed, span) = match self {
            Self::Whole(code) => (true, code.as_str().len(), 0),
            Self::Prefix(prefix) => (false, prefix.len(), u64::MAX),
            Self::Range { from, to } => {
                let common = from.bytes().zip(to.bytes()).take_while(|(a, b)| a == b).count();
                let number = |s: &str| s.parse::<u64>().unwrap_or(0);
                (false, common, number(to).saturating_sub(number(from)))
            }
        };
        Specificity { whole, fixed, narrowness: std::cmp::Reverse(span) }
    }
}

impl std::fmt::Display for PostcodeRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Whole(code) => f.write_str(code.as_str()),
            Self::Prefix(prefix) => write!(f, "{prefix}*"),
            Self::Range { from, to } => write!(f, "{from}-{to}"),
        }
    }
}

fn kind_of(g: &geojson::GeoJson) -> &'static str {
    match g {
        geojson::GeoJson::Geometry(_) => "Geometry",
        geojson::GeoJson::Feature(_) => "a Feature without geometry",
        geojson::GeoJson::FeatureCollection(_) => "FeatureCollection",
    }
}

fn geometry_kind(g: &geo::Geometry<f64>) -> &'static str {
    match g {
        geo::Geometry::Point(_) => "Point",
        geo::Geometry::Line(_) | geo::Geometry::LineString(_) => "LineString",
        geo::Geometry::MultiPoint(_) => "MultiPoint",
        geo::Geometry::MultiLineString(_) => "MultiLineString",
        geo::Geometry::GeometryCollection(_) => "GeometryCollection",
        _ => "another geometry",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SQUARE: &str =
        r#"{"type":"Polygon","coordinates":[[[13.0,52.0],[14.0,52.0],[14.0,53.0],[13.0,53.0],[13.0,52.0]]]}"#;

    fn pt(lat: f64, lon: f64) -> GeoPoint {
        GeoPoint::new(lat, lon).unwrap()
    }

    #[test]
    fn polygon_contains_inside_and_boundary_not_outside() {
        let area = DeliveryArea::new(AreaShape::Polygon(DeliveryArea::parse_geojson(SQUARE).unwrap()), Vec::new());
        assert!(area.contains(pt(52.5, 13.5)));
        assert!(area.contains(pt(52.0, 13.5)), "a point on the edge is inside");
        assert!(!area.contains(pt(51.9, 13.5)));
    }

    #[test]
    fn radius_is_great_circle_distance() {
        let centre = pt(52.52, 13.405);
        let area = DeliveryArea::new(DeliveryArea::radius(centre, 3.0).unwrap(), Vec::new());
        assert!(area.contains(pt(52.53, 13.41)));
        assert!(!area.contains(pt(52.60, 13.405)), "about 9 km north");
        assert!(DeliveryArea::radius(centre, 0.0).is_err());
        assert!(DeliveryArea::radius(centre, f64::NAN).is_err());
    }

    #[test]
    fn the_envelope_never_rules_out_a_point_inside_the_circle() {
        // Every direction at 99 % of the radius, at several latitudes: still inside.
        use geo::{Destination, Haversine};
        for lat in [-70.0, -45.0, 0.0, 30.0, 52.5, 69.0] {
            let centre = pt(lat, 13.4);
            let area = DeliveryArea::new(DeliveryArea::radius(centre, 50.0).unwrap(), Vec::new());
            assert!(area.envelope.is_some(), "{lat}");
            for bearing in (0..360).step_by(5) {
                let p = Haversine.destination(centre.to_geo(), f64::from(bearing), 49_500.0);
                assert!(area.contains(pt(p.y(), p.x())), "lat {lat}, bearing {bearing}");
            }
        }
        // Near a pole and across the antimeridian there is no envelope: the shape decides.
        assert!(DeliveryArea::new(DeliveryArea::radius(pt(85.0, 0.0), 50.0).unwrap(), Vec::new()).envelope.is_none());
        let fiji = DeliveryArea::new(DeliveryArea::radius(pt(-17.0, 179.9), 50.0).unwrap(), Vec::new());
        assert!(fiji.envelope.is_none());
        assert!(fiji.contains(pt(-17.0, -179.9)), "across the antimeridian, 21 km away");
    }

    #[test]
    fn bad_geojson_is_named() {
        assert!(matches!(DeliveryArea::parse_geojson("{"), Err(AreaError::NotGeoJson(_))));
        let point = r#"{"type":"Point","coordinates":[13.0,52.0]}"#;
        assert_eq!(DeliveryArea::parse_geojson(point), Err(AreaError::NotPolygon("Point".into())));
        let multi =
            r#"{"type":"MultiPolygon","coordinates":[[[[0,0],[1,0],[1,1],[0,0]]],[[[5,5],[6,5],[6,6],[5,5]]]]}"#;
        assert_eq!(DeliveryArea::parse_geojson(multi).unwrap().0.len(), 2);
    }

    fn rule(raw: &str) -> PostcodeRule {
        PostcodeRule::parse(raw).unwrap()
    }

    fn code(raw: &str) -> Postcode {
        Postcode::parse(raw).unwrap()
    }

    #[test]
    fn postcode_rules_are_whole_prefixes_or_ranges() {
        assert_eq!(rule(" w1d *"), PostcodeRule::Prefix("W1D".into()));
        assert_eq!(rule("10115 - 10179"), PostcodeRule::Range { from: "10115".into(), to: "10179".into() });
        assert_eq!(rule("sw1a 1aa"), PostcodeRule::Whole(code("SW1A1AA")));
        // A dash between ends of different lengths, or of fewer than three digits: a whole postcode.
        assert_eq!(rule("00-950"), PostcodeRule::Whole(code("00-950")));
        assert_eq!(rule("1000-001"), PostcodeRule::Whole(code("1000-001")));
        assert_eq!(rule("W1D*").to_string(), "W1D*");
        assert_eq!(rule("10115-10179").to_string(), "10115-10179");
        assert!(matches!(PostcodeRule::parse("*"), Err(PostcodeRuleError::Prefix(_))));
        assert!(matches!(PostcodeRule::parse("W-1*"), Err(PostcodeRuleError::Prefix(_))));
        assert!(matches!(PostcodeRule::parse("10179-10115"), Err(PostcodeRuleError::Backwards(_))));
        assert!(matches!(PostcodeRule::parse("!"), Err(PostcodeRuleError::Postcode(_))));
    }

    #[test]
    fn a_rule_matches_what_it_says_and_nothing_else() {
        assert!(rule("W1D*").matches(&code("w1d 3qf")));
        assert!(!rule("W1D*").matches(&code("W1F 0AA")));
        let range = rule("10115-10179");
        for inside in ["10115", "10150", "10179"] {
            assert!(range.matches(&code(inside)), "{inside}");
        }
        for outside in ["10114", "10180", "1011", "101150", "1O150"] {
            assert!(!range.matches(&code(outside)), "{outside}");
        }
        assert!(rule("1010").matches(&code("1010")) && !rule("1010").matches(&code("10101")));
    }

    #[test]
    fn the_most_specific_rule_wins() {
        let area = DeliveryArea::new(
            AreaShape::PostcodesOnly,
            vec![rule("W1*"), rule("W1D*"), rule("10000-10999"), rule("10100-10199"), rule("101*"), rule("10115")],
        );
        let best = |c: &str| area.postcode_rule(&code(c)).map(ToString::to_string);
        assert_eq!(best("W1D 3QF").as_deref(), Some("W1D*"));
        assert_eq!(best("W1F 0AA").as_deref(), Some("W1*"));
        assert_eq!(best("10115").as_deref(), Some("10115"), "a whole postcode beats everything");
        assert_eq!(best("10150").as_deref(), Some("10100-10199"), "as many fixed digits as 101*, and narrower");
        assert_eq!(best("10950").as_deref(), Some("10000-10999"));
        assert_eq!(best("E1 6AN"), None);
    }
}
