//! Request extractors that turn every malformed input into a precise [`ApiError`].

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use std::convert::Infallible;

use axum::extract::Path;
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use super::{ApiError, AppState, MAX_BODY_BYTES};
use crate::auth::{AuthError, Principal};
use crate::domain::OrderVersion;
use crate::node::Consistency;
use crate::state::{IdempotencyKey, Precondition};

/// A JSON body: 415 without a JSON content type, 413 over the size limit, 400 when it is not
/// JSON, 422 naming the field when it is JSON of the wrong shape.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(MAX_BODY_BYTES)
            } else {
                ApiError::MalformedJson(format!("the body could not be read: {e}"))
            }
        })?;
        parse_json(&bytes).map(JsonBody)
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => ApiError::InvalidField {
                detail: if path == "." { inner.to_string() } else { format!("{path}: {inner}") },
                field: path,
            },
            _ => ApiError::MalformedJson(inner.to_string()),
        }
    })?;
    deserializer.end().map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    Ok(value)
}

/// Query parameters, decoded (`+` and percent escapes); each handler parses the ones it
/// knows and names any it cannot parse. Bytes that do not decode to UTF-8 become U+FFFD,
/// which no parameter accepts, so they end in that parameter's 422. A name given twice
/// counts its last value.
///
/// Straight from `form_urlencoded` into a list: axum's `Query<HashMap<..>>` went through
/// serde_urlencoded, serde_path_to_error and a SipHash map, ~2.5k instructions of a stale read.
/// A query with nothing to decode (no `%`, no `+`: `?consistency=stale`) is not copied at all:
/// the request's URI is kept (a reference count) and read in place, which saved another 1.2k
/// (two strings and a list allocated and freed per request).
pub struct QueryParams(Query);

enum Query {
    /// Nothing in the query needs decoding: its pairs are slices of the URI.
    Plain(axum::http::Uri),
    Decoded(Vec<(String, String)>),
}

impl QueryParams {
    pub fn get(&self, name: &str) -> Option<&str> {
        let [value] = self.get_each([name]);
        value
    }

    /// The values of several names in one pass over the query (each name's last value).
    pub fn get_each<const N: usize>(&self, names: [&str; N]) -> [Option<&str>; N] {
        let mut values = [None; N];
        let mut note = |key: &str, value| {
            if let Some(at) = names.iter().position(|name| *name == key) {
                values[at] = Some(value);
            }
        };
        match &self.0 {
            Query::Plain(uri) => plain_pairs(uri.query().unwrap_or_default()).for_each(|(key, value)| note(key, value)),
            Query::Decoded(pairs) => pairs.iter().for_each(|(key, value)| note(key, value.as_str())),
        }
        values
    }
}

/// The pairs of a query that has nothing to decode, split as `form_urlencoded::parse` splits
/// them: on `&`, empty pieces skipped, name and value at the first `=` (no `=`: an empty value).
///
/// A byte loop rather than `str::split`: its searcher cost ~450 instructions per lookup on a
/// 17-byte query. `&` and `=` are ASCII, so every cut falls on a character boundary.
fn plain_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut next = 0;
    query.as_bytes().split(|&b| b == b'&').filter_map(move |piece| {
        let (start, end) = (next, next + piece.len());
        next = end + 1;
        let piece = query.get(start..end).filter(|piece| !piece.is_empty())?;
        Some(match piece.bytes().position(|b| b == b'=') {
            Some(eq) => (piece.get(..eq).unwrap_or_default(), piece.get(eq + 1..).unwrap_or_default()),
            None => (piece, ""),
        })
    })
}

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        if query.bytes().any(|b| b == b'%' || b == b'+') {
            Ok(QueryParams(Query::Decoded(form_urlencoded::parse(query.as_bytes()).into_owned().collect())))
        } else {
            Ok(QueryParams(Query::Plain(parts.uri.clone())))
        }
    }
}

/// The `{id}` path segment as text; an id that does not decode cannot name any order.
pub struct IdSegment(pub String);

impl<S: Send + Sync> FromRequestParts<S> for IdSegment {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(id)| IdSegment(id))
            .map_err(|_| ApiError::OrderNotFound)
    }
}

/// How long a request with a provider's new key id waits for the provider's keys to be read.
const PROVIDER_KEYS_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, node: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(header::AUTHORIZATION).map(|v| v.to_str().unwrap_or("\u{0}"));
        match node.keys.verify_header(header) {
            // A provider's token whose key is not known yet: the keys are being read (the
            // provider rotated); verified again once they are in.
            Err(e @ (AuthError::UnknownKey | AuthError::ProviderKeys(_))) => match node.keys.oidc() {
                Some(oidc) if oidc.await_keys(PROVIDER_KEYS_WAIT).await => Ok(node.keys.verify_header(header)?),
                _ => Err(e.into()),
            },
            outcome => Ok(outcome?),
        }
    }
}

/// Longest staleness a read may ask for.
const MAX_STALENESS_MS: u64 = 3_600_000;

/// `?consistency=linearizable` (default), `?consistency=stale`, or `?max_staleness_ms=N`
/// (every write acknowledged at least N ms before the read is in it).
pub fn consistency(query: &QueryParams) -> Result<Consistency, ApiError> {
    let [staleness, named] = query.get_each(["max_staleness_ms", "consistency"]);
    if let Some(raw) = staleness {
        let invalid = |detail: &str| ApiError::InvalidField { field: "max_staleness_ms".into(), detail: detail.into() };
        if named.is_some() {
            return Err(invalid("max_staleness_ms: give either it or consistency, not both"));
        }
        let ms: u64 = raw.parse().map_err(|_| invalid("max_staleness_ms: must be a whole number of milliseconds"))?;
        if ms > MAX_STALENESS_MS {
            return Err(invalid("max_staleness_ms: at most 3600000 (an hour)"));
        }
        return Ok(Consistency::Bounded(std::time::Duration::from_millis(ms)));
    }
    match named {
        None | Some("linearizable") => Ok(Consistency::Linearizable),
        Some("stale") => Ok(Consistency::Stale),
        Some(_) => Err(ApiError::InvalidField {
            field: "consistency".into(),
            detail: "consistency: must be 'linearizable' or 'stale'".into(),
        }),
    }
}

/// `If-Match`: absent, `*`, or a list of strong ETags `"<version>"`. Weak tags never match
/// (RFC 9110 requires strong comparison), so a list of only weak tags fails the precondition.
pub fn if_match(headers: &HeaderMap) -> Result<Option<Precondition>, ApiError> {
    let bad = |detail: &str| ApiError::InvalidHeader { header: "If-Match", detail: detail.into() };
    let mut versions = Vec::new();
    let mut present = false;
    let mut tags = 0;
    for value in headers.get_all(header::IF_MATCH) {
        present = true;
        let value = value.to_str().map_err(|_| bad("it is not ASCII"))?;
        for tag in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            tags += 1;
            if tag == "*" {
                return Ok(Some(Precondition::Any));
            }
            let weak = tag.starts_with("W/");
            let quoted = tag.trim_start_matches("W/");
            let inner = quoted
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .ok_or_else(|| bad("expected an ETag such as \"3\" (with the quotes) or *"))?;
            match inner.parse::<u64>() {
                Ok(v) if !weak => versions.push(OrderVersion(v)),
                // A well-formed tag we never issued simply does not match.
                _ => {}
            }
        }
    }
    if present && tags == 0 {
        return Err(bad("it is empty; send the ETag you read, such as \"3\", or *"));
    }
    Ok(present.then_some(Precondition::OneOf(versions)))
}

/// `Idempotency-Key`: optional; when present 1..=128 visible ASCII characters.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    value.to_str().ok().and_then(IdempotencyKey::parse).map(Some).ok_or(ApiError::InvalidHeader {
        header: "Idempotency-Key",
        detail: "it must be 1 to 128 visible ASCII characters (a UUID is a good choice)".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use std::time::Duration;

    async fn query(uri: &str) -> QueryParams {
        let (mut parts, ()) = Request::get(uri).body(()).unwrap().into_parts();
        QueryParams::from_request_parts(&mut parts, &()).await.unwrap()
    }

    #[tokio::test]
    async fn query_parameters_are_decoded_and_the_last_of_a_repeated_name_counts() {
        let q = query("/v1/orders?before=a%2Db+c&limit=5&limit=7&flag").await;
        assert_eq!(
            (q.get("before"), q.get("limit"), q.get("flag"), q.get("absent")),
            (Some("a-b c"), Some("7"), Some(""), None)
        );
        assert_eq!(consistency(&query("/v1/orders/x?consistency=stale").await).unwrap(), Consistency::Stale);
        // Read in place when nothing needs decoding, with the same pairs as the decoder gives.
        for raw in ["a=1&&b", "=x&k", "k=&k=1=2", "limit=5&limit=7", "&&", "a=%41", "a=b+c&a=d", "x=1&y"] {
            let q = query(&format!("/v1/orders?{raw}")).await;
            for name in ["a", "b", "k", "", "limit", "x", "y", "absent"] {
                let expected = form_urlencoded::parse(raw.as_bytes()).filter(|(k, _)| k == name).last().map(|(_, v)| v);
                assert_eq!(q.get(name), expected.as_deref(), "{name} in {raw}");
            }
        }
        assert!(query("/v1/orders").await.get("a").is_none());
        assert_eq!(consistency(&query("/v1/orders/x").await).unwrap(), Consistency::Linearizable);
        for bad in ["/x?consistency=%FFstale", "/x?consistency=%zz", "/x?consistency=STALE"] {
            let err = consistency(&query(bad).await).unwrap_err();
            assert!(matches!(err, ApiError::InvalidField { ref field, .. } if field == "consistency"), "{bad}: {err}");
        }
    }

    #[tokio::test]
    async fn the_consistency_a_read_asks_for() {
        let ask = |uri: &'static str| async move { consistency(&query(uri).await) };
        assert_eq!(ask("/x?consistency=linearizable").await.unwrap(), Consistency::Linearizable);
        assert_eq!(ask("/x?consistency=linearizable&consistency=stale").await.unwrap(), Consistency::Stale);
        assert_eq!(ask("/x?consistency=stale&consistency=linearizable").await.unwrap(), Consistency::Linearizable);
        assert_eq!(ask("/x?max_staleness_ms=250").await.unwrap(), Consistency::Bounded(Duration::from_millis(250)));
        assert_eq!(
            ask("/x?max_staleness_ms=1&max_staleness_ms=2").await.unwrap(),
            Consistency::Bounded(Duration::from_millis(2))
        );
        assert_eq!(ask("/x?max%5Fstaleness%5Fms=3").await.unwrap(), Consistency::Bounded(Duration::from_millis(3)));
        for (bad, says) in [
            ("/x?max_staleness_ms=5&consistency=stale", "not both"),
            ("/x?consistency=stale&max_staleness_ms=5", "not both"),
            ("/x?max_staleness_ms=-1", "whole number"),
            ("/x?max_staleness_ms=3600001", "at most"),
        ] {
            let err = ask(bad).await.unwrap_err();
            let ApiError::InvalidField { ref field, ref detail } = err else { panic!("{bad}: {err}") };
            assert_eq!(field, "max_staleness_ms", "{bad}");
            assert!(detail.contains(says), "{bad}: {detail}");
        }
    }

    fn headers(name: &'static str, value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn if_match_parses_lists_star_and_refuses_garbage() {
        assert_eq!(if_match(&HeaderMap::new()).unwrap(), None);
        assert_eq!(if_match(&headers("if-match", "*")).unwrap(), Some(Precondition::Any));
        assert_eq!(
            if_match(&headers("if-match", "\"2\", \"3\"")).unwrap(),
            Some(Precondition::OneOf(vec![OrderVersion(2), OrderVersion(3)]))
        );
        assert_eq!(if_match(&headers("if-match", "W/\"2\"")).unwrap(), Some(Precondition::OneOf(vec![])));
        assert!(if_match(&headers("if-match", "2")).is_err());
        assert!(if_match(&headers("if-match", "")).is_err());
    }

    #[test]
    fn json_errors_are_classified() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Body {
            size: crate::domain::Size,
        }
        assert!(matches!(parse_json::<Body>(b"{"), Err(ApiError::MalformedJson(_))));
        assert!(matches!(parse_json::<Body>(br#"{"size":"small"} x"#), Err(ApiError::MalformedJson(_))));
        match parse_json::<Body>(br#"{"size":"huge"}"#) {
            Err(ApiError::InvalidField { field, detail }) => {
                assert_eq!(field, "size");
                assert!(detail.contains("huge"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse_json::<Body>(br#"{"size":"small","extra":1}"#), Err(ApiError::InvalidField { .. })));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bodies_and_headers_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256), text in ".{0,120}") {
            #[derive(serde::Deserialize)]
            #[serde(deny_unknown_fields)]
            #[allow(dead_code)]
            struct Body {
                address: crate::domain::Address,
                size: crate::domain::Size,
                toppings: crate::domain::Toppings,
            }
            let _ = parse_json::<Body>(&bytes);
            let _ = parse_json::<Body>(text.as_bytes());
            if let Ok(value) = axum::http::HeaderValue::from_str(&text) {
                let mut h = HeaderMap::new();
                h.insert(header::IF_MATCH, value.clone());
                h.insert("idempotency-key", value);
                let _ = if_match(&h);
                let _ = idempotency_key(&h);
            }
        }
    }
}
