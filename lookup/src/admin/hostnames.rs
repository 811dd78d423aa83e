//! `/v1/accounts/{account}/custom_hostnames`: create, list, show, delete,
//! verify, and the operator's block and unblock.

use super::error::ApiError;
use super::extract::{Caller, JsonBody, PathOf, QueryOf};
use super::AdminState;
use crate::store::{
    check_account, check_hostname, check_id, rfc3339, CustomHostname, HostnameFilter, Status, StatusChange, Store,
};
use crate::verification::{self, next_status, Check, TXT_PREFIX};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

const DEFAULT_PER_PAGE: u32 = 20;

/// The object every endpoint answers, Cloudflare-shaped.
fn view(h: &CustomHostname) -> Value {
    json!({
        "id": h.id,
        "hostname": h.hostname,
        "account": h.account,
        "status": h.status.as_str(),
        "ownership_verification": {
            "type": "txt",
            "name": format!("{TXT_PREFIX}{}", h.hostname),
            "value": h.verification_token,
        },
        "verification_errors": h.verification_errors,
        "created_at": rfc3339(h.created_at),
        "updated_at": rfc3339(h.updated_at),
    })
}

/// `account` checked, and visible to the caller.
fn account_of(caller: &Caller, account: &str) -> Result<(), ApiError> {
    check_account(account).map_err(ApiError::path)?;
    caller.sees(account)
}

fn ids(caller: &Caller, account: &str, id: &str) -> Result<(), ApiError> {
    account_of(caller, account)?;
    check_id(id).map_err(ApiError::path)
}

async fn load(state: &AdminState, account: &str, id: &str) -> Result<CustomHostname, ApiError> {
    state.store.hostname(account, id).await?.ok_or_else(|| ApiError::not_found("custom hostname"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateBody {
    hostname: String,
}

pub(super) async fn create(
    State(state): State<AdminState>,
    caller: Caller,
    PathOf(account): PathOf<String>,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    account_of(&caller, &account)?;
    let hostname = check_hostname(&body.hostname)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_hostname", e.to_string()))?;
    if state.store.account(&account).await?.is_none() {
        return Err(ApiError::not_found("account"));
    }
    if state.store.hostname_by_name(&hostname).await?.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("{hostname} is already a custom hostname (one hostname, one account)"),
        ));
    }
    let token = Store::new_verification_token()?;
    let (status, errors) = match verification::check(&state.store, &*state.probe, &hostname, &account, &token).await? {
        Check::Proven => (Status::Active, Vec::new()),
        Check::Unproven(errors) => (Status::Pending, errors),
        Check::DnsFailed(m) => (Status::Pending, vec![format!("{m}; it will be checked again")]),
    };
    let h = state.store.create_hostname(&caller.actor(), &account, &hostname, &token, status, &errors).await?;
    Ok((StatusCode::CREATED, Json(view(&h))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListParams {
    hostname: Option<String>,
    status: Option<String>,
    page: Option<u32>,
    per_page: Option<u32>,
}

pub(super) async fn list(
    State(state): State<AdminState>,
    caller: Caller,
    PathOf(account): PathOf<String>,
    QueryOf(q): QueryOf<ListParams>,
) -> Result<Json<Value>, ApiError> {
    account_of(&caller, &account)?;
    let hostname = q
        .hostname
        .as_deref()
        .map(check_hostname)
        .transpose()
        .map_err(|e| ApiError::bad_request("invalid_query", format!("hostname: {e}")))?;
    let status = q
        .status
        .as_deref()
        .map(|s| {
            Status::parse(s).ok_or_else(|| ApiError::bad_request("invalid_query", format!("status: unknown {s:?}")))
        })
        .transpose()?;
    let page = q.page.unwrap_or(1);
    let per_page = q.per_page.unwrap_or(DEFAULT_PER_PAGE);
    if page == 0 || !(1..=crate::store::MAX_PER_PAGE).contains(&per_page) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("page starts at 1; per_page is 1..={}", crate::store::MAX_PER_PAGE),
        ));
    }
    let filter = HostnameFilter { hostname, status, page, per_page };
    let found = state.store.list_hostnames(&account, &filter).await?;
    Ok(Json(json!({
        "result": found.result.iter().map(view).collect::<Vec<_>>(),
        "result_info": { "page": page, "per_page": per_page, "count": found.result.len(), "total_count": found.total_count },
    })))
}

pub(super) async fn show(
    State(state): State<AdminState>,
    caller: Caller,
    PathOf((account, id)): PathOf<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    ids(&caller, &account, &id)?;
    Ok(Json(view(&load(&state, &account, &id).await?)))
}

pub(super) async fn remove(
    State(state): State<AdminState>,
    caller: Caller,
    PathOf((account, id)): PathOf<(String, String)>,
) -> Result<StatusCode, ApiError> {
    ids(&caller, &account, &id)?;
    state.store.delete_hostname(&caller.actor(), &account, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Checks DNS now; a DNS failure changes nothing and is said in the answer.
pub(super) async fn verify(
    State(state): State<AdminState>,
    caller: Caller,
    PathOf((account, id)): PathOf<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    ids(&caller, &account, &id)?;
    let h = load(&state, &account, &id).await?;
    if h.status == Status::Blocked {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "blocked",
            "an operator blocked this hostname; verification does not lift a block",
        ));
    }
    let check = verification::check(&state.store, &*state.probe, &h.hostname, &account, &h.verification_token).await?;
    let (proven, errors, reason) = match check {
        Check::Proven => (true, Vec::new(), "proven by DNS (verify)".to_string()),
        Check::Unproven(errors) => (false, errors, "no proof in DNS (verify)".to_string()),
        Check::DnsFailed(m) => {
            crate::warn!("verify hostname={} DNS failed: {m}", h.hostname);
            let mut answer = view(&h);
            answer["verification_errors"] = json!([format!("{m}; nothing was changed, retry")]);
            return Ok(Json(answer));
        }
    };
    let to = next_status(h.status, proven, false).unwrap_or(h.status);
    let change = StatusChange { from: h.status, to, verification_errors: errors, reason };
    let updated = state.store.change_status(&caller.actor(), &account, &id, &change).await?;
    // Changed meanwhile (the verifier, an operator): answer what is stored.
    let current = match updated {
        Some(h) => h,
        None => load(&state, &account, &id).await?,
    };
    Ok(Json(view(&current)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PatchBody {
    status: String,
}

/// Operators only: `blocked`, or `active` to lift a block.
pub(super) async fn patch(
    State(state): State<AdminState>,
    caller: Caller,
    PathOf((account, id)): PathOf<(String, String)>,
    JsonBody(body): JsonBody<PatchBody>,
) -> Result<Json<Value>, ApiError> {
    caller.admin_only()?;
    ids(&caller, &account, &id)?;
    let to = match Status::parse(&body.status) {
        Some(s @ (Status::Blocked | Status::Active)) => s,
        _ => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_status",
                "status must be \"blocked\", or \"active\" to lift a block",
            ))
        }
    };
    let h = load(&state, &account, &id).await?;
    if h.status == to {
        return Ok(Json(view(&h)));
    }
    if to == Status::Active && h.status != Status::Blocked {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_blocked",
            format!("{} is {}, not blocked; verify proves a hostname", h.hostname, h.status),
        ));
    }
    let reason = if to == Status::Blocked { "blocked by an operator" } else { "block lifted by an operator" };
    let change =
        StatusChange { from: h.status, to, verification_errors: h.verification_errors.clone(), reason: reason.into() };
    match state.store.change_status(&caller.actor(), &account, &id, &change).await? {
        Some(h) => Ok(Json(view(&h))),
        None => Err(ApiError::new(StatusCode::CONFLICT, "conflict", "the hostname changed meanwhile; retry")),
    }
}
