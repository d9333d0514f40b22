//! The command line as an admin or developer uses it.

mod common;

use common::{client, create, order_body, problem_type, run_cli, slot, TestNode};
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn a_minted_token_is_accepted_by_a_node_with_the_same_secret() {
    let node = TestNode::start();
    let config = node.config_file.to_str().unwrap();
    let (code, stdout, stderr) = run_cli(&["token", "--config", config, "--user", "alice", "--ttl", "10m"]);
    assert_eq!(code, Some(0), "{stderr}");
    let token = stdout.trim();
    let page = client().get(node.url("/v1/orders")).bearer_auth(token).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let page: Value = page.json().await.unwrap();
    assert_eq!(page["orders"].as_array().map(Vec::len), Some(0));
}

#[test]
fn bad_usage_and_bad_configuration_exit_2_with_the_reason() {
    let (code, _, stderr) = run_cli(&["token", "--user", ""]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--user"), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let (code, _, stderr) = run_cli(&["serve", "--data-dir", data, "--set", "slots.capacty=3"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("capacty"), "the unknown setting is named: {stderr}");

    let missing = dir.path().join("nope.toml");
    let (code, _, stderr) = run_cli(&["serve", "--config", missing.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("nope.toml"), "{stderr}");
}

#[test]
fn a_second_node_on_the_same_data_directory_is_refused() {
    let node = TestNode::start();
    let (code, _, stderr) = run_cli(&[
        "serve",
        "--config",
        node.config_file.to_str().unwrap(),
        "--data-dir",
        node.data_dir.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("already open"), "{stderr}");
}

#[tokio::test]
async fn environment_variables_override_the_config_file() {
    let node = TestNode::start_with_env(&[], &[("PIZZA_ORDERS_SLOTS__CAPACITY", "1")]);
    let start = slot(2, 30);
    assert_eq!(create(&node, "first", &order_body(&start)).await.status(), StatusCode::CREATED);
    assert_eq!(problem_type(create(&node, "second", &order_body(&start)).await).await, "/problems/slot-full");
}

#[test]
fn a_damaged_data_file_is_refused_by_name_with_what_to_do() {
    let mut node = TestNode::start();
    let (config, data) = (node.config_file.clone(), node.data_dir.clone());
    node.kill();
    let file = data.join("orders.redb");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.truncate(bytes.len() / 3);
    for b in bytes.iter_mut().skip(64).take(4096) {
        *b = 0xA5;
    }
    std::fs::write(&file, bytes).unwrap();
    let (code, _, stderr) =
        run_cli(&["serve", "--config", config.to_str().unwrap(), "--data-dir", data.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("orders.redb") && stderr.contains("cluster add"), "{stderr}");
}
