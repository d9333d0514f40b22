//! Load generator against real node processes (the release binary under `cargo bench`).
//!
//!   cargo bench --bench load -- create   --nodes 3 --clients 64 --seconds 10
//!   cargo bench --bench load -- failover --rounds 10
//!   cargo bench --bench load -- catchup  --orders 100000
//!   cargo bench --bench load -- backup   --orders 1000000
//!   cargo bench --bench load -- mix      --nodes 3 --clients 100 --seconds 10
//!   cargo bench --bench load -- hotslot  --nodes 3 --users 10000
//!   cargo bench --bench load -- reads    --nodes 1 --clients 64 --seconds 5 --rounds 3
//!   cargo bench --bench load -- stores   --nodes 3 --users 1000000 --clients 64 --seconds 10
//!   cargo bench --bench load -- live     --users 10000
//!   cargo bench --bench load -- edge     --seconds 10
//!
//! `create`: every client places orders for new users through the nodes in turn; reports
//! throughput and p50/p99/p99.9 latency (HDR histogram) and errors by problem type.
//! `failover`: kill -9 the leader while writing; time until a write succeeds again (median).
//! The test cluster's timeouts (election 300–600 ms, heartbeat 50 ms) unless `--set` says
//! otherwise; the shipped ones: `--set raft.heartbeat_ms=50 --set raft.election_timeout_min_ms=200
//! --set raft.election_timeout_max_ms=400`. After each round the cluster converges first.
//! `catchup`: a follower misses `--orders` writes, restarts, and catches up by snapshot.
//! `mix`: the UI mix — each client is a user with an order: 80 % reads, 15 % changes
//! (If-Match), 5 % cancel + re-order; latency by kind. `--think-ms N`: each user pauses a
//! random 0..2N ms (mean N) between actions, as a person at a UI does; `--stale` reads stale.
//! `--preload N` first loads N orders (N users over 144 000 slots), runs the mix at that size,
//! then reports RSS and the time for a `kill -9`ed node to restart and be ready. `--set K=V`
//! (repeatable) passes node settings, e.g. `--set storage.cache_mb=1024` to compare caches.
//! `reads`: GET of one order per client, against a hello-world axum server (same client, same
//! machine), stale reads and linearizable reads, interleaved `--rounds` times; medians and
//! ratios to the hello-world ceiling, and to hello-world run as separate processes, one per
//! node (the same process layout on the same cores); the servers' and the client's CPU time
//! per request. `--workers N`: N worker threads in each node and each hello-world server
//! (default: nodes one per core, hello-world 2).
//! `hotslot`: `--users` users race for one slot of capacity 50: exactly 50 win; the race's
//! p99 is compared with an uncontended create run in the same process. Then up to 1 000 of
//! them join the slot's waitlist, and the 50 winners cancel (each cancel places the first in
//! line's order), side by side with cancels in a slot nobody waits for.
//! `beacons`: the create benchmark with and without about 1 000 analytics beacons a second
//! spread over the nodes (sent by wrk, `benches/beacons.lua`), alternating `--rounds` times (at most 5) on one cluster: medians of throughput and
//! p99, and their ratio.
//! `abuse`: the hot slot again (capacity 50, `--users` customers each trying once), while one
//! abusive token loops create → cancel on it from 16 connections; run with the default rate
//! limits and with `limits.enabled=false`, side by side: places won by customers, their p99,
//! and how many of the abuser's writes were replicated or refused 429.
//! `backup`: one node holding `--orders` orders; time, peak RSS and size of `backup`,
//! `restore` and a full `export` (peak RSS needs GNU time at /usr/bin/time).
//! `stores`: 200 stores and about 100 000 bookable slots, `--users` users spread over them by
//! location: create and the UI mix against the one-store figures of the same run, bytes per
//! order, `/v1/stores/{id}/slots` for a week.
//! `live`: `--users` idle live-availability subscribers on one node (bytes each), and the delay
//! from a write's acknowledgement on another node to its event (p50, p99).
//! `edge`: stale reads (wrk, one per node) over 3 voters, then 3 voters + 2 edge replicas,
//! with a writer on node 1: read throughput and write latency with and without edges.
//! Every loop is bounded in count and time; every process started is stopped.
//! Under `cargo test` (which runs benches with `--bench` absent) it does a tiny smoke run.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::{eventually, TestCluster};
use common::{client, order_body, token};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

struct Args {
    scenario: String,
    nodes: usize,
    clients: usize,
    seconds: u64,
    rounds: usize,
    orders: u64,
    users: u64,
    think_ms: u64,
    stale: bool,
    preload: u64,
    /// `reads --workers N`: worker threads of each node and each hello-world server.
    workers: Option<usize>,
    /// `mix --set key=value` (repeatable): node settings, such as `storage.cache_mb=1024`.
    sets: Vec<String>,
}

fn args() -> Args {
    let raw: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let smoke = !std::env::args().any(|a| a == "--bench");
    let value = |name: &str, default: u64| -> u64 {
        raw.iter().position(|a| a == name).and_then(|i| raw.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
    };
    let scenario = raw.iter().find(|a| !a.starts_with("--") && a.parse::<u64>().is_err()).cloned();
    Args {
        scenario: scenario.unwrap_or_else(|| "create".into()),
        nodes: value("--nodes", 3) as usize,
        clients: value("--clients", if smoke { 4 } else { 64 }) as usize,
        seconds: value("--seconds", if smoke { 1 } else { 10 }),
        rounds: value("--rounds", if smoke { 1 } else { 10 }) as usize,
        orders: value("--orders", if smoke { 200 } else { 100_000 }),
        users: value("--users", if smoke { 200 } else { 10_000 }),
        think_ms: value("--think-ms", 0),
        stale: raw.iter().any(|a| a == "--stale"),
        preload: value("--preload", 0),
        workers: raw.iter().any(|a| a == "--workers").then(|| value("--workers", 2) as usize),
        sets: raw.windows(2).filter(|w| w[0] == "--set").map(|w| w[1].clone()).collect(),
    }
}

/// A grid slot for user number `n`: 48 per day from two days ahead, so no slot fills.
fn slot_for(n: u64) -> String {
    common::slot(2 + (n / 48 % 3000) as i64, (n % 48) as i64)
}

const EXTRA: [&str; 2] = ["slots.capacity=1000000", "log.filter=error"];

/// For scenarios where one client is one user acting at machine speed (the UI mix): the
/// per-user write limit is for people and scripts, and would turn the mix into 429s. `abuse`
/// measures the limits themselves.
const NO_LIMITS: &str = "limits.enabled=false";

/// The body of user `n`'s order.
type OrderBody = Arc<dyn Fn(u64) -> Value + Send + Sync>;

/// Orders at the one store a config's `[slots]` makes (no postcode or location needed).
fn one_store() -> OrderBody {
    Arc::new(|n| order_body(&slot_for(n)))
}

#[tokio::main]
async fn main() {
    let args = args();
    match args.scenario.as_str() {
        "hello-serve" => serve_hello_until_stdin_closes(args.workers.unwrap_or(2)).await,
        "create" => create(&args).await,
        "failover" => failover(&args).await,
        "catchup" => catchup(&args).await,
        "backup" => backup(&args).await,
        "mix" => mix(&args).await,
        "hotslot" => hotslot(&args).await,
        "abuse" => abuse(&args).await,
        "beacons" => beacons(&args).await,
        "reads" => reads(&args).await,
        "stores" => stores(&args).await,
        "live" => live(&args).await,
        "edge" => edge(&args).await,
        other => eprintln!(
            "unknown scenario '{other}': use create, failover, catchup, backup, mix, hotslot, reads or stores"
        ),
    }
}

/// Place orders for new users with `clients` concurrent clients for `seconds`.
async fn drive(
    ports: &[u16],
    clients: usize,
    seconds: u64,
    first_user: u64,
    body: &OrderBody,
) -> (u64, Histogram<u64>, BTreeMap<String, u64>) {
    let next = Arc::new(AtomicU64::new(first_user));
    let errors: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (next, errors, ports, body) = (next.clone(), errors.clone(), ports.to_vec(), body.clone());
            tokio::spawn(async move {
                let http = client();
                let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
                let mut done = 0u64;
                while Instant::now() < deadline {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let port = ports[(c + n as usize) % ports.len()];
                    let started = Instant::now();
                    let sent = http
                        .post(format!("http://127.0.0.1:{port}/v1/orders"))
                        .bearer_auth(token(&format!("load-{n}")))
                        .json(&body(n))
                        .send()
                        .await;
                    let micros = started.elapsed().as_micros() as u64;
                    match sent {
                        Ok(r) if r.status() == 201 => {
                            let _ = histogram.record(micros.max(1));
                            done += 1;
                        }
                        Ok(r) => {
                            let kind = r.json::<Value>().await.ok().and_then(|v| v["type"].as_str().map(str::to_owned));
                            *errors.lock().unwrap().entry(kind.unwrap_or_else(|| "unknown".into())).or_default() += 1;
                        }
                        Err(_) => *errors.lock().unwrap().entry("transport".into()).or_default() += 1,
                    }
                }
                (done, histogram)
            })
        })
        .collect();
    let mut total = 0;
    let mut merged = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    for task in tasks {
        let (done, histogram) = task.await.expect("client task");
        total += done;
        merged.add(&histogram).expect("merge");
    }
    let errors = errors.lock().unwrap().clone();
    (total, merged, errors)
}

async fn create(args: &Args) {
    let cluster = TestCluster::start(args.nodes, &EXTRA).await;
    // Warm up connections and the leader's batcher.
    drive(&cluster.ports, args.clients, 1, 10_000_000, &one_store()).await;
    let started = Instant::now();
    let (done, h, errors) = drive(&cluster.ports, args.clients, args.seconds, 0, &one_store()).await;
    let secs = started.elapsed().as_secs_f64();
    let rss = rss_kib(&cluster);
    let result = json!({
        "scenario": "create", "nodes": args.nodes, "clients": args.clients, "seconds": secs,
        "orders": done, "per_second": (done as f64 / secs).round(),
        "p50_ms": h.value_at_quantile(0.50) as f64 / 1000.0, "p99_ms": h.value_at_quantile(0.99) as f64 / 1000.0,
        "p999_ms": h.value_at_quantile(0.999) as f64 / 1000.0, "errors": errors, "leader_rss_kib": rss,
    });
    println!("{result}");
    println!(
        "| create | {} nodes | {} clients | {:.0}/s | p50 {:.2} ms | p99 {:.2} ms | p99.9 {:.2} ms | errors {:?} |",
        args.nodes,
        args.clients,
        done as f64 / secs,
        h.value_at_quantile(0.50) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.value_at_quantile(0.999) as f64 / 1000.0,
        errors
    );
}

fn rss_kib(cluster: &TestCluster) -> Option<u64> {
    let pid = cluster.node(0).pid();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

async fn failover(args: &Args) {
    let mut extra = EXTRA.to_vec();
    extra.extend(args.sets.iter().map(String::as_str));
    let mut cluster = TestCluster::start(3, &extra).await;
    let mut elections = Vec::new();
    let mut user = 0u64;
    for round in 0..args.rounds {
        let leader = cluster.leader().await;
        let survivor = (leader + 1) % 3;
        cluster.kill(leader);
        let killed = Instant::now();
        eventually(Duration::from_secs(30), "a write after the leader died", || {
            user += 1;
            let url = cluster.url(survivor, "/v1/orders");
            let n = user;
            async move {
                let r = client()
                    .post(url)
                    .bearer_auth(token(&format!("failover-{n}")))
                    .timeout(Duration::from_secs(2))
                    .json(&order_body(&slot_for(n)))
                    .send()
                    .await
                    .ok()?;
                (r.status() == 201).then_some(())
            }
        })
        .await;
        let took = killed.elapsed();
        elections.push(took);
        eprintln!("round {round}: writes resumed {took:?} after kill -9 of node {}", leader + 1);
        cluster.restart(leader);
        cluster.wait_ready().await;
        // One fault at a time: the restarted node has caught up before the next kill (else a
        // node with a shorter log is often first to stand and is turned down, a second fault).
        cluster.converged().await;
    }
    elections.sort();
    let median = elections[elections.len() / 2];
    println!(
        "{}",
        json!({"scenario": "failover", "rounds": elections.len(), "median_ms": median.as_millis(),
        "min_ms": elections[0].as_millis(), "max_ms": elections[elections.len() - 1].as_millis()})
    );
    println!(
        "| failover | {} rounds | median {:?} | min {:?} | max {:?} |",
        elections.len(),
        median,
        elections[0],
        elections[elections.len() - 1]
    );
}

async fn catchup(args: &Args) {
    // About ten snapshots while the follower is away, whatever the size (one entry ≈ ten orders).
    let every = format!("raft.snapshot_after_entries={}", (args.orders / 100).max(200));
    let extra = [EXTRA[0], EXTRA[1], every.as_str(), "raft.entries_kept_after_snapshot=50"];
    let mut cluster = TestCluster::start(3, &extra).await;
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    cluster.kill(follower);
    let live: Vec<u16> = (0..3).filter(|i| *i != follower).map(|i| cluster.ports[i]).collect();
    let written = Instant::now();
    write_orders(&live, args.orders, &one_store()).await;
    eprintln!("wrote {} orders in {:?}", args.orders, written.elapsed());
    let target = cluster.admin_get(leader, "/admin/state").await.expect("leader state");
    let restarted = Instant::now();
    cluster.restart(follower);
    eventually(Duration::from_secs(600), "the follower to catch up", || async {
        let state = cluster.admin_get(follower, "/admin/state").await?;
        (state["applied"].as_u64() >= target["applied"].as_u64() && state["digest"].is_string()).then_some(())
    })
    .await;
    let took = restarted.elapsed();
    let state = cluster.converged().await;
    let status = cluster.admin_get(follower, "/admin/cluster").await.unwrap_or_default();
    let (builds, build_s) = snapshot_builds(&cluster.url(leader, "/metrics")).await;
    println!(
        "{}",
        json!({"scenario": "catchup", "orders": args.orders, "catchup_ms": took.as_millis(),
        "records": state["records"], "follower_snapshot_index": status["snapshot"],
        "leader_snapshot_builds": builds, "leader_snapshot_build_s_total": build_s})
    );
    println!(
        "| catchup | {} orders | {:?} from restart to caught up (incl. start-up) | leader built {builds} snapshots, {:.2} s on average |",
        args.orders,
        took,
        build_s / builds.max(1.0)
    );
}

/// (count, total seconds) of snapshot builds, from a node's `/metrics`.
async fn snapshot_builds(url: &str) -> (f64, f64) {
    let text = client().get(url).send().await.ok().map(|r| r.text());
    let text = match text {
        Some(t) => t.await.unwrap_or_default(),
        None => String::new(),
    };
    let value = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (value("pizza_orders_raft_snapshot_build_seconds_count"), value("pizza_orders_raft_snapshot_build_seconds_sum"))
}

/// Place `total` orders (new users) through `ports` with 64 clients.
async fn write_orders(ports: &[u16], total: u64, body: &OrderBody) {
    let next = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..64)
        .map(|c| {
            let (next, ports, body) = (next.clone(), ports.to_vec(), body.clone());
            tokio::spawn(async move {
                let http = client();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        break;
                    }
                    let port = ports[(c + n as usize) % ports.len()];
                    let _ = http
                        .post(format!("http://127.0.0.1:{port}/v1/orders"))
                        .bearer_auth(token(&format!("bulk-{n}")))
                        .json(&body(n))
                        .send()
                        .await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("writer");
    }
}

/// Run the CLI under GNU time when available: (exit ok, seconds, peak RSS in KiB).
fn timed_cli(args: &[&str]) -> (bool, f64, Option<u64>) {
    let binary = env!("CARGO_BIN_EXE_pizza-orders");
    let started = Instant::now();
    let gnu_time = std::path::Path::new("/usr/bin/time").exists();
    let output = if gnu_time {
        std::process::Command::new("/usr/bin/time").arg("-f").arg("rss_kib=%M").arg(binary).args(args).output()
    } else {
        std::process::Command::new(binary).args(args).output()
    }
    .expect("run the CLI");
    let secs = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let rss = stderr.lines().filter_map(|l| l.strip_prefix("rss_kib=")).find_map(|v| v.trim().parse().ok());
    if !output.status.success() {
        eprintln!("{stderr}");
    }
    (output.status.success(), secs, rss)
}

async fn backup(args: &Args) {
    let cluster = TestCluster::start(1, &EXTRA).await;
    let written = Instant::now();
    write_orders(&cluster.ports, args.orders, &one_store()).await;
    eprintln!("wrote {} orders in {:?}", args.orders, written.elapsed());
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let file = dir.path().join("orders.backup");
    let config = cluster.node(0).config_file.to_str().expect("path").to_owned();
    let node = cluster.url(0, "");
    let (ok, backup_s, backup_rss) = tokio::task::block_in_place(|| {
        timed_cli(&["backup", "--node", &node, "--config", &config, "--out", file.to_str().unwrap(), "--quiet"])
    });
    assert!(ok, "backup failed");
    let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    let restored = dir.path().join("restored");
    let (ok, restore_s, restore_rss) = tokio::task::block_in_place(|| {
        timed_cli(&["restore", "--in", file.to_str().unwrap(), "--data-dir", restored.to_str().unwrap(), "--quiet"])
    });
    assert!(ok, "restore failed");
    let csv = dir.path().join("all.csv");
    let (ok, export_s, export_rss) = tokio::task::block_in_place(|| {
        timed_cli(&["export", "--node", &node, "--config", &config, "--out", csv.to_str().unwrap(), "--quiet"])
    });
    assert!(ok, "export failed");
    let server_rss = rss_kib(&cluster);
    let per_order = size as f64 / args.orders.max(1) as f64;
    println!(
        "{}",
        json!({"scenario": "backup", "orders": args.orders, "backup_s": backup_s, "backup_rss_kib": backup_rss,
        "restore_s": restore_s, "restore_rss_kib": restore_rss, "export_s": export_s, "export_rss_kib": export_rss,
        "backup_bytes": size, "bytes_per_order": per_order, "server_rss_kib": server_rss})
    );
    println!(
        "| backup {} orders | backup {:.1} s, {:?} KiB | restore {:.1} s, {:?} KiB | export {:.1} s, {:?} KiB | {:.0} B/order | server RSS {:?} KiB |",
        args.orders, backup_s, backup_rss, restore_s, restore_rss, export_s, export_rss, per_order, server_rss
    );
}

fn new_histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram")
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

type KindHistograms = BTreeMap<&'static str, Histogram<u64>>;

/// The UI mix: `clients` users, each with an order, for `seconds` (the first not measured).
async fn mix_run(
    ports: &[u16],
    clients: usize,
    seconds: u64,
    think_ms: u64,
    query: &'static str,
    body: &OrderBody,
) -> (KindHistograms, Histogram<u64>, u64) {
    let deadline = Instant::now() + Duration::from_secs(seconds + 1);
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (ports, body) = (ports.to_vec(), body.clone());
            tokio::spawn(async move {
                let http = client();
                let user = format!("mix-{c}");
                let auth = token(&user);
                let base = format!("http://127.0.0.1:{}", ports[c % ports.len()]);
                let mut hist: KindHistograms = BTreeMap::new();
                let mut errors = 0u64;
                let place = |n: u64| {
                    let (http, base, auth, order) = (http.clone(), base.clone(), auth.clone(), body(n));
                    async move {
                        let r =
                            http.post(format!("{base}/v1/orders")).bearer_auth(auth).json(&order).send().await.ok()?;
                        let v: Value = r.json().await.ok()?;
                        Some((v["id"].as_str()?.to_owned(), v["version"].as_u64()?))
                    }
                };
                let Some((mut id, mut version)) = place(c as u64).await else { return (hist, 1) };
                let mut n = 0u64;
                let started = Instant::now();
                while Instant::now() < deadline {
                    n += 1;
                    let roll = (n * 7919 + c as u64 * 104_729) % 100;
                    if think_ms > 0 {
                        let pause = (n * 2_654_435_761 + c as u64 * 40_503) % (2 * think_ms + 1);
                        tokio::time::sleep(Duration::from_millis(pause)).await;
                    }
                    let t = Instant::now();
                    let (kind, ok) = if roll < 80 {
                        let r = http.get(format!("{base}/v1/orders/{id}{query}")).bearer_auth(&auth).send().await;
                        ("read", r.map(|r| r.status() == 200).unwrap_or(false))
                    } else if roll < 95 {
                        let mut change = body(c as u64);
                        change["address"] = json!(format!("{n} Mix Street"));
                        change["size"] = json!("large");
                        let r = http
                            .put(format!("{base}/v1/orders/{id}"))
                            .bearer_auth(&auth)
                            .header("If-Match", format!("\"{version}\""))
                            .json(&change)
                            .send()
                            .await;
                        let ok = match r {
                            Ok(r) if r.status() == 200 => {
                                version += 1;
                                true
                            }
                            _ => false,
                        };
                        ("update", ok)
                    } else {
                        let cancelled = http.delete(format!("{base}/v1/orders/{id}")).bearer_auth(&auth).send().await;
                        let ok = cancelled.map(|r| r.status() == 200).unwrap_or(false);
                        match place(c as u64 + n * 1000).await {
                            Some((new_id, new_version)) if ok => {
                                id = new_id;
                                version = new_version;
                                ("cancel+reorder", true)
                            }
                            _ => ("cancel+reorder", false),
                        }
                    };
                    if started.elapsed() < Duration::from_secs(1) {
                        continue; // warm-up second, not measured
                    }
                    if ok {
                        let _ = hist
                            .entry(kind)
                            .or_insert_with(new_histogram)
                            .record(t.elapsed().as_micros().max(1) as u64);
                    } else {
                        errors += 1;
                    }
                }
                (hist, errors)
            })
        })
        .collect();
    let mut merged: KindHistograms = BTreeMap::new();
    let mut all = new_histogram();
    let mut errors = 0;
    for task in tasks {
        let (hist, e) = task.await.expect("client");
        errors += e;
        for (kind, h) in hist {
            all.add(&h).expect("merge");
            merged.entry(kind).or_insert_with(new_histogram).add(&h).expect("merge");
        }
    }
    (merged, all, errors)
}

async fn mix(args: &Args) {
    let mut extra = vec![EXTRA[0], EXTRA[1], "raft.snapshot_after_entries=100000", NO_LIMITS];
    extra.extend(args.sets.iter().map(String::as_str));
    let mut cluster = TestCluster::start(args.nodes, &extra).await;
    if args.preload > 0 {
        let loading = Instant::now();
        write_orders(&cluster.ports, args.preload, &one_store()).await;
        eprintln!("loaded {} orders in {:?}", args.preload, loading.elapsed());
    }
    let query = if args.stale { "?consistency=stale" } else { "" };
    let term = |status: Option<Value>| status.and_then(|s| s["term"].as_u64()).unwrap_or(0);
    let term_before = term(cluster.admin_get(0, "/admin/cluster").await);
    let (merged, all, errors) =
        mix_run(&cluster.ports, args.clients, args.seconds, args.think_ms, query, &one_store()).await;
    let elections = term(cluster.admin_get(0, "/admin/cluster").await).saturating_sub(term_before);
    println!("| mix elections during the run | {} nodes | {elections} |", args.nodes);
    let secs = args.seconds as f64;
    for (kind, h) in &merged {
        println!(
            "| mix {kind} | {} nodes | {} users, think {} ms{} | {:.0}/s | p50 {:.2} ms | p99 {:.2} ms | p99.9 {:.2} ms |",
            args.nodes,
            args.clients,
            args.think_ms,
            if args.stale { ", stale reads" } else { "" },
            h.len() as f64 / secs,
            ms(h, 0.5),
            ms(h, 0.99),
            ms(h, 0.999)
        );
    }
    if args.preload > 0 {
        let rss = rss_kib(&cluster);
        let data_dir = &cluster.node(0).data_dir;
        let disk: u64 = ["orders.redb", "raft-log.redb"]
            .iter()
            .map(|file| std::fs::metadata(data_dir.join(file)).map_or(0, |m| m.len()))
            .sum();
        cluster.kill(0);
        let restarting = Instant::now();
        cluster.restart(0);
        cluster.wait_ready().await;
        let restart = restarting.elapsed();
        println!(
            "| mix at {} orders | node 1 RSS {:?} KiB | data files {} MB | kill -9 → ready again in {:.2} s |",
            args.preload,
            rss,
            disk / 1_000_000,
            restart.as_secs_f64()
        );
    }
    println!(
        "| mix all | {} nodes | {} users, think {} ms{} | {:.0}/s | p50 {:.2} ms | p99 {:.2} ms | p99.9 {:.2} ms | errors {errors} |",
        args.nodes,
        args.clients,
        args.think_ms,
        if args.stale { ", stale reads" } else { "" },
        all.len() as f64 / secs,
        ms(&all, 0.5),
        ms(&all, 0.99),
        ms(&all, 0.999)
    );
}

/// Beacons at about 1 000 a second: one wrk (the C load generator, far cheaper per request than
/// this process's client) per node, 3 connections each waiting 9 ms between requests, for
/// `seconds`. Returns the wrk processes; their output says how many were sent.
fn start_beacons(ports: &[u16], seconds: u64) -> Vec<std::process::Child> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/beacons.lua");
    ports
        .iter()
        .map(|port| {
            std::process::Command::new("wrk")
                .args([
                    "-t1",
                    "-c3",
                    &format!("-d{seconds}s"),
                    "-s",
                    script,
                    &format!("http://127.0.0.1:{port}/v1/events"),
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("wrk (Debian package wrk) for the beacon load")
        })
        .collect()
}

/// Requests wrk made, from its summary.
fn wrk_requests(child: std::process::Child) -> u64 {
    let out = child.wait_with_output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    out.lines().find(|l| l.contains("requests in")).and_then(|l| l.split_whitespace().next()?.parse().ok()).unwrap_or(0)
}

async fn beacons(args: &Args) {
    let cluster = TestCluster::start(args.nodes, &EXTRA).await;
    drive(&cluster.ports, args.clients, 1, 10_000_000, &one_store()).await;
    let (mut plain, mut with) = (Vec::new(), Vec::new());
    let mut beacon_rate = Vec::new();
    for round in 0..args.rounds.clamp(1, 5) as u64 {
        let first = 20_000_000 + round * 2_000_000;
        let (done, h, _) = drive(&cluster.ports, args.clients, args.seconds, first, &one_store()).await;
        plain.push((done as f64 / args.seconds as f64, ms(&h, 0.99)));
        let wrks = start_beacons(&cluster.ports, args.seconds);
        let (done, h, _) = drive(&cluster.ports, args.clients, args.seconds, first + 1_000_000, &one_store()).await;
        let sent: u64 = wrks.into_iter().map(wrk_requests).sum();
        beacon_rate.push(sent as f64 / args.seconds as f64);
        with.push((done as f64 / args.seconds as f64, ms(&h, 0.99)));
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (rate_plain, p99_plain) =
        (median(plain.iter().map(|r| r.0).collect()), median(plain.iter().map(|r| r.1).collect()));
    let (rate_with, p99_with) =
        (median(with.iter().map(|r| r.0).collect()), median(with.iter().map(|r| r.1).collect()));
    println!(
        "{}",
        json!({"scenario": "beacons", "nodes": args.nodes, "clients": args.clients, "rounds": plain.len(),
        "creates_per_s": {"without": rate_plain, "with": rate_with}, "create_p99_ms": {"without": p99_plain, "with": p99_with},
        "beacons_per_s": median(beacon_rate.clone())})
    );
    println!(
        "| beacons ({} nodes, {} clients) | without: {:.0}/s p99 {:.2} ms | with {:.0} beacons/s: {:.0}/s p99 {:.2} ms | throughput {:.2}×, p99 {:.2}× |",
        args.nodes,
        args.clients,
        rate_plain,
        p99_plain,
        median(beacon_rate),
        rate_with,
        p99_with,
        rate_with / rate_plain,
        p99_with / p99_plain
    );
}

/// One race for the hot slot with an abuser beside it: (customer latencies, customers who won,
/// abuser writes that went through, abuser writes refused 429).
async fn abuse_race(nodes: usize, users: u64, limits: bool, abusers: usize) -> (Histogram<u64>, u64, u64, u64) {
    let mut extra = vec!["slots.capacity=50", EXTRA[1]];
    if !limits {
        extra.push(NO_LIMITS);
    }
    let cluster = TestCluster::start(nodes, &extra).await;
    let ports = cluster.ports.clone();
    let hot = common::slot(2, 24);
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // The abuser: one token, 16 connections, create then cancel what it got, as fast as it can,
    // until the customers are through (bounded by 60 s).
    let abuser: Vec<_> = (0..abusers)
        .map(|c| {
            let (ports, hot, done) = (ports.clone(), hot.clone(), done.clone());
            tokio::spawn(async move {
                let (http, token) = (client(), token("abuser"));
                let (mut through, mut limited) = (0u64, 0u64);
                let deadline = Instant::now() + Duration::from_secs(60);
                let mut n = c;
                while !done.load(Ordering::Relaxed) && Instant::now() < deadline {
                    n += 1;
                    let base = format!("http://127.0.0.1:{}", ports[n % ports.len()]);
                    let r =
                        http.post(format!("{base}/v1/orders")).bearer_auth(&token).json(&order_body(&hot)).send().await;
                    let Ok(r) = r else { continue };
                    match r.status().as_u16() {
                        429 => limited += 1,
                        201 => {
                            through += 1;
                            let id = r.json::<Value>().await.ok().and_then(|v| v["id"].as_str().map(str::to_owned));
                            if let Some(id) = id {
                                let c = http.delete(format!("{base}/v1/orders/{id}")).bearer_auth(&token).send().await;
                                match c.map(|c| c.status().as_u16()) {
                                    Ok(429) => limited += 1,
                                    Ok(_) => through += 1,
                                    Err(_) => {}
                                }
                            }
                        }
                        _ => through += 1,
                    }
                }
                (through, limited)
            })
        })
        .collect();
    let next = Arc::new(AtomicU64::new(0));
    let customers: Vec<_> = (0..48)
        .map(|c| {
            let (next, ports, hot) = (next.clone(), ports.clone(), hot.clone());
            tokio::spawn(async move {
                let http = client();
                let (mut h, mut won) = (new_histogram(), 0u64);
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= users {
                        break;
                    }
                    let t = Instant::now();
                    let r = http
                        .post(format!("http://127.0.0.1:{}/v1/orders", ports[(c + n as usize) % ports.len()]))
                        .bearer_auth(token(&format!("customer-{n}")))
                        .json(&order_body(&hot))
                        .send()
                        .await;
                    let _ = h.record(t.elapsed().as_micros().max(1) as u64);
                    if r.is_ok_and(|r| r.status() == 201) {
                        won += 1;
                    }
                }
                (h, won)
            })
        })
        .collect();
    let (mut h, mut won) = (new_histogram(), 0);
    for task in customers {
        let (th, w) = task.await.expect("customer");
        h.add(&th).expect("merge");
        won += w;
    }
    done.store(true, Ordering::Relaxed);
    let (mut through, mut limited) = (0, 0);
    for task in abuser {
        let (t, l) = task.await.expect("abuser");
        through += t;
        limited += l;
    }
    (h, won, through, limited)
}

async fn abuse(args: &Args) {
    let (on, won_on, through_on, limited_on) = abuse_race(args.nodes, args.users, true, 16).await;
    let (off, won_off, through_off, limited_off) = abuse_race(args.nodes, args.users, false, 16).await;
    let (calm, won_calm, _, _) = abuse_race(args.nodes, args.users, true, 0).await;
    println!(
        "{}",
        json!({"scenario": "abuse", "nodes": args.nodes, "customers": args.users,
        "limits_on": {"customers_won": won_on, "customer_p50_ms": ms(&on, 0.5), "customer_p99_ms": ms(&on, 0.99),
            "abuser_writes": through_on, "abuser_429": limited_on},
        "no_abuser": {"customers_won": won_calm, "customer_p50_ms": ms(&calm, 0.5), "customer_p99_ms": ms(&calm, 0.99)},
        "limits_off": {"customers_won": won_off, "customer_p50_ms": ms(&off, 0.5), "customer_p99_ms": ms(&off, 0.99),
            "abuser_writes": through_off, "abuser_429": limited_off}})
    );
    println!("| abuse ({} nodes, {} customers, 50 places) | customers won | customer p50 / p99 ms | abuser writes replicated | abuser 429 |", args.nodes, args.users);
    println!("| --- | --- | --- | --- | --- |");
    println!(
        "| limits on (defaults) | {won_on} | {:.2} / {:.2} | {through_on} | {limited_on} |",
        ms(&on, 0.5),
        ms(&on, 0.99)
    );
    println!(
        "| limits off | {won_off} | {:.2} / {:.2} | {through_off} | {limited_off} |",
        ms(&off, 0.5),
        ms(&off, 0.99)
    );
    println!("| no abuser (limits on) | {won_calm} | {:.2} / {:.2} | - | - |", ms(&calm, 0.5), ms(&calm, 0.99));
}

async fn hotslot(args: &Args) {
    let extra = ["slots.capacity=50", EXTRA[1]];
    let cluster = TestCluster::start(args.nodes, &extra).await;
    let ports = cluster.ports.clone();
    // Uncontended baseline in the same run: the same number of users over many slots.
    let race = |hot: bool, offset: u64| {
        let ports = ports.clone();
        let total = args.users;
        async move {
            let next = Arc::new(AtomicU64::new(0));
            let tasks: Vec<_> = (0..64)
                .map(|c| {
                    let (next, ports) = (next.clone(), ports.clone());
                    tokio::spawn(async move {
                        let http = client();
                        let (mut h, mut won, mut full) = (new_histogram(), 0u64, 0u64);
                        let mut winners: Vec<(String, String)> = Vec::new();
                        loop {
                            let n = next.fetch_add(1, Ordering::Relaxed);
                            if n >= total {
                                break;
                            }
                            // The hot slot is on day 2; the uncontended run uses one slot per user from
                            // day 100 on, so the two runs never share a slot.
                            let slot = if hot {
                                common::slot(2, 24)
                            } else {
                                common::slot(100 + ((offset + n) / 48) as i64, ((offset + n) % 48) as i64)
                            };
                            let t = Instant::now();
                            let user = format!("hot-{}-{n}", hot as u8);
                            let r = http
                                .post(format!("http://127.0.0.1:{}/v1/orders", ports[(c + n as usize) % ports.len()]))
                                .bearer_auth(token(&user))
                                .json(&order_body(&slot))
                                .send()
                                .await;
                            let _ = h.record(t.elapsed().as_micros().max(1) as u64);
                            match r {
                                Ok(r) if r.status() == 201 => {
                                    won += 1;
                                    let id =
                                        r.json::<Value>().await.ok().and_then(|v| v["id"].as_str().map(str::to_owned));
                                    winners.extend(id.map(|id| (user, id)));
                                }
                                Ok(r) if r.status() == 409 => full += 1,
                                _ => {}
                            }
                        }
                        (h, won, full, winners)
                    })
                })
                .collect();
            let (mut h, mut won, mut full, mut winners) = (new_histogram(), 0, 0, Vec::new());
            for task in tasks {
                let (th, w, f, ws) = task.await.expect("client");
                h.add(&th).expect("merge");
                won += w;
                full += f;
                winners.extend(ws);
            }
            (h, won, full, winners)
        }
    };
    let (base, _, _, _) = race(false, 0).await;
    let (hot, won, full, hot_winners) = race(true, 0).await;
    let waitlist = waitlist_effect(&ports, args.users, hot_winners).await;
    println!(
        "{}",
        json!({"scenario": "hotslot", "nodes": args.nodes, "users": args.users, "winners": won, "slot_full": full,
        "race_p50_ms": ms(&hot, 0.5), "race_p99_ms": ms(&hot, 0.99), "uncontended_p99_ms": ms(&base, 0.99),
        "p99_ratio": ms(&hot, 0.99) / ms(&base, 0.99), "waitlist": waitlist})
    );
    println!(
        "| hotslot | {} nodes | {} users for 50 places | winners {won} | slot-full {full} | race p99 {:.2} ms vs uncontended p99 {:.2} ms ({:.2}×) |",
        args.nodes, args.users, ms(&hot, 0.99), ms(&base, 0.99), ms(&hot, 0.99) / ms(&base, 0.99)
    );
    assert_eq!(won, 50.min(args.users), "a slot of capacity 50 took {won} orders");
}

/// The waitlist's effect on latency, side by side in one run: losers of the hot slot join its
/// line; then the winners cancel (each cancel places the first in line's order in the same
/// transaction), against cancels of as many orders in a slot nobody waits for.
async fn waitlist_effect(ports: &[u16], users: u64, winners: Vec<(String, String)>) -> Value {
    let http = client();
    let hot_slot = common::slot(2, 24);
    let joiners = users.min(1000);
    let (mut join, mut joined) = (new_histogram(), 0u64);
    for n in 0..joiners {
        let url = format!("http://127.0.0.1:{}/v1/waitlist", ports[n as usize % ports.len()]);
        let t = Instant::now();
        let r = http.post(url).bearer_auth(token(&format!("hot-1-{n}"))).json(&order_body(&hot_slot)).send().await;
        if matches!(r, Ok(ref r) if r.status() == 201) {
            let _ = join.record(t.elapsed().as_micros().max(1) as u64);
            joined += 1;
        }
    }
    // As many orders in a slot nobody waits for, placed now and cancelled below.
    let quiet_slot = common::slot(2, 30);
    let mut quiet = Vec::new();
    for n in 0..winners.len() {
        let user = format!("quiet-{n}");
        let url = format!("http://127.0.0.1:{}/v1/orders", ports[n % ports.len()]);
        if let Ok(r) = http.post(url).bearer_auth(token(&user)).json(&order_body(&quiet_slot)).send().await {
            if let Some(id) = r.json::<Value>().await.ok().and_then(|v| v["id"].as_str().map(str::to_owned)) {
                quiet.push((user, id));
            }
        }
    }
    let cancel_all = |orders: Vec<(String, String)>| {
        let (http, ports) = (http.clone(), ports.to_vec());
        async move {
            let mut h = new_histogram();
            for (n, (user, id)) in orders.into_iter().enumerate() {
                let url = format!("http://127.0.0.1:{}/v1/orders/{id}", ports[n % ports.len()]);
                let t = Instant::now();
                if matches!(http.delete(url).bearer_auth(token(&user)).send().await, Ok(r) if r.status() == 200) {
                    let _ = h.record(t.elapsed().as_micros().max(1) as u64);
                }
            }
            h
        }
    };
    let quiet_cancels = cancel_all(quiet).await;
    let promoting_cancels = cancel_all(winners).await;
    let after: Value = http
        .get(format!("http://127.0.0.1:{}/v1/slots", ports[0]))
        .query(&[("from", hot_slot.as_str())])
        .send()
        .await
        .expect("slots")
        .json()
        .await
        .expect("JSON");
    println!(
        "| hotslot waitlist | {joined} joined, p50 {:.2} p99 {:.2} ms | cancel that promotes p50 {:.2} p99 {:.2} ms vs cancel with no line p50 {:.2} p99 {:.2} ms | hot slot remaining after: {} |",
        ms(&join, 0.5), ms(&join, 0.99), ms(&promoting_cancels, 0.5), ms(&promoting_cancels, 0.99),
        ms(&quiet_cancels, 0.5), ms(&quiet_cancels, 0.99), after["slots"][0]["remaining"]
    );
    json!({
        "joined": joined, "join_p50_ms": ms(&join, 0.5), "join_p99_ms": ms(&join, 0.99),
        "promoting_cancel_p50_ms": ms(&promoting_cancels, 0.5), "promoting_cancel_p99_ms": ms(&promoting_cancels, 0.99),
        "plain_cancel_p50_ms": ms(&quiet_cancels, 0.5), "plain_cancel_p99_ms": ms(&quiet_cancels, 0.99),
        "hot_slot_remaining_after": after["slots"][0]["remaining"],
    })
}

/// A hello-world axum server on its own runtime of `workers` threads (2 unless `--workers`: as
/// many as a node has on this machine).
fn hello_server(workers: usize) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind hello");
    let port = listener.local_addr().expect("hello address").port();
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build().expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let app = axum::Router::new().route("/hello", axum::routing::get(|| async { "hello" }));
            let _ = axum::serve(listener, app).await;
        });
    });
    port
}

/// One hello-world server process per node (this bench binary re-run as `hello-serve`), so a
/// 3-node figure also has a ceiling with the same process layout on the same cores. Each
/// process exits when its stdin closes, that is with this one at the latest.
struct HelloProcesses(Vec<std::process::Child>);

impl HelloProcesses {
    fn start(n: usize, workers: usize) -> (Self, Vec<u16>) {
        use std::io::BufRead;
        let exe = std::env::current_exe().expect("bench executable");
        let mut children = Vec::new();
        let mut ports = Vec::new();
        for _ in 0..n {
            let mut child = std::process::Command::new(&exe)
                .args(["hello-serve", "--workers", &workers.to_string()])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("start a hello-world process");
            let mut line = String::new();
            let stdout = child.stdout.take().expect("hello stdout");
            std::io::BufReader::new(stdout).read_line(&mut line).expect("hello port");
            ports.push(line.trim().parse().expect("hello port number"));
            children.push(child);
        }
        (Self(children), ports)
    }
}

impl Drop for HelloProcesses {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// User plus system CPU seconds the processes have used so far (children not included).
fn cpu_seconds(pids: &[u32]) -> f64 {
    // /proc counts in USER_HZ, which Linux fixes at 100 on every architecture this runs on.
    let ticks_per_second = 100.0;
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|stat| {
            // Fields after the command name, which is in parentheses and may hold spaces.
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            Some(fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?)
        })
        .sum::<f64>()
        / ticks_per_second
}

/// The `hello-serve` mode: print the port, serve hello-world until stdin closes.
async fn serve_hello_until_stdin_closes(workers: usize) {
    let port = hello_server(workers);
    println!("{port}");
    let _ = tokio::task::spawn_blocking(|| std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new())).await;
}

/// `clients` concurrent GETs of `urls[c]` (with `auth[c]`) for `seconds`: requests per second.
async fn get_rate(urls: &[String], auth: &[String], seconds: u64) -> (f64, Histogram<u64>, u64) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> = urls
        .iter()
        .zip(auth)
        .map(|(url, auth)| {
            let (url, auth) = (url.clone(), auth.clone());
            tokio::spawn(async move {
                let http = client();
                let (mut h, mut errors) = (new_histogram(), 0u64);
                while Instant::now() < deadline {
                    let t = Instant::now();
                    match http.get(&url).bearer_auth(&auth).send().await {
                        Ok(r) if r.status() == 200 => {
                            let _ = r.bytes().await;
                            let _ = h.record(t.elapsed().as_micros().max(1) as u64);
                        }
                        _ => errors += 1,
                    }
                }
                (h, errors)
            })
        })
        .collect();
    let started = Instant::now();
    let (mut all, mut errors) = (new_histogram(), 0);
    for task in tasks {
        let (h, e) = task.await.expect("client");
        all.add(&h).expect("merge");
        errors += e;
    }
    (all.len() as f64 / started.elapsed().as_secs_f64(), all, errors)
}

async fn reads(args: &Args) {
    let workers = args.workers.map(|n| format!("runtime.worker_threads={n}"));
    let settings: Vec<&str> = EXTRA.iter().copied().chain(workers.as_deref()).collect();
    let cluster = TestCluster::start(args.nodes, &settings).await;
    let hello_workers = args.workers.unwrap_or(2);
    let hello = hello_server(hello_workers);
    let mut ids = Vec::new();
    for c in 0..args.clients {
        let r = client()
            .post(cluster.url(c % args.nodes, "/v1/orders"))
            .bearer_auth(token(&format!("reader-{c}")))
            .json(&order_body(&slot_for(c as u64)))
            .send()
            .await
            .expect("create");
        let v: Value = r.json().await.expect("order");
        ids.push(v["id"].as_str().expect("id").to_owned());
    }
    let auth: Vec<String> = (0..args.clients).map(|c| token(&format!("reader-{c}"))).collect();
    let order = |c: usize, q: &str| cluster.url(c % args.nodes, &format!("/v1/orders/{}{q}", ids[c]));
    let (hello_processes, ports) = HelloProcesses::start(args.nodes, hello_workers);
    let node_pids: Vec<u32> = (0..args.nodes).map(|i| cluster.node(i).pid()).collect();
    let hello_pids: Vec<u32> = hello_processes.0.iter().map(std::process::Child::id).collect();
    // (name, URLs, the server processes whose CPU is counted: none for the in-process server)
    let mut targets: Vec<(&str, Vec<String>, &[u32])> = vec![
        ("hello-world axum", (0..args.clients).map(|_| format!("http://127.0.0.1:{hello}/hello")).collect(), &[]),
        ("stale read", (0..args.clients).map(|c| order(c, "?consistency=stale")).collect(), &node_pids),
        ("linearizable read", (0..args.clients).map(|c| order(c, "")).collect(), &node_pids),
    ];
    let urls = (0..args.clients).map(|c| format!("http://127.0.0.1:{}/hello", ports[c % ports.len()])).collect();
    targets.push(("hello-world axum, one process per node", urls, &hello_pids));
    let _ = get_rate(&targets[2].1, &auth, 1).await; // warm-up
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
    let mut p99s: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
    // CPU time per request, user + system, of the servers and of this (client) process: on a
    // shared 2-core machine this moves far less between runs than a throughput does.
    let mut server_us: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
    let mut client_us: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
    for _ in 0..args.rounds {
        for (i, (_, urls, pids)) in targets.iter().enumerate() {
            let (server_before, client_before) = (cpu_seconds(pids), cpu_seconds(&[std::process::id()]));
            let (rate, h, errors) = get_rate(urls, &auth, args.seconds).await;
            assert_eq!(errors, 0, "{} had {errors} errors", targets[i].0);
            let requests = h.len() as f64;
            server_us[i].push((cpu_seconds(pids) - server_before) / requests * 1e6);
            client_us[i].push((cpu_seconds(&[std::process::id()]) - client_before) / requests * 1e6);
            rates[i].push(rate);
            p99s[i].push(ms(&h, 0.99));
        }
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let ceiling = median(&rates[0]);
    // Also against hello-world in its own processes, as many as there are nodes: the same
    // process layout on the same cores (the in-process server shares the client's process).
    let spread = median(&rates[3]);
    for (i, (name, _, pids)) in targets.iter().enumerate() {
        let rate = median(&rates[i]);
        let server = (!pids.is_empty()).then(|| median(&server_us[i]));
        println!(
            "{}",
            json!({"scenario": "reads", "target": name, "nodes": args.nodes, "clients": args.clients,
            "rounds": args.rounds, "median_per_second": rate.round(), "median_p99_ms": median(&p99s[i]),
            "ratio_to_hello": rate / ceiling, "ratio_to_hello_per_node": rate / spread, "runs": rates[i],
            "server_cpu_us_per_request": server, "client_cpu_us_per_request": median(&client_us[i]),
            "workers_per_server": hello_workers})
        );
        println!(
            "| reads | {name} | {} nodes | {} clients | median {:.0}/s of {} runs | p99 {:.2} ms | {:.2}× hello-world | {:.2}× hello-world per node | server CPU {} | client CPU {:.1} µs/request |",
            args.nodes,
            args.clients,
            rate,
            args.rounds,
            median(&p99s[i]),
            rate / ceiling,
            rate / spread,
            server.map_or("in the client process".to_owned(), |us| format!("{us:.1} µs/request")),
            median(&client_us[i])
        );
    }
}

/// `stores`: the chain at its planned size. A catalog of `CHAIN_STORES` stores on a grid over
/// Europe in four time zones, each delivering 5 km around itself, open 11:00–23:00 local in
/// 30-minute slots for 21 days: about 100 000 bookable slots. `--users` users (1 000 000 for
/// the planned size) are spread over the stores by location and loaded first; then create and
/// the UI mix run against it, after the same runs against a one-store cluster in the same
/// process, and `/v1/stores/{id}/slots` is read for a week.
const CHAIN_STORES: usize = 200;
const CHAIN_HORIZON_DAYS: i64 = 21;
/// Slots a user's order may take: 20 days of 24 slots (11:00–23:00), from tomorrow.
const CHAIN_USER_SLOTS: u64 = 20 * 24;

fn chain_store(i: usize) -> (f64, f64, &'static str) {
    let (row, col) = (i / 20, i % 20);
    let (lat, lon) = (41.0 + row as f64 * 1.8, -8.0 + col as f64 * 1.6);
    let zone = match lon {
        l if l < -2.0 => "Europe/Lisbon",
        l if l < 8.0 => "Europe/Paris",
        l if l < 18.0 => "Europe/Berlin",
        _ => "Europe/Helsinki",
    };
    (lat, lon, zone)
}

fn chain_catalog() -> String {
    let mut toml = String::from(
        "[menu]\ncurrency = \"EUR\"\nsizes = { small = 800, medium = 1050, large = 1300 }\n\
         toppings = { extra_cheese = 150, pepperoni = 200, mushroom = 120 }\n",
    );
    let day = "[\"11:00-23:00\"]";
    for i in 0..CHAIN_STORES {
        let (lat, lon, zone) = chain_store(i);
        toml.push_str(&format!(
            "\n[[stores]]\nid = \"store-{i:03}\"\nname = \"Store {i}\"\nlatitude = {lat}\nlongitude = {lon}\n\
             time_zone = \"{zone}\"\ncapacity = 1000\nhorizon_days = {CHAIN_HORIZON_DAYS}\n\
             hours = {{ mon = {day}, tue = {day}, wed = {day}, thu = {day}, fri = {day}, sat = {day}, sun = {day} }}\n\
             delivery = {{ radius_km = 5.0 }}\n"
        ));
    }
    toml
}

/// User `n` lives within about a kilometre of store `n % CHAIN_STORES` and orders one of its
/// slots, on the store's local clock.
fn chain_body() -> OrderBody {
    use chrono::TimeZone;
    let today = chrono::Utc::now().date_naive();
    Arc::new(move |n| {
        let store = (n % CHAIN_STORES as u64) as usize;
        let (lat, lon, zone) = chain_store(store);
        let k = (n / CHAIN_STORES as u64) % CHAIN_USER_SLOTS;
        let date = today + chrono::Days::new(1 + k / 24);
        let minutes = 11 * 60 + (k % 24) as u32 * 30;
        let local = date.and_hms_opt(minutes / 60, minutes % 60, 0).expect("a time of day");
        let zone: chrono_tz::Tz = zone.parse().expect("zone");
        let start = zone.from_local_datetime(&local).earliest().expect("an instant").with_timezone(&chrono::Utc);
        let offset = ((n % 11) as f64 - 5.0) * 0.002;
        json!({
            "address": format!("{n} Chain Street"), "size": "medium", "toppings": ["pepperoni"],
            "delivery_slot": start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "latitude": lat + offset, "longitude": lon - offset,
        })
    })
}

fn data_bytes(cluster: &TestCluster) -> u64 {
    std::fs::metadata(cluster.node(0).data_dir.join("orders.redb")).map_or(0, |m| m.len())
}

/// GETs of `path` (relative to each node in turn) with 16 clients for `seconds`.
async fn get_latency(ports: &[u16], paths: &[String], seconds: u64) -> Histogram<u64> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..16)
        .map(|c| {
            let (ports, paths) = (ports.to_vec(), paths.to_vec());
            tokio::spawn(async move {
                let http = client();
                let mut h = new_histogram();
                let mut n = c;
                while Instant::now() < deadline {
                    n += 16;
                    let url = format!("http://127.0.0.1:{}{}", ports[n % ports.len()], paths[n % paths.len()]);
                    let t = Instant::now();
                    if matches!(http.get(url).send().await, Ok(r) if r.status() == 200) {
                        let _ = h.record(t.elapsed().as_micros().max(1) as u64);
                    }
                }
                h
            })
        })
        .collect();
    let mut all = new_histogram();
    for task in tasks {
        all.add(task.await.expect("reader")).expect("merge");
    }
    all
}

async fn stores(args: &Args) {
    let (clients, seconds) = (args.clients, args.seconds);
    let snapshots = "raft.snapshot_after_entries=100000";
    // The one-store figures, same process, same machine, first.
    let one = TestCluster::start(args.nodes, &[EXTRA[0], EXTRA[1], snapshots, NO_LIMITS]).await;
    drive(&one.ports, clients, 1, 10_000_000, &one_store()).await;
    let (created_one, create_one, _) = drive(&one.ports, clients, seconds, 0, &one_store()).await;
    let (_, mix_one, _) = mix_run(&one.ports, clients, seconds, args.think_ms, "", &one_store()).await;
    drop(one);

    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = dir.path().join("chain.toml");
    let text = chain_catalog();
    std::fs::write(&catalog, &text).expect("write the catalog");
    let catalog_set = format!("catalog_file={}", catalog.display());
    let chain = TestCluster::start(args.nodes, &[&catalog_set, EXTRA[1], snapshots, NO_LIMITS]).await;
    let body = chain_body();
    let now = chrono::Utc::now();
    let horizon = now + chrono::Duration::days(CHAIN_HORIZON_DAYS);
    let fmt = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut bookable = 0usize;
    for i in 0..CHAIN_STORES {
        let url = chain.url(0, &format!("/v1/stores/store-{i:03}/slots"));
        let list: Value = client()
            .get(url)
            .query(&[("from", fmt(now)), ("to", fmt(horizon))])
            .send()
            .await
            .expect("slots")
            .json()
            .await
            .expect("JSON");
        bookable += list["slots"].as_array().map_or(0, Vec::len);
    }
    let empty = data_bytes(&chain);
    let loading = Instant::now();
    write_orders(&chain.ports, args.users, &body).await;
    let load_secs = loading.elapsed().as_secs_f64();
    let loaded = data_bytes(&chain);
    drive(&chain.ports, clients, 1, 20_000_000, &body).await;
    let (created_chain, create_chain, errors) = drive(&chain.ports, clients, seconds, 10_000_000, &body).await;
    let (_, mix_chain, mix_errors) = mix_run(&chain.ports, clients, seconds, args.think_ms, "", &body).await;
    let week = fmt(now + chrono::Duration::days(7));
    let paths: Vec<String> =
        (0..CHAIN_STORES).map(|i| format!("/v1/stores/store-{i:03}/slots?from={}&to={week}", fmt(now))).collect();
    let slots_week = get_latency(&chain.ports, &paths, seconds.min(5)).await;
    let rss = rss_kib(&chain);
    let ratio = |a: &Histogram<u64>, b: &Histogram<u64>, q: f64| ms(a, q) / ms(b, q);
    println!(
        "{}",
        json!({
            "scenario": "stores", "nodes": args.nodes, "clients": clients, "seconds": seconds,
            "stores": CHAIN_STORES, "bookable_slots": bookable, "users_loaded": args.users, "load_seconds": load_secs,
            "catalog_toml_bytes": text.len(), "catalog_bytes_per_bookable_slot": text.len() as f64 / bookable.max(1) as f64,
            "state_bytes_per_order": (loaded.saturating_sub(empty)) as f64 / args.users.max(1) as f64,
            "create_one_store": {"per_second": created_one as f64 / seconds as f64, "p50_ms": ms(&create_one, 0.5), "p99_ms": ms(&create_one, 0.99)},
            "create_chain": {"per_second": created_chain as f64 / seconds as f64, "p50_ms": ms(&create_chain, 0.5), "p99_ms": ms(&create_chain, 0.99), "errors": errors},
            "create_p99_ratio": ratio(&create_chain, &create_one, 0.99),
            "mix_one_store": {"p50_ms": ms(&mix_one, 0.5), "p99_ms": ms(&mix_one, 0.99)},
            "mix_chain": {"p50_ms": ms(&mix_chain, 0.5), "p99_ms": ms(&mix_chain, 0.99), "errors": mix_errors},
            "mix_p99_ratio": ratio(&mix_chain, &mix_one, 0.99),
            "slots_week": {"per_second": slots_week.len() as f64 / seconds.min(5) as f64, "p50_ms": ms(&slots_week, 0.5), "p99_ms": ms(&slots_week, 0.99)},
            "node1_rss_kib": rss,
        })
    );
    println!(
        "| stores | {} stores, {bookable} bookable slots, {} users loaded in {load_secs:.0} s | {:.0} B/order | create p99 {:.2} vs {:.2} ms ({:.2}×) | mix p99 {:.2} vs {:.2} ms ({:.2}×) | slots for a week p50 {:.2} p99 {:.2} ms |",
        CHAIN_STORES,
        args.users,
        (loaded.saturating_sub(empty)) as f64 / args.users.max(1) as f64,
        ms(&create_chain, 0.99),
        ms(&create_one, 0.99),
        ratio(&create_chain, &create_one, 0.99),
        ms(&mix_chain, 0.99),
        ms(&mix_one, 0.99),
        ratio(&mix_chain, &mix_one, 0.99),
        ms(&slots_week, 0.5),
        ms(&slots_week, 0.99),
    );
}

/// `live`: `--users` idle live-availability subscribers on node 2 (memory per subscriber,
/// from its RSS), then the delay from a write's acknowledgement on node 1 to the event that
/// reports it reaching a subscriber on node 2, for 200 sequential writes, with those idle
/// subscribers still attached (watching another day).
async fn live(args: &Args) {
    let cluster = TestCluster::start(3, &[EXTRA[0], EXTRA[1], "http.max_streams=100000"]).await;
    let watched = common::slot(2, 30);
    let rss = |i: usize| {
        let pid = cluster.node(i).pid();
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let before = rss(1);
    let idle_url =
        cluster.url(1, &format!("/v1/stores/main/slots/stream?from={}&to={}", common::slot(5, 0), common::slot(6, 0)));
    let http = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(0).build().expect("client");
    let mut idle = Vec::with_capacity(args.users as usize);
    for _ in 0..args.users {
        match http.get(&idle_url).send().await {
            Ok(r) if r.status() == 200 => idle.push(r),
            Ok(r) => panic!("subscriber refused: {}", r.status()),
            Err(e) => panic!("subscriber failed: {e}"),
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss(1);
    let per_subscriber = (after.saturating_sub(before) * 1024) as f64 / args.users.max(1) as f64;
    // One subscriber for the watched slot; writes through node 1.
    let url = cluster.url(1, &format!("/v1/stores/main/slots/stream?from={watched}&to={}", common::slot(2, 31)));
    let mut stream = http.get(&url).send().await.expect("subscriber");
    let mut buffer = String::new();
    let mut delays = new_histogram();
    let writes = if args.users < 1000 { 20 } else { 200 };
    let _ = next_sse_block(&mut stream, &mut buffer).await; // the snapshot
    for n in 0..writes {
        let r = http
            .post(cluster.url(0, "/v1/orders"))
            .bearer_auth(token(&format!("live-{n}")))
            .json(&order_body(&watched))
            .send()
            .await
            .expect("write");
        assert_eq!(r.status(), 201);
        let acked = Instant::now();
        loop {
            let block = next_sse_block(&mut stream, &mut buffer).await;
            if block.contains("event: slot") {
                break;
            }
        }
        let _ = delays.record(acked.elapsed().as_micros().max(1) as u64);
    }
    drop(idle);
    println!(
        "{}",
        json!({"scenario": "live", "idle_subscribers": args.users, "rss_before_kib": before, "rss_after_kib": after,
               "bytes_per_idle_subscriber": per_subscriber.round(), "writes": writes,
               "ack_to_event_p50_ms": ms(&delays, 0.5), "ack_to_event_p99_ms": ms(&delays, 0.99)})
    );
    println!(
        "| live | {} idle subscribers on node 2: {:.0} B each (RSS {} → {} KiB) | write acknowledged on node 1 → event on node 2: p50 {:.2} ms, p99 {:.2} ms ({} writes) |",
        args.users, per_subscriber, before, after, ms(&delays, 0.5), ms(&delays, 0.99), writes
    );
}

/// The next server-sent event block (up to its blank line) from `stream`.
async fn next_sse_block(stream: &mut reqwest::Response, buffer: &mut String) -> String {
    loop {
        if let Some(end) = buffer.find("\n\n") {
            return buffer.drain(..end + 2).collect();
        }
        let chunk = stream.chunk().await.expect("stream").expect("the stream ended");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
}

/// `edge`: stale availability reads spread over 3 voters, then over the same 3 voters plus 2
/// edge replicas, with wrk (one process per node, 8 connections each), while one client writes
/// through node 1: total read throughput and the write latency with and without edges.
async fn edge(args: &Args) {
    let extra = [EXTRA[0], EXTRA[1]];
    let mut cluster = TestCluster::start(3, &extra).await;
    let path = format!("/v1/stores/main/slots?from={}&to={}&consistency=stale", common::slot(2, 0), common::slot(3, 0));
    let phase = |nodes: Vec<usize>, cluster: &TestCluster, first_user: u64| {
        let urls: Vec<String> = nodes.iter().map(|i| cluster.url(*i, &path)).collect();
        let writer = cluster.url(0, "/v1/orders");
        let seconds = args.seconds;
        async move {
            let readers: Vec<std::process::Child> = urls
                .iter()
                .map(|url| {
                    std::process::Command::new("wrk")
                        .args(["-t1", "-c8", &format!("-d{seconds}s"), url])
                        .stdout(std::process::Stdio::piped())
                        .stderr(std::process::Stdio::null())
                        .spawn()
                        .expect("wrk (apt-get install wrk)")
                })
                .collect();
            let mut writes = new_histogram();
            let deadline = Instant::now() + Duration::from_secs(seconds);
            let http = client();
            let mut n = first_user;
            while Instant::now() < deadline {
                n += 1;
                let t = Instant::now();
                let r = http
                    .post(&writer)
                    .bearer_auth(token(&format!("edge-{n}")))
                    .json(&order_body(&slot_for(n)))
                    .send()
                    .await;
                if matches!(r, Ok(ref r) if r.status() == 201) {
                    let _ = writes.record(t.elapsed().as_micros().max(1) as u64);
                }
            }
            let mut reads = 0.0;
            for reader in readers {
                let out = reader.wait_with_output().expect("wrk");
                let text = String::from_utf8_lossy(&out.stdout);
                reads += text
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .unwrap_or(0.0);
            }
            (reads, writes)
        }
    };
    let (reads_3, writes_3) = phase(vec![0, 1, 2], &cluster, 0).await;
    for id in [3usize, 4] {
        cluster.spawn_member(id, &extra);
        let added = client()
            .post(cluster.url(0, "/admin/cluster/nodes"))
            .bearer_auth(common::cluster::admin_token())
            .json(&json!({ "id": id + 1, "addr": format!("127.0.0.1:{}", cluster.ports[id]), "edge": true }))
            .send()
            .await
            .expect("add edge");
        assert_eq!(added.status(), 200, "adding edge {}", id + 1);
    }
    cluster.wait_ready().await;
    // The edges attached but not read from: what replicating to them costs the writes.
    let (reads_att, writes_att) = phase(vec![0, 1, 2], &cluster, 2_000_000).await;
    let (reads_5, writes_5) = phase(vec![0, 1, 2, 3, 4], &cluster, 1_000_000).await;
    println!(
        "{}",
        json!({"scenario": "edge", "seconds": args.seconds,
               "voters_only": {"reads_per_second": reads_3.round(), "write_p50_ms": ms(&writes_3, 0.5), "write_p99_ms": ms(&writes_3, 0.99)},
               "edges_attached_reads_on_voters": {"reads_per_second": reads_att.round(), "write_p50_ms": ms(&writes_att, 0.5), "write_p99_ms": ms(&writes_att, 0.99)},
               "with_two_edges": {"reads_per_second": reads_5.round(), "write_p50_ms": ms(&writes_5, 0.5), "write_p99_ms": ms(&writes_5, 0.99)}})
    );
    println!(
        "| edge | reads over 3 voters {:.0}/s vs 3 voters + 2 edges {:.0}/s ({:.2}×) | writes p50/p99 {:.2}/{:.2} ms; edges attached, reads on voters only {:.2}/{:.2} ms ({:.0} reads/s); reads on all five {:.2}/{:.2} ms |",
        reads_3, reads_5, reads_5 / reads_3.max(1.0), ms(&writes_3, 0.5), ms(&writes_3, 0.99),
        ms(&writes_att, 0.5), ms(&writes_att, 0.99), reads_att, ms(&writes_5, 0.5), ms(&writes_5, 0.99)
    );
}
