//! A data directory written by the release before stores (data format 4: one kitchen, rules
//! in each node's config) opens in this one: its orders become store "main"'s, the log entries
//! it had not yet made durable re-apply exactly as they did, and the catalog is seeded.
//!
//! The fixture `tests/fixtures/format4-data.tar.gz` was made with that release (f777dd9) by
//! `tests/fixtures/make-format4-data.sh`: slots.capacity = 3; ann, bob and cem booked
//! [`SLOT_DAY`] 12:00Z with Idempotency-Keys that live 100 years (dan was refused: full); bob
//! moved to 12:30; cem cancelled; after a clean stop and a restart, eve booked 12:30 and ann
//! changed her address, and the node was killed with SIGKILL at once, so those two writes were
//! in the log but not in the durable state.

mod common;

use common::{client, token, TestNode};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The day every order of the fixture books: the furthest a catalog's horizon (3650 days)
/// allowed when the fixture was made, so the test holds until then; the script rebuilds it.
const SLOT_DAY: &str = "2036-11-22";

fn at(time: &str) -> String {
    format!("{SLOT_DAY}T{time}:00Z")
}

async fn orders_of(node: &TestNode, user: &str) -> Vec<Value> {
    let page: Value =
        client().get(node.url("/v1/orders")).bearer_auth(token(user)).send().await.unwrap().json().await.unwrap();
    page["orders"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_format_4_data_directory_converts_into_store_main_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/format4-data.tar.gz");
    let status = std::process::Command::new("tar").arg("xzf").arg(fixture).arg("-C").arg(dir.path()).status().unwrap();
    assert!(status.success(), "tar could not unpack the fixture");
    let data = dir.path().join("data");
    let node = TestNode::start_on(&data, &["slots.capacity=3"]);

    let ann = orders_of(&node, "ann").await;
    assert_eq!(ann.len(), 1);
    assert_eq!(ann[0]["address"], "1 Main St, flat 2", "the change in the log re-applied");
    assert_eq!((ann[0]["version"].clone(), ann[0]["store_id"].clone()), (json!(2), json!("main")));
    assert_eq!(ann[0]["price_cents"], 1420, "the price fixed by the old release is kept");
    assert_eq!(ann[0]["editable_until"], at("11:30"), "the old cutoff (30 min) is kept");
    let eve = orders_of(&node, "eve").await;
    assert_eq!(eve.len(), 1, "the create in the log re-applied");
    assert_eq!(orders_of(&node, "bob").await[0]["delivery_slot"]["start"], at("12:30"));
    assert_eq!(orders_of(&node, "cem").await[0]["status"], "cancelled");
    assert!(orders_of(&node, "dan").await.is_empty());

    // One store with today's settings; the loads moved under it.
    let stores: Value = client().get(node.url("/v1/stores")).send().await.unwrap().json().await.unwrap();
    assert_eq!(stores["catalog_version"], 1);
    assert_eq!(stores["stores"].as_array().unwrap().len(), 1);
    assert_eq!(stores["stores"][0]["id"], "main");
    let slots: Value = client()
        .get(node.url("/v1/slots"))
        .query(&[("from", at("12:00")), ("to", at("13:00"))])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let remaining: Vec<u64> =
        slots["slots"].as_array().unwrap().iter().map(|s| s["remaining"].as_u64().unwrap()).collect();
    assert_eq!(remaining, [2, 1], "{slots}");

    // A retry of a create from before the upgrade still replays its order.
    let retry = client()
        .post(node.url("/v1/orders"))
        .bearer_auth(token("bob"))
        .header("Idempotency-Key", "key-bob")
        .json(
            &json!({ "address": "1 Main St", "size": "large", "toppings": ["mushroom"], "delivery_slot": at("12:00") }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status(), StatusCode::CREATED);
    assert_eq!(retry.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap()), Some("true"));

    // The converted state passes every check, and the converted orders still change.
    let check: Value = common::admin_get_json(&node.url("/admin/check")).await;
    assert_eq!(check["ok"], true, "{check}");
    let id = eve[0]["id"].as_str().unwrap();
    let cancel = client().delete(node.url(&format!("/v1/orders/{id}"))).bearer_auth(token("eve")).send().await.unwrap();
    assert_eq!(cancel.status(), StatusCode::OK);
}
