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

/// Remove ANSI colour sequences (`ESC [ … m`) from a log line.
fn plain(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn a_default_start_says_in_one_line_where_the_node_is_and_keeps_library_chatter_out() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("plain.toml");
    // No [log] section: the default filter, as a newcomer's first start has it.
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\n[auth]\njwt_secret = \"{}\"\n[cluster]\nsecret = \"{}\"\n",
            common::SECRET,
            common::CLUSTER_SECRET
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let mut child = common::binary()
        .args(["serve", "--config", config.to_str().unwrap(), "--data-dir", data.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(plain(&line));
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut lines = Vec::new();
    while std::time::Instant::now() < deadline && !lines.iter().any(|l: &String| l.contains("is serving")) {
        if let Ok(line) = rx.recv_timeout(std::time::Duration::from_millis(200)) {
            lines.push(line);
        }
    }
    // A moment more for anything a library logs right after start.
    while let Ok(line) = rx.recv_timeout(std::time::Duration::from_millis(500)) {
        lines.push(line);
    }
    let _ = child.kill();
    let _ = child.wait();
    let serving =
        lines.iter().find(|l| l.contains("is serving")).unwrap_or_else(|| panic!("no start-up line: {lines:#?}"));
    for wanted in ["node_id=1", "role=single node", "data_format=6", "listen=127.0.0.1:", "ui=http://127.0.0.1:"] {
        assert!(serving.contains(wanted), "{wanted} missing from {serving}");
    }
    assert!(serving.contains(&format!("data_dir={}", data.display())), "{serving}");
    let chatter: Vec<&String> = lines.iter().filter(|l| l.contains("INFO") && !l.contains("pizza_orders")).collect();
    assert!(chatter.is_empty(), "library INFO lines at the default filter: {chatter:#?}");
    assert!(lines.len() <= 5, "a one-node start says a few lines, not {}: {lines:#?}", lines.len());
}

#[test]
fn shell_completions_and_the_manual_page_cover_every_subcommand() {
    use clap::CommandFactory;
    let command = pizza_orders::cli::Cli::command();
    let names: Vec<String> = command.get_subcommands().map(|c| c.get_name().to_owned()).collect();
    assert!(names.len() >= 10, "{names:?}");
    let (code, bash, err) = run_cli(&["completions", "bash"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, man, err) = run_cli(&["man"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(man.contains(".TH pizza-orders 1"), "{}", &man[..man.len().min(300)]);
    for name in &names {
        // bash completion offers each subcommand as a word of the top-level list.
        let offered =
            bash.lines().any(|l| l.contains("opts=") && l.split_whitespace().any(|w| w.trim_matches('"') == name));
        assert!(offered, "bash completion does not offer '{name}'");
        assert!(man.contains(&name.replace('-', "\\-")), "the manual does not mention '{name}'");
    }
    for shell in ["zsh", "fish"] {
        let (code, script, err) = run_cli(&["completions", shell]);
        assert_eq!(code, Some(0), "{err}");
        assert!(script.contains("catalog"), "{shell}");
    }
    let (code, _, err) = run_cli(&["completions", "tcsh"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("possible values"), "{err}");
}

/// The order example in `pizza-orders --help`, run as written (bash, the binary on PATH, its
/// config from PIZZA_ORDERS_CONFIG), only the address pointed at a test node: it places the
/// order. The slot is computed by the example itself, so it is valid on any day.
#[test]
fn the_help_example_places_an_order_as_written() {
    let node = TestNode::start();
    let (code, help, _) = run_cli(&["--help"]);
    assert_eq!(code, Some(0));
    let from = help.find("TOKEN=$(").expect("the help has the order example");
    let to = from + help[from..].find("/v1/orders").expect("the example posts to /v1/orders") + "/v1/orders".len();
    let script = help[from..to].replace("http://127.0.0.1:8080", &node.base);
    let bin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_pizza-orders"));
    let path = format!("{}:{}", bin.parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
    let out = std::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .env("PATH", path)
        .env("PIZZA_ORDERS_CONFIG", &node.config_file)
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the example failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let order: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert!(order["id"].as_str().is_some_and(|id| !id.is_empty()), "{order}");
    assert_eq!(order["size"], "large", "{order}");
    assert_eq!(order["toppings"], serde_json::json!(["mushroom"]), "{order}");
}
