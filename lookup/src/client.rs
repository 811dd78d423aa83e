//! The management API's client commands: one HTTP request each, the JSON
//! answer printed, the API's error messages on failure.

use crate::cli::{AccountsCmd, ApiArgs, CertificatesCmd, HostnamesCmd, TokensCmd, ZonesCmd};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use std::fmt;
use std::time::Duration;

mod wait;
pub use wait::{until_active, Wait};

const TIMEOUT: Duration = Duration::from_secs(30);

/// One call to the management API.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub method: Method,
    /// Path and query, percent-encoded.
    pub path: String,
    pub body: Option<Value>,
}

#[derive(Debug)]
pub enum ClientError {
    /// Bad input before any request (a token file, the URL).
    Usage(String),
    /// No answer (connection refused, timeout).
    Transport(String),
    /// The API answered 4xx or 5xx: its status and messages.
    Api(StatusCode, String),
    /// `--wait` ended before the hostname became active: why.
    Wait(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Usage(m) | ClientError::Transport(m) | ClientError::Wait(m) => f.write_str(m),
            ClientError::Api(status, m) => write!(f, "{status}: {m}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// A path segment, percent-encoded (ids and names are checked by the API).
fn seg(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn query(pairs: &[(&str, Option<String>)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v {
            q.append_pair(k, v);
        }
    }
    let q = q.finish();
    if q.is_empty() {
        q
    } else {
        format!("?{q}")
    }
}

fn call(method: Method, path: String, body: Option<Value>) -> Call {
    Call { method, path, body }
}

impl HostnamesCmd {
    pub fn call(&self) -> (Call, &ApiArgs) {
        let base = |account: &str| format!("/v1/accounts/{}/custom_hostnames", seg(account));
        match self {
            HostnamesCmd::Add { account, hostname, ssl_method, api } => {
                let mut body = json!({ "hostname": hostname });
                if let Some(m) = ssl_method {
                    body["ssl"] = json!({ "method": m });
                }
                (call(Method::POST, base(account), Some(body)), api)
            }
            HostnamesCmd::List { account, hostname, status, page, per_page, direction, cursor, api } => {
                let q = query(&[
                    ("hostname", hostname.clone()),
                    ("status", status.clone()),
                    ("page", page.map(|p| p.to_string())),
                    ("per_page", per_page.map(|p| p.to_string())),
                    ("direction", direction.clone()),
                    ("cursor", cursor.clone()),
                ]);
                (call(Method::GET, format!("{}{q}", base(account)), None), api)
            }
            HostnamesCmd::Show { account, id, api } => {
                (call(Method::GET, format!("{}/{}", base(account), seg(id)), None), api)
            }
            HostnamesCmd::Verify { account, id, api, .. } => {
                (call(Method::POST, format!("{}/{}/verify", base(account), seg(id)), None), api)
            }
            HostnamesCmd::Delete { account, id, api } => {
                (call(Method::DELETE, format!("{}/{}", base(account), seg(id)), None), api)
            }
            HostnamesCmd::SetStatus { account, id, status, api } => {
                (call(Method::PATCH, format!("{}/{}", base(account), seg(id)), Some(json!({ "status": status }))), api)
            }
        }
    }

    /// `verify --wait`: its calls and bounds; `None` for any other command.
    pub fn wait(&self) -> Option<Wait> {
        match self {
            HostnamesCmd::Verify { account, id, wait: Some(wait), interval, .. } => {
                let one = format!("/v1/accounts/{}/custom_hostnames/{}", seg(account), seg(id));
                Some(Wait {
                    verify: call(Method::POST, format!("{one}/verify"), None),
                    show: call(Method::GET, one, None),
                    wait: *wait,
                    interval: *interval,
                })
            }
            _ => None,
        }
    }
}

impl CertificatesCmd {
    pub fn call(&self) -> (Call, &ApiArgs) {
        let one = |account: &str, id: &str| format!("/v1/accounts/{}/custom_hostnames/{}", seg(account), seg(id));
        match self {
            CertificatesCmd::Renew { account, id, api } => {
                (call(Method::POST, format!("{}/ssl/retry", one(account, id)), None), api)
            }
            CertificatesCmd::SetMethod { account, id, method, api } => {
                (call(Method::PATCH, one(account, id), Some(json!({ "ssl": { "method": method } }))), api)
            }
        }
    }
}

impl AccountsCmd {
    pub fn call(&self) -> (Call, &ApiArgs) {
        match self {
            AccountsCmd::Put { account, suspended, api } => (
                call(Method::PUT, format!("/v1/accounts/{}", seg(account)), Some(json!({ "suspended": suspended }))),
                api,
            ),
            AccountsCmd::Delete { account, api } => {
                (call(Method::DELETE, format!("/v1/accounts/{}", seg(account)), None), api)
            }
        }
    }
}

impl ZonesCmd {
    pub fn call(&self) -> (Call, &ApiArgs) {
        match self {
            ZonesCmd::Put { zone, account, api } => {
                (call(Method::PUT, format!("/v1/zones/{}", seg(zone)), Some(json!({ "account": account }))), api)
            }
            ZonesCmd::Delete { zone, api } => (call(Method::DELETE, format!("/v1/zones/{}", seg(zone)), None), api),
        }
    }
}

impl TokensCmd {
    pub fn call(&self) -> (Call, &ApiArgs) {
        match self {
            TokensCmd::Create { account, api } => {
                (call(Method::POST, format!("/v1/accounts/{}/tokens", seg(account)), Some(json!({}))), api)
            }
            TokensCmd::Revoke { id, api } => (call(Method::DELETE, format!("/v1/tokens/{}", seg(id)), None), api),
        }
    }
}

pub fn diagnose(host: &str) -> Call {
    call(Method::GET, format!("/v1/diagnose{}", query(&[("host", Some(host.to_string()))])), None)
}

/// The bearer token: `--token-file`, else `CNAME_GUARD_TOKEN`.
pub fn token(api: &ApiArgs, env: Option<String>) -> Result<Option<String>, ClientError> {
    if let Some(path) = &api.token_file {
        let raw = std::fs::read_to_string(path)
            .map_err(|e| ClientError::Usage(format!("--token-file {}: {e}", path.display())))?;
        return Ok(Some(raw.trim().to_string()));
    }
    Ok(env.map(|t| t.trim().to_string()).filter(|t| !t.is_empty()))
}

/// Sends `call` to the API at `base` and returns the answer's body (empty
/// for 204).
pub async fn send(base: &str, token: Option<&str>, call: &Call) -> Result<String, ClientError> {
    let base = base.trim_end_matches('/');
    if !base.starts_with("http://") {
        return Err(ClientError::Usage(format!("--api {base:?}: only http:// URLs are supported")));
    }
    let uri = format!("{base}{}", call.path);
    let mut req = Request::builder().method(call.method.clone()).uri(&uri).header("accept", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let body = match &call.body {
        Some(v) => {
            req = req.header("content-type", "application/json");
            Bytes::from(v.to_string())
        }
        None => Bytes::new(),
    };
    let req = req.body(Full::new(body)).map_err(|e| ClientError::Usage(format!("--api {base:?}: {e}")))?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let answer = async {
        let response = client.request(req).await.map_err(|e| ClientError::Transport(format!("{uri}: {e}")))?;
        let status = response.status();
        let bytes =
            response.into_body().collect().await.map_err(|e| ClientError::Transport(format!("{uri}: {e}")))?.to_bytes();
        Ok::<_, ClientError>((status, String::from_utf8_lossy(&bytes).into_owned()))
    };
    let (status, text) = tokio::time::timeout(TIMEOUT, answer)
        .await
        .map_err(|_| ClientError::Transport(format!("{uri}: no answer in {TIMEOUT:?}")))??;
    if status.is_client_error() || status.is_server_error() {
        return Err(ClientError::Api(status, error_messages(&text)));
    }
    Ok(text)
}

/// The messages of `{"errors": [{"code", "message"}]}`, else the body.
fn error_messages(body: &str) -> String {
    let parsed: Option<Vec<String>> = serde_json::from_str::<Value>(body).ok().and_then(|v| {
        v.get("errors")?
            .as_array()?
            .iter()
            .map(|e| e.get("message").and_then(Value::as_str).map(String::from))
            .collect()
    });
    match parsed {
        Some(ms) if !ms.is_empty() => ms.join("; "),
        _ => body.trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_encoded() {
        let c = diagnose("shop.brand.example");
        assert_eq!(c.path, "/v1/diagnose?host=shop.brand.example");
        let (c, _) = HostnamesCmd::List {
            account: "acct/x".into(),
            hostname: None,
            status: Some("pending".into()),
            page: Some(2),
            per_page: None,
            direction: None,
            cursor: None,
            api: ApiArgs { api: String::new(), token_file: None, output: None },
        }
        .call();
        assert_eq!(c.path, "/v1/accounts/acct%2Fx/custom_hostnames?status=pending&page=2");
        assert_eq!(
            error_messages(r#"{"errors":[{"code":"a","message":"one"},{"code":"b","message":"two"}]}"#),
            "one; two"
        );
        assert_eq!(error_messages("plain"), "plain");
    }
}
