//! `GET /v1/auth/provider`: what the pages need to sign a reader in through the identity
//! provider (`[auth.oidc]` with a `client_id`; 204 without): the public client's id, the scope, and the
//! provider's authorization, token and end-session endpoints (from the config or the provider's
//! discovery document, which the node reads so the pages need not). The pages run the
//! authorization-code flow with PKCE themselves (`src/ui/assets/signin.js`); the node holds no
//! secret of theirs and sees only the resulting access tokens.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::{ApiError, ApiResult};
use crate::config::ProviderEndpoints;
use crate::node::Node;

#[derive(Serialize, utoipa::ToSchema)]
pub struct ProviderSignIn {
    /// The provider's short name (users are `NAME:sub`).
    name: String,
    issuer: String,
    /// The pages' public client at the provider.
    client_id: String,
    scope: String,
    /// Extra parameters of the authorization request.
    authorize_params: BTreeMap<String, String>,
    authorization_endpoint: String,
    token_endpoint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_session_endpoint: Option<String>,
}

#[utoipa::path(get, path = "/v1/auth/provider", tag = "auth",
    responses(
        (status = 200, description = "The pages' sign-in through the identity provider", body = ProviderSignIn),
        (status = 204, description = "The pages have no sign-in through a provider (auth.oidc.client_id is not set)"),
        (status = 503, description = "The provider's discovery document is not read yet", body = super::openapi::Problem)))]
pub async fn provider(State(node): State<Arc<Node>>) -> ApiResult<Response> {
    // None: 204, not 404, so a page asking finds "no provider" without an error in its console.
    let Some((verifier, (pages, endpoints))) = node.keys.oidc().and_then(|v| Some((v, v.pages()?))) else {
        return Ok(axum::http::StatusCode::NO_CONTENT.into_response());
    };
    let ProviderEndpoints { authorization_endpoint, token_endpoint, end_session_endpoint } =
        endpoints.ok_or_else(|| {
            ApiError::ProviderUnavailable(format!(
                "the identity provider's discovery document ({}) has not been read yet; retry shortly",
                verifier.discovery_url()
            ))
        })?;
    let body = ProviderSignIn {
        name: verifier.config().name.clone(),
        issuer: verifier.config().issuer.clone(),
        client_id: pages.client_id.clone(),
        scope: pages.scope.clone(),
        authorize_params: pages.authorize_params.clone(),
        authorization_endpoint,
        token_endpoint,
        end_session_endpoint,
    };
    let mut response = Json(body).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}
