//! Edge replicas: non-voting members that replicate, serve reads (stale and bounded-staleness)
//! and forward writes, and never count toward a quorum.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{admin_token, eventually, TestCluster};
use common::{client, order_body, slot, token};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// One user changes one order 40 times in a row here, faster than the per-user write limit
/// (made for people) allows; the limits have their own tests (tests/tls.rs).
const EXTRA: [&str; 2] = ["slots.capacity=1000", "limits.enabled=false"];

async fn add_edge(cluster: &TestCluster, id: usize) -> Value {
    let r = client()
        .post(cluster.url(0, "/admin/cluster/nodes"))
        .bearer_auth(admin_token())
        .json(&json!({ "id": id + 1, "addr": format!("127.0.0.1:{}", cluster.ports[id]), "edge": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

fn role(status: &Value, id: usize) -> Option<String> {
    status["members"]
        .as_array()?
        .iter()
        .find(|m| m["id"] == id as u64 + 1)
        .map(|m| m["role"].as_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_edge_replica_serves_fresh_enough_reads_forwards_writes_and_never_holds_up_a_commit() {
    let mut cluster = TestCluster::start(3, &EXTRA).await;
    cluster.spawn_member(3, &EXTRA);
    let status = add_edge(&cluster, 3).await;
    assert_eq!(role(&status, 3).as_deref(), Some("edge"));
    assert_eq!(role(&status, 0).as_deref(), Some("voter"));
    cluster.wait_ready().await;

    // A write through the edge is forwarded; a read there with max_staleness_ms=0 sees it.
    let created = client()
        .post(cluster.url(3, "/v1/orders"))
        .bearer_auth(token("eve"))
        .json(&order_body(&slot(2, 30)))
        .send()
        .await
        .unwrap();
    let status = created.status();
    let order: Value = created.json().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{order}");
    let url = cluster.url(3, &format!("/v1/orders/{}", order["id"].as_str().unwrap()));
    let read = client().get(format!("{url}?max_staleness_ms=0")).bearer_auth(token("eve")).send().await.unwrap();
    assert_eq!(read.status(), StatusCode::OK);

    // Bounded staleness, checked against acknowledgement times: a writer changes the order
    // through a voter; every read on the edge with max_staleness_ms=B that starts B ms after a
    // change was acknowledged must show that change or a later one.
    let bound = Duration::from_millis(150);
    let writer_url = cluster.url(0, &format!("/v1/orders/{}", order["id"].as_str().unwrap()));
    let writer = tokio::spawn(async move {
        let mut acked = Vec::new();
        for n in 0..40 {
            let body = json!({ "address": format!("{n} Edge St"), "size": "small", "delivery_slot": slot(2, 30) });
            let r = client().put(&writer_url).bearer_auth(token("eve")).json(&body).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            let v: Value = r.json().await.unwrap();
            acked.push((Instant::now(), v["version"].as_u64().unwrap()));
        }
        acked
    });
    let mut reads = Vec::new();
    while !writer.is_finished() {
        let began = Instant::now();
        let r = client()
            .get(format!("{url}?max_staleness_ms={}", bound.as_millis()))
            .bearer_auth(token("eve"))
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        reads.push((began, v["version"].as_u64().unwrap()));
    }
    let acked = writer.await.unwrap();
    assert!(reads.len() > 10, "only {} reads", reads.len());
    for (began, seen) in &reads {
        let due = acked.iter().filter(|(at, _)| *at + bound <= *began).map(|(_, v)| *v).max().unwrap_or(0);
        assert!(*seen >= due, "a read began {bound:?} after version {due} was acknowledged and saw {seen}");
    }
    let bad = client().get(format!("{url}?max_staleness_ms=-1")).bearer_auth(token("eve")).send().await.unwrap();
    assert_eq!(common::problem_type(bad).await, "/problems/invalid-field");

    // The edge dies: writes through the voters go on as before; it catches up when back.
    cluster.kill(3);
    for n in 0..5 {
        let r = client()
            .post(cluster.url(n % 3, "/v1/orders"))
            .bearer_auth(token(&format!("w{n}")))
            .json(&order_body(&slot(2, 32)))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED, "a write waited for the dead edge");
    }
    cluster.restart(3);
    cluster.wait_ready().await;
    cluster.converged().await;

    // Removed, it is no longer a member; added again, it is an edge again.
    let removed =
        client().delete(cluster.url(0, "/admin/cluster/nodes/4")).bearer_auth(admin_token()).send().await.unwrap();
    assert_eq!(removed.status(), StatusCode::OK);
    let status: Value = removed.json().await.unwrap();
    assert_eq!(role(&status, 3), None);
    assert_eq!(status["members"].as_array().unwrap().len(), 3);
    let again = add_edge(&cluster, 3).await;
    assert_eq!(role(&again, 3).as_deref(), Some("edge"));
    eventually(Duration::from_secs(20), "the re-added edge to catch up", || async {
        let r = client().get(cluster.url(3, "/readyz")).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await;
}
