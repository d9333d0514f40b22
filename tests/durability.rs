//! What survives a crash, a restart and a configuration change.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{client, create, order_body, problem_type, slot, token, token_with, TestNode};
use pizza_orders::domain::Timestamp;
use reqwest::StatusCode;
use serde_json::Value;

type Acknowledged = Arc<Mutex<Vec<(String, Value)>>>;

/// 8 writers creating orders for their own users (`{prefix}-{w}-{i}`, at most `per_writer`
/// each) until a request fails; every 201 is recorded with its user.
fn start_writers(base: &str, prefix: &str, per_writer: i64) -> (Acknowledged, Vec<tokio::task::JoinHandle<()>>) {
    let acknowledged: Acknowledged = Arc::default();
    let writers = (0..8)
        .map(|w| {
            let (acknowledged, base, prefix) = (acknowledged.clone(), base.to_owned(), prefix.to_owned());
            tokio::spawn(async move {
                for i in 0..per_writer {
                    let user = format!("{prefix}-{w}-{i}");
                    let sent = client()
                        .post(format!("{base}/v1/orders"))
                        .bearer_auth(token(&user))
                        .json(&order_body(&slot(2, 24 + (i % 8))))
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status() == StatusCode::CREATED => match r.json::<Value>().await {
                            Ok(body) => acknowledged.lock().unwrap().push((user, body)),
                            Err(_) => break,
                        },
                        _ => break,
                    }
                }
            })
        })
        .collect();
    (acknowledged, writers)
}

/// Wait until `n` writes were acknowledged (at most 30 s).
async fn wait_for(acknowledged: &Acknowledged, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while acknowledged.lock().unwrap().len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Every acknowledged order reads back unchanged from `node`.
async fn assert_all_stored(node: &TestNode, acknowledged: &[(String, Value)], across: &str) {
    for (owner, order) in acknowledged {
        let url = node.url(&format!("/v1/orders/{}", order["id"].as_str().unwrap()));
        let stored: Value = client().get(&url).bearer_auth(token(owner)).send().await.unwrap().json().await.unwrap();
        assert_eq!(&stored, order, "acknowledged order changed or lost across {across}");
    }
}

/// Writers on a node started with `extra`; `kill -9` once `at_least` orders were
/// acknowledged; restart; every acknowledged order must be there.
async fn kill_9_under_load_then_restart(extra: &[&str], per_writer: i64, at_least: usize) {
    let mut node = TestNode::start_with(extra);
    let (acknowledged, writers) = start_writers(&node.base, "w", per_writer);
    wait_for(&acknowledged, at_least).await;
    node.kill();
    for writer in writers {
        let _ = writer.await;
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= at_least, "only {} orders acknowledged before the kill", acknowledged.len());
    node.restart_with(extra);
    assert_all_stored(&node, &acknowledged, "kill -9").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_order_survives_kill_9() {
    kill_9_under_load_then_restart(&["slots.capacity=1000"], 50, 60).await;
}

/// Apply commits without fsync and the log is purged behind snapshots: a crash must never
/// leave the durable state behind the purged log (the entries to re-apply would be gone).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_order_survives_kill_9_after_the_log_was_purged() {
    let extra = [
        "slots.capacity=1000",
        "raft.max_batch=1",
        "raft.snapshot_after_entries=10",
        "raft.entries_kept_after_snapshot=0",
    ];
    kill_9_under_load_then_restart(&extra, 20, 100).await;
}

/// The rules are replicated state, not a node's config: restarting with a different cutoff in
/// the file changes nothing; changing it through the catalog closes orders sooner, while an
/// order already placed keeps the cutoff it was taken under.
#[tokio::test]
async fn the_cutoff_comes_from_the_catalog_not_from_a_restarted_nodes_file() {
    let mut node = TestNode::start_with(&["slots.cutoff_minutes=0"]);
    // The grid slot after the next one: 30 to 60 minutes ahead.
    let half_hour = 1_800_000;
    let soon = Timestamp::from_millis((Timestamp::now().millis() / half_hour + 2) * half_hour).to_rfc3339();
    let order: Value = create(&node, "late", &order_body(&soon)).await.json().await.unwrap();
    assert_eq!(order["editable_until"], soon.as_str());

    node.restart_with(&["slots.cutoff_minutes=120"]);
    let also_soon = create(&node, "other", &order_body(&soon)).await;
    assert_eq!(also_soon.status(), StatusCode::CREATED, "the file's new cutoff is not a rule");

    let admin = token_with("ops", true, 3600, Timestamp::now());
    let current: Value =
        client().get(node.url("/admin/catalog")).bearer_auth(&admin).send().await.unwrap().json().await.unwrap();
    let mut catalog = current["catalog"].clone();
    catalog["stores"][0]["cutoff_minutes"] = serde_json::json!(120);
    let applied = client().put(node.url("/admin/catalog")).bearer_auth(&admin).json(&catalog).send().await.unwrap();
    assert_eq!(applied.status(), StatusCode::OK);
    let too_soon = create(&node, "third", &order_body(&soon)).await;
    assert_eq!(too_soon.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = too_soon.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("120 minutes"), "{problem}");
    // The order placed under cutoff 0 can still be changed until its slot starts.
    let url = node.url(&format!("/v1/orders/{}", order["id"].as_str().unwrap()));
    let change = client().put(&url).bearer_auth(token("late")).json(&order_body(&soon)).send().await.unwrap();
    assert_eq!(change.status(), StatusCode::OK);
}

#[tokio::test]
async fn sigterm_stops_cleanly_and_the_data_opens_again() {
    let mut node = TestNode::start();
    let order: Value = create(&node, "tess", &order_body(&slot(2, 30))).await.json().await.unwrap();
    let status = node.terminate();
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
    node.restart_with(&[]);
    let url = node.url(&format!("/v1/orders/{}", order["id"].as_str().unwrap()));
    let stored: Value = client().get(&url).bearer_auth(token("tess")).send().await.unwrap().json().await.unwrap();
    assert_eq!(stored, order);
}

/// A SIGTERM sent the moment a node has said it listens drains it (exit 0), never kills it:
/// the handler is installed before the announcement. Before, it was installed when the serve
/// loop first ran, and CI's loaded clock-ahead pass once sent its SIGTERM in between.
#[test]
fn a_sigterm_right_after_the_announcement_drains_the_node() {
    for round in 0..5 {
        let mut node = TestNode::start();
        let status = node.terminate();
        assert!(status.success(), "round {round}: exit status after an immediate SIGTERM: {status:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_exits_0_and_loses_no_acknowledged_write() {
    let mut node = TestNode::start_with(&["slots.capacity=1000"]);
    let (acknowledged, writers) = start_writers(&node.base, "term", 100);
    wait_for(&acknowledged, 50).await;
    let status = tokio::task::block_in_place(|| node.terminate());
    assert!(status.success(), "exit status after SIGTERM under load: {status:?}");
    for writer in writers {
        let _ = writer.await;
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 50, "only {} orders acknowledged before SIGTERM", acknowledged.len());
    node.restart_with(&["slots.capacity=1000"]);
    assert_all_stored(&node, &acknowledged, "SIGTERM").await;
}

/// While a node drains after SIGTERM (here held open by a live stream), it says so on /readyz,
/// answers a new customer 503 with `Connection: close` so the client goes elsewhere, and still
/// answers its peers (a Raft call without the cluster secret is refused as such, not left
/// unconnected); once the last request ends, it exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_node_sends_customers_away_and_still_answers_its_peers() {
    let mut node = TestNode::start();
    let stream = client().get(node.url("/v1/stores/main/slots/stream")).send().await.unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let pid = node.pid().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let ready = eventually_status(&node.url("/readyz"), StatusCode::SERVICE_UNAVAILABLE).await;
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["reason"], "shutting down", "{body}");

    let refused = create(&node, "late-customer", &order_body(&slot(2, 30))).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers()["connection"], "close");
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_eq!(problem_type(refused).await, "/problems/unavailable");

    let peer = client().post(node.url("/raft/vote")).body(Vec::new()).send().await.unwrap();
    assert_eq!(peer.status(), StatusCode::UNAUTHORIZED, "a peer's call is still routed to Raft");

    drop(stream);
    let status = tokio::task::block_in_place(|| node.terminate());
    assert!(status.success(), "exit status after the drain: {status:?}");
}

/// GET `url` until it answers `status` (5 s at most).
async fn eventually_status(url: &str, status: StatusCode) -> reqwest::Response {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(r) = client().get(url).send().await {
            if r.status() == status {
                return r;
            }
        }
        assert!(Instant::now() < deadline, "{url} did not answer {status} within 5 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// After kill -9, a node whose state was checkpointed opens its file without redb's repair (the
/// checkpoint recorded the allocator state: quick repair), so the start walks the file once, to
/// verify its checksums, instead of repairing and then verifying; every order is there.
#[tokio::test]
async fn after_kill_9_the_state_file_opens_from_its_checkpoint_without_a_repair() {
    let logged = ["log.filter=warn,pizza_orders::state=debug,pizza_orders::node=info"];
    let mut node = TestNode::start_logged(&logged);
    let mut placed = Vec::new();
    for i in 0..20 {
        let order: Value =
            create(&node, &format!("quick{i}"), &order_body(&slot(2, 30 + i % 4))).await.json().await.unwrap();
        placed.push((format!("quick{i}"), order));
    }
    // Wait for a checkpoint after the last write (one a second while entries are applied).
    let checkpoints = || async {
        let text = client().get(node.url("/metrics")).send().await.unwrap().text().await.unwrap();
        text.lines()
            .find(|l| l.starts_with("pizza_orders_state_checkpoint_seconds_count"))
            .and_then(|l| l.split_whitespace().last()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let before = checkpoints().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while checkpoints().await <= before {
        assert!(Instant::now() < deadline, "no checkpoint within 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    node.kill();
    node.restart_with(&logged);
    let log = node.log_text();
    let start = log.rfind("storage and Raft started").expect("the restart logged its start");
    let first_run_end = log[..start].rfind("storage and Raft started").expect("the first start logged");
    let restart = &log[first_run_end..start];
    let opened = restart.lines().find(|l| l.contains("orders.redb")).expect("the restart opened orders.redb");
    assert!(!opened.contains("repaired after an unclean stop"), "the restart repaired the file:\n{opened}");
    assert!(opened.contains("every page checksum verified"), "the restart did not verify the file:\n{opened}");
    for (user, order) in placed {
        let url = node.url(&format!("/v1/orders/{}", order["id"].as_str().unwrap()));
        let stored: Value = client().get(&url).bearer_auth(token(&user)).send().await.unwrap().json().await.unwrap();
        assert_eq!(stored, order);
    }
}
