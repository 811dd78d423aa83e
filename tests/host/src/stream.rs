//! One HTTP stream (a downstream request) as the host sees it, and what became of it.

use std::fmt;

use crate::abi::Action;
use crate::maps::HeaderMap;

/// What the filter answered with `proxy_send_local_response`, exactly as it passed it.
#[derive(Clone, PartialEq, Eq)]
pub struct LocalResponse {
    pub status: u32,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub details: String,
    pub grpc_status: i32,
}

impl LocalResponse {
    /// First value of a header the filter set (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap_or("<non-UTF-8 body>")
    }
}

/// The response the client got: a local response or the upstream's, after the filter's
/// response callbacks ran; headers exclude `:status`; a HEAD response has no body.
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u32,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// True when the filter answered it locally.
    pub local: bool,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    pub fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap_or("<non-UTF-8 body>")
    }
}

/// Bodies shown as text, shortened, in assertion messages.
fn show_body(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if text.chars().count() > 300 {
        format!("{}... ({} bytes)", text.chars().take(300).collect::<String>(), body.len())
    } else {
        text.into_owned()
    }
}

impl fmt::Debug for LocalResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalResponse")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &show_body(&self.body))
            .field("details", &self.details)
            .field("grpc_status", &self.grpc_status)
            .finish()
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers.to_vec())
            .field("body", &show_body(&self.body))
            .field("local", &self.local)
            .finish()
    }
}

/// Where a stream stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Headers are being processed or processing is paused by the filter.
    Request,
    /// The request went upstream (or the local response is being sent).
    Response,
    /// on_log / on_done / on_delete ran.
    Closed,
}

#[derive(Debug, Clone)]
pub(crate) struct Upstream {
    pub status: u32,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Default for Upstream {
    fn default() -> Self {
        Upstream {
            status: 200,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: b"upstream says hi".to_vec(),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Stream {
    /// The stream's context id (the map's key; kept for the Debug output).
    #[allow(dead_code)]
    pub ctx: u32,
    pub phase: Phase,
    pub is_head: bool,
    pub request_headers: HeaderMap,
    pub request_body: Vec<u8>,
    pub has_body: bool,
    pub request_trailers: HeaderMap,
    pub response_headers: HeaderMap,
    pub response_body: Vec<u8>,
    pub response_trailers: HeaderMap,
    /// Envoy's `request_headers_ != nullptr`: readable and writable.
    pub request_open: bool,
    pub request_body_open: bool,
    pub response_open: bool,
    pub response_body_open: bool,
    /// Inside proxy_on_log: request and response headers readable, not writable.
    pub log_phase: bool,
    pub properties: Vec<(Vec<u8>, Vec<u8>)>,
    pub upstream: Upstream,

    pub headers_action: Option<Action>,
    /// Request processing was paused and proxy_continue_stream resumed it.
    pub resumed: bool,
    pub forwarded: Option<HeaderMap>,
    pub forwarded_body: Option<Vec<u8>>,
    pub local: Option<LocalResponse>,
    pub response: Option<Response>,
    pub reset: bool,
    pub fuel: u64,

    // Actions requested during a VM call, carried out after it returns (as Envoy defers them).
    pub want_continue: bool,
    pub want_local: Option<LocalResponse>,
    pub want_reset: bool,
}

impl Stream {
    pub fn new(
        ctx: u32,
        headers: HeaderMap,
        body: Option<Vec<u8>>,
        properties: Vec<(Vec<u8>, Vec<u8>)>,
        upstream: Upstream,
    ) -> Stream {
        let is_head = headers.get(":method").is_some_and(|m| m.eq_ignore_ascii_case(b"HEAD"));
        Stream {
            ctx,
            phase: Phase::Request,
            is_head,
            request_headers: headers,
            has_body: body.is_some(),
            request_body: body.unwrap_or_default(),
            request_trailers: HeaderMap::new(),
            response_headers: HeaderMap::new(),
            response_body: Vec::new(),
            response_trailers: HeaderMap::new(),
            request_open: false,
            request_body_open: false,
            response_open: false,
            response_body_open: false,
            log_phase: false,
            properties,
            upstream,
            headers_action: None,
            resumed: false,
            forwarded: None,
            forwarded_body: None,
            local: None,
            response: None,
            reset: false,
            fuel: 0,
            want_continue: false,
            want_local: None,
            want_reset: false,
        }
    }

    pub fn has_pending_action(&self) -> bool {
        self.phase != Phase::Closed && (self.want_continue || self.want_local.is_some() || self.want_reset)
    }
}
