//! Concurrent clients racing for the same user, slot or order version: exactly the right
//! number win, and the losers learn why.

mod common;

use std::collections::BTreeMap;

use futures::future::join_all;

use common::{client, create, get_json, order_body, problem_type, slot, token, TestNode};
use serde_json::{json, Value};

/// Count responses by status and, for errors, problem type.
async fn tally(responses: Vec<reqwest::Response>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for response in responses {
        let key = if response.status().is_success() {
            response.status().as_u16().to_string()
        } else {
            problem_type(response).await
        };
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}

/// One user racing 50 requests at once is what these tests are about; the per-user write limit
/// (tests/tls.rs) would answer most of them 429 before they race.
const NO_LIMITS: &str = "limits.enabled=false";
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_creates_for_one_user_give_exactly_one_order() {
    let node = TestNode::start_with(&[NO_LIMITS]);
    let attempts = (0..50).map(|i| {
        let body = order_body(&slot(3, 22 + (i % 10)));
        let node = &node;
        async move { create(node, "racer", &body).await }
    });
    let counts = tally(join_all(attempts).await).await;
    assert_eq!(counts.get("201"), Some(&1), "{counts:?}");
    assert_eq!(counts.get("/problems/order-exists"), Some(&49), "{counts:?}");
    let page: Value =
        client().get(node.url("/v1/orders")).bearer_auth(token("racer")).send().await.unwrap().json().await.unwrap();
    assert_eq!(page["orders"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_users_racing_for_ten_places_ten_win() {
    let node = TestNode::start_with(&["slots.capacity=10"]);
    let start = slot(3, 40);
    let attempts = (0..200).map(|i| {
        let body = order_body(&start);
        let node = &node;
        async move { create(node, &format!("user-{i}"), &body).await }
    });
    let counts = tally(join_all(attempts).await).await;
    assert_eq!(counts.get("201"), Some(&10), "{counts:?}");
    assert_eq!(counts.get("/problems/slot-full"), Some(&190), "{counts:?}");
    let list: Value = get_json(&node.url("/v1/slots"), &[("from", start.as_str()), ("to", slot(3, 41).as_str())]).await;
    assert_eq!(list["slots"][0]["remaining"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_changes_with_the_same_if_match_one_wins() {
    let node = TestNode::start_with(&[NO_LIMITS]);
    let order: Value = create(&node, "editor", &order_body(&slot(3, 30))).await.json().await.unwrap();
    let url = node.url(&format!("/v1/orders/{}", order["id"].as_str().unwrap()));
    let attempts = (0..20).map(|i| {
        let body = json!({"address": format!("{i} New St"), "size": "small", "delivery_slot": slot(3, 30)});
        let url = url.clone();
        async move {
            client()
                .put(&url)
                .bearer_auth(token("editor"))
                .header("If-Match", "\"1\"")
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    });
    let counts = tally(join_all(attempts).await).await;
    assert_eq!(counts.get("200"), Some(&1), "{counts:?}");
    assert_eq!(counts.get("/problems/precondition-failed"), Some(&19), "{counts:?}");
    let now: Value = client().get(&url).bearer_auth(token("editor")).send().await.unwrap().json().await.unwrap();
    assert_eq!(now["version"], 2);
}
