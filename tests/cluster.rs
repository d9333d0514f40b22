//! Three real nodes on loopback: replication, fail-over, catch-up, restarts and membership.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::{admin_token, eventually, TestCluster};
use common::{client, get_json, order_body, run_cli, slot, token, TestNode, CLUSTER_SECRET};
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn create_via(cluster: &TestCluster, i: usize, user: &str, body: &Value) -> reqwest::Response {
    client().post(cluster.url(i, "/v1/orders")).bearer_auth(token(user)).json(body).send().await.expect("request")
}

async fn get_via(cluster: &TestCluster, i: usize, user: &str, id: &str) -> Value {
    let url = cluster.url(i, &format!("/v1/orders/{id}"));
    client().get(url).bearer_auth(token(user)).send().await.expect("get").json().await.expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_through_any_node_are_visible_on_every_node() {
    let cluster = TestCluster::start(3, &[]).await;
    let leader = cluster.leader().await;
    let mut created = Vec::new();
    for i in 0..3 {
        let user = format!("via-node-{i}");
        let response = create_via(&cluster, i, &user, &order_body(&slot(2, 30 + i as i64))).await;
        assert_eq!(response.status(), StatusCode::CREATED, "write through node {} (leader {leader})", i + 1);
        created.push((user, response.json::<Value>().await.unwrap()));
    }
    for (user, order) in &created {
        for i in 0..3 {
            // Linearizable by default: a read right after the write sees it on any node.
            assert_eq!(&get_via(&cluster, i, user, order["id"].as_str().unwrap()).await, order);
        }
    }
    let state = cluster.converged().await;
    assert!(state["records"].as_u64().unwrap() > 3);

    // A follower refuses to add a second active order just like the leader does.
    let follower = (leader + 1) % 3;
    let again = create_via(&cluster, follower, "via-node-0", &order_body(&slot(2, 40))).await;
    assert_eq!(again.status(), StatusCode::CONFLICT);

    // The leader pipelines its appends on upgraded connections (`raft::stream`); a cluster of
    // one build never falls back to one append at a time.
    let metrics = client().get(cluster.url(leader, "/metrics")).send().await.unwrap().text().await.unwrap();
    let sessions = |transport: &str| {
        let prefix = format!("pizza_orders_raft_append_sessions_total{{transport=\"{transport}\"}} ");
        metrics.lines().find_map(|l| l.strip_prefix(&prefix)).map_or(0.0, |v| v.trim().parse::<f64>().unwrap())
    };
    assert!(sessions("pipelined") > 0.0, "no pipelined append session on the leader:\n{metrics}");
    assert_eq!(sessions("one_at_a_time"), 0.0);

    // The followers' linearizable reads above asked the leader's read index on their
    // read-index streams (`raft::read_stream`), never by one HTTP call per ask.
    for follower in (0..3).filter(|i| *i != leader) {
        let metrics = client().get(cluster.url(follower, "/metrics")).send().await.unwrap().text().await.unwrap();
        let asks = |transport: &str| {
            let prefix = format!("pizza_orders_read_index_asks_total{{transport=\"{transport}\"}} ");
            metrics.lines().find_map(|l| l.strip_prefix(&prefix)).map_or(0.0, |v| v.trim().parse::<f64>().unwrap())
        };
        assert!(asks("stream") > 0.0, "node {} asked no read index on a stream:\n{metrics}", follower + 1);
        assert_eq!(asks("call"), 0.0, "node {} asked a read index by HTTP call", follower + 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_leader_under_load_loses_no_acknowledged_order() {
    let mut cluster = TestCluster::start(3, &["slots.capacity=40"]).await;
    let ports = cluster.ports.clone();
    let acked: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let (acked, stop, ports) = (acked.clone(), stop.clone(), ports.clone());
            tokio::spawn(async move {
                for i in 0..400 {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let user = format!("w{w}-{i}");
                    let port = ports[(w + i) % ports.len()];
                    let sent = client()
                        .post(format!("{}://127.0.0.1:{port}/v1/orders", common::pki::scheme()))
                        .bearer_auth(token(&user))
                        .header("Idempotency-Key", format!("k-{user}"))
                        .timeout(Duration::from_secs(5))
                        .json(&order_body(&slot(3, 20 + (i % 12) as i64)))
                        .send()
                        .await;
                    if let Ok(r) = sent {
                        if r.status() == StatusCode::CREATED {
                            if let Ok(body) = r.json::<Value>().await {
                                acked.lock().unwrap().push((user, body));
                            }
                        }
                    }
                }
            })
        })
        .collect();

    eventually(Duration::from_secs(30), "writes before the kill", || async {
        (acked.lock().unwrap().len() >= 40).then_some(())
    })
    .await;
    let old_leader = cluster.leader().await;
    let killed_at = Instant::now();
    cluster.kill(old_leader);
    let before = acked.lock().unwrap().len();
    eventually(Duration::from_secs(30), "writes after the fail-over", || async {
        (acked.lock().unwrap().len() >= before + 40).then_some(())
    })
    .await;
    let new_leader = cluster.leader().await;
    assert_ne!(new_leader, old_leader);
    eprintln!("writes resumed within {:?} of killing the leader", killed_at.elapsed());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }

    cluster.restart(old_leader);
    cluster.wait_ready().await;
    let applied = cluster.admin_get(new_leader, "/admin/state").await.unwrap()["applied"].as_u64().unwrap();
    cluster.converged_past(applied).await;
    let acked = acked.lock().unwrap().clone();
    for i in 0..3 {
        for (user, order) in acked.iter().step_by(7) {
            let url = cluster.url(i, &format!("/v1/orders/{}?consistency=stale", order["id"].as_str().unwrap()));
            let stored: Value = client().get(url).bearer_auth(token(user)).send().await.unwrap().json().await.unwrap();
            assert_eq!(&stored, order, "acknowledged order missing or changed on node {}", i + 1);
        }
    }
    // A retry of an acknowledged create returns the original, never a second order.
    let (user, order) = &acked[0];
    let retry = client()
        .post(cluster.url(new_leader, "/v1/orders"))
        .bearer_auth(token(user))
        .header("Idempotency-Key", format!("k-{user}"))
        .json(&order_body(order["delivery_slot"]["start"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status(), StatusCode::CREATED);
    assert_eq!(&retry.json::<Value>().await.unwrap(), order);

    // No slot over capacity, one order per user: every slot's count is within capacity.
    let slots: Value =
        get_json(&cluster.url(0, "/v1/slots"), &[("from", slot(3, 20).as_str()), ("to", slot(3, 32).as_str())]).await;
    let mut per_slot: HashMap<String, u64> = HashMap::new();
    for (_, order) in &acked {
        *per_slot.entry(order["delivery_slot"]["start"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    for s in slots["slots"].as_array().unwrap() {
        let booked = 40 - s["remaining"].as_u64().unwrap();
        let acked_here = per_slot.get(s["start"].as_str().unwrap()).copied().unwrap_or(0);
        assert!(booked >= acked_here, "slot {} lost acknowledged orders", s["start"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_that_missed_many_writes_catches_up_by_snapshot() {
    // Writes are batched into fewer log entries, so the thresholds are low.
    let extra = ["raft.snapshot_after_entries=20", "raft.entries_kept_after_snapshot=5", "slots.capacity=1000"];
    let mut cluster = TestCluster::start(3, &extra).await;
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    cluster.kill(follower);
    let writes = (0..300).map(|i| {
        let cluster = &cluster;
        async move {
            let response =
                create_via(cluster, leader, &format!("snap-{i}"), &order_body(&slot(2, 20 + (i % 20)))).await;
            assert_eq!(response.status(), StatusCode::CREATED);
        }
    });
    futures::stream::iter(writes).buffer_unordered(16).collect::<Vec<_>>().await;
    cluster.restart(follower);
    let state = cluster.converged().await;
    assert!(state["records"].as_u64().unwrap() >= 300);
    let status = cluster.admin_get(follower, "/admin/cluster").await.unwrap();
    assert!(status["snapshot"].as_u64().unwrap_or(0) > 0, "the follower installed a snapshot: {status}");
}

use futures::StreamExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_all_three_restart_every_node_holds_identical_state() {
    let mut cluster = TestCluster::start(3, &[]).await;
    for i in 0..30 {
        let response = create_via(&cluster, i % 3, &format!("r{i}"), &order_body(&slot(2, 20 + (i % 10) as i64))).await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let before = cluster.converged().await;
    for i in 0..3 {
        cluster.kill(i);
    }
    for i in 0..3 {
        cluster.restart(i);
    }
    cluster.wait_ready().await;
    let after = cluster.converged_past(before["applied"].as_u64().unwrap()).await;
    assert_eq!(after["digest"], before["digest"], "before {before}, after {after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fourth_node_joins_an_old_one_leaves_and_the_cluster_keeps_serving() {
    let mut cluster = TestCluster::start(3, &[]).await;
    assert_eq!(create_via(&cluster, 0, "m1", &order_body(&slot(2, 30))).await.status(), StatusCode::CREATED);
    cluster.spawn_member(3, &[]);
    let config = cluster.node(0).config_file.to_str().unwrap().to_owned();
    let node = cluster.url(1, "");
    let addr = format!("127.0.0.1:{}", cluster.ports[3]);
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        run_cli(&["cluster", "add", "--id", "4", "--addr", &addr, "--node", &node, "--config", &config])
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("voter"), "{out}");

    let leader = cluster.leader().await;
    let leaving = (0..3).find(|i| *i != leader).unwrap();
    let removed = client()
        .delete(cluster.url(3, &format!("/admin/cluster/nodes/{}", leaving + 1)))
        .bearer_auth(admin_token())
        .send()
        .await
        .unwrap();
    assert!(removed.status().is_success(), "{}", removed.text().await.unwrap_or_default());
    cluster.kill(leaving);
    cluster.nodes[leaving] = None;

    assert_eq!(create_via(&cluster, 3, "m2", &order_body(&slot(2, 31))).await.status(), StatusCode::CREATED);
    let state = cluster.converged().await;
    assert!(state["records"].as_u64().unwrap() > 0);
    let status = cluster.admin_get(leader, "/admin/cluster").await.unwrap();
    let ids: Vec<u64> = status["members"].as_array().unwrap().iter().map(|m| m["id"].as_u64().unwrap()).collect();
    assert!(ids.contains(&4) && !ids.contains(&(leaving as u64 + 1)), "{status}");
}

#[tokio::test]
async fn raft_endpoints_refuse_a_peer_without_the_cluster_secret() {
    let node = TestNode::start();
    for secret in [None, Some("wrong-secret-wrong-secret-wrong-secret")] {
        let mut request = client().post(node.url("/raft/vote")).body(vec![1u8, 2, 3]);
        if let Some(secret) = secret {
            request = request.header("x-cluster-secret", secret);
        }
        assert_eq!(request.send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
        // The append stream's upgrade too (`raft::stream`).
        let mut request = client().post(node.url("/raft/stream")).header("upgrade", "pizza-raft-append/1");
        if let Some(secret) = secret {
            request = request.header("x-cluster-secret", secret);
        }
        assert_eq!(request.send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
        // And the read-index stream's (`raft::read_stream`).
        let mut request = client().post(node.url("/raft/read-index-stream")).header("upgrade", "pizza-read-index/1");
        if let Some(secret) = secret {
            request = request.header("x-cluster-secret", secret);
        }
        assert_eq!(request.send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    // With the secret but without asking to upgrade: told what the route wants (under mutual
    // TLS this client shows no cluster certificate, which is refused first).
    let plain =
        client().post(node.url("/raft/stream")).header("x-cluster-secret", CLUSTER_SECRET).send().await.unwrap();
    if common::pki::tls_everywhere() {
        assert_eq!(plain.status(), StatusCode::UNAUTHORIZED);
    } else {
        assert_eq!(plain.status(), StatusCode::UPGRADE_REQUIRED);
        assert_eq!(plain.headers()["upgrade"], "pizza-raft-append/1");
    }
    let plain = client()
        .post(node.url("/raft/read-index-stream"))
        .header("x-cluster-secret", CLUSTER_SECRET)
        .header("upgrade", "pizza-raft-append/1")
        .send()
        .await
        .unwrap();
    if common::pki::tls_everywhere() {
        assert_eq!(plain.status(), StatusCode::UNAUTHORIZED);
    } else {
        assert_eq!(plain.status(), StatusCode::UPGRADE_REQUIRED, "another protocol than the route's");
        assert_eq!(plain.headers()["upgrade"], "pizza-read-index/1");
    }
    // Admin endpoints need an admin token; a customer token is not enough.
    let status = client().get(node.url("/admin/cluster")).bearer_auth(token("alice")).send().await.unwrap();
    assert_eq!(status.status(), StatusCode::FORBIDDEN);
    eventually(Duration::from_secs(10), "the one-node cluster to elect itself", || async {
        let ok = client().get(node.url("/admin/cluster")).bearer_auth(admin_token()).send().await.ok()?;
        let ok: Value = ok.json().await.ok()?;
        (ok["state"] == "Leader").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_cut_off_from_its_peers_is_not_ready_until_they_return() {
    let mut cluster = TestCluster::start(3, &[]).await;
    let leader = cluster.leader().await;
    let lonely = (leader + 1) % 3;
    let readyz = cluster.url(lonely, "/readyz");
    let ready = |_: usize| {
        let url = readyz.clone();
        async move { client().get(url).send().await.map(|r| r.status()).ok() }
    };
    assert_eq!(ready(lonely).await, Some(StatusCode::OK));
    let term = |status: Option<Value>| status.and_then(|s| s["term"].as_u64());
    let term_before = term(cluster.admin_get(lonely, "/admin/cluster").await).expect("the lonely node's term");
    let others: Vec<usize> = (0..3).filter(|i| *i != lonely).collect();
    for i in &others {
        cluster.kill(*i);
    }
    eventually(Duration::from_secs(20), "the lonely node to report not ready", || async {
        (ready(lonely).await == Some(StatusCode::SERVICE_UNAVAILABLE)).then_some(())
    })
    .await;
    // Pre-Vote: alone, it times out again and again, but asks before it stands, nobody answers,
    // and its term stays (without Pre-Vote each timeout raised it, and on its return it would
    // have deposed whichever leader the others had).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let term_alone = term(cluster.admin_get(lonely, "/admin/cluster").await).expect("the lonely node's term");
    assert_eq!(term_alone, term_before, "the term of a node alone for seconds");
    for i in &others {
        cluster.restart(*i);
    }
    eventually(Duration::from_secs(30), "the node to be ready again", || async {
        (ready(lonely).await == Some(StatusCode::OK)).then_some(())
    })
    .await;
}

/// A flipped byte in a follower's data file: the follower refuses to start, naming the file and
/// the way back; following that message (remove, start empty, add) brings it back identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_with_a_damaged_data_file_refuses_to_start_and_rejoins_empty() {
    let extra = ["raft.snapshot_after_entries=10", "raft.entries_kept_after_snapshot=2"];
    let mut cluster = TestCluster::start(3, &extra).await;
    let leader = cluster.leader().await;
    let marked = json!({ "address": "7 Damage Detection Lane", "size": "large", "delivery_slot": slot(2, 40) });
    assert_eq!(create_via(&cluster, leader, "marked", &marked).await.status(), StatusCode::CREATED);
    for i in 0..30 {
        let response = create_via(&cluster, leader, &format!("d{i}"), &order_body(&slot(2, 20 + i % 10))).await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    cluster.converged().await;
    let follower = (leader + 1) % 3;
    // A clean stop: redb verifies checksums by itself only when it recovers from a crash.
    assert!(cluster.nodes[follower].as_mut().unwrap().terminate().success());
    cluster.kill(follower);

    // Flip one bit of the marked address wherever the file holds it: a silent change of data.
    let data_dir = cluster.node(follower).data_dir.clone();
    let file = data_dir.join("orders.redb");
    let mut bytes = std::fs::read(&file).unwrap();
    let needle = b"Damage Detection";
    let hits: Vec<usize> =
        bytes.windows(needle.len()).enumerate().filter(|(_, w)| *w == needle).map(|(i, _)| i).collect();
    assert!(!hits.is_empty(), "the address is stored verbatim");
    for at in hits {
        bytes[at] ^= 0x01;
    }
    std::fs::write(&file, bytes).unwrap();

    let config = cluster.node(follower).config_file.to_str().unwrap().to_owned();
    let dir = data_dir.to_str().unwrap().to_owned();
    let (code, _, stderr) =
        tokio::task::spawn_blocking(move || run_cli(&["serve", "--config", &config, "--data-dir", &dir]))
            .await
            .unwrap();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("orders.redb") && stderr.contains("damaged"), "{stderr}");
    assert!(stderr.contains("cluster remove") && stderr.contains("cluster add"), "{stderr}");

    // The procedure the message gives.
    let id = (follower + 1).to_string();
    let addr = format!("127.0.0.1:{}", cluster.ports[follower]);
    let healthy = cluster.url(leader, "");
    let admin_config = cluster.node(leader).config_file.to_str().unwrap().to_owned();
    let cli = |args: Vec<String>| async move {
        tokio::task::spawn_blocking(move || run_cli(&args.iter().map(String::as_str).collect::<Vec<_>>()))
            .await
            .unwrap()
    };
    let base = |verb: &str| {
        vec!["cluster".into(), verb.into(), "--id".into(), id.clone(), "--node".into(), healthy.clone()]
            .into_iter()
            .chain(["--config".to_owned(), admin_config.clone()])
            .collect::<Vec<String>>()
    };
    let (code, out, err) = cli(base("remove")).await;
    assert_eq!(code, Some(0), "{out}{err}");
    std::fs::rename(&data_dir, data_dir.with_extension("damaged")).unwrap();
    cluster.restart(follower);
    let mut add = base("add");
    add.extend(["--addr".to_owned(), addr]);
    let (code, out, err) = cli(add).await;
    assert_eq!(code, Some(0), "{out}{err}");

    cluster.converged().await;
    let status = cluster.admin_get(follower, "/admin/cluster").await.unwrap();
    assert!(status["snapshot"].as_u64().unwrap_or(0) > 0, "caught up by snapshot: {status}");
    let mine: Value = client()
        .get(cluster.url(follower, "/v1/orders?consistency=stale"))
        .bearer_auth(token("marked"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(mine.to_string().contains("7 Damage Detection Lane"), "{mine}");
}

/// Answers to GET of an order are kept in memory while the order is unchanged: a change
/// acknowledged through any node is what a linearizable read on every node shows next, even
/// right after each node served (and kept) the old answer; a kept answer is never shown to
/// another user.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_change_is_read_back_at_once_on_every_node_though_each_had_just_served_the_old_answer() {
    let cluster = TestCluster::start(3, &[]).await;
    let user = "kept-answers";
    let created = create_via(&cluster, 0, user, &order_body(&slot(3, 20))).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let order: Value = created.json().await.unwrap();
    let id = order["id"].as_str().unwrap().to_owned();
    let get = |i: usize, who: &'static str, stale: bool| {
        let url = cluster.url(i, &format!("/v1/orders/{id}"));
        let query: &[(&str, &str)] = if stale { &[("consistency", "stale")] } else { &[] };
        client().get(url).query(query).bearer_auth(token(who)).send()
    };
    let mut version = order["version"].as_u64().unwrap();
    for round in 0..12usize {
        for i in 0..3 {
            // Served twice: the second is the kept answer.
            for _ in 0..2 {
                let seen: Value = eventually(Duration::from_secs(5), "the node has the order", || async {
                    let r = get(i, user, true).await.ok()?;
                    (r.status() == StatusCode::OK).then_some(())?;
                    r.json::<Value>().await.ok().filter(|o| o["version"].as_u64() == Some(version))
                })
                .await;
                assert_eq!(seen["id"], id.as_str());
            }
            let other = get(i, "someone-else", false).await.unwrap();
            assert_eq!(other.status(), StatusCode::NOT_FOUND, "another user is not shown a kept answer");
        }
        let via = round % 3;
        let new_slot = slot(3, 21 + (round % 2) as i64);
        let response = client()
            .put(cluster.url(via, &format!("/v1/orders/{id}")))
            .bearer_auth(token(user))
            .header("if-match", format!("\"{version}\""))
            .json(&order_body(&new_slot))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "change {round} through node {}", via + 1);
        let changed: Value = response.json().await.unwrap();
        version = changed["version"].as_u64().unwrap();
        for i in 0..3 {
            let read = get(i, user, false).await.unwrap();
            assert_eq!(read.headers().get("etag").unwrap(), &format!("\"{version}\""), "node {}", i + 1);
            let read: Value = read.json().await.unwrap();
            assert_eq!(read, changed, "round {round}: node {} shows the change at once", i + 1);
        }
    }
    let cancelled =
        client().delete(cluster.url(1, &format!("/v1/orders/{id}"))).bearer_auth(token(user)).send().await.unwrap();
    assert!(cancelled.status().is_success(), "{}", cancelled.status());
    for i in 0..3 {
        let read: Value = get(i, user, false).await.unwrap().json().await.unwrap();
        assert_eq!(read["status"], "cancelled", "node {}", i + 1);
        assert_eq!(read["active"], false);
        // The second read of each round was served from what the node kept.
        let metrics = client().get(cluster.url(i, "/metrics")).send().await.unwrap().text().await.unwrap();
        let kept: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("pizza_orders_order_answers_total{source=\"kept\"} "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0);
        assert!(kept >= 12.0, "node {} served {kept} kept answers", i + 1);
    }
}
