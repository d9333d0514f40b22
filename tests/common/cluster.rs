//! A cluster of real nodes on fixed loopback ports (so a restarted node keeps its address).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{client, token_with, TestNode};
use pizza_orders::domain::Timestamp;

pub struct TestCluster {
    pub nodes: Vec<Option<TestNode>>,
    pub ports: Vec<u16>,
    sets: Vec<Vec<String>>,
    alive: Vec<bool>,
    /// Nodes keep their logs in files ([`TestNode::log_text`]).
    logged: bool,
    /// Environment variables per node (such as libfaketime's), kept across restarts.
    envs: Vec<Vec<(String, String)>>,
}

/// A loopback port nothing listens on, for a node to bind next. Taken from 20000–31999, below
/// the kernel's ephemeral range (32768–60999 by default): a port the kernel handed out for a
/// bind to port 0 could be handed again, or used as the source port of an outgoing connection
/// (a peer's, a client's), before the node binds it, and the node would exit at start. Each
/// call in a process moves on to the next port, from a start that differs per process.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let seed = std::process::id().wrapping_mul(2_654_435_761)
        ^ std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let _ = NEXT.compare_exchange(u32::MAX, seed % COUNT, Ordering::SeqCst, Ordering::SeqCst);
    for _ in 0..COUNT {
        let port = (FIRST + NEXT.fetch_add(1, Ordering::SeqCst) % COUNT) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

pub fn admin_token() -> String {
    token_with("admin", true, 3600, Timestamp::now())
}

/// GET an admin document as the answering node sees it (`x-pizza-local`: not forwarded), or
/// `None` unless it answers 2xx within `timeout`.
pub async fn admin_json(url: &str, timeout: Duration) -> Option<Value> {
    let response =
        client().get(url).bearer_auth(admin_token()).header("x-pizza-local", "1").timeout(timeout).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().await.ok()
}

/// Poll `check` until it returns `Some`, or panic with `what` after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl TestCluster {
    /// Start `n` nodes and initialise them as one cluster through node 1's admin API.
    pub async fn start(n: usize, extra: &[&str]) -> Self {
        Self::start_each(&vec![extra; n]).await
    }

    /// Start one node per entry, each with its own extra settings (as if each had its own
    /// config file), and initialise them as one cluster through node 1's admin API.
    pub async fn start_each(extras: &[&[&str]]) -> Self {
        Self::start_with_logs(extras, false).await
    }

    /// [`Self::start`] with every node's log kept in a file.
    pub async fn start_logged(n: usize, extra: &[&str]) -> Self {
        Self::start_with_logs(&vec![extra; n], true).await
    }

    /// [`Self::start_each`] with environment variables per node.
    pub async fn start_each_with_env(extras: &[&[&str]], envs: &[&[(&str, &str)]]) -> Self {
        let envs = envs.iter().map(|e| e.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()).collect();
        Self::start_inner(extras, false, envs).await
    }

    async fn start_with_logs(extras: &[&[&str]], logged: bool) -> Self {
        Self::start_inner(extras, logged, Vec::new()).await
    }

    async fn start_inner(extras: &[&[&str]], logged: bool, envs: Vec<Vec<(String, String)>>) -> Self {
        let n = extras.len();
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let mut cluster =
            Self { nodes: Vec::new(), ports: ports.clone(), sets: Vec::new(), alive: Vec::new(), logged, envs };
        for (i, extra) in extras.iter().enumerate() {
            cluster.spawn_member(i, extra);
        }
        let members: serde_json::Map<String, Value> =
            (0..n).map(|i| ((i + 1).to_string(), Value::from(format!("127.0.0.1:{}", ports[i])))).collect();
        let init = client()
            .post(cluster.url(0, "/admin/cluster/init"))
            .bearer_auth(admin_token())
            .json(&json!({ "members": members }))
            .send()
            .await
            .expect("init");
        assert!(init.status().is_success(), "cluster init: {}", init.text().await.unwrap_or_default());
        cluster.wait_ready().await;
        cluster
    }

    /// Start node `i` (0-based, id i+1) with its own data directory, not yet in the cluster.
    pub fn spawn_member(&mut self, i: usize, extra: &[&str]) {
        if self.ports.len() <= i {
            self.ports.push(free_port());
        }
        let mut sets = vec![
            format!("listen=127.0.0.1:{}", self.ports[i]),
            format!("cluster.node_id={}", i + 1),
            "cluster.bootstrap=false".to_owned(),
            "raft.heartbeat_ms=50".to_owned(),
            "raft.election_timeout_min_ms=300".to_owned(),
            "raft.election_timeout_max_ms=600".to_owned(),
        ];
        sets.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = sets.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> =
            self.envs.get(i).map(|e| e.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()).unwrap_or_default();
        let node = if self.logged { TestNode::start_logged(&refs) } else { TestNode::start_with_env(&refs, &env) };
        if self.nodes.len() <= i {
            self.nodes.resize_with(i + 1, || None);
            self.sets.resize_with(i + 1, Vec::new);
            self.alive.resize(i + 1, false);
        }
        self.nodes[i] = Some(node);
        self.alive[i] = true;
        self.sets[i] = sets;
    }

    pub fn node(&self, i: usize) -> &TestNode {
        self.nodes[i].as_ref().expect("node is running")
    }

    pub fn url(&self, i: usize, path: &str) -> String {
        // A node started with HTTPS says so in its address.
        let https = self.nodes.get(i).and_then(Option::as_ref).is_some_and(|n| n.base.starts_with("https://"));
        let scheme = if https { "https" } else { super::pki::scheme() };
        format!("{scheme}://127.0.0.1:{}{}", self.ports[i], path)
    }

    pub fn running(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|i| self.nodes[*i].is_some() && self.alive[*i]).collect()
    }

    pub fn kill(&mut self, i: usize) {
        if let Some(node) = self.nodes[i].as_mut() {
            node.kill();
        }
        self.alive[i] = false;
    }

    pub fn restart(&mut self, i: usize) {
        let sets = self.sets[i].clone();
        let refs: Vec<&str> = sets.iter().map(String::as_str).collect();
        self.nodes[i].as_mut().expect("node exists").restart_with(&refs);
        self.alive[i] = true;
    }

    /// Stop node `i` with SIGTERM (it drains) and start `program` on its data directory.
    pub fn replace_program(&mut self, i: usize, program: &std::path::Path) {
        let node = self.nodes[i].as_mut().expect("node exists");
        node.terminate();
        node.set_program(program);
        let sets = self.sets[i].clone();
        let refs: Vec<&str> = sets.iter().map(String::as_str).collect();
        node.restart_with(&refs);
        self.alive[i] = true;
    }

    pub async fn admin_get(&self, i: usize, path: &str) -> Option<Value> {
        admin_json(&self.url(i, path), Duration::from_secs(2)).await
    }

    /// The index of the node every running node agrees is the leader.
    pub async fn leader(&self) -> usize {
        eventually(Duration::from_secs(20), "an agreed leader", || async {
            let mut seen = None;
            for i in self.running() {
                let status = self.admin_get(i, "/admin/cluster").await?;
                let leader = status["leader"].as_u64()?;
                if seen.is_some_and(|s| s != leader) {
                    return None;
                }
                seen = Some(leader);
            }
            seen.map(|id| id as usize - 1)
        })
        .await
    }

    pub async fn wait_ready(&self) {
        for i in self.running() {
            eventually(Duration::from_secs(20), "every node ready", || async {
                let ready = client().get(self.url(i, "/readyz")).send().await.ok()?;
                ready.status().is_success().then_some(())
            })
            .await;
        }
    }

    /// Wait until every running node has applied the same index with the same state digest.
    pub async fn converged(&self) -> Value {
        self.converged_past(0).await
    }

    /// Like [`Self::converged`], with every node at or past log index `min_applied`. After a restart
    /// the nodes briefly agree on an older applied index, until the new leader commits.
    pub async fn converged_past(&self, min_applied: u64) -> Value {
        eventually(Duration::from_secs(60), "identical state on every node", || async {
            let mut states = Vec::new();
            for i in self.running() {
                states.push(self.admin_get(i, "/admin/state").await?);
            }
            let first = states.first()?.clone();
            let same = states.iter().all(|s| s["applied"] == first["applied"] && s["digest"] == first["digest"]);
            let same = same && first["applied"].as_u64().unwrap_or(0) >= min_applied;
            same.then_some(first)
        })
        .await
    }
}
