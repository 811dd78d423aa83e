//! Operator endpoints (admin token only): accounts, zones, API tokens.

use super::error::ApiError;
use super::extract::{Caller, JsonBody, PathOf};
use super::AdminState;
use crate::store::{check_account, check_hostname, check_id, rfc3339, NameError, StoreError, Upsert};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

fn created_or_ok(done: Upsert) -> StatusCode {
    if done == Upsert::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

/// A zone in a path: a host name by the filter's rules, in lower case.
fn zone_name(raw: &str) -> Result<String, ApiError> {
    match check_hostname(raw) {
        Ok(z) if z == raw => Ok(z),
        Ok(_) => Err(ApiError::path(NameError::Hostname("zone names are lower case".into()))),
        Err(e) => Err(ApiError::path(e)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AccountBody {
    suspended: bool,
}

pub(super) async fn put_account(
    State(state): State<AdminState>,
    caller: Caller,
    PathOf(account): PathOf<String>,
    JsonBody(body): JsonBody<AccountBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.admin_only()?;
    check_account(&account).map_err(ApiError::path)?;
    let done = state.store.put_account(&caller.actor(), &account, body.suspended).await?;
    Ok((created_or_ok(done), Json(json!({ "id": account, "suspended": body.suspended }))))
}

pub(super) async fn delete_account(
    State(state): State<AdminState>,
    caller: Caller,
    PathOf(account): PathOf<String>,
) -> Result<StatusCode, ApiError> {
    caller.admin_only()?;
    check_account(&account).map_err(ApiError::path)?;
    state.store.delete_account(&caller.actor(), &account).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ZoneBody {
    account: String,
}

pub(super) async fn put_zone(
    State(state): State<AdminState>,
    caller: Caller,
    PathOf(zone): PathOf<String>,
    JsonBody(body): JsonBody<ZoneBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.admin_only()?;
    let zone = zone_name(&zone)?;
    let unprocessable = |m: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_account", m);
    check_account(&body.account).map_err(|e| unprocessable(format!("account: {e}")))?;
    let done = match state.store.put_zone(&caller.actor(), &zone, &body.account).await {
        Err(StoreError::NotFound(_)) => return Err(unprocessable(format!("account {} does not exist", body.account))),
        other => other?,
    };
    Ok((created_or_ok(done), Json(json!({ "zone": zone, "account": body.account }))))
}

pub(super) async fn delete_zone(
    State(state): State<AdminState>,
    caller: Caller,
    PathOf(zone): PathOf<String>,
) -> Result<StatusCode, ApiError> {
    caller.admin_only()?;
    let zone = zone_name(&zone)?;
    state.store.delete_zone(&caller.actor(), &zone).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TokenBody {}

/// The token in clear, this once only.
pub(super) async fn issue_token(
    State(state): State<AdminState>,
    caller: Caller,
    PathOf(account): PathOf<String>,
    JsonBody(TokenBody {}): JsonBody<TokenBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.admin_only()?;
    check_account(&account).map_err(ApiError::path)?;
    let t = state.store.issue_token(&caller.actor(), &account).await?;
    let body = json!({ "id": t.id, "account": t.account, "token": t.token, "created_at": rfc3339(t.created_at) });
    Ok((StatusCode::CREATED, Json(body)))
}

pub(super) async fn revoke_token(
    State(state): State<AdminState>,
    caller: Caller,
    PathOf(id): PathOf<String>,
) -> Result<StatusCode, ApiError> {
    caller.admin_only()?;
    check_id(&id).map_err(ApiError::path)?;
    state.store.revoke_token(&caller.actor(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
