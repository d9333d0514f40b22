//! A slow disk: every fsync on one node delayed (an LD_PRELOAD shim this test builds with the
//! system's C compiler), first on a follower, then on the leader. Expected: commit latency
//! follows the quorum (a slow follower costs nothing, and neither does a slow leader: openraft
//! 0.10 replicates while the leader's append is synced, and the followers are a quorum), no
//! election is started by the slowness, and the slow node's append latency is what the
//! PizzaOrdersSlowDisk alert reads (p99 of pizza_orders_raft_append_seconds over 25 ms).
//! Without a C compiler the test says so and passes without running.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::cluster::{admin_token, TestCluster};
use common::{client, slot, token};
use reqwest::StatusCode;
use serde_json::json;

/// Delays fsync, fdatasync and sync_file_range... by the microseconds written in the file named
/// by $SLOW_FSYNC_FILE (read at most every 100 ms; absent or 0: no delay).
const SHIM: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static long delay_us(void) {
    static long cached = 0;
    static struct timespec read_at = {0, 0};
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long since_ms = (now.tv_sec - read_at.tv_sec) * 1000 + (now.tv_nsec - read_at.tv_nsec) / 1000000;
    if (read_at.tv_sec == 0 || since_ms >= 100) {
        const char *path = getenv("SLOW_FSYNC_FILE");
        long value = 0;
        FILE *f = path ? fopen(path, "r") : NULL;
        if (f) {
            if (fscanf(f, "%ld", &value) != 1) value = 0;
            fclose(f);
        }
        cached = value;
        read_at = now;
    }
    return cached;
}

static void slow_down(void) {
    long us = delay_us();
    if (us > 0) usleep((useconds_t)us);
}

int fsync(int fd) {
    static int (*real)(int) = NULL;
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    slow_down();
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int) = NULL;
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    slow_down();
    return real(fd);
}
"#;

const DELAY_MS: u64 = 60;

fn build_shim(dir: &Path) -> Result<PathBuf, String> {
    let source = dir.join("slow_fsync.c");
    let lib = dir.join("libslowfsync.so");
    std::fs::write(&source, SHIM).map_err(|e| e.to_string())?;
    let out = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&lib)
        .arg(&source)
        .arg("-ldl")
        .output()
        .map_err(|e| format!("no C compiler (cc): {e}"))?;
    if !out.status.success() {
        return Err(format!("cc failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(lib)
}

/// Median latency of `n` orders placed one after another through node `via`.
async fn median_write_ms(cluster: &TestCluster, via: usize, prefix: &str, n: usize) -> f64 {
    let mut took = Vec::with_capacity(n);
    for k in 0..n {
        let started = Instant::now();
        let r = client()
            .post(cluster.url(via, "/v1/orders"))
            .bearer_auth(token(&format!("{prefix}-{k}")))
            .json(&json!({ "address": "1 Main St", "size": "small", "toppings": [], "delivery_slot": slot(4, (k % 20) as i64) }))
            .send()
            .await
            .expect("create");
        assert_eq!(r.status(), StatusCode::CREATED);
        took.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    took.sort_by(f64::total_cmp);
    took[n / 2]
}

/// Cumulative counts of `pizza_orders_raft_append_seconds` by upper bound.
async fn append_buckets(cluster: &TestCluster, i: usize) -> Vec<(f64, f64)> {
    let text = client()
        .get(cluster.url(i, "/metrics"))
        .bearer_auth(admin_token())
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .filter_map(|l| l.strip_prefix("pizza_orders_raft_append_seconds_bucket{le=\""))
        .filter_map(|rest| {
            let (le, count) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
            Some((le, count.trim().parse().ok()?))
        })
        .collect()
}

/// The bucket bound under which 99 % of the appends between two scrapes fell, as
/// `histogram_quantile(0.99, rate(...))` reads it (to bucket precision).
fn p99_bound(before: &[(f64, f64)], after: &[(f64, f64)]) -> f64 {
    let delta: Vec<(f64, f64)> =
        after.iter().map(|(le, n)| (*le, n - before.iter().find(|(b, _)| b == le).map_or(0.0, |(_, m)| *m))).collect();
    let total = delta.last().map_or(0.0, |(_, n)| *n);
    delta.iter().find(|(_, n)| *n >= 0.99 * total).map_or(f64::INFINITY, |(le, _)| *le)
}

async fn terms(cluster: &TestCluster) -> Vec<u64> {
    let mut out = Vec::new();
    for i in 0..3 {
        let status = cluster.admin_get(i, "/admin/cluster").await.expect("cluster status");
        out.push(status["term"].as_u64().expect("term"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_disk_costs_what_the_quorum_says_starts_no_election_and_shows_in_the_metric() {
    let dir = tempfile::tempdir().unwrap();
    let lib = match build_shim(dir.path()) {
        Ok(lib) => lib,
        Err(reason) => {
            eprintln!("skipped: {reason}");
            return;
        }
    };
    let controls: Vec<PathBuf> = (1..=3).map(|i| dir.path().join(format!("delay-{i}"))).collect();
    for c in &controls {
        std::fs::write(c, "0").unwrap();
    }
    let envs: Vec<Vec<(&str, &str)>> = controls
        .iter()
        .map(|c| vec![("LD_PRELOAD", lib.to_str().unwrap()), ("SLOW_FSYNC_FILE", c.to_str().unwrap())])
        .collect();
    let env_refs: Vec<&[(&str, &str)]> = envs.iter().map(Vec::as_slice).collect();
    let sets: &[&str] = &["limits.enabled=false", "analytics.enabled=false", "slots.capacity=1000"];
    let cluster = TestCluster::start_each_with_env(&[sets, sets, sets], &env_refs).await;
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let start_terms = terms(&cluster).await;

    let baseline = median_write_ms(&cluster, leader, "base", 30).await;

    // A slow follower: the leader and the other follower are a quorum without it.
    std::fs::write(&controls[follower], (DELAY_MS * 1000).to_string()).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = append_buckets(&cluster, follower).await;
    let slow_follower = median_write_ms(&cluster, leader, "follower", 30).await;
    let follower_p99 = p99_bound(&before, &append_buckets(&cluster, follower).await);
    std::fs::write(&controls[follower], "0").unwrap();

    // A slow leader: its followers commit without waiting for its append.
    std::fs::write(&controls[leader], (DELAY_MS * 1000).to_string()).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = append_buckets(&cluster, leader).await;
    let fast_before = append_buckets(&cluster, other).await;
    let slow_leader = median_write_ms(&cluster, leader, "leader", 20).await;
    let leader_p99 = p99_bound(&before, &append_buckets(&cluster, leader).await);
    let fast_p99 = p99_bound(&fast_before, &append_buckets(&cluster, other).await);
    std::fs::write(&controls[leader], "0").unwrap();

    eprintln!(
        "median create: {baseline:.1} ms; follower's fsync +{DELAY_MS} ms: {slow_follower:.1} ms; \
         leader's: {slow_leader:.1} ms. Append p99 bucket: slow follower {follower_p99} s, slow leader \
         {leader_p99} s, a fast follower {fast_p99} s"
    );
    assert!(
        slow_follower < baseline + DELAY_MS as f64 / 2.0,
        "a slow follower slowed commits: {slow_follower:.1} ms vs {baseline:.1} ms"
    );
    // openraft 0.10: the leader replicates while its own append is synced, and the two
    // followers are a quorum without it, so a slow leader's disk costs no more than a follower's.
    assert!(
        slow_leader < baseline + DELAY_MS as f64 / 2.0,
        "a slow leader's fsync held its commits: {slow_leader:.1} ms vs {baseline:.1} ms"
    );
    assert!(follower_p99 > 0.025 && leader_p99 > 0.025, "the alert's threshold is crossed on the slow node");
    assert!(fast_p99 <= 0.025, "and not on a healthy node: {fast_p99}");
    assert_eq!(terms(&cluster).await, start_terms, "no election started by a slow disk");
    assert_eq!(cluster.leader().await, leader);
}
