//! The caching reverse proxy users deploy: real nginx (Debian's package; `.ci/test` installs it)
//! running `deploy/nginx/pizza-orders.conf` in front of a real node, on loopback.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::cluster::{eventually, free_port};
use common::{client, order_body, slot, token, TestNode};
use reqwest::StatusCode;
use serde_json::Value;

/// nginx with the shipped config, pointed at `upstream`, stopped when dropped.
struct Nginx {
    child: Child,
    port: u16,
}

impl Nginx {
    fn start(dir: &Path, upstream: &str) -> Self {
        let binary = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("nginx is not installed: run `bash .ci/test` (it installs Debian's nginx)");
        let port = free_port();
        let shipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/nginx/pizza-orders.conf"))
            .expect("deploy/nginx/pizza-orders.conf");
        let site = shipped
            .replace("server 127.0.0.1:8080", &format!("server {upstream}"))
            .replace("/var/cache/nginx/pizza-orders", &dir.join("cache").display().to_string())
            .replace("listen 80;", &format!("listen 127.0.0.1:{port};"));
        assert!(
            site.contains(upstream) && site.contains(&format!("127.0.0.1:{port}")),
            "the shipped config changed shape"
        );
        std::fs::write(dir.join("pizza-orders.conf"), site).unwrap();
        let d = dir.display();
        // Running as root (CI), workers would drop to `nobody` and lose the temp directories.
        let user = if unsafe_is_root() { "user root;\n" } else { "" };
        let main = format!(
            "{user}daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n access_log off;\n client_body_temp_path {d}/body;\n proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n\
             include {d}/pizza-orders.conf;\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), main).unwrap();
        let child = Command::new(binary)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nginx");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
            assert!(Instant::now() < deadline, "nginx did not listen within 10 s: {log}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Nginx {
    /// SIGTERM, so the master stops its workers (SIGKILL would leave them running); SIGKILL
    /// only if it has not exited within 5 s.
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unsafe_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

fn cache_status(r: &reqwest::Response) -> String {
    r.headers().get("x-cache-status").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

async fn remaining(r: reqwest::Response) -> u64 {
    let list: Value = r.json().await.unwrap();
    list["slots"][0]["remaining"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_caches_public_reads_and_never_a_users_answer() {
    let mut node = TestNode::start_with(&["slots.capacity=5"]);
    let dir = tempfile::tempdir().unwrap();
    let upstream = node.base.trim_start_matches("http://").to_owned();
    let nginx = Nginx::start(dir.path(), &upstream);
    let start = slot(2, 30);
    let availability = nginx.url(&format!("/v1/stores/main/slots?from={start}&to={}", slot(2, 31)));

    // Within max-age a repeated availability request is answered by nginx.
    let first = client().get(&availability).send().await.unwrap();
    assert_eq!((first.status(), cache_status(&first)), (StatusCode::OK, "MISS".to_owned()));
    assert_eq!(remaining(first).await, 5);
    let second = client().get(&availability).send().await.unwrap();
    assert_eq!(cache_status(&second), "HIT");
    let menu = client().get(nginx.url("/v1/menu")).send().await.unwrap();
    assert_eq!(cache_status(&menu), "MISS");
    assert_eq!(cache_status(&client().get(nginx.url("/v1/menu")).send().await.unwrap()), "HIT");

    // A booking through nginx goes straight to the node, and shows once the copy expires.
    let booked = client()
        .post(nginx.url("/v1/orders"))
        .bearer_auth(token("ann"))
        .json(&order_body(&start))
        .send()
        .await
        .unwrap();
    assert_eq!(booked.status(), StatusCode::CREATED);
    assert_eq!(cache_status(&booked), "", "writes are not cached");
    eventually(Duration::from_secs(10), "the booking to show through the cache", || async {
        let r = client().get(&availability).send().await.ok()?;
        (remaining(r).await == 4).then_some(())
    })
    .await;

    // A user's orders are never cached: each user sees their own.
    for (user, count) in [("ann", 1), ("bob", 0), ("ann", 1)] {
        let r = client().get(nginx.url("/v1/orders")).bearer_auth(token(user)).send().await.unwrap();
        assert_eq!(cache_status(&r), "", "{user}");
        let page: Value = r.json().await.unwrap();
        assert_eq!(page["orders"].as_array().unwrap().len(), count, "{user}");
    }
    // A public URL asked with credentials is neither answered from the cache nor stored.
    let stores = nginx.url("/v1/stores?with=credentials");
    let with_auth = client().get(&stores).bearer_auth(token("ann")).send().await.unwrap();
    assert_eq!(cache_status(&with_auth), "BYPASS");
    let without = client().get(&stores).send().await.unwrap();
    assert_eq!(cache_status(&without), "MISS", "the answer to a request with credentials was not stored");

    // The node gone: once the copy has expired, availability still answers from it (STALE).
    node.kill();
    let stale = eventually(Duration::from_secs(10), "a stale copy while the node is down", || async {
        let r = client().get(&availability).send().await.ok()?;
        assert_eq!(r.status(), StatusCode::OK, "a request failed although a copy was cached");
        let status = cache_status(&r);
        matches!(status.as_str(), "STALE" | "UPDATING").then_some((status, remaining(r).await))
    })
    .await;
    assert_eq!(stale.1, 4, "the last copy: {stale:?}");
}
