//! HTTP caching of the public reads (RFC 9110 / 9111): a strong `ETag` on every cacheable
//! answer, `If-None-Match` answered `304 Not Modified` without a body, and a `Cache-Control`
//! chosen per kind of resource. Everything else — a user's orders, the waitlist, admin — leaves
//! with `private, no-store` (set once around the router for any answer that names no policy).
//!
//! | resource | changes when | `Cache-Control` |
//! | --- | --- | --- |
//! | catalog: `/v1/menu`, `/v1/stores`, `/v1/stores/locate` | an admin applies a catalog (rarely) | `public, max-age=60, stale-while-revalidate=600` |
//! | availability: `/v1/stores/{id}/slots`, `/v1/slots` | every booking | `public, max-age=1, stale-while-revalidate=5` |
//!
//! The catalog's ETag is its version; availability's is a digest of the answer (it moves with
//! bookings and with the clock, as slots pass their cutoff).
//!
//! The long answers (slot lists, exports, the analytics report, the kitchen's list, the OpenAPI
//! document) go out gzip-compressed to a client that asks for it ([`compressed`]; a month of
//! slots is 89 KB of JSON, 6 KB gzipped), with the ETag made weak as nginx does: the bytes differ
//! from the uncompressed answer's, and `If-None-Match` compares weakly (RFC 9110 13.1.2), so a
//! browser's revalidation still answers 304. Short answers and the order writes are left alone.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tower_http::compression::predicate::{DefaultPredicate, Predicate, SizeAbove};
use tower_http::compression::CompressionLayer;

use super::ApiError;

/// What an answer is, for caches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CachePolicy {
    /// Changes only when a catalog is applied.
    Catalog,
    /// Remaining places: changes with every booking.
    Availability,
}

impl CachePolicy {
    fn header(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            CachePolicy::Catalog => "public, max-age=60, stale-while-revalidate=600",
            CachePolicy::Availability => "public, max-age=1, stale-while-revalidate=5",
        })
    }
}

/// For every answer that names no caching policy: a user's orders, the waitlist, admin, errors.
pub const PRIVATE: HeaderValue = HeaderValue::from_static("private, no-store");

/// The ETag of catalog version `version`.
pub fn catalog_tag(version: u64) -> String {
    format!("\"c{version}\"")
}

/// `body` as JSON with `policy`, tagged `etag` (or by a digest of the body), or `304` when the
/// request's `If-None-Match` already names that tag.
pub fn cached_json<T: Serialize>(
    request: &HeaderMap,
    policy: CachePolicy,
    etag: Option<String>,
    body: &T,
) -> Result<Response, ApiError> {
    let bytes = serde_json::to_vec(body).map_err(|_| ApiError::Internal)?;
    let tag = etag.unwrap_or_else(|| digest_tag(&bytes));
    let tag = HeaderValue::from_str(&tag).map_err(|_| ApiError::Internal)?;
    let fresh = request.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| matches(v, &tag));
    let mut response =
        if fresh { StatusCode::NOT_MODIFIED.into_response() } else { (StatusCode::OK, bytes).into_response() };
    let headers = response.headers_mut();
    if !fresh {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    headers.insert(header::ETAG, tag);
    headers.insert(header::CACHE_CONTROL, policy.header());
    Ok(response)
}

fn digest_tag(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"a{hex}\"")
}

/// `If-None-Match` uses the weak comparison (RFC 9110 13.1.2): `*`, or any listed tag whose
/// opaque part equals ours, `W/` or not.
fn matches(if_none_match: &str, tag: &HeaderValue) -> bool {
    let ours = tag.to_str().unwrap_or_default();
    if_none_match.split(',').map(str::trim).any(|t| t == "*" || t.trim_start_matches("W/") == ours)
}

/// `route` with its answers gzip-compressed for clients that send `Accept-Encoding: gzip`,
/// when they are over 1 KiB (never an event stream), and the ETag of a compressed answer weak.
pub(super) fn compressed<S: Clone + Send + Sync + 'static>(route: MethodRouter<S>) -> MethodRouter<S> {
    let when = DefaultPredicate::new().and(SizeAbove::new(1024));
    route
        .layer(CompressionLayer::new().gzip(true).no_br().no_deflate().no_zstd().compress_when(when))
        .layer(axum::middleware::map_response(weaken_etag_when_encoded))
}

async fn weaken_etag_when_encoded(mut response: Response) -> Response {
    if response.headers().contains_key(header::CONTENT_ENCODING) {
        let weak = response.headers().get(header::ETAG).and_then(|t| t.to_str().ok()).filter(|t| !t.starts_with("W/"));
        if let Some(weak) = weak.and_then(|t| HeaderValue::from_str(&format!("W/{t}")).ok()) {
            response.headers_mut().insert(header::ETAG, weak);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(if_none_match: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = if_none_match {
            h.insert(header::IF_NONE_MATCH, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn a_matching_if_none_match_is_304_without_a_body_and_with_the_same_headers() {
        let body = serde_json::json!({"a": 1});
        let first = cached_json(&request(None), CachePolicy::Availability, None, &body).unwrap();
        assert_eq!(first.status(), StatusCode::OK);
        let tag = first.headers()[header::ETAG].to_str().unwrap().to_owned();
        assert_eq!(first.headers()[header::CACHE_CONTROL], "public, max-age=1, stale-while-revalidate=5");
        for condition in [tag.clone(), format!("W/{tag}"), format!("\"x\", {tag}"), "*".into()] {
            let again = cached_json(&request(Some(&condition)), CachePolicy::Availability, None, &body).unwrap();
            assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{condition}");
            assert_eq!(again.headers()[header::ETAG], tag.as_str());
            assert!(again.headers().get(header::CONTENT_TYPE).is_none());
        }
        let other = cached_json(&request(Some("\"nope\"")), CachePolicy::Availability, None, &body).unwrap();
        assert_eq!(other.status(), StatusCode::OK);
        let changed = cached_json(&request(Some(&tag)), CachePolicy::Availability, None, &serde_json::json!({"a": 2}));
        assert_eq!(changed.unwrap().status(), StatusCode::OK, "another body has another tag");
    }

    #[test]
    fn the_catalog_is_tagged_by_its_version() {
        let r = cached_json(&request(Some("\"c7\"")), CachePolicy::Catalog, Some(catalog_tag(7)), &1).unwrap();
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(r.headers()[header::CACHE_CONTROL], "public, max-age=60, stale-while-revalidate=600");
    }
}
