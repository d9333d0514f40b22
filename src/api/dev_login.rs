//! `POST /v1/dev/login`: development only (`auth.dev_login = true`). Mints a token for any
//! user name so the web UI can sign in without an identity provider. Absent (404) otherwise.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::extract::JsonBody;
use super::{ApiError, ApiResult};
use crate::domain::{Timestamp, UserId};
use crate::node::Node;

const TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    user: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LoginResponse {
    token: String,
    expires_at: String,
}

#[utoipa::path(post, path = "/v1/dev/login", tag = "development", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 404, description = "Development sign-in is off", body = super::openapi::Problem)))]
pub async fn login(
    State(node): State<Arc<Node>>,
    JsonBody(body): JsonBody<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    if !node.config.dev_login {
        return Err(ApiError::RouteNotFound);
    }
    let user = UserId::parse(body.user.trim())
        .map_err(|e| ApiError::InvalidField { field: "user".into(), detail: format!("user: {e}") })?;
    let now = Timestamp::now();
    let token = node.keys.mint(&user, false, TTL, now).map_err(|_| ApiError::Internal)?;
    Ok(Json(LoginResponse { token, expires_at: now.plus_millis(TTL.as_millis() as i64).to_rfc3339() }))
}
