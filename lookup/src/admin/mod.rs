//! The management API (issue 11): custom hostnames for accounts, accounts,
//! zones and tokens for the operator. On its own listener, never the one
//! Envoy calls. `admin_router` is the whole of it; the service binds it.

mod access_log;
mod diagnose;
mod error;
mod extract;
mod hostnames;
mod operators;

pub use error::ApiError;

use crate::store::Store;
use crate::verification::OwnershipProbe;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Router;
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::Arc;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

/// The largest request body; more is 413.
pub const MAX_BODY: usize = 64 * 1024;
/// The shortest admin token accepted.
pub const MIN_ADMIN_TOKEN: usize = 16;

#[derive(Clone)]
pub struct AdminState {
    store: Store,
    /// Only the digest of the admin token is kept.
    admin_token_sha256: [u8; 32],
    probe: Arc<dyn OwnershipProbe>,
    /// Whether this service issues certificates (`--acme-directory`).
    certificates: bool,
    /// The DCV zone of delegated DNS-01 (`--dcv-zone`).
    dcv_zone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminTokenError {
    TooShort,
}

impl fmt::Display for AdminTokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminTokenError::TooShort => write!(f, "the admin token must be at least {MIN_ADMIN_TOKEN} characters"),
        }
    }
}

impl std::error::Error for AdminTokenError {}

impl AdminState {
    /// `admin_token` as read from `--admin-token-file` or the environment
    /// (surrounding whitespace is not part of it).
    pub fn new(store: Store, admin_token: &str, probe: Arc<dyn OwnershipProbe>) -> Result<AdminState, AdminTokenError> {
        let token = admin_token.trim();
        if token.len() < MIN_ADMIN_TOKEN {
            return Err(AdminTokenError::TooShort);
        }
        Ok(AdminState {
            store,
            admin_token_sha256: Sha256::digest(token.as_bytes()).into(),
            probe,
            certificates: false,
            dcv_zone: None,
        })
    }

    pub fn with_certificates(mut self, on: bool, dcv_zone: Option<String>) -> AdminState {
        self.certificates = on;
        self.dcv_zone = dcv_zone;
        self
    }
}

pub fn admin_router(state: AdminState) -> Router {
    Router::new()
        .route("/v1/accounts/{account}/custom_hostnames", post(hostnames::create).get(hostnames::list))
        .route(
            "/v1/accounts/{account}/custom_hostnames/{id}",
            get(hostnames::show).delete(hostnames::remove).patch(hostnames::patch),
        )
        .route("/v1/accounts/{account}/custom_hostnames/{id}/verify", post(hostnames::verify))
        .route("/v1/accounts/{account}/custom_hostnames/{id}/ssl/retry", post(hostnames::ssl_retry))
        .route("/v1/accounts/{account}/custom_hostnames/{id}/ssl/certificate", get(hostnames::certificate_chain))
        .route("/v1/accounts/{account}", put(operators::put_account).delete(operators::delete_account))
        .route("/v1/accounts/{account}/tokens", post(operators::issue_token))
        .route("/v1/tokens/{id}", delete(operators::revoke_token))
        .route("/v1/diagnose", get(diagnose::get))
        .route("/v1/zones/{zone}", put(operators::put_zone).delete(operators::delete_zone))
        .fallback(|| async { ApiError::not_found("endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed on this endpoint")
        })
        .with_state(state)
        .layer(RequestBodyLimitLayer::new(MAX_BODY))
        .layer(axum::middleware::map_response(json_413))
        .layer(axum::middleware::from_fn(crate::metrics::admin))
        .layer(axum::middleware::from_fn(access_log::log_call))
        // Every call has an id, the client's `x-request-id` or a new one, echoed in the answer.
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// tower-http refuses a declared oversized body before any handler, in
/// plain text; answer it in the API's format.
async fn json_413(response: Response) -> Response {
    let is_json =
        response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_json {
        return ApiError::too_large().into_response();
    }
    response
}
