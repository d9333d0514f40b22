//! Rolling upgrade: a three-node cluster on the previous release (`PIZZA_UPGRADE_FROM`, the
//! binary `scripts/build-release.sh` builds from the tag in `tests/fixtures/upgrade-from`)
//! upgraded to this build one node at a time under write load, followers first, then rolled
//! back the same way (the data format is the same; docs/operations.md has the table). Expected:
//! no acknowledged order lost, at most one election per step, writes never stand still for
//! longer than an election. `.ci/test` builds the previous release and runs this; without
//! `PIZZA_UPGRADE_FROM` the test says so and passes without running.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::cluster::{eventually, TestCluster};
use common::writers::{assert_every_order_everywhere, longest_gap, Writers};
use common::{client, PROGRAM_ENV};
use reqwest::StatusCode;

async fn term(cluster: &TestCluster) -> u64 {
    let mut highest = 0;
    for i in cluster.running() {
        if let Some(status) = cluster.admin_get(i, "/admin/cluster").await {
            highest = highest.max(status["term"].as_u64().unwrap_or(0));
        }
    }
    highest
}

/// Which program node `i`'s process runs (from /proc).
fn program_of(cluster: &TestCluster, i: usize) -> PathBuf {
    std::fs::read_link(format!("/proc/{}/exe", cluster.node(i).pid())).expect("the node's program")
}

/// Replace each node's program in turn (followers first, the leader last) under load; returns
/// the elections each step cost.
async fn roll(cluster: &mut TestCluster, writers: &Writers, program: &Path) -> Vec<u64> {
    let leader = cluster.leader().await;
    let order: Vec<usize> = (0..3).filter(|i| *i != leader).chain([leader]).collect();
    let mut elections = Vec::new();
    for i in order {
        let before = term(cluster).await;
        cluster.replace_program(i, program);
        assert_eq!(program_of(cluster, i), program.canonicalize().unwrap(), "node {} runs the new program", i + 1);
        eventually(Duration::from_secs(30), "the restarted node to be ready", || async {
            let r = client().get(cluster.url(i, "/readyz")).send().await.ok()?;
            (r.status() == StatusCode::OK).then_some(())
        })
        .await;
        writers.progress(30, Duration::from_secs(30), "writes to go on after the step").await;
        let after = term(cluster).await;
        elections.push(after - before);
    }
    elections
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_upgrade_and_its_rollback_under_load_lose_nothing() {
    let Some(previous) = std::env::var_os("PIZZA_UPGRADE_FROM").map(PathBuf::from) else {
        eprintln!("skipped: set PIZZA_UPGRADE_FROM to the previous release's binary (scripts/build-release.sh)");
        return;
    };
    let previous = previous.canonicalize().expect("PIZZA_UPGRADE_FROM exists");
    let current = PathBuf::from(env!("CARGO_BIN_EXE_pizza-orders")).canonicalize().unwrap();
    let sets: &[&str] = &["limits.enabled=false", "slots.capacity=100000"];
    let env: &[(&str, &str)] = &[(PROGRAM_ENV, previous.to_str().unwrap())];
    let mut cluster = TestCluster::start_each_with_env(&[sets, sets, sets], &[env, env, env]).await;
    assert_eq!(program_of(&cluster, 0), previous, "the cluster starts on the previous release");
    let bases: Vec<String> = (0..3).map(|i| cluster.url(i, "")).collect();
    let writers = Writers::start(4, bases, "u");
    writers.progress(100, Duration::from_secs(30), "writes on the previous release").await;

    // Half-way, one node on this build and two on the previous: the leader (on the previous
    // release) dies, so the other two, one of each version, must elect a leader between them
    // (openraft 0.10 changed the vote request's shape; network.rs sends and reads 0.9's).
    let leader = cluster.leader().await;
    let first = (leader + 1) % 3;
    cluster.replace_program(first, &current);
    eventually(Duration::from_secs(30), "the first upgraded node to be ready", || async {
        let r = client().get(cluster.url(first, "/readyz")).send().await.ok()?;
        (r.status() == StatusCode::OK).then_some(())
    })
    .await;
    cluster.kill(leader);
    let mixed = eventually(Duration::from_secs(20), "a leader elected by the other two", || async {
        let now = cluster.leader().await;
        (now != leader).then_some(now)
    })
    .await;
    writers.progress(30, Duration::from_secs(30), "writes after an election between the two versions").await;
    eprintln!(
        "node {} (this build) and node {} (previous) elected node {}",
        first + 1,
        3 - leader - first + 1,
        mixed + 1
    );
    cluster.restart(leader);

    let upgrade = roll(&mut cluster, &writers, &current).await;
    let rollback = roll(&mut cluster, &writers, &previous).await;
    let acked = writers.stop().await;
    let gap = longest_gap(&acked);
    eprintln!(
        "{} orders acknowledged; elections per step: upgrade {upgrade:?}, rollback {rollback:?}; \
         writes stood still for at most {} ms",
        acked.len(),
        gap.as_millis()
    );
    for (what, steps) in [("upgrade", &upgrade), ("rollback", &rollback)] {
        assert!(steps.iter().all(|e| *e <= 1), "{what}: more than one election in a step: {steps:?}");
    }
    assert!(gap < Duration::from_secs(3), "writes stood still for {gap:?}");

    let state = cluster.converged().await;
    assert_every_order_everywhere(&cluster, &acked).await;
    eprintln!("converged at {}", state["applied"]);
}
