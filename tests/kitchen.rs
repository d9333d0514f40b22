//! The kitchen's side, black-box: staff of a store move its orders to the door; customers,
//! other stores' staff and admins cannot; cancels race the kitchen with one winner, on three
//! real nodes.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::cluster::{admin_token, TestCluster};
use common::{chain_file, client, slot, token, TestNode, SECRET};
use pizza_orders::auth::TokenKeys;
use pizza_orders::config::TokenSecret;
use pizza_orders::domain::{StoreId, Timestamp, UserId};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn staff(user: &str, store: &str) -> String {
    let keys = TokenKeys::new(&TokenSecret::parse(SECRET.as_bytes()).unwrap());
    let store = StoreId::parse(store).unwrap();
    keys.mint_as(&UserId::parse(user).unwrap(), false, Some(&store), Duration::from_secs(3600), Timestamp::now())
        .unwrap()
}

async fn step(base: &str, token: &str, id: &str, body: Value) -> reqwest::Response {
    client().post(format!("{base}/v1/kitchen/orders/{id}/status")).bearer_auth(token).json(&body).send().await.unwrap()
}

async fn problem(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn who_may_see_and_move_an_order_and_the_way_it_goes_to_the_door() {
    let dir = tempfile::tempdir().unwrap();
    let chain = format!("catalog_file={}", chain_file(dir.path()));
    let node = TestNode::start_with(&[&chain]);
    let base = node.base.clone();
    let request = json!({ "address": "Torstraße 1", "size": "large", "toppings": ["mushroom"], "postcode": "10115",
        "delivery_slot": slot(2, 20) });
    let created =
        client().post(node.url("/v1/orders")).bearer_auth(token("carla")).json(&request).send().await.unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let order: Value = created.json().await.unwrap();
    let id = order["id"].as_str().unwrap().to_owned();
    assert_eq!(order["store_id"], "mitte");
    assert_eq!(order["history"], json!([{ "status": "placed", "at": order["created_at"] }]));

    let (mitte, kreuzberg) = (staff("ana", "mitte"), staff("ben", "kreuzberg"));
    let preparing = json!({ "status": "preparing" });
    // Moving: the customer, another store's staff and an admin find no such order.
    for who in [token("carla"), kreuzberg.clone(), admin_token()] {
        let (status, body) = problem(step(&base, &who, &id, preparing.clone()).await).await;
        assert_eq!((status, body["type"].as_str()), (StatusCode::NOT_FOUND, Some("/problems/order-not-found")));
    }
    // Seeing the kitchen: a customer is told it needs staff; other staff see only their store.
    let list = |who: String, query: &'static str| {
        let url = node.url(&format!("/v1/kitchen/orders{query}"));
        async move { client().get(url).bearer_auth(who).send().await.unwrap() }
    };
    let (status, body) = problem(list(token("carla"), "").await).await;
    assert_eq!((status, body["type"].as_str()), (StatusCode::FORBIDDEN, Some("/problems/staff-only")));
    let theirs: Value =
        list(kreuzberg.clone(), "?from=2000-01-01T00:00:00Z&to=2000-01-05T00:00:00Z").await.json().await.unwrap();
    assert_eq!(theirs["store"]["id"], "kreuzberg");
    let window = format!("?from={}&to={}", slot(1, 0), slot(4, 0));
    let window: &'static str = Box::leak(window.into_boxed_str());
    let theirs: Value = list(kreuzberg.clone(), window).await.json().await.unwrap();
    assert_eq!(theirs["slots"], json!([]), "another store's orders are not listed");
    let (status, _) = problem(list(admin_token(), window).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "an admin names the store");
    let admin_window: &'static str = Box::leak(format!("{window}&store=mitte").into_boxed_str());
    let seen: Value = list(admin_token(), admin_window).await.json().await.unwrap();
    assert_eq!(seen["slots"][0]["orders"][0]["id"], id.as_str());
    let ours: Value = list(mitte.clone(), window).await.json().await.unwrap();
    let ticket = &ours["slots"][0]["orders"][0];
    assert_eq!((ticket["id"].as_str(), ticket["customer"].as_str()), (Some(id.as_str()), Some("carla")));
    assert_eq!(ticket["next_steps"], json!(["preparing"]));
    assert_eq!(ours["store"]["time_zone"], "Europe/Berlin");

    // Only forward, one step at a time; bad requests say what is wrong.
    let (status, body) = problem(step(&base, &mitte, &id, json!({ "status": "baked" })).await).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        (body["type"].as_str(), body["order_status"].as_str()),
        (Some("/problems/step-not-allowed"), Some("placed"))
    );
    assert_eq!(body["next_steps"], json!(["preparing"]));
    for bad in
        [json!({ "status": "placed" }), json!({ "status": "eaten" }), json!({ "status": "preparing", "reason": "x" })]
    {
        let (status, body) = problem(step(&base, &mitte, &id, bad).await).await;
        assert_eq!(
            (status, body["type"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("/problems/invalid-field"))
        );
    }
    let moved = step(&base, &mitte, &id, preparing.clone()).await;
    assert_eq!(moved.status(), StatusCode::OK);
    let moved: Value = moved.json().await.unwrap();
    assert_eq!(moved["status"], "preparing");

    // Once preparing, the customer can neither change nor cancel; the order stays active.
    let url = node.url(&format!("/v1/orders/{id}"));
    let change = client().put(&url).bearer_auth(token("carla")).json(&request).send().await.unwrap();
    let (status, body_) = problem(change).await;
    assert_eq!((status, body_["type"].as_str()), (StatusCode::CONFLICT, Some("/problems/order-in-kitchen")));
    assert_eq!(body_["order_status"], "preparing");
    let cancel = client().delete(&url).bearer_auth(token("carla")).send().await.unwrap();
    assert_eq!(cancel.status(), StatusCode::CONFLICT);
    let again = client().post(node.url("/v1/orders")).bearer_auth(token("carla")).json(&request).send().await.unwrap();
    assert_eq!(problem(again).await.1["type"], "/problems/order-exists");

    // Billing's increment since now carries the status changes that follow.
    let export = |since: Option<String>| {
        let mut url = node.url("/admin/export?format=ndjson");
        if let Some(since) = since {
            url = format!("{url}&since_revision={since}");
        }
        async move { client().get(url).bearer_auth(admin_token()).send().await.unwrap() }
    };
    let revision = export(None).await.headers()["x-pizza-revision"].to_str().unwrap().to_owned();
    for next in ["baked", "out_for_delivery"] {
        assert_eq!(step(&base, &mitte, &id, json!({ "status": next })).await.status(), StatusCode::OK, "{next}");
    }
    let increment = export(Some(revision)).await.text().await.unwrap();
    let rows: Vec<Value> = increment.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 1, "{increment}");
    assert_eq!(
        (rows[0]["order_id"].as_str(), rows[0]["status"].as_str()),
        (Some(id.as_str()), Some("out_for_delivery"))
    );
    assert!(rows[0]["baked_at"].is_string() && rows[0]["delivered_at"].is_null(), "{}", rows[0]);
    let (status, body_) = problem(step(&base, &mitte, &id, json!({ "status": "not_delivered" })).await).await;
    assert_eq!((status, body_["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("reason")));
    let failed = step(&base, &mitte, &id, json!({ "status": "not_delivered", "reason": "Nobody at the door" })).await;
    assert_eq!(failed.status(), StatusCode::OK);
    let (status, _) = problem(step(&base, &mitte, &id, json!({ "status": "delivered" })).await).await;
    assert_eq!(status, StatusCode::CONFLICT, "nothing follows not_delivered");

    // The customer's view: the whole way, in order, with times; no longer active.
    let seen: Value = client().get(&url).bearer_auth(token("carla")).send().await.unwrap().json().await.unwrap();
    let steps: Vec<&str> = seen["history"].as_array().unwrap().iter().map(|h| h["status"].as_str().unwrap()).collect();
    assert_eq!(steps, ["placed", "preparing", "baked", "out_for_delivery", "not_delivered"]);
    assert_eq!(seen["history"][4]["reason"], "Nobody at the door");
    let times: Vec<&str> = seen["history"].as_array().unwrap().iter().map(|h| h["at"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert_eq!(seen["active"], false);
    let next = client().post(node.url("/v1/orders")).bearer_auth(token("carla")).json(&request).send().await.unwrap();
    assert_eq!(next.status(), StatusCode::CREATED, "not delivered ends the order: a new one may be placed");

    // Billing sees the steps; `check` finds the lifecycle whole.
    let csv = client().get(node.url("/admin/export")).bearer_auth(admin_token()).send().await.unwrap();
    let csv = csv.text().await.unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    for column in ["status", "preparing_at", "out_for_delivery_at", "delivered_at", "not_delivered_reason"] {
        assert!(header.contains(&column), "{column} in {header:?}");
    }
    assert!(csv.contains("not_delivered") && csv.contains("Nobody at the door"), "{csv}");
    let check = common::admin_get_json(&node.url("/admin/check")).await;
    assert_eq!(check["problem_count"], 0, "{check}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_three_nodes_each_cancel_racing_the_kitchen_has_one_winner_and_every_node_agrees() {
    const CUSTOMERS: usize = 50;
    let cluster = Arc::new(TestCluster::start(3, &["slots.capacity=100"]).await);
    let at = slot(2, 22);
    let mut ids = Vec::new();
    for c in 0..CUSTOMERS {
        let body = json!({ "address": format!("{c} Oven Lane"), "size": "small", "delivery_slot": at });
        let r = client().post(cluster.url(c % 3, "/v1/orders")).bearer_auth(token(&format!("c{c}"))).json(&body);
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        ids.push(r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
    }
    // Each customer's cancel (through one node) races the kitchen's `preparing` (another).
    let kitchen = staff("ana", "main");
    let races: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(c, id)| {
            let (cluster, kitchen, id) = (cluster.clone(), kitchen.clone(), id.clone());
            tokio::spawn(async move {
                let cancel_url = cluster.url(c % 3, &format!("/v1/orders/{id}"));
                let cancel = client().delete(cancel_url).bearer_auth(token(&format!("c{c}"))).send();
                let other = cluster.url((c + 1) % 3, "");
                let prepare = step(&other, &kitchen, &id, json!({ "status": "preparing" }));
                let (cancel, prepare) = tokio::join!(cancel, prepare);
                let (cancel, prepare) = (problem(cancel.unwrap()).await, problem(prepare).await);
                (c, cancel, prepare)
            })
        })
        .collect();
    let mut cancelled = Vec::new();
    for race in races {
        let (c, (cancel_status, cancel_body), (prepare_status, prepare_body)) = race.await.unwrap();
        match (cancel_status, prepare_status) {
            (StatusCode::OK, StatusCode::CONFLICT) => {
                assert_eq!(prepare_body["type"], "/problems/order-cancelled", "{prepare_body}");
                cancelled.push(c);
            }
            (StatusCode::CONFLICT, StatusCode::OK) => {
                assert_eq!(cancel_body["type"], "/problems/order-in-kitchen", "{cancel_body}");
            }
            other => panic!("customer {c}: cancel and preparing gave {other:?}: {cancel_body} {prepare_body}"),
        }
    }
    // The rest go to the door, each step through another node, while their customers try to
    // change them (always refused now).
    let mut movers = Vec::new();
    for (c, id) in ids.iter().enumerate().filter(|(c, _)| !cancelled.contains(c)) {
        let (cluster, kitchen, id, at) = (cluster.clone(), kitchen.clone(), id.clone(), at.clone());
        movers.push(tokio::spawn(async move {
            for (n, next) in ["baked", "out_for_delivery", "delivered"].into_iter().enumerate() {
                let change = client()
                    .put(cluster.url((c + n) % 3, &format!("/v1/orders/{id}")))
                    .bearer_auth(token(&format!("c{c}")))
                    .json(&json!({ "address": "Elsewhere 1", "size": "large", "delivery_slot": at }))
                    .send();
                let other = cluster.url((c + n + 1) % 3, "");
                let moved = step(&other, &kitchen, &id, json!({ "status": next }));
                let (change, moved) = tokio::join!(change, moved);
                assert_eq!(moved.status(), StatusCode::OK, "{next} of customer {c}");
                let change = problem(change.unwrap()).await;
                assert_eq!(change.0, StatusCode::CONFLICT, "customer {c}: {}", change.1);
            }
        }));
    }
    for mover in movers {
        mover.await.unwrap();
    }
    let state = cluster.converged().await;
    // Every node tells every customer the same thing.
    for node in 0..3 {
        for (c, id) in ids.iter().enumerate() {
            let url = format!("{}?consistency=stale", cluster.url(node, &format!("/v1/orders/{id}")));
            let seen: Value =
                client().get(url).bearer_auth(token(&format!("c{c}"))).send().await.unwrap().json().await.unwrap();
            let expected = if cancelled.contains(&c) { "cancelled" } else { "delivered" };
            assert_eq!(seen["status"], expected, "node {} customer {c}", node + 1);
            assert_eq!(seen["address"], format!("{c} Oven Lane"), "no change got through");
            let steps = seen["history"].as_array().unwrap().len();
            assert_eq!(steps, if cancelled.contains(&c) { 2 } else { 5 });
        }
        let check = cluster.admin_get(node, "/admin/check").await.unwrap();
        assert_eq!(check["problem_count"], 0, "node {}: {check}", node + 1);
    }
    // A delivered order keeps its place: only the cancels freed any.
    let slots: Value = client()
        .get(cluster.url(0, "/v1/slots"))
        .query(&[("from", at.as_str()), ("to", slot(2, 23).as_str())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ours = slots["slots"].as_array().unwrap().iter().find(|s| s["start"] == at.as_str()).cloned();
    let ours = ours.unwrap_or_else(|| panic!("the slot is listed: {slots}"));
    assert_eq!(ours["remaining"].as_u64(), Some(100 - (CUSTOMERS - cancelled.len()) as u64), "{ours}");
    assert!(state["applied"].as_u64().unwrap() > 0);
}
