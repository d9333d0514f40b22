//! A store's delivery area: a GeoJSON polygon or multipolygon, a radius around the store, or
//! everywhere (a one-store chain), plus the postcodes it serves. Geometry is georust `geo`'s.

use std::collections::BTreeSet;

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
    pub postcodes: BTreeSet<Postcode>,
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

impl DeliveryArea {
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

    pub fn serves_postcode(&self, postcode: &Postcode) -> bool {
        matches!(self.shape, AreaShape::Everywhere) || self.postcodes.contains(postcode)
    }

    pub fn is_everywhere(&self) -> bool {
        matches!(self.shape, AreaShape::Everywhere)
    }
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
        let area = DeliveryArea {
            shape: AreaShape::Polygon(DeliveryArea::parse_geojson(SQUARE).unwrap()),
            postcodes: BTreeSet::new(),
        };
        assert!(area.contains(pt(52.5, 13.5)));
        assert!(area.contains(pt(52.0, 13.5)), "a point on the edge is inside");
        assert!(!area.contains(pt(51.9, 13.5)));
    }

    #[test]
    fn radius_is_great_circle_distance() {
        let centre = pt(52.52, 13.405);
        let area = DeliveryArea { shape: DeliveryArea::radius(centre, 3.0).unwrap(), postcodes: BTreeSet::new() };
        assert!(area.contains(pt(52.53, 13.41)));
        assert!(!area.contains(pt(52.60, 13.405)), "about 9 km north");
        assert!(DeliveryArea::radius(centre, 0.0).is_err());
        assert!(DeliveryArea::radius(centre, f64::NAN).is_err());
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
}
