//! Extractors that answer in the API's error format: the caller (auth), a
//! strict JSON body, path segments and query strings.

use super::access_log::CallerSlot;
use super::error::ApiError;
use super::{AdminState, MAX_BODY};
use crate::store::{Actor, TokenOwner};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Who is calling, from `authorization: Bearer TOKEN`.
#[derive(Debug, Clone)]
pub enum Caller {
    Admin,
    Account(TokenOwner),
}

impl Caller {
    /// Whether the caller may see `account`'s hostnames. Another account's
    /// are answered 404, as if they did not exist.
    pub fn sees(&self, account: &str) -> Result<(), ApiError> {
        match self {
            Caller::Admin => Ok(()),
            Caller::Account(owner) if owner.account == account => Ok(()),
            Caller::Account(_) => Err(ApiError::not_found("account")),
        }
    }

    pub fn admin_only(&self) -> Result<(), ApiError> {
        match self {
            Caller::Admin => Ok(()),
            Caller::Account(_) => Err(ApiError::operator_only()),
        }
    }

    pub fn actor(&self) -> Actor {
        match self {
            Caller::Admin => Actor::Admin,
            Caller::Account(o) => Actor::Token { account: o.account.clone(), token_id: o.token_id.clone() },
        }
    }
}

impl FromRequestParts<AdminState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AdminState) -> Result<Caller, ApiError> {
        let caller = authenticate(parts, state).await?;
        if let Some(slot) = parts.extensions.get::<CallerSlot>() {
            slot.set(caller.actor().label());
        }
        Ok(caller)
    }
}

/// The admin token, else an account token from the store.
async fn authenticate(parts: &Parts, state: &AdminState) -> Result<Caller, ApiError> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("authorization: Bearer TOKEN is required"))?;
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::unauthorized("authorization must be Bearer TOKEN"))?;
    // Digests of equal length, compared in constant time.
    let presented = Sha256::digest(token.as_bytes());
    if bool::from(presented.as_slice().ct_eq(&state.admin_token_sha256)) {
        return Ok(Caller::Admin);
    }
    match state.store.authenticate(token).await? {
        Some(owner) => Ok(Caller::Account(owner)),
        None => Err(ApiError::unauthorized("invalid or revoked token")),
    }
}

/// A JSON body read up to `MAX_BODY` and decoded strictly (the types
/// refuse unknown fields). An empty body reads as `{}`.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<JsonBody<T>, ApiError> {
        let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY).await.map_err(|e| {
            if too_large(&e) {
                ApiError::too_large()
            } else {
                ApiError::bad_request("invalid_body", "the body could not be read")
            }
        })?;
        let bytes: &[u8] = if bytes.is_empty() { b"{}" } else { &bytes };
        serde_json::from_slice(bytes).map(JsonBody).map_err(|e| {
            let code = if e.is_data() { "invalid_request" } else { "invalid_json" };
            ApiError::bad_request(code, e.to_string())
        })
    }
}

fn too_large(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// Path segments, decoded; their rules are checked by the handler.
pub struct PathOf<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for PathOf<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<PathOf<T>, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(t)| PathOf(t))
            .map_err(|e| ApiError::bad_request("invalid_path", e.body_text()))
    }
}

/// A query string into a type that refuses unknown parameters.
pub struct QueryOf<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryOf<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<QueryOf<T>, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(t)| QueryOf(t))
            .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
    }
}
