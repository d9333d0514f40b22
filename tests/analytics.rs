//! Product analytics through real nodes: beacons counted on every node the same, bad beacons
//! refused without effect, figures kept across a kill and a leader change.

mod common;

use std::time::Duration;

use common::cluster::{admin_token, eventually, TestCluster};
use common::{client, run_cli, TestNode};
use reqwest::StatusCode;
use serde_json::{json, Value};

const FAST: &str = "analytics.flush_ms=200";

async fn beacon(base: &str, body: Value) -> reqwest::Response {
    client().post(format!("{base}/v1/events")).json(&body).send().await.unwrap()
}

/// Today's figures as `url`'s node holds them (not forwarded, not waiting for the leader).
async fn today(url: &str) -> Option<Value> {
    let report = client()
        .get(format!("{url}/admin/analytics?consistency=stale"))
        .bearer_auth(admin_token())
        .header("x-pizza-local", "1")
        .send()
        .await
        .ok()?;
    let report: Value = report.json().await.ok()?;
    report["days"].as_array()?.last().cloned()
}

#[tokio::test]
async fn bad_beacons_are_refused_and_change_nothing_and_good_ones_are_counted() {
    let node = TestNode::start_with(&[FAST, "analytics.beacons_per_second=20"]);
    let base = node.base.clone();
    let good = |event: &str, visitor: &str| json!({ "event": event, "visitor": visitor });
    for (event, visitor) in
        [("page_opened", "visitor-aaaa"), ("page_opened", "visitor-bbbb"), ("catalog_shown", "visitor-aaaa")]
    {
        assert_eq!(beacon(&base, good(event, visitor)).await.status(), StatusCode::NO_CONTENT);
    }
    let store = json!({ "event": "slot_picked", "visitor": "visitor-aaaa", "store": "main" });
    assert_eq!(beacon(&base, store).await.status(), StatusCode::NO_CONTENT);

    let bad = [
        (json!({ "event": "page_opened", "visitor": "visitor-cccc", "padding": "x".repeat(1100) }), 413),
        (good("clicked_a_pixel", "visitor-cccc"), 422),
        (good("page_opened", "short"), 422),
        (good("page_opened", "no spaces allowed here"), 422),
        (json!({ "event": "page_opened", "visitor": 12345678 }), 422),
        (json!({ "event": "page_opened" }), 422),
        (json!({ "event": "page_opened", "visitor": "visitor-cccc", "user": "alice" }), 422),
        (json!({ "event": "page_opened", "visitor": "visitor-cccc", "store": "nowhere" }), 422),
    ];
    for (body, status) in bad {
        let answer = beacon(&base, body.clone()).await;
        assert_eq!(answer.status().as_u16(), status, "{body}");
        assert_eq!(answer.headers()["content-type"], "application/problem+json");
    }
    let text = client()
        .post(format!("{base}/v1/events"))
        .header("content-type", "text/plain")
        .body("page_opened")
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // A flood: this node takes 20 a second; the rest is 429 with Retry-After, not counted.
    let mut limited = 0;
    for i in 0..60 {
        let answer = beacon(&base, good("error_shown", &format!("flood-{i:04}"))).await;
        if answer.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(answer.headers().contains_key("retry-after"));
            limited += 1;
        }
    }
    assert!(limited >= 30, "only {limited} of 60 refused");
    let counted = 60 - limited;

    let day = eventually(Duration::from_secs(10), "the beacons counted", || async {
        let day = today(&base).await?;
        (day["views"] == 2 && day["errors"] == counted).then_some(day)
    })
    .await;
    assert_eq!(day["visitors"].as_u64().unwrap(), 2 + counted, "{day}");
    assert_eq!(day["funnel"], json!({ "page_opened": 2, "catalog_shown": 1, "slot_picked": 1, "order_placed": 0 }));
    assert_eq!(day["stores"]["main"]["slot_picked"], 1);

    // The command line shows the same, as a table.
    let config = node.config_file.to_str().unwrap().to_owned();
    let (code, out, err) = run_cli(&["stats", "--days", "2", "--node", &base, "--config", &config]);
    assert_eq!(code, Some(0), "{err}");
    let row = out.lines().nth(2).unwrap_or_default().to_owned();
    assert!(out.starts_with("day") && row.split_whitespace().nth(1) == Some("2"), "{out}");

    // A customer's token does not read them.
    let customer = client().get(format!("{base}/admin/analytics")).bearer_auth(common::token("alice")).send().await;
    assert_eq!(customer.unwrap().status(), StatusCode::FORBIDDEN);

    // Turned off, the route is not there.
    let off = TestNode::start_with(&["analytics.enabled=false"]);
    assert_eq!(beacon(&off.base, good("page_opened", "visitor-aaaa")).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_count_alike_through_a_kill_and_a_leader_change() {
    let mut cluster = TestCluster::start(3, &[FAST]).await;
    // 300 beacons, 100 visitors, spread over the three nodes.
    for i in 0..300usize {
        let visitor = format!("visitor-{:04}", i % 100);
        let event = if i % 3 == 0 { "page_opened" } else { "catalog_shown" };
        let sent = beacon(&cluster.url(i % 3, ""), json!({ "event": event, "visitor": visitor })).await;
        assert_eq!(sent.status(), StatusCode::NO_CONTENT);
    }
    let bases: Vec<String> = (0..3).map(|i| cluster.url(i, "")).collect();
    let counted_everywhere = |views: u64, shown: u64, nodes: Vec<usize>| {
        let urls: Vec<String> = nodes.iter().map(|i| bases[*i].clone()).collect();
        async move {
            eventually(Duration::from_secs(20), "identical counts on every node", || async {
                let mut seen = Vec::new();
                for url in &urls {
                    seen.push(today(url).await?);
                }
                let first = seen[0].clone();
                let done = first["views"] == views && first["funnel"]["catalog_shown"] == shown;
                (done && seen.iter().all(|d| *d == first)).then_some(first)
            })
            .await
        }
    };
    let day = counted_everywhere(100, 200, vec![0, 1, 2]).await;
    assert!(day["visitors"].as_u64().unwrap().abs_diff(100) <= 2, "{day}");

    // The leader killed: a new one is elected; beacons to the survivors still add up exactly.
    let leader = cluster.leader().await;
    cluster.kill(leader);
    let survivors: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    for (n, node) in survivors.iter().cycle().take(50).enumerate() {
        let visitor = format!("later-{n:04}");
        let sent = beacon(&cluster.url(*node, ""), json!({ "event": "page_opened", "visitor": visitor })).await;
        assert_eq!(sent.status(), StatusCode::NO_CONTENT);
    }
    let day = counted_everywhere(150, 200, survivors).await;
    assert!(day["visitors"].as_u64().unwrap().abs_diff(150) <= 3, "{day}");

    // The old leader back: it catches up to the same figures, and every replica is identical.
    cluster.restart(leader);
    counted_everywhere(150, 200, vec![0, 1, 2]).await;
    let state = cluster.converged().await;
    let check = cluster.admin_get(0, "/admin/check").await.unwrap();
    assert_eq!(check["problem_count"], 0, "{check} {state}");
}
