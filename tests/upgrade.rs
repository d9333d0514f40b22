//! Rolling upgrade: a three-node cluster on the previous release (`PIZZA_UPGRADE_FROM`, the
//! binary `scripts/build-release.sh` builds from the tag in `tests/fixtures/upgrade-from`)
//! upgraded to this build one node at a time under write load, followers first, then rolled
//! back the same way (the data format is the same; docs/operations.md has the table). Expected:
//! no acknowledged order lost and writes never standing still for longer than an election.
//! `.ci/test` builds the previous release and runs this; without `PIZZA_UPGRADE_FROM` that test
//! says so and passes without running.
//!
//! Elections: a node of this build that is stopped stands down first (`Node::begin_drain`) and
//! keeps answering its peers until Raft stops, so a step costs at most the election of stopping
//! the leader (none when the leader restarts within its lease and resumes under its saved
//! vote); the same-build rolling restart below and the rollback hold that. The upgrade's steps
//! are printed, not bounded, for two reasons seen in loaded runs: v0.5.0, while it drains, stops
//! hearing the leader yet keeps standing for election, raising the term once per timeout, and
//! its next start deposes the leader (`[8, 0, 0]`); and a node of this build that restarts under
//! a v0.5.0 leader may time out before that leader's backed-off replication reaches it, and its
//! higher term costs one more election (`[2, 2, 0]`; CI saw `[0, 2, 0]`). Usually neither
//! stops writes for longer than 1.4 s, but once in CI (`[8, 0, 1]`) writes stood still for
//! 10 s while a draining v0.5.0 node led: so the 3 s bound holds before the upgrade and in
//! the rollback, and the upgrade's steps are bounded by v0.5.0's drain (see the test).
mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::cluster::{eventually, TestCluster};
use common::writers::{assert_every_order_everywhere, longest_gap, longest_gap_between, Writers};
use common::{client, PROGRAM_ENV};
use reqwest::StatusCode;

/// The two tests here run one at a time. Each starts three nodes under write load and bounds
/// elections and stalls; side by side on a two-core machine the six nodes starve each other's
/// heartbeats (seen: a follower's restart costing two elections, and in one CI run writes
/// standing still for 10 s), which measures the machine, not the upgrade.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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
    let _alone = ONE_AT_A_TIME.lock().await;
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
    // A linearizable read on this build's node while v0.5.0 leads: that leader has no
    // read-index stream (`raft::read_stream`), so the read index is asked by HTTP call.
    if cluster.leader().await != first {
        let unknown = cluster.url(first, "/v1/orders/00000000-0000-4000-8000-000000000000");
        let read = client().get(unknown).bearer_auth(common::token("upgrade-reader")).send().await.unwrap();
        assert_eq!(read.status(), StatusCode::NOT_FOUND, "a linearizable read through node {}", first + 1);
        let metrics = client().get(cluster.url(first, "/metrics")).send().await.unwrap().text().await.unwrap();
        assert!(
            metrics.contains("pizza_orders_read_index_asks_total{transport=\"call\"}"),
            "this build did not ask v0.5.0 by HTTP call:\n{metrics}"
        );
    }
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
    if mixed == first {
        // This build leads a v0.5.0 follower, which has no append stream (`raft::stream`):
        // its appends go one at a time, as before.
        let metrics = client().get(cluster.url(first, "/metrics")).send().await.unwrap().text().await.unwrap();
        assert!(
            metrics.contains("pizza_orders_raft_append_sessions_total{transport=\"one_at_a_time\"}"),
            "the leader on this build did not fall back to one append at a time for v0.5.0:\n{metrics}"
        );
    }
    cluster.restart(leader);

    let upgrade_began = Instant::now();
    let upgrade = roll(&mut cluster, &writers, &current).await;
    let rollback_began = Instant::now();
    let rollback = roll(&mut cluster, &writers, &previous).await;
    let acked = writers.stop().await;
    let (before, during_upgrade, during_rollback) = (
        longest_gap_between(&acked, None, Some(upgrade_began)),
        longest_gap_between(&acked, Some(upgrade_began), Some(rollback_began)),
        longest_gap_between(&acked, Some(rollback_began), None),
    );
    eprintln!(
        "{} orders acknowledged; elections per step: upgrade {upgrade:?}, rollback {rollback:?}; \
         writes stood still for at most {} ms before the upgrade, {} ms during it, {} ms during the rollback",
        acked.len(),
        before.as_millis(),
        during_upgrade.as_millis(),
        during_rollback.as_millis()
    );
    assert!(
        rollback.iter().all(|e| *e <= 1),
        "rollback (stopping this build): more than one election in a step: {rollback:?}"
    );
    assert!(before < Duration::from_secs(3), "writes stood still for {before:?} (a leader killed, one election)");
    assert!(during_rollback < Duration::from_secs(3), "writes stood still for {during_rollback:?} in the rollback");
    // Each upgrade step stops a v0.5.0 node, which drains the 0.5.0 way: its listener closes
    // first, so it stops hearing the leader, stands for election and, under a 0.9 leader that
    // grants votes without a quorum-ack lease, may win and lead while nobody can reach it,
    // until its drain (`http.drain_timeout_ms`, 20 s by default) ends. Seen once in CI:
    // `[8, 0, 1]` and writes standing still for 10 s. This build cannot prevent that in an
    // older release; it bounds it: writes resume once that node has stopped.
    assert!(during_upgrade < Duration::from_secs(25), "writes stood still for {during_upgrade:?} in the upgrade");

    let state = cluster.converged().await;
    assert_every_order_everywhere(&cluster, &acked).await;
    eprintln!("converged at {}", state["applied"]);
}

/// The same rolling restart on this build alone, twice round: stopping a follower costs no
/// election, stopping the leader one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_of_this_build_costs_at_most_the_leaders_election() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let current = PathBuf::from(env!("CARGO_BIN_EXE_pizza-orders")).canonicalize().unwrap();
    let sets: &[&str] = &["limits.enabled=false", "slots.capacity=100000"];
    let mut cluster = TestCluster::start_each(&[sets, sets, sets]).await;
    let bases: Vec<String> = (0..3).map(|i| cluster.url(i, "")).collect();
    let writers = Writers::start(4, bases, "r");
    writers.progress(50, Duration::from_secs(30), "writes before the restarts").await;
    let first = roll(&mut cluster, &writers, &current).await;
    let second = roll(&mut cluster, &writers, &current).await;
    let acked = writers.stop().await;
    let gap = longest_gap(&acked);
    eprintln!(
        "{} orders acknowledged; elections per step: {first:?} then {second:?}; writes stood still for at most {} ms",
        acked.len(),
        gap.as_millis()
    );
    for steps in [&first, &second] {
        assert_eq!(&steps[..2], &[0, 0], "stopping a follower cost an election: {first:?} then {second:?}");
        assert!(steps[2] <= 1, "stopping the leader cost more than one election: {first:?} then {second:?}");
    }
    assert!(gap < Duration::from_secs(3), "writes stood still for {gap:?}");
    cluster.converged().await;
    assert_every_order_everywhere(&cluster, &acked).await;
}
