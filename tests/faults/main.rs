//! Jepsen-style fault test: three real nodes, concurrent clients recording a history, and a
//! nemesis that kills, pauses and partitions nodes (also one way) while they work. Afterwards
//! the history and every node's final state are checked: acknowledged writes present, failed
//! ones absent, per-order linearizability, one active order per user, no slot over capacity,
//! identical replicas.
//!
//! Short mode (CI): `cargo test --test faults` runs seed 1 for 40 s. Long mode:
//! `PIZZA_FAULTS_SECONDS=600 PIZZA_FAULTS_SEEDS=1,2,3 cargo test --release --test faults -- --nocapture`.
//! `PIZZA_FAULTS_LOG` sets the nodes' log filter (default `error,tower_http=off,openraft=off`).

#[path = "../common/mod.rs"]
mod common;

mod checker;
mod history;
mod lease;
mod nemesis;
mod proxy;
mod workload;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use history::{History, Kind, Outcome};
use nemesis::{Cluster, ALL_FAULTS, NODES};
use workload::Workload;

const CLIENTS: usize = 6;
const MAX_OPS_PER_CLIENT: usize = 200_000;

fn setting(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_kills_pauses_and_partitions_no_acknowledged_write_is_lost_and_reads_stay_linearizable() {
    let seconds: u64 = setting("PIZZA_FAULTS_SECONDS", "40").parse().expect("PIZZA_FAULTS_SECONDS: seconds");
    let seeds: Vec<u64> = setting("PIZZA_FAULTS_SEEDS", "1")
        .split(',')
        .map(|s| s.trim().parse().expect("PIZZA_FAULTS_SEEDS: comma-separated numbers"))
        .collect();
    let mut failures = Vec::new();
    for seed in seeds {
        if let Err(e) = run(seed, Duration::from_secs(seconds)).await {
            failures.push(format!("seed {seed}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

async fn run(seed: u64, duration: Duration) -> Result<(), String> {
    let capacity = format!("slots.capacity={}", workload::CAPACITY);
    // PIZZA_FAULTS_LOG: the nodes' log filter, e.g. "error,pizza_orders::raft=info" to see
    // snapshots and purges.
    let log_filter = format!("log.filter={}", setting("PIZZA_FAULTS_LOG", "error,tower_http=off,openraft=off"));
    let extra = [
        capacity.as_str(),
        "raft.snapshot_after_entries=64",
        "raft.entries_kept_after_snapshot=8",
        log_filter.as_str(),
        // Twelve users writing as fast as six clients can: the per-user write limit (made for
        // people) would refuse most writes and leave the faults little to work on.
        "limits.enabled=false",
    ];
    let mut cluster = Cluster::start(&extra).await;
    let history = History::new();
    let workload = Workload::new(history.clone(), cluster.urls.clone());
    let deadline = Instant::now() + duration;
    let clients: Vec<_> =
        (0..CLIENTS).map(|c| tokio::spawn(workload.clone().run(c, seed, deadline, MAX_OPS_PER_CLIENT))).collect();

    // Every kind of fault in turn, from a seeded starting point, with seeded pauses between.
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut round = rng.usize(..ALL_FAULTS.len());
    while Instant::now() + Duration::from_millis(3000) < deadline {
        tokio::time::sleep(Duration::from_millis(rng.u64(300..1200))).await;
        let kind = ALL_FAULTS[round % ALL_FAULTS.len()];
        round += 1;
        cluster.inject(kind, Duration::from_millis(rng.u64(800..2500)), &mut rng, &history).await;
    }
    cluster.heal_all();
    for client in clients {
        client.await.map_err(|e| format!("a client panicked: {e}"))?;
    }

    // Healed, the cluster serves again and every replica holds the same state. A node may still
    // be retrying a write whose client gave up (for up to the forward timeout), so the final
    // state is read between two convergences at the same applied index.
    let mut settled = None;
    for _ in 0..20 {
        let before = cluster.converged().await;
        let finals = read_finals(&workload).await;
        let after = cluster.converged().await;
        if before["applied"] == after["applied"] {
            settled = Some((after, finals));
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let (state, finals) = settled.ok_or("the cluster kept applying writes long after the clients stopped")?;
    for (i, f) in finals.iter().enumerate().skip(1) {
        if *f != finals[0] {
            let differ: Vec<String> = finals[0]
                .iter()
                .filter(|(id, v)| f.get(*id) != Some(*v))
                .map(|(id, v)| format!("{id}: node 1 {v:?}, node {} {:?}", i + 1, f.get(id)))
                .chain(
                    f.keys()
                        .filter(|id| !finals[0].contains_key(*id))
                        .map(|id| format!("{id}: only on node {}", i + 1)),
                )
                .take(10)
                .collect();
            return Err(format!(
                "node {} and node 1 list different orders at the same applied index {} and digest:\n{}",
                i + 1,
                state["applied"],
                differ.join("\n")
            ));
        }
    }
    for i in 0..NODES {
        let check = cluster.self_check(i).await;
        if check["ok"] != serde_json::Value::Bool(true) {
            return Err(format!("node {} fails its own invariant check: {check}", i + 1));
        }
    }

    let ops = history.ops();
    let report = checker::check(&ops, &finals[0]);
    summarise(seed, duration, &ops, &history, &state, finals[0].len());
    // Every run's history, for the outside checker (tools/lincheck, run by .ci/test after this
    // suite) and for reading when a check fails.
    let transport = if common::pki::tls_everywhere() { "https" } else { "http" };
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("faults");
    let file = dir.join(format!("history-seed-{seed}-{transport}.jsonl"));
    let faults = history.faults();
    let written = std::fs::create_dir_all(&dir).and_then(|()| {
        history::HistoryFile {
            seed,
            transport,
            clients: CLIENTS,
            users: workload::USERS,
            capacity: workload::CAPACITY,
            slots: workload::slots(),
            ops: &ops,
            faults: &faults,
            finals: &finals[0],
            problems: &report.problems,
        }
        .write(&file)
    });
    if let Err(e) = written {
        return Err(format!("writing the history to {}: {e}", file.display()));
    }
    println!("history: {}", file.display());
    if report.problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} anomalies (history in {}):\n{}",
            report.problems.len(),
            file.display(),
            report.problems.iter().take(10).cloned().collect::<Vec<_>>().join("\n")
        ))
    }
}

async fn read_finals(workload: &Workload) -> Vec<BTreeMap<String, (String, history::Seen)>> {
    let mut all = Vec::new();
    for node in 0..NODES {
        all.push(workload.final_state(node).await);
    }
    all
}

fn summarise(
    seed: u64,
    duration: Duration,
    ops: &[history::Op],
    history: &History,
    state: &serde_json::Value,
    orders: usize,
) {
    let mut table: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for op in ops {
        let kind = match op.kind {
            Kind::Create { .. } => "create",
            Kind::Update { .. } => "update",
            Kind::Cancel { .. } => "cancel",
            Kind::Read => "read",
        };
        let outcome = match op.outcome {
            Outcome::Written { .. } | Outcome::Listed { .. } => "ok",
            Outcome::Failed(_) => "fail",
            Outcome::Unknown(_) => "unknown",
        };
        *table.entry((kind, outcome)).or_default() += 1;
    }
    let mut faults: BTreeMap<&str, usize> = BTreeMap::new();
    for fault in history.faults() {
        *faults.entry(fault.kind).or_default() += 1;
    }
    println!(
        "faults seed {seed}: {} s, {} operations, {orders} orders, applied index {}",
        duration.as_secs(),
        ops.len(),
        state["applied"]
    );
    println!("| operation | ok | fail | unknown |\n|---|---|---|---|");
    for kind in ["create", "update", "cancel", "read"] {
        let n = |o| table.get(&(kind, o)).copied().unwrap_or(0);
        println!("| {kind} | {} | {} | {} |", n("ok"), n("fail"), n("unknown"));
    }
    println!("| fault | injected |\n|---|---|");
    for (kind, n) in faults {
        println!("| {kind} | {n} |");
    }
}
