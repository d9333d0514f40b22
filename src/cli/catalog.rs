//! `pizza-orders catalog show | diff FILE | apply FILE | history`: the replicated catalog through
//! a node's admin API. A file is validated whole on this machine before anything is sent, and
//! applied only if the catalog it was compared with is still the one in force.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

use super::admin_client::{self, CallError};
use super::{usage_error, AdminArgs, CatalogCommand};
use crate::domain::CatalogDoc;

const TIMEOUT: Duration = Duration::from_secs(60);

pub fn run(command: CatalogCommand) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match command {
            CatalogCommand::Show { admin, json } => show(&admin, json).await,
            CatalogCommand::Diff { admin, file } => diff(&admin, &file).await,
            CatalogCommand::Apply { admin, file, dry_run } => apply(&admin, &file, dry_run).await,
            CatalogCommand::History { admin, version } => history(&admin, version).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(CallError::Usage(message)) => usage_error(message),
        Err(CallError::Failed(message)) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The catalog in force: its version line and the document.
async fn current(admin: &AdminArgs) -> Result<(Value, CatalogDoc), CallError> {
    let body: Value = admin_client::get(admin, "/admin/catalog", TIMEOUT)
        .await?
        .json()
        .await
        .map_err(|e| CallError::Failed(format!("the node's answer is not JSON: {e}")))?;
    let doc: CatalogDoc = serde_json::from_value(body["catalog"].clone())
        .map_err(|e| CallError::Failed(format!("the node's catalog cannot be read by this build: {e}")))?;
    Ok((body, doc))
}

fn header(meta: &Value) -> String {
    format!(
        "# catalog version {} applied {} by {}\n",
        meta["version"],
        meta["applied_at"].as_str().unwrap_or("?"),
        meta["author"].as_str().unwrap_or("?")
    )
}

async fn show(admin: &AdminArgs, json: bool) -> Result<(), CallError> {
    let (meta, doc) = current(admin).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&meta).unwrap_or_default());
    } else {
        print!("{}{}", header(&meta), doc.to_toml());
    }
    Ok(())
}

/// Read and check a catalog file; every problem is printed, naming the store and field.
fn read_file(file: &Path) -> Result<CatalogDoc, CallError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| CallError::Usage(format!("cannot read the catalog file {}: {e}", file.display())))?;
    let doc = CatalogDoc::from_toml(&text).map_err(|e| CallError::Usage(format!("{}: {e}", file.display())))?;
    if let Err(e) = doc.clone().check() {
        let list: Vec<String> = e.problems.iter().map(|p| format!("  - {p}")).collect();
        return Err(CallError::Usage(format!("{} is not a valid catalog:\n{}", file.display(), list.join("\n"))));
    }
    Ok(doc)
}

/// The unified diff between two catalogs, each printed the same way (comments and layout of
/// the file do not count).
fn catalog_diff(old: &CatalogDoc, new: &CatalogDoc, old_name: &str, new_name: &str) -> Option<String> {
    let (a, b) = (old.to_toml(), new.to_toml());
    if a == b {
        return None;
    }
    let diff = similar::TextDiff::from_lines(&a, &b);
    Some(diff.unified_diff().context_radius(3).header(old_name, new_name).to_string())
}

async fn diff(admin: &AdminArgs, file: &Path) -> Result<(), CallError> {
    let new = read_file(file)?;
    let (meta, old) = current(admin).await?;
    let old_name = format!("catalog version {}", meta["version"]);
    match catalog_diff(&old, &new, &old_name, &file.display().to_string()) {
        None => println!("no changes against {old_name}"),
        Some(text) => print!("{text}"),
    }
    Ok(())
}

async fn apply(admin: &AdminArgs, file: &Path, dry_run: bool) -> Result<(), CallError> {
    let doc = read_file(file)?;
    let (meta, old) = current(admin).await?;
    let version = meta["version"].as_u64().unwrap_or(0);
    if catalog_diff(&old, &doc, "", "").is_none() {
        println!("no changes: catalog version {version} is already this file");
        return Ok(());
    }
    let token = admin_client::admin_token(admin)?;
    let url = format!(
        "{}/admin/catalog?expected_version={version}{}",
        admin.node.trim_end_matches('/'),
        if dry_run { "&dry_run=true" } else { "" }
    );
    let response = admin_client::http(admin, TIMEOUT)?
        .put(&url)
        .bearer_auth(token)
        .header("content-type", "application/toml")
        .body(doc.to_toml())
        .send()
        .await
        .map_err(|e| admin_client::unreachable(&url, &e))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let mut message = format!("{url} answered {status}: {}", body["detail"].as_str().unwrap_or("no detail"));
        if body["type"] == "/problems/catalog-version-conflict" {
            message.push_str("\nsomeone applied a catalog meanwhile: run 'catalog diff' again, then apply");
        }
        return Err(CallError::Failed(message));
    }
    if dry_run {
        println!("valid: {} stores; nothing applied (dry run)", body["stores"]);
    } else {
        println!(
            "applied catalog version {} ({} stores), replacing version {version}",
            body["version"], body["stores"]
        );
    }
    Ok(())
}

async fn history(admin: &AdminArgs, version: Option<u64>) -> Result<(), CallError> {
    if let Some(version) = version {
        let body: Value = admin_client::get(admin, &format!("/admin/catalog/history/{version}"), TIMEOUT)
            .await?
            .json()
            .await
            .map_err(|e| CallError::Failed(e.to_string()))?;
        let doc: CatalogDoc =
            serde_json::from_value(body["catalog"].clone()).map_err(|e| CallError::Failed(e.to_string()))?;
        print!("{}{}", header(&body), doc.to_toml());
        return Ok(());
    }
    let list: Vec<Value> = admin_client::get(admin, "/admin/catalog/history", TIMEOUT)
        .await?
        .json()
        .await
        .map_err(|e| CallError::Failed(e.to_string()))?;
    println!("{:>7}  {:<20}  {:>6}  author", "version", "applied at", "stores");
    for entry in list {
        println!(
            "{:>7}  {:<20}  {:>6}  {}",
            entry["version"],
            entry["applied_at"].as_str().unwrap_or("?"),
            entry["stores"],
            entry["author"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_price_change_shows_under_its_menu() {
        let old = CatalogDoc::from_toml(include_str!("../../config/catalog.toml")).unwrap();
        let mut new = old.clone();
        if let Some(uk) = new.menus.get_mut("uk") {
            uk.sizes.small = Some(900);
        }
        let diff = catalog_diff(&old, &new, "catalog version 1", "catalog.toml").unwrap();
        let changed: Vec<&str> = diff
            .lines()
            .filter(|l| l.starts_with(['-', '+']) && !l.starts_with("---") && !l.starts_with("+++"))
            .collect();
        assert_eq!(changed, ["-small = 850", "+small = 900"], "{diff}");
        assert!(diff.contains("[menus.uk.sizes]"), "the menu is named beside the change:\n{diff}");
        assert!(catalog_diff(&old, &old, "a", "b").is_none());
    }
}
