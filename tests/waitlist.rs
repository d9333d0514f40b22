//! Waitlists, black-box on three nodes: a fair line instead of "try again".

mod common;

use std::time::Duration;

use common::cluster::TestCluster;
use common::{client, order_body, token};
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn freed_places_go_to_the_first_in_line_on_every_node() {
    let cluster = TestCluster::start(3, &["slots.capacity=10"]).await;
    let slot = common::slot(3, 38);
    let body = order_body(&slot);
    // 200 customers race for 10 places, through the three nodes.
    let racers = (0..200).map(|i| {
        let (url, body) = (cluster.url(i % 3, "/v1/orders"), body.clone());
        tokio::spawn(async move {
            let r = client().post(url).bearer_auth(token(&format!("c{i}"))).json(&body).send().await.unwrap();
            (i, r.status(), r.json::<Value>().await.unwrap())
        })
    });
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    for r in racers {
        let (i, status, answer) = r.await.unwrap();
        match status {
            StatusCode::CREATED => winners.push((i, answer["id"].as_str().unwrap().to_owned())),
            StatusCode::CONFLICT => {
                assert_eq!(answer["type"], "/problems/slot-full");
                let alternatives = answer["alternatives"].as_array().expect("alternatives in the answer");
                assert!(!alternatives.is_empty() && alternatives.iter().all(|a| a["remaining"].as_u64() > Some(0)));
                losers.push(i);
            }
            other => panic!("customer {i}: {other}: {answer}"),
        }
    }
    assert_eq!(winners.len(), 10);

    // 50 of the losers join the line, one after another, through the nodes in turn.
    let mut line = Vec::new();
    for (n, i) in losers.iter().take(50).enumerate() {
        let url = cluster.url(n % 3, "/v1/waitlist");
        let r = client().post(url).bearer_auth(token(&format!("c{i}"))).json(&body).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let entry: Value = r.json().await.unwrap();
        assert_eq!(entry["position"], n as u64 + 1, "positions are exact");
        line.push(*i);
    }
    // Joining twice, or joining a slot with room, is refused by name.
    let again = client()
        .post(cluster.url(0, "/v1/waitlist"))
        .bearer_auth(token(&format!("c{}", line[0])))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(common::problem_type(again).await, "/problems/already-waiting");
    // The first page of a customer's orders carries their place in line (the page's one
    // request on load); a customer in no line gets none, and no later page carries it.
    let page = |user: String, query: String| {
        let url = cluster.url(1, &format!("/v1/orders{query}"));
        async move { client().get(url).bearer_auth(token(&user)).send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let first = page(format!("c{}", line[1]), String::new()).await;
    assert_eq!(first["waitlist"]["position"], 2, "{first}");
    assert_eq!(first["waitlist"]["delivery_slot"]["start"], slot.as_str(), "{first}");
    let later = page(format!("c{}", line[1]), format!("?before={}", winners[0].1)).await;
    assert!(later.get("waitlist").is_none(), "{later}");
    let winner = page(format!("c{}", winners[0].0), String::new()).await;
    assert!(winner.get("waitlist").is_none(), "{winner}");
    let roomy = client()
        .post(cluster.url(1, "/v1/waitlist"))
        .bearer_auth(token("someone-else"))
        .json(&order_body(&common::slot(3, 40)))
        .send()
        .await
        .unwrap();
    assert_eq!(common::problem_type(roomy).await, "/problems/slot-has-room");

    // The 10 winners cancel, through different nodes.
    for (n, (i, id)) in winners.iter().enumerate() {
        let url = cluster.url(n % 3, &format!("/v1/orders/{id}"));
        let r = client().delete(url).bearer_auth(token(&format!("c{i}"))).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    cluster.converged().await;

    // Exactly the first 10 in line hold orders for the slot, on every node; the rest moved up.
    for node in 0..3 {
        for (n, i) in line.iter().enumerate() {
            let user = token(&format!("c{i}"));
            let url = cluster.url(node, "/v1/orders?consistency=stale");
            let orders: Value = client().get(url).bearer_auth(&user).send().await.unwrap().json().await.unwrap();
            let placed = orders["orders"]
                .as_array()
                .unwrap()
                .iter()
                .any(|o| o["status"] == "placed" && o["delivery_slot"]["start"] == slot.as_str());
            assert_eq!(placed, n < 10, "node {}: customer {n} in line", node + 1);
            let waiting = client()
                .get(cluster.url(node, "/v1/waitlist?consistency=stale"))
                .bearer_auth(&user)
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .unwrap();
            if n < 10 {
                assert_eq!(waiting.status(), StatusCode::NOT_FOUND);
            } else {
                let entry: Value = waiting.json().await.unwrap();
                assert_eq!(entry["position"], n as u64 - 9, "node {}", node + 1);
            }
        }
        let check = cluster.admin_get(node, "/admin/check").await.expect("check");
        assert_eq!(check["ok"], true, "{check}");
    }
    // Leaving the line moves the others up.
    let leaver = token(&format!("c{}", line[10]));
    let left = client().delete(cluster.url(2, "/v1/waitlist")).bearer_auth(&leaver).send().await.unwrap();
    assert_eq!(left.status(), StatusCode::OK);
    let next: Value = client()
        .get(cluster.url(0, "/v1/waitlist"))
        .bearer_auth(token(&format!("c{}", line[11])))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(next["position"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_line_survives_backup_and_restore_and_is_exported_with_positions() {
    use common::cluster::free_port;
    let node = common::TestNode::start_with(&["slots.capacity=1"]);
    let config = node.config_file.to_str().unwrap().to_owned();
    let slot = common::slot(2, 40);
    let body = order_body(&slot);
    let placed: Value = common::create(&node, "ann", &body).await.json().await.unwrap();
    for user in ["bob", "cem"] {
        let r = client().post(node.url("/v1/waitlist")).bearer_auth(token(user)).json(&body).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    // The billing export lists the line with its positions.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("line.ndjson");
    let (code, _, err) = common::run_cli(&[
        "export",
        "--waitlist",
        "--format",
        "ndjson",
        "--node",
        &node.base,
        "--config",
        &config,
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let rows: Vec<Value> =
        std::fs::read_to_string(&out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let line: Vec<(String, u64)> =
        rows.iter().map(|r| (r["user"].as_str().unwrap().to_owned(), r["position"].as_u64().unwrap())).collect();
    assert_eq!(line, [("bob".to_owned(), 1), ("cem".to_owned(), 2)]);

    // Backup, restore on a new node: the line is there, and a freed place goes to bob.
    let backup = dir.path().join("line.backup");
    let (code, _, err) = common::run_cli(&[
        "backup",
        "--node",
        &node.base,
        "--config",
        &config,
        "--out",
        backup.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(code, Some(0), "{err}");
    drop(node);
    let restored = dir.path().join("restored");
    let advertise = format!("127.0.0.1:{}", free_port());
    let (code, _, err) = common::run_cli(&[
        "restore",
        "--in",
        backup.to_str().unwrap(),
        "--data-dir",
        restored.to_str().unwrap(),
        "--advertise",
        &advertise,
        "--quiet",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let node = common::TestNode::start_on(&restored, &[&format!("listen={advertise}"), "slots.capacity=1"]);
    let cem: Value =
        client().get(node.url("/v1/waitlist")).bearer_auth(token("cem")).send().await.unwrap().json().await.unwrap();
    assert_eq!(cem["position"], 2);
    let url = node.url(&format!("/v1/orders/{}", placed["id"].as_str().unwrap()));
    assert_eq!(client().delete(url).bearer_auth(token("ann")).send().await.unwrap().status(), StatusCode::OK);
    let bob: Value =
        client().get(node.url("/v1/orders")).bearer_auth(token("bob")).send().await.unwrap().json().await.unwrap();
    assert_eq!(bob["orders"][0]["status"], "placed");
    assert_eq!(bob["orders"][0]["delivery_slot"]["start"], slot.as_str());
    let check: Value = common::admin_get_json(&node.url("/admin/check")).await;
    assert_eq!(check["ok"], true, "{check}");
}
