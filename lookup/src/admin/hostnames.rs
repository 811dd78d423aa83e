//! `/v1/accounts/{account}/custom_hostnames`: create, list, show, delete,
//! verify, and the operator's block and unblock.

use super::error::ApiError;
use super::extract::{Caller, JsonBody, PathOf, QueryOf};
use super::AdminState;
use crate::store::{
    check_account, check_hostname, check_id, rfc3339, Certificate, CustomHostname, HostnameFilter, SslMethod,
    SslStatus, Status, StatusChange, Store,
};
use crate::verification::{self, next_status, Check, TXT_PREFIX};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

const DEFAULT_PER_PAGE: u32 = 20;

/// The object every endpoint answers, Cloudflare-shaped, with its `ssl`.
async fn render(state: &AdminState, h: &CustomHostname) -> Result<Value, ApiError> {
    let cert = match &h.ssl.certificate {
        Some(id) => state.store.certificate(id).await?,
        None => None,
    };
    let mut v = view(h);
    v["ssl"] = ssl_view(h, cert.as_ref(), state.certificates, state.dcv_zone.as_deref());
    Ok(v)
}

async fn render_all(state: &AdminState, hs: &[CustomHostname]) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::with_capacity(hs.len());
    for h in hs {
        out.push(render(state, h).await?);
    }
    Ok(out)
}

/// Cloudflare for SaaS's `ssl` object; the private key never leaves the store.
fn ssl_view(h: &CustomHostname, cert: Option<&Certificate>, issuing: bool, dcv_zone: Option<&str>) -> Value {
    let s = &h.ssl;
    let mut records = Vec::new();
    match (s.method, &s.http_token, &s.http_body, &s.txt_value) {
        (SslMethod::Http, Some(token), Some(body), _) => records.push(json!({
            "http_url": format!("http://{}{}{token}", h.hostname, crate::certs::CHALLENGE_PREFIX),
            "http_body": body,
        })),
        (SslMethod::Txt, _, _, value) => records.push(json!({
            "txt_name": format!("_acme-challenge.{}", h.hostname),
            "txt_value": value,
        })),
        _ => {}
    }
    // Delegated DCV: the CNAME the customer adds once, before traffic moves.
    let delegation: Vec<Value> = match (s.method, dcv_zone) {
        (SslMethod::Txt, Some(zone)) => vec![json!({
            "cname": format!("_acme-challenge.{}", h.hostname),
            "cname_target": format!("{}.{zone}", h.hostname),
        })],
        _ => Vec::new(),
    };
    let mut errors = s.errors.clone();
    if !issuing && s.status == SslStatus::Initializing {
        errors.insert(
            0,
            "certificates are not issued by this service: it has no ACME directory (--acme-directory)".into(),
        );
    }
    json!({
        "status": s.status.as_str(),
        "method": s.method.as_str(),
        "validation_records": records,
        "dcv_delegation_records": delegation,
        "validation_errors": errors,
        "certificate_authority": cert.map(|c| c.certificate_authority.clone()),
        "issuer": cert.map(|c| c.issuer.clone()),
        "serial_number": cert.map(|c| c.serial_number.clone()),
        "expires_on": cert.map(|c| rfc3339(c.expires_on)),
        "renew_at": cert.map(|c| rfc3339(c.renew_at)),
        "hosts": cert.map(|_| vec![h.hostname.clone()]).unwrap_or_default(),
    })
}

fn parse_method(body: &SslBody) -> Result<SslMethod, ApiError> {
    SslMethod::parse(&body.method).ok_or_else(|| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_ssl_method", "ssl.method must be \"http\" or \"txt\"")
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SslBody {
    method: String,
}

/// The hostname object without `ssl` (diagnose's view too).
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
    ssl: Option<SslBody>,
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
    let method = body.ssl.as_ref().map(parse_method).transpose()?.unwrap_or(SslMethod::Http);
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
    let mut h = state.store.create_hostname(&caller.actor(), &account, &hostname, &token, status, &errors).await?;
    if method != SslMethod::Http && state.store.set_ssl_method(&caller.actor(), &account, &h.id, method).await? {
        h = load(&state, &account, &h.id).await?;
    }
    Ok((StatusCode::CREATED, Json(render(&state, &h).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListParams {
    hostname: Option<String>,
    status: Option<String>,
    page: Option<u32>,
    per_page: Option<u32>,
    /// `asc` (default) or `desc`, by hostname.
    direction: Option<String>,
    /// From `result_info.cursors.after`: the page after it.
    cursor: Option<String>,
}

/// A cursor is the last hostname of a page, base64url: opaque to clients,
/// and checked as a hostname when it comes back.
fn cursor_after(last: Option<&CustomHostname>) -> Option<String> {
    last.map(|h| URL_SAFE_NO_PAD.encode(h.hostname.as_bytes()))
}

fn read_cursor(cursor: &str) -> Result<String, ApiError> {
    let bad = || ApiError::bad_request("invalid_query", "cursor: not one this API gave out");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let hostname = String::from_utf8(bytes).map_err(|_| bad())?;
    check_hostname(&hostname).map_err(|_| bad())
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
    let descending = match q.direction.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(d) => return Err(ApiError::bad_request("invalid_query", format!("direction: {d:?} is not asc or desc"))),
    };
    let per_page = q.per_page.unwrap_or(DEFAULT_PER_PAGE);
    if q.page == Some(0) || !(1..=crate::store::MAX_PER_PAGE).contains(&per_page) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("page starts at 1; per_page is 1..={}", crate::store::MAX_PER_PAGE),
        ));
    }
    let page = q.page.unwrap_or(1);
    let filter = HostnameFilter { hostname, status, page, per_page, descending };
    if let Some(cursor) = &q.cursor {
        if q.page.is_some() {
            return Err(ApiError::bad_request("invalid_query", "page and cursor: give one or the other"));
        }
        let after = read_cursor(cursor)?;
        let found = state.store.list_hostnames_after(&account, &filter, &after).await?;
        let after = if found.more { cursor_after(found.result.last()) } else { None };
        return Ok(Json(json!({
            "result": render_all(&state, &found.result).await?,
            "result_info": { "per_page": per_page, "count": found.result.len(), "cursors": cursors(after) },
        })));
    }
    let found = state.store.list_hostnames(&account, &filter).await?;
    let seen = u64::from(page - 1) * u64::from(per_page) + found.result.len() as u64;
    let after = if seen < found.total_count { cursor_after(found.result.last()) } else { None };
    Ok(Json(json!({
        "result": render_all(&state, &found.result).await?,
        "result_info": {
            "page": page, "per_page": per_page, "count": found.result.len(), "total_count": found.total_count,
            "cursors": cursors(after),
        },
    })))
}

/// `{"after": CURSOR}` while more follow, `{}` at the end.
fn cursors(after: Option<String>) -> Value {
    after.map_or_else(|| json!({}), |a| json!({ "after": a }))
}

pub(super) async fn show(
    State(state): State<AdminState>,
    caller: Caller,
    PathOf((account, id)): PathOf<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    ids(&caller, &account, &id)?;
    Ok(Json(render(&state, &load(&state, &account, &id).await?).await?))
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
            tracing::warn!(hostname = h.hostname, error = m, "verify: DNS failed");
            let mut answer = render(&state, &h).await?;
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
    Ok(Json(render(&state, &current).await?))
}

/// The chain in service (public; the key never leaves the store).
pub(super) async fn certificate_chain(
    State(state): State<AdminState>,
    caller: Caller,
    PathOf((account, id)): PathOf<(String, String)>,
) -> Result<([(axum::http::HeaderName, &'static str); 1], String), ApiError> {
    ids(&caller, &account, &id)?;
    let h = load(&state, &account, &id).await?;
    let cert = match &h.ssl.certificate {
        Some(cid) => state.store.certificate(cid).await?,
        None => None,
    };
    let cert = cert.ok_or_else(|| ApiError::not_found("certificate in service"))?;
    Ok(([(axum::http::header::CONTENT_TYPE, "application/pem-certificate-chain")], cert.chain_pem))
}

/// Asks the issuer to act now: a forced renewal, or a new attempt after
/// a timeout or a fix on the customer's side.
pub(super) async fn ssl_retry(
    State(state): State<AdminState>,
    caller: Caller,
    PathOf((account, id)): PathOf<(String, String)>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    ids(&caller, &account, &id)?;
    let h = load(&state, &account, &id).await?;
    if h.status != Status::Active {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_active",
            format!("{} is {}: only an active custom hostname gets a certificate", h.hostname, h.status),
        ));
    }
    state.store.ssl_retry_now(&caller.actor(), &account, &id, "asked through the API").await?;
    Ok((StatusCode::ACCEPTED, Json(render(&state, &load(&state, &account, &id).await?).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PatchBody {
    status: Option<String>,
    ssl: Option<SslBody>,
}

/// `ssl.method` for the account; `status` for operators only: `blocked`,
/// or `active` to lift a block.
pub(super) async fn patch(
    State(state): State<AdminState>,
    caller: Caller,
    PathOf((account, id)): PathOf<(String, String)>,
    JsonBody(body): JsonBody<PatchBody>,
) -> Result<Json<Value>, ApiError> {
    // A status change is the operator's whatever the hostname: 403 first.
    if body.status.is_some() {
        caller.admin_only()?;
    }
    ids(&caller, &account, &id)?;
    let Some(status) = body.status else {
        let Some(ssl) = body.ssl else {
            return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "empty_patch", "give status or ssl.method"));
        };
        let method = parse_method(&ssl)?;
        load(&state, &account, &id).await?;
        state.store.set_ssl_method(&caller.actor(), &account, &id, method).await?;
        return Ok(Json(render(&state, &load(&state, &account, &id).await?).await?));
    };
    if body.ssl.is_some() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "one_change",
            "change status and ssl.method in two calls",
        ));
    }
    let to = match Status::parse(&status) {
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
        return Ok(Json(render(&state, &h).await?));
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
        Some(h) => Ok(Json(render(&state, &h).await?)),
        None => Err(ApiError::new(StatusCode::CONFLICT, "conflict", "the hostname changed meanwhile; retry")),
    }
}
