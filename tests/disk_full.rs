//! A node's data directory on a small file system that fills up under write load, on a
//! follower and then on the leader. Needs root to mount a tmpfs (CI runs as root); without it
//! the test says why and passes without running.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::time::Duration;

use common::cluster::{admin_token, eventually, TestCluster};
use common::writers::Writers;
use common::{client, token};
use reqwest::StatusCode;
use serde_json::Value;

const MIB: u64 = 1 << 20;
/// `storage.min_free_mb` in this test: refused below 16 MiB free, the log waits below 8.
const RESERVE_MB: u64 = 16;

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size_mb: u64) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Process::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mb}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!("mount -t tmpfs failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(Self { path: dir.path().to_owned(), _dir: dir })
    }

    fn free(&self) -> u64 {
        let s = rustix::fs::statvfs(&self.path).expect("statvfs");
        s.f_bavail * s.f_frsize
    }

    /// Fill the file system until `left` bytes are free (a file of zeros, really allocated).
    fn fill_to(&self, left: u64) -> PathBuf {
        let filler = self.path.join("filler");
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&filler).expect("filler");
        let chunk = vec![0u8; 256 << 10];
        while self.free() > left + chunk.len() as u64 {
            file.write_all(&chunk).expect("fill");
        }
        file.sync_all().expect("sync filler");
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Process::new("umount").arg("-l").arg(&self.path).status();
    }
}

async fn ready(cluster: &TestCluster, i: usize) -> (StatusCode, Value) {
    let r = client().get(cluster.url(i, "/readyz")).send().await.expect("readyz");
    (r.status(), r.json().await.unwrap_or_default())
}

async fn metric(cluster: &TestCluster, i: usize, name: &str) -> Option<f64> {
    let text =
        client().get(cluster.url(i, "/metrics")).bearer_auth(admin_token()).send().await.ok()?.text().await.ok()?;
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path.display().to_string());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_refuses_writes_clearly_loses_nothing_and_recovers_when_space_is_freed() {
    let mounts: Vec<Tmpfs> = match (0..3).map(|_| Tmpfs::mount(64)).collect::<Result<_, _>>() {
        Ok(mounts) => mounts,
        Err(reason) => {
            eprintln!("skipped: this test mounts a tmpfs per node and needs root ({reason})");
            return;
        }
    };
    let sets: Vec<Vec<String>> = mounts
        .iter()
        .map(|m| {
            vec![
                format!("data_dir={}", m.path.join("data").display()),
                format!("storage.min_free_mb={RESERVE_MB}"),
                "slots.capacity=100000".to_owned(),
                "limits.enabled=false".to_owned(),
                "analytics.enabled=false".to_owned(),
            ]
        })
        .collect();
    let refs: Vec<Vec<&str>> = sets.iter().map(|s| s.iter().map(String::as_str).collect()).collect();
    let extras: Vec<&[&str]> = refs.iter().map(Vec::as_slice).collect();
    let cluster = TestCluster::start_each(&extras).await;
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    let bases: Vec<String> = (0..3).map(|i| cluster.url(i, "")).collect();
    eprintln!("leader node {}, follower under test node {}", leader + 1, follower + 1);

    // 1. A follower's disk fills while orders are written through every node.
    let writers = Writers::start(4, bases.clone(), "f");
    eventually(Duration::from_secs(30), "writes under way", || async { (writers.acked() >= 50).then_some(()) }).await;
    let filler = mounts[follower].fill_to(RESERVE_MB * MIB / 2 - 2 * MIB);
    eventually(Duration::from_secs(10), "the follower to say it is not ready", || async {
        let (status, body) = ready(&cluster, follower).await;
        (status == StatusCode::SERVICE_UNAVAILABLE && body["reason"].as_str()?.contains("nearly full")).then_some(body)
    })
    .await;
    eventually(Duration::from_secs(10), "the follower's storage metric", || async {
        (metric(&cluster, follower, "pizza_orders_storage_full").await? == 1.0).then_some(())
    })
    .await;
    // A write sent to the full follower goes straight to the leader (its own Raft waits in an
    // append and is not asked).
    let started = std::time::Instant::now();
    let r = client()
        .post(cluster.url(follower, "/v1/orders"))
        .bearer_auth(token("through-the-full-follower"))
        .json(&common::order_body(&common::slot(3, 1)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "a write through the full follower");
    assert!(started.elapsed() < Duration::from_secs(2), "answered in {:?}", started.elapsed());
    // The two others are a quorum: writes go on, through the full follower too.
    let before = writers.acked();
    eventually(Duration::from_secs(30), "writes to go on without the full follower", || async {
        (writers.acked() >= before + 200).then_some(())
    })
    .await;
    assert!(writers.refused().is_empty(), "a full follower refused nothing: {:?}", writers.refused().first());
    let (status, body) = ready(&cluster, leader).await;
    assert_eq!(status, StatusCode::OK, "the leader while a follower is full: {body}");
    std::fs::remove_file(&filler).unwrap();
    eventually(Duration::from_secs(30), "the follower to recover by itself", || async {
        (ready(&cluster, follower).await.0 == StatusCode::OK).then_some(())
    })
    .await;
    let mut acked = writers.stop().await;

    // 2. The leader's disk fills under write load: every node refuses writes with the reason.
    let writers = Writers::start(4, bases.clone(), "l");
    eventually(Duration::from_secs(30), "writes under way", || async { (writers.acked() >= 50).then_some(()) }).await;
    let filler = mounts[leader].fill_to(RESERVE_MB * MIB - 2 * MIB);
    let refusal = eventually(Duration::from_secs(20), "writes refused as storage-full", || async {
        writers.refused().into_iter().find(|p| p["type"].as_str().is_some_and(|t| t.ends_with("/storage-full")))
    })
    .await;
    assert_eq!(refusal["status"], 503, "{refusal}");
    assert!(refusal["detail"].as_str().unwrap().contains("storage.min_free_mb"), "{refusal}");
    let (status, body) = ready(&cluster, leader).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    // Reads keep working on every node.
    let (user, id) = (acked[0].user.clone(), acked[0].id.clone());
    for i in 0..3 {
        let r =
            client().get(cluster.url(i, &format!("/v1/orders/{id}"))).bearer_auth(token(&user)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "a read on node {} while the leader's disk is full", i + 1);
    }
    let full_since = writers.acked();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(writers.acked() <= full_since + 8, "writes kept being acknowledged on a full leader");
    std::fs::remove_file(&filler).unwrap();
    let resumed = writers.acked();
    eventually(Duration::from_secs(30), "writes to resume by themselves", || async {
        (writers.acked() >= resumed + 50).then_some(())
    })
    .await;
    acked.extend(writers.stop().await);

    // 3. Nothing acknowledged is lost, on any node; the state checks clean; nothing half-written.
    let state = cluster.converged().await;
    eprintln!("acknowledged {} orders; converged at {}", acked.len(), state["applied"]);
    common::writers::assert_every_order_everywhere(&cluster, &acked).await;
    for (i, mount) in mounts.iter().enumerate() {
        let partial: Vec<String> = files_under(&mount.path)
            .into_iter()
            .filter(|f| f.contains("partial") || f.ends_with(".tmp") || f.contains("filler"))
            .collect();
        assert!(partial.is_empty(), "node {}: {partial:?}", i + 1);
    }
}
