//! `/admin/catalog`: the replicated catalog — show it, apply a new one (validated whole before
//! anything is proposed), and its history. Any node accepts an apply; the write goes through
//! Raft like an order, so every replica takes the same catalog at the same log index.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::admin::require_admin;
use super::extract::{consistency, IdSegment, QueryParams};
use super::{ApiError, ApiResult};
use crate::auth::Principal;
use crate::domain::{CatalogDoc, Timestamp};
use crate::node::Node;
use crate::state::{CatalogRecord, Command, Outcome, SetCatalog};

/// Largest catalog document accepted (hundreds of stores with drawn areas).
pub const MAX_CATALOG_BYTES: usize = 16 << 20;

#[derive(Serialize)]
struct CatalogView<'a> {
    version: u64,
    applied_at: String,
    author: &'a str,
    catalog: &'a CatalogDoc,
}

impl<'a> CatalogView<'a> {
    fn of(record: &'a CatalogRecord) -> Self {
        Self {
            version: record.version,
            applied_at: record.applied_at.to_rfc3339(),
            author: &record.author,
            catalog: &record.catalog,
        }
    }
}

/// The catalog in force.
#[utoipa::path(get, path = "/admin/catalog", tag = "admin", responses((status = 200, description = "The catalog in force: version, when and by whom it was applied, and the document")), security(("bearer" = [])))]
pub async fn show(State(node): State<Arc<Node>>, principal: Principal, query: QueryParams) -> ApiResult<Response> {
    require_admin(&principal)?;
    node.read_barrier(consistency(&query)?).await?;
    let current = node.catalog()?;
    let record = CatalogRecord {
        version: current.version,
        applied_at: current.applied_at,
        author: current.author.clone(),
        catalog: current.catalog.doc().clone(),
    };
    Ok(Json(CatalogView::of(&record)).into_response())
}

#[derive(Serialize)]
struct Applied {
    version: u64,
    stores: usize,
    /// True for `dry_run`: the document is valid and nothing was changed.
    dry_run: bool,
}

/// Apply a catalog: TOML (`Content-Type: application/toml` or `text/plain`) or JSON. With
/// `?expected_version=N` only if N is still in force; `?dry_run=true` only validates.
#[utoipa::path(put, path = "/admin/catalog", tag = "admin",
    request_body(content = String, content_type = "text/plain", description = "A catalog file (TOML; also accepted as application/toml, or the same document as application/json)"),
    params(("expected_version" = Option<u64>, Query), ("dry_run" = Option<bool>, Query)),
    responses((status = 200, description = "Applied: the new version"),
        (status = 409, description = "catalog-version-conflict or store-in-use", body = super::openapi::Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid-catalog, with every problem in `errors`", body = super::openapi::Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn apply(
    State(node): State<Arc<Node>>,
    principal: Principal,
    headers: HeaderMap,
    query: QueryParams,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Response> {
    require_admin(&principal)?;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(MAX_CATALOG_BYTES)
        } else {
            ApiError::MalformedJson(format!("the body could not be read: {e}"))
        }
    })?;
    let expected_version = match query.get("expected_version") {
        None => None,
        Some(raw) => Some(raw.parse::<u64>().map_err(|_| ApiError::InvalidField {
            field: "expected_version".into(),
            detail: "expected_version: must be a whole number (the version `catalog show` printed)".into(),
        })?),
    };
    let dry_run = matches!(query.get("dry_run"), Some("true" | "1"));
    let doc = parse_document(&headers, &body)?;
    let checked = doc.clone().check().map_err(|e| ApiError::InvalidCatalog(e.to_string(), e.problems))?;
    let stores = checked.stores().len();
    if dry_run {
        return Ok(Json(Applied { version: node.catalog().map_or(0, |c| c.version), stores, dry_run }).into_response());
    }
    let command = Command::set_catalog(SetCatalog {
        at: Timestamp::now(),
        author: principal.user.to_string(),
        expected_version,
        seed: false,
        catalog: doc,
    });
    let applied = node.propose(command).await?;
    super::metrics::record(&applied);
    match applied? {
        Outcome::Catalog { version, .. } => {
            tracing::info!(version, stores, author = %principal.user, "catalog applied");
            Ok(Json(Applied { version, stores, dry_run }).into_response())
        }
        other => {
            tracing::error!(?other, "a catalog command produced an outcome of another kind");
            Err(ApiError::Internal)
        }
    }
}

fn parse_document(headers: &HeaderMap, body: &[u8]) -> Result<CatalogDoc, ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let invalid =
        |problem: String| ApiError::InvalidCatalog(format!("the catalog is invalid: {problem}"), vec![problem]);
    match essence.as_str() {
        "application/json" => super::extract::parse_json::<CatalogDoc>(body),
        "application/toml" | "text/plain" | "text/x-toml" => {
            let text = std::str::from_utf8(body).map_err(|_| invalid("the body is not UTF-8".into()))?;
            CatalogDoc::from_toml(text).map_err(|e| ApiError::InvalidCatalog(e.to_string(), e.problems))
        }
        _ => Err(ApiError::UnsupportedMediaType),
    }
}

#[derive(Serialize)]
struct HistoryEntry<'a> {
    version: u64,
    applied_at: String,
    author: &'a str,
    stores: usize,
}

/// Every catalog applied, oldest first (without the documents; ask for one by version).
#[utoipa::path(get, path = "/admin/catalog/history", tag = "admin", responses((status = 200, description = "Every catalog applied, oldest first")), security(("bearer" = [])))]
pub async fn history(State(node): State<Arc<Node>>, principal: Principal, query: QueryParams) -> ApiResult<Response> {
    require_admin(&principal)?;
    node.read_barrier(consistency(&query)?).await?;
    let records = node.store.catalog_history()?;
    let entries: Vec<HistoryEntry> = records
        .iter()
        .map(|r| HistoryEntry {
            version: r.version,
            applied_at: r.applied_at.to_rfc3339(),
            author: &r.author,
            stores: r.catalog.stores.len(),
        })
        .collect();
    Ok(Json(entries).into_response())
}

/// One catalog of the history, whole.
#[utoipa::path(get, path = "/admin/catalog/history/{version}", tag = "admin", params(("version" = u64, Path)), responses((status = 200, description = "That catalog"), (status = 404, description = "No such version", body = super::openapi::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn version(
    State(node): State<Arc<Node>>,
    principal: Principal,
    IdSegment(version): IdSegment,
    query: QueryParams,
) -> ApiResult<Response> {
    require_admin(&principal)?;
    let wanted: u64 = version.parse().map_err(|_| ApiError::RouteNotFound)?;
    node.read_barrier(consistency(&query)?).await?;
    match node.store.catalog_record(wanted)? {
        Some(record) => Ok(Json(CatalogView::of(&record)).into_response()),
        None => Err(ApiError::RouteNotFound),
    }
}
