//! The nemesis: three real node processes behind fault proxies, and the faults it injects.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::cluster::{admin_json, admin_token, free_port};
use crate::common::{client, TestNode};
use crate::history::{Fault, History};
use crate::proxy::{self, node_ip, Cut, Links};

pub const NODES: usize = 3;

#[derive(Clone, Copy, Debug)]
pub enum FaultKind {
    KillLeader,
    KillRandom,
    PauseLeader,
    PauseRandom,
    IsolateLeader,
    IsolateRandom,
    /// The leader's messages to the others are lost; theirs to it arrive.
    LeaderCannotSend,
    /// The others' messages to the leader are lost; its messages arrive.
    LeaderCannotHear,
    /// Two nodes cannot talk to each other; the third sees both.
    Bridge,
    /// The leader is isolated and another node is killed: no quorum until it heals.
    IsolateLeaderAndKillOther,
    /// The leader's connections to and from the others are reset (RST), not black-holed.
    ResetLeader,
    /// Two nodes reset each other's connections; the third sees both.
    ResetBridge,
}

pub const ALL_FAULTS: [FaultKind; 12] = [
    FaultKind::KillLeader,
    FaultKind::KillRandom,
    FaultKind::PauseLeader,
    FaultKind::PauseRandom,
    FaultKind::IsolateLeader,
    FaultKind::IsolateRandom,
    FaultKind::LeaderCannotSend,
    FaultKind::LeaderCannotHear,
    FaultKind::Bridge,
    FaultKind::IsolateLeaderAndKillOther,
    FaultKind::ResetLeader,
    FaultKind::ResetBridge,
];

impl FaultKind {
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::KillLeader => "kill -9 leader",
            FaultKind::KillRandom => "kill -9 random node",
            FaultKind::PauseLeader => "SIGSTOP leader",
            FaultKind::PauseRandom => "SIGSTOP random node",
            FaultKind::IsolateLeader => "isolate leader",
            FaultKind::IsolateRandom => "isolate random node",
            FaultKind::LeaderCannotSend => "one-way: leader -> others lost",
            FaultKind::LeaderCannotHear => "one-way: others -> leader lost",
            FaultKind::Bridge => "bridge (two nodes cut, third sees both)",
            FaultKind::IsolateLeaderAndKillOther => "isolate leader + kill -9 another",
            FaultKind::ResetLeader => "isolate leader with RSTs",
            FaultKind::ResetBridge => "bridge with RSTs (two nodes reset each other)",
        }
    }
}

/// Log lines per node printed when the nodes do not converge.
const LOG_TAIL: usize = 30;

pub struct Cluster {
    pub nodes: Vec<TestNode>,
    sets: Vec<Vec<String>>,
    pub urls: Vec<String>,
    pub links: Links,
    dead: Vec<bool>,
    paused: Vec<bool>,
}

impl Cluster {
    /// Node i listens on 127.0.0.(i+1), talks to peers from that address, and is reached by
    /// peers only through its proxy.
    pub async fn start(extra: &[&str]) -> Self {
        let links = Links::default();
        let mut nodes = Vec::new();
        let mut sets_all = Vec::new();
        let mut advertised = Vec::new();
        for i in 0..NODES {
            let ip = node_ip(i);
            let listener = proxy::bind(i).await;
            let proxy_port = listener.local_addr().expect("proxy address").port();
            let port = free_port();
            let mut sets = vec![
                format!("listen={ip}:{port}"),
                format!("cluster.advertise={ip}:{proxy_port}"),
                format!("cluster.source_ip={ip}"),
                format!("cluster.node_id={}", i + 1),
                "cluster.bootstrap=false".to_owned(),
                "raft.heartbeat_ms=50".to_owned(),
                "raft.election_timeout_min_ms=300".to_owned(),
                "raft.election_timeout_max_ms=600".to_owned(),
                // Info (not openraft's) for the log tail a convergence timeout prints.
                "log.filter=info,openraft=warn".to_owned(),
            ];
            sets.extend(extra.iter().map(|s| s.to_string()));
            let refs: Vec<&str> = sets.iter().map(String::as_str).collect();
            // Each node logs (at the filter above) to a file of its own, kept across its
            // restarts, so a convergence timeout can show what each node said last.
            nodes.push(TestNode::start_logged(&refs));
            let upstream: SocketAddr = format!("{ip}:{port}").parse().unwrap();
            let listen: SocketAddr = format!("{ip}:{proxy_port}").parse().unwrap();
            proxy::start(listener, upstream, i, links.clone());
            advertised.push(listen.to_string());
            sets_all.push(sets);
        }
        let urls = nodes.iter().map(|n| n.base.clone()).collect();
        let cluster = Self { nodes, sets: sets_all, urls, links, dead: vec![false; NODES], paused: vec![false; NODES] };
        let members: serde_json::Map<String, Value> =
            advertised.iter().enumerate().map(|(i, a)| ((i + 1).to_string(), Value::from(a.clone()))).collect();
        let init = client()
            .post(format!("{}/admin/cluster/init", cluster.urls[0]))
            .bearer_auth(admin_token())
            .json(&serde_json::json!({ "members": members }))
            .send()
            .await
            .expect("init");
        assert!(init.status().is_success(), "cluster init: {}", init.text().await.unwrap_or_default());
        cluster.leader().await.expect("a first leader");
        cluster
    }

    pub async fn admin_get(&self, i: usize, path: &str) -> Option<Value> {
        admin_json(&format!("{}{path}", self.urls[i]), Duration::from_millis(500)).await
    }

    /// The leader the live, unpaused nodes agree on, if they agree within a few seconds.
    pub async fn leader(&self) -> Option<usize> {
        for _ in 0..60 {
            let mut seen = None;
            let mut agreed = true;
            for i in (0..NODES).filter(|i| !self.dead[*i] && !self.paused[*i]) {
                let leader = self.admin_get(i, "/admin/cluster").await.and_then(|s| s["leader"].as_u64());
                match (seen, leader) {
                    (_, None) => agreed = false,
                    (None, Some(l)) => seen = Some(l),
                    (Some(s), Some(l)) if s != l => agreed = false,
                    _ => {}
                }
            }
            if agreed {
                if let Some(l) = seen {
                    return Some(l as usize - 1);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    fn signal(&self, i: usize, signal: &str) {
        let _ = Command::new("kill").arg(signal).arg(self.nodes[i].pid().to_string()).status();
    }

    pub fn kill(&mut self, i: usize) {
        if self.paused[i] {
            self.signal(i, "-CONT");
            self.paused[i] = false;
        }
        self.nodes[i].kill();
        self.dead[i] = true;
    }

    pub fn restart(&mut self, i: usize) {
        let refs: Vec<&str> = self.sets[i].iter().map(String::as_str).collect();
        self.nodes[i].restart_with(&refs);
        self.dead[i] = false;
    }

    pub fn pause(&mut self, i: usize) {
        self.signal(i, "-STOP");
        self.paused[i] = true;
    }

    pub fn resume(&mut self, i: usize) {
        self.signal(i, "-CONT");
        self.paused[i] = false;
    }

    /// Undo every fault: links healed, paused nodes resumed, killed nodes restarted.
    pub fn heal_all(&mut self) {
        self.links.heal();
        for i in 0..NODES {
            if self.paused[i] {
                self.resume(i);
            }
            if self.dead[i] {
                self.restart(i);
            }
        }
    }

    /// Inject `kind`, hold it for `hold`, then heal it; recorded in `history`.
    pub async fn inject(&mut self, kind: FaultKind, hold: Duration, rng: &mut fastrand::Rng, history: &History) {
        let leader = self.leader().await.unwrap_or_else(|| rng.usize(..NODES));
        let random = rng.usize(..NODES);
        let other = (leader + 1 + rng.usize(..NODES - 1)) % NODES;
        let started = history.now();
        let nodes = match kind {
            FaultKind::KillLeader | FaultKind::KillRandom => {
                let target = if matches!(kind, FaultKind::KillLeader) { leader } else { random };
                self.kill(target);
                vec![target]
            }
            FaultKind::PauseLeader | FaultKind::PauseRandom => {
                let target = if matches!(kind, FaultKind::PauseLeader) { leader } else { random };
                self.pause(target);
                vec![target]
            }
            FaultKind::IsolateLeader | FaultKind::IsolateRandom => {
                let target = if matches!(kind, FaultKind::IsolateLeader) { leader } else { random };
                self.links.isolate(target, NODES);
                vec![target]
            }
            FaultKind::LeaderCannotSend | FaultKind::LeaderCannotHear => {
                for o in (0..NODES).filter(|o| *o != leader) {
                    if matches!(kind, FaultKind::LeaderCannotSend) {
                        self.links.cut(leader, o);
                    } else {
                        self.links.cut(o, leader);
                    }
                }
                vec![leader]
            }
            FaultKind::Bridge => {
                let (a, b) = (random, (random + 1) % NODES);
                self.links.cut(a, b);
                self.links.cut(b, a);
                vec![a, b]
            }
            FaultKind::ResetLeader => {
                self.links.isolate_with(leader, NODES, Cut::Reset);
                vec![leader]
            }
            FaultKind::ResetBridge => {
                let (a, b) = (random, (random + 1) % NODES);
                self.links.cut_with(a, b, Cut::Reset);
                self.links.cut_with(b, a, Cut::Reset);
                vec![a, b]
            }
            FaultKind::IsolateLeaderAndKillOther => {
                self.links.isolate(leader, NODES);
                self.kill(other);
                vec![leader, other]
            }
        };
        tokio::time::sleep(hold).await;
        self.heal_all();
        history.fault(Fault { kind: kind.name(), nodes, started, healed: history.now() });
    }

    /// Wait until every node has applied the same index with the same digest. On a timeout the
    /// panic says what each node last answered (state and cluster view, with each member's
    /// matched index and lag) and the last [`LOG_TAIL`] lines it logged, so a node that lagged
    /// can be told from one that diverged, and what held it back.
    pub async fn converged(&self) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let mut states = Vec::new();
            for i in 0..NODES {
                states.push(self.admin_get(i, "/admin/state").await);
            }
            if let Some(Some(first)) = states.first().cloned() {
                let same = states.iter().all(|s| {
                    s.as_ref().is_some_and(|s| s["applied"] == first["applied"] && s["digest"] == first["digest"])
                });
                if same {
                    return first;
                }
            }
            if std::time::Instant::now() > deadline {
                let mut seen = String::new();
                for (i, state) in states.iter().enumerate() {
                    let cluster = self.admin_get(i, "/admin/cluster").await;
                    seen.push_str(&format!(
                        "\n  node {}: state {} cluster {}",
                        i + 1,
                        state.as_ref().map_or("no answer".into(), Value::to_string),
                        cluster.as_ref().map_or("no answer".into(), Value::to_string)
                    ));
                    let log = self.nodes[i].log_text();
                    let lines: Vec<&str> = log.lines().collect();
                    seen.push_str(&format!("\n  node {}'s last {} log lines:", i + 1, LOG_TAIL.min(lines.len())));
                    for line in &lines[lines.len().saturating_sub(LOG_TAIL)..] {
                        seen.push_str(&format!("\n    {line}"));
                    }
                }
                panic!("timed out after 60 s waiting for identical state on every node; last seen:{seen}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The node's own invariant check (`/admin/check`) found nothing.
    pub async fn self_check(&self, i: usize) -> Value {
        let body: Value = client()
            .get(format!("{}/admin/check", self.urls[i]))
            .bearer_auth(admin_token())
            .header("x-pizza-local", "1")
            .send()
            .await
            .expect("check")
            .json()
            .await
            .expect("check body");
        body
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..NODES {
            if self.paused[i] {
                self.signal(i, "-CONT");
            }
        }
    }
}
