//! HTTP caching of the public reads: ETag, If-None-Match → 304, Cache-Control per resource;
//! a user's and an admin's answers are never stored by a cache.

mod common;

use common::cluster::admin_token;
use common::{client, create, order_body, slot, token, TestNode};
use reqwest::StatusCode;

const CATALOG: &str = "public, max-age=60, stale-while-revalidate=600";
const AVAILABILITY: &str = "public, max-age=1, stale-while-revalidate=5";
const PRIVATE: &str = "private, no-store";

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers().get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

#[tokio::test]
async fn the_catalog_is_tagged_by_its_version_and_answers_304_when_unchanged() {
    let node = TestNode::start();
    for path in ["/v1/menu", "/v1/stores", "/v1/stores/locate?postcode=10115"] {
        let first = client().get(node.url(path)).send().await.unwrap();
        assert_eq!(first.status(), StatusCode::OK, "{path}");
        assert_eq!(
            (header(&first, "etag"), header(&first, "cache-control")),
            ("\"c1\"".into(), CATALOG.into()),
            "{path}"
        );
        let again = client().get(node.url(path)).header("if-none-match", "\"c1\"").send().await.unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
        assert_eq!(header(&again, "etag"), "\"c1\"");
        assert!(again.bytes().await.unwrap().is_empty(), "a 304 has no body");
    }
    // A new catalog is a new version, so a new tag.
    let admin = admin_token();
    let current: serde_json::Value =
        client().get(node.url("/admin/catalog")).bearer_auth(&admin).send().await.unwrap().json().await.unwrap();
    let mut catalog = current["catalog"].clone();
    catalog["menu"]["sizes"]["small"] = serde_json::json!(850);
    let applied = client().put(node.url("/admin/catalog")).bearer_auth(&admin).json(&catalog).send().await.unwrap();
    assert_eq!(header(&applied, "cache-control"), PRIVATE, "admin answers are never cached");
    let after = client().get(node.url("/v1/menu")).header("if-none-match", "\"c1\"").send().await.unwrap();
    assert_eq!((after.status(), header(&after, "etag")), (StatusCode::OK, "\"c2\"".into()));
}

#[tokio::test]
async fn availability_revalidates_cheaply_and_changes_its_tag_with_a_booking() {
    let node = TestNode::start();
    let start = slot(2, 30);
    let url = node.url(&format!("/v1/stores/main/slots?from={start}&to={}", slot(2, 31)));
    let first = client().get(&url).send().await.unwrap();
    assert_eq!(header(&first, "cache-control"), AVAILABILITY);
    let tag = header(&first, "etag");
    assert!(tag.starts_with('"') && tag.len() > 4, "{tag}");
    let same = client().get(&url).header("if-none-match", &tag).send().await.unwrap();
    assert_eq!(same.status(), StatusCode::NOT_MODIFIED);
    // A booking changes the remaining places, so the answer and its tag.
    assert_eq!(create(&node, "booker", &order_body(&start)).await.status(), StatusCode::CREATED);
    let changed = client().get(&url).header("if-none-match", &tag).send().await.unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    assert_ne!(header(&changed, "etag"), tag);
    let legacy = client().get(node.url("/v1/slots")).send().await.unwrap();
    assert_eq!(header(&legacy, "cache-control"), AVAILABILITY);
}

#[tokio::test]
async fn a_users_orders_and_every_error_are_never_stored_by_a_cache() {
    let node = TestNode::start();
    let created = create(&node, "pia", &order_body(&slot(2, 32))).await;
    assert_eq!(header(&created, "cache-control"), PRIVATE);
    let list = client().get(node.url("/v1/orders")).bearer_auth(token("pia")).send().await.unwrap();
    assert_eq!(header(&list, "cache-control"), PRIVATE);
    let waitlist = client().get(node.url("/v1/waitlist")).bearer_auth(token("pia")).send().await.unwrap();
    assert_eq!((waitlist.status(), header(&waitlist, "cache-control")), (StatusCode::NOT_FOUND, PRIVATE.into()));
    let bad_range = client().get(node.url("/v1/slots?from=nope")).send().await.unwrap();
    assert_eq!(
        (bad_range.status(), header(&bad_range, "cache-control")),
        (StatusCode::UNPROCESSABLE_ENTITY, PRIVATE.into())
    );
    // The web UI's own assets keep their policy (revalidate every time).
    let page = client().get(node.url("/")).send().await.unwrap();
    assert_eq!(header(&page, "cache-control"), "no-cache");
}

/// A long answer (a fortnight of slots) goes out gzipped to a client that asks, with a weak
/// ETag that still revalidates to 304; the same bytes as the plain answer once unzipped. A
/// short answer and an order's creation are never compressed.
#[tokio::test]
async fn long_answers_are_gzipped_for_clients_that_ask_and_still_revalidate() {
    use std::io::Read;
    let node = TestNode::start();
    let slots = node.url(&format!("/v1/slots?from={}&to={}", slot(1, 0), slot(15, 0)));
    let plain = client().get(&slots).send().await.unwrap();
    assert_eq!(header(&plain, "content-encoding"), "");
    let strong = header(&plain, "etag");
    assert!(strong.starts_with('"'), "{strong}");
    let text = plain.text().await.unwrap();
    let zipped = client().get(&slots).header("accept-encoding", "gzip").send().await.unwrap();
    assert_eq!(
        (header(&zipped, "content-encoding"), header(&zipped, "etag"), header(&zipped, "cache-control")),
        ("gzip".into(), format!("W/{strong}"), AVAILABILITY.into())
    );
    let bytes = zipped.bytes().await.unwrap();
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(&bytes[..]).read_to_string(&mut unzipped).unwrap();
    assert_eq!(unzipped, text);
    assert!(bytes.len() * 5 < text.len(), "{} bytes gzipped of {}", bytes.len(), text.len());
    let again = client()
        .get(&slots)
        .header("accept-encoding", "gzip")
        .header("if-none-match", format!("W/{strong}"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let menu = client().get(node.url("/v1/menu")).header("accept-encoding", "gzip").send().await.unwrap();
    assert_eq!(header(&menu, "content-encoding"), "", "a short answer is sent as it is");
    let created = client()
        .post(node.url("/v1/orders"))
        .bearer_auth(token("zip"))
        .header("accept-encoding", "gzip")
        .json(&order_body(&slot(2, 20)))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(header(&created, "content-encoding"), "");
    // A streamed answer (billing's export) gzipped whole, the same rows as the plain one.
    let export = |encoding: Option<&'static str>| {
        let mut request = client().get(node.url("/admin/export?format=ndjson")).bearer_auth(admin_token());
        if let Some(encoding) = encoding {
            request = request.header("accept-encoding", encoding);
        }
        request.send()
    };
    let plain = export(None).await.unwrap().text().await.unwrap();
    let zipped = export(Some("gzip")).await.unwrap();
    assert_eq!(zipped.status(), StatusCode::OK);
    let bytes = zipped.bytes().await.unwrap();
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(&bytes[..]).read_to_string(&mut unzipped).unwrap();
    assert_eq!(unzipped, plain);
    assert!(plain.contains("\"user\":\"zip\""), "{plain}");
}
