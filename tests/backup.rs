//! Backup, restore, check and export as admins and billing use them.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::cluster::{admin_json, eventually, free_port};
use common::{client, create, order_body, run_cli, slot, token, TestNode};
use reqwest::StatusCode;
use serde_json::Value;

/// Writers that create orders until stopped (at most 400, each for a new user).
struct Writers {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<Value>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn start_writers(base: &str, prefix: &str) -> Writers {
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<Value>>> = Arc::default();
    let tasks = (0..4)
        .map(|w| {
            let (stop, acked, base, prefix) = (stop.clone(), acked.clone(), base.to_owned(), prefix.to_owned());
            tokio::spawn(async move {
                for i in 0..100 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let user = format!("{prefix}-{w}-{i}");
                    let r = client()
                        .post(format!("{base}/v1/orders"))
                        .bearer_auth(token(&user))
                        .json(&order_body(&slot(3, 20 + (i % 10) as i64)))
                        .send()
                        .await;
                    if let Ok(r) = r {
                        if r.status() == StatusCode::CREATED {
                            let order: Value = r.json().await.unwrap();
                            acked.lock().unwrap().push(order);
                        }
                    }
                }
            })
        })
        .collect();
    Writers { stop, acked, tasks }
}

impl Writers {
    async fn wait_for(&self, n: usize) {
        eventually(Duration::from_secs(30), "orders to be written", || async {
            (self.acked.lock().unwrap().len() >= n).then_some(())
        })
        .await;
    }

    async fn stop(self) -> Vec<Value> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        let acked = self.acked.lock().unwrap().clone();
        acked
    }
}

async fn cli(args: Vec<String>) -> (Option<i32>, String, String) {
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        run_cli(&refs)
    })
    .await
    .unwrap()
}

fn args(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// Orders of an NDJSON export, by id.
fn ndjson(path: &Path) -> BTreeMap<String, Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|v| (v["order_id"].as_str().unwrap().to_owned(), v))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_taken_under_load_restores_exactly_the_orders_at_its_revision() {
    let node = TestNode::start_with(&["slots.capacity=1000"]);
    let dir = tempfile::tempdir().unwrap();
    let (backup, config) = (dir.path().join("orders.backup"), node.config_file.to_str().unwrap().to_owned());
    // A catalog changed at run time: the backup must carry it and its history.
    let admin = common::cluster::admin_token();
    let current = admin_json(&node.url("/admin/catalog"), Duration::from_secs(5)).await.expect("the catalog");
    let mut catalog = current["catalog"].clone();
    catalog["stores"][0]["capacity"] = serde_json::json!(999);
    let applied = client().put(node.url("/admin/catalog")).bearer_auth(&admin).json(&catalog).send().await.unwrap();
    assert_eq!(applied.status(), StatusCode::OK);
    let writers = start_writers(&node.base, "b");
    writers.wait_for(30).await;
    let (code, out, err) = cli(args(&[
        "backup",
        "--node",
        &node.base,
        "--config",
        &config,
        "--out",
        backup.to_str().unwrap(),
        "--json",
        "--quiet",
    ]))
    .await;
    assert_eq!(code, Some(0), "{err}");
    let summary: Value = serde_json::from_str(out.trim()).unwrap();
    let revision = summary["revision"].as_u64().unwrap();
    let acked = writers.stop().await;
    assert!(acked.len() > summary["orders"].as_u64().unwrap() as usize, "writes continued after the backup");

    // What the live node says was committed at the backup's revision (creates only here).
    let live = dir.path().join("live.ndjson");
    let (code, _, err) = cli(args(&[
        "export",
        "--node",
        &node.base,
        "--config",
        &config,
        "--format",
        "ndjson",
        "--out",
        live.to_str().unwrap(),
        "--quiet",
    ]))
    .await;
    assert_eq!(code, Some(0), "{err}");
    let at_revision: BTreeMap<String, Value> =
        ndjson(&live).into_iter().filter(|(_, o)| o["revision"].as_u64().unwrap() <= revision).collect();
    assert_eq!(at_revision.len() as u64, summary["orders"].as_u64().unwrap());

    let restored = dir.path().join("restored");
    let port = free_port();
    let advertise = format!("127.0.0.1:{port}");
    let (code, _, err) = cli(args(&[
        "restore",
        "--in",
        backup.to_str().unwrap(),
        "--data-dir",
        restored.to_str().unwrap(),
        "--advertise",
        &advertise,
        "--quiet",
    ]))
    .await;
    assert_eq!(code, Some(0), "{err}");
    let (code, out, err) = cli(args(&["check", "--data-dir", restored.to_str().unwrap(), "--config", &config])).await;
    assert_eq!(code, Some(0), "{out}{err}");

    let node2 = TestNode::start_on(&restored, &[&format!("listen={advertise}"), "slots.capacity=1000"]);
    let restored_catalog: Value =
        client().get(node2.url("/admin/catalog")).bearer_auth(&admin).send().await.unwrap().json().await.unwrap();
    assert_eq!(restored_catalog["version"], 2, "the restored node keeps the catalog, not its config's seed");
    assert_eq!(restored_catalog["catalog"]["stores"][0]["capacity"], 999);
    let history = admin_json(&node2.url("/admin/catalog/history"), Duration::from_secs(5)).await.expect("history");
    assert_eq!(history.as_array().map(Vec::len), Some(2), "{history}");
    let exported = dir.path().join("restored.ndjson");
    let (code, _, err) = cli(args(&[
        "export",
        "--node",
        &node2.base,
        "--config",
        &config,
        "--format",
        "ndjson",
        "--out",
        exported.to_str().unwrap(),
        "--quiet",
    ]))
    .await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(ndjson(&exported), at_revision, "the restored node holds exactly the orders at the backup's revision");

    let check: Value = client()
        .get(node2.url("/admin/check"))
        .bearer_auth(common::cluster::admin_token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(check["ok"], true, "{check}");
    let fresh = client()
        .post(node2.url("/v1/orders"))
        .bearer_auth(token("after-restore"))
        .json(&order_body(&slot(4, 30)))
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status(), StatusCode::CREATED, "the restored one-node cluster takes writes");
    let fresh: Value = fresh.json().await.unwrap();
    assert!(fresh["version"] == 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn incremental_exports_add_up_to_a_later_full_export() {
    let node = TestNode::start_with(&["slots.capacity=1000"]);
    let dir = tempfile::tempdir().unwrap();
    let config = node.config_file.to_str().unwrap().to_owned();
    let export = |name: &str, since: Option<u64>| {
        let path = dir.path().join(name);
        let mut a = args(&[
            "export",
            "--node",
            &node.base,
            "--config",
            &config,
            "--out",
            path.to_str().unwrap(),
            "--json",
            "--quiet",
        ]);
        if let Some(since) = since {
            a.extend(args(&["--since-revision", &since.to_string()]));
        }
        async move {
            let (code, out, err) = cli(a).await;
            assert_eq!(code, Some(0), "{err}");
            let summary: Value = serde_json::from_str(out.trim()).unwrap();
            let rows: Vec<BTreeMap<String, String>> =
                csv::Reader::from_path(&path).unwrap().deserialize().map(|r| r.unwrap()).collect();
            (summary["revision"].as_u64().unwrap(), rows)
        }
    };

    let writers = start_writers(&node.base, "e");
    writers.wait_for(20).await;
    let (r1, full) = export("full.csv", None).await;
    writers.wait_for(60).await;
    let (r2, inc1) = export("inc1.csv", Some(r1)).await;
    // Cancel a few orders seen in the first export: cancellations show up in increments.
    for row in full.iter().take(3) {
        let user = &row["user"];
        let url = node.url(&format!("/v1/orders/{}", row["order_id"]));
        assert_eq!(client().delete(url).bearer_auth(token(user)).send().await.unwrap().status(), StatusCode::OK);
    }
    let acked = writers.stop().await;
    let (_, inc2) = export("inc2.csv", Some(r2)).await;
    let (_, later) = export("later.csv", None).await;

    let mut union: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for row in full.into_iter().chain(inc1).chain(inc2) {
        union.insert(row["order_id"].clone(), row);
    }
    let later: BTreeMap<String, BTreeMap<String, String>> =
        later.into_iter().map(|r| (r["order_id"].clone(), r)).collect();
    assert_eq!(union, later, "full export + increments == a later full export");
    assert_eq!(later.len(), acked.len());
    assert_eq!(later.values().filter(|r| r["status"] == "cancelled").count(), 3);
    let csv_total: u64 = later.values().map(|r| r["price_cents"].parse::<u64>().unwrap()).sum();
    let acked_total: u64 = acked.iter().map(|o| o["price_cents"].as_u64().unwrap()).sum();
    assert_eq!(csv_total, acked_total);
    let first = later.values().next().unwrap();
    // 17 columns, then the kitchen's six (preparing_at … not_delivered_reason), then the
    // money's five (net, tax, gross, tax_rate, tax_included).
    assert_eq!(first.len(), 28, "{first:?}");
    assert_eq!((first["store_id"].as_str(), first["catalog_version"].as_str()), ("main", "1"));
    // This node's catalog has no tax: net is gross.
    for row in later.values() {
        assert_eq!(
            (row["net"].as_str(), row["tax"].as_str(), row["tax_rate"].as_str()),
            (row["gross"].as_str(), "0", "0%")
        );
        assert_eq!(row["gross"], row["price_cents"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_backups_and_bad_requests_fail_clearly_and_write_nothing() {
    let node = TestNode::start();
    let dir = tempfile::tempdir().unwrap();
    let config = node.config_file.to_str().unwrap().to_owned();
    for i in 0..5 {
        let r = create(&node, &format!("c{i}"), &order_body(&slot(2, 30))).await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let good = dir.path().join("good.backup");
    let (code, _, err) =
        cli(args(&["backup", "--node", &node.base, "--config", &config, "--out", good.to_str().unwrap(), "--quiet"]))
            .await;
    assert_eq!(code, Some(0), "{err}");
    let bytes = std::fs::read(&good).unwrap();

    let mut flipped = bytes.clone();
    let last = flipped.len() - 40;
    flipped[last] ^= 0xff;
    let mut future_format = bytes.clone();
    let text = String::from_utf8_lossy(&future_format[..4096]).replace("\"format\":1", "\"format\":9");
    future_format[..4096].copy_from_slice(text.as_bytes());
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated", bytes[..bytes.len() - 100].to_vec(), "truncated"),
        ("corrupt", flipped, "corrupt"),
        ("foreign", b"name,price\npizza,10\n".repeat(300), "not a pizza-orders backup"),
        ("future", future_format, "format 9"),
    ];
    for (name, content, message) in cases {
        let file = dir.path().join(format!("{name}.backup"));
        std::fs::write(&file, content).unwrap();
        let target = dir.path().join(format!("restore-{name}"));
        let (code, _, err) =
            cli(args(&["restore", "--in", file.to_str().unwrap(), "--data-dir", target.to_str().unwrap(), "--quiet"]))
                .await;
        assert_eq!(code, Some(3), "{name}: {err}");
        assert!(err.contains(message), "{name}: {err}");
        assert!(
            !target.exists() || std::fs::read_dir(&target).unwrap().next().is_none(),
            "{name}: restore wrote into the target"
        );
    }

    let out = dir.path().join("never.backup");
    let (code, _, err) =
        cli(args(&["backup", "--node", &node.base, "--token", "not-a-token", "--out", out.to_str().unwrap()])).await;
    assert_eq!(code, Some(1));
    assert!(err.contains("401"), "{err}");
    let (code, _, err) =
        cli(args(&["backup", "--node", "http://127.0.0.1:1", "--config", &config, "--out", out.to_str().unwrap()]))
            .await;
    assert_eq!(code, Some(1));
    assert!(err.contains("cannot reach"), "{err}");
    assert!(!out.exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "a failed backup left a partial file behind");

    let (code, _, err) =
        cli(args(&["export", "--node", &node.base, "--config", &config, "--since-revision", "999999"])).await;
    assert_eq!(code, Some(1));
    assert!(err.contains("in the future"), "{err}");

    let restored = dir.path().join("into-nonempty");
    std::fs::create_dir_all(&restored).unwrap();
    std::fs::write(restored.join("something"), b"x").unwrap();
    let (code, _, err) =
        cli(args(&["restore", "--in", good.to_str().unwrap(), "--data-dir", restored.to_str().unwrap()])).await;
    assert_eq!(code, Some(2));
    assert!(err.contains("--force"), "{err}");
}

/// The README's disaster-recovery runbook: every node is lost; restore the last backup on a
/// new node 1, start two empty nodes, add them; all three converge on the backed-up state.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn disaster_recovery_runbook_rebuilds_a_three_node_cluster_from_a_backup() {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("last.backup");
    let config;
    {
        let old = TestNode::start();
        config = dir.path().join("copy.toml");
        std::fs::copy(&old.config_file, &config).unwrap();
        for i in 0..10 {
            let r = client()
                .post(old.url("/v1/orders"))
                .bearer_auth(token(&format!("dr{i}")))
                .json(&order_body(&slot(2, 20 + i)))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::CREATED);
        }
        let (code, _, err) = cli(args(&[
            "backup",
            "--node",
            &old.base,
            "--config",
            config.to_str().unwrap(),
            "--out",
            backup.to_str().unwrap(),
            "--quiet",
        ]))
        .await;
        assert_eq!(code, Some(0), "{err}");
    } // the old cluster is gone

    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let addr = |i: usize| format!("127.0.0.1:{}", ports[i]);
    let data1 = dir.path().join("node1");
    let (code, _, err) = cli(args(&[
        "restore",
        "--in",
        backup.to_str().unwrap(),
        "--data-dir",
        data1.to_str().unwrap(),
        "--node-id",
        "1",
        "--advertise",
        &addr(0),
        "--quiet",
    ]))
    .await;
    assert_eq!(code, Some(0), "{err}");
    let timing = ["raft.heartbeat_ms=50", "raft.election_timeout_min_ms=300", "raft.election_timeout_max_ms=600"];
    let listen = |i: usize| format!("listen={}", addr(i));
    let mut sets1: Vec<String> = vec![listen(0), "cluster.node_id=1".into()];
    sets1.extend(timing.iter().map(|s| s.to_string()));
    let node1 = TestNode::start_on(&data1, &sets1.iter().map(String::as_str).collect::<Vec<_>>());
    let mut others = Vec::new();
    for i in 1..3 {
        let mut sets: Vec<String> =
            vec![listen(i), format!("cluster.node_id={}", i + 1), "cluster.bootstrap=false".into()];
        sets.extend(timing.iter().map(|s| s.to_string()));
        others.push(TestNode::start_with(&sets.iter().map(String::as_str).collect::<Vec<_>>()));
    }
    for i in 1..3 {
        let id = (i + 1).to_string();
        let (code, out, err) = cli(args(&[
            "cluster",
            "add",
            "--id",
            &id,
            "--addr",
            &addr(i),
            "--node",
            &node1.base,
            "--config",
            config.to_str().unwrap(),
        ]))
        .await;
        assert_eq!(code, Some(0), "{out}{err}");
    }
    let admin = common::cluster::admin_token();
    let state = |base: String| {
        let admin = admin.clone();
        async move {
            let r = client().get(format!("{base}/admin/state")).bearer_auth(admin).send().await.ok()?;
            r.json::<Value>().await.ok()
        }
    };
    let bases: Vec<String> = std::iter::once(node1.base.clone()).chain(others.iter().map(|n| n.base.clone())).collect();
    eventually(Duration::from_secs(30), "all three nodes to hold the restored state", || async {
        let mut seen = Vec::new();
        for base in &bases {
            seen.push(state(base.clone()).await?);
        }
        let first = &seen[0];
        let same = seen.iter().all(|s| s["digest"] == first["digest"] && s["applied"] == first["applied"]);
        (same && first["records"].as_u64()? > 10).then_some(())
    })
    .await;
    // Every restored order is readable through a new node.
    let page: Value =
        client().get(others[1].url("/v1/orders")).bearer_auth(token("dr3")).send().await.unwrap().json().await.unwrap();
    assert_eq!(page["orders"].as_array().unwrap().len(), 1);
}

/// What an operator's timer runs: `backup --out-dir --keep --metrics-file`, then the restore drill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_backups_keep_the_newest_verified_files_and_the_drill_restores_the_newest() {
    let node = TestNode::start();
    let dir = tempfile::tempdir().unwrap();
    let (backups, metrics) = (dir.path().join("backups"), dir.path().join("pizza-orders-backup.prom"));
    std::fs::create_dir_all(&backups).unwrap();
    std::fs::write(backups.join("README.txt"), "not a backup").unwrap();
    let config = node.config_file.to_str().unwrap().to_owned();
    let scheduled = |node: String| {
        args(&[
            "backup",
            "--node",
            &node,
            "--config",
            &config,
            "--out-dir",
            backups.to_str().unwrap(),
            "--keep",
            "2",
            "--metrics-file",
            metrics.to_str().unwrap(),
            "--quiet",
        ])
    };
    let gauge = |text: &str, name: &str| -> Option<f64> {
        text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix('{')?.split_once("} ")?.1.parse().ok())
    };
    let mut revisions = Vec::new();
    for run in 0..3 {
        let r = create(&node, &format!("s{run}"), &order_body(&slot(2, 30))).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let (code, out, err) = cli(scheduled(node.base.clone())).await;
        assert_eq!(code, Some(0), "run {run}: {err}");
        let revision: u64 =
            out.split("at revision ").nth(1).and_then(|r| r.split(':').next()).unwrap().parse().unwrap();
        revisions.push(revision);
        let text = std::fs::read_to_string(&metrics).unwrap();
        assert_eq!(gauge(&text, "pizza_orders_backup_last_attempt_success"), Some(1.0), "{text}");
        assert_eq!(gauge(&text, "pizza_orders_backup_last_success_orders"), Some(run as f64 + 1.0), "{text}");
        assert_eq!(gauge(&text, "pizza_orders_backup_kept_files"), Some((run + 1).min(2) as f64), "{text}");
    }
    // The two newest are kept, the README is untouched, nothing half-written is left.
    let mut names: Vec<String> =
        std::fs::read_dir(&backups).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.contains(&"README.txt".to_owned()), "{names:?}");
    for revision in &revisions[1..] {
        assert!(names.iter().any(|n| n.ends_with(&format!("-r{revision}.backup"))), "r{revision} kept: {names:?}");
    }
    assert!(!names.iter().any(|n| n.ends_with(&format!("-r{}.backup", revisions[0]))), "oldest removed: {names:?}");
    let good = std::fs::read_to_string(&metrics).unwrap();
    let last_success = gauge(&good, "pizza_orders_backup_last_success_timestamp_seconds").unwrap();

    // A run that fails (node unreachable) says so, keeps the last success and removes nothing.
    let (code, _, err) = cli(scheduled("http://127.0.0.1:1".into())).await;
    assert_eq!(code, Some(1), "{err}");
    let text = std::fs::read_to_string(&metrics).unwrap();
    assert_eq!(gauge(&text, "pizza_orders_backup_last_attempt_success"), Some(0.0), "{text}");
    assert_eq!(gauge(&text, "pizza_orders_backup_last_success_timestamp_seconds"), Some(last_success), "{text}");
    assert_eq!(gauge(&text, "pizza_orders_backup_kept_files"), Some(2.0), "{text}");
    assert_eq!(std::fs::read_dir(&backups).unwrap().count(), 3);

    // --keep needs --out-dir and at least 1.
    let (code, _, err) = cli(args(&["backup", "--node", &node.base, "--out-dir", "x", "--keep", "0"])).await;
    assert_eq!(code, Some(2), "{err}");
    let (code, _, err) =
        cli(args(&["backup", "--node", &node.base, "--out", "x.backup", "--out-dir", "x", "--keep", "1"])).await;
    assert_eq!(code, Some(2), "{err}");

    // The drill: restore the newest into a scratch directory and check it.
    let newest = names.iter().filter(|n| n.ends_with(".backup")).max_by_key(|n| {
        n.rsplit("-r").next().and_then(|r| r.strip_suffix(".backup")).and_then(|r| r.parse::<u64>().ok())
    });
    let newest = backups.join(newest.unwrap());
    let scratch = dir.path().join("drill");
    let (code, _, err) =
        cli(args(&["restore", "--in", newest.to_str().unwrap(), "--data-dir", scratch.to_str().unwrap(), "--quiet"]))
            .await;
    assert_eq!(code, Some(0), "{err}");
    let (code, out, err) = cli(args(&["check", "--data-dir", scratch.to_str().unwrap(), "--json"])).await;
    assert_eq!(code, Some(0), "{out} {err}");
    let report: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["report"]["orders"], 3, "{report}");
}
