//! The read lease's promise, as one scenario: a leader cut off from both peers, once they have
//! elected another and acknowledged a change, never answers a linearizable read with the value
//! from before the change (its lease has run out; it can only say 503).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::cluster::eventually;
use crate::common::{client, slot, token};
use crate::nemesis::{Cluster, NODES};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_isolated_old_leader_never_serves_a_read_older_than_an_acknowledged_change() {
    let cluster = Cluster::start(&["log.filter=error,tower_http=off,openraft=off"]).await;
    let http = client();
    let bearer = token("lease-reader");
    // Placed through the leader; an answer of 503 (a leader change right after the cluster
    // formed, as on a busy machine) is retried through whoever leads then.
    let (old, created): (usize, Value) = eventually(Duration::from_secs(20), "the order placed", || async {
        let old = cluster.leader().await?;
        let response = http
            .post(format!("{}/v1/orders", cluster.urls[old]))
            .bearer_auth(&bearer)
            .json(&json!({ "address": "1 Before Street", "size": "small", "delivery_slot": slot(2, 26) }))
            .send()
            .await
            .ok()?;
        let status = response.status();
        let body: Value = response.json().await.ok()?;
        assert!(status == StatusCode::CREATED || status == StatusCode::SERVICE_UNAVAILABLE, "{status}: {body}");
        (status == StatusCode::CREATED).then_some((old, body))
    })
    .await;
    let id = created["id"].as_str().expect("order id").to_owned();
    let read_on = |node: usize| {
        http.get(format!("{}/v1/orders/{id}", cluster.urls[node])).bearer_auth(&bearer).timeout(Duration::from_secs(15))
    };
    // A linearizable read on the leader: its lease is fresh from here on.
    let warm: Value = read_on(old).send().await.expect("read").json().await.expect("order");
    assert_eq!(warm["address"], "1 Before Street");

    cluster.links.isolate(old, NODES);
    let new = eventually(Duration::from_secs(20), "a new leader among the two connected nodes", || async {
        let mut leader = None;
        for i in (0..NODES).filter(|i| *i != old) {
            let seen = cluster.admin_get(i, "/admin/cluster").await.and_then(|s| s["leader"].as_u64());
            if let Some(l) = seen.filter(|l| *l as usize - 1 != old) {
                leader = Some(l as usize - 1);
            }
        }
        leader
    })
    .await;
    let changed = http
        .put(format!("{}/v1/orders/{id}", cluster.urls[new]))
        .bearer_auth(&bearer)
        .header("if-match", format!("\"{}\"", created["version"]))
        .json(&json!({ "address": "2 After Avenue", "size": "small", "delivery_slot": slot(2, 26) }))
        .send()
        .await
        .expect("change");
    assert_eq!(changed.status(), StatusCode::OK, "the new leader acknowledges the change");

    let stale = read_on(old).send().await;
    cluster.links.heal();
    match stale {
        Ok(response) if response.status() == StatusCode::OK => {
            let order: Value = response.json().await.expect("order");
            assert_eq!(order["address"], "2 After Avenue", "the cut-off old leader served a stale read: {order}");
        }
        Ok(response) => assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE),
        Err(e) => assert!(e.is_timeout(), "{e}"),
    }
    // Healed, the old leader catches up and serves the change.
    let healed: Value = read_on(old).send().await.expect("read").json().await.expect("order");
    assert_eq!(healed["address"], "2 After Avenue");
}
