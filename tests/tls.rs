//! HTTPS for clients, mutual TLS between nodes, certificates re-read without a restart, token
//! secret rotation and rate limits, through real nodes on loopback.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::cluster::{eventually, TestCluster};
use common::pki::{self, Ca, Files, Leaf};
use common::{order_body, run_cli, slot, token, TestNode};
use pizza_orders::auth::TokenKeys;
use pizza_orders::config::{NamedSecret, TokenSecret};
use pizza_orders::domain::{Timestamp, UserId};
use reqwest::{StatusCode, Version};
use serde_json::Value;

/// A client that trusts only `ca_pem` and, given one, shows `identity` (a client certificate).
fn https_client(ca_pem: &str, identity: Option<&Leaf>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("CA"))
        .timeout(Duration::from_secs(5));
    if let Some(leaf) = identity {
        let pem = format!("{}{}", leaf.cert, leaf.key);
        builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).expect("identity"));
    }
    builder.build().expect("client")
}

fn shared_ca() -> String {
    std::fs::read_to_string(&pki::shared().ca).expect("test CA")
}

/// HTTPS only (no mutual TLS): the API's certificate and key.
fn https_sets(files: &Files) -> Vec<String> {
    vec![format!("tls.cert_file={}", files.cert.display()), format!("tls.key_file={}", files.key.display())]
}

fn refs(sets: &[String]) -> Vec<&str> {
    sets.iter().map(String::as_str).collect()
}

#[tokio::test]
async fn https_speaks_h2_and_http1_sends_hsts_and_tells_a_plain_http_client_to_use_https() {
    let sets = https_sets(pki::shared());
    let node = TestNode::start_with(&refs(&sets));
    assert!(node.base.starts_with("https://127.0.0.1:"), "{}", node.base);
    let ca = shared_ca();

    let h2 = https_client(&ca, None).get(node.url("/healthz")).send().await.expect("HTTPS request");
    assert_eq!(h2.status(), StatusCode::OK);
    assert_eq!(h2.version(), Version::HTTP_2, "h2 chosen by ALPN");
    assert_eq!(h2.headers()["strict-transport-security"], "max-age=31536000");

    let http1 = reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
        .build()
        .unwrap();
    let created = http1
        .post(node.url("/v1/orders"))
        .bearer_auth(token("alice"))
        .json(&order_body(&slot(2, 20)))
        .send()
        .await
        .unwrap();
    assert_eq!(created.version(), Version::HTTP_11);
    assert_eq!(created.status(), StatusCode::CREATED);

    // A client that does not trust the node's CA is refused by its own side of the handshake.
    let stranger = Ca::new("someone else's CA");
    assert!(https_client(&stranger.pem, None).get(node.url("/healthz")).send().await.is_err());

    // Plain HTTP to the HTTPS port: a plain answer that says what to do.
    let port = node.base.rsplit(':').next().unwrap().to_owned();
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 400 Bad Request"), "{answer}");
    assert!(answer.contains("use https://"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutual_tls_cluster_replicates_and_refuses_peers_without_a_valid_certificate() {
    let files = pki::shared();
    let sets = files.sets();
    let mut cluster = TestCluster::start_logged(3, &refs(&sets)).await;
    let url = |i: usize, path: &str| cluster.url(i, path);
    assert!(url(0, "").starts_with("https://"));
    let ca = shared_ca();
    let client = https_client(&ca, None);
    for i in 0..3 {
        let created = client
            .post(url(i, "/v1/orders"))
            .bearer_auth(token(&format!("tls-{i}")))
            .json(&order_body(&slot(2, 20 + i as i64)))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), StatusCode::CREATED, "through node {}", i + 1);
    }
    let before = cluster.converged().await;
    let leader = cluster.leader().await;
    let term = cluster.admin_get(leader, "/admin/cluster").await.unwrap()["term"].clone();

    // Certificates no peer may use: expired (from the cluster CA), another CA's, self-signed.
    // Each is refused at the handshake: no request reaches the node.
    let other = Ca::new("another cluster's CA");
    let bad = [
        ("expired", pki::shared_ca().expired_leaf("node")),
        ("other CA", other.leaf("node")),
        ("self-signed", pki::self_signed("node")),
    ];
    for (what, leaf) in &bad {
        let peer = https_client(&ca, Some(leaf));
        let sent = peer
            .post(url(leader, "/raft/vote"))
            .header("x-cluster-secret", common::CLUSTER_SECRET)
            .body(vec![1u8, 2, 3])
            .send()
            .await;
        assert!(sent.is_err(), "{what}: the handshake must fail, got {:?}", sent.map(|r| r.status()));
    }
    // And a valid certificate of the cluster CA passes the handshake (the secret still counts).
    let good = https_client(&ca, Some(&pki::shared_ca().leaf("node")));
    let wrong_secret =
        good.post(url(leader, "/raft/vote")).header("x-cluster-secret", "not-the-secret").body(vec![1u8]).send().await;
    assert_eq!(wrong_secret.unwrap().status(), StatusCode::UNAUTHORIZED);

    // Without a client certificate: the connection is fine (browsers connect like this), but
    // a Raft call is refused even with the right cluster secret.
    let no_cert = client
        .post(url(leader, "/raft/vote"))
        .header("x-cluster-secret", common::CLUSTER_SECRET)
        .body(vec![1u8, 2, 3])
        .send()
        .await
        .unwrap();
    assert_eq!(no_cert.status(), StatusCode::UNAUTHORIZED);

    let log = eventually(Duration::from_secs(5), "the refusals in the leader's log", || async {
        let log = cluster.node(leader).log_text();
        let handshakes = log.matches("TLS handshake refused (certificate)").count();
        (handshakes >= bad.len() && log.contains("refused a peer call without a cluster certificate")).then_some(log)
    })
    .await;
    assert!(log.contains("Expired") || log.contains("expired"), "the log says why: {log}");

    // Nothing changed: same leader and term, and the cluster keeps taking orders.
    let now = cluster.admin_get(leader, "/admin/cluster").await.unwrap();
    assert_eq!(now["term"], term, "no election was caused");
    let created = client
        .post(url((leader + 1) % 3, "/v1/orders"))
        .bearer_auth(token("after-refusals"))
        .json(&order_body(&slot(2, 30)))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let after = cluster.converged_past(before["applied"].as_u64().unwrap() + 1).await;
    assert_eq!(after["orders"].as_u64(), before["orders"].as_u64().map(|n| n + 1), "{after}");

    // The CLI reaches a node over HTTPS with --ca-file, and says why without it.
    let config = cluster.node(0).config_file.to_str().unwrap().to_owned();
    let node = url(leader, "");
    let ca_file = files.ca.to_str().unwrap().to_owned();
    let (trusted, without) = tokio::task::spawn_blocking(move || {
        let trusted = run_cli(&["cluster", "status", "--node", &node, "--config", &config, "--ca-file", &ca_file]);
        let without =
            common::binary().args(["cluster", "status", "--node", &node, "--config", &config]).output().expect("cli");
        (trusted, without)
    })
    .await
    .unwrap();
    assert_eq!(trusted.0, Some(0), "{}{}", trusted.1, trusted.2);
    assert_eq!(without.status.code(), Some(1));
    let err = String::from_utf8_lossy(&without.stderr);
    assert!(err.contains("cannot reach") && err.contains("pass --ca-file"), "{err}");

    // A follower killed and restarted rejoins over mutual TLS.
    let follower = (leader + 1) % 3;
    cluster.kill(follower);
    cluster.restart(follower);
    cluster.converged_past(after["applied"].as_u64().unwrap()).await;
}

#[tokio::test]
async fn certificates_are_read_again_when_their_files_change_and_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let first = Ca::new("first CA");
    let files = Files::write(dir.path(), "node", &first.pem, &first.leaf("node"));
    let node = TestNode::start_with(&refs(&https_sets(&files)));
    let health = |ca: String| {
        let url = node.url("/healthz");
        async move { https_client(&ca, None).get(url).send().await.ok().map(|r| r.status()) }
    };
    assert_eq!(health(first.pem.clone()).await, Some(StatusCode::OK));
    let second = Ca::new("second CA");
    assert_eq!(health(second.pem.clone()).await, None, "not trusted yet");

    // New files, put in place as an operator's tooling would (write aside, rename over).
    let replace = |leaf: &Leaf| {
        for (name, body) in [("node.pem", &leaf.cert), ("node-key.pem", &leaf.key)] {
            let aside = dir.path().join(format!("{name}.new"));
            std::fs::write(&aside, body).unwrap();
            std::fs::rename(&aside, dir.path().join(name)).unwrap();
        }
    };
    replace(&second.leaf("node"));
    eventually(Duration::from_secs(10), "the new certificate in use", || health(second.pem.clone())).await;
    assert_eq!(health(first.pem.clone()).await, None, "the old certificate is no longer shown");

    // SIGHUP reads them even when the modification times say nothing changed.
    let stamp = std::fs::metadata(dir.path().join("node.pem")).unwrap().modified().unwrap();
    let key_stamp = std::fs::metadata(dir.path().join("node-key.pem")).unwrap().modified().unwrap();
    let third = Ca::new("third CA");
    replace(&third.leaf("node"));
    for (name, at) in [("node.pem", stamp), ("node-key.pem", key_stamp)] {
        std::fs::File::options().write(true).open(dir.path().join(name)).unwrap().set_modified(at).unwrap();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(health(third.pem.clone()).await, None, "unchanged times: the files were not read");
    let hup = std::process::Command::new("kill").args(["-HUP", &node.pid().to_string()]).status().unwrap();
    assert!(hup.success());
    eventually(Duration::from_secs(10), "the certificate read on SIGHUP", || health(third.pem.clone())).await;

    // A broken file is not taken: the node keeps serving the certificate it has.
    std::fs::write(dir.path().join("node.pem"), "-----BEGIN CERTIFICATE-----\nbroken\n").unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(health(third.pem.clone()).await, Some(StatusCode::OK));
}

const OLD_SECRET: &str = "rotation-old-secret-rotation-old-secret";
const NEW_SECRET: &str = "rotation-new-secret-rotation-new-secret";

fn minted(kid: Option<&str>, secret: &str, user: &str) -> String {
    let key = NamedSecret { kid: kid.map(str::to_owned), secret: TokenSecret::parse(secret.as_bytes()).unwrap() };
    let user = UserId::parse(user).unwrap();
    TokenKeys::rotating(&[key]).mint(&user, false, Duration::from_secs(600), Timestamp::now()).unwrap()
}

#[tokio::test]
async fn a_rotated_token_secret_keeps_old_tokens_working_until_it_is_removed() {
    let both = format!(
        "[auth]\n[[auth.keys]]\nkid = \"2026-12\"\nsecret = \"{NEW_SECRET}\"\n[[auth.keys]]\nkid = \"2026-11\"\nsecret = \"{OLD_SECRET}\"\n"
    );
    let mut node = TestNode::start_with_auth(&both, &[]);
    let get = |token: String| {
        let url = node.url("/v1/orders");
        async move { common::client().get(url).bearer_auth(token).send().await.unwrap() }
    };
    let before_rotation = minted(None, OLD_SECRET, "ana");
    let old = minted(Some("2026-11"), OLD_SECRET, "ana");
    let new = minted(Some("2026-12"), NEW_SECRET, "ana");
    for token in [&before_rotation, &old, &new] {
        assert_eq!(get(token.clone()).await.status(), StatusCode::OK);
    }

    // `pizza-orders token` mints with the current key.
    let config = node.config_file.to_str().unwrap().to_owned();
    let (code, out, err) = run_cli(&["token", "--config", &config, "--user", "ana"]);
    assert_eq!(code, Some(0), "{err}");
    let header = jsonwebtoken::decode_header(out.trim()).unwrap();
    assert_eq!(header.kid.as_deref(), Some("2026-12"));
    assert_eq!(get(out.trim().to_owned()).await.status(), StatusCode::OK);

    // The old secret removed: its tokens are refused, saying why; the new ones still work.
    let only_new = format!("[auth]\n[[auth.keys]]\nkid = \"2026-12\"\nsecret = \"{NEW_SECRET}\"\n");
    TestNode::set_auth(&node.config_file, &only_new);
    node.restart_with(&[]);
    let get = |token: String| {
        let url = node.url("/v1/orders");
        async move { common::client().get(url).bearer_auth(token).send().await.unwrap() }
    };
    let refused = get(old).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let body: Value = refused.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("key id"), "{body}");
    assert_eq!(get(before_rotation).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(get(new).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after_and_hold_back_no_one_else() {
    // Writes: 2 a minute per user; attempts on one slot: 3 an hour per user.
    let node = TestNode::start_with(&[
        "limits.writes_per_user_per_minute=2",
        "limits.writes_burst=2",
        "limits.slot_attempts_per_user_per_hour=3",
    ]);
    let write = |user: &str, slot_index: i64| {
        let (url, token) = (node.url("/v1/orders"), token(user));
        async move {
            common::client().post(url).bearer_auth(token).json(&order_body(&slot(2, slot_index))).send().await.unwrap()
        }
    };
    assert_eq!(write("greedy", 20).await.status(), StatusCode::CREATED);
    assert_eq!(write("greedy", 21).await.status(), StatusCode::CONFLICT, "one active order (a write all the same)");
    let limited = write("greedy", 22).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["type"], "/problems/rate-limited");
    assert_eq!(body["limit"], "order writes per user");
    assert_eq!(body["retry_after_s"], retry);
    assert_eq!(write("patient", 22).await.status(), StatusCode::CREATED, "another user is not held back");
    let orders: Value = common::client()
        .get(node.url("/v1/orders"))
        .bearer_auth(token("greedy"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(orders["orders"].as_array().map(Vec::len), Some(1), "the refused write changed nothing: {orders}");

    // One user's attempts on one slot.
    let slots = TestNode::start_with(&["limits.slot_attempts_per_user_per_hour=2"]);
    let attempt = |user: &str, slot_index: i64| {
        let (url, token) = (slots.url("/v1/orders"), token(user));
        async move {
            common::client().post(url).bearer_auth(token).json(&order_body(&slot(2, slot_index))).send().await.unwrap()
        }
    };
    assert_eq!(attempt("sniper", 30).await.status(), StatusCode::CREATED);
    assert_eq!(attempt("sniper", 30).await.status(), StatusCode::CONFLICT);
    let third = attempt("sniper", 30).await;
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    let body: Value = third.json().await.unwrap();
    assert_eq!(body["limit"], "attempts per user on one slot");

    // Per client address (loopback counted here): a burst is cut, and passes again a second later.
    let address = TestNode::start_with(&[
        "limits.limit_loopback=true",
        "limits.per_address_per_second=5",
        "limits.per_address_burst=5",
    ]);
    let client = common::client();
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(client.get(address.url("/v1/menu")).send().await.unwrap());
    }
    let refused: Vec<_> = statuses.iter().filter(|r| r.status() == StatusCode::TOO_MANY_REQUESTS).collect();
    assert!(refused.len() >= 5, "{} of 12 refused", refused.len());
    assert!(refused.iter().all(|r| r.headers().contains_key("retry-after")));
    // Peers' calls are not counted against the address: still the peer check's answer, not 429.
    let raft = client.post(address.url("/raft/vote")).body(vec![1u8]).send().await.unwrap();
    assert_eq!(raft.status(), StatusCode::UNAUTHORIZED);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(client.get(address.url("/v1/menu")).send().await.unwrap().status(), StatusCode::OK);
}
