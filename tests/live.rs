//! Live availability (Server-Sent Events), black-box: a booking through one node reaches a
//! subscriber on another; subscribers per node are bounded.

mod common;

use std::time::Duration;

use common::cluster::{eventually, TestCluster};
use common::{client, order_body, slot, token, TestNode};
use reqwest::StatusCode;
use serde_json::Value;

/// Read server-sent events from `response` until `wanted` accepts one (event name, data), or
/// fail after `limit`.
async fn until_event(
    response: &mut reqwest::Response,
    buffer: &mut String,
    limit: Duration,
    mut wanted: impl FnMut(&str, &Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let name = block.lines().find_map(|l| l.strip_prefix("event: ")).unwrap_or("message").to_owned();
            let data: String = block.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
            if let Ok(value) = serde_json::from_str::<Value>(&data) {
                if wanted(&name, &value) {
                    return value;
                }
            }
        }
        let chunk = tokio::time::timeout_at(deadline, response.chunk()).await.expect("no such event in time");
        let chunk = chunk.expect("stream").expect("the stream ended");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_booking_through_one_node_reaches_a_subscriber_on_another() {
    let cluster = TestCluster::start(3, &["slots.capacity=2"]).await;
    let start = slot(2, 30);
    let url = cluster.url(2, &format!("/v1/stores/main/slots/stream?from={start}&to={}", slot(2, 31)));
    let mut stream = client().get(&url).send().await.unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    assert!(stream.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut buffer = String::new();
    let first = until_event(&mut stream, &mut buffer, Duration::from_secs(10), |name, _| name == "slots").await;
    assert_eq!(first["slots"][0]["remaining"], 2);

    for (i, expected) in [(0usize, 1u64), (1, 0)] {
        let booked = client()
            .post(cluster.url(i, "/v1/orders"))
            .bearer_auth(token(&format!("live{i}")))
            .json(&order_body(&start))
            .send()
            .await
            .unwrap();
        assert_eq!(booked.status(), StatusCode::CREATED);
        let change = until_event(&mut stream, &mut buffer, Duration::from_secs(10), |name, v| {
            name == "slot" && v["remaining"] == expected
        })
        .await;
        assert_eq!(change["start"], start.as_str());
    }
}

#[tokio::test]
async fn subscribers_are_bounded_per_node_and_bad_requests_are_problems() {
    let node = TestNode::start_with(&["http.max_streams=1"]);
    let url = node.url("/v1/stores/main/slots/stream");
    let first = client().get(&url).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let second = client().get(&url).send().await.unwrap();
    assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(second.headers()["retry-after"], "5");
    assert_eq!(common::problem_type(second).await, "/problems/too-many-streams");
    drop(first);
    eventually(Duration::from_secs(10), "the permit to come back", || async {
        let again = client().get(&url).send().await.ok()?;
        (again.status() == StatusCode::OK).then_some(())
    })
    .await;
    let unknown = client().get(node.url("/v1/stores/nope/slots/stream")).send().await.unwrap();
    assert_eq!(common::problem_type(unknown).await, "/problems/store-not-found");
    let bad = client().get(node.url("/v1/stores/main/slots/stream?from=yesterday")).send().await.unwrap();
    assert_eq!(common::problem_type(bad).await, "/problems/invalid-field");
}
