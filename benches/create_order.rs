//! End to end: `POST /v1/orders` requests per second against one in-process node (a one-node
//! Raft cluster) on loopback, with 1, 16 and 64 concurrent clients, log group commit on
//! (`raft.group_commit`) versus off (one fsync per log append). Same server code, same run.
//!
//! Run: `cargo bench --bench create_order`. Each iteration is one created order by a new user.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pizza_orders::auth::TokenKeys;
use pizza_orders::config::{Config, Settings};
use pizza_orders::domain::{Timestamp, UserId};
use pizza_orders::startup::Server;
use serde_json::json;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

struct Running {
    base: String,
    keys: TokenKeys,
    stop: Option<oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

fn start(runtime: &Runtime, group_commit: bool) -> Running {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let mut settings = Settings {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: dir.path().to_owned(),
        ..Settings::default()
    };
    settings.auth.jwt_secret = Some("benchmark-secret-benchmark-secret-0000".into());
    settings.slots.opens = "00:00".into();
    settings.slots.closes = "24:00".into();
    settings.slots.capacity = 1_000_000;
    settings.cluster.secret = Some("benchmark-cluster-secret-benchmark-0000".into());
    settings.raft.group_commit = group_commit;
    let config = Config::from_settings(settings).expect("config");
    let keys = TokenKeys::rotating(&config.token_keys);
    let (stop, stopped) = oneshot::channel::<()>();
    let base = runtime.block_on(async {
        let server = Server::bind(config).await.expect("bind");
        let addr = server.local_addr().expect("addr");
        tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        format!("http://{addr}")
    });
    Running { base, keys, stop: Some(stop), _dir: dir }
}

fn create_orders(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let client = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(128).build().expect("client");
    let users = Arc::new(AtomicU64::new(0));
    // From the day after tomorrow (UTC), one slot per 1000 users, so no slot fills up; not
    // tomorrow's midnight, which is inside the 30-minute cutoff from 23:30 UTC on.
    let day = 86_400_000;
    let first_slot = (Timestamp::now().millis() / day + 2) * day;

    let mut group = c.benchmark_group("create_order");
    group.sample_size(10).measurement_time(Duration::from_secs(5)).throughput(Throughput::Elements(1));
    for (label, group_commit) in [("group_commit", true), ("fsync_per_append", false)] {
        let mut node = start(&runtime, group_commit);
        for clients in [1usize, 16, 64] {
            group.bench_with_input(BenchmarkId::new(label, clients), &clients, |b, &clients| {
                b.to_async(&runtime).iter_custom(|iters| {
                    let (client, users) = (client.clone(), users.clone());
                    let base = node.base.clone();
                    let keys = &node.keys;
                    let tokens: Vec<(u64, String)> = (0..iters)
                        .map(|_| {
                            let n = users.fetch_add(1, Ordering::Relaxed);
                            let user = UserId::parse(&format!("user-{n}")).expect("user");
                            (n, keys.mint(&user, false, Duration::from_secs(3600), Timestamp::now()).expect("token"))
                        })
                        .collect();
                    async move {
                        let tokens = Arc::new(tokens);
                        let next = Arc::new(AtomicU64::new(0));
                        let started = Instant::now();
                        let workers: Vec<_> = (0..clients)
                            .map(|_| {
                                let (client, base, tokens, next) =
                                    (client.clone(), base.clone(), tokens.clone(), next.clone());
                                tokio::spawn(async move {
                                    loop {
                                        let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                                        let Some((n, token)) = tokens.get(i) else { break };
                                        let slot = first_slot + (*n as i64 / 1000) * 1_800_000;
                                        let body = json!({"address": "1 Bench St", "size": "large",
                                            "delivery_slot": Timestamp::from_millis(slot).to_rfc3339()});
                                        let response = client
                                            .post(format!("{base}/v1/orders"))
                                            .bearer_auth(token)
                                            .json(&body)
                                            .send()
                                            .await
                                            .expect("request");
                                        assert_eq!(response.status(), 201, "{:?}", response.text().await);
                                    }
                                })
                            })
                            .collect();
                        for worker in workers {
                            worker.await.expect("worker");
                        }
                        started.elapsed()
                    }
                });
            });
        }
        if let Some(stop) = node.stop.take() {
            let _ = stop.send(());
        }
    }
    group.finish();
}

criterion_group!(benches, create_orders);
criterion_main!(benches);
