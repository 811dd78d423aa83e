//! HTTP callouts (`proxy_http_call`): what the filter sent, and how the test answers.

use std::time::Duration;

use crate::maps::HeaderMap;

/// How a callout ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallOutcome {
    /// The test answered with this status.
    Answered(u32),
    /// The timeout elapsed (or the test said so): Envoy's router answers 504.
    TimedOut,
    /// Reset / connection failure: `proxy_on_http_call_response` with 0 headers, 0 body.
    Failed,
    /// The dispatching worker was gone (never delivered).
    Dropped,
}

/// One `proxy_http_call` the filter made.
#[derive(Debug, Clone)]
pub struct Call {
    pub token: u32,
    pub worker: usize,
    /// The root context of that worker (the one proxy_on_http_call_response is called on).
    pub root_ctx: u32,
    /// The context that was effective when the call was dispatched (a stream or the root).
    pub dispatched_from: u32,
    pub cluster: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
    /// Zero means no timeout (Envoy's meaning).
    pub timeout: Duration,
    pub(crate) sent_at_nanos: u64,
    pub outcome: Option<CallOutcome>,
}

impl Call {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The `:path` header, query included.
    pub fn path(&self) -> &str {
        self.header(":path").unwrap_or("")
    }

    /// A query parameter of `:path`, as sent (not percent-decoded).
    pub fn query(&self, key: &str) -> Option<&str> {
        let (_, q) = self.path().split_once('?')?;
        q.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == key).then_some(v)
        })
    }

    pub fn pending(&self) -> bool {
        self.outcome.is_none()
    }

    pub(crate) fn deadline_nanos(&self) -> Option<u64> {
        (!self.timeout.is_zero()).then(|| self.sent_at_nanos + self.timeout.as_nanos() as u64)
    }
}

/// What the host holds while `proxy_on_http_call_response` runs.
#[derive(Debug, Clone)]
pub struct CallResponse {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub trailers: HeaderMap,
}

impl CallResponse {
    /// A response as Envoy's async client delivers it: `:status` first, then the headers,
    /// `content-length` added for a body when absent.
    pub fn new(status: u32, headers: &[(&str, &str)], body: &[u8], trailers: &[(&str, &str)]) -> CallResponse {
        let mut h = HeaderMap::new();
        h.add(":status", status.to_string().as_bytes());
        for (k, v) in headers {
            h.add(k, v.as_bytes());
        }
        if !body.is_empty() && h.get("content-length").is_none() {
            h.add("content-length", body.len().to_string().as_bytes());
        }
        CallResponse { headers: h, body: body.to_vec(), trailers: HeaderMap::from_pairs(trailers.iter().copied()) }
    }

    /// What Envoy's router answers on a callout timeout.
    pub fn gateway_timeout() -> CallResponse {
        CallResponse::new(504, &[("content-type", "text/plain")], b"upstream request timeout", &[])
    }
}
