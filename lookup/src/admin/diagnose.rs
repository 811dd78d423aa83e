//! `GET /v1/diagnose?host=NAME`: the verdict the filter would give and why
//! (`crate::diagnosis`), for the admin or an account involved in the host:
//! its zone's owner, an account whose zone its chain passes, or its custom
//! hostname's account. Others get 404, as if it did not exist.

use super::error::ApiError;
use super::extract::{Caller, QueryOf};
use super::AdminState;
use crate::chain::End;
use crate::diagnosis::{diagnose, Facts, Hop};
use crate::ownership::DEFAULT_MAX_TTL;
use crate::registry::Answer;
use crate::store::{check_hostname, CustomHostname};
use crate::verdict::Verdict;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Params {
    host: Option<String>,
}

fn involved<'a>(caller: &Caller, mut accounts: impl Iterator<Item = &'a str>) -> bool {
    match caller {
        Caller::Admin => true,
        Caller::Account(owner) => accounts.any(|a| a == owner.account),
    }
}

pub(super) async fn get(
    State(state): State<AdminState>,
    caller: Caller,
    QueryOf(q): QueryOf<Params>,
) -> Result<Json<Value>, ApiError> {
    let raw = q.host.ok_or_else(|| ApiError::bad_request("missing_host", "the query parameter host is required"))?;
    let host = check_hostname(&raw)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_hostname", e.to_string()))?;
    let hidden = || ApiError::not_found("host");
    let custom = state.store.hostname_by_name(&host).await?;
    let chain = match state.probe.chain(&host).await {
        Ok(chain) => chain,
        Err(e) => {
            // Only a caller involved without DNS's help learns that DNS failed.
            let zone = state.store.zone_owner(&host).await?;
            if !involved(&caller, zone.iter().chain(custom.iter().map(|h| &h.account)).map(String::as_str)) {
                return Err(hidden());
            }
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "dns_unavailable",
                format!("DNS could not answer for {host}: {e}; retry"),
            ));
        }
    };
    let mut hops = Vec::with_capacity(chain.names.len());
    for name in &chain.names {
        let (zone, account) = state.store.zone_of(name).await?.unzip();
        hops.push(Hop { name: name.clone(), zone, account });
    }
    let accounts = hops.iter().filter_map(|h| h.account.as_deref()).chain(custom.iter().map(|h| h.account.as_str()));
    if !involved(&caller, accounts) {
        return Err(hidden());
    }
    let answer = state.store.platform_slice(&host, &chain.names).await?.lookup(&host, &chain, DEFAULT_MAX_TTL);
    // The token and id are for the hostname's account (and the admin) only.
    let custom = custom.map(|h| match &caller {
        Caller::Account(owner) if owner.account != h.account => {
            CustomHostname { id: "ID".into(), verification_token: format!("(the token {} was given)", h.account), ..h }
        }
        _ => h,
    });
    let d =
        diagnose(&Facts { host: &host, chain: &chain, hops: &hops, answer: &answer, custom_hostname: custom.as_ref() });
    let verdict = match &d.verdict {
        Verdict::Allow { account, .. } => json!({"result": "allow", "account": account, "status": 200}),
        Verdict::Deny(code) => json!({
            "result": "deny", "code": code.number(), "name": code.name(), "status": code.default_status(),
        }),
    };
    let end = match &chain.end {
        End::Addresses => "addresses",
        End::NoAddress => "no_address",
        End::Loop => "loop",
        End::TooLong => "too_long",
        End::BadTarget(_) => "bad_target",
    };
    let hops: Vec<Value> = hops.iter().map(|h| json!({"name": h.name, "zone": h.zone, "account": h.account})).collect();
    let certificate = match custom.as_ref().and_then(|h| h.ssl.certificate.as_deref()) {
        Some(id) => state.store.certificate(id).await?,
        None => None,
    };
    Ok(Json(json!({
        "host": host,
        "verdict": verdict,
        "chain": hops,
        "chain_end": end,
        "ownership": match &answer { Answer::Found(o) => json!(o), Answer::Unknown => Value::Null },
        "custom_hostname": custom.as_ref().map(|h| json!({
            "id": h.id, "account": h.account, "status": h.status.as_str(),
            "verification_errors": h.verification_errors,
            "ssl": {
                "status": h.ssl.status.as_str(),
                "method": h.ssl.method.as_str(),
                "validation_errors": h.ssl.errors,
                "expires_on": certificate.as_ref().map(|c| crate::store::rfc3339(c.expires_on)),
                "serial_number": certificate.as_ref().map(|c| c.serial_number.clone()),
            },
        })),
        "steps": d.steps,
        "next_action": d.next_action,
    })))
}
