//! Wall clocks that jump: one node's clock steps an hour forward and back (libfaketime, as an
//! NTP step or a bad RTC would), while its monotonic clock runs on as the kernel's does.
//! Expected (docs/design.md, "Clocks"): every replica stays identical, a cutoff is decided by the
//! stamp of the node that took the request, an order's times never go back, a token's expiry
//! is judged by the clock of the node that checks it (30 s leeway), and read leases — on the
//! monotonic clock — never serve a stale read. Without libfaketime the test says so and passes
//! without running (CI installs it: Debian's `faketime`).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::cluster::{eventually, TestCluster};
use common::{client, token, token_with};
use pizza_orders::domain::Timestamp;
use reqwest::StatusCode;
use serde_json::{json, Value};

const LIBFAKETIME: [&str; 2] =
    ["/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1", "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1"];

fn libfaketime() -> Option<&'static str> {
    LIBFAKETIME.into_iter().find(|p| Path::new(p).exists())
}

/// Step node `i`'s wall clock to `offset_s` seconds from real time. libfaketime reads the file
/// at most once a second. The first step (forward) is checked through the node's `Date`
/// header; later ones cannot be (hyper refreshes its cached header only once its clock passes
/// the time it cached for the next refresh, an hour ahead after the first step), so the caller
/// checks those through the stamps of orders.
async fn set_clock(cluster: &TestCluster, files: &[PathBuf], i: usize, offset_s: i64, check_date: bool) {
    let text = if offset_s >= 0 { format!("+{offset_s}") } else { offset_s.to_string() };
    std::fs::write(&files[i], text).expect("write the offset file");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    if check_date {
        eventually(Duration::from_secs(10), "the node's wall clock to step", || async {
            let skew = clock_skew(cluster, i).await?;
            ((skew - offset_s).abs() <= 5).then_some(())
        })
        .await;
    }
}

/// The node's wall clock minus ours, in seconds, from its `Date` header.
async fn clock_skew(cluster: &TestCluster, i: usize) -> Option<i64> {
    let r = client().get(cluster.url(i, "/healthz")).send().await.ok()?;
    let date = r.headers().get("date")?.to_str().ok()?;
    let theirs = chrono::DateTime::parse_from_rfc2822(date).ok()?.timestamp();
    Some(theirs - chrono::Utc::now().timestamp())
}

/// The start of the first 30-minute slot at least 40 minutes ahead: its cutoff (30 min before)
/// is 10–40 minutes away by a true clock, and passed by a clock an hour fast.
fn slot_just_ahead() -> String {
    let step = 1_800_000;
    let start = (Timestamp::now().millis() + 40 * 60_000).div_euclid(step) * step + step;
    Timestamp::from_millis(start).to_rfc3339()
}

fn later_slot(days: i64, index: i64) -> String {
    common::slot(days, index)
}

fn body(slot: &str, address: &str) -> Value {
    json!({ "address": address, "size": "small", "toppings": [], "delivery_slot": slot })
}

/// POST an order for `user` through node `i`.
async fn place(cluster: &TestCluster, i: usize, user: &str, slot: &str, address: &str) -> reqwest::Response {
    let url = cluster.url(i, "/v1/orders");
    client().post(url).bearer_auth(token(user)).json(&body(slot, address)).send().await.expect("create")
}

/// PUT a change of `user`'s order (at `version`) through node `i`.
async fn change(
    cluster: &TestCluster,
    i: usize,
    user: &str,
    order: &Value,
    slot: &str,
    address: &str,
) -> reqwest::Response {
    let url = cluster.url(i, &format!("/v1/orders/{}", order["id"].as_str().unwrap_or_default()));
    let version = format!("\"{}\"", order["version"]);
    let request = client().put(url).bearer_auth(token(user)).header("if-match", version);
    request.json(&body(slot, address)).send().await.expect("change")
}

async fn order(cluster: &TestCluster, i: usize, user: &str, id: &str) -> Value {
    let r = client().get(cluster.url(i, &format!("/v1/orders/{id}"))).bearer_auth(token(user)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "order {id} on node {}", i + 1);
    r.json().await.unwrap()
}

fn millis(order: &Value, field: &str) -> i64 {
    Timestamp::parse_rfc3339(order[field].as_str().unwrap_or_default()).expect(field).millis()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wall_clock_jumps_keep_orders_consistent_and_reads_fresh() {
    let Some(lib) = libfaketime() else {
        eprintln!("skipped: libfaketime is not installed (apt-get install faketime)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = (1..=3).map(|i| dir.path().join(format!("clock-{i}"))).collect();
    for file in &files {
        std::fs::write(file, "+0").unwrap();
    }
    let envs: Vec<Vec<(&str, &str)>> = files
        .iter()
        .map(|file| {
            vec![
                ("LD_PRELOAD", lib),
                ("FAKETIME_TIMESTAMP_FILE", file.to_str().unwrap()),
                ("FAKETIME_CACHE_DURATION", "1"),
                // A stepped wall clock leaves CLOCK_MONOTONIC alone, as on a real host.
                ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
                ("DONT_FAKE_MONOTONIC", "1"),
            ]
        })
        .collect();
    let env_refs: Vec<&[(&str, &str)]> = envs.iter().map(Vec::as_slice).collect();
    let sets: &[&str] = &["limits.enabled=false", "analytics.enabled=false"];
    let cluster = TestCluster::start_each_with_env(&[sets, sets, sets], &env_refs).await;
    let leader = cluster.leader().await;
    let jumpy = (leader + 1) % 3;
    let steady = (leader + 2) % 3;
    assert!(clock_skew(&cluster, jumpy).await.is_some_and(|s| s.abs() <= 5), "clocks start true");

    // 1. An hour fast: the node's own stamps decide.
    set_clock(&cluster, &files, jumpy, 3600, true).await;
    let soon = slot_just_ahead();
    let r = place(&cluster, jumpy, "fast-1", &soon, "1 Fast St").await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "a node an hour fast sees the cutoff passed");
    let problem: Value = r.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("starts too soon"), "{problem}");
    let r = place(&cluster, steady, "fast-1", &soon, "1 Fast St").await;
    assert_eq!(r.status(), StatusCode::CREATED, "a true clock takes the same order");
    // A token with 30 minutes left: valid on a true clock, expired on the fast one.
    let short = token_with("short-lived", false, 1800, Timestamp::now());
    let on = |i: usize| client().get(cluster.url(i, "/v1/orders")).bearer_auth(&short).send();
    assert_eq!(on(steady).await.unwrap().status(), StatusCode::OK);
    let refused = on(jumpy).await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(refused.text().await.unwrap().contains("expired"));
    // An order placed through the fast node carries its stamp.
    let r = place(&cluster, jumpy, "stamped", &later_slot(3, 20), "2 Stamp St").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let placed: Value = r.json().await.unwrap();
    let id = placed["id"].as_str().unwrap().to_owned();
    let ahead = millis(&placed, "created_at") - Timestamp::now().millis();
    assert!((3_500_000..3_700_000).contains(&ahead), "created_at is the fast node's time: {ahead} ms ahead");

    // 2. Then an hour slow (two hours back in one step): a change through it never goes back
    // before the order's last change, and every node shows the same order.
    set_clock(&cluster, &files, jumpy, -3600, false).await;
    let r = change(&cluster, jumpy, "stamped", &placed, &later_slot(3, 21), "3 Stamp St").await;
    assert_eq!(r.status(), StatusCode::OK);
    let changed: Value = r.json().await.unwrap();
    assert!(millis(&changed, "updated_at") >= millis(&changed, "created_at"), "{changed}");
    let r = place(&cluster, jumpy, "slow-probe", &later_slot(3, 22), "4 Slow St").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let probe: Value = r.json().await.unwrap();
    let behind = Timestamp::now().millis() - millis(&probe, "created_at");
    assert!((3_500_000..3_700_000).contains(&behind), "created_at is the slow node's time: {behind} ms behind");
    // An hour slow, a token just minted by a true clock is not "from the future": iat is not
    // checked; only exp is, and it lies further ahead.
    assert_eq!(on(jumpy).await.unwrap().status(), StatusCode::OK);
    let state = cluster.converged().await;
    let views: Vec<Value> = futures::future::join_all((0..3).map(|i| order(&cluster, i, "stamped", &id))).await;
    assert!(views.iter().all(|v| *v == views[0]), "the same order on every node: {views:?}");
    assert_eq!(views[0]["address"], "3 Stamp St");
    eprintln!("converged at {} with one clock stepped +1 h and -1 h", state["applied"]);

    // 3. The leader's wall clock steps back an hour while it is cut off (stopped): its read
    // lease runs on the monotonic clock, so it serves no read older than a change the new
    // leader acknowledged meanwhile.
    set_clock(&cluster, &files, jumpy, 0, false).await;
    let r = place(&cluster, leader, "lease", &later_slot(2, 26), "1 Before St").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let before: Value = r.json().await.unwrap();
    let lid = before["id"].as_str().unwrap().to_owned();
    assert_eq!(order(&cluster, leader, "lease", &lid).await["address"], "1 Before St", "lease warm");
    let pid = cluster.node(leader).pid().to_string();
    let signal = |sig: &str| {
        let status = std::process::Command::new("kill").args([sig, &pid]).status().expect("kill");
        assert!(status.success(), "kill {sig} {pid}");
    };
    signal("-STOP");
    let resume = scopeguard(|| {
        let _ = std::process::Command::new("kill").args(["-CONT", &pid]).status();
    });
    let new_leader = eventually(Duration::from_secs(20), "a new leader among the others", || async {
        let status = cluster.admin_get(jumpy, "/admin/cluster").await?;
        let id = status["leader"].as_u64()? as usize - 1;
        (id != leader).then_some(id)
    })
    .await;
    let r = change(&cluster, new_leader, "lease", &before, &later_slot(2, 26), "2 After Ave").await;
    assert_eq!(r.status(), StatusCode::OK, "the new leader acknowledges the change");
    std::fs::write(&files[leader], "-3600").unwrap();
    drop(resume);
    let read = client()
        .get(cluster.url(leader, &format!("/v1/orders/{lid}")))
        .bearer_auth(token("lease"))
        .timeout(Duration::from_secs(15))
        .send()
        .await;
    if let Ok(r) = read {
        if r.status() == StatusCode::OK {
            let seen: Value = r.json().await.unwrap();
            assert_eq!(seen["address"], "2 After Ave", "a stale read from the old leader after its clock stepped back");
        }
    }
    let state = cluster.converged().await;
    eprintln!("converged again at {}", state["applied"]);
    let _ = steady;
}

/// Runs `f` when dropped (the test resumes a stopped node even when an assertion fails).
fn scopeguard<F: FnOnce()>(f: F) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}
