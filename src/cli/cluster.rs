//! `pizza-orders cluster …`: cluster management through a node's admin API.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::{json, Value};

use super::admin_client::{self, CallError};
use super::{usage_error, AdminArgs, ClusterCommand};

/// Membership changes wait for a learner to catch up, which can take a while on a big state.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(300);

pub fn run(command: ClusterCommand) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match command {
            ClusterCommand::Init { admin, members } => {
                let mut map = serde_json::Map::new();
                for member in &members {
                    match member.split_once('=').map(|(id, addr)| (id.trim().parse::<u64>(), addr.trim())) {
                        Some((Ok(id), addr)) if !addr.is_empty() => {
                            map.insert(id.to_string(), Value::from(addr));
                        }
                        _ => {
                            return usage_error(format!(
                                "--member expects ID=HOST:PORT, e.g. 2=127.0.0.1:7002; got '{member}'"
                            ))
                        }
                    }
                }
                report(
                    call(&admin, reqwest::Method::POST, "/admin/cluster/init", Some(json!({ "members": map }))).await,
                    false,
                )
            }
            ClusterCommand::Add { admin, id, addr, edge } => report(
                call(
                    &admin,
                    reqwest::Method::POST,
                    "/admin/cluster/nodes",
                    Some(json!({ "id": id, "addr": addr, "edge": edge })),
                )
                .await,
                false,
            ),
            ClusterCommand::Remove { admin, id } => {
                report(call(&admin, reqwest::Method::DELETE, &format!("/admin/cluster/nodes/{id}"), None).await, false)
            }
            ClusterCommand::Status { admin, json } => {
                report(call(&admin, reqwest::Method::GET, "/admin/cluster", None).await, json)
            }
        }
    })
}

async fn call(admin: &AdminArgs, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value, CallError> {
    let token = admin_client::admin_token(admin)?;
    let client = admin_client::http(admin, ADMIN_TIMEOUT)?;
    let url = format!("{}{}", admin.node.trim_end_matches('/'), path);
    let mut request = client.request(method, &url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.map_err(|e| admin_client::unreachable(&url, &e))?;
    let status = response.status();
    let value: Value = response.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        Ok(value)
    } else {
        let detail = value["detail"].as_str().unwrap_or("no detail").to_owned();
        Err(CallError::Failed(format!("{url} answered {status}: {detail}")))
    }
}

fn report(result: Result<Value, CallError>, json: bool) -> ExitCode {
    match result {
        Ok(value) if json => {
            println!("{}", serde_json::to_string_pretty(&value).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(value) => {
            print!("{}", status_table(&value));
            ExitCode::SUCCESS
        }
        Err(CallError::Usage(message)) => usage_error(message),
        Err(CallError::Failed(message)) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The human view of `/admin/cluster`.
fn status_table(v: &Value) -> String {
    let num = |key: &str| v[key].as_u64().map_or("-".to_owned(), |n| n.to_string());
    let mut out = format!(
        "node {} is {}; leader {}, term {}\nlog {}, committed {}, applied {}, snapshot {}\n\n{:<6} {:<24} {:<8} {:>10} {:>8}\n",
        num("node_id"),
        v["state"].as_str().unwrap_or("?"),
        num("leader"),
        num("term"),
        num("last_log_index"),
        num("committed"),
        num("applied"),
        num("snapshot"),
        "ID",
        "ADDRESS",
        "ROLE",
        "MATCHED",
        "LAG"
    );
    for m in v["members"].as_array().into_iter().flatten() {
        let field = |key: &str| m[key].as_u64().map_or("-".to_owned(), |n| n.to_string());
        out.push_str(&format!(
            "{:<6} {:<24} {:<8} {:>10} {:>8}\n",
            field("id"),
            m["addr"].as_str().unwrap_or("?"),
            m["role"].as_str().unwrap_or(if m["voter"].as_bool() == Some(true) { "voter" } else { "learner" }),
            field("matched"),
            field("lag"),
        ));
    }
    out
}
