//! `hostnames verify --wait`: check DNS now, then read the hostname every
//! interval until it is active or the wait ends.

use super::{send, Call, ClientError};
use serde_json::Value;
use std::time::Duration;
use tokio::time::{sleep_until, timeout_at, Instant};

pub struct Wait {
    /// `POST .../verify`, asked once first.
    pub verify: Call,
    /// `GET` of the hostname, asked every `interval` after.
    pub show: Call,
    pub wait: Duration,
    pub interval: Duration,
}

/// The answer that says `active`. A `blocked` hostname fails at once (only
/// an operator lifts it); the API down or overloaded is asked again at the
/// next interval; any other API error fails at once.
pub async fn until_active(base: &str, token: Option<&str>, w: &Wait) -> Result<String, ClientError> {
    let deadline = Instant::now() + w.wait;
    let mut call = &w.verify;
    let mut last: Option<Value> = None;
    loop {
        // The last read may end an interval after the deadline, not later.
        let trouble = match timeout_at(deadline + w.interval, send(base, token, call)).await {
            Err(_) => Some(format!("no answer within {}", humantime::format_duration(w.interval))),
            Ok(Ok(body)) => {
                let v: Value = serde_json::from_str(&body)
                    .map_err(|e| ClientError::Transport(format!("the API's answer is not JSON: {e}")))?;
                match v.get("status").and_then(Value::as_str) {
                    Some("active") => return Ok(body),
                    Some("blocked") => {
                        return Err(ClientError::Wait(format!(
                            "{} is blocked: only an operator can make it active",
                            name(&v)
                        )))
                    }
                    _ => {}
                }
                last = Some(v);
                None
            }
            Ok(Err(ClientError::Transport(m))) => Some(m),
            Ok(Err(ClientError::Api(s, m))) if s.is_server_error() => Some(format!("{s}: {m}")),
            Ok(Err(e)) => return Err(e),
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(ClientError::Wait(gave_up(w.wait, last.as_ref(), trouble.as_deref())));
        }
        call = &w.show;
        sleep_until((now + w.interval).min(deadline)).await;
    }
}

fn name(v: &Value) -> &str {
    v.get("hostname").and_then(Value::as_str).unwrap_or("the hostname")
}

/// Why the wait ended: the status last read and what stands in the way.
fn gave_up(wait: Duration, last: Option<&Value>, trouble: Option<&str>) -> String {
    let waited = humantime::format_duration(wait);
    let mut m = match last {
        Some(v) => {
            let status = v.get("status").and_then(Value::as_str).unwrap_or("not active");
            let mut m = format!("{} is still {status} after {waited}", name(v));
            let errors: Vec<&str> = v
                .get("verification_errors")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if !errors.is_empty() {
                m.push_str(&format!(": {}", errors.join("; ")));
            }
            m
        }
        None => format!("no answer from the API in {waited}"),
    };
    if let Some(t) = trouble {
        m.push_str(&format!(" (last error: {t})"));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_reason_names_the_status_and_the_errors() {
        let v = json!({"hostname": "shop.example", "status": "pending", "verification_errors": ["no TXT", "no CNAME"]});
        assert_eq!(
            gave_up(Duration::from_secs(30), Some(&v), None),
            "shop.example is still pending after 30s: no TXT; no CNAME"
        );
        assert_eq!(
            gave_up(Duration::from_secs(5), None, Some("connection refused")),
            "no answer from the API in 5s (last error: connection refused)"
        );
    }
}
