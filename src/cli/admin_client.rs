//! Talking to a node's admin API from the command line: the token and the HTTP client.

use std::time::Duration;

use super::{token_keys, AdminArgs};
use crate::domain::{Timestamp, UserId};

/// Why an admin call failed; each maps to an exit code.
pub enum CallError {
    /// Bad usage or configuration (exit 2).
    Usage(String),
    /// The node could not be reached or refused (exit 1).
    Failed(String),
}

/// The admin token: `--token`, or one minted from the token secret in the configuration.
pub fn admin_token(admin: &AdminArgs) -> Result<String, CallError> {
    if let Some(token) = &admin.token {
        return Ok(token.clone());
    }
    let keys = token_keys(&admin.config)
        .map_err(|e| CallError::Usage(format!("no --token given and cannot mint one from the configuration: {e}")))?;
    let user = UserId::parse("cluster-admin").map_err(|e| CallError::Usage(e.to_string()))?;
    keys.mint(&user, true, Duration::from_secs(3600), Timestamp::now()).map_err(|e| CallError::Usage(e.to_string()))
}

/// The client admin commands use: trusting `--ca-file` for an `https://` node when given.
pub fn http(admin: &AdminArgs, timeout: Duration) -> Result<reqwest::Client, CallError> {
    let mut builder = reqwest::Client::builder().no_proxy().timeout(timeout);
    if let Some(ca) = &admin.ca_file {
        let tls = crate::tls::ca_client_config(ca).map_err(|e| CallError::Usage(format!("--ca-file: {e}")))?;
        builder = builder.use_preconfigured_tls(tls);
    }
    builder.build().map_err(|e| CallError::Failed(e.to_string()))
}

/// Why a request to `url` did not get an answer, with the causes reqwest wraps (a refused
/// certificate is three levels down) and what to do about it.
pub fn unreachable(url: &str, e: &reqwest::Error) -> CallError {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    let hint = if text.contains("certificate") || text.contains("UnknownIssuer") {
        "the node's certificate is not trusted: pass --ca-file with the CA that signed it"
    } else if url.starts_with("http://") && text.contains("connection closed") {
        "is the node serving HTTPS? use an https:// --node"
    } else {
        "is the node running? check --node"
    };
    CallError::Failed(format!("cannot reach {url}: {text} ({hint})"))
}

/// GET `path` on the node and return the response if it is a success.
pub async fn get(admin: &AdminArgs, path: &str, timeout: Duration) -> Result<reqwest::Response, CallError> {
    let token = admin_token(admin)?;
    let url = format!("{}{}", admin.node.trim_end_matches('/'), path);
    let response =
        http(admin, timeout)?.get(&url).bearer_auth(token).send().await.map_err(|e| unreachable(&url, &e))?;
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status();
    // A problem's `detail`, or the text itself (a plain answer, such as an HTTPS port's to
    // plain HTTP).
    let text = response.text().await.unwrap_or_default();
    let body: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let detail = body["detail"].as_str().map_or_else(|| text.trim().to_owned(), str::to_owned);
    let detail = if detail.is_empty() { "no detail".to_owned() } else { detail };
    Err(CallError::Failed(format!("{url} answered {status}: {detail}")))
}
